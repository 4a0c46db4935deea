/**
 * The tuning-data probe (tuningProbe.ts): each variant is the profile's VPT and RVPT with other shots (at the same
 * number of steps) or no augmentation, run as table cells on the tables' backdoored models; the rows are computed
 * from those cells, never typed in. End to end at a cut-down tiny profile: what is tested is the plumbing and the
 * numbers' consistency, not the finding.
 */
import * as fs from 'fs';
import * as path from 'path';
import { getProfile, Profile } from '../../src/experiments/profiles';
import { cellFile } from '../../src/experiments/defenseRun';
import { ensureBackdoored } from '../../src/experiments/backdoorRun';
import { DEFAULT_AUGMENT } from '../../src/data/augment';
import { RVPT_DEFAULTS } from '../../src/defenses/rvpt';
import { BUDGET_GRID, MARGIN_GRID, TUNING_GRID, TuningProbe, committedTuningProbe, isBudgetProbe, isMarginProbe, runTuningProbe, tuningAttacks, tuningMarkdown, tuningProfile, tuningRows, tuningStem } from '../src/tuningProbe';
import { readJsonFile } from '../../src/util/fsutil';
import { committedSeedProbe } from '../src/seedProbe';
import { HAND_PROVENANCE, cellMetrics, cutDownTiny, freshCacheSharingData, restoreCacheAfterAll, setup } from '../../test/helpers';

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

