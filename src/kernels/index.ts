/**
 * Our WASM kernels for TF.js's WASM backend (src/kernels/*.c): the batched matmul, the row copies behind
 * SplitV, Concat and 2-D Slice, and Sub / RealDiv by a per-channel vector. Each gives the same bits as the TF.js kernel it replaces (test/kernels.test.ts),
 * only faster. initBackend() installs them on WASM; RVPT_WASM_KERNELS=0 keeps TF.js's own.
 */
import * as tf from '@tensorflow/tfjs-core';
import { batchMatMulOverride, installBatchMatMul } from './batchMatMul';
import { broadcastOverrides, installBroadcastKernels } from './broadcast';
import { copyOverrides, installCopyKernels } from './copy';
import { WasmBackendLike } from './wasmModule';

let installedOn: WasmBackendLike | null = null;

/** Install on the current backend when it is WASM; returns whether they are in use. */
export function installWasmKernels(): boolean {
  if (tf.getBackend() !== 'wasm') return false;
  const backend = tf.backend() as unknown as WasmBackendLike;
  if (installedOn === backend) return true;
  installBatchMatMul(backend);
  installCopyKernels(backend);
  installBroadcastKernels(backend);
  installedOn = backend;
  return true;
}

/** Put TF.js's own kernels back (tests and benchmarks compare both). */
export function uninstallWasmKernels(): void {
  for (const o of [batchMatMulOverride, ...copyOverrides, ...broadcastOverrides]) o.restore();
  installedOn = null;
}

export function wasmKernelsInstalled(): boolean {
  return installedOn !== null && tf.getBackend() === 'wasm';
}
