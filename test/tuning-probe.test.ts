/**
 * The tuning-data probe (tuningProbe.ts): each variant is the profile's VPT and RVPT with other shots (at the same
 * number of steps) or no augmentation, run as table cells on the tables' backdoored models; the rows are computed
 * from those cells, never typed in. End to end at a cut-down tiny profile: what is tested is the plumbing and the
 * numbers' consistency, not the finding.
 */
import * as fs from 'fs';
import * as path from 'path';
import { getProfile, Profile } from '../src/experiments/profiles';
import { cellFile } from '../src/experiments/defenseRun';
import { ensureBackdoored } from '../src/experiments/backdoorRun';
import { DEFAULT_AUGMENT } from '../src/data/augment';
import { RVPT_DEFAULTS } from '../src/defenses/rvpt';
import { TUNING_GRID, TuningProbe, committedTuningProbe, runTuningProbe, tuningMarkdown, tuningProfile, tuningRows } from '../src/experiments/tuningProbe';
import { readJsonFile } from '../src/util/fsutil';
import { HAND_PROVENANCE, cellMetrics, cutDownTiny, freshCacheSharingData, restoreCacheAfterAll, setup } from './helpers';

beforeAll(setup);
restoreCacheAfterAll();

/** Optimiser steps of a prompt-tuning run, as promptTuning counts them. */
const stepsOf = (p: Profile, method: string, classes: number) => {
  const c = { ...RVPT_DEFAULTS, ...p.defenses[method] };
  return Math.ceil(c.epochs * Math.max(1, Math.floor((p.shots * classes) / c.batch)));
};

test('a variant keeps the tables’ steps, scales epochs and warm-up, and the profile’s own variant is the tables’ cell', () => {
  const small = getProfile('small');
  for (const v of TUNING_GRID) {
    const p = tuningProfile(small, v);
    expect(p.shots).toBe(v.shots);
    for (const m of ['VPT', 'RVPT']) {
      expect(stepsOf(p, m, 10)).toBe(100); // Fashion-MNIST: 10 classes, 16 shots, batch 32, 20 epochs
      const c = { ...RVPT_DEFAULTS, ...p.defenses[m] };
      expect(c.warmupEpochs * Math.floor((v.shots * 10) / c.batch)).toBeCloseTo(5, 10); // one 16-shot epoch of warm-up
      expect(c.augment).toEqual(v.augment ? DEFAULT_AUGMENT : null);
    }
  }
  const own = tuningProfile(small, { shots: 16, augment: true });
  expect(own.defenses).toEqual(small.defenses);
  expect(cellFile(own, 'BadCLIP', 'RVPT', 'fashion-mnist', ['fashion-mnist'], 'ckpt')).toBe(cellFile(small, 'BadCLIP', 'RVPT', 'fashion-mnist', ['fashion-mnist'], 'ckpt'));
  expect(cellFile(tuningProfile(small, { shots: 16, augment: false }), 'BadCLIP', 'RVPT', 'fashion-mnist', ['fashion-mnist'], 'ckpt')).not.toBe(
    cellFile(small, 'BadCLIP', 'RVPT', 'fashion-mnist', ['fashion-mnist'], 'ckpt'),
  );
  // Other defenses are untouched; a profile without augmentation gets CoOp's for the augmented variant.
  expect(own.defenses.CleanCLIP).toBe(small.defenses.CleanCLIP);
  const plain = { ...small, defenses: { ...small.defenses, RVPT: { epochs: 20, augment: null } } } as Profile;
  expect(tuningProfile(plain, { shots: 16, augment: true }).defenses.RVPT).toEqual({ epochs: 20, augment: DEFAULT_AUGMENT });
  expect(() => tuningProfile(small, { shots: 2.5, augment: true })).toThrow(/shots 2\.5 must be a positive integer/);
  expect(() => tuningProfile(small, { shots: 0, augment: true })).toThrow(/shots 0 must be a positive integer/);
});

test('a profile whose backdoored models come from a weights file is refused', async () => {
  const toy = getProfile(path.join(__dirname, 'fixtures', 'paper-toy', 'profile.json'));
  await expect(runTuningProbe(toy, ['BadNet'])).rejects.toThrow(/takes its backdoored models from a weights file/);
});

test('rows and markdown follow the measured numbers', () => {
  const m = cellMetrics;
  const probe: TuningProbe = {
    probe: 'tuning data',
    dataset: 'fashion-mnist',
    rows: [{ attack: 'BadNet', shots: 64, augment: false, images: 640, steps: 100, metrics: { 'No defense': m(84.84, 84.98), VPT: m(42.16, 83.35), RVPT: m(32.57, 79.6) }, finalFR: { VPT: 0.9161, RVPT: 0.7324 } }],
    provenance: HAND_PROVENANCE,
  };
  const { header, rows } = tuningRows(probe);
  expect(header[0]).toBe('attack');
  expect(rows).toEqual([['BadNet', '64', 'none', '640 (100)', '84.84 (84.98)', '42.16 (83.35)', '32.57 (79.60)', '-5.38', '0.916 / 0.732']]);
  expect(tuningMarkdown(probe)).toContain('| BadNet | 64 | none | 640 (100) | 84.84 (84.98) | 42.16 (83.35) | 32.57 (79.60) | -5.38 | 0.916 / 0.732 |');
});

