/**
 * Our WASM kernels (src/kernels/) that replace TF.js's must give exactly TF.js's numbers: the batched matmul bit for
 * bit against TF.js's own kernel and against a scalar emulation of it (every transpose, shared dimensions past its
 * 48-block), the plain product and the weight-gradient kernel against XNNPACK and a sequential sum, and the row copies (SplitV, Concat, 2-D Slice) the same values and shapes as TF.js's. The fused layers
 * (fused.c) agree with the TF.js-op formulas to float rounding: here on whole training steps, and layer by layer,
 * with gradients, in test/layers.test.ts.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { setup, TEST_CONFIG } from './helpers';
import { fusedLayers, installWasmKernels, uninstallWasmKernels, useFusedLayers, wasmKernelsInstalled } from '../src/kernels';
import { asBlockTranspose } from '../src/kernels/copy';
import { ATTN_SCORES, DENSE, GEMM_MAX_K, MATMUL_TN } from '../src/kernels/batchMatMul';
import { BMM_WASM_SOURCE_SHA256 } from '../src/kernels/bmmWasm';
import { COPY_WASM_SOURCE_SHA256 } from '../src/kernels/copyWasm';
import { BROADCAST_WASM_SOURCE_SHA256 } from '../src/kernels/broadcastWasm';
import { FUSED_WASM_SOURCE_SHA256 } from '../src/kernels/fusedWasm';
import { ADAMW_WASM_SOURCE_SHA256 } from '../src/kernels/adamwWasm';
import { MiniCLIP } from '../src/model/clip';
import { causalMask } from '../src/model/text';
import { attention } from '../src/model/transformer';
import { AdamW } from '../src/train/optim';
import { contrastiveStep } from '../src/train/step';
import { syntheticBatch } from '../src/experiments/bench';

beforeAll(setup);
/**
 * These tests compare our WASM kernels with TF.js's: they need the WASM backend. On another one (RVPT_BACKEND) they
 * are reported as skipped, not passed.
 */
const WASM = (process.env.RVPT_BACKEND ?? 'wasm') === 'wasm';
const wasmTest = WASM ? test : test.skip;

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

test('the embedded kernels were built from the committed C sources', () => {
  // If this fails, a .c file changed without a rebuild: run `make kernels` (needs clang-14 and lld-14).
  for (const [name, sha] of [['bmm.c', BMM_WASM_SOURCE_SHA256], ['copy.c', COPY_WASM_SOURCE_SHA256], ['broadcast.c', BROADCAST_WASM_SOURCE_SHA256], ['fused.c', FUSED_WASM_SOURCE_SHA256], ['adamw.c', ADAMW_WASM_SOURCE_SHA256]]) {
    const src = fs.readFileSync(path.join(__dirname, '..', 'src', 'kernels', name));
    expect({ name, sha: crypto.createHash('sha256').update(src).digest('hex') }).toEqual({ name, sha });
  }
});

