/**
 * Our WASM kernels for TF.js's WASM backend (src/kernels/*.c): the batched matmul; the copies behind SplitV,
 * Concat, 2-D Slice, GatherV2 and Transpose, and a zero-copy Identity; Sub / RealDiv by a per-channel vector. Each
 * gives the same bits as the TF.js kernel it replaces (test/kernels.test.ts), only faster. initBackend() installs
 * them on WASM; RVPT_WASM_KERNELS=0 keeps TF.js's own.
 */
import * as tf from '@tensorflow/tfjs-core';
import { batchMatMulOverride, installBatchMatMul } from './batchMatMul';
import { broadcastOverrides, installBroadcastKernels } from './broadcast';
import { copyOverrides, installCopyKernels } from './copy';
import { WasmBackendLike } from './wasmModule';

const overrides = () => [batchMatMulOverride, ...copyOverrides, ...broadcastOverrides];
/** The backend our modules were instantiated in (they live in its memory), and whether ours are registered. */
let builtFor: WasmBackendLike | null = null;
let active = false;

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
    builtFor = backend;
  }
  active = true;
  return true;
}

/** Put TF.js's own kernels back (tests and benchmarks compare both); installWasmKernels() brings ours back. */
export function uninstallWasmKernels(): void {
  for (const o of overrides()) o.restore();
  active = false;
}

export function wasmKernelsInstalled(): boolean {
  return active && tf.getBackend() === 'wasm';
}
