/** One contrastive training step, on one core or split across two (parallel.ts). */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP, clipLoss } from '../model/clip';
import { namedGrads } from '../model/params';
import { TokenBatch } from '../model/text';
import { AdamW, Optimizer } from './optim';
import { ContrastiveWorker, halfContrastiveLoss } from './parallel';
import { valuesView } from '../kernels/wasmModule';
import { AugmentDraw, applyAugment, sliceDraw } from '../data/augment';

/**
 * Forward, backward and update for one batch; returns the loss (a scalar the caller disposes). With a worker,
 * `step` (0-based) numbers the exchange and must increase by one per call. `augment` crops and flips the images
 * first (by its draws); with a worker each side augments its own half, the same values as the whole batch's.
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
  augment: AugmentDraw | null = null,
): tf.Scalar {
  return tf.tidy(() => {
    if (!helper) {
      const x = augment ? applyAugment(images, augment) : images;
      const { value, grads } = namedGrads(params, () => clipLoss(model.logits(model.encodeImage(x).embedding, model.encodeText(tokens))));
      opt.apply(grads, lr);
      return value;
    }
    if (!(opt instanceof AdamW)) throw new Error('Two-core training updates with AdamW (the optimiser its worker was started for).');
    const [n, s] = images.shape;
    const half = n / 2;
    const perImage = s * s * 3;
    helper.submit(step + 1, valuesView(images).subarray(half * perImage, n * perImage), tokens, lr, opt.step + 1, augment && sliceDraw(augment, half, n));
    const raw = tf.slice(images, [0, 0, 0, 0], [half, s, s, 3]);
    const mine = augment ? applyAugment(raw, sliceDraw(augment, 0, half)) : raw;
    const myTokens: TokenBatch = { ids: tokens.ids.subarray(0, half * tokens.contextLength), eot: tokens.eot.subarray(0, half), batch: half, contextLength: tokens.contextLength };
    const v = helper.views;
    const { value, grads } = namedGrads(params, () => halfContrastiveLoss(model, mine, myTokens, 'main', v, step + 1));
    opt.step++;
    v.update(0, model, grads, opt, lr, step + 1);
    return value;
  });
}
