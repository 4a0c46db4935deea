/**
 * Zero-shot classification as CLIP does it (and as CleanCLIP/BadCLIP evaluate): per class, average the
 * L2-normalised text embeddings of the filled templates, re-normalise; predict argmax of image . classes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { l2normalize, matMulBT } from '../model/layers';
import { TextTokenizer } from '../model/tokenizer';
import { DeepPrompts } from '../model/prompts';
import { ImageDataset, copyImageRow, imageRows, numImages, pixelsPerImage } from '../data/dataset';
import { ZERO_SHOT_TEMPLATES, fillTemplate } from '../data/captions';

/** [C, E] normalised class embeddings (a plain tensor the caller disposes). */
export function zeroShotClassifier(model: MiniCLIP, tokenizer: TextTokenizer, classNames: string[], templates: string[] = ZERO_SHOT_TEMPLATES): tf.Tensor2D {
  return tf.tidy(() => {
    const texts = classNames.flatMap((c) => templates.map((t) => fillTemplate(t, c)));
    const emb = l2normalize(model.encodeText(tokenizer.encodeBatch(texts, model.config.contextLength)));
    const perClass = tf.mean(tf.reshape(emb, [classNames.length, templates.length, -1]), 1) as tf.Tensor2D;
    return l2normalize(perClass);
  });
}

/** Class indices of image embeddings [B, E] (not normalised) against normalised class embeddings [C, E]. */
export function zeroShotPredict(embeddings: tf.Tensor2D, classifier: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.argMax(matMulBT(l2normalize(embeddings), classifier), 1) as tf.Tensor1D);
}

/** Evaluation's batch size: predictions and cached embeddings (features.ts) are made in the same batches. */
export const EVAL_BATCH = 500;

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

/** Class indices from embeddings [n * dim] (e.g. metrics/features.ts), in batches of EVAL_BATCH, as predictWith makes them. */
export function classifyEmbeddings(emb: Float32Array, dim: number, classify: (e: tf.Tensor2D) => tf.Tensor1D): Int32Array {
  const n = emb.length / dim;
  return forBatches(n, EVAL_BATCH, 1, new Int32Array(n), (s, e) => classify(tf.tensor2d(emb.subarray(s * dim, e * dim), [e - s, dim])));
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

export interface PredictOptions {
  prompts?: DeepPrompts;
  batchSize?: number;
  /** Applied to each [B, S, S, 3] batch before encoding (e.g. a trigger). */
  transform?: (images: tf.Tensor4D, start: number) => tf.Tensor4D;
}

/** Top-1 predictions for every image, batched, one host read per batch. */
export function predict(model: MiniCLIP, classifier: tf.Tensor2D, d: ImageDataset, opts: PredictOptions = {}): Int32Array {
  return predictWith((x) => zeroShotPredict(model.encodeImage(x, { prompts: opts.prompts }).embedding, classifier), d, opts);
}

/** Any classifier (images -> class indices) over a whole dataset, batched, with an optional per-batch transform. */
export function predictWith(classify: (images: tf.Tensor4D) => tf.Tensor1D, d: ImageDataset, opts: Pick<PredictOptions, 'batchSize' | 'transform'> = {}): Int32Array {
  const n = numImages(d);
  return forBatches(n, opts.batchSize ?? EVAL_BATCH, 1, new Int32Array(n), (s, e) => {
    const x = imageBatch(d, s, e);
    return classify(opts.transform ? opts.transform(x, s) : x);
  });
}

export function accuracy(pred: Int32Array, labels: Int32Array): number {
  let ok = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) ok++;
  return pred.length ? (100 * ok) / pred.length : 0;
}

/** Zero-shot clean accuracy (CA), in percent. */
export function zeroShotAccuracy(model: MiniCLIP, tokenizer: TextTokenizer, d: ImageDataset, opts: PredictOptions & { templates?: string[] } = {}): number {
  const cls = zeroShotClassifier(model, tokenizer, d.classNames, opts.templates ?? d.templates);
  try {
    return accuracy(predict(model, cls, d, opts), d.labels);
  } finally {
    cls.dispose();
  }
}
