/**
 * SplitV, Concat, 2-D Slice, GatherV2 and Transpose for TF.js's WASM backend as copies in WASM (see copy.c for
 * why), and Identity as no copy at all. Pure data movement: outputs are the same bits as TF.js's. Other dtypes,
 * and the cases listed at each kernel, go to TF.js's own kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import { COPY_WASM_BASE64 } from './copyWasm';
import { KernelOverride, WasmBackendLike, heapOffset, instantiate } from './wasmModule';

type CopyRows = (src: number, dst: number, rows: number, cols: number, srcStride: number, dstStride: number) => void;
type GatherRows = (table: number, idx: number, out: number, n: number, len: number) => void;
type TransposeItems = (src: number, dst: number, batch: number, rows: number, cols: number, item: number) => void;

const FOUR_BYTES = new Set<tf.DataType>(['float32', 'int32']);
const prod = (xs: number[]) => xs.reduce((a, b) => a * b, 1);

export const copyOverrides = [new KernelOverride(tf.SplitV), new KernelOverride(tf.Concat), new KernelOverride(tf.Slice), new KernelOverride(tf.GatherV2), new KernelOverride(tf.Transpose), new KernelOverride(tf.Identity)];

/**
 * A permutation that swaps two adjacent groups of axes, once size-1 axes are dropped, as a batch of 2-D transposes
 * of `item`-element blocks: [rows, cols] -> [cols, rows]. Null for any other permutation (or none at all).
 */
export function asBlockTranspose(shape: number[], perm: number[]): { batch: number; rows: number; cols: number; item: number } | null {
  const keep = shape.map((d, i) => (d === 1 ? -1 : i)).filter((i) => i >= 0);
  const rank = new Map(keep.map((a, i) => [a, i]));
  const p = perm.filter((a) => shape[a] !== 1).map((a) => rank.get(a)!);
  const s = keep.map((a) => shape[a]);
  let k = 0;
  while (k < p.length && p[k] === k) k++;
  let t = p.length - 1;
  while (t >= 0 && p[t] === t) t--;
  if (k >= t) return null;
  // The middle must read [b..t, k..b-1]: the group starting at axis b moved in front of the one starting at k.
  const b = p[k];
  for (let i = k; i <= t; i++) {
    const want = i - k < t - b + 1 ? b + (i - k) : k + (i - k - (t - b + 1));
    if (p[i] !== want) return null;
  }
  return { batch: prod(s.slice(0, k)), rows: prod(s.slice(k, b)), cols: prod(s.slice(b, t + 1)), item: prod(s.slice(t + 1)) };
}

