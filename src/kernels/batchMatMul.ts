/**
 * BatchMatMul for TF.js's WASM backend, bit-identical to the one it replaces (see bmm.c for why and how). It takes
 * only the cases TF.js's kernel sends to its scalar loop (a batch above 1 or a transpose flag); the plain 2-D
 * product still goes to TF.js (XNNPACK), as do broadcast batches, empty tensors and other dtypes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BMM_WASM_BASE64 } from './bmmWasm';
import { KernelOverride, WasmBackendLike, heapOffset, instantiate } from './wasmModule';

type Bmm = (a: number, b: number, out: number, scratch: number, batch: number, m: number, n: number, k: number, ta: number, tb: number) => void;

export const batchMatMulOverride = new KernelOverride(tf.BatchMatMul);

export function installBatchMatMul(backend: WasmBackendLike): void {
  const bmm = instantiate(backend, BMM_WASM_BASE64).bmm as Bmm;
  // Transposed operands are copied here first (M*K + K*N floats); grown on demand, kept for the process.
  let scratch = { ptr: 0, bytes: 0 };
  const scratchFor = (bytes: number): number => {
    if (bytes > scratch.bytes) {
      if (scratch.ptr) backend.wasm._free(scratch.ptr);
      scratch = { ptr: backend.wasm._malloc(bytes) >>> 0, bytes };
    }
    return scratch.ptr;
  };

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
    const tfjsFastPath = batchA === 1 && batchB === 1 && !ta && !tb;
    if (tfjsFastPath || batchA !== batchB || k !== kB || m * n * k === 0 || a.dtype !== 'float32' || b.dtype !== 'float32') {
      return batchMatMulOverride.tfjs.kernelFunc(args);
    }
    const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)).concat([m, n]);
    const out = backend.makeOutput([batchA, m, n], 'float32');
    const sp = ta || tb ? scratchFor((m * k + k * n) * 4) : 0;
    bmm(heapOffset(backend, a), heapOffset(backend, b), heapOffset(backend, out), sp, batchA, m, n, k, ta ? 1 : 0, tb ? 1 : 0);
    (out as { shape: number[] }).shape = outShape;
    return out;
  });
}
