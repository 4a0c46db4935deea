/**
 * The figures' verdicts on hand-built inputs: each claim's `holds` follows the numbers both ways, and the Fig. 7
 * neighbour shares count a triggered image's own class, not another image's.
 */
import { knnShares } from '../src/experiments/analysis/embeddings';
import { EmbeddingResult, embeddingClaims } from '../src/experiments/analysis/embeddings';
import { PRResult, prClaims } from '../src/experiments/analysis/pr';
import { AttentionResult, attentionClaims } from '../src/experiments/analysis/attention';
import { AblationPoint, ablationClaims } from '../src/experiments/analysis/ablations';
import { claimsJudgeable, compareNumbers } from '../src/experiments/notebookChecks';

describe('knnShares', () => {
  // Clean images: class 0 near (1, 0), class 1 near (0, 1), class 2 (the target) near (-1, 0); three of each.
  const clean = [
    [1, 0], [0.99, 0.14], [0.99, -0.14],
    [0, 1], [0.14, 0.99], [-0.14, 0.99],
    [-1, 0], [-0.99, 0.14], [-0.99, -0.14],
  ];
  const cleanLabels = [0, 0, 0, 1, 1, 1, 2, 2, 2];

  test("a triggered image is judged by its own class: one stays with its class, one goes to the target", () => {
    // Triggered: a class-1 image that stays near class 1, and a class-0 image pulled to the target's cluster.
    const trig = [[0.05, 1], [-1, 0.05]];
    const s = knnShares([...clean, ...trig], clean.length, [...cleanLabels, 1, 0], 2, 3);
    expect(s).toEqual({ own: 50, tgt: 50 });
  });

  test('own and target shares add up to at most 100 when no triggered image is of the target class', () => {
    const trig = [[1, 0.02], [0.02, 1], [-1, 0], [-0.98, 0.1]];
    const labels = [...cleanLabels, 0, 1, 0, 1];
    const s = knnShares([...clean, ...trig], clean.length, labels, 2, 3);
    expect(s.own).toBe(50);
    expect(s.tgt).toBe(50);
    expect(s.own + s.tgt).toBeLessThanOrEqual(100);
  });

  test('the labels must cover every row, clean and triggered', () => {
    expect(() => knnShares([...clean, [1, 0]], clean.length, cleanLabels, 2, 3)).toThrow(/9 labels for 10 embeddings/);
  });
});

const embeddingResult = (own: Record<string, number>): EmbeddingResult => ({
  attack: 'BadCLIP',
  labels: [],
  classNames: [],
  target: 0,
  points: {},
  ownClassKnn: own,
  targetKnn: { backdoored: 90, VPT: 80, RVPT: 10 },
  nClean: 0,
});

test('embeddingClaims: the backdoored model sends triggered images away from their class; RVPT brings them back', () => {
  const good = embeddingClaims(embeddingResult({ backdoored: 5, VPT: 20, RVPT: 80 }));
  expect(good.map((c) => c.holds)).toEqual([true, true]);
  // The backdoored model keeps them with their class: the first claim fails.
  expect(embeddingClaims(embeddingResult({ backdoored: 60, VPT: 20, RVPT: 80 }))[0].holds).toBe(false);
  // RVPT under 50%, or not above VPT, or not above the backdoored model: the second claim fails.
  expect(embeddingClaims(embeddingResult({ backdoored: 5, VPT: 20, RVPT: 45 }))[1].holds).toBe(false);
  expect(embeddingClaims(embeddingResult({ backdoored: 5, VPT: 85, RVPT: 80 }))[1].holds).toBe(false);
  expect(embeddingClaims(embeddingResult({ backdoored: 90, VPT: 20, RVPT: 80 }))[1].holds).toBe(false);
  expect(good[1].ours).toBe('own class: RVPT 80.0%, VPT 20.0%, backdoored 5.0%');
});

