/** One contrastive training step, on one core or split across two (parallel.ts). */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP, clipLoss } from '../model/clip';
import { namedGrads } from '../model/params';
import { TokenBatch } from '../model/text';
import { Optimizer } from './optim';
import { ContrastiveWorker, SHARED_ONLY_MAIN, halfContrastiveLoss } from './parallel';

/**
 * Forward, backward and update for one batch; returns the loss (a scalar the caller disposes). With a worker,
 * `step` (0-based) numbers the exchange and must increase by one per call.
 */
export function contrastiveStep(
  model: MiniCLIP,
  params: Record<string, tf.Variable>,
  opt: Optimizer,
  images: tf.Tensor4D,
  tokens: TokenBatch,
  lr: number,
  helper: ContrastiveWorker | null,
  step: number,
): tf.Scalar {
  return tf.tidy(() => {
    if (!helper) {
      const { value, grads } = namedGrads(params, () => clipLoss(model.logits(model.encodeImage(images).embedding, model.encodeText(tokens))));
      opt.apply(grads, lr);
      return value;
    }
    const [n, s] = images.shape;
    const half = n / 2;
    helper.submit(step + 1, images.dataSync() as Float32Array, tokens);
    const mine = tf.slice(images, [0, 0, 0, 0], [half, s, s, 3]);
    const myTokens: TokenBatch = { ids: tokens.ids.subarray(0, half * tokens.contextLength), eot: tokens.eot.subarray(0, half), batch: half, contextLength: tokens.contextLength };
    const { value, grads } = namedGrads(params, () => halfContrastiveLoss(model, mine, myTokens, 'main', helper.layout, helper.ctrl, helper.emb, step + 1));
    const theirs = helper.collect(step + 1);
    // Sum in a fixed order (main + worker) in JS, update, and hand the new values straight to the worker.
    const summed: Record<string, Float32Array> = {};
    for (const [name, g] of Object.entries(grads)) {
      const mine = Float32Array.from(g.dataSync());
      if (!SHARED_ONLY_MAIN.has(name)) {
        const other = theirs[name];
        for (let i = 0; i < mine.length; i++) mine[i] += other[i];
      }
      summed[name] = mine;
    }
    opt.applyArrays(summed, lr, (name, values) => helper.params.set(values, helper.offsets[name]));
    return value;
  });
}
