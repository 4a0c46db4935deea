/**
 * The seed probe (seedProbe.ts): VPT and RVPT at several defense seeds on the tables' backdoored models; the rows and
 * their summary are computed from those cells, never typed in. End to end at a cut-down tiny profile: what is tested
 * is the plumbing (the seed reaches the run, the tables' seed is the tables' cell), not the finding.
 */
import * as fs from 'fs';
import * as path from 'path';
import { getProfile } from '../../src/experiments/profiles';
import { cellFile, defenseSeed, runCell } from '../../src/experiments/defenseRun';
import { SEED_PROBE_METHODS, SEED_PROBE_SEEDS, SeedProbe, budgetProfile, committedSeedProbe, frLayersProfile, frTokenProfile, isTableRow, pairedSeedRows, runSeedProbe, seedProbeFileName, seedFigure, seedMarkdown, seedProbeAttacks, seedProfile, seedRows, seedSummaries, seedSummaryRows, seedSummaryRowsAcross } from '../src/seedProbe';
import { readJsonFile } from '../../src/util/fsutil';
import { signedText } from '../../src/experiments/tables';
import { median } from '../../src/util/stats';
import { HAND_PROVENANCE, cellMetrics, cutDownTiny, freshCacheSharingData, restoreCacheAfterAll, setup } from '../../test/helpers';

beforeAll(setup);
restoreCacheAfterAll();

test('a run sets only its method’s seed, and the profile’s own seed is the tables’ cell', () => {
  const small = getProfile('small');
  expect(defenseSeed(small, 'RVPT')).toBe(small.backdoor.seed);
  expect(seedProfile(small, 'RVPT', small.backdoor.seed)).toBe(small);
  const three = seedProfile(small, 'RVPT', 3);
  expect(three.defenses.RVPT).toEqual({ ...small.defenses.RVPT, seed: 3 });
  expect(three.defenses.VPT).toBe(small.defenses.VPT);
  expect(defenseSeed(three, 'RVPT')).toBe(3);
  expect(defenseSeed(three, 'VPT')).toBe(small.backdoor.seed);
  const key = (p: typeof small) => cellFile(p, 'BadCLIP', 'RVPT', 'fashion-mnist', ['fashion-mnist'], 'ckpt');
  expect(key(three)).not.toBe(key(small));
  expect(key(seedProfile(three, 'RVPT', 3))).toBe(key(three));
  // Back to the profile's seed: the seed field goes, so the cell is the tables' again.
  expect(key(seedProfile(three, 'RVPT', small.backdoor.seed))).toBe(key(small));
  for (const bad of [-1, 1.5, NaN]) expect(() => seedProfile(small, 'RVPT', bad)).toThrow(/seed .* must be a whole number/);
  // Fixed shots: the run's seed changes, its shots stay the profile seed's; without, the shots follow the run's seed.
  const fixed = seedProfile(small, 'RVPT', 3, true);
  expect(fixed.defenses.RVPT).toEqual({ ...small.defenses.RVPT, seed: 3, shotsSeed: small.backdoor.seed });
  expect([defenseSeed(fixed, 'RVPT'), defenseSeed(fixed, 'RVPT', 'shotsSeed')]).toEqual([3, small.backdoor.seed]);
  expect(defenseSeed(three, 'RVPT', 'shotsSeed')).toBe(3);
  expect(key(fixed)).not.toBe(key(three));
  expect(seedProfile(small, 'RVPT', small.backdoor.seed, true)).toBe(small);
  const broken = { ...small, defenses: { ...small.defenses, RVPT: { ...small.defenses.RVPT, seed: 'one' } } };
  expect(() => defenseSeed(broken, 'RVPT')).toThrow(/Profile 'small': defenses\.RVPT\.seed is "one"; it must be a whole number of at least 0/);
  const brokenShots = { ...small, defenses: { ...small.defenses, RVPT: { ...small.defenses.RVPT, shotsSeed: -2 } } };
  expect(() => defenseSeed(brokenShots, 'RVPT', 'shotsSeed')).toThrow(/defenses\.RVPT\.shotsSeed is -2/);
});