// Where clang-14 (with lld-14) is present, the build script must give the committed bytes: the WASM in src/kernels/*Wasm.ts
// is what its C source compiles to, not a hand-edited or stale module.
const CLANG = ['clang-14', 'clang'].find((c) => spawnSync(c, ['--version']).status === 0);
(CLANG ? test : test.skip)(`scripts/build-kernels.sh rebuilds the committed WASM bytes (${CLANG ? `with ${CLANG}` : 'skipped: no clang-14 here; apt-get install clang-14 lld-14'})`, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-kernels-'));
  try {
    const r = spawnSync('bash', [path.join(__dirname, '..', 'scripts', 'build-kernels.sh')], { env: { ...process.env, KERNELS_OUT: out }, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const wasm = (file: string) => /_WASM_BASE64 =\s*"([^"]+)"/.exec(fs.readFileSync(file, 'utf8'))![1];
    const compiler = (file: string) => /_WASM_COMPILER = "([^"]+)"/.exec(fs.readFileSync(file, 'utf8'))?.[1];
    for (const name of ['adamw', 'bmm', 'broadcast', 'copy', 'fused']) {
      const committed = path.join(__dirname, '..', 'src', 'kernels', `${name}Wasm.ts`);
      const rebuilt = path.join(out, `${name}Wasm.ts`);
      expect({ name, same: wasm(rebuilt) === wasm(committed) }).toEqual({ name, same: true });
      expect({ name, compiler: compiler(committed) }).toEqual({ name, compiler: compiler(rebuilt) });
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('permutations that swap two adjacent groups of axes are recognised, others are not', () => {
  expect(asBlockTranspose([5, 7], [1, 0])).toEqual({ batch: 1, rows: 5, cols: 7, item: 1 });
  expect(asBlockTranspose([2, 3, 4, 5], [0, 2, 1, 3])).toEqual({ batch: 2, rows: 3, cols: 4, item: 5 });
  expect(asBlockTranspose([2, 3, 4, 5], [0, 2, 3, 1])).toEqual({ batch: 2, rows: 3, cols: 20, item: 1 });
  expect(asBlockTranspose([2, 3, 4], [2, 0, 1])).toEqual({ batch: 1, rows: 6, cols: 4, item: 1 });
  expect(asBlockTranspose([2, 1, 4, 5], [0, 2, 1, 3])).toBeNull(); // only a size-1 axis moves: no transpose
  expect(asBlockTranspose([2, 1, 4, 5], [2, 1, 0, 3])).toEqual({ batch: 1, rows: 2, cols: 4, item: 5 });
  expect(asBlockTranspose([2, 3, 4], [2, 1, 0])).toBeNull();
  expect(asBlockTranspose([2, 3, 4], [0, 1, 2])).toBeNull();
});

wasmTest('SplitV, Concat, Slice, GatherV2, Transpose, and Sub and RealDiv by a channel vector give TF.js kernel outputs exactly', () => {
  expect(tf.getBackend()).toBe('wasm');
  installWasmKernels();
  // Each case returns a list of tensors; run it with our kernels and with TF.js's, compare shapes and values.
  const x2 = tf.randomNormal([37, 30], 0, 1, 'float32', 21);
  const x3 = tf.randomNormal([5, 6, 7], 0, 1, 'float32', 22);
  const i2 = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [3, 4], 'int32');
  const empty = tf.zeros([37, 0]);
  const cases: Record<string, () => tf.Tensor[]> = {
    'split 2-D axis 1 (q, k, v)': () => tf.split(x2, 3, 1),
    'split 2-D axis 1 uneven': () => tf.split(x2, [7, 20, 3], 1),
    'split 2-D axis 0': () => tf.split(x2, [10, 27], 0),
    'split 3-D axis 1': () => tf.split(x3, [2, 4], 1),
    'split 3-D axis 2': () => tf.split(x3, [1, 5, 1], 2),
    'split int32': () => tf.split(i2, 2, 1),
    'concat 2-D axis 1': () => [tf.concat(tf.split(x2, [7, 20, 3], 1), 1)],
    'concat 2-D axis 0': () => [tf.concat([x2, x2], 0)],
    'concat 3-D axis 2 with an empty input': () => [tf.concat([x3, tf.zeros([5, 6, 0]), x3], 2)],
    'concat with an empty 2-D input': () => [tf.concat([x2, empty, x2], 1)],
    'concat int32': () => [tf.concat([i2, i2], 1)],
    'slice 2-D strided': () => [tf.slice(x2, [3, 5], [20, 11])],
    'slice 2-D contiguous': () => [tf.slice(x2, [3, 0], [20, 30])],
    'slice 3-D': () => [tf.slice(x3, [1, 2, 3], [2, 3, 4])],
    'slice int32': () => [tf.slice(i2, [1, 1], [2, 2])],
    'gather rows (token embeddings)': () => [tf.gather(x2, tf.tensor1d([3, 0, 36, 3, 7], 'int32'))],
    'gather with 2-D indices': () => [tf.gather(x2, tf.tensor2d([[1, 2], [2, 1], [0, 0]], [3, 2], 'int32'))],
    'gather along axis 1 and 2': () => [tf.gather(x2, tf.tensor1d([29, 0, 5], 'int32'), 1), tf.gather(x3, tf.tensor1d([6, 1], 'int32'), 2)],
    'gather int32 table': () => [tf.gather(i2, tf.tensor1d([2, 0], 'int32'))],
    'transpose 2-D across tiles': () => [tf.transpose(x2), tf.transpose(tf.randomNormal([70, 33], 0, 1, 'float32', 27))],
    'transpose attention heads': () => {
      const h = tf.randomNormal([3, 17, 4, 16], 0, 1, 'float32', 28);
      return [tf.transpose(h, [0, 2, 1, 3]), tf.transpose(h, [0, 2, 3, 1]), tf.transpose(h, [2, 0, 1, 3])];
    },
    'transpose others (TF.js)': () => [tf.transpose(x3, [2, 1, 0]), tf.transpose(tf.zeros([2, 1, 3]), [1, 0, 2]), tf.transpose(i2)],
    'image normalisation': () => {
      const img = tf.randomUniform([4, 5, 6, 3], 0, 1, 'float32', 23);
      return [tf.div(tf.sub(img, tf.tensor1d([0.48, 0.46, 0.41])), tf.tensor1d([0.27, 0.26, 0.28]))];
    },
    'sub and div by a vector of 7, of 64 (TF.js), by a scalar (TF.js)': () => {
      const a7 = tf.randomNormal([9, 7], 0, 1, 'float32', 24);
      const v7 = tf.randomUniform([7], -1, 1, 'float32', 25);
      const v30 = tf.randomUniform([30], 0.1, 1, 'float32', 26);
      return [tf.sub(a7, v7), tf.div(a7, v7), tf.sub(x2, v30), tf.div(x2, v30), tf.div(x2, 3), tf.sub(v7, a7), tf.div(a7, tf.zeros([7]))];
    },
  };
  for (const [name, f] of Object.entries(cases)) {
    const ours = f();
    uninstallWasmKernels();
    const theirs = f();
    installWasmKernels();
    expect({ name, shapes: ours.map((t) => t.shape), dtypes: ours.map((t) => t.dtype) }).toEqual({ name, shapes: theirs.map((t) => t.shape), dtypes: theirs.map((t) => t.dtype) });
    ours.forEach((t, i) => expect({ name, i, values: Array.from(t.dataSync()) }).toEqual({ name, i, values: Array.from(theirs[i].dataSync()) }));
    tf.dispose([...ours, ...theirs]);
  }
  // A clone shares the buffer and outlives its source; a variable assigned after a clone leaves the clone alone.
  const before = tf.memory().numTensors;
  const src = tf.randomNormal([4, 5], 0, 1, 'float32', 29);
  const copy = tf.clone(src);
  const values = Array.from(src.dataSync());
  src.dispose();
  expect(Array.from(copy.dataSync())).toEqual(values);
  const [one, zero] = [tf.ones([3]), tf.zeros([3])];
  const v = tf.variable(one);
  const snap = tf.clone(v);
  v.assign(zero);
  expect(Array.from(snap.dataSync())).toEqual([1, 1, 1]);
  expect(Array.from(v.dataSync())).toEqual([0, 0, 0]);
  tf.dispose([copy, snap, v, one, zero]);
  expect(tf.memory().numTensors).toBe(before);
  // A bad index is still TF.js's error.
  expect(() => tf.gather(x2, tf.tensor1d([37], 'int32'))).toThrow(/GatherV2: the index value 37 is not in \[0, 36\]/);
  tf.dispose([x2, x3, i2, empty]);
});

