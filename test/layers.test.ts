/**
 * The fast hand-written gradients must equal TF.js autodiff of the straightforward formulas (tolerance 1e-4), on
 * WASM through our fused LayerNorm/QuickGELU/column-sum kernels and through the TF.js-op versions of them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { dense, denseNoBias, embeddingLookup, layerNorm, quickGelu } from '../src/model/layers';
import { maxAbsDiff, setup } from './helpers';
import { fusedLayers, useFusedLayers } from '../src/kernels';

beforeAll(setup);

function refLayerNorm(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D): tf.Tensor {
  const { mean, variance } = tf.moments(x, 1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
}

function compare(fast: (...xs: tf.Tensor[]) => tf.Tensor, ref: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]) {
  for (const fused of tf.getBackend() === 'wasm' ? [true, false] : [false]) {
    const prev = useFusedLayers(fused);
    try {
      expect(fusedLayers()).toBe(fused);
      compareOnce(fast, ref, inputs);
    } finally {
      useFusedLayers(prev);
    }
  }
}

function compareOnce(fast: (...xs: tf.Tensor[]) => tf.Tensor, ref: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]) {
  const up = tf.randomNormal(fast(...inputs).shape, 0, 1, 'float32', 7);
  const loss = (f: (...xs: tf.Tensor[]) => tf.Tensor) => (...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), up));
  const gFast = tf.grads(loss(fast))(inputs);
  const gRef = tf.grads(loss(ref))(inputs);
  expect(maxAbsDiff(fast(...inputs), ref(...inputs))).toBeLessThan(1e-4);
  gFast.forEach((g, i) => expect(maxAbsDiff(g, gRef[i])).toBeLessThan(1e-4));
}

test('dense forward and gradients match autodiff of matMul + bias', () => {
  const x = tf.randomNormal([37, 24], 0, 1, 'float32', 1);
  const w = tf.randomNormal([24, 40], 0, 0.2, 'float32', 2);
  const b = tf.randomNormal([40], 0, 1, 'float32', 3);
  compare((x, w, b) => dense(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D), (x, w, b) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b), [x, w, b]);
  compare((x, w) => denseNoBias(x as tf.Tensor2D, w as tf.Tensor2D), (x, w) => tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), [x, w]);
});

test('layerNorm forward and gradients match autodiff of the textbook formula', () => {
  const x = tf.randomNormal([19, 32], 0.5, 2, 'float32', 4);
  const g = tf.randomNormal([32], 1, 0.3, 'float32', 5);
  const b = tf.randomNormal([32], 0, 0.3, 'float32', 6);
  compare((x, g, b) => layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D), (x, g, b) => refLayerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D), [x, g, b]);
});

test('quickGelu forward and gradient match x * sigmoid(1.702 x)', () => {
  const x = tf.randomNormal([11, 13], 0, 3, 'float32', 8);
  compare((x) => quickGelu(x), (x) => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))), [x]);
});

test('embedding lookup gradient sums over repeated ids (scatter-add)', () => {
  const table = tf.randomNormal([10, 6], 0, 1, 'float32', 9);
  const ids = tf.tensor1d([1, 3, 3, 7, 1, 1], 'int32');
  const up = tf.randomNormal([6, 6], 0, 1, 'float32', 10);
  const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(embeddingLookup(t as tf.Tensor2D, ids), up)))(table);
  // Reference: one-hot matmul, whose gradient is onehot^T @ up.
  const ref = tf.matMul(tf.transpose(tf.oneHot(ids, 10).toFloat()), up);
  expect(maxAbsDiff(g, ref)).toBeLessThan(1e-5);
  expect(maxAbsDiff(embeddingLookup(table as tf.Tensor2D, ids), tf.gather(table, ids))).toBe(0);
});

test('fused QuickGELU and LayerNorm stay finite and exact at the edges: saturated inputs, a constant row', () => {
  const x = tf.tensor2d([[-100, -40, -1e-3, 0, 1e-3, 40, 100]]);
  expect(maxAbsDiff(quickGelu(x), tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))))).toBeLessThan(1e-5);
  const gx = tf.grad((a: tf.Tensor) => tf.sum(quickGelu(a)))(x);
  expect(Array.from(gx.dataSync()).every(Number.isFinite)).toBe(true);
  expect(maxAbsDiff(gx, tf.tensor2d([[0, 0, 0.4996, 0.5, 0.5004, 1, 1]]))).toBeLessThan(1e-3);
  // A constant row has zero variance: the output is beta, not NaN.
  const rows = tf.tensor2d([[3, 3, 3, 3], [1, 2, 3, 4]]);
  const y = layerNorm(rows, tf.ones([4]) as tf.Tensor1D, tf.tensor1d([0.5, 0.5, 0.5, 0.5]));
  expect(Array.from(y.dataSync().slice(0, 4))).toEqual([0.5, 0.5, 0.5, 0.5]);
  expect(maxAbsDiff(y, refLayerNorm(rows, tf.ones([4]) as tf.Tensor1D, tf.tensor1d([0.5, 0.5, 0.5, 0.5])))).toBeLessThan(1e-4);
});