test("--fr-token ln_post changes RVPT's config alone, gets its own cells and file, and its RVPT rows are not the tables'", () => {
  const small = getProfile('small');
  expect(frTokenProfile(small, 'residual')).toBe(small);
  const post = frTokenProfile(small, 'ln_post');
  expect(post.name).toBe(small.name); // the tables' backdoored models and results folder
  expect(post.defenses.RVPT).toEqual({ ...small.defenses.RVPT, frToken: 'ln_post' });
  expect(post.defenses.VPT).toBe(small.defenses.VPT);
  const key = (p: typeof small, m: string) => cellFile(p, 'BadCLIP', m, 'fashion-mnist', ['fashion-mnist'], 'ckpt');
  expect(key(post, 'RVPT')).not.toBe(key(small, 'RVPT'));
  expect(key(post, 'VPT')).toBe(key(small, 'VPT'));
  // The seed-probe variants compose: the seed field joins frToken.
  expect(seedProfile(post, 'RVPT', 3).defenses.RVPT).toEqual({ ...small.defenses.RVPT, frToken: 'ln_post', seed: 3 });
  expect(() => frTokenProfile(small, 'proj' as never)).toThrow(/--fr-token "proj" must be one of residual, ln_post/);
  expect(seedProbeFileName(small, 'fashion-mnist', false, 'ln_post')).toBe('seed-probe-fr-ln-post');
  expect(seedProbeFileName(small, 'emoji', true, 'ln_post')).toBe('seed-probe-emoji-fixed-shots-fr-ln-post');
  expect(seedProbeFileName(small, 'fashion-mnist')).toBe('seed-probe');
  const row = (method: string, seed: number) => ({ attack: 'BadNet', method, seed, metrics: {} as never, noDefense: {} as never });
  const probe = (frToken?: 'ln_post') => ({ probe: 'seed', dataset: 'fashion-mnist', tableSeed: 0, rows: [], ...(frToken ? { frToken } : {}) }) as unknown as SeedProbe;
  expect([isTableRow(probe(), row('RVPT', 0)), isTableRow(probe(), row('RVPT', 1))]).toEqual([true, false]);
  expect([isTableRow(probe('ln_post'), row('RVPT', 0)), isTableRow(probe('ln_post'), row('VPT', 0))]).toEqual([false, true]);
});

