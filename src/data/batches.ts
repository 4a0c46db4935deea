/** A dataset's images as TF.js batches, and a batched loop that reads each batch back once. */
import * as tf from '@tensorflow/tfjs-core';
import { ImageDataset, copyImageRow, imageRows, pixelsPerImage } from './dataset';

/**
 * Rows [0, n) in batches of `batch`: `f(start, end)` makes a tensor of (end - start) x `width` values (under tidy),
 * read into `out` at row `start`; one host read per batch.
 */
export function forBatches<T extends Float32Array | Int32Array>(n: number, batch: number, width: number, out: T, f: (start: number, end: number) => tf.Tensor): T {
  for (let s = 0; s < n; s += batch) {
    const t = tf.tidy(() => f(s, Math.min(n, s + batch)));
    out.set(t.dataSync() as T, s * width);
    t.dispose();
  }
  return out;
}

/** Rows [start, end) of a dataset as an image tensor. */
export function imageBatch(d: ImageDataset, start: number, end: number): tf.Tensor4D {
  return tf.tensor4d(imageRows(d, start, end), [end - start, d.size, d.size, 3]);
}

/** The given rows of a dataset as a [B, S, S, 3] tensor. */
export function rowsBatch(d: ImageDataset, rows: ArrayLike<number>): tf.Tensor4D {
  const per = pixelsPerImage(d);
  const buf = new Float32Array(rows.length * per);
  for (let i = 0; i < rows.length; i++) copyImageRow(d, rows[i], buf, i * per);
  return tf.tensor4d(buf, [rows.length, d.size, d.size, 3]);
}
