/**
 * The backdoor-strength probe (strengthProbe.ts): each variant is its own backdoored model, measured like a table
 * cell; the rows are computed from those models, never typed in. A cut-down tiny profile (a few steps each): what is
 * tested is the plumbing and the numbers' consistency, not the finding.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { getProfile, Profile } from '../../src/experiments/profiles';
import { backdoorKey } from '../../src/experiments/cellPool';
import { MiniCLIP } from '../../src/model/clip';
import { STRENGTH_GRID, StrengthProbe, committedStrengthProbe, imageTowerShift, runStrengthProbe, strengthGrid, strengthMarkdown, strengthRows, variantProfile } from '../src/strengthProbe';
import { DEFAULT_AUGMENT } from '../../src/data/augment';
import { HAND_PROVENANCE, TEST_CONFIG, cellMetrics, cutDownTiny, freshCacheSharingData, restoreCacheAfterAll, setup } from '../../test/helpers';

beforeAll(setup);
restoreCacheAfterAll();

test('a variant overrides its attack’s rate and lr only, and a dataset override that would mask it is an error', () => {
  const small = getProfile('small');
  const p = variantProfile(small, { attack: 'BadNet', rate: 0.02, lr: 1e-4 });
  expect(p.attackBackdoor?.BadNet).toEqual({ rate: 0.02, lr: 1e-4 }); // small's own BadNet override (0.1, 1e-3) replaced
  expect(p.attackBackdoor?.Blended).toEqual(small.attackBackdoor?.Blended);
  expect(p.backdoor).toBe(small.backdoor);
  expect(() => variantProfile({ ...small, datasetBackdoor: { 'fashion-mnist/Blended': { lr: 1e-3 } } }, { attack: 'Blended', rate: 0.01, lr: 1e-4 })).toThrow(
    /overrides Blended's backdoor on fashion-mnist \(datasetBackdoor\)/,
  );
  expect(() => variantProfile(small, { attack: 'Blended', rate: 1.5, lr: 1e-4 })).toThrow(/rate 1\.5 \(Blended\) must be in \(0, 1\)/);
  // Augmentation only where asked; a variant without it keeps the profile's config (the tables' model).
  expect(variantProfile(small, { attack: 'Blended', rate: 0.05, lr: 5e-4, augment: true }).attackBackdoor?.Blended).toEqual({ rate: 0.05, lr: 5e-4, augment: DEFAULT_AUGMENT });
  expect(variantProfile(small, { attack: 'Blended', rate: 0.05, lr: 5e-4 }).attackBackdoor?.Blended).toEqual({ rate: 0.05, lr: 5e-4 });
  expect(() => variantProfile({ ...small, datasetBackdoor: { 'fashion-mnist/Blended': { augment: null } } }, { attack: 'Blended', rate: 0.05, lr: 5e-4, augment: true })).toThrow(/with augmentation would not apply/);
  // The pool's processes keep a backdoored model loaded by this key: two variants must not share one.
  const key = (v: Profile) => backdoorKey({ profile: v, attack: 'Blended', dataset: 'fashion-mnist' });
  expect(key(variantProfile(small, { attack: 'Blended', rate: 0.01, lr: 5e-4 }))).not.toEqual(key(variantProfile(small, { attack: 'Blended', rate: 0.02, lr: 5e-4 })));
  expect(key(variantProfile(small, { attack: 'Blended', rate: 0.05, lr: 5e-4 }))).not.toEqual(key(small)); // the override itself is part of the key
});

test('a profile whose backdoored models come from a weights file is refused: the probe trains its own', async () => {
  const toy = getProfile(path.join(__dirname, '..', '..', 'test', 'fixtures', 'paper-toy', 'profile.json'));
  await expect(runStrengthProbe(toy, [{ attack: 'BadNet', rate: 0.01, lr: 1e-4 }])).rejects.toThrow(/takes its backdoored models from a weights file; the probe trains its own/);
});

test('a grid of one’s own is every attack x rate x lr, the missing axes from the committed grid', () => {
  expect(strengthGrid(['WaNet'], [0.01, 0.05], [1e-4])).toEqual([
    { attack: 'WaNet', rate: 0.01, lr: 1e-4 },
    { attack: 'WaNet', rate: 0.05, lr: 1e-4 },
  ]);
  const lrs = [...new Set(STRENGTH_GRID.map((v) => v.lr))];
  expect(strengthGrid(['WaNet'], [0.01]).map((v) => v.lr)).toEqual(lrs);
  expect(strengthGrid(['WaNet'], [0.05], [5e-4], true)).toEqual([{ attack: 'WaNet', rate: 0.05, lr: 5e-4, augment: true }]);
});

test('the image tower’s weight change is relative, counts the image tower only, and is zero for the same model', () => {
  const a = MiniCLIP.init(TEST_CONFIG, 0);
  const b = MiniCLIP.init(TEST_CONFIG, 0);
  try {
    expect(imageTowerShift(a, b)).toBe(0);
    const text = Object.keys(b.params).find((n) => !n.startsWith('visual.'))!;
    b.params[text].assign(tf.add(b.params[text], 1));
    expect(imageTowerShift(a, b)).toBe(0);
    const w = 'visual.proj';
    b.params[w].assign(tf.mul(a.params[w], 1.5)); // moves ||proj|| * 0.5
    const norm = (n: string) => Math.sqrt(tf.sum(tf.square(a.params[n])).dataSync()[0]);
    const all = Math.sqrt(Object.keys(a.params).filter((n) => n.startsWith('visual.')).reduce((s, n) => s + norm(n) ** 2, 0));
    expect(imageTowerShift(a, b)).toBeCloseTo((0.5 * norm(w)) / all, 5);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('rows and markdown follow the measured numbers', () => {
  const m = cellMetrics;
  const probe: StrengthProbe = {
    probe: 'backdoor strength',
    dataset: 'fashion-mnist',
    rows: [{ attack: 'Blended', rate: 0.01, lr: 5e-4, poisoned: 550, shift: 0.0412, cleanCA: 82.33, metrics: { 'No defense': m(55.94, 85.76), VPT: m(32.7, 83.19), RVPT: m(13.71, 75.4) }, rvptFinalFR: 0.62, backdoorCheckpoint: 'x' }],
    provenance: HAND_PROVENANCE,
  };
  const { header, rows } = strengthRows(probe);
  expect(header[0]).toBe('attack');
  expect(rows).toEqual([['Blended', '550 (1%)', '0.0005', 'none', '4.12%', '+3.43', '55.94 (85.76)', '32.70 (83.19)', '13.71 (75.40)', '0.25']]);
  expect(strengthMarkdown(probe)).toContain('| Blended | 550 (1%) | 0.0005 | none | 4.12% | +3.43 | 55.94 (85.76) | 32.70 (83.19) | 13.71 (75.40) | 0.25 |');
  expect(strengthRows({ ...probe, rows: [{ ...probe.rows[0], augment: true }] }).rows[0][3]).toBe('crop + flip');
});

test('the committed probe holds every variant of the grid, each from its own model, and a missing file is named', () => {
  const p = committedStrengthProbe();
  expect(p.provenance.profile).toBe('small');
  expect(p.rows.map(({ attack, rate, lr, augment }) => ({ attack, rate, lr, ...(augment ? { augment } : {}) }))).toEqual(STRENGTH_GRID);
  expect(new Set(p.rows.map((r) => r.backdoorCheckpoint)).size).toBe(STRENGTH_GRID.length);
  for (const r of p.rows) expect(Object.keys(r.metrics)).toEqual(['No defense', 'VPT', 'RVPT']);
  expect(() => committedStrengthProbe('/nonexistent/strength-probe.json')).toThrow(/strength-probe\.json does not exist\. Write it with `make -C research strength-probe`/);
});

test('the probe backdoors, defends and writes each variant, from its own model, and a second run only reads the caches', async () => {
  const profile = cutDownTiny('strength-test', { RVPT: { epochs: 1 }, VPT: { epochs: 1 } }, 2);
  const cache = freshCacheSharingData('rvpt-strength-');
  const variants = [
    { attack: 'Blended', rate: 0.01, lr: 1e-3 },
    { attack: 'Blended', rate: 0.2, lr: 1e-3 },
    { attack: 'Blended', rate: 0.01, lr: 1e-3, augment: true },
  ];
  const first = await runStrengthProbe(profile, variants);
  expect(first.path).toBe(path.join(cache, 'results', 'strength-test', 'strength-probe.json'));
  const written = JSON.parse(fs.readFileSync(first.path, 'utf8')) as StrengthProbe;
  expect(written.rows.map((r) => [r.rate, r.lr, !!r.augment])).toEqual([
    [0.01, 1e-3, false],
    [0.2, 1e-3, false],
    [0.01, 1e-3, true],
  ]);
  expect(written.provenance.profile).toBe('strength-test');
  expect(fs.readFileSync(first.path.replace(/json$/, 'md'), 'utf8')).toContain('| Blended | ');
  const [a, b, c] = written.rows;
  expect(new Set(written.rows.map((r) => r.backdoorCheckpoint)).size).toBe(3);
  expect(c.poisoned).toBe(a.poisoned); // the same pairs poisoned, fine-tuned on crops and flips of them
  expect(c.metrics['No defense']).not.toEqual(a.metrics['No defense']);
  expect(b.poisoned).toBeGreaterThan(10 * a.poisoned); // 20% against 1% of the same pairs
  for (const r of written.rows) {
    expect(r.shift).toBeGreaterThan(0);
    expect(Object.keys(r.metrics)).toEqual(['No defense', 'VPT', 'RVPT']);
    expect(r.rvptFinalFR).not.toBeNull();
  }
  expect(a.metrics['No defense']).not.toEqual(b.metrics['No defense']);
  const again = await runStrengthProbe(profile, variants);
  expect(again.probe.rows).toEqual(written.rows);
  expect(again.probe.provenance.seconds).toBeLessThan(first.probe.provenance.seconds);
}, 300000);
