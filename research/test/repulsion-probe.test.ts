/**
 * The repulsion probe (repulsionProbe.ts): RVPT at several alphas on each profile's tables' backdoored models, VPT as
 * alpha 0; the rows are computed from those cells, never typed in. End to end at a cut-down tiny profile: what is
 * tested is the plumbing and the numbers' consistency, not the finding.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { getProfile } from '../../src/experiments/profiles';
import { cellFile } from '../../src/experiments/defenseRun';
import { REPULSION_ALPHAS, RepulsionProbe, caCostAtAsr, caCostRows, committedRepulsionProbe, committedPretrainCurves, committedScaleCurves, committedWidthCurves, joinRepulsionProbes, repulsionFigure, repulsionMarkdown, repulsionProfile, repulsionRows, runRepulsionProbe, withLayers } from '../src/repulsionProbe';
import { readJsonFile } from '../../src/util/fsutil';
import { committedTuningProbe } from '../src/tuningProbe';
import { committedDepthSeedProbes, committedPretrainSeedProbes, committedSeedProbe, SeedProbe } from '../src/seedProbe';
import { targetRegion } from '../src/probeFiles';
import { HAND_PROVENANCE, cellMetrics, cutDownTiny, freshCacheSharingData, restoreCacheAfterAll, setup } from '../../test/helpers';

beforeAll(setup);
restoreCacheAfterAll();

test('a point sets only RVPT’s alpha, and the profile’s own alpha is the tables’ cell', () => {
  const small = getProfile('small');
  expect(repulsionProfile(small, 2)).toBe(small); // the paper's alpha, the tables' default
  const four = repulsionProfile(small, 4);
  expect(four.defenses.RVPT).toEqual({ ...small.defenses.RVPT, alpha: 4 });
  expect(four.defenses.VPT).toBe(small.defenses.VPT);
  expect(four.defenses.CleanCLIP).toBe(small.defenses.CleanCLIP);
  const key = (p: typeof small) => cellFile(p, 'BadCLIP', 'RVPT', 'fashion-mnist', ['fashion-mnist'], 'ckpt');
  expect(key(four)).not.toBe(key(small));
  expect(key(repulsionProfile(four, 4))).toBe(key(four));
  for (const bad of [0, -1, NaN, Infinity]) expect(() => repulsionProfile(small, bad)).toThrow(/alpha .* must be a positive number/);
});

test('a profile whose backdoored models come from a weights file is refused', async () => {
  const toy = getProfile(path.join(__dirname, '..', '..', 'test', 'fixtures', 'paper-toy', 'profile.json'));
  await expect(runRepulsionProbe([getProfile('tiny'), toy], ['BadNet'])).rejects.toThrow(/profile 'paper-toy' takes its backdoored models from a weights file/);
});

test('rows, markdown and figure follow the measured numbers', () => {
  const m = cellMetrics;
  const nd = m(84.84, 84.98);
  const probe: RepulsionProbe = {
    probe: 'repulsion',
    dataset: 'fashion-mnist',
    rows: [
      { profile: 'small', width: 64, attack: 'BadNet', alpha: 0, metrics: m(23.06, 81.01), noDefense: nd, finalFR: 0.9512 },
      { profile: 'small', width: 64, attack: 'BadNet', alpha: 4, metrics: m(2.79, 64.41), noDefense: nd, finalFR: 0.2331 },
      { profile: 'wide', width: 128, attack: 'BadNet', alpha: 4, metrics: m(4, 74.83), noDefense: m(98.58, 86.5), finalFR: null },
    ],
    provenance: HAND_PROVENANCE,
  };
  const { header, rows } = repulsionRows(probe);
  expect(header).toEqual(['profile (width)', 'attack', 'alpha', 'ASR (CA)', 'CA minus No defense', 'final FR']);
  expect(rows).toEqual([
    ['small (64)', 'BadNet', '0 (VPT)', '23.06 (81.01)', '-3.97', '0.951'],
    ['small (64)', 'BadNet', '4', '2.79 (64.41)', '-20.57', '0.233'],
    ['wide (128)', 'BadNet', '4', '4.00 (74.83)', '-11.67', '–'],
  ]);
  expect(repulsionMarkdown(probe)).toContain('| wide (128) | BadNet | 4 | 4.00 (74.83) | -11.67 | – |');
  const fig = repulsionFigure(probe);
  expect(fig.data.map((d) => d.name)).toEqual(['BadNet, small (width 64)', 'BadNet, wide (width 128)']);
  const [s] = fig.data as { x: number[]; y: number[]; text: string[] }[];
  expect(s.x.map((x) => +x.toFixed(2))).toEqual([-3.97, -20.57]);
  expect(s.y).toEqual([23.06, 2.79]);
  expect(s.text).toEqual(['VPT', 'α4']);
  // The target region: ASR at most 5% and CA at most 2 points down, so it runs from -2 to past the largest CA change.
  expect((fig.layout.shapes as Record<string, number>[])[0]).toMatchObject({ x0: -2, x1: 3, y0: 0, y1: 5 });
  expect(targetRegion([-3, 6.29, null]).shapes[0]).toMatchObject({ x0: -2, x1: 7.29 });
});

test('the CA cost at an ASR level is read off each curve where its ASR first crosses the level', () => {
  const m = cellMetrics;
  const nd = m(90, 85);
  const curve = (profile: string, width: number, attack: string, pts: [number, number, number][]) =>
    pts.map(([alpha, asr, ca]) => ({ profile, width, attack, alpha, metrics: m(asr, ca), noDefense: nd, finalFR: null }));
  const probe: RepulsionProbe = {
    probe: 'repulsion',
    dataset: 'fashion-mnist',
    rows: [
      // Crosses 5% between alpha 2 (15%, -5) and 4 (0%, -20): two thirds of the way, so -15. Rows out of order on purpose.
      ...curve('small', 64, 'BadNet', [[4, 0, 65], [0, 40, 84], [2, 15, 80]]),
      // Not monotone (20%, 9%, 30%, 3%): the first crossing of 5% is between alpha 2 (-3) and 4 (-10).
      ...curve('small', 64, 'Blended', [[0, 20, 84], [1, 9, 83], [2, 30, 82], [4, 3, 75]]),
      // Never reaches 5%: its lowest point is reported instead.
      ...curve('small', 64, 'BadCLIP', [[0, 98, 84], [2, 60, 78], [8, 14, 60]]),
      // VPT already at the level: its own CA change, no interpolation.
      ...curve('wide', 128, 'BadNet', [[0, 4, 86], [2, 1, 84]]),
    ],
    provenance: HAND_PROVENANCE,
  };
  const costs = caCostAtAsr(probe);
  expect(costs.map((c) => [c.profile, c.attack, c.alphas])).toEqual([
    ['small', 'BadNet', [2, 4]],
    ['small', 'Blended', [2, 4]],
    ['small', 'BadCLIP', null],
    ['wide', 'BadNet', [0, 0]],
  ]);
  expect(costs[0].caChange).toBeCloseTo(-15, 9);
  expect(costs[1].caChange).toBeCloseTo(-3 - (25 / 27) * 7, 9);
  expect(costs[2].caChange).toBeNull();
  expect(costs[3].caChange).toBeCloseTo(1, 9);
  expect(costs[2].lowest).toEqual({ alpha: 8, asr: 14, caChange: -25 });
  // At 10% the Blended curve crosses at alpha 0 to 1 instead.
  const at10 = caCostAtAsr(probe, 10)[1];
  expect(at10.alphas).toEqual([0, 1]);
  expect(at10.caChange).toBeCloseTo(-1 - 10 / 11, 9);
  const t = caCostRows(probe);
  expect(t.header).toEqual(['attack', 'small (64): CA change at 5% ASR', 'wide (128): CA change at 5% ASR']);
  expect(t.rows).toEqual([
    ['BadNet', '-15.0 (between α 2 and 4)', '+1.0 (VPT)'],
    ['Blended', '-9.5 (between α 2 and 4)', '–'],
    ['BadCLIP', 'not reached (lowest 14.00% at α 8, -25.0)', '–'],
  ]);
});

test('probes join only within one dataset, and the figure gives each width its own line style', () => {
  const row = (profile: string, width: number) => ({ profile, width, attack: 'BadNet', alpha: 0, metrics: cellMetrics(50, 80), noDefense: cellMetrics(90, 85), finalFR: null });
  const probe = (dataset: string, profile: string, width: number): RepulsionProbe => ({ probe: 'repulsion', dataset, rows: [row(profile, width)], provenance: { ...HAND_PROVENANCE, profile } });
  const joined = joinRepulsionProbes([probe('fashion-mnist', 'small', 64), probe('fashion-mnist', 'wide', 128), probe('fashion-mnist', 'wide256', 256)]);
  expect(joined.rows.map((r) => r.width)).toEqual([64, 128, 256]);
  expect(joined.provenance.profile).toBe('small');
  const fig = repulsionFigure(joined);
  expect((fig.layout.title as { text: string }).text).toContain('image width 64, 128 and 256');
  expect(fig.data.map((d) => (d.line as { dash: string }).dash)).toEqual(['dot', 'solid', 'dash']);
  expect(repulsionMarkdown(joined)).toContain('(image width 64, 128 and 256)');
  expect(() => joinRepulsionProbes([probe('fashion-mnist', 'small', 64), probe('emoji', 'small', 64)])).toThrow(/different datasets \(fashion-mnist, emoji\)/);
  expect(() => joinRepulsionProbes([])).toThrow(/no probes/);
  expect(() => committedWidthCurves('/nonexistent')).toThrow(/wide256\/repulsion-probe\.json does not exist\. Write it with `make -C research repulsion-probe-wide256`/);
});

test('rows carry their tower’s depth: files without it read it from their provenance, and labels name it', () => {
  const row = (profile: string, width: number, layers?: number) => ({ profile, width, ...(layers === undefined ? {} : { layers }), attack: 'BadNet', alpha: 0, metrics: cellMetrics(50, 80), noDefense: cellMetrics(90, 85), finalFR: null });
  const config = { profiles: [{ name: 'small', model: { width: 64, layers: 6 } }, { name: 'deep12', model: { width: 64, layers: 12 } }] };
  const old: RepulsionProbe = { probe: 'repulsion', dataset: 'fashion-mnist', rows: [row('small', 64), row('deep12', 64, 12)], provenance: { ...HAND_PROVENANCE, config } };
  const filled = withLayers(old);
  expect(filled.rows.map((r) => r.layers)).toEqual([6, 12]);
  expect(old.rows[0].layers).toBeUndefined(); // a copy: the probe read is not changed
  expect(repulsionRows(filled).header[0]).toBe('profile (image tower)');
  expect(repulsionRows(filled).rows.map((r) => r[0])).toEqual(['small (64 wide, 6 blocks)', 'deep12 (64 wide, 12 blocks)']);
  const fig = repulsionFigure(filled);
  expect(fig.data.map((d) => d.name)).toEqual(['BadNet, small (width 64, 6 blocks)', 'BadNet, deep12 (width 64, 12 blocks)']);
  expect((fig.layout.title as { text: string }).text).toContain('image width 64, 6 and 12 blocks');
  expect(caCostRows(filled).header).toEqual(['attack', 'small (64 wide, 6 blocks): CA change at 5% ASR', 'deep12 (64 wide, 12 blocks): CA change at 5% ASR']);
  // Widths at one depth, and both varying.
  const widths = withLayers({ ...old, rows: [row('small', 64, 6), row('wide', 128, 6)] });
  expect(repulsionMarkdown(widths)).toContain('(image width 64 and 128, 6 blocks)');
  expect(repulsionMarkdown({ ...old, rows: [row('wide', 128, 6), row('deep12', 64, 12)] })).toContain('(image towers 128 wide x 6 blocks and 64 wide x 12 blocks)');
  // A row whose profile the provenance does not record cannot be filled in.
  expect(() => withLayers({ ...old, rows: [row('other', 64)] })).toThrow(/profile 'other' has no 'layers'.*rvpt-lab repulsion-probe/);
  expect(() => committedScaleCurves('/nonexistent')).toThrow(/repulsion-probe\.json does not exist\. Write it with `make -C research repulsion-probe`/);
});

test('the committed probe holds both widths’ curves, and its alpha-2 and VPT points are the tables’ cells', () => {
  const p = committedRepulsionProbe();
  expect(p.provenance.profile).toBe('small');
  const tables: Record<string, string> = { small: path.join('results', 'in-domain', 'table1.json'), wide: path.join('results', 'wide', 'table1.json') };
  expect([...new Set(p.rows.map((r) => `${r.profile} ${r.width}`))]).toEqual(['small 64', 'wide 128']);
  for (const profile of Object.keys(tables)) {
    const rows = p.rows.filter((r) => r.profile === profile);
    const attacks = [...new Set(rows.map((r) => r.attack))];
    expect(attacks).toEqual(['BadNet', 'Blended', 'BadCLIP']);
    expect(rows.map((r) => [r.attack, r.alpha])).toEqual(attacks.flatMap((a) => [0, ...REPULSION_ALPHAS].map((alpha) => [a, alpha])));
    const t = readJsonFile<{ datasets: Record<string, Record<string, Record<string, { asr: number; ca: number }>>> }>(path.join(__dirname, '..', tables[profile]), 'table1').datasets['fashion-mnist'];
    for (const r of rows) {
      expect({ asr: r.noDefense.asr, ca: r.noDefense.ca }).toEqual({ asr: t['No defense'][r.attack].asr, ca: t['No defense'][r.attack].ca });
      const m = r.alpha === 0 ? 'VPT' : r.alpha === 2 ? 'RVPT' : null;
      if (m) expect({ asr: r.metrics.asr, ca: r.metrics.ca }).toEqual({ asr: t[m][r.attack].asr, ca: t[m][r.attack].ca });
      expect(r.finalFR).toBeGreaterThan(0);
    }
  }
  expect(() => committedRepulsionProbe(undefined, '/nonexistent/repulsion-probe.json')).toThrow(/repulsion-probe\.json does not exist\. Write it with `make -C research repulsion-probe`/);
});

test('the committed width-256 curve holds the probe’s three attacks at every alpha on one backdoored model each, beside the two narrower widths', () => {
  const all = committedWidthCurves();
  expect([...new Set(all.rows.map((r) => `${r.profile} ${r.width}`))]).toEqual(['small 64', 'wide 128', 'wide256 256']);
  const rows = all.rows.filter((r) => r.width === 256);
  const attacks = ['BadNet', 'Blended', 'BadCLIP'];
  expect(rows.map((r) => [r.attack, r.alpha])).toEqual(attacks.flatMap((a) => [0, ...REPULSION_ALPHAS].map((alpha) => [a, alpha])));
  for (const a of attacks) {
    const curve = rows.filter((r) => r.attack === a);
    for (const r of curve) expect(r.noDefense).toEqual(curve[0].noDefense);
    // The backdoor took, and the VPT point starts the curve with FR near 1.
    expect(curve[0].noDefense.asr).toBeGreaterThan(90);
    expect(curve[0].finalFR!).toBeGreaterThan(0.95);
  }
  // The summary is read off the committed rows: each curve's lowest point is its measured minimum, and an interpolated
  // cost lies within the curve's measured CA changes.
  const costs = caCostAtAsr(all);
  expect(costs).toHaveLength(9);
  for (const c of costs) {
    const curve = all.rows.filter((r) => r.profile === c.profile && r.attack === c.attack);
    expect(c.lowest.asr).toBe(Math.min(...curve.map((r) => r.metrics.asr)));
    const changes = curve.map((r) => r.metrics.ca - r.noDefense.ca);
    if (c.caChange !== null) {
      expect(c.caChange).toBeLessThanOrEqual(Math.max(...changes) + 1e-9);
      expect(c.caChange).toBeGreaterThanOrEqual(Math.min(...changes) - 1e-9);
    }
  }
});

/** Each profile's committed curve (VPT and alpha 1-8 per attack) agrees with its seed probe's seed 0. */
function expectCurvesMatchSeedProbes(all: RepulsionProbe, profiles: string[], seedProbes: { probe: SeedProbe }[], minNoDefenseAsr: number) {
  const attacks = ['BadNet', 'Blended', 'BadCLIP'];
  expect(seedProbes[0].probe).toEqual(committedSeedProbe());
  for (const [i, profile] of profiles.entries()) {
    const rows = all.rows.filter((r) => r.profile === profile);
    expect(rows.map((r) => [r.attack, r.alpha])).toEqual(attacks.flatMap((a) => [0, ...REPULSION_ALPHAS].map((alpha) => [a, alpha])));
    const seeds = seedProbes[i + 1].probe;
    expect(seeds.provenance.profile).toBe(profile);
    expect([...new Set(seeds.rows.map((r) => r.seed))]).toEqual([0, 1, 2, 3, 4]);
    for (const a of attacks) {
      const curve = rows.filter((r) => r.attack === a);
      for (const r of curve) expect(r.noDefense).toEqual(curve[0].noDefense);
      expect(curve[0].noDefense.asr).toBeGreaterThan(minNoDefenseAsr); // the backdoor took
      // A larger alpha repels further: the final FR falls from VPT to alpha 8.
      expect(curve[curve.length - 1].finalFR!).toBeLessThan(curve[0].finalFR!);
      for (const [method, alpha] of [['VPT', 0], ['RVPT', 2]] as const) {
        const s0 = seeds.rows.find((r) => r.attack === a && r.method === method && r.seed === 0)!;
        expect(s0.metrics).toEqual(curve.find((r) => r.alpha === alpha)!.metrics);
        expect(s0.noDefense).toEqual(curve[0].noDefense);
      }
    }
  }
}

