/**
 * What every backdoor attack provides: a trigger that turns clean images into triggered ones. Images are
 * [B, S, S, 3] in [0, 1]. Triggers with per-image randomness (BadNet's position and noise, Blended's noise)
 * draw it from (seed, image index), so poisoning, evaluation and re-runs see the same triggered images.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MiniCLIP } from '../model/clip';
import type { TextTokenizer } from '../model/tokenizer';
import type { ImageDataset } from '../data/dataset';

export interface TriggerContext {
  /** Index of the batch's first image in its dataset (per-image randomness is keyed on it). */
  offset: number;
  /** Seed of the per-image draws. */
  seed: number;
}

/** What an attack that must be built before use (optimised patches, ISSBA's encoder) may ask for. */
export interface PrepareContext {
  /** Cache key of the clean model the attack is built against (prepared artifacts are cached under it). */
  key: string;
  cleanModel: () => Promise<{ model: MiniCLIP; tokenizer: TextTokenizer }>;
  /** The pre-training images of each poisoned dataset, with the dataset's target class. */
  datasets: () => Promise<{ data: ImageDataset; target: number }[]>;
  log?: (s: string) => void;
}

export interface Trigger {
  /** The paper's attack name: BadNet, Blended, ISSBA, WaNet, TrojVQA, BadCLIP. */
  readonly name: string;
  apply(images: tf.Tensor4D, ctx: TriggerContext): tf.Tensor4D;
  /** A text trigger prepended to captions and prompts (TrojVQA's 'SUDO '), if any. */
  readonly textPrefix?: string;
  /** The trigger's parameters, recorded in every result file. */
  readonly config: Record<string, unknown>;
  /**
   * Captions of poisoned pairs: 'template' (a target-class template, CleanCLIP) or 'natural' (real captions of
   * target-class images, BadCLIP). Default 'template'.
   */
  readonly captions?: 'template' | 'natural';
  /** Build what the trigger needs (optimise a patch, train an encoder), or load it from the cache. */
  prepare?(ctx: PrepareContext): Promise<void>;
}

/** Apply a per-image pixel edit in JavaScript (for triggers with data-dependent, non-differentiable steps). */
export function mapImages(images: tf.Tensor4D, edit: (pixels: Float32Array, index: number, size: number) => void, ctx: TriggerContext): tf.Tensor4D {
  const [n, s] = images.shape;
  const data = Float32Array.from(images.dataSync());
  const per = s * s * 3;
  for (let i = 0; i < n; i++) edit(data.subarray(i * per, (i + 1) * per), ctx.offset + i, s);
  for (let i = 0; i < data.length; i++) data[i] = Math.min(1, Math.max(0, data[i]));
  return tf.tensor4d(data, images.shape);
}

/** A trigger defined by an in-place edit of each image's pixels (clipped to [0, 1] afterwards). */
export function pixelTrigger(
  name: string,
  config: Record<string, unknown>,
  edit: (pixels: Float32Array, index: number, size: number, ctx: TriggerContext) => void,
): Trigger {
  return { name, config: { ...config }, apply: (images, ctx) => mapImages(images, (px, i, s) => edit(px, i, s, ctx), ctx) };
}

/** A standard normal draw from a uniform rng (Box-Muller). */
export function gaussian(rng: () => number): number {
  const u = Math.max(rng(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}
