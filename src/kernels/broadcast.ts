/**
 * Sub and RealDiv of a tensor by a short vector along its last axis (CLIP's per-channel image normalisation), in
 * WASM (see broadcast.c for why). Single IEEE operations: the same bits as TF.js's. Everything else goes to TF.js's
 * kernels, which are as fast as ours once the vector is longer than a few elements (measured: equal at 64).
 */
import * as tf from '@tensorflow/tfjs-core';
import { BROADCAST_WASM_BASE64 } from './broadcastWasm';
import { KernelOverride, WasmBackendLike, heapOffset, instantiate } from './wasmModule';

type LastAxisOp = (a: number, b: number, out: number, n: number, c: number) => void;

/** Longest broadcast vector taken (TF.js's kernel is 4-9x slower at 3 channels, as fast at 64). */
const MAX_VECTOR = 8;

export const broadcastOverrides = [new KernelOverride(tf.Sub), new KernelOverride(tf.RealDiv)];

export function installBroadcastKernels(backend: WasmBackendLike): void {
  const ex = instantiate(backend, BROADCAST_WASM_BASE64);
  const ops = [ex.sub_last as LastAxisOp, ex.div_last as LastAxisOp];
  broadcastOverrides.forEach((o, i) => {
    o.install((args) => {
      const { a, b } = args.inputs as unknown as { a: tf.TensorInfo; b: tf.TensorInfo };
      const c = b.shape[0];
      const ok = a.dtype === 'float32' && b.dtype === 'float32' && b.shape.length === 1 && a.shape.length >= 2 && a.shape[a.shape.length - 1] === c && c <= MAX_VECTOR && c > 0;
      const n = tf.util.sizeFromShape(a.shape);
      if (!ok || n === 0) return o.tfjs.kernelFunc(args);
      const out = backend.makeOutput(a.shape.slice(), 'float32');
      ops[i](heapOffset(backend, a), heapOffset(backend, b), heapOffset(backend, out), n, c);
      return out;
    });
  });
}