export function installCopyKernels(backend: WasmBackendLike): void {
  const ex = instantiate(backend, COPY_WASM_BASE64);
  const copyRows = ex.copy_rows as CopyRows;
  const gatherRows = ex.gather_rows as GatherRows;
  const transposeItems = ex.transpose_items as TransposeItems;
  const at = (t: tf.TensorInfo, elements: number) => heapOffset(backend, t) + 4 * elements;
  const [splitV, concat, slice, gather, transpose, identity] = copyOverrides;

  splitV.install((args) => {
    const x = (args.inputs as unknown as { x: tf.TensorInfo }).x;
    const { numOrSizeSplits, axis } = args.attrs as unknown as tf.SplitVAttrs;
    if (!FOUR_BYTES.has(x.dtype)) return splitV.tfjs.kernelFunc(args);
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, numOrSizeSplits, ax);
    const rows = prod(x.shape.slice(0, ax));
    const rowLength = prod(x.shape.slice(ax));
    const after = prod(x.shape.slice(ax + 1));
    let offset = 0;
    return sizes.map((s) => {
      const shape = x.shape.slice();
      shape[ax] = s;
      const out = backend.makeOutput(shape, x.dtype);
      if (s * after > 0 && rows > 0) copyRows(at(x, offset), at(out, 0), rows, s * after, rowLength, s * after);
      offset += s * after;
      return out;
    });
  });

  concat.install((args) => {
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const dtype = inputs[0].dtype;
    const nonEmpty = inputs.filter((t) => prod(t.shape) > 0);
    if (!FOUR_BYTES.has(dtype) || nonEmpty.length < 2) return concat.tfjs.kernelFunc(args);
    const ax = tf.util.parseAxisParam((args.attrs as unknown as tf.ConcatAttrs).axis, inputs[0].shape)[0];
    tf.backend_util.assertParamsConsistent(inputs.map((t) => t.shape), ax);
    const outShape = tf.backend_util.computeOutShape(inputs.map((t) => t.shape), ax);
    const out = backend.makeOutput(outShape, dtype);
    const rows = prod(outShape.slice(0, ax));
    const rowLength = prod(outShape.slice(ax));
    let offset = 0;
    for (const t of nonEmpty) {
      const cols = prod(t.shape.slice(ax));
      copyRows(at(t, 0), at(out, offset), rows, cols, cols, rowLength);
      offset += cols;
    }
    return out;
  });

  slice.install((args) => {
    const x = (args.inputs as unknown as { x: tf.TensorInfo }).x;
    const { begin, size } = args.attrs as unknown as tf.SliceAttrs;
    const [b, s] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size);
    // TF.js's own path is already a single copy for contiguous slices; ours takes the row-by-row 2-D case.
    if (x.shape.length !== 2 || !FOUR_BYTES.has(x.dtype) || tf.slice_util.isSliceContinous(x.shape, b, s) || prod(s) === 0) return slice.tfjs.kernelFunc(args);
    const out = backend.makeOutput(s, x.dtype);
    copyRows(at(x, b[0] * x.shape[1] + b[1]), at(out, 0), s[0], s[1], x.shape[1], s[1]);
    return out;
  });

  // Without batch dimensions, int32 indices all in range (TF.js's kernel reports a bad index: it gets those).
  gather.install((args) => {
    const { x, indices } = args.inputs as unknown as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as tf.GatherV2Attrs;
    if (!FOUR_BYTES.has(x.dtype) || indices.dtype !== 'int32' || batchDims || prod(x.shape) === 0) return gather.tfjs.kernelFunc(args);
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const idx = backend.readSync(indices.dataId) as Int32Array;
    const dim = x.shape[ax];
    for (let i = 0; i < idx.length; i++) if (!(idx[i] >= 0 && idx[i] < dim)) return gather.tfjs.kernelFunc(args);
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(x as unknown as tf.TensorInfo as tf.Tensor, indices as unknown as tf.Tensor, ax, 0);
    const out = backend.makeOutput(info.outputShape, x.dtype);
    const n = idx.length;
    for (let o = 0; o < info.outerSize; o++) gatherRows(at(x, o * info.dimSize * info.sliceSize), heapOffset(backend, indices), at(out, o * n * info.sliceSize), n, info.sliceSize);
    return out;
  });

  transpose.install((args) => {
    const x = (args.inputs as unknown as { x: tf.TensorInfo }).x;
    const perm = (args.attrs as unknown as tf.TransposeAttrs).perm;
    const plan = FOUR_BYTES.has(x.dtype) && prod(x.shape) > 0 ? asBlockTranspose(x.shape, perm) : null;
    if (!plan) return transpose.tfjs.kernelFunc(args);
    const out = backend.makeOutput(perm.map((a) => x.shape[a]), x.dtype);
    transposeItems(at(x, 0), at(out, 0), plan.batch, plan.rows, plan.cols, plan.item);
    return out;
  });

  // tf.clone, and every tensor a custom gradient saves (each dense layer's input and weight, every step), ran
  // TF.js's Identity, which copies the data. Tensor data is immutable in TF.js (a variable's assign swaps its
  // dataId), so the clone shares the buffer and counts a reference, as TF.js's own Reshape does.
  identity.install((args) => {
    const x = (args.inputs as unknown as { x: tf.TensorInfo }).x;
    if (x.dtype === 'string') return identity.tfjs.kernelFunc(args);
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  });
}
