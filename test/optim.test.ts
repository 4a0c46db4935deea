import * as tf from '@tensorflow/tfjs-core';
import { AdamW, SGD, constantWarmupCosine, decays, warmupCosine } from '../src/train/optim';
import { AdamWKernel } from '../src/kernels/adamw';
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

/** Random float32 values in [-scale, scale) from a fixed seed (a small LCG: reproducible, no tensors). */
function values(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

test('the WASM AdamW kernel gives the JavaScript loop bit for bit: one gradient or two summed, any length, decay or not', () => {
  const shapes: Record<string, number[]> = { w: [257, 17], 'ln_1.bias': [3], logit_scale: [] };
  const params = () => Object.fromEntries(Object.entries(shapes).map(([n, s], i) => [n, tf.variable(tf.tensor(values(Math.max(1, s.reduce((a, b) => a * b, 1)), 10 + i, 1), s))]));
  const kernelSide = params();
  const jsSide = params();
  const kernelOpt = new AdamW(kernelSide, { weightDecay: 0.2 });
  // Arrays outside any kernel's memory take the JavaScript loop: the reference.
  const jsOpt = new AdamW(jsSide, { weightDecay: 0.2 });
  for (let step = 1; step <= 4; step++) {
    const grads: Record<string, Float32Array> = {};
    const seconds: Record<string, Float32Array> = {};
    Object.keys(shapes).forEach((n, i) => {
      grads[n] = values(kernelSide[n].size, 100 * step + i, 1e-2);
      seconds[n] = values(kernelSide[n].size, 1000 * step + i, 1e-2);
    });
    // One gradient through apply (the kernel, staged in its memory) ...
    kernelOpt.apply(Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, tf.tensor(g, kernelSide[n].shape)])), 1e-3);
    jsOpt.step++;
    for (const n of Object.keys(shapes)) {
      const p = Float32Array.from(jsSide[n].dataSync());
      jsOpt.updateValues(n, p, grads[n], 1e-3);
      jsSide[n].assign(tf.tensor(p, jsSide[n].shape));
    }
    for (const n of Object.keys(shapes)) expect({ step, n, w: Array.from(kernelSide[n].dataSync()) }).toEqual({ step, n, w: Array.from(jsSide[n].dataSync()) });
    // ... and two gradients summed, as two-core training passes them.
    const both = kernelOpt.state();
    const n = kernelSide.w.size;
    const kernel = AdamWKernel.create(5 * n, 5);
    const k = new AdamW({ w: kernelSide.w }, { weightDecay: 0.2 });
    k.useKernel(kernel);
    const [m, v] = [kernel.alloc(n), kernel.alloc(n)];
    m.set(both['0.w'].data);
    v.set(both['1.w'].data);
    k.shareSlots('w', [m, v]);
    k.step = step;
    const [p, g, g2] = [kernel.alloc(n), kernel.alloc(n), kernel.alloc(n)];
    p.set(kernelSide.w.dataSync());
    g.set(grads.w);
    g2.set(seconds.w);
    const ref = AdamW.fromSpec({ w: kernelSide.w }, k.spec());
    ref.shareSlots('w', [Float32Array.from(m), Float32Array.from(v)]);
    ref.step = step;
    const pr = Float32Array.from(p);
    k.updateValues('w', p, g, 1e-3, g2);
    ref.updateValues('w', pr, Float32Array.from(g), 1e-3, Float32Array.from(g2));
    expect(Array.from(p)).toEqual(Array.from(pr));
    expect(Array.from(k.state()['1.w'].data)).toEqual(Array.from(ref.state()['1.w'].data));
  }
  expect(Object.keys(kernelOpt.state()).length).toBe(6);
  tf.dispose([...Object.values(kernelSide), ...Object.values(jsSide)]);
});

test('optimiser state carries over into the kernel: a resumed AdamW continues exactly as an uninterrupted one', () => {
  const make = () => ({ w: tf.variable(tf.tensor(values(21, 5, 1), [3, 7])) });
  const a = make();
  const b = make();
  const optA = new AdamW(a);
  const grad = (s: number) => ({ w: tf.tensor(values(21, s, 1e-2), [3, 7]) });
  for (let s = 1; s <= 3; s++) optA.apply(grad(s), 1e-3);
  // b: two steps, then its state through arrays (a checkpoint) into a new optimiser, then the third step.
  const optB1 = new AdamW(b);
  for (let s = 1; s <= 2; s++) optB1.apply(grad(s), 1e-3);
  const saved = Object.fromEntries(Object.entries(optB1.state()).map(([k, x]) => [k, { shape: x.shape, data: Float32Array.from(x.data) }]));
  const optB2 = new AdamW(b);
  optB2.loadState(saved);
  optB2.step = 2;
  optB2.apply(grad(3), 1e-3);
  expect(Array.from(b.w.dataSync())).toEqual(Array.from(a.w.dataSync()));
  expect(() => optB2.loadState({ '0.w': { shape: [2], data: new Float32Array(2) } })).toThrow(/'0\.w' holds 2 values; parameter 'w' has 21/);
  tf.dispose([a.w, b.w]);
});
