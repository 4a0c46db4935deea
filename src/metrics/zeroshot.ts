/**
 * Zero-shot classification as CLIP does it (and as CleanCLIP/BadCLIP evaluate): per class, average the
 * L2-normalised text embeddings of the filled templates, re-normalise; predict argmax of image . classes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { TextTokenizer } from '../model/tokenizer';
import { DeepPrompts } from '../model/prompts';
import { ImageDataset, numImages } from '../data/dataset';
import { forBatches, imageBatch } from '../data/batches';
import { zeroShotClassifier, zeroShotPredict } from '../model/zeroShot';

/** Evaluation's batch size: predictions and cached embeddings (features.ts) are made in the same batches. */
export const EVAL_BATCH = 500;


/** Class indices from embeddings [n * dim] (e.g. metrics/features.ts), in batches of EVAL_BATCH, as predictWith makes them. */
export function classifyEmbeddings(emb: Float32Array, dim: number, classify: (e: tf.Tensor2D) => tf.Tensor1D): Int32Array {
  const n = emb.length / dim;
  return forBatches(n, EVAL_BATCH, 1, new Int32Array(n), (s, e) => classify(tf.tensor2d(emb.subarray(s * dim, e * dim), [e - s, dim])));
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
