/**
 * A faster BatchMatMul for TF.js's WASM backend, bit-identical to the one it replaces (see bmm.c for why and how).
 *
 * Installed by initBackend() when the backend is WASM (set RVPT_FAST_BMM=0 to keep TF.js's own kernel). It takes
 * only the cases TF.js's kernel sends to its scalar loop (a batch above 1 or a transpose flag); the plain 2-D
 * product still goes to TF.js (XNNPACK), as do broadcast batches and empty tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BMM_WASM_BASE64 } from './bmmWasm';

interface WasmBackendLike {
  wasm: { asm: { memory: WebAssembly.Memory }; _malloc(bytes: number): number; _free(ptr: number): void };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

type Bmm = (a: number, b: number, out: number, scratch: number, batch: number, m: number, n: number, k: number, ta: number, tb: number) => void;

let installedOn: WasmBackendLike | null = null;
let tfjsKernel: tf.KernelConfig | null = null;
let scratch = { ptr: 0, bytes: 0 };

function scratchFor(backend: WasmBackendLike, bytes: number): number {
  if (bytes > scratch.bytes) {
    if (scratch.ptr) backend.wasm._free(scratch.ptr);
    scratch = { ptr: backend.wasm._malloc(bytes) >>> 0, bytes };
  }
  return scratch.ptr;
}

/** Replace the WASM backend's BatchMatMul kernel; returns false (and changes nothing) on another backend. */
export function installFastBatchMatMul(): boolean {
  if (tf.getBackend() !== 'wasm') return false;
  const backend = tf.backend() as unknown as WasmBackendLike;
  if (installedOn === backend) return true;
  const original = tfjsKernel ?? tf.getKernel(tf.BatchMatMul, 'wasm');
  if (!original) return false;
  tfjsKernel = original;
  const memory = backend.wasm.asm.memory;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(BMM_WASM_BASE64, 'base64')), { env: { memory } });
  const bmm = instance.exports.bmm as Bmm;
  scratch = { ptr: 0, bytes: 0 };

  const kernelFunc: tf.KernelFunc = (args) => {
    const { a, b } = args.inputs as tf.BatchMatMulInputs as unknown as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA: ta, transposeB: tb } = args.attrs as unknown as tf.BatchMatMulAttrs;
    const ar = a.shape.length;
    const br = b.shape.length;
    const k = ta ? a.shape[ar - 2] : a.shape[ar - 1];
    const m = ta ? a.shape[ar - 1] : a.shape[ar - 2];
    const n = tb ? b.shape[br - 2] : b.shape[br - 1];
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    const kB = tb ? b.shape[br - 1] : b.shape[br - 2];
    const tfjsFastPath = batchA === 1 && batchB === 1 && !ta && !tb;
    if (tfjsFastPath || batchA !== batchB || k !== kB || m * n * k === 0 || a.dtype !== 'float32' || b.dtype !== 'float32') {
      return original.kernelFunc(args);
    }
    const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)).concat([m, n]);
    const out = backend.makeOutput([batchA, m, n], 'float32');
    const sp = ta || tb ? scratchFor(backend, (m * k + k * n) * 4) : 0;
    const ptr = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId).memoryOffset;
    bmm(ptr(a), ptr(b), ptr(out), sp, batchA, m, n, k, ta ? 1 : 0, tb ? 1 : 0);
    (out as { shape: number[] }).shape = outShape;
    return out;
  };
  tf.unregisterKernel(tf.BatchMatMul, 'wasm');
  tf.registerKernel({ kernelName: tf.BatchMatMul, backendName: 'wasm', kernelFunc });
  installedOn = backend;
  return true;
}

/** Put TF.js's own kernel back (tests and `rvpt bench --compare` measure both). */
export function uninstallFastBatchMatMul(): void {
  if (!installedOn || !tfjsKernel) return;
  tf.unregisterKernel(tf.BatchMatMul, 'wasm');
  tf.registerKernel(tfjsKernel);
  installedOn = null;
}

export function fastBatchMatMulInstalled(): boolean {
  return installedOn !== null && tf.getBackend() === 'wasm';
}