test('a budget multiplies the steps and the warm-up alike, budget 1 is the same-steps variant, and bad budgets are refused', () => {
  const small = getProfile('small');
  for (const v of BUDGET_GRID) {
    const p = tuningProfile(small, v);
    for (const m of ['VPT', 'RVPT']) {
      expect(stepsOf(p, m, 10)).toBe(100 * v.budget!);
      const c = { ...RVPT_DEFAULTS, ...p.defenses[m] };
      expect(c.warmupEpochs / c.epochs).toBeCloseTo(1 / 20, 12); // the cosine schedule keeps its shape
    }
  }
  expect(tuningProfile(small, { shots: 256, augment: true, budget: 1 })).toEqual(tuningProfile(small, { shots: 256, augment: true }));
  expect(tuningProfile(small, { shots: 16, augment: true, budget: 1 }).defenses).toEqual(small.defenses);
  expect(tuningProfile(small, { shots: 16, augment: true, budget: 4 }).defenses.RVPT).toMatchObject({ epochs: 80, warmupEpochs: 4 });
  expect(() => tuningProfile(small, { shots: 16, augment: true, budget: 0 })).toThrow(/budget 0 must be a positive integer \(a multiple of the tables' steps/);
  expect(() => tuningProfile(small, { shots: 16, augment: true, budget: 1.5 })).toThrow(/budget 1\.5 must be a positive integer/);
  expect(tuningStem(TUNING_GRID)).toBe('tuning-probe');
  expect(tuningStem([{ shots: 16, augment: true, budget: 1 }])).toBe('tuning-probe');
  expect(tuningStem([...TUNING_GRID, ...BUDGET_GRID])).toBe('tuning-probe-budget');
  expect(tuningStem(BUDGET_GRID, 'emoji')).toBe('tuning-probe-budget-emoji');
  expect(tuningAttacks(small)).toEqual(['BadNet', 'Blended', 'BadCLIP']);
  expect(tuningAttacks(small, 'emoji')).toEqual(['BadNet', 'Blended', 'WaNet']); // Table 2's
});

test('a margin caps RVPT alone, the default margin is the uncapped variant, and a margin outside [-1, 1] is refused', () => {
  const small = getProfile('small');
  const long = { shots: 256, augment: true, budget: 16 };
  const capped = tuningProfile(small, { ...long, margin: 0.5 });
  const uncapped = tuningProfile(small, long);
  expect(capped.defenses.RVPT).toEqual({ ...uncapped.defenses.RVPT, margin: 0.5 });
  expect(capped.defenses.VPT).toEqual(uncapped.defenses.VPT); // VPT has no FR term: its cells are the budget probe's
  expect(tuningProfile(small, { ...long, margin: RVPT_DEFAULTS.margin })).toEqual(uncapped);
  expect(() => tuningProfile(small, { ...long, margin: 1.5 })).toThrow(/margin 1\.5 must be a cosine in \[-1, 1\]/);
  expect(() => tuningProfile(small, { ...long, margin: NaN })).toThrow(/margin NaN must be a cosine/);
  expect(tuningStem(MARGIN_GRID)).toBe('tuning-probe-margin');
  expect(tuningStem([...BUDGET_GRID, { ...long, margin: -1 }])).toBe('tuning-probe-margin');
});

test('a profile whose backdoored models come from a weights file is refused', async () => {
  const toy = getProfile(path.join(__dirname, '..', '..', 'test', 'fixtures', 'paper-toy', 'profile.json'));
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
  const table1 = readJsonFile<{ datasets: Record<string, Record<string, Record<string, { asr: number; ca: number }>>> }>(path.join(__dirname, '..', 'results', 'in-domain', 'table1.json'), 'table1');
  for (const r of p.rows.filter((x) => x.shots === 16 && x.augment)) {
    for (const m of ['No defense', 'VPT', 'RVPT']) {
      expect({ asr: r.metrics[m].asr, ca: r.metrics[m].ca }).toEqual({ asr: table1.datasets['fashion-mnist'][m][r.attack].asr, ca: table1.datasets['fashion-mnist'][m][r.attack].ca });
    }
  }
  expect(() => committedTuningProbe('/nonexistent/tuning-probe.json')).toThrow(/tuning-probe\.json does not exist\. Write it with `make -C research tuning-probe`/);
});

test('the committed budget probe holds 256 shots at 1, 4 and 16 times the steps, and its budget-1 rows are the same-steps probe’s', () => {
  const p = committedTuningProbe(undefined, 'tuning-probe-budget');
  expect(p.provenance.profile).toBe('small');
  expect(isBudgetProbe(p)).toBe(true);
  const attacks = ['BadNet', 'Blended', 'BadCLIP'];
  expect(p.rows.map(({ attack, shots, augment, budget }) => ({ attack, shots, augment, budget }))).toEqual(attacks.flatMap((attack) => BUDGET_GRID.map((v) => ({ attack, ...v }))));
  for (const r of p.rows) {
    expect(r.steps).toBe(100 * r.budget!);
    expect(r.images).toBe(2560);
  }
  const same = committedTuningProbe();
  for (const r of p.rows.filter((x) => x.budget === 1)) {
    const twin = same.rows.find((x) => x.attack === r.attack && x.shots === r.shots && x.augment === r.augment)!;
    expect(r.metrics).toEqual(twin.metrics);
    expect(r.finalFR).toEqual(twin.finalFR);
  }
  expect(() => committedTuningProbe('/nonexistent/tuning-probe-budget.json', 'tuning-probe-budget')).toThrow(/tuning-probe-budget\.json does not exist\. Write it with `make -C research tuning-probe`/);
});

test('the committed margin probe holds the budget probe’s longest runs at m = -1, 0.5 and 0.7, and its m = -1 rows are that probe’s', () => {
  const p = committedTuningProbe(undefined, 'tuning-probe-margin');
  expect(p.provenance.profile).toBe('small');
  expect(isMarginProbe(p)).toBe(true);
  const attacks = ['BadNet', 'Blended', 'BadCLIP'];
  expect(p.rows.map(({ attack, shots, augment, budget, margin }) => ({ attack, shots, augment, budget, margin }))).toEqual(attacks.flatMap((attack) => MARGIN_GRID.map((v) => ({ attack, ...v }))));
  const budget = committedTuningProbe(undefined, 'tuning-probe-budget');
  for (const r of p.rows) {
    expect(r.steps).toBe(1600);
    const twin = budget.rows.find((x) => x.attack === r.attack && x.augment === r.augment && x.budget === 16)!;
    expect(r.metrics.VPT).toEqual(twin.metrics.VPT);
    if (r.margin === -1) expect(r.metrics.RVPT).toEqual(twin.metrics.RVPT);
    else {
      // The recorded term is the capped one (at least m); within 0.05 of m, the prompts reached the cap and held it.
      expect(r.finalFR.RVPT!).toBeGreaterThanOrEqual(r.margin!);
      expect(r.finalFR.RVPT!).toBeLessThan(r.margin! + 0.05);
    }
  }
  const { header, rows } = tuningRows(p);
  expect(header[4]).toBe('RVPT margin');
  expect(rows.map((x) => x[4])).toEqual(attacks.flatMap(() => MARGIN_GRID.map((v) => String(v.margin))));
});

test('the committed emoji budget probe holds Table 2’s attacks at 1, 4 and 16 times the steps, its budget-1 augmented rows are Table 2’s cells, and the seed probe’s seed 0 is its longest run', () => {
  const p = committedTuningProbe(undefined, 'tuning-probe-budget-emoji');
  expect(p.dataset).toBe('emoji');
  const attacks = ['BadNet', 'Blended', 'WaNet'];
  const grid = [1, 4, 16].flatMap((budget) => [true, false].map((augment) => ({ shots: 16, augment, budget })));
  expect(p.rows.map(({ attack, shots, augment, budget }) => ({ attack, shots, augment, budget }))).toEqual(attacks.flatMap((attack) => grid.map((v) => ({ attack, ...v }))));
  const base = p.rows[0].steps;
  for (const r of p.rows) expect(r.steps).toBe(base * r.budget!);
  const table2 = readJsonFile<{ datasets: Record<string, Record<string, Record<string, { asr: number; ca: number }>>> }>(path.join(__dirname, '..', 'results', 'in-domain', 'table2.json'), 'table2');
  for (const r of p.rows.filter((x) => x.budget === 1 && x.augment)) {
    for (const m of ['No defense', 'VPT', 'RVPT']) expect({ asr: r.metrics[m].asr, ca: r.metrics[m].ca }).toEqual({ asr: table2.datasets.emoji[m][r.attack].asr, ca: table2.datasets.emoji[m][r.attack].ca });
  }
  const seeds = committedSeedProbe('emoji-budget-16');
  expect(seeds.budget).toBe(16);
  for (const r of seeds.rows) expect(r.metrics.cleanToTarget).toBeGreaterThanOrEqual(0);
  for (const r of seeds.rows.filter((x) => x.seed === 0)) {
    const twin = p.rows.find((x) => x.attack === r.attack && x.budget === 16 && x.augment)!;
    expect({ asr: r.metrics.asr, ca: r.metrics.ca }).toEqual({ asr: twin.metrics.RVPT.asr, ca: twin.metrics.RVPT.ca });
  }
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
  // Trained three times as long, on the same backdoored model: its own file, the steps tripled, the metrics its own.
  const longer = await runTuningProbe(profile, ['Blended'], [{ shots: 2, augment: true, budget: 3 }]);
  expect(longer.path).toBe(path.join(cache, 'results', 'tuning-test', 'tuning-probe-budget.json'));
  expect(isBudgetProbe(longer.probe)).toBe(true);
  expect(longer.probe.rows.map((r) => [r.shots, r.augment, r.budget, r.images, r.steps])).toEqual([[2, true, 3, 20, 12]]);
  expect(longer.probe.rows[0].metrics['No defense']).toEqual(a.metrics['No defense']);
  expect(longer.probe.rows[0].metrics.RVPT).not.toEqual(a.metrics.RVPT);
  expect(fs.readFileSync(longer.path.replace(/json$/, 'md'), 'utf8')).toMatch(/^# Budget probe: [^\n]*\n[\s\S]*\| Blended \| 2 \| crop \+ flip \| 20 \(12\) \|/);
  expect(JSON.parse(fs.readFileSync(first.path, 'utf8'))).toEqual(again.probe); // the same-steps file is left alone
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
