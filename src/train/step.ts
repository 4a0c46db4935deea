/** One contrastive training step, on one core or split across two (parallel.ts). */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP, clipLoss } from '../model/clip';
import { namedGrads } from '../model/params';
import { TokenBatch } from '../model/text';
import { AdamW, Optimizer } from './optim';
import { ContrastiveWorker, halfContrastiveLoss } from './parallel';
import { valuesView } from '../kernels/wasmModule';

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
    if (!(opt instanceof AdamW)) throw new Error('Two-core training updates with AdamW (the optimiser its worker was started for).');
    const [n, s] = images.shape;
    const half = n / 2;
    const perImage = s * s * 3;
    helper.submit(step + 1, valuesView(images).subarray(half * perImage, n * perImage), tokens, lr, opt.step + 1);
    const mine = tf.slice(images, [0, 0, 0, 0], [half, s, s, 3]);
    const myTokens: TokenBatch = { ids: tokens.ids.subarray(0, half * tokens.contextLength), eot: tokens.eot.subarray(0, half), batch: half, contextLength: tokens.contextLength };
    const v = helper.views;
    const { value, grads } = namedGrads(params, () => halfContrastiveLoss(model, mine, myTokens, 'main', v, step + 1));
    opt.step++;
    v.update(0, model, grads, opt, lr, step + 1);
    return value;
  });
}
