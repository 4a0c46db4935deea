/**
 * BadCLIP (docs/PAPER-NOTES.md §3, `src/embeding_optimize_patch.py`): a patch at the image centre optimised on the
 * clean model so that patched non-target images embed near the target class, with
 *   CLIP contrastive loss(patched images, natural target-class captions)
 *   + tripletWeight x TripletMarginLoss(anchor = patched, positive = target-class image, negative = the clean image).
 * Poisoned pairs then carry natural target-class captions. One patch serves both poisoned datasets (each with its
 * own target): batches alternate between them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { l2normalize } from '../model/layers';
import { captionFor } from '../data/captions';
import { numImages } from '../data/dataset';
import { rowsBatch } from '../data/batches';
import { clipLoss } from '../model/clip';
import { makeRng, randInt } from '../util/rng';
import { PatchObjective, PatchOptimConfig, optimisedPatchTrigger } from './patch';

export const BADCLIP_DEFAULTS: PatchOptimConfig & { tripletWeight: number; margin: number; pool: number } = {
  patch: 4,
  steps: 150,
  batch: 64,
  lr: 0.03,
  seed: 0,
  tripletWeight: 500,
  margin: 1,
  /** Target captions and target images embedded once, sampled per step. */
  pool: 256,
};

function badclipObjective(c: typeof BADCLIP_DEFAULTS): () => PatchObjective {
  return () => {
    let captions: tf.Tensor2D[] = [];
    let positives: tf.Tensor2D[] = [];
    const pick = (t: tf.Tensor2D, n: number, rng: () => number) =>
      tf.gather(t, tf.tensor1d(Array.from({ length: n }, () => randInt(rng, t.shape[0])), 'int32')) as tf.Tensor2D;
    return {
      setup(model, tokenizer, datasets) {
        const rng = makeRng(`badclip-pool-${c.seed}`);
        for (const { data, target } of datasets) {
          const rows = Array.from({ length: numImages(data) }, (_, i) => i).filter((i) => data.labels[i] === target);
          const drawn = Array.from({ length: Math.min(c.pool, rows.length * 4) }, () => rows[randInt(rng, rows.length)]);
          const texts = drawn.map((r) => captionFor(data, r, rng));
          captions.push(tf.tidy(() => l2normalize(model.encodeText(tokenizer.encodeBatch(texts, model.config.contextLength)))));
          positives.push(tf.tidy(() => l2normalize(model.encodeImage(rowsBatch(data, rows.slice(0, c.pool))).embedding)));
        }
      },
      loss({ patched, clean, dataset, rng }, model) {
        const n = patched.shape[0];
        const text = pick(captions[dataset], n, rng);
        const pos = pick(positives[dataset], n, rng);
        const contrastive = clipLoss(tf.mul(tf.matMul(patched, text, false, true), model.logitScale()) as tf.Tensor2D);
        const dist = (a: tf.Tensor2D, b: tf.Tensor2D) => tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(a, b)), 1), 1e-12));
        const triplet = tf.mean(tf.relu(tf.add(tf.sub(dist(patched, pos), dist(patched, clean)), c.margin)));
        return tf.add(contrastive, tf.mul(triplet, c.tripletWeight)) as tf.Scalar;
      },
      dispose() {
        [...captions, ...positives].forEach((t) => t.dispose());
        captions = [];
        positives = [];
      },
    };
  };
}

export function badclip(config: Partial<typeof BADCLIP_DEFAULTS> = {}) {
  const c = { ...BADCLIP_DEFAULTS, ...config };
  return optimisedPatchTrigger('BadCLIP', c, badclipObjective(c), { captions: 'natural' });
}