test('the committed twelve-block curves sit beside the six-block ones, and their seed probes’ seed 0 is the curve’s VPT and alpha-2 cell', () => {
  const all = committedScaleCurves();
  expect([...new Set(all.rows.map((r) => `${r.profile} ${r.width}x${r.layers}`))]).toEqual(['small 64x6', 'wide 128x6', 'wide256 256x6', 'deep12 64x12', 'wide-deep12 128x12']);
  const seedProbes = committedDepthSeedProbes();
  // The seed probes are labelled by their profiles' towers, which are the curves' own.
  expect(seedProbes.map((e) => e.model)).toEqual(['small (64 wide, 6 blocks)', 'deep12 (64 wide, 12 blocks)', 'wide-deep12 (128 wide, 12 blocks)']);
  expectCurvesMatchSeedProbes(all, ['deep12', 'wide-deep12'], seedProbes, 90);
});

test('the committed pre-training probes are small’s tower pre-trained on a quarter of the data or four times as long, and their seed probes’ seed 0 is the curve’s cell', () => {
  const all = committedPretrainCurves();
  expect([...new Set(all.rows.map((r) => `${r.profile} ${r.width}x${r.layers}`))]).toEqual(['small 64x6', 'wide 128x6', 'pretrain-15k 64x6', 'pretrain-4000 64x6']);
  const seedProbes = committedPretrainSeedProbes();
  expect(seedProbes.map((e) => e.model)).toEqual(['small (64 wide, 6 blocks)', 'pretrain-15k (64 wide, 6 blocks)', 'pretrain-4000 (64 wide, 6 blocks)']);
  // BadNet takes less on a quarter of the data (80.4%; small's own BadNet: 84.8%), the rest above 92%.
  expectCurvesMatchSeedProbes(all, ['pretrain-15k', 'pretrain-4000'], seedProbes, 75);
  for (const [name, pretrain] of [['pretrain-15k', { steps: 1000, mainLimit: 15000 }], ['pretrain-4000', { steps: 4000, mainLimit: null }]] as const) {
    const p = committedRepulsionProbe(undefined, path.join(__dirname, '..', 'results', name, 'repulsion-probe.json')).provenance;
    // The curve records the pre-training it probes.
    expect((p.config as { profiles: { name: string; pretrain: unknown }[] }).profiles.find((x) => x.name === name)!.pretrain).toMatchObject(pretrain);
    // Rewritten from the cache in a second, the file still records what its 15 defense runs' tuning cost (about 2 min).
    expect(p.trainingSeconds).toBeGreaterThan(60);
    expect(p.trainingSeconds).toBeGreaterThan(10 * p.seconds);
  }
});

