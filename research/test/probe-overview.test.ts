/**
 * The overview of every RVPT run (probeOverview.ts): read from result files, each run judged against its own
 * undefended model, counted once across files, and the two nearest approaches to the target picked. Hand-made files
 * test the reading and the judging; the committed figures/ test that every committed file is read and what notebook
 * 03's last section says of them.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RvptRun, caChangeOf, committedRvptRuns, distinctRuns, meetsTarget, overviewByAttack, overviewBySource, rangeVerdicts, summariseRuns } from '../src/probeOverview';
import { writeJsonAtomic } from '../../src/util/fsutil';
import { HAND_PROVENANCE } from '../../test/helpers';

const m = (asr: number, ca: number) => ({ asr, ca, asrAll: asr, poisonedAccuracy: 0, n: 100 });
const run = (asr: number, ca: number, setting = 's', attack = 'BadNet'): RvptRun => ({ source: 'f', profile: 'small', dataset: 'd', attack, setting, asr, ca, noDefense: { asr: 90, ca: 80 } });

test('the target is ASR at most 5% and CA at most 2 points down, both ends included', () => {
  expect(meetsTarget(run(5, 78))).toBe(true);
  expect(meetsTarget(run(5.01, 78))).toBe(false);
  expect(meetsTarget(run(0, 77.99))).toBe(false);
  expect(meetsTarget(run(0, 85))).toBe(true);
  expect(caChangeOf(run(1, 77.5))).toBeCloseTo(-2.5, 10);
  // Two-decimal CAs whose float difference falls just past -2 are on the edge, so inside.
  expect(14.01 - 16.01).toBeLessThan(-2);
  expect(meetsTarget({ ...run(4, 14.01), noDefense: { asr: 90, ca: 16.01 } })).toBe(true);
  expect(meetsTarget({ ...run(4, 14), noDefense: { asr: 90, ca: 16.01 } })).toBe(false);
});

test('the summary picks the lowest ASR within the CA budget and the most CA at 5% ASR or less', () => {
  const runs = [run(40, 79, 'a'), run(20, 78.5, 'b'), run(4, 70, 'c'), run(1, 60, 'd'), run(6, 79.5, 'e')];
  const s = summariseRuns(runs);
  expect([s.runs, s.meeting]).toEqual([5, 0]);
  expect(s.lowestAsrInCaBudget?.setting).toBe('e');
  expect(s.mostCaAtTargetAsr?.setting).toBe('c');
  const none = summariseRuns([run(40, 70)]);
  expect([none.lowestAsrInCaBudget, none.mostCaAtTargetAsr]).toEqual([null, null]);
  expect(summariseRuns([...runs, run(3, 79, 'f')]).meeting).toBe(1);
});

describe('reading a figures folder', () => {
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-overview-'));
    const fig = (name: string, v: unknown) => writeJsonAtomic(path.join(root, 'research', 'results', 'in-domain', `${name}.json`), v);
    fig('table1', { table: 'table1', provenance: HAND_PROVENANCE, datasets: { fm: { 'No defense': { BadNet: m(90, 80), Blended: m(95, 81) }, VPT: { BadNet: m(30, 79) }, RVPT: { BadNet: m(8, 72), Blended: m(50, 74) } } } });
    // The tables' BadNet cell again as the α 2 point, α 0 (VPT) left out, and a run in the target at α 1.
    fig('repulsion-probe', { probe: 'repulsion', dataset: 'fm', provenance: HAND_PROVENANCE, rows: [
      { profile: 'small', width: 64, attack: 'BadNet', alpha: 0, metrics: m(30, 79), noDefense: m(90, 80), finalFR: 0.9 },
      { profile: 'small', width: 64, attack: 'BadNet', alpha: 1, metrics: m(4, 78.5), noDefense: m(90, 80), finalFR: 0.7 },
      { profile: 'small', width: 64, attack: 'BadNet', alpha: 2, metrics: m(8, 72), noDefense: m(90, 80), finalFR: 0.5 },
    ] });
    fig('deep/seed-probe', { probe: 'seed', dataset: 'fm', tableSeed: 0, frLayers: [5], provenance: { ...HAND_PROVENANCE, profile: 'deep' }, rows: [
      { attack: 'Blended', method: 'VPT', seed: 1, metrics: m(70, 80), noDefense: m(95, 81) },
      { attack: 'Blended', method: 'RVPT', seed: 1, metrics: m(30, 79.5), noDefense: m(95, 81) },
    ] });
    fig('strength-probe', { probe: 'backdoor strength', dataset: 'fm', provenance: HAND_PROVENANCE, rows: [
      { attack: 'BadCLIP', rate: 0.2, lr: 2e-5, augment: true, poisoned: 10, shift: 0.01, cleanCA: 80, metrics: { 'No defense': m(60, 82), VPT: m(40, 80), RVPT: m(3, 74) }, rvptFinalFR: 0.5, backdoorCheckpoint: 'x' },
    ] });
    fig('attribute-probe', { probe: 'attributes', dataset: 'fm', models: [], provenance: HAND_PROVENANCE, rows: [
      { attack: 'BadNet', method: 'RVPT', profile: 'attr', seeds: 5, noDefense: { asr: 90, ca: 80 }, asrMedian: 6, caChangeMedian: -5, asr: [4, 9], caChange: [-7, -3] },
      { attack: 'Blended', method: 'RVPT', profile: 'attr', seeds: 5, noDefense: { asr: 90, ca: 80 }, asrMedian: 6, caChangeMedian: -2, asr: [4, 9], caChange: [-3, 1] },
      { attack: 'Blended', method: 'VPT', profile: 'attr', seeds: 5, noDefense: { asr: 90, ca: 80 }, asrMedian: 60, caChangeMedian: -2, asr: [50, 70], caChange: [-3, 1] },
    ] });
    fig('fig4-pr', { figure: 'fig4', provenance: HAND_PROVENANCE });
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  test('every RVPT run is read with its setting and its own undefended model; VPT rows are not RVPT runs', () => {
    const o = committedRvptRuns(root);
    expect(o.runs.map((r) => `${r.source}|${r.profile}|${r.attack}|${r.setting}|${r.asr}`)).toEqual([
      'deep/seed-probe|deep|Blended|seed 1, FR at blocks 6|30',
      'repulsion-probe|small|BadNet|α 1|4',
      'repulsion-probe|small|BadNet|α 2|8',
      'strength-probe|small|BadCLIP|backdoor: 20% poisoned, lr 0.00002, crop+flip|3',
      'table1|small|BadNet|the tables\' cell|8',
      'table1|small|Blended|the tables\' cell|50',
    ]);
    expect(o.runs.find((r) => r.attack === 'BadCLIP')?.noDefense.ca).toBe(82);
    expect(o.ranges.map((r) => r.attack)).toEqual(['BadNet', 'Blended']);
    expect(o.skipped).toEqual([{ source: 'fig4-pr', why: 'not a defense result' }]);
  });

  test('a run in several files counts once, and the tables come first', () => {
    const o = committedRvptRuns(root);
    expect(distinctRuns(o.runs)).toHaveLength(5);
    const bySource = overviewBySource(o);
    expect(bySource.rows.map((r) => r[0])).toEqual(['table1', 'deep/seed-probe', 'repulsion-probe', 'strength-probe']);
    expect(bySource.rows[2].slice(2)).toEqual(['2', '1', '4.00% (CA -1.50 points): BadNet, α 1', '4.00% (CA -1.50 points): BadNet, α 1']);
    const byAttack = overviewByAttack(o);
    expect(byAttack.rows.map((r) => r.slice(0, 4))).toEqual([['fm', 'BadNet', '2', '1'], ['fm', 'Blended', '2', '0'], ['fm', 'BadCLIP', '1', '0']]);
    expect(byAttack.rows[2][5]).toBe('3.00% (CA -8.00 points): small, backdoor: 20% poisoned, lr 0.00002, crop+flip (strength-probe)');
    expect(byAttack.rows[1][4]).toBe('30.00% (CA -1.50 points): deep, seed 1, FR at blocks 6 (deep/seed-probe)');
  });

  test('a range rules a run out only when its best CA or its lowest ASR is outside the target', () => {
    expect(rangeVerdicts(committedRvptRuns(root)).rows.map((r) => r[6])).toEqual(['no', 'not recorded per run']);
  });

  test('a probe family the overview does not read fails, naming the file and the fix', () => {
    writeJsonAtomic(path.join(root, 'research', 'results', 'in-domain', 'new-probe.json'), { probe: 'something new', dataset: 'fm', rows: [], provenance: HAND_PROVENANCE });
    expect(() => committedRvptRuns(root)).toThrow(/new-probe\.json is a 'something new' probe.*probeOverview\.ts/);
    writeJsonAtomic(path.join(root, 'research', 'results', 'in-domain', 'new-probe.json'), { probe: 'seed', dataset: 'fm', provenance: HAND_PROVENANCE });
    expect(() => committedRvptRuns(root)).toThrow(/new-probe\.json is a 'seed' probe with no 'rows' list/);
    fs.rmSync(path.join(root, 'research', 'results', 'in-domain', 'new-probe.json'));
    expect(() => committedRvptRuns(path.join(root, 'nowhere'))).toThrow(/nowhere.*in-domain does not exist/);
  });
});

test('the committed results: every file is read, the tables are in it, and what notebook 03 says of them holds', () => {
  const o = committedRvptRuns();
  const sources = new Set(o.runs.map((r) => r.source));
  for (const s of ['table1', 'table2', 'wide/table1', 'repulsion-probe', 'seed-probe', 'tuning-probe', 'strength-probe', 'deep12/repulsion-probe', 'pretrain-4000/seed-probe']) expect(sources).toContain(s);
  expect(o.runs.filter((r) => r.source === 'table1')).toHaveLength(6);
  const distinct = distinctRuns(o.runs);
  expect(distinct.length).toBeGreaterThan(300);
  expect(distinct.length).toBeLessThan(o.runs.length);
  // Notebook 03's reading: on Fashion-MNIST no RVPT run reaches the target; on emoji each attack has runs that do.
  expect(distinct.filter((r) => r.dataset === 'fashion-mnist' && meetsTarget(r))).toEqual([]);
  for (const a of ['BadNet', 'Blended', 'WaNet']) expect(distinct.filter((r) => r.dataset === 'emoji' && r.attack === a && meetsTarget(r)).length).toBeGreaterThan(0);
  expect(rangeVerdicts(o).rows.every((r) => r[6] === 'no')).toBe(true);
  // The counts and the cheapest Fashion-MNIST removal that its prose quotes (update both when a probe lands).
  const fashion = distinct.filter((r) => r.dataset === 'fashion-mnist');
  const emoji = distinct.filter((r) => r.dataset === 'emoji');
  expect([o.runs.length, sources.size, distinct.length, fashion.length, emoji.length, emoji.filter(meetsTarget).length]).toEqual([472, 28, 412, 358, 54, 18]);
  const cheapest = Math.max(...fashion.filter((r) => r.asr <= 5).map(caChangeOf));
  expect(cheapest).toBeCloseTo(-8.41, 2);
});
