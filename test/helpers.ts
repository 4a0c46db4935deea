import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { CLIPConfig, CLIP_MEAN, CLIP_STD } from '../src/model/config';

export async function setup(): Promise<void> {
  process.env.RVPT_QUIET = '1';
  await initBackend(process.env.RVPT_BACKEND ?? 'wasm');
}

/** A very small MiniCLIP for unit tests. */
export const TEST_CONFIG: CLIPConfig = {
  imageSize: 16,
  patch: 4,
  width: 16,
  layers: 3,
  heads: 2,
  embedDim: 8,
  textWidth: 16,
  textLayers: 2,
  textHeads: 2,
  contextLength: 8,
  vocabSize: 32,
  mean: CLIP_MEAN,
  std: CLIP_STD,
};

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}