test('a missing scale curve or seed probe names its make target', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-scale-'));
  const results = path.join(root, 'research', 'results');
  fs.mkdirSync(results, { recursive: true });
  fs.copyFileSync(path.join(__dirname, '..', 'results', 'repulsion-probe.json'), path.join(results, 'repulsion-probe.json'));
  expect(() => committedScaleCurves(root)).toThrow(/wide256[/\\]repulsion-probe\.json does not exist\. Write it with `make -C research repulsion-probe-wide256` \(research\/Makefile lists/);
  fs.mkdirSync(path.join(root, 'research', 'profiles'));
  for (const n of ['deep12', 'wide-deep12']) fs.copyFileSync(path.join(__dirname, '..', 'profiles', `${n}.json`), path.join(root, 'research', 'profiles', `${n}.json`));
  fs.copyFileSync(path.join(__dirname, '..', 'results', 'seed-probe.json'), path.join(results, 'seed-probe.json'));
  expect(() => committedDepthSeedProbes(root)).toThrow(/Seed probe of deep12: .*deep12[/\\]seed-probe\.json does not exist\. Write it with `make -C research repulsion-probe-deep12`/);
  fs.rmSync(root, { recursive: true, force: true });
});

test('the committed width-256 budget runs defend the curve’s BadNet model, at 4 times its 100 steps', () => {
  const curve = committedWidthCurves().rows.filter((r) => r.width === 256 && r.attack === 'BadNet');
  const p = committedTuningProbe(path.join(__dirname, '..', 'results', 'wide256', 'tuning-probe-budget.json'), 'tuning-probe-budget');
  expect(p.provenance.profile).toBe('wide256');
  expect(p.rows.map((r) => [r.attack, r.shots, r.augment, r.budget, r.steps])).toEqual([
    ['BadNet', 16, true, 4, 400],
    ['BadNet', 16, false, 4, 400],
  ]);
  for (const r of p.rows) expect(r.metrics['No defense']).toEqual(curve[0].noDefense);
  // With augmentation the longer run repels further than the curve's 100-step alpha-2 point.
  const alpha2 = curve.find((r) => r.alpha === 2)!;
  expect(p.rows[0].finalFR.RVPT!).toBeLessThan(alpha2.finalFR!);
});

