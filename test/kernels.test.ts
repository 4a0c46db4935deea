/**
 * The WASM BatchMatMul kernel (src/kernels/bmm.c) must give exactly TF.js's numbers: bit for bit against TF.js's
 * own kernel and against a scalar emulation of it, for every transpose and for shared dimensions past its 48-block.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { setup, TEST_CONFIG } from './helpers';
import { fastBatchMatMulInstalled, installFastBatchMatMul, uninstallFastBatchMatMul } from '../src/kernels/batchMatMul';
import { BMM_WASM_SOURCE_SHA256 } from '../src/kernels/bmmWasm';
import { MiniCLIP } from '../src/model/clip';
import { AdamW } from '../src/train/optim';
import { contrastiveStep } from '../src/train/step';
import { syntheticBatch } from '../src/experiments/bench';

beforeAll(setup);
const onWasm = () => tf.getBackend() === 'wasm';

/** TF.js's slow_batch_matmul in float32 arithmetic: per 48-block sums in k order, added as (cur + s) + 0. */
function emulate(a: Float32Array, as: number[], b: Float32Array, bs: number[], ta: boolean, tb: boolean): Float32Array {
  const f = Math.fround;
  const [B, a1, a2] = as;
  const [, b1, b2] = bs;
  const K = ta ? a1 : a2;
  const M = ta ? a2 : a1;
  const N = tb ? b1 : b2;
  const out = new Float32Array(B * M * N);
  for (let n = 0; n < B; n++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let cur = 0;
        for (let k0 = 0; k0 < K; k0 += 48) {
          let s = 0;
          for (let k = k0; k < Math.min(K, k0 + 48); k++) {
            const av = ta ? a[n * a1 * a2 + k * a2 + i] : a[n * a1 * a2 + i * a2 + k];
            const bv = tb ? b[n * b1 * b2 + j * b2 + k] : b[n * b1 * b2 + k * b2 + j];
            s = f(s + f(av * bv));
          }
          cur = f(f(cur + s) + 0);
        }
        out[(n * M + i) * N + j] = cur;
      }
  return out;
}

function mismatches(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let n = x.length === y.length ? 0 : Infinity;
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i]) && !(x[i] === 0 && y[i] === 0)) n++;
  return n;
}

test('the embedded kernel was built from the committed C source', () => {
  const src = fs.readFileSync(path.join(__dirname, '..', 'src', 'kernels', 'bmm.c'));
  // If this fails, bmm.c changed without a rebuild: run scripts/build-kernels.sh (needs clang-14 and lld-14).
  expect(crypto.createHash('sha256').update(src).digest('hex')).toBe(BMM_WASM_SOURCE_SHA256);
});

test('batched and transposed products equal TF.js kernel and its emulation bit for bit', () => {
  if (!onWasm()) return;
  expect(installFastBatchMatMul()).toBe(true);
  // [a shape, b shape, transposeA, transposeB]: attention's shapes, odd sizes (SIMD tails), k past one 48-block,
  // a batch of one with a transpose, and 4-D batch dimensions.
  const cases: [number[], number[], boolean, boolean][] = [
    [[6, 17, 16], [6, 16, 17], false, false],
    [[6, 17, 17], [6, 17, 16], false, false],
    [[6, 17, 17], [6, 16, 17], false, true],
    [[6, 17, 16], [6, 17, 17], true, false],
    [[3, 9, 7], [3, 5, 9], true, true],
    [[2, 70, 101], [2, 101, 61], false, false],
    [[2, 101, 70], [2, 61, 101], true, true],
    [[1, 33, 50], [1, 19, 50], false, true],
    [[2, 3, 5, 6], [2, 3, 6, 7], false, false],
  ];
  for (const [as, bs, ta, tb] of cases) {
    const a = tf.randomNormal(as, 0, 1, 'float32', 11);
    const b = tf.randomNormal(bs, 0, 1, 'float32', 12);
    const fast = tf.matMul(a, b, ta, tb);
    uninstallFastBatchMatMul();
    const ref = tf.matMul(a, b, ta, tb);
    installFastBatchMatMul();
    expect(fast.shape).toEqual(ref.shape);
    const flat = (s: number[]) => [s.slice(0, -2).reduce((x, y) => x * y, 1), s[s.length - 2], s[s.length - 1]];
    const emu = emulate(a.dataSync() as Float32Array, flat(as), b.dataSync() as Float32Array, flat(bs), ta, tb);
    expect({ shape: as, ta, tb, vsTfjs: mismatches(fast.dataSync(), ref.dataSync()), vsEmulation: mismatches(fast.dataSync(), emu) }).toEqual({ shape: as, ta, tb, vsTfjs: 0, vsEmulation: 0 });
    tf.dispose([a, b, fast, ref]);
  }
});

test('a training step gives the same loss and weights with either kernel, and the fast one leaks nothing', () => {
  if (!onWasm()) return;
  const run = () => {
    const model = MiniCLIP.init(TEST_CONFIG, 3);
    const opt = new AdamW(model.params);
    const { images, tokens } = syntheticBatch(TEST_CONFIG, 8, 1);
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const l = contrastiveStep(model, model.params, opt, images, tokens, 1e-3, null, i);
      losses.push(l.dataSync()[0]);
      l.dispose();
    }
    const w = Object.keys(model.params).sort().map((k) => Array.from(model.params[k].dataSync()));
    images.dispose();
    opt.dispose();
    model.dispose();
    return { losses, w };
  };
  installFastBatchMatMul();
  run();
  const before = tf.memory().numTensors;
  const fast = run();
  expect(tf.memory().numTensors).toBe(before);
  expect(fastBatchMatMulInstalled()).toBe(true);
  uninstallFastBatchMatMul();
  const ref = run();
  installFastBatchMatMul();
  expect(fast.losses).toEqual(ref.losses);
  expect(fast.w).toEqual(ref.w);
});
