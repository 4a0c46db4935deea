import * as tf from '@tensorflow/tfjs-core';
import { AdamW, SGD, constantWarmupCosine, decays, warmupCosine } from '../src/train/optim';
import { setup } from './helpers';

beforeAll(setup);

test('schedules: linear warm-up then cosine to zero; CoOp constant warm-up then cosine', () => {
  const s = warmupCosine(1, 10, 110);
  expect(s(0)).toBeCloseTo(0.1);
  expect(s(9)).toBeCloseTo(1);
  expect(s(60)).toBeCloseTo(0.5);
  expect(s(110)).toBeCloseTo(0);
  const c = constantWarmupCosine(0.002, 1, 1e-5, 51);
  expect(c(0)).toBe(1e-5);
  expect(c(1)).toBeCloseTo(0.002);
  expect(c(26)).toBeCloseTo(0.001);
});

test('AdamW matches the reference update (decoupled decay, bias correction), and skips decay where CLIP does', () => {
  const p = { w: tf.variable(tf.tensor1d([1, -2])), 'ln_1.bias': tf.variable(tf.tensor1d([0.5])) };
  const opt = new AdamW(p, { beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.1 });
  opt.apply({ w: tf.tensor1d([0.5, 0.5]), 'ln_1.bias': tf.tensor1d([1]) }, 0.01);
  // step 1: m/c1 = g, v/c2 = g^2, so the Adam step is g/|g| = 1 (up to eps); decay adds 0.1 * p.
  const w = p.w.dataSync();
  expect(w[0]).toBeCloseTo(1 - 0.01 * (1 + 0.1 * 1), 5);
  expect(w[1]).toBeCloseTo(-2 - 0.01 * (1 + 0.1 * -2), 5);
  expect(p['ln_1.bias'].dataSync()[0]).toBeCloseTo(0.5 - 0.01, 5);
  expect(decays('visual.proj')).toBe(true);
  expect(decays('logit_scale')).toBe(false);
  expect(Object.keys(opt.state()).sort()).toEqual(['0.ln_1.bias', '0.w', '1.ln_1.bias', '1.w']);
});

test('SGD with momentum follows torch: the buffer starts at the first gradient', () => {
  const p = { w: tf.variable(tf.tensor1d([1])) };
  const opt = new SGD(p, { momentum: 0.9, weightDecay: 0 });
  opt.apply({ w: tf.tensor1d([1]) }, 0.1);
  expect(p.w.dataSync()[0]).toBeCloseTo(0.9, 6);
  opt.apply({ w: tf.tensor1d([1]) }, 0.1);
  expect(p.w.dataSync()[0]).toBeCloseTo(0.9 - 0.1 * 1.9, 6);
});
