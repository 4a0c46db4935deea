/** The pre-registered verdict rules on hand-built tables: each branch, and the bounds exactly at their edges. */
import { VERDICT_RULES, judge, memoryClaim, probeClaim, rvptClaim, verdictLine } from '../src/experiments/verdictRules';
import { PRECONDITION_BOUNDS } from '../src/experiments/preconditions';

const cell = (asr: number, ca: number) => ({ asr, ca, n: 10000, seeds: 3 });

function table(rvpt: Record<string, [number, number]>, vptBadclip = 60) {
  return {
    'No defense': { BadNet: cell(95, 60), Blended: cell(95, 60), BadCLIP: cell(99, 60), WaNet: cell(90, 60) },
    VPT: { BadNet: cell(50, 70), Blended: cell(50, 70), BadCLIP: cell(vptBadclip, 70) },
    RVPT: Object.fromEntries(Object.entries(rvpt).map(([a, [asr, ca]]) => [a, cell(asr, ca)])),
  };
}

test('the rules are the ones fixed before the fair setting ran', () => {
  expect(VERDICT_RULES.rvptAsr).toEqual({ BadNet: 5, Blended: 5, BadCLIP: 10 });
  expect(VERDICT_RULES.caDrop).toBe(2);
  expect(VERDICT_RULES.vptOverRvpt).toBe(3);
  expect(PRECONDITION_BOUNDS.zeroShot).toEqual([40, 75]);
  expect(PRECONDITION_BOUNDS.probeGain).toBe(8);
  expect(PRECONDITION_BOUNDS.backdoorAsr).toBe(80);
  expect(PRECONDITION_BOUNDS.caShift).toBe(1);
  expect(PRECONDITION_BOUNDS.probeAsr).toBe(20);
});

test('RVPT: reproduced only when every case holds, at the bounds included', () => {
  const v = rvptClaim(table({ BadNet: [5, 58], Blended: [5, 58], BadCLIP: [10, 58] }, 30));
  expect(v.cases).toHaveLength(7);
  expect(v.verdict).toBe('reproduced');
  expect(v.seeds).toBe(3);
  expect(v.testSize).toBe(10000);
});

test('RVPT: just past a bound is partly; most cases failing is not reproduced', () => {
  expect(rvptClaim(table({ BadNet: [5.01, 58], Blended: [5, 58], BadCLIP: [10, 58] }, 30)).verdict).toBe('partly');
  expect(rvptClaim(table({ BadNet: [5, 57.99], Blended: [5, 58], BadCLIP: [10, 58] }, 30)).verdict).toBe('partly');
  // VPT's BadCLIP ASR below 3x RVPT's fails that case alone.
  expect(rvptClaim(table({ BadNet: [1, 60], Blended: [1, 60], BadCLIP: [10, 60] }, 29.9)).verdict).toBe('partly');
  // Three of seven cases hold: under half.
  expect(rvptClaim(table({ BadNet: [50, 60], Blended: [50, 60], BadCLIP: [50, 60] }, 60)).verdict).toBe('not reproduced');
});

test('untestable wins over any count, and says why; no cells is untestable, never "not reproduced"', () => {
  const v = rvptClaim(table({ BadNet: [1, 60], Blended: [1, 60], BadCLIP: [1, 60] }, 60), 'precondition P1 does not hold here');
  expect(v.verdict).toBe('untestable');
  expect(verdictLine(v)).toContain('P1 does not hold');
  expect(rvptClaim({}).verdict).toBe('untestable');
  expect(judge('x', [], 1, null).verdict).toBe('untestable');
});

test('the linear probe claim counts every attack but BadCLIP', () => {
  const lp = (badnet: number) => ({ 'Linear Probe': { BadNet: cell(badnet, 70), Blended: cell(5.5, 70), BadCLIP: cell(90, 70) } });
  expect(probeClaim(lp(1)).verdict).toBe('reproduced');
  expect(probeClaim(lp(1)).cases).toHaveLength(2);
  expect(probeClaim(lp(5.6)).verdict).toBe('partly');
});

test('the memory claim compares peak RSS; a missing cost table is untestable', () => {
  expect(memoryClaim({ CleanCLIP: { rssBytes: 2e9 }, RVPT: { rssBytes: 1e9 } }).verdict).toBe('reproduced');
  expect(memoryClaim({ CleanCLIP: { rssBytes: 1e9 }, RVPT: { rssBytes: 1e9 } }).verdict).toBe('not reproduced');
  expect(memoryClaim(undefined).verdict).toBe('untestable');
});

test('a verdict line prints its cases held, seeds and test-set size', () => {
  const line = verdictLine(rvptClaim(table({ BadNet: [1, 60], Blended: [9, 60], BadCLIP: [1, 60] }, 60)));
  expect(line).toContain('6/7 cases; 3 seeds per cell; test set 10000 images');
  expect(line).toContain('Blended: RVPT ASR 9.00% <= 5% (fails)');
});