wasmTest('batched and transposed products equal TF.js kernel and its emulation bit for bit', () => {
  expect(tf.getBackend()).toBe('wasm');
  expect(installWasmKernels()).toBe(true);
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
    uninstallWasmKernels();
    const ref = tf.matMul(a, b, ta, tb);
    installWasmKernels();
    expect(fast.shape).toEqual(ref.shape);
    const flat = (s: number[]) => [s.slice(0, -2).reduce((x, y) => x * y, 1), s[s.length - 2], s[s.length - 1]];
    const emu = emulate(a.dataSync() as Float32Array, flat(as), b.dataSync() as Float32Array, flat(bs), ta, tb);
    expect({ shape: as, ta, tb, vsTfjs: mismatches(fast.dataSync(), ref.dataSync()), vsEmulation: mismatches(fast.dataSync(), emu) }).toEqual({ shape: as, ta, tb, vsTfjs: 0, vsEmulation: 0 });
    tf.dispose([a, b, fast, ref]);
  }
});

/** Each output summed in k order from 0 with a rounded multiply and add: XNNPACK's plain product, in float32. */
function sequential(a: Float32Array, b: Float32Array, M: number, K: number, N: number, ta: boolean): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s = f(s + f((ta ? a[k * M + i] : a[i * K + k]) * b[k * N + j]));
      out[i * N + j] = s;
    }
  return out;
}