test('the committed emoji probe holds Table 2’s three attacks at small, and its alpha-2 and VPT points are Table 2’s cells', () => {
  const p = committedRepulsionProbe('emoji');
  expect(p.dataset).toBe('emoji');
  expect(p.provenance.profile).toBe('small');
  const alphas = (p.provenance.config as { alphas: number[] }).alphas;
  expect(alphas).toContain(2);
  expect(p.rows.map((r) => [r.profile, r.attack, r.alpha])).toEqual(['BadNet', 'Blended', 'WaNet'].flatMap((a) => [0, ...alphas].map((alpha) => ['small', a, alpha])));
  const t = readJsonFile<{ datasets: Record<string, Record<string, Record<string, { asr: number; ca: number }>>> }>(path.join(__dirname, '..', 'results', 'in-domain', 'table2.json'), 'table2').datasets.emoji;
  for (const r of p.rows) {
    expect({ asr: r.noDefense.asr, ca: r.noDefense.ca }).toEqual({ asr: t['No defense'][r.attack].asr, ca: t['No defense'][r.attack].ca });
    const m = r.alpha === 0 ? 'VPT' : r.alpha === 2 ? 'RVPT' : null;
    if (m) expect({ asr: r.metrics.asr, ca: r.metrics.ca }).toEqual({ asr: t[m][r.attack].asr, ca: t[m][r.attack].ca });
  }
});

