/**
 * The few layers MiniCLIP needs, written so that forward and backward stay on the WASM backend's fast kernels.
 *
 * Why hand-written gradients: TF.js differentiates matMul with transposeA/transposeB flags, which the WASM
 * backend runs 10-20x slower than a plain 2-D product (DESIGN.md section 5). An explicit transpose plus a plain
 * matMul is cheap, so dense layers carry their own gradient; on WASM their forward pass and weight gradient go
 * through two kernels of ours that give the same bits with less work (src/kernels/batchMatMul.ts). LayerNorm and
 * QuickGELU get closed-form gradients because autodiff would record half a dozen elementwise kernels for each; on
 * WASM each is one fused kernel of ours (src/kernels/fused.c), elsewhere the same formulas in TF.js ops. On WASM,
 * attention's core (heads and products around TF.js's softmax, and its whole gradient) is kernels of ours too, with
 * the composed ops' bits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fusedLayers, wasmKernelsInstalled } from '../kernels';
import { ATTN_CONTEXT, ATTN_GRAD, ATTN_SCORES, DENSE, GEMM_MAX_K, MATMUL_TN } from '../kernels/batchMatMul';
import { COLUMN_SUM, LAYER_NORM, LAYER_NORM_GRAD, QUICK_GELU, QUICK_GELU_GRAD } from '../kernels/fused';

type GradResult = { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };
/** tf.customGrad with the caller's signature (TF.js types its inputs as an untyped rest list). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function withGrad<F>(f: (...args: any[]) => GradResult): F {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as F;
}

/**
 * Column sums of a 2-D tensor: our fused kernel on WASM, else a [1, N] @ [N, C] product (WASM's Sum over axis 0
 * transposes first and runs ~5x slower than this GEMV).
 */
export function sumRows(x: tf.Tensor2D): tf.Tensor1D {
  if (fusedLayers()) return tf.engine().runKernel(COLUMN_SUM, { x }) as tf.Tensor1D;
  return tf.reshape(tf.matMul(tf.ones([1, x.shape[0]]), x), [x.shape[1]]);
}

/**
 * v [C] as `rows` identical rows [rows, C] (the class token of every image). Why not tf.tile: its gradient is one
 * slice and one add per row (256 kernels, 4.3 ms, for a batch of 128), and WASM's Tile kernel is slow. A broadcast
 * product gives the same values; its gradient is one column sum, which adds the rows in the same order from zero as
 * the tile gradient's chain of adds, so the bits are unchanged.
 */
export function repeatRows(v: tf.Tensor, rows: number): tf.Tensor2D {
  return withGrad<(v: tf.Tensor) => tf.Tensor2D>((v: tf.Tensor) => ({
    value: tf.mul(tf.ones([rows, 1]), tf.reshape(v, [1, -1])),
    gradFunc: (dy: tf.Tensor) => tf.reshape(sumRows(dy as tf.Tensor2D), v.shape),
  }))(v);
}

let weightsFrozen = false;

/**
 * Run `f` (a forward and backward pass) with every dense layer's weights frozen: their gradients are not computed.
 * Why: tf.customGrad evaluates a gradient function for all inputs at once, and TF.js keeps what it returns until the
 * whole backward pass ends, so prompt tuning (only the prompts learn) would hold a weight-sized gradient per layer it
 * never uses: at ViT-B/32 size that made one RVPT step of 8 images exceed WASM's 4 GiB heap. A frozen weight gets a
 * [0]-shaped placeholder, which TF.js rejects with a shape error if that weight was in fact being differentiated.
 */
export function withFrozenWeights<T>(f: () => T): T {
  const prev = weightsFrozen;
  weightsFrozen = true;
  try {
    return f();
  } finally {
    weightsFrozen = prev;
  }
}

/** dy @ w^T with the transposed copy released at once (it is weight-sized; XNNPACK also packs a copy of it). */
function inputGrad(dy: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const wt = tf.transpose(w) as tf.Tensor2D;
  const dx = tf.matMul(dy, wt) as tf.Tensor2D;
  wt.dispose();
  return dx;
}

/**
 * x^T @ dy, a weight's gradient: on WASM, for layers up to GEMM_MAX_K wide, our kernel, which reads x in place (same
 * bits, no transposed copy of the activations); else an explicit transpose and a plain product (at ViT-B/32's widths
 * XNNPACK's packed product is faster than ours even with the copy).
 */
export function weightGrad(x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  if (wasmKernelsInstalled() && x.shape[1] <= GEMM_MAX_K) return tf.engine().runKernel(MATMUL_TN, { a: x, b: dy }) as tf.Tensor2D;
  return tf.matMul(tf.transpose(x), dy);
}

/** x @ w + b: on WASM one kernel of ours (same bits, one pass over the output), elsewhere a product and an add. */
function affine(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  if (wasmKernelsInstalled() && x.shape[1] > 0 && x.shape[1] <= GEMM_MAX_K) return tf.engine().runKernel(DENSE, { x, w, b }) as tf.Tensor2D;
  return tf.add(tf.matMul(x, w), b);
}

/** y = x @ w + b for x [N, in], w [in, out], b [out]. */
export const dense = withGrad<(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D>((x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: affine(x, w, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const dy2 = dy as tf.Tensor2D;
      if (weightsFrozen) return [inputGrad(dy2, ws), tf.zeros([0]), tf.zeros([0])];
      return [inputGrad(dy2, ws), weightGrad(xs, dy2), sumRows(dy2)];
    },
  };
});

/** y = x @ w (no bias), same fast gradient. */
export const denseNoBias = withGrad<(x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D>((x: tf.Tensor2D, w: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      if (weightsFrozen) return [inputGrad(dy as tf.Tensor2D, ws), tf.zeros([0])];
      return [inputGrad(dy as tf.Tensor2D, ws), weightGrad(xs, dy as tf.Tensor2D)];
    },
  };
});

