/** Tables over defense seeds: which profile each seed's runs use, and how a cell summarises them. */
import { PROFILES } from '../src/experiments/profiles';
import { seedCell, tableJobs, tableSeeds, withDefenseSeed, paperTableSpecs } from '../src/experiments/paperTables';
import { asrCaText } from '../src/experiments/tables';
import { cellFile } from '../src/experiments/defenseRun';

test("the first seed's runs are the profile's own cells; other seeds set every method's seed", () => {
  const p = PROFILES.transfer;
  expect(tableSeeds(p)).toEqual([0, 1, 2]);
  expect(tableSeeds(PROFILES.small)).toEqual([0]);
  expect(withDefenseSeed(p, 0)).toBe(p);
  const s1 = withDefenseSeed(p, 1);
  for (const m of ['No defense', 'CleanCLIP', 'Linear Probe', 'VPT', 'RVPT']) expect(s1.defenses[m].seed).toBe(1);
  expect(s1.defenses.RVPT).toEqual({ ...p.defenses.RVPT, seed: 1 });
  // Each seed's run is a cell of its own.
  const files = [0, 1, 2].map((s) => cellFile(withDefenseSeed(p, s), 'BadNet', 'RVPT', 'fashion-mnist', ['fashion-mnist'], 'x.safetensors'));
  expect(new Set(files).size).toBe(3);
});

test('a table has one job per seed, attack and method; the cost runs alone only at the first seed', () => {
  const p = PROFILES.transfer;
  const spec = paperTableSpecs(p).find((s) => s.name === 'table1')!;
  const jobs = tableJobs(p, spec);
  expect(jobs).toHaveLength(3 * spec.attacks.length * spec.methods.length);
  expect(jobs.filter((j) => j.alone).map((j) => [j.method, j.profile.defenses.RVPT.seed ?? 0])).toEqual([
    ['CleanCLIP', 0],
    ['RVPT', 0],
  ]);
});

test('a cell is the median of its seeds, with the range; one seed gives the run itself', () => {
  const runs = [
    { asr: 9, ca: 50, n: 100, seconds: 3 },
    { asr: 1, ca: 52, n: 100, seconds: 5 },
    { asr: 4, ca: 49, n: 100, seconds: 4 },
  ];
  const c = seedCell(runs);
  expect(c).toMatchObject({ asr: 4, ca: 50, asrMin: 1, asrMax: 9, caMin: 49, caMax: 52, seeds: 3, n: 100, seconds: 4 });
  expect(asrCaText(c)).toBe('4.00 [1.0-9.0] (50.00 [49.0-52.0])');
  const one = seedCell([runs[0]]);
  expect(one).toMatchObject({ asr: 9, ca: 50, seeds: 1 });
  expect(one.asrMin).toBeUndefined();
  expect(asrCaText(one)).toBe('9.00 (50.00)');
  // A range of one value (No defense is the same at every seed) is left out.
  expect(asrCaText(seedCell([runs[0], runs[0]]))).toBe('9.00 (50.00)');
});
