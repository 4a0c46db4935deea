/**
 * BatchMatMul for TF.js's WASM backend, bit-identical to the one it replaces (see bmm.c for why and how). It takes
 * the cases TF.js's kernel sends to its scalar loop (a batch above 1 or a transpose flag), and the plain 2-D product
 * when its shared dimension is at most GEMM_MAX_K (XNNPACK's bits, faster there); larger plain products still go to
 * TF.js (XNNPACK), as do broadcast batches, empty tensors and other dtypes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BMM_WASM_BASE64 } from './bmmWasm';
import { KernelOverride, KernelSet, WasmBackendLike, float32Kernel, heapOffset, instantiate } from './wasmModule';

type Bmm = (a: number, b: number, out: number, scratch: number, batch: number, m: number, n: number, k: number, ta: number, tb: number) => void;
type Gemm = (a: number, b: number, out: number, m: number, n: number, k: number) => void;
type GemmBias = (a: number, b: number, bias: number, out: number, m: number, n: number, k: number) => void;
type AttnScores = (qkv: number, pkv: number, p: number, mask: number, scores: number, scratch: number, b: number, t: number, h: number, dh: number, scale: number) => void;
type AttnContext = (attn: number, qkv: number, pkv: number, p: number, out: number, scratch: number, b: number, t: number, h: number, dh: number) => void;
type AttnGrad = (dout: number, attn: number, qkv: number, pkv: number, p: number, dqkv: number, dpkv: number, scratch: number, b: number, t: number, h: number, dh: number, scale: number) => void;

/**
 * Plain products with a shared dimension up to this go to our gemm (bmm.c). It wins by 20-50% at K = 64-256, where
 * XNNPACK's per-tile overhead and packing are a large share of the work; past a few hundred XNNPACK's packed,
 * cache-blocked loop is the faster one.
 */
export const GEMM_MAX_K = 512;

export const batchMatMulOverride = new KernelOverride(tf.BatchMatMul);

/**
 * Two kernels of our own that layers.ts uses for dense layers, each with the bits of the TF.js ops it stands for:
 * - MATMUL_TN, a^T @ b for a [K, M], b [K, N] (a weight gradient) without the transposed copy (bmm.c's gemm_tn),
 *   as `tf.matMul(tf.transpose(a), b)`;
 * - DENSE, x @ w + b in one pass over the output (bmm.c's gemm with a bias), as `tf.add(tf.matMul(x, w), b)`, for
 *   shared dimensions up to GEMM_MAX_K.
 */
export const MATMUL_TN = 'RvptMatMulTN';
export const DENSE = 'RvptDense';
/**
 * Attention's core, one block's heads from the packed q/k/v projection (bmm.c's attn_* functions, the bits of the
 * composed ops they stand for in transformer.ts; the softmax between them stays TF.js's kernel):
 * - ATTN_SCORES, qkv [B*T, 3C] (+ mask [T, T]) -> scores [B*H, T, S] = (q * scale) k^T per head (+ mask);
 * - ATTN_CONTEXT, attn [B*H, T, S] and qkv -> [B*T, C], attn v per head with the heads merged;
 * - ATTN_GRAD, d out [B*T, C], attn and qkv -> d qkv [B*T, 3C].
 * With deep prompts, each also takes `shared` [P, 3C], the prompts' projection, whose keys and values every image
 * attends to after its own (S = T + P keys; without, S = T), and ATTN_GRAD also returns its gradient.
 * Attributes: tokens (T), heads, scale (q's factor, dh^-0.5).
 */
export const ATTN_SCORES = 'RvptAttnScores';
export const ATTN_CONTEXT = 'RvptAttnContext';
export const ATTN_GRAD = 'RvptAttnGrad';
export const productKernels = new KernelSet();

