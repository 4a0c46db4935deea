/**
 * TrojVQA as the RVPT paper adapts it to CLIP (docs/PAPER-NOTES.md §3): a dual key, an optimised patch at the image
 * centre plus the text trigger 'SUDO ' before every caption and prompt. The patch is optimised on the clean model
 * toward the target's text ("This is a yellow banana." in the paper; here the target class's zero-shot text
 * embedding), by maximising the cosine between patched images and that text. Poisoned captions carry the prefix.
 */
import * as tf from '@tensorflow/tfjs-core';
import { zeroShotClassifier } from '../model/zeroShot';
import { PatchObjective, PatchOptimConfig, optimisedPatchTrigger } from './patch';

export const TROJVQA_DEFAULTS: PatchOptimConfig & { prefix: string } = { patch: 4, steps: 150, batch: 64, lr: 0.03, seed: 0, prefix: 'sudo ' };

export function towardTargetText(): PatchObjective {
  let targets: tf.Tensor2D[] = [];
  return {
    setup(model, tokenizer, datasets) {
      targets = datasets.map(({ data, target }) => tf.tidy(() => tf.slice(zeroShotClassifier(model, tokenizer, data.classNames, data.templates), [target, 0], [1, -1]) as tf.Tensor2D));
    },
    loss({ patched, dataset }) {
      return tf.sub(1, tf.mean(tf.sum(tf.mul(patched, targets[dataset]), 1))) as tf.Scalar;
    },
    dispose() {
      targets.forEach((t) => t.dispose());
    },
  };
}

export function trojvqa(config: Partial<typeof TROJVQA_DEFAULTS> = {}) {
  const c = { ...TROJVQA_DEFAULTS, ...config };
  return optimisedPatchTrigger('TrojVQA', c, towardTargetText, { textPrefix: c.prefix });
}