const prResult = (supervised: number | null, trigger: { backdoored: number; vpt: number; rvpt: number }): PRResult => {
  const flat = (x: number) => [1, x, x];
  const std = (clip: number) => ({ 'backdoored CLIP': flat(clip), '+ VPT': flat(clip), '+ RVPT': flat(clip), ...(supervised === null ? {} : { 'supervised ViT': flat(supervised) }) });
  return {
    attack: 'BadNet',
    dataset: 'fm',
    layers: 3,
    promptedLayers: [1, 2],
    n: 10,
    pr: {
      noise: std(0.9),
      blur: std(0.9),
      'trigger (BadNet)': { 'backdoored CLIP': flat(trigger.backdoored), '+ VPT': flat(trigger.vpt), '+ RVPT': flat(trigger.rvpt), ...(supervised === null ? {} : { 'supervised ViT': flat(0.99) }) },
    },
    supervisedAccuracy: supervised === null ? null : 80,
  };
};

test("prClaims: CLIP's PR below the supervised ViT's, and RVPT's above the others' under the trigger", () => {
  const c = prClaims([prResult(0.95, { backdoored: 0.6, vpt: 0.7, rvpt: 0.9 })]);
  expect(c.map((x) => x.holds)).toEqual([true, true]);
  expect(c[0].ours).toBe('CLIP 0.9333, supervised ViT 0.9667');
  expect(prClaims([prResult(0.85, { backdoored: 0.6, vpt: 0.7, rvpt: 0.9 })])[0].holds).toBe(false);
  expect(prClaims([prResult(0.95, { backdoored: 0.6, vpt: 0.95, rvpt: 0.9 })])[1].holds).toBe(false);
  expect(prClaims([prResult(0.95, { backdoored: 0.95, vpt: 0.7, rvpt: 0.9 })])[1].holds).toBe(false);
  // At paper scale there is no supervised ViT: only the trigger claim is made.
  const paper = prClaims([prResult(null, { backdoored: 0.6, vpt: 0.7, rvpt: 0.9 })]);
  expect(paper).toHaveLength(1);
  expect(paper[0].claim).toMatch(/^BadNet: under the trigger/);
});

test("attentionClaims: the trigger draws the backdoored model's attention, RVPT's less; global triggers are not judged", () => {
  const r = (b: [number, number], v: [number, number]): AttentionResult => ({
    attacks: ['BadCLIP', 'WaNet'],
    png: '',
    rows: [],
    cols: [],
    triggerShare: { BadCLIP: { backdoored: { clean: b[0], triggered: b[1] }, RVPT: { clean: v[0], triggered: v[1] } }, WaNet: { backdoored: null, RVPT: null } },
  });
  const good = attentionClaims(r([0.1, 0.3], [0.1, 0.15]));
  expect(good).toHaveLength(1);
  expect(good[0].holds).toBe(true);
  expect(good[0].ours).toBe('attention on the trigger\'s patches, clean → triggered image: backdoored 10.0% → 30.0%, RVPT 10.0% → 15.0%');
  expect(attentionClaims(r([0.3, 0.2], [0.1, 0.1]))[0].holds).toBe(false); // the trigger draws nothing
  expect(attentionClaims(r([0.1, 0.3], [0.1, 0.4]))[0].holds).toBe(false); // RVPT drawn more
});

