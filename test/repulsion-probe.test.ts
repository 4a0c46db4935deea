/**
 * The repulsion probe (repulsionProbe.ts): RVPT at several alphas on each profile's tables' backdoored models, VPT as
 * alpha 0; the rows are computed from those cells, never typed in. End to end at a cut-down tiny profile: what is
 * tested is the plumbing and the numbers' consistency, not the finding.
 */
import * as fs from 'fs';
import * as path from 'path';
import { getProfile } from '../src/experiments/profiles';
import { cellFile } from '../src/experiments/defenseRun';
import { REPULSION_ALPHAS, RepulsionProbe, committedRepulsionProbe, repulsionFigure, repulsionMarkdown, repulsionProfile, repulsionRows, runRepulsionProbe } from '../src/experiments/repulsionProbe';
import { readJsonFile } from '../src/util/fsutil';
import { targetRegion } from '../src/experiments/probeFiles';
import { HAND_PROVENANCE, cellMetrics, cutDownTiny, freshCacheSharingData, restoreCacheAfterAll, setup } from './helpers';

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
  const toy = getProfile(path.join(__dirname, 'fixtures', 'paper-toy', 'profile.json'));
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

test('the committed probe holds both widths’ curves, and its alpha-2 and VPT points are the tables’ cells', () => {
  const p = committedRepulsionProbe();
  expect(p.provenance.profile).toBe('small');
  const tables: Record<string, string> = { small: 'table1.json', wide: path.join('wide', 'table1.json') };
  expect([...new Set(p.rows.map((r) => `${r.profile} ${r.width}`))]).toEqual(['small 64', 'wide 128']);
  for (const profile of Object.keys(tables)) {
    const rows = p.rows.filter((r) => r.profile === profile);
    const attacks = [...new Set(rows.map((r) => r.attack))];
    expect(attacks).toEqual(['BadNet', 'Blended', 'BadCLIP']);
    expect(rows.map((r) => [r.attack, r.alpha])).toEqual(attacks.flatMap((a) => [0, ...REPULSION_ALPHAS].map((alpha) => [a, alpha])));
    const t = readJsonFile<{ datasets: Record<string, Record<string, Record<string, { asr: number; ca: number }>>> }>(path.join(__dirname, '..', 'figures', tables[profile]), 'table1').datasets['fashion-mnist'];
    for (const r of rows) {
      expect({ asr: r.noDefense.asr, ca: r.noDefense.ca }).toEqual({ asr: t['No defense'][r.attack].asr, ca: t['No defense'][r.attack].ca });
      const m = r.alpha === 0 ? 'VPT' : r.alpha === 2 ? 'RVPT' : null;
      if (m) expect({ asr: r.metrics.asr, ca: r.metrics.ca }).toEqual({ asr: t[m][r.attack].asr, ca: t[m][r.attack].ca });
      expect(r.finalFR).toBeGreaterThan(0);
    }
  }
  expect(() => committedRepulsionProbe(undefined, '/nonexistent/repulsion-probe.json')).toThrow(/repulsion-probe\.json does not exist\. Write it with `make repulsion-probe`/);
});

test('the committed emoji probe holds Table 2’s three attacks at small, and its alpha-2 and VPT points are Table 2’s cells', () => {
  const p = committedRepulsionProbe('emoji');
  expect(p.dataset).toBe('emoji');
  expect(p.provenance.profile).toBe('small');
  const alphas = (p.provenance.config as { alphas: number[] }).alphas;
  expect(alphas).toContain(2);
  expect(p.rows.map((r) => [r.profile, r.attack, r.alpha])).toEqual(['BadNet', 'Blended', 'WaNet'].flatMap((a) => [0, ...alphas].map((alpha) => ['small', a, alpha])));
  const t = readJsonFile<{ datasets: Record<string, Record<string, Record<string, { asr: number; ca: number }>>> }>(path.join(__dirname, '..', 'figures', 'table2.json'), 'table2').datasets.emoji;
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
}, 300000);