export function installBatchMatMul(backend: WasmBackendLike): void {
  const mod = instantiate(backend, BMM_WASM_BASE64);
  const bmm = mod.bmm as Bmm;
  const gemm = mod.gemm as GemmBias;
  const gemmTN = mod.gemm_tn as Gemm;
  const attnScores = mod.attn_scores as AttnScores;
  const attnContext = mod.attn_context as AttnContext;
  const attnGrad = mod.attn_grad as AttnGrad;
  const at = (t: tf.TensorInfo) => heapOffset(backend, t);
  // Transposed operands (bmm) and per-head slices (attention) are copied here first; grown on demand, kept for the
  // process.
  let scratch = { ptr: 0, bytes: 0 };
  const scratchFor = (bytes: number): number => {
    if (bytes > scratch.bytes) {
      if (scratch.ptr) backend.wasm._free(scratch.ptr);
      scratch = { ptr: backend.wasm._malloc(bytes) >>> 0, bytes };
    }
    return scratch.ptr;
  };
  const ptr = (t: tf.TensorInfo | null | undefined) => (t ? at(t) : 0);
  /** B, T, H, dh of a packed projection qkv [B*T, 3C] split in `heads` heads of T tokens; P shared rows [P, 3C]. */
  const attnDims = (kernel: string, qkv: tf.TensorInfo, shared: tf.TensorInfo | undefined, attrs: tf.NamedAttrMap) => {
    const heads = attrs.heads as number;
    const tokens = attrs.tokens as number;
    const [rows, c3] = qkv.shape;
    if (qkv.shape.length !== 2 || c3 % (3 * heads) !== 0 || rows % tokens !== 0) {
      throw new Error(`${kernel}: qkv [B*T, 3C] with T = ${tokens} and C divisible by ${heads} heads expected (got [${qkv.shape}]).`);
    }
    if (shared && (shared.shape.length !== 2 || shared.shape[1] !== c3)) throw new Error(`${kernel}: shared rows [P, ${c3}] expected (got [${shared.shape}]).`);
    return { b: rows / tokens, t: tokens, h: heads, dh: c3 / 3 / heads, p: shared ? shared.shape[0] : 0 };
  };
  productKernels.build([
    float32Kernel(ATTN_SCORES, ({ qkv, mask, shared }, attrs) => {
      const { b, t, h, dh, p } = attnDims(ATTN_SCORES, qkv, shared, attrs);
      if (mask && (p || mask.shape.length !== 2 || mask.shape[0] !== t || mask.shape[1] !== t)) {
        throw new Error(`${ATTN_SCORES}: a mask [${t}, ${t}] without shared rows expected (got [${mask.shape}]${p ? ` and ${p} shared rows` : ''}).`);
      }
      const out = backend.makeOutput([b * h, t, t + p], 'float32');
      attnScores(at(qkv), ptr(shared), p, ptr(mask), at(out), scratchFor((2 * t + p) * dh * 4), b, t, h, dh, attrs.scale as number);
      return out;
    }),
    float32Kernel(ATTN_CONTEXT, ({ attn, qkv, shared }, attrs) => {
      const { b, t, h, dh, p } = attnDims(ATTN_CONTEXT, qkv, shared, attrs);
      const out = backend.makeOutput([b * t, h * dh], 'float32');
      attnContext(at(attn), at(qkv), ptr(shared), p, at(out), p ? scratchFor((t + p) * dh * 4) : 0, b, t, h, dh);
      return out;
    }),
    float32Kernel(ATTN_GRAD, ({ dy, attn, qkv, shared }, attrs) => {
      const { b, t, h, dh, p } = attnDims(ATTN_GRAD, qkv, shared, attrs);
      const s = t + p;
      const dqkv = backend.makeOutput(qkv.shape, 'float32');
      const dShared = shared ? backend.makeOutput(shared.shape, 'float32') : null;
      attnGrad(at(dy), at(attn), at(qkv), ptr(shared), p, at(dqkv), ptr(dShared), scratchFor((2 * s * dh + t * dh + 2 * t * s + p * dh) * 4), b, t, h, dh, attrs.scale as number);
      return dShared ? [dqkv, dShared] : dqkv;
    }),
    float32Kernel(MATMUL_TN, ({ a, b }) => {
      if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[0] !== b.shape[0]) {
        throw new Error(`${MATMUL_TN}: a [K, M] and b [K, N] expected (got [${a.shape}] and [${b.shape}]).`);
      }
      const [k, m] = a.shape;
      const n = b.shape[1];
      const out = backend.makeOutput([m, n], 'float32');
      if (m * n > 0) gemmTN(at(a), at(b), at(out), m, n, k);
      return out;
    }),
    float32Kernel(DENSE, ({ x, w, b }) => {
      const [m, k] = x.shape;
      const n = w.shape[1];
      if (x.shape.length !== 2 || w.shape.length !== 2 || w.shape[0] !== k || b.shape.length !== 1 || b.shape[0] !== n || k === 0 || k > GEMM_MAX_K) {
        throw new Error(`${DENSE}: x [N, K], w [K, M], b [M] with 0 < K <= ${GEMM_MAX_K} expected (got [${x.shape}], [${w.shape}] and [${b.shape}]).`);
      }
      const out = backend.makeOutput([m, n], 'float32');
      if (m * n > 0) gemm(at(x), at(w), at(b), at(out), m, n, k);
      return out;
    }),
  ]);

  batchMatMulOverride.install((args) => {
    const { a, b } = args.inputs as unknown as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA: ta, transposeB: tb } = args.attrs as unknown as tf.BatchMatMulAttrs;
    const ar = a.shape.length;
    const br = b.shape.length;
    const k = ta ? a.shape[ar - 2] : a.shape[ar - 1];
    const m = ta ? a.shape[ar - 1] : a.shape[ar - 2];
    const n = tb ? b.shape[br - 2] : b.shape[br - 1];
    const kB = tb ? b.shape[br - 1] : b.shape[br - 2];
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    const plain = batchA === 1 && batchB === 1 && !ta && !tb;
    if ((plain && k > GEMM_MAX_K) || batchA !== batchB || k !== kB || m * n * k === 0 || a.dtype !== 'float32' || b.dtype !== 'float32') {
      return batchMatMulOverride.tfjs.kernelFunc(args);
    }
    const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)).concat([m, n]);
    const out = backend.makeOutput([batchA, m, n], 'float32');
    if (plain) {
      gemm(at(a), at(b), 0, at(out), m, n, k);
    } else {
      const sp = ta || tb ? scratchFor((m * k + k * n) * 4) : 0;
      bmm(at(a), at(b), at(out), sp, batchA, m, n, k, ta ? 1 : 0, tb ? 1 : 0);
    }
    (out as { shape: number[] }).shape = outShape;
    return out;
  });
}