wasmTest('plain products at small shared dimensions (our gemm) equal XNNPACK bit for bit', () => {
  expect(tf.getBackend()).toBe('wasm');
  expect(installWasmKernels()).toBe(true);
  // [M, K, N]: the model's shapes cut down, every tail of the 4 x 8 tiles and the 64-row blocks, K of 1, at and past
  // GEMM_MAX_K (past it TF.js's XNNPACK runs, which must also match the sequential sum), and a 3-D batch of one.
  const cases: [number, number, number][] = [[136, 64, 256], [130, 256, 64], [67, 64, 192], [37, 100, 29], [3, 5, 2], [1, 7, 13], [9, 1, 12], [70, GEMM_MAX_K, 12], [5, GEMM_MAX_K + 1, 9]];
  for (const [M, K, N] of cases) {
    const a = tf.randomNormal([M, K], 0, 1, 'float32', 21);
    const b = tf.randomNormal([K, N], 0, 1, 'float32', 22);
    const fast = tf.matMul(a, b);
    const fast3 = tf.matMul(tf.reshape(a, [1, M, K]), tf.reshape(b, [1, K, N]));
    uninstallWasmKernels();
    const ref = tf.matMul(a, b);
    installWasmKernels();
    const seq = sequential(a.dataSync() as Float32Array, b.dataSync() as Float32Array, M, K, N, false);
    expect(fast3.shape).toEqual([1, M, N]);
    expect({ M, K, N, vsTfjs: mismatches(fast.dataSync(), ref.dataSync()), vsSequential: mismatches(fast.dataSync(), seq), batchOfOne: mismatches(fast3.dataSync(), seq) }).toEqual({ M, K, N, vsTfjs: 0, vsSequential: 0, batchOfOne: 0 });
    tf.dispose([a, b, fast, fast3, ref]);
  }
});

wasmTest('the weight-gradient kernel gives the bits of an explicit transpose and product, and refuses bad shapes', () => {
  expect(tf.getBackend()).toBe('wasm');
  expect(installWasmKernels()).toBe(true);
  // [K, M, N]: K past one and several 128-row blocks, every tile tail.
  const cases: [number, number, number][] = [[300, 64, 256], [130, 256, 64], [129, 7, 13], [5, 3, 2], [1, 4, 8]];
  for (const [K, M, N] of cases) {
    const x = tf.randomNormal([K, M], 0, 1, 'float32', 31);
    const dy = tf.randomNormal([K, N], 0, 1, 'float32', 32);
    const fast = tf.engine().runKernel(MATMUL_TN, { a: x, b: dy }) as tf.Tensor;
    const ref = tf.tidy(() => tf.matMul(tf.transpose(x), dy));
    const seq = sequential(x.dataSync() as Float32Array, dy.dataSync() as Float32Array, M, K, N, true);
    expect(fast.shape).toEqual([M, N]);
    expect({ K, M, N, vsTransposeMatMul: mismatches(fast.dataSync(), ref.dataSync()), vsSequential: mismatches(fast.dataSync(), seq) }).toEqual({ K, M, N, vsTransposeMatMul: 0, vsSequential: 0 });
    tf.dispose([x, dy, fast, ref]);
  }
  // No rows: zeros (TF.js's own product of empty operands returns its output buffer unwritten).
  const [e, f] = [tf.zeros([0, 3]), tf.zeros([0, 5])];
  const empty = tf.engine().runKernel(MATMUL_TN, { a: e, b: f }) as tf.Tensor;
  expect({ shape: empty.shape, values: Array.from(empty.dataSync()) }).toEqual({ shape: [3, 5], values: new Array(15).fill(0) });
  tf.dispose([e, f, empty]);
  const [a, b] = [tf.zeros([4, 3]), tf.zeros([5, 2])];
  expect(() => tf.engine().runKernel(MATMUL_TN, { a, b })).toThrow(/a \[K, M\] and b \[K, N\] expected \(got \[4,3\] and \[5,2\]\)/);
  tf.dispose([a, b]);
});