test('the committed probe holds every attack x variant at the same steps, and its 16-shot augmented rows are Table 1’s cells', () => {
  const p = committedTuningProbe();
  expect(p.provenance.profile).toBe('small');
  const attacks = [...new Set(p.rows.map((r) => r.attack))];
  expect(attacks).toEqual(['BadNet', 'Blended', 'BadCLIP']);
  expect(p.rows.map(({ attack, shots, augment }) => ({ attack, shots, augment }))).toEqual(attacks.flatMap((attack) => TUNING_GRID.map((v) => ({ attack, ...v }))));
  for (const r of p.rows) {
    expect(r.steps).toBe(100);
    expect(r.images).toBe(r.shots * 10);
    expect(Object.keys(r.metrics)).toEqual(['No defense', 'VPT', 'RVPT']);
  }
  const table1 = readJsonFile<{ datasets: Record<string, Record<string, Record<string, { asr: number; ca: number }>>> }>(path.join(__dirname, '..', 'figures', 'table1.json'), 'table1');
  for (const r of p.rows.filter((x) => x.shots === 16 && x.augment)) {
    for (const m of ['No defense', 'VPT', 'RVPT']) {
      expect({ asr: r.metrics[m].asr, ca: r.metrics[m].ca }).toEqual({ asr: table1.datasets['fashion-mnist'][m][r.attack].asr, ca: table1.datasets['fashion-mnist'][m][r.attack].ca });
    }
  }
  expect(() => committedTuningProbe('/nonexistent/tuning-probe.json')).toThrow(/tuning-probe\.json does not exist\. Write it with `make tuning-probe`/);
});

test('the probe defends and writes each variant on the one backdoored model, at the same steps, and a second run only reads the caches', async () => {
  const profile = cutDownTiny('tuning-test', { RVPT: { epochs: 2, batch: 10 }, VPT: { epochs: 2, batch: 10 } }, 2);
  const cache = freshCacheSharingData('rvpt-tuning-');
  const variants = [
    { shots: 2, augment: true },
    { shots: 4, augment: false },
  ];
  const first = await runTuningProbe(profile, ['Blended'], variants);
  expect(first.path).toBe(path.join(cache, 'results', 'tuning-test', 'tuning-probe.json'));
  const written = JSON.parse(fs.readFileSync(first.path, 'utf8')) as TuningProbe;
  expect(written.rows.map((r) => [r.shots, r.augment, r.images, r.steps])).toEqual([
    [2, true, 20, 4], // 20 images in batches of 10: 2 per epoch, 2 epochs
    [4, false, 40, 4], // 40 images: 4 per epoch, 1 epoch
  ]);
  expect(written.provenance.profile).toBe('tuning-test');
  expect(fs.readFileSync(first.path.replace(/json$/, 'md'), 'utf8')).toContain('| Blended | 4 | none | 40 (4) |');
  const [a, b] = written.rows;
  expect(a.metrics['No defense']).toEqual(b.metrics['No defense']); // one backdoored model
  expect(a.finalFR.RVPT).not.toBe(b.finalFR.RVPT); // other shots, other augmentation
  for (const r of written.rows) for (const m of ['VPT', 'RVPT']) expect(r.finalFR[m]).toBeGreaterThan(0);
  const again = await runTuningProbe(profile, ['Blended'], variants);
  expect(again.probe.rows).toEqual(written.rows);
  expect(again.probe.provenance.seconds).toBeLessThan(first.probe.provenance.seconds);
  // The model's stored no-defense metrics are on the sample of the profile that made it (100 images); a profile with
  // another sample size that shares the model gets its own (as the tables at 10,000 did not, after an ablation at 2,000
  // had made the BadNet model).
  const other = await ensureBackdoored({ ...profile, evalLimit: 50 }, 'Blended');
  try {
    expect(other.cached).toBe(true);
    expect(other.metrics['fashion-mnist'].n).toBe(50);
    expect(other.metrics['fashion-mnist']).not.toEqual(a.metrics['No defense']);
  } finally {
    other.model.dispose();
  }
  const same = await ensureBackdoored(profile, 'Blended');
  try {
    expect(same.metrics['fashion-mnist']).toEqual(a.metrics['No defense']);
  } finally {
    same.model.dispose();
  }
}, 300000);
