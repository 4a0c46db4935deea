/**
 * CleanCLIP (docs/PAPER-NOTES.md §3): fine-tune the whole backdoored model on clean image-caption pairs with
 *   lambda1 * CLIP's multimodal contrastive loss + lambda2 * unimodal self-supervised loss,
 * the latter (CE(image . augmented image) + CE(text . augmented text)) / 2, as CleanCLIP's train.py computes it.
 * AdamW with warm-up and cosine decay; lambda1 = lambda2 = 1. Scaled: the paper's 250K CC3M pairs for 10 epochs
 * become `steps` x `batch` pairs of our clean pre-training corpus. Image augmentation is our crop + flip (torchvision's
 * AutoAugment is not available in TF.js); text augmentation is EDA's random deletion and random swap (EDA's synonym
 * replacement and insertion need WordNet, which is not available offline).
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP, clipLoss } from '../model/clip';
import { ParamMap, ownedVariable, trainableParams } from '../model/params';
import { TokenBatch } from '../model/text';
import { AugmentConfig, DEFAULT_AUGMENT, augmentBatch } from '../data/augment';
import { stepIndices } from '../train/pretrain';
import { AdamW, warmupCosine } from '../train/optim';
import { Rng, makeRng, randInt } from '../util/rng';
import { Progress } from '../util/progress';
import { Defense, MemoryMeter, optimStep, zeroShotClassifierOf } from './defense';

export interface CleanCLIPConfig {
  steps: number;
  batch: number;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  /** Weight of the multimodal (image-text) contrastive loss. */
  lambda1: number;
  /** Weight of the unimodal self-supervised loss. */
  lambda2: number;
  augment: AugmentConfig;
  /** EDA: probability of deleting each word. */
  textDelete: number;
}

export const CLEANCLIP_DEFAULTS: CleanCLIPConfig = { steps: 200, batch: 64, lr: 5e-4, warmupSteps: 20, weightDecay: 0.1, lambda1: 1, lambda2: 1, augment: DEFAULT_AUGMENT, textDelete: 0.1 };

/** EDA-style text augmentation: random deletion, then one random swap of two words. */
export function edaAugment(caption: string, rng: Rng, pDelete: number): string {
  let words = caption.split(/\s+/).filter(Boolean);
  const kept = words.filter(() => rng() >= pDelete);
  words = kept.length ? kept : [words[randInt(rng, words.length)]];
  if (words.length > 1) {
    const i = randInt(rng, words.length);
    const j = randInt(rng, words.length);
    [words[i], words[j]] = [words[j], words[i]];
  }
  return words.join(' ');
}

/** Two token batches of the same context length as one, the first's rows first. */
export function concatTokens(a: TokenBatch, b: TokenBatch): TokenBatch {
  if (a.contextLength !== b.contextLength) throw new Error(`concatTokens: context lengths ${a.contextLength} and ${b.contextLength} differ.`);
  const ids = new Int32Array(a.ids.length + b.ids.length);
  ids.set(a.ids);
  ids.set(b.ids, a.ids.length);
  const eot = new Int32Array(a.batch + b.batch);
  eot.set(a.eot);
  eot.set(b.eot, a.batch);
  return { ids, eot, batch: a.batch + b.batch, contextLength: a.contextLength };
}

/** A copy of a model with its own variables (the defense must not change the backdoored model it was given). */
export function cloneModel(model: MiniCLIP): MiniCLIP {
  const params: ParamMap = {};
  for (const [k, v] of Object.entries(model.params)) params[k] = ownedVariable(v.clone(), v.trainable);
  return new MiniCLIP(model.config, params);
}

export const CleanCLIP: Defense = {
  name: 'CleanCLIP',
  perDataset: false,
  params: Object.keys(CLEANCLIP_DEFAULTS),
  async run(ctx, config) {
    const c = { ...CLEANCLIP_DEFAULTS, ...(config as Partial<CleanCLIPConfig>) };
    const model = cloneModel(ctx.model);
    const corpus = await ctx.cleanCorpus();
    const params = trainableParams(model.params);
    const opt = new AdamW(params, { weightDecay: c.weightDecay });
    const schedule = warmupCosine(c.lr, c.warmupSteps, c.steps);
    const history: Record<string, number[]> = { loss: [], multimodal: [], unimodal: [] };
    const mem = new MemoryMeter();
    const bar = new Progress('CleanCLIP', c.steps, { quiet: ctx.quiet });
    const ctxLen = model.config.contextLength;
    const t0 = Date.now();
    for (let step = 0; step < c.steps; step++) {
      const rng = makeRng(`cleanclip-${ctx.seed}-${step}`);
      const b = corpus.batch(stepIndices(corpus.size, c.batch, step, ctx.seed + 1), rng);
      const tokens = ctx.tokenizer.encodeBatch(b.captions, ctxLen);
      const tokensAug = ctx.tokenizer.encodeBatch(b.captions.map((s) => edaAugment(s, rng, c.textDelete)), ctxLen);
      const [l, mm, um] = tf.tidy(() => {
        const x = tf.tensor4d(b.images, [c.batch, corpus.imageSize, corpus.imageSize, 3]);
        const xAug = augmentBatch(x, c.augment, rng);
        const target = tf.oneHot(tf.range(0, c.batch, 1, 'int32'), c.batch);
        return optimStep(params, opt, schedule(step), () => {
          // Each tower runs once on the batch and its augmented copy together: one pass of 2B rows is cheaper than two
          // of B (fewer, larger products; 15 steps at the small profile, median of 4 alternating runs: 10.7 s vs 12.8 s).
          const [img, imgAug] = tf.split(model.encodeImage(tf.concat([x, xAug])).embedding, 2) as [tf.Tensor2D, tf.Tensor2D];
          const [txt, txtAug] = tf.split(model.encodeText(concatTokens(tokens, tokensAug)), 2) as [tf.Tensor2D, tf.Tensor2D];
          const multimodal = clipLoss(model.logits(img, txt));
          const unimodal = tf.mul(tf.add(
            tf.losses.softmaxCrossEntropy(target, model.logits(img, imgAug)),
            tf.losses.softmaxCrossEntropy(target, model.logits(txt, txtAug)),
          ), 0.5) as tf.Scalar;
          return [tf.add(tf.mul(multimodal, c.lambda1), tf.mul(unimodal, c.lambda2)) as tf.Scalar, multimodal, unimodal];
        }, mem);
      });
      history.loss.push(l);
      history.multimodal.push(mm);
      history.unimodal.push(um);
      bar.tick(1, `loss ${l.toFixed(3)}`);
    }
    bar.done();
    opt.dispose();
    const seconds = (Date.now() - t0) / 1000;
    return {
      classifier: (classNames, textPrefix, templates) => zeroShotClassifierOf(model, ctx.tokenizer, classNames, textPrefix, undefined, templates),
      cost: { seconds, peakBytes: mem.peakBytes, rssBytes: mem.rssBytes, tunableParams: model.numParams((n) => params[n] !== undefined), totalParams: model.numParams(), samples: c.steps * c.batch },
      history,
      dispose: () => model.dispose(),
    };
  },
};
