/**
 * Fused LayerNorm, QuickGELU and column-sum kernels (fused.c) as kernels of their own on the WASM backend, called
 * by src/model/layers.ts when `fusedLayers()` says they are in use, which is on WASM with our kernels installed.
 * Elsewhere (another backend, RVPT_WASM_KERNELS=0) layers.ts computes the same formulas with TF.js ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_WASM_BASE64 } from './fusedWasm';
import { WasmBackendLike, heapOffset, instantiate } from './wasmModule';

export const LAYER_NORM = 'RvptLayerNorm';
export const LAYER_NORM_GRAD = 'RvptLayerNormGrad';
export const QUICK_GELU = 'RvptQuickGelu';
export const QUICK_GELU_GRAD = 'RvptQuickGeluGrad';
export const COLUMN_SUM = 'RvptColumnSum';
const NAMES = [LAYER_NORM, LAYER_NORM_GRAD, QUICK_GELU, QUICK_GELU_GRAD, COLUMN_SUM];

type Ptr = number;
let configs: tf.KernelConfig[] = [];

function check(name: string, ts: tf.TensorInfo[]): void {
  for (const t of ts) if (t.dtype !== 'float32') throw new Error(`${name}: float32 inputs only (got ${t.dtype}).`);
}

/** Build the module in the backend's memory and describe its kernels (registered by `registerFusedKernels`). */
export function buildFusedKernels(backend: WasmBackendLike): void {
  const ex = instantiate(backend, FUSED_WASM_BASE64);
  const at = (t: tf.TensorInfo): Ptr => heapOffset(backend, t);
  const rowsCols = (x: tf.TensorInfo) => [tf.util.sizeFromShape(x.shape.slice(0, -1)), x.shape[x.shape.length - 1]];
  configs = [
    {
      kernelName: LAYER_NORM,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs }) => {
        const { x, gamma, beta } = inputs as unknown as Record<string, tf.TensorInfo>;
        check(LAYER_NORM, [x, gamma, beta]);
        const [n, c] = rowsCols(x);
        const y = backend.makeOutput(x.shape.slice(), 'float32');
        const xhat = backend.makeOutput(x.shape.slice(), 'float32');
        const rstd = backend.makeOutput([n], 'float32');
        if (n * c > 0) (ex.layernorm_fwd as (...a: number[]) => void)(at(x), at(gamma), at(beta), at(y), at(xhat), at(rstd), n, c, (attrs as { eps: number }).eps);
        return [y, xhat, rstd];
      },
    },
    {
      kernelName: LAYER_NORM_GRAD,
      backendName: 'wasm',
      kernelFunc: ({ inputs }) => {
        const { dy, xhat, rstd, gamma } = inputs as unknown as Record<string, tf.TensorInfo>;
        check(LAYER_NORM_GRAD, [dy, xhat, rstd, gamma]);
        const [n, c] = rowsCols(dy);
        const dx = backend.makeOutput(dy.shape.slice(), 'float32');
        const dgamma = backend.makeOutput([c], 'float32');
        const dbeta = backend.makeOutput([c], 'float32');
        (ex.layernorm_bwd as (...a: number[]) => void)(at(dy), at(xhat), at(rstd), at(gamma), at(dx), at(dgamma), at(dbeta), n, c);
        return [dx, dgamma, dbeta];
      },
    },
    {
      kernelName: QUICK_GELU,
      backendName: 'wasm',
      kernelFunc: ({ inputs }) => {
        const { x } = inputs as unknown as Record<string, tf.TensorInfo>;
        check(QUICK_GELU, [x]);
        const y = backend.makeOutput(x.shape.slice(), 'float32');
        const s = backend.makeOutput(x.shape.slice(), 'float32');
        (ex.quickgelu_fwd as (...a: number[]) => void)(at(x), at(y), at(s), tf.util.sizeFromShape(x.shape));
        return [y, s];
      },
    },
    {
      kernelName: QUICK_GELU_GRAD,
      backendName: 'wasm',
      kernelFunc: ({ inputs }) => {
        const { dy, x, s } = inputs as unknown as Record<string, tf.TensorInfo>;
        check(QUICK_GELU_GRAD, [dy, x, s]);
        const dx = backend.makeOutput(dy.shape.slice(), 'float32');
        (ex.quickgelu_bwd as (...a: number[]) => void)(at(dy), at(x), at(s), at(dx), tf.util.sizeFromShape(dy.shape));
        return dx;
      },
    },
    {
      kernelName: COLUMN_SUM,
      backendName: 'wasm',
      kernelFunc: ({ inputs }) => {
        const { x } = inputs as unknown as Record<string, tf.TensorInfo>;
        check(COLUMN_SUM, [x]);
        const [n, c] = rowsCols(x);
        const out = backend.makeOutput([c], 'float32');
        (ex.column_sum as (...a: number[]) => void)(at(x), at(out), n, c);
        return out;
      },
    },
  ];
}

/** Register the kernels last built (replacing any of an earlier backend instance's). */
export function registerFusedKernels(): void {
  unregisterFusedKernels();
  for (const k of configs) tf.registerKernel(k);
}

export function unregisterFusedKernels(): void {
  for (const name of NAMES) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
}
