/**
 * What every defense provides (BackdoorBench style: one file per defense, registered in registry.ts): given a
 * backdoored model, produce a classifier for a dataset's classes, and report what it cost.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { WordTokenizer } from '../model/tokenizer';
import { ImageDataset } from '../data/dataset';
import { Profile } from '../experiments/profiles';

export interface DefenseContext {
  profile: Profile;
  /** The backdoored model. Defenses that change weights work on their own copy; this one stays as it is. */
  model: MiniCLIP;
  tokenizer: WordTokenizer;
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
  dispose(): void;
}

export interface Defended {
  /**
   * A classifier over `classNames`: images -> predicted class indices. `textPrefix` is a text trigger added to the
   * zero-shot prompts (TrojVQA); a defense without a text side returns null for it (the paper's "–").
   */
  classifier(classNames: string[], textPrefix?: string): Classifier | null;
  cost: DefenseCost;
  /** Training curves, named (e.g. loss, ce, fr). */
  history: Record<string, number[]>;
  dispose(): void;
}

export interface Defense {
  readonly name: string;
  /** Whether the result depends on the dataset's few-shot data (false: one run serves every dataset). */
  readonly perDataset: boolean;
  run(ctx: DefenseContext, config: Record<string, unknown>): Promise<Defended>;
}

/** Samples memory during training: peak tensor bytes and peak RSS. */
export class MemoryMeter {
  peakBytes = 0;
  rssBytes = 0;
  sample(): void {
    this.peakBytes = Math.max(this.peakBytes, tf.memory().numBytes);
    this.rssBytes = Math.max(this.rssBytes, process.memoryUsage().rss);
  }
}

/** Rows of a dataset as a [B, S, S, 3] tensor. */
export function rowsTensor(d: ImageDataset, rows: ArrayLike<number>): tf.Tensor4D {
  const per = d.size * d.size * 3;
  const buf = new Float32Array(rows.length * per);
  for (let i = 0; i < rows.length; i++) buf.set(d.images.subarray(rows[i] * per, (rows[i] + 1) * per), i * per);
  return tf.tensor4d(buf, [rows.length, d.size, d.size, 3]);
}
