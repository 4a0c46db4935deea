/**
 * SplitV, Concat and 2-D Slice for TF.js's WASM backend as row copies in WASM (see copy.c for why). Pure data
 * movement: outputs are the same bits as TF.js's. Cases other than 4-byte dtypes go to TF.js's own kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import { COPY_WASM_BASE64 } from './copyWasm';
import { KernelOverride, WasmBackendLike, heapOffset, instantiate } from './wasmModule';

type CopyRows = (src: number, dst: number, rows: number, cols: number, srcStride: number, dstStride: number) => void;

const FOUR_BYTES = new Set<tf.DataType>(['float32', 'int32']);
const prod = (xs: number[]) => xs.reduce((a, b) => a * b, 1);

export const copyOverrides = [new KernelOverride(tf.SplitV), new KernelOverride(tf.Concat), new KernelOverride(tf.Slice)];

export function installCopyKernels(backend: WasmBackendLike): void {
  const copyRows = instantiate(backend, COPY_WASM_BASE64).copy_rows as CopyRows;
  const at = (t: tf.TensorInfo, elements: number) => heapOffset(backend, t) + 4 * elements;
  const [splitV, concat, slice] = copyOverrides;

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
}

export function uninstallCopyKernels(): void {
  for (const o of copyOverrides) o.restore();
}
