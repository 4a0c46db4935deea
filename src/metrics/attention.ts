/**
 * Where the class token looks (the slide deck's Fig. 6): the last block's attention weights from the class token to
 * the patch tokens, averaged over heads. The notebooks' attention figure and the browser lab both read it here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { DeepPrompts } from '../model/prompts';

/** Last-block attention of the class token over the patch tokens (prompt keys dropped), head-averaged: [n, g*g]. */
export function clsAttention(model: MiniCLIP, images: tf.Tensor4D, prompts?: DeepPrompts): Float32Array[] {
  const m = (model.config.imageSize / model.config.patch) ** 2;
  const att = tf.tidy(() => {
    const w = model.encodeImage(images, { prompts, collectAttention: true }).attention!; // [B, H, T, T]
    const row = tf.slice(w, [0, 0, 0, 1], [-1, -1, 1, m]); // CLS query, patch keys only
    const mean = tf.mean(tf.reshape(row, [w.shape[0], w.shape[1], m]), 1);
    return tf.div(mean, tf.sum(mean, 1, true)); // re-normalised over the patches
  });
  const a = att.arraySync() as number[][];
  att.dispose();
  return a.map((r) => Float32Array.from(r));
}