test('the probe defends each alpha on the one backdoored model, a larger alpha repels more, and a second run only reads the caches', async () => {
  const profile = cutDownTiny('repulsion-test', { RVPT: { epochs: 6, batch: 10, warmupEpochs: 0 }, VPT: { epochs: 6, batch: 10, warmupEpochs: 0 } }, 2);
  const cache = freshCacheSharingData('rvpt-repulsion-');
  const first = await runRepulsionProbe([profile], ['Blended'], [1, 8]);
  expect(first.path).toBe(path.join(cache, 'results', 'repulsion-test', 'repulsion-probe.json'));
  const written = JSON.parse(fs.readFileSync(first.path, 'utf8')) as RepulsionProbe;
  expect(written.rows.map((r) => [r.profile, r.width, r.attack, r.alpha])).toEqual([0, 1, 8].map((a) => ['repulsion-test', profile.model.width, 'Blended', a]));
  expect(written.provenance.profile).toBe('repulsion-test');
  expect(fs.readFileSync(first.path.replace(/json$/, 'md'), 'utf8')).toContain('| repulsion-test (');
  const [vpt, one, eight] = written.rows;
  expect(one.noDefense).toEqual(vpt.noDefense); // one backdoored model
  expect(eight.noDefense).toEqual(vpt.noDefense);
  // The FR term is the cosine to the frozen class tokens: VPT leaves it near 1, and more weight on it pushes it lower.
  expect(vpt.finalFR!).toBeGreaterThan(one.finalFR!);
  expect(one.finalFR!).toBeGreaterThan(eight.finalFR!);
  const again = await runRepulsionProbe([profile], ['Blended'], [1, 8]);
  expect(again.probe.rows).toEqual(written.rows);
  expect(again.probe.provenance.seconds).toBeLessThan(first.probe.provenance.seconds);
  // The runs' own training time is read from their cache entries, so a regeneration from the cache still records it.
  expect(first.probe.provenance.trainingSeconds).toBeGreaterThan(0);
  expect(again.probe.provenance.trainingSeconds).toBe(first.probe.provenance.trainingSeconds);
  expect(fs.readFileSync(again.path.replace(/json$/, 'md'), 'utf8')).toMatch(/ s \(the defense runs' tuning: \d+ s in all\)\./);
}, 300000);
