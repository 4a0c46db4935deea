/**
 * Backdoor metrics (docs/PAPER-NOTES.md §4):
 * - ASR: the share of triggered test images classified as the target. The main figure leaves out images whose
 *   true class is the target (they would count as successes without any backdoor); `asrAll` keeps them, as the
 *   BadCLIP/Decomposition code does.
 * - Poisoned accuracy: accuracy of triggered images against their true labels.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { TextTokenizer } from '../model/tokenizer';
import { DeepPrompts } from '../model/prompts';
import { ImageDataset } from '../data/dataset';
import { Trigger } from '../attacks/trigger';
import { accuracy, classifyEmbeddings, predict } from './zeroshot';
import { zeroShotClassifier, zeroShotPredict } from '../model/zeroShot';
import { ZERO_SHOT_TEMPLATES, prefixedTemplates } from '../data/captions';
import type { TestEmbeddings } from './features';

export interface BackdoorMetrics {
  /** Clean accuracy, %. */
  ca: number;
  /** Attack success rate over non-target-class images, %. */
  asr: number;
  /** Attack success rate over all images (the paper code's variant), %. */
  asrAll: number;
  /** Accuracy of triggered images against their true labels, %. */
  poisonedAccuracy: number;
  /**
   * Clean (untriggered) non-target-class images classified as the target, %: the ASR a model would show with no
   * backdoor at all, its floor. Near 0 at ImageNet's 1,000 classes; on a 12-class set at 45% CA, several points.
   * Absent in results computed before it was added.
   */
  cleanToTarget?: number;
  n: number;
}

/** Seed of the test-time trigger draws: distinct from any poisoning seed, so test triggers are fresh draws. */
export const TEST_TRIGGER_SEED = 1_000_003;

/** The trigger as evaluation applies it to a batch starting at row `offset`: fresh draws from TEST_TRIGGER_SEED. */
export function testTimeTrigger(trigger: Trigger): (images: tf.Tensor4D, offset: number) => tf.Tensor4D {
  return (x, offset) => trigger.apply(x, { seed: TEST_TRIGGER_SEED, offset });
}

export function backdoorMetrics(
  model: MiniCLIP,
  tokenizer: TextTokenizer,
  test: ImageDataset,
  trigger: Trigger,
  target: number,
  opts: { prompts?: DeepPrompts; templates?: string[]; /** The model's embeddings of `test` (no prompts): classified, not recomputed. */ embeddings?: TestEmbeddings } = {},
): BackdoorMetrics {
  if (opts.embeddings && opts.prompts) throw new Error('backdoorMetrics: embeddings are the unprompted model\'s; they cannot be combined with prompts.');
  const templates = opts.templates ?? test.templates ?? ZERO_SHOT_TEMPLATES;
  const cls = zeroShotClassifier(model, tokenizer, test.classNames, templates);
  // A text trigger (TrojVQA) is the second key: triggered images are classified with prefixed prompts.
  const trigCls = trigger.textPrefix ? zeroShotClassifier(model, tokenizer, test.classNames, prefixedTemplates(trigger.textPrefix, templates)) : cls;
  try {
    const e = opts.embeddings;
    const clean = e ? classifyEmbeddings(e.clean, e.dim, (x) => zeroShotPredict(x, cls)) : predict(model, cls, test, { prompts: opts.prompts });
    const trig = e
      ? classifyEmbeddings(e.triggered, e.dim, (x) => zeroShotPredict(x, trigCls))
      : predict(model, trigCls, test, { prompts: opts.prompts, transform: testTimeTrigger(trigger) });
    return metricsFromPredictions(clean, trig, test.labels, target);
  } finally {
    cls.dispose();
    if (trigCls !== cls) trigCls.dispose();
  }
}

/** CA, ASR (both variants) and poisoned accuracy from clean and triggered predictions. */
export function metricsFromPredictions(clean: Int32Array, trig: Int32Array, labels: Int32Array, target: number): BackdoorMetrics {
  let hit = 0;
  let nonTarget = 0;
  let hitAll = 0;
  let cleanHit = 0;
  labels.forEach((l, i) => {
    if (trig[i] === target) hitAll++;
    if (l !== target) {
      nonTarget++;
      if (trig[i] === target) hit++;
      if (clean[i] === target) cleanHit++;
    }
  });
  return {
    ca: accuracy(clean, labels),
    asr: nonTarget ? (100 * hit) / nonTarget : 0,
    asrAll: (100 * hitAll) / labels.length,
    poisonedAccuracy: accuracy(trig, labels),
    cleanToTarget: nonTarget ? (100 * cleanHit) / nonTarget : 0,
    n: labels.length,
  };
}