wasmTest('the dense kernel gives the bits of a product followed by a bias add, and refuses what it does not cover', () => {
  expect(tf.getBackend()).toBe('wasm');
  expect(installWasmKernels()).toBe(true);
  for (const [M, K, N] of [[136, 64, 256], [67, 256, 64], [37, 100, 29], [3, 5, 2], [1, GEMM_MAX_K, 13]]) {
    const x = tf.randomNormal([M, K], 0, 1, 'float32', 41);
    const w = tf.randomNormal([K, N], 0, 1, 'float32', 42);
    const b = tf.randomNormal([N], 0, 1, 'float32', 43);
    const fast = tf.engine().runKernel(DENSE, { x, w, b }) as tf.Tensor;
    uninstallWasmKernels();
    const ref = tf.tidy(() => tf.add(tf.matMul(x, w), b));
    installWasmKernels();
    expect(fast.shape).toEqual([M, N]);
    expect({ M, K, N, vsTfjs: mismatches(fast.dataSync(), ref.dataSync()) }).toEqual({ M, K, N, vsTfjs: 0 });
    tf.dispose([x, w, b, fast, ref]);
  }
  const [x, w, b] = [tf.zeros([2, GEMM_MAX_K + 1]), tf.zeros([GEMM_MAX_K + 1, 3]), tf.zeros([3])];
  expect(() => tf.engine().runKernel(DENSE, { x, w, b })).toThrow(new RegExp(`0 < K <= ${GEMM_MAX_K} expected \\(got \\[2,${GEMM_MAX_K + 1}\\]`));
  tf.dispose([x, w, b]);
});

