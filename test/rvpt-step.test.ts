/**
 * RVPT's arithmetic, one step at a time, against from-scratch versions: the loss is CE + α·FR; α = 0 is VPT's update,
 * the gradient of CE alone; a margin above every cosine leaves only CE's gradient; FR's gradient matches finite
 * differences. A wrong sign, a dropped term or a detached branch in the step fails here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../src/model/clip';
import { l2normalize, matMulBT } from '../src/model/layers';
import { DeepPrompts, disposePrompts, initDeepPrompts, promptLayers, promptParams } from '../src/model/prompts';
import { MemoryMeter } from '../src/defenses/defense';
import { PromptStepState, featureRepelling, promptTuningStep } from '../src/defenses/rvpt';
import { SGD } from '../src/train/optim';
import { makeRng } from '../src/util/rng';
import { setup, TEST_CONFIG } from './helpers';

beforeAll(setup);

const C = TEST_CONFIG;
const SPEC = { length: 4, depth: 1, initStd: 0.02 };
const LR = 0.5;
let model: MiniCLIP;
let x: tf.Tensor4D;
let labels: tf.Tensor2D;
let text: tf.Tensor2D;

beforeAll(() => {
  model = MiniCLIP.init(C, 11);
  const rng = makeRng('rvpt-step');
  const n = 6;
  x = tf.tensor4d(Float32Array.from({ length: n * C.imageSize * C.imageSize * 3 }, () => rng()), [n, C.imageSize, C.imageSize, 3]);
  labels = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32'), 3) as tf.Tensor2D;
  text = l2normalize(tf.tensor2d(Float32Array.from({ length: 3 * C.embedDim }, () => rng() - 0.5), [3, C.embedDim]));
});
afterAll(() => {
  tf.dispose([x, labels, text]);
  model.dispose();
});

/** A fresh prompt-tuning state (same seed, so the same initial prompts every time); plain SGD, no decay. */
function freshState(): PromptStepState & { dispose: () => void } {
  const layers = promptLayers(C.layers, SPEC);
  const prompts = initDeepPrompts(C.layers, C.width, SPEC, 3);
  const params = promptParams(prompts);
  const opt = new SGD(params, { momentum: 0, weightDecay: 0 });
  const scale = model.logitScale();
  return { model, prompts, params, opt, layers, frLayers: layers, text, scale, mem: new MemoryMeter(), dispose: () => (opt.dispose(), scale.dispose(), disposePrompts(prompts)) };
}

const values = (p: DeepPrompts) => [...p.tokens.entries()].sort(([a], [b]) => a - b).flatMap(([, v]) => Array.from(v.dataSync()));

/** The two losses written from scratch: CE over the prompted zero-shot logits, and FR's mean cosine. */
function scratchLosses(p: DeepPrompts, layers: number[]): { ce: tf.Scalar; fr: tf.Scalar } {
  const frozen = model.encodeImage(x, { collectCls: true });
  const prompted = model.encodeImage(x, { prompts: p, collectCls: true });
  const logits = tf.mul(matMulBT(l2normalize(prompted.embedding), text), model.logitScale()) as tf.Tensor2D;
  const ce = tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  const cos = layers.map((l) => tf.sum(tf.mul(l2normalize(prompted.cls![l]), l2normalize(frozen.cls![l])), 1));
  const fr = tf.mean(tf.div(tf.addN(cos), layers.length)) as tf.Scalar;
  return { ce, fr };
}

test('the recorded loss is CE + α·FR, and CE and FR are what a from-scratch forward pass gives', () => {
  const s = freshState();
  const before = initDeepPrompts(C.layers, C.width, SPEC, 3);
  const [loss, ce, fr] = promptTuningStep(s, { alpha: 2, margin: -1 }, x, labels, 0);
  expect(loss).toBeCloseTo(ce + 2 * fr, 5);
  const ref = tf.tidy(() => {
    const l = scratchLosses(before, s.layers);
    return [l.ce.dataSync()[0], l.fr.dataSync()[0]];
  });
  expect(ce).toBeCloseTo(ref[0], 4);
  expect(fr).toBeCloseTo(ref[1], 4);
  // Untrained prompts barely move the class tokens: FR starts near 1 (and α·FR then pushes it down).
  expect(fr).toBeGreaterThan(0.9);
  disposePrompts(before);
  s.dispose();
});

