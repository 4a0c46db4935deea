/**
 * What every defense provides (BackdoorBench style: one file per defense, registered in registry.ts): given a
 * backdoored model, produce a classifier for a dataset's classes, and report what it cost.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { TextTokenizer } from '../model/tokenizer';
import { ImageDataset } from '../data/dataset';
import { namedGrads } from '../model/params';
import { DeepPrompts } from '../model/prompts';
import { zeroShotClassifier, zeroShotPredict } from '../model/zeroShot';
import { ZERO_SHOT_TEMPLATES, prefixedTemplates } from '../data/captions';
import { Optimizer } from '../train/optim';

export interface DefenseContext {
  /** The backdoored model. Defenses that change weights work on their own copy; this one stays as it is. */
  model: MiniCLIP;
  tokenizer: TextTokenizer;
  /** The clean few-shot training data of the dataset being defended (RVPT, VPT, Linear Probe). */
  shots: ImageDataset;
  /** A clean image-caption corpus loader (CleanCLIP), only called by defenses that need it. */
  cleanCorpus: () => Promise<import('../data/corpus').CaptionCorpus>;
  seed: number;
  log?: (s: string) => void;
  quiet?: boolean;
}

export interface DefenseCost {
  seconds: number;
  /** Peak TF.js tensor memory during training (tf.memory().numBytes, sampled each step right after the backward pass). */
  peakBytes: number;
  /** Peak process resident set size, sampled per step. */
  rssBytes: number;
  tunableParams: number;
  totalParams: number;
  /** Training samples processed (steps x batch). */
  samples: number;
}

/** Images [B, S, S, 3] -> predicted class indices [B]; holds tensors until disposed. */
export interface Classifier {
  predict(images: tf.Tensor4D): tf.Tensor1D;
  /**
   * The same classifier from `encoder`'s unprompted image embeddings [B, embedDim]. Where `encoder` is the frozen
   * backdoored model (No defense, Linear Probe), evaluation reads its cached embeddings (metrics/features.ts)
   * instead of encoding the images again; a fine-tuned copy (CleanCLIP) has other embeddings and encodes.
   */
  fromEmbedding?(embeddings: tf.Tensor2D): tf.Tensor1D;
  encoder?: MiniCLIP;
  dispose(): void;
}

export interface Defended {
  /**
   * A classifier over `classNames`: images -> predicted class indices. `textPrefix` is a text trigger added to the
   * zero-shot prompts (TrojVQA); a defense without a text side returns null for it (the paper's "–").
   */
  classifier(classNames: string[], textPrefix?: string, templates?: string[]): Classifier | null;
  cost: DefenseCost;
  /** The learned deep prompts (prompt-tuning defenses), alive until dispose(). */
  prompts?: DeepPrompts;
  /** Training curves, named (e.g. loss, ce, fr). */
  history: Record<string, number[]>;
  dispose(): void;
}

export interface Defense {
  readonly name: string;
  /** Whether the result depends on the dataset's few-shot data (false: one run serves every dataset). */
  readonly perDataset: boolean;
  /** The config keys it reads (a profile's defenses.NAME may set these, plus `seed` and `shotsSeed`). */
  readonly params: readonly string[];
  run(ctx: DefenseContext, config: Record<string, unknown>): Promise<Defended>;
}

/** Samples memory during training: peak tensor bytes and peak RSS (in Node; a browser page has no process RSS). */
export class MemoryMeter {
  peakBytes = 0;
  rssBytes = 0;
  sample(): void {
    this.peakBytes = Math.max(this.peakBytes, tf.memory().numBytes);
    if (typeof process !== 'undefined' && process.memoryUsage) this.rssBytes = Math.max(this.rssBytes, process.memoryUsage().rss);
  }
}

/**
 * One optimiser step of a defense: `terms` returns [loss, ...terms to monitor]; returns all their values. Memory is
 * sampled right after the backward pass, when the step's tensors and gradients are all alive (its high-water mark).
 */
export function optimStep(params: Record<string, tf.Variable>, opt: Optimizer, lr: number, terms: () => tf.Scalar[], mem: MemoryMeter): number[] {
  const out = tf.tidy(() => {
    let monitored: tf.Tensor[] = [];
    const { value, grads } = namedGrads(params, () => {
      const [loss, ...rest] = terms();
      monitored = rest.map((t) => tf.keep(t));
      return loss;
    });
    mem.sample();
    opt.apply(grads, lr);
    const s = tf.stack([value, ...monitored]);
    tf.dispose(monitored);
    return s;
  });
  const values = Array.from(out.dataSync());
  out.dispose();
  if (!Number.isFinite(values[0])) throw new Error(`Training diverged (loss ${values[0]}); lower the learning rate (now ${lr}).`);
  return values;
}

/** A zero-shot classifier over `classNames` for a CLIP model, optionally with prompts and a text trigger. */
export function zeroShotClassifierOf(
  model: MiniCLIP,
  tokenizer: TextTokenizer,
  classNames: string[],
  textPrefix?: string,
  prompts?: DeepPrompts,
  templates: string[] = ZERO_SHOT_TEMPLATES,
): Classifier {
  const cls = zeroShotClassifier(model, tokenizer, classNames, textPrefix ? prefixedTemplates(textPrefix, templates) : templates);
  const fromEmbedding = (e: tf.Tensor2D) => zeroShotPredict(e, cls);
  return {
    predict: (images) => tf.tidy(() => fromEmbedding(model.encodeImage(images, { prompts }).embedding)),
    ...(prompts ? {} : { fromEmbedding, encoder: model }),
    dispose: () => cls.dispose(),
  };
}
