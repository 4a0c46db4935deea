/**
 * Our WASM kernels for TF.js's WASM backend (src/kernels/*.c). Two kinds:
 * - replacements of TF.js kernels that give the same bits, only faster (test/kernels.test.ts): the batched matmul
 *   and the plain one at small shared dimensions, and two kernels of our own for dense layers (x^T @ dy without its
 *   transposed copy, x @ w + b in one pass);
 *   the copies behind SplitV, Concat, 2-D Slice, GatherV2 and Transpose, and a zero-copy Identity; Sub / RealDiv
 *   by a per-channel vector;
 * - fused layers of our own (fused.c: LayerNorm, QuickGELU, column sums, with their gradients), which src/model/
 *   layers.ts calls instead of composing TF.js ops; they agree with those to float rounding, not bit for bit.
 * initBackend() installs both on WASM; RVPT_WASM_KERNELS=0 keeps TF.js's kernels and ops throughout.
 */
import * as tf from '@tensorflow/tfjs-core';
import { batchMatMulOverride, installBatchMatMul, productKernels } from './batchMatMul';
import { broadcastOverrides, installBroadcastKernels } from './broadcast';
import { copyOverrides, installCopyKernels } from './copy';
import { buildFusedKernels, fusedKernels } from './fused';
import { WasmBackendLike } from './wasmModule';

const overrides = () => [batchMatMulOverride, ...copyOverrides, ...broadcastOverrides];
/** The backend our modules were instantiated in (they live in its memory), and whether ours are registered. */
let builtFor: WasmBackendLike | null = null;
let active = false;
let fused = true;

/** Install on the current backend when it is WASM; returns whether they are in use. */
export function installWasmKernels(): boolean {
  if (tf.getBackend() !== 'wasm') return false;
  const backend = tf.backend() as unknown as WasmBackendLike;
  if (builtFor === backend) {
    if (!active) for (const o of overrides()) o.reinstate();
  } else {
    installBatchMatMul(backend);
    installCopyKernels(backend);
    installBroadcastKernels(backend);
    buildFusedKernels(backend);
    builtFor = backend;
  }
  productKernels.register();
  fusedKernels.register();
  active = true;
  return true;
}

/** Put TF.js's own kernels back (tests and benchmarks compare both); installWasmKernels() brings ours back. */
export function uninstallWasmKernels(): void {
  for (const o of overrides()) o.restore();
  productKernels.unregister();
  fusedKernels.unregister();
  active = false;
}

/** Whether layers.ts uses the fused layers (our kernels installed, and not switched off by `useFusedLayers`). */
export function fusedLayers(): boolean {
  return fused && wasmKernelsInstalled();
}

/**
 * Switch the fused layers off (or back on) while keeping the exact replacements: tests compare TF.js's kernels with
 * ours bit for bit on the same composed ops. Returns the previous setting.
 */
export function useFusedLayers(on: boolean): boolean {
  const prev = fused;
  fused = on;
  return prev;
}

export function wasmKernelsInstalled(): boolean {
  return active && tf.getBackend() === 'wasm';
}