/**
 * Multi-head attention's core on WASM: softmax((q * dh^-0.5) k^T + mask) v for each of `heads` heads, from the packed
 * projection qkv [B*T, 3C] to the merged heads [B*T, C]; `shared` [P, 3C] (deep prompts' projection) adds P keys and
 * values every image attends to. Three kernels of ours around TF.js's softmax, and one for the whole backward pass,
 * with the bits of the split / transpose / batched-product ops that transformer.ts composes elsewhere
 * (src/kernels/bmm.c says how); about 30 kernels fewer per block.
 */
export function attentionCore(qkv: tf.Tensor2D, tokens: number, heads: number, mask: tf.Tensor2D | null, shared?: tf.Tensor2D): tf.Tensor2D {
  const attrs = { tokens, heads, scale: (qkv.shape[1] / 3 / heads) ** -0.5 } as unknown as tf.NamedAttrMap;
  const run = (kernel: string, inputs: Record<string, tf.Tensor | undefined | null>) =>
    tf.engine().runKernel(kernel, Object.fromEntries(Object.entries(inputs).filter(([, t]) => t)) as tf.NamedTensorMap, attrs);
  const core = (q: tf.Tensor2D, sh: tf.Tensor2D | undefined, save: tf.GradSaveFunc): GradResult => {
    const attn = tf.softmax(run(ATTN_SCORES, { qkv: q, mask, shared: sh }) as tf.Tensor3D);
    save(sh ? [q, attn, sh] : [q, attn]);
    return {
      value: run(ATTN_CONTEXT, { attn, qkv: q, shared: sh }) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => run(ATTN_GRAD, { dy, attn: saved[1], qkv: saved[0], shared: saved[2] }) as tf.Tensor | tf.Tensor[],
    };
  };
  if (!shared) return withGrad<(q: tf.Tensor2D) => tf.Tensor2D>((q: tf.Tensor2D, save: tf.GradSaveFunc) => core(q, undefined, save))(qkv);
  return withGrad<(q: tf.Tensor2D, sh: tf.Tensor2D) => tf.Tensor2D>((q: tf.Tensor2D, sh: tf.Tensor2D, save: tf.GradSaveFunc) => core(q, sh, save))(qkv, shared);
}

/** LayerNorm over the last axis of x [N, C] (torch eps 1e-5). */
export const layerNorm = withGrad<(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D) => tf.Tensor2D>((x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, save: tf.GradSaveFunc) => {
  const eps = 1e-5;
  if (fusedLayers()) {
    const [y, xhat, rstd] = tf.engine().runKernel(LAYER_NORM, { x, gamma, beta }, { eps } as unknown as tf.NamedAttrMap) as tf.Tensor[];
    save([xhat, rstd, gamma]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, rs, g] = saved;
        return tf.engine().runKernel(LAYER_NORM_GRAD, { dy, xhat: xh, rstd: rs, gamma: g }) as tf.Tensor[];
      },
    };
  }
  const mean = tf.mean(x, 1, true);
  const xc = tf.sub(x, mean);
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), 1, true), eps));
  const xhat = tf.mul(xc, rstd);
  save([xhat, rstd, gamma]);
  return {
    value: tf.add(tf.mul(xhat, gamma), beta),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xh, rs, g] = saved;
      const dxhat = tf.mul(dy, g);
      // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
      const dx = tf.mul(rs, tf.sub(tf.sub(dxhat, tf.mean(dxhat, 1, true)), tf.mul(xh, tf.mean(tf.mul(dxhat, xh), 1, true))));
      return [dx, sumRows(tf.mul(dy, xh) as tf.Tensor2D), sumRows(dy as tf.Tensor2D)];
    },
  };
});

/** CLIP's QuickGELU, x * sigmoid(1.702 x). */
export const quickGelu = withGrad<(x: tf.Tensor) => tf.Tensor>((x: tf.Tensor, save: tf.GradSaveFunc) => {
  if (fusedLayers()) {
    const [y, s] = tf.engine().runKernel(QUICK_GELU, { x }) as tf.Tensor[];
    save([x, s]);
    return { value: y, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.engine().runKernel(QUICK_GELU_GRAD, { dy, x: saved[0], s: saved[1] }) as tf.Tensor] };
  }
  const s = tf.sigmoid(tf.mul(x, 1.702));
  save([x, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ss] = saved;
      // d/dx x*s = s + 1.702 x s (1 - s)
      return [tf.mul(dy, tf.add(ss, tf.mul(tf.mul(tf.mul(xs, 1.702), ss), tf.sub(1, ss))))];
    },
  };
});

/**
 * Embedding lookup. Its gradient is a scatter-add: TF.js's own gather gradient needs UnsortedSegmentSum, which
 * the WASM backend lacks, so the backward pass is written with scatterND (which sums duplicate indices).
 */
export const embeddingLookup = withGrad<(table: tf.Tensor2D, ids: tf.Tensor1D) => tf.Tensor2D>((table: tf.Tensor2D, ids: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([ids]);
  const [vocab, dim] = table.shape;
  return {
    value: tf.gather(table, ids),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const idx = tf.reshape(saved[0], [-1, 1]);
      return [tf.scatterND(idx, dy, [vocab, dim]), tf.zerosLike(saved[0])];
    },
  };
});

/** Row-wise L2 normalisation. */
export function l2normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.add(tf.norm(x, 'euclidean', 1, true), 1e-8));
}

/** a @ b^T with an explicit transpose (the fast path on WASM). */
export function matMulBT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return tf.matMul(a, tf.transpose(b));
}