wasmTest("attention's kernels give the composed ops' outputs and gradients bit for bit, with and without prompts", () => {
  expect(tf.getBackend()).toBe('wasm');
  expect(installWasmKernels()).toBe(true);
  // [batch, tokens, heads, width, causal mask, prompt rows]: the small profile's image and text blocks and a prompted
  // image block, tokens (or tokens + prompts) past one 48-block of the products, a head width that is not a multiple
  // of 4 (SIMD tails), one token.
  const cases: [number, number, number, number, boolean, number][] = [
    [3, 17, 4, 64, false, 0],
    [2, 16, 4, 64, true, 0],
    [3, 17, 4, 64, false, 16],
    [2, 53, 2, 10, true, 0],
    [2, 40, 3, 15, false, 9],
    [2, 1, 1, 4, false, 0],
    [1, 1, 1, 4, false, 2],
  ];
  for (const [batch, tokens, heads, width, causal, prompts] of cases) {
    const p = 'blk';
    const params: Record<string, tf.Tensor> = {
      [`${p}.attn.in_proj_weight`]: tf.randomNormal([width, 3 * width], 0, 0.3, 'float32', 51),
      [`${p}.attn.in_proj_bias`]: tf.randomNormal([3 * width], 0, 0.1, 'float32', 52),
      [`${p}.attn.out_proj.weight`]: tf.randomNormal([width, width], 0, 0.3, 'float32', 53),
      [`${p}.attn.out_proj.bias`]: tf.randomNormal([width], 0, 0.1, 'float32', 54),
    };
    const x = tf.randomNormal([batch * tokens, width], 0, 1, 'float32', 55);
    const shared = tf.randomNormal([Math.max(prompts, 1), width], 0, 1, 'float32', 57);
    const dy = tf.randomNormal([batch * tokens, width], 0, 1, 'float32', 56);
    const mask = causal ? causalMask(tokens) : null;
    const shape = { batch, tokens, heads };
    // Asking for the attention weights takes the composed ops (split, transposes, batched products).
    const run = (composed: boolean) =>
      tf.tidy(() => {
        const f = (xv: tf.Tensor, w: tf.Tensor, b: tf.Tensor, sh: tf.Tensor) => {
          const ps = { ...params, [`${p}.attn.in_proj_weight`]: w, [`${p}.attn.in_proj_bias`]: b };
          return tf.sum(tf.mul(attention(ps, p, xv as tf.Tensor2D, shape, mask, composed, prompts ? (sh as tf.Tensor2D) : undefined).out, dy));
        };
        const out = attention(params, p, x, shape, mask, composed, prompts ? shared : undefined).out;
        const xs = [x, params[`${p}.attn.in_proj_weight`], params[`${p}.attn.in_proj_bias`], shared];
        const grads = prompts ? tf.grads(f)(xs) : tf.grads((a, w, b) => f(a, w, b, shared))(xs.slice(0, 3));
        return [out, ...grads].map((t) => t.dataSync() as Float32Array);
      });
    const fused = run(false);
    const composed = run(true);
    expect(fused.length).toBe(prompts ? 5 : 4);
    expect({ batch, tokens, heads, width, causal, prompts, mismatches: fused.map((v, i) => mismatches(v, composed[i])) }).toEqual({ batch, tokens, heads, width, causal, prompts, mismatches: fused.map(() => 0) });
    tf.dispose([x, dy, shared, ...Object.values(params), ...(mask ? [mask] : [])]);
  }
  const attrs = (tokens: number) => ({ tokens, heads: 2, scale: 1 }) as unknown as tf.NamedAttrMap;
  const [qkv, mask, shared] = [tf.zeros([10, 12]), tf.zeros([4, 4]), tf.zeros([3, 9])];
  expect(() => tf.engine().runKernel(ATTN_SCORES, { qkv }, attrs(3))).toThrow(/qkv \[B\*T, 3C\] with T = 3 and C divisible by 2 heads expected \(got \[10,12\]\)/);
  expect(() => tf.engine().runKernel(ATTN_SCORES, { qkv, mask }, attrs(5))).toThrow(/a mask \[5, 5\] without shared rows expected \(got \[4,4\]\)/);
  expect(() => tf.engine().runKernel(ATTN_SCORES, { qkv, shared }, attrs(5))).toThrow(/shared rows \[P, 12\] expected \(got \[3,9\]\)/);
  tf.dispose([qkv, mask, shared]);
});

/** Three contrastive steps of a small model from a fixed seed: the losses and the final weights. */
function threeSteps(): { losses: number[]; w: number[][] } {
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
}

wasmTest('a training step gives the same loss and weights with either set of exact kernels, and ours leak nothing', () => {
  expect(tf.getBackend()).toBe('wasm');
  const prev = useFusedLayers(false); // the fused layers change the arithmetic: compared below, to tolerance
  try {
    installWasmKernels();
    threeSteps();
    const before = tf.memory().numTensors;
    const fast = threeSteps();
    expect(tf.memory().numTensors).toBe(before);
    expect(wasmKernelsInstalled()).toBe(true);
    expect(fusedLayers()).toBe(false);
    uninstallWasmKernels();
    const ref = threeSteps();
    installWasmKernels();
    expect(fast.losses).toEqual(ref.losses);
    expect(fast.w).toEqual(ref.w);
  } finally {
    useFusedLayers(prev);
  }
});

wasmTest('training steps with the fused layers agree with TF.js ops to float rounding, and leak nothing', () => {
  expect(tf.getBackend()).toBe('wasm');
  installWasmKernels();
  expect(fusedLayers()).toBe(true);
  threeSteps();
  const before = tf.memory().numTensors;
  const fused = threeSteps();
  expect(tf.memory().numTensors).toBe(before);
  useFusedLayers(false);
  const ops = threeSteps();
  useFusedLayers(true);
  fused.losses.forEach((l, i) => expect(Math.abs(l - ops.losses[i])).toBeLessThan(1e-4));
  let worst = 0;
  fused.w.forEach((w, i) => w.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - ops.w[i][j])))));
  expect(worst).toBeLessThan(1e-4);
  expect(fused.losses).not.toEqual(ops.losses); // a different code path was in fact taken
});