describe('ablationClaims', () => {
  const p = (parameter: string, attack: string, value: number, asr: number, ca: number): AblationPoint => ({ parameter, attack, value, asr, ca }) as AblationPoint;
  const paperLike = [
    p('alpha', 'BadNet', 0, 50, 80), p('alpha', 'BadNet', 4, 2, 78),
    p('margin', 'BadNet', -1, 2, 78), p('margin', 'BadNet', 1, 50, 80),
    p('shots', 'BadNet', 1, 3, 70), p('shots', 'BadNet', 16, 1, 79),
    p('shots', 'BadCLIP', 1, 60, 70), p('shots', 'BadCLIP', 8, 4, 78), p('shots', 'BadCLIP', 32, 1, 79),
    p('promptLength', 'BadNet', 4, 3, 79), p('promptLength', 'BadNet', 32, 1, 79),
    p('depth from output', 'BadNet', 2, 3, 79), p('depth from output', 'BadNet', 6, 8, 79),
    p('depth from input', 'BadNet', 2, 9, 79), p('depth from input', 'BadNet', 6, 12, 79),
  ];

  test('every remark of the paper holds on numbers shaped like its Fig. 3', () => {
    const c = ablationClaims(paperLike);
    expect(c.map((x) => x.claim)).toEqual([
      'raising α lowers both ASR and CA',
      'a larger margin m raises both ASR and CA',
      'one shot per class already gives near-0 ASR for BadNet and Blended',
      'BadCLIP needs about 8 shots per class to get below 5% ASR',
      'a short prompt (b = 5) already gives ASR < 5% for every attack',
      'prompts counted from the input do worse than the same number counted from the output',
    ]);
    expect(c.every((x) => x.holds)).toBe(true);
  });

  test('each remark fails when its numbers go the other way', () => {
    const change = (parameter: string, attack: string, value: number, asr: number, ca: number) =>
      ablationClaims(paperLike.map((x) => (x.parameter === parameter && x.attack === attack && x.value === value ? p(parameter, attack, value, asr, ca) : x)));
    expect(change('alpha', 'BadNet', 4, 60, 78)[0].holds).toBe(false); // ASR rises with α
    expect(change('alpha', 'BadNet', 4, 2, 81)[0].holds).toBe(false); // CA rises with α
    expect(change('margin', 'BadNet', 1, 1, 80)[1].holds).toBe(false);
    expect(change('shots', 'BadNet', 1, 30, 70)[2].holds).toBe(false);
    const late = change('shots', 'BadCLIP', 8, 20, 78)[3];
    expect(late.holds).toBe(false);
    expect(late.ours).toBe('below 5% from 32 shots');
    expect(change('promptLength', 'BadNet', 4, 30, 79)[4].holds).toBe(false);
    expect(change('depth from input', 'BadNet', 2, 1, 79)[5].holds).toBe(false);
  });

  test('a remark about a parameter or attack that was not run is not made', () => {
    const c = ablationClaims(paperLike.filter((x) => x.parameter === 'alpha'));
    expect(c.map((x) => x.claim)).toEqual(['raising α lowers both ASR and CA']);
  });
});

describe("a notebook's checks", () => {
  const expected = { tolerance: 0.5, values: { 'fm/BadNet/asr': 84.84, 'fm/BadNet/ca': 84.98 } };

  test('the recorded numbers pass within the tolerance; a moved, missing, new or non-finite number is named', () => {
    expect(compareNumbers({ 'fm/BadNet/asr': 85.2, 'fm/BadNet/ca': 84.98 }, expected)).toEqual([]);
    expect(compareNumbers({ 'fm/BadNet/asr': 86, 'fm/BadNet/ca': 84.98 }, expected)).toEqual(['fm/BadNet/asr: 86 (recorded 84.84, tolerance ±0.5)']);
    expect(compareNumbers({ 'fm/BadNet/asr': 84.84 }, expected)).toEqual(['fm/BadNet/ca: recorded 84.98, not computed in this run']);
    expect(compareNumbers({ ...expected.values, 'fm/WaNet/asr': 1 }, expected)).toEqual(['fm/WaNet/asr: 1 has no recorded value']);
    expect(compareNumbers({ 'fm/BadNet/asr': NaN, 'fm/BadNet/ca': 84.98 }, expected)).toHaveLength(1);
  });

  test('claims are judged only where every backdoor takes', () => {
    expect(claimsJudgeable({ BadNet: 84.8, BadCLIP: 98.7 })).toEqual({ judgeable: true, why: '' });
    const tiny = claimsJudgeable({ BadNet: 4.2, BadCLIP: 98.7 });
    expect(tiny.judgeable).toBe(false);
    expect(tiny.why).toMatch(/backdoors do not take \(no-defense ASR BadNet 4\.2%, below 50%\)/);
  });
});