test("--fr-layers changes RVPT's config alone, gets its own cells and file, and is checked against the prompted blocks", () => {
  const small = getProfile('small');
  expect(frLayersProfile(small, undefined)).toBe(small);
  const last = frLayersProfile(small, [5]);
  expect(last.name).toBe(small.name);
  expect(last.defenses.RVPT).toEqual({ ...small.defenses.RVPT, frLayers: [5] });
  expect(last.defenses.VPT).toBe(small.defenses.VPT);
  const key = (p: typeof small, m: string) => cellFile(p, 'BadCLIP', m, 'fashion-mnist', ['fashion-mnist'], 'ckpt');
  expect(key(last, 'RVPT')).not.toBe(key(small, 'RVPT'));
  expect(key(last, 'VPT')).toBe(key(small, 'VPT'));
  expect(seedProfile(last, 'RVPT', 2).defenses.RVPT).toEqual({ ...small.defenses.RVPT, frLayers: [5], seed: 2 });
  // small prompts blocks 3-6 (1-based; D = 2): block 2 is before them.
  expect(() => frLayersProfile(small, [1, 5])).toThrow(/--fr-layers names block 2, before profile 'small''s first prompted block, 3.*Give blocks 3 to 6/);
  expect(seedProbeFileName(small, 'fashion-mnist', false, 'residual', [2, 3, 4])).toBe('seed-probe-fr-layers-3-4-5');
  const row = (method: string, seed: number) => ({ attack: 'BadNet', method, seed, metrics: {} as never, noDefense: {} as never });
  const probe = { probe: 'seed', dataset: 'fashion-mnist', tableSeed: 0, rows: [], frLayers: [5] } as unknown as SeedProbe;
  expect([isTableRow(probe, row('RVPT', 0)), isTableRow(probe, row('VPT', 0))]).toEqual([false, true]);
});

test('--budget stretches both methods’ steps alike, gets its own cells and file, and none of its rows is a table’s cell', () => {
  const small = getProfile('small');
  expect(budgetProfile(small, 1)).toBe(small);
  const long = budgetProfile(small, 16);
  expect(long.name).toBe(small.name);
  expect(long.shots).toBe(small.shots);
  for (const m of ['VPT', 'RVPT']) expect(long.defenses[m]).toEqual({ ...small.defenses[m], epochs: 320, warmupEpochs: 16 }); // 20 x 16 epochs, 1 x 16 of warm-up
  expect(long.defenses.CleanCLIP).toBe(small.defenses.CleanCLIP);
  const key = (p: typeof small, m: string) => cellFile(p, 'Blended', m, 'emoji', ['emoji'], 'ckpt');
  expect(key(long, 'RVPT')).not.toBe(key(small, 'RVPT'));
  expect(seedProfile(long, 'RVPT', 3).defenses.RVPT).toEqual({ ...long.defenses.RVPT, seed: 3 });
  expect(seedProbeFileName(small, 'emoji', false, 'residual', undefined, 16)).toBe('seed-probe-emoji-budget-16');
  expect(seedProbeFileName(small, 'emoji', false, 'residual', undefined, 1)).toBe('seed-probe-emoji');
  const row = (method: string, seed: number) => ({ attack: 'BadNet', method, seed, metrics: {} as never, noDefense: {} as never });
  const probe = { probe: 'seed', dataset: 'emoji', tableSeed: 0, rows: [], budget: 16 } as unknown as SeedProbe;
  expect([isTableRow(probe, row('RVPT', 0)), isTableRow(probe, row('VPT', 0))]).toEqual([false, false]);
});

test('the attacks are the table’s: six on the main dataset, Table 2’s three on emoji', () => {
  const small = getProfile('small');
  expect(seedProbeAttacks(small)).toEqual(['BadNet', 'Blended', 'ISSBA', 'WaNet', 'TrojVQA', 'BadCLIP']);
  expect(seedProbeAttacks(small, 'emoji')).toEqual(['BadNet', 'Blended', 'WaNet']);
});

test('summary, rows, markdown and figure follow the measured numbers', () => {
  const m = cellMetrics;
  const nd = m(84.84, 84.98);
  const probe: SeedProbe = {
    probe: 'seed',
    dataset: 'fashion-mnist',
    tableSeed: 0,
    rows: [
      { attack: 'BadNet', method: 'RVPT', seed: 0, metrics: m(8.52, 71.55), noDefense: nd },
      { attack: 'BadNet', method: 'RVPT', seed: 1, metrics: m(4.0, 83.5), noDefense: nd },
      { attack: 'BadNet', method: 'RVPT', seed: 2, metrics: m(30.1, 80.0), noDefense: nd },
    ],
    provenance: HAND_PROVENANCE,
  };
  const [s] = seedSummaries(probe);
  expect(s).toMatchObject({ attack: 'BadNet', method: 'RVPT', seeds: 3, meetTarget: 1 });
  expect(s.table).toEqual(m(8.52, 71.55));
  expect(s.asr).toEqual({ median: 8.52, min: 4, max: 30.1 });
  expect(+s.caChange.median.toFixed(2)).toBe(-4.98);
  expect(seedSummaryRows(probe).rows).toEqual([['BadNet', 'RVPT', '3', '8.52 (71.55)', '8.52 [4.00, 30.10]', '-4.98 [-13.43, -1.48]', '1 of 3']]);
  expect(seedRows(probe).rows[0]).toEqual(['BadNet', 'RVPT', '0 (tables)', '8.52 (71.55)', '-13.43']);
  // Several models side by side, each row naming its model; an attack list keeps those attacks only.
  const other: SeedProbe = { ...probe, rows: [{ ...probe.rows[0], attack: 'WaNet' }, { attack: 'BadNet', method: 'VPT', seed: 0, metrics: m(40, 84), noDefense: nd }] };
  const across = seedSummaryRowsAcross([{ model: 'small', probe }, { model: 'deep12', probe: other }], ['BadNet']);
  expect(across.header[0]).toBe('model');
  expect(across.rows).toEqual([
    ['small', 'BadNet', 'RVPT', '3', '8.52 [4.00, 30.10]', '-4.98 [-13.43, -1.48]', '1 of 3'],
    ['deep12', 'BadNet', 'VPT', '1', '40.00 [40.00, 40.00]', '-0.98 [-0.98, -0.98]', '0 of 1'],
  ]);
  const md = seedMarkdown(probe);
  expect(md).toContain('| BadNet | RVPT | 3 | 8.52 (71.55) | 8.52 [4.00, 30.10] | -4.98 [-13.43, -1.48] | 1 of 3 |');
  expect(md).toContain('| BadNet | RVPT | 1 | 4.00 (83.50) | -1.48 |');
  const fig = seedFigure(probe);
  const [trace] = fig.data as { name: string; y: number[]; marker: { size: number[]; symbol: string } }[];
  expect(trace.name).toBe('BadNet, RVPT');
  expect(trace.y).toEqual([8.52, 4, 30.1]);
  expect(trace.marker.size).toEqual([13, 8, 8]); // the tables' seed drawn larger
  expect(trace.marker.symbol).toBe('circle');
  expect(median([3, 1, 2, 10])).toBe(2.5);
  expect(() => median([])).toThrow(/empty/);
  // The clean-to-target floor gets its column only where every run measured it (older results lack it).
  const withFloor: SeedProbe = { ...probe, rows: probe.rows.map((r, i) => ({ ...r, metrics: { ...r.metrics, cleanToTarget: 4.19 + i } })) };
  expect(seedRows(withFloor).header.at(-1)).toBe('clean images to the target (the ASR floor)');
  expect(seedRows(withFloor).rows[1]).toEqual(['BadNet', 'RVPT', '1', '4.00 (83.50)', '-1.48', '5.19']);
  const partly: SeedProbe = { ...withFloor, rows: [probe.rows[0], ...withFloor.rows.slice(1)] };
  expect(seedRows(partly).header).toEqual(seedRows(probe).header);
});

test('a profile whose backdoored models come from a weights file, a repeated seed or another method is refused', async () => {
  const toy = getProfile(path.join(__dirname, '..', '..', 'test', 'fixtures', 'paper-toy', 'profile.json'));
  await expect(runSeedProbe(toy, { attacks: ['BadNet'] })).rejects.toThrow(/profile 'paper-toy' takes its backdoored models from a weights file/);
  await expect(runSeedProbe(getProfile('tiny'), { attacks: ['BadNet'], seeds: [1, 1] })).rejects.toThrow(/repeat a seed/);
  await expect(runSeedProbe(getProfile('tiny'), { attacks: ['BadNet'], seeds: [1], methods: ['CleanCLIP'] })).rejects.toThrow(/method 'CleanCLIP' is not one of VPT, RVPT/);
});

test('the seed reaches the run: another seed tunes on other shots, the tables’ seed is the tables’ cell, and a second run only reads the caches', async () => {
  const profile = cutDownTiny('seed-test', { RVPT: { epochs: 4, batch: 10, warmupEpochs: 0 }, VPT: { epochs: 4, batch: 10, warmupEpochs: 0 } }, 2);
  const cache = freshCacheSharingData('rvpt-seed-');
  const first = await runSeedProbe(profile, { attacks: ['BadNet'], seeds: [0, 5], methods: ['RVPT'] });
  expect(first.path).toBe(path.join(cache, 'results', 'seed-test', 'seed-probe.json'));
  const written = JSON.parse(fs.readFileSync(first.path, 'utf8')) as SeedProbe;
  expect(written.rows.map((r) => [r.attack, r.method, r.seed])).toEqual([['BadNet', 'RVPT', 0], ['BadNet', 'RVPT', 5]]);
  expect(written.rows[0].noDefense).toEqual(written.rows[1].noDefense); // one backdoored model
  expect(fs.readFileSync(first.path.replace(/json$/, 'md'), 'utf8')).toContain('| BadNet | RVPT | 0 (tables) |');
  // The seed-0 row is the unchanged profile's cell (the tables'), read from its cache; seed 5 trained on other shots.
  const [table, other] = await Promise.all([runCell(profile, 'BadNet', 'RVPT', 'fashion-mnist', ['fashion-mnist']), runCell(seedProfile(profile, 'RVPT', 5), 'BadNet', 'RVPT', 'fashion-mnist', ['fashion-mnist'])]);
  expect(written.rows[0].metrics).toEqual(table.metrics['fashion-mnist']);
  expect(written.rows[1].metrics).toEqual(other.metrics['fashion-mnist']);
  expect([table.seed, other.seed]).toEqual([0, 5]);
  expect(other.history.loss).not.toEqual(table.history.loss);
  expect(other.config.seed).toBe(5);
  const again = await runSeedProbe(profile, { attacks: ['BadNet'], seeds: [0, 5], methods: ['RVPT'] });
  expect(again.probe.rows).toEqual(written.rows);
  expect(again.probe.provenance.seconds).toBeLessThan(first.probe.provenance.seconds);
  expect(first.probe.provenance.trainingSeconds).toBeGreaterThan(0); // the runs' own time, from their cache entries
  expect(again.probe.provenance.trainingSeconds).toBe(first.probe.provenance.trainingSeconds);
  // With the tables' shots at every seed: its own file and cells, seed 5 keeps seed 0's shots but not its run.
  const fixed = await runSeedProbe(profile, { attacks: ['BadNet'], seeds: [0, 5], methods: ['RVPT'], fixedShots: true });
  expect(fixed.path).toBe(path.join(cache, 'results', 'seed-test', 'seed-probe-fixed-shots.json'));
  expect(fixed.probe.fixedShots).toBe(true);
  expect(fixed.probe.rows[0]).toEqual(written.rows[0]); // the tables' cell either way
  const fixedCell = await runCell(seedProfile(profile, 'RVPT', 5, true), 'BadNet', 'RVPT', 'fashion-mnist', ['fashion-mnist']);
  expect(fixedCell.config).toMatchObject({ seed: 5, shotsSeed: 0 });
  expect(fixedCell.history.loss).not.toEqual(table.history.loss);
  expect(fixedCell.history.loss).not.toEqual(other.history.loss);
}, 300000);

test.each([[undefined, false], ['fixed-shots', true]])('the committed probe (%s) holds every attack, method and seed, and its tables’-seed rows are Table 1’s cells', (variant, fixedShots) => {
  const p = committedSeedProbe(variant);
  expect(p.provenance.profile).toBe('small');
  expect(p.fixedShots ?? false).toBe(fixedShots);
  expect(p.tableSeed).toBe(0);
  const attacks = seedProbeAttacks(getProfile('small'));
  expect(p.rows.map((r) => [r.attack, r.method, r.seed])).toEqual(attacks.flatMap((a) => SEED_PROBE_METHODS.flatMap((m) => SEED_PROBE_SEEDS.map((s) => [a, m, s]))));
  const t = readJsonFile<{ datasets: Record<string, Record<string, Record<string, { asr: number; ca: number }>>> }>(path.join(__dirname, '..', 'results', 'in-domain', 'table1.json'), 'table1').datasets['fashion-mnist'];
  for (const r of p.rows) {
    expect({ asr: r.noDefense.asr, ca: r.noDefense.ca }).toEqual({ asr: t['No defense'][r.attack].asr, ca: t['No defense'][r.attack].ca });
    if (r.seed === p.tableSeed) expect({ asr: r.metrics.asr, ca: r.metrics.ca }).toEqual({ asr: t[r.method][r.attack].asr, ca: t[r.method][r.attack].ca });
  }
  expect(() => committedSeedProbe(undefined, '/nonexistent/seed-probe.json')).toThrow(/seed-probe\.json does not exist\. Write it with `make -C research seed-probe`/);
});

test('the committed 1,600-step probe holds RVPT at every attack and seed on Table 1’s rebuilt models, and notebook 03’s reading of it holds', () => {
  const p = committedSeedProbe('budget-16');
  const small = getProfile('small');
  expect([p.provenance.profile, p.dataset, p.budget, p.tableSeed]).toEqual(['small', 'fashion-mnist', 16, 0]);
  expect((p.provenance.config as { defenses: { RVPT: { epochs: number } } }).defenses.RVPT.epochs).toBe(16 * (small.defenses.RVPT.epochs as number));
  const attacks = seedProbeAttacks(small);
  expect(p.rows.map((r) => [r.attack, r.method, r.seed])).toEqual(attacks.flatMap((a) => SEED_PROBE_SEEDS.map((s) => [a, 'RVPT', s])));
  expect(p.rows.some((r) => isTableRow(p, r))).toBe(false); // 16 times the steps: no row is a table's cell
  // The backdoored models were made afresh for this probe: the same bits give Table 1's undefended numbers exactly.
  const t = readJsonFile<{ datasets: Record<string, Record<string, Record<string, { asr: number; ca: number }>>> }>(path.join(__dirname, '..', 'results', 'in-domain', 'table1.json'), 'table1').datasets['fashion-mnist'];
  for (const r of p.rows) expect({ asr: r.noDefense.asr, ca: r.noDefense.ca }).toEqual({ asr: t['No defense'][r.attack].asr, ca: t['No defense'][r.attack].ca });
  // What the notebook says: CA 8.9-14.5 points down in every run, none in the target, BadCLIP down and TrojVQA up.
  const change = p.rows.map((r) => r.metrics.ca - r.noDefense.ca);
  expect([Math.min(...change), Math.max(...change)].map((x) => +x.toFixed(1))).toEqual([-14.5, -8.9]);
  const now = seedSummaries(p);
  const before = seedSummaries(committedSeedProbe()).filter((s) => s.method === 'RVPT');
  expect(now.map((s) => s.meetTarget)).toEqual(attacks.map(() => 0));
  const asrMedian = (ss: typeof now, a: string) => ss.find((s) => s.attack === a)!.asr.median;
  expect(asrMedian(now, 'BadCLIP')).toBeLessThan(asrMedian(before, 'BadCLIP') - 20);
  expect(asrMedian(now, 'TrojVQA')).toBeGreaterThan(asrMedian(before, 'TrojVQA') + 40);
});

test('the committed ln_post probe holds RVPT at every attack and seed on the tables’ models, with its own cells', () => {
  const p = committedSeedProbe('fr-ln-post');
  const base = committedSeedProbe();
  expect([p.provenance.profile, p.frToken, p.tableSeed]).toEqual(['small', 'ln_post', 0]);
  const attacks = seedProbeAttacks(getProfile('small'));
  expect(p.rows.map((r) => [r.attack, r.method, r.seed])).toEqual(attacks.flatMap((a) => SEED_PROBE_SEEDS.map((s) => [a, 'RVPT', s])));
  expect(p.rows.some((r) => isTableRow(p, r))).toBe(false);
  const rvpt = base.rows.filter((r) => r.method === 'RVPT');
  p.rows.forEach((r, i) => {
    expect(r.noDefense).toEqual(rvpt[i].noDefense); // the same backdoored models
    expect(r.metrics).not.toEqual(rvpt[i].metrics); // its own runs, not the residual cells read again
  });
  // Paired by seed: one row per attack, five seeds each, each change within the two probes' own numbers.
  const paired = pairedSeedRows(base, p);
  expect(paired.rows.map((r) => [r[0], r[1], r[2]])).toEqual(attacks.map((a) => [a, 'RVPT', '5']));
  const bad = p.rows.filter((r) => r.attack === 'BadCLIP').map((r, i) => r.metrics.asr - rvpt.filter((x) => x.attack === 'BadCLIP')[i].metrics.asr);
  expect(paired.rows[5][3]).toBe(`${signedText(median(bad), 2)} [${signedText(Math.min(...bad), 2)}, ${signedText(Math.max(...bad), 2)}]`);
  expect(() => pairedSeedRows(base, { ...p, rows: p.rows.map((r) => ({ ...r, seed: r.seed + 10 })) })).toThrow(/share no attack, method and seed/);
});
