/**
 * Fused LayerNorm, QuickGELU and column-sum kernels (fused.c) as kernels of their own on the WASM backend, called
 * by src/model/layers.ts when `fusedLayers()` says they are in use, which is on WASM with our kernels installed.
 * Elsewhere (another backend, RVPT_WASM_KERNELS=0) layers.ts computes the same formulas with TF.js ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_WASM_BASE64 } from './fusedWasm';
import { KernelSet, WasmBackendLike, float32Kernel as kernel, heapOffset, instantiate } from './wasmModule';

export const LAYER_NORM = 'RvptLayerNorm';
export const LAYER_NORM_GRAD = 'RvptLayerNormGrad';
export const QUICK_GELU = 'RvptQuickGelu';
export const QUICK_GELU_GRAD = 'RvptQuickGeluGrad';
export const COLUMN_SUM = 'RvptColumnSum';
export const fusedKernels = new KernelSet();

/** Build the module in the backend's memory and describe its kernels (registered by `fusedKernels.register()`). */
export function buildFusedKernels(backend: WasmBackendLike): void {
  const ex = instantiate(backend, FUSED_WASM_BASE64);
  const fn = (name: string) => ex[name] as (...args: number[]) => void;
  const at = (t: tf.TensorInfo): number => heapOffset(backend, t);
  const out = (shape: number[]) => backend.makeOutput(shape.slice(), 'float32');
  const rowsCols = (x: tf.TensorInfo) => [tf.util.sizeFromShape(x.shape.slice(0, -1)), x.shape[x.shape.length - 1]];
  fusedKernels.build([
    kernel(LAYER_NORM, ({ x, gamma, beta }, attrs) => {
      const [n, c] = rowsCols(x);
      const [y, xhat, rstd] = [out(x.shape), out(x.shape), out([n])];
      if (n * c > 0) fn('layernorm_fwd')(at(x), at(gamma), at(beta), at(y), at(xhat), at(rstd), n, c, (attrs as unknown as { eps: number }).eps);
      return [y, xhat, rstd];
    }),
    kernel(LAYER_NORM_GRAD, ({ dy, xhat, rstd, gamma }) => {
      const [n, c] = rowsCols(dy);
      const [dx, dgamma, dbeta] = [out(dy.shape), out([c]), out([c])];
      fn('layernorm_bwd')(at(dy), at(xhat), at(rstd), at(gamma), at(dx), at(dgamma), at(dbeta), n, c);
      return [dx, dgamma, dbeta];
    }),
    kernel(QUICK_GELU, ({ x }) => {
      const [y, s] = [out(x.shape), out(x.shape)];
      fn('quickgelu_fwd')(at(x), at(y), at(s), tf.util.sizeFromShape(x.shape));
      return [y, s];
    }),
    kernel(QUICK_GELU_GRAD, ({ dy, x, s }) => {
      const dx = out(dy.shape);
      fn('quickgelu_bwd')(at(dy), at(x), at(s), at(dx), tf.util.sizeFromShape(dy.shape));
      return dx;
    }),
    kernel(COLUMN_SUM, ({ x }) => {
      const [n, c] = rowsCols(x);
      const sums = out([c]);
      fn('column_sum')(at(x), at(sums), n, c);
      return sums;
    }),
  ]);
}