test("α = 0 is VPT: the step moves the prompts by −lr × CE's gradient alone", () => {
  const s = freshState();
  const p0 = initDeepPrompts(C.layers, C.width, SPEC, 3);
  const grads = tf.tidy(() => {
    const vars = promptParams(p0);
    const { grads } = tf.variableGrads(() => scratchLosses(p0, s.layers).ce, Object.values(vars));
    return Object.keys(vars).map((k) => tf.keep(grads[vars[k].name]));
  });
  const expected = values(p0).map((v, i) => v - LR * grads.flatMap((g) => Array.from(g.dataSync()))[i]);
  promptTuningStep(s, { alpha: 0, margin: -1 }, x, labels, LR);
  const got = values(s.prompts);
  const worst = Math.max(...got.map((v, i) => Math.abs(v - expected[i])));
  expect(worst).toBeLessThan(1e-5);
  // And the step did move them: CE has a gradient here.
  expect(Math.max(...got.map((v, i) => Math.abs(v - values(p0)[i])))).toBeGreaterThan(1e-4);
  tf.dispose(grads);
  disposePrompts(p0);
  s.dispose();
});

test('FR changes the update; a margin above every cosine (m = 1) leaves only CE’s gradient', () => {
  const run = (alpha: number, margin: number) => {
    const s = freshState();
    promptTuningStep(s, { alpha, margin }, x, labels, LR);
    const v = values(s.prompts);
    s.dispose();
    return v;
  };
  const vpt = run(0, -1);
  const rvpt = run(2, -1);
  const capped = run(2, 1);
  const diff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
  expect(diff(rvpt, vpt)).toBeGreaterThan(1e-4);
  expect(diff(capped, vpt)).toBeLessThan(1e-6);
});

test("FR's gradient matches central finite differences along a random direction", () => {
  const s = freshState();
  const layers = s.layers;
  const fr = (p: DeepPrompts) => tf.tidy(() => scratchLosses(p, layers).fr.dataSync()[0]);
  // Move off the initialisation first (one RVPT step), where the cosines are no longer all near 1.
  promptTuningStep(s, { alpha: 2, margin: -1 }, x, labels, LR);
  const rng = makeRng('fd-direction');
  const dir = new Map([...s.prompts.tokens.entries()].map(([l, v]) => [l, tf.tensor(Float32Array.from({ length: v.size }, () => rng() - 0.5), v.shape)]));
  const analytic = tf.tidy(() => {
    const vars = Object.values(promptParams(s.prompts));
    const { grads } = tf.variableGrads(() => scratchLosses(s.prompts, layers).fr, vars);
    return [...s.prompts.tokens.entries()].reduce((acc, [l, v]) => acc + tf.sum(tf.mul(grads[v.name], dir.get(l)!)).dataSync()[0], 0);
  });
  const eps = 1e-2;
  const shifted = (sign: number): DeepPrompts => ({
    length: s.prompts.length,
    tokens: new Map([...s.prompts.tokens.entries()].map(([l, v]) => [l, tf.variable(tf.add(v, tf.mul(dir.get(l)!, sign * eps)))])),
  });
  const plus = shifted(1);
  const minus = shifted(-1);
  const numeric = (fr(plus) - fr(minus)) / (2 * eps);
  expect(Math.abs(analytic)).toBeGreaterThan(1e-3);
  expect(Math.abs(numeric - analytic)).toBeLessThan(0.02 * Math.abs(analytic) + 1e-4);
  disposePrompts(plus);
  disposePrompts(minus);
  tf.dispose([...dir.values()]);
  s.dispose();
});

test('featureRepelling is the mean over layers of per-sample cosines', () => {
  const a = tf.tensor2d([[1, 0], [0, 2]]);
  const b = tf.tensor2d([[1, 1], [0, -1]]);
  const r = Array.from(featureRepelling([a, a], [b, a]).dataSync());
  expect(r[0]).toBeCloseTo((Math.SQRT1_2 + 1) / 2, 6);
  expect(r[1]).toBeCloseTo((-1 + 1) / 2, 6);
  tf.dispose([a, b]);
});
