/**
 * Optimised-patch attacks (TrojVQA, BadCLIP): a fixed patch pasted at the image centre, its pixels optimised
 * against the clean model before poisoning (docs/PAPER-NOTES.md §3), then cached next to the clean checkpoint.
 * Both share the pasting, the optimisation loop and the cache; they differ only in the objective.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { ownedVariable } from '../model/params';
import { MiniCLIP } from '../model/clip';
import { l2normalize } from '../model/layers';
import { TextTokenizer } from '../model/tokenizer';
import { ImageDataset, numImages } from '../data/dataset';
import { makeRng, randInt } from '../util/rng';
import { Progress } from '../util/progress';
import { cacheDir, sha256, readCachedJson, writeCachedJson, seedFromShipped } from '../util/fsutil';
import { PrepareContext, Trigger, TriggerContext, gaussian } from './trigger';
import { rowsBatch } from '../data/batches';

/** Top-left corner of a centred patch (BadCLIP: rows/cols 104-119 of 224). */
export function centreOffset(size: number, patch: number): number {
  return Math.floor((size - patch) / 2);
}

/** Paste `patch` [p, p, 3] at (y, x) of every image [B, S, S, 3]; differentiable in the patch. */
export function pastePatch(images: tf.Tensor4D, patch: tf.Tensor3D, y: number, x: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, s] = images.shape;
    const p = patch.shape[0];
    const pad: [number, number][] = [[y, s - y - p], [x, s - x - p], [0, 0]];
    const mask = tf.pad(tf.ones([p, p, 3]), pad);
    return tf.add(tf.mul(images, tf.sub(1, mask)), tf.pad(patch, pad)) as tf.Tensor4D;
  });
}

export interface PatchOptimConfig {
  /** Patch side in pixels. */
  patch: number;
  steps: number;
  batch: number;
  /** Adam learning rate on pixel values in [0, 1]. */
  lr: number;
  seed: number;
}

/** What an objective sees each step: patched and clean image embeddings (normalised) and the images' dataset. */
export interface PatchBatch {
  patched: tf.Tensor2D;
  clean: tf.Tensor2D;
  /** Index of the dataset (in PrepareContext.datasets) the batch came from. */
  dataset: number;
  rng: () => number;
}

/** Builds, once per dataset, the fixed tensors an objective needs (target text/image embeddings). */
export interface PatchObjective {
  setup(model: MiniCLIP, tokenizer: TextTokenizer, datasets: { data: ImageDataset; target: number }[]): void;
  loss(b: PatchBatch, model: MiniCLIP): tf.Scalar;
  dispose(): void;
}

/**
 * Adam on the patch pixels, clipped to [0, 1] after every step, initialised N(0.5, 0.25) as BadCLIP's code does.
 * Batches alternate between the datasets, drawn from images outside each dataset's target class.
 */
export function optimizePatch(
  model: MiniCLIP,
  tokenizer: TextTokenizer,
  datasets: { data: ImageDataset; target: number }[],
  objective: PatchObjective,
  c: PatchOptimConfig,
  label = 'patch',
): { patch: Float32Array; loss: number[] } {
  const rng = makeRng(`patch-${c.seed}`);
  const init = new Float32Array(c.patch * c.patch * 3);
  for (let i = 0; i < init.length; i++) {
    init[i] = Math.min(1, Math.max(0, 0.5 + 0.25 * gaussian(rng)));
  }
  const patch = ownedVariable(tf.tensor3d(init, [c.patch, c.patch, 3]), true);
  const opt = tf.train.adam(c.lr);
  const pools = datasets.map(({ data, target }) => Array.from({ length: numImages(data) }, (_, i) => i).filter((i) => data.labels[i] !== target));
  objective.setup(model, tokenizer, datasets);
  const losses: number[] = [];
  const progress = new Progress(label, c.steps);
  try {
    for (let step = 0; step < c.steps; step++) {
      const di = step % datasets.length;
      const d = datasets[di].data;
      const rows = Array.from({ length: c.batch }, () => pools[di][randInt(rng, pools[di].length)]);
      const off = centreOffset(d.size, c.patch);
      const loss = tf.tidy(() => {
        const images = rowsBatch(d, rows);
        const clean = l2normalize(model.encodeImage(images).embedding);
        return opt.minimize(() => {
          const patched = l2normalize(model.encodeImage(pastePatch(images, patch as tf.Tensor3D, off, off)).embedding);
          return objective.loss({ patched, clean, dataset: di, rng }, model);
        }, true, [patch]) as tf.Scalar;
      });
      losses.push(loss.dataSync()[0]);
      loss.dispose();
      tf.tidy(() => patch.assign(tf.clipByValue(patch, 0, 1)));
      progress.tick(1, `loss ${losses[losses.length - 1].toFixed(3)}`);
    }
    return { patch: Float32Array.from(patch.dataSync()), loss: losses };
  } finally {
    progress.done();
    objective.dispose();
    opt.dispose();
    patch.dispose();
  }
}

/** An optimised-patch trigger; `usePatch` sets prepared pixels directly (the browser lab reads them from a shipped file). */
export type PatchTrigger = Trigger & { readonly patch: Float32Array | null; usePatch(pixels: ArrayLike<number>): void };

/**
 * A trigger that pastes an optimised patch at the centre. `prepare` optimises the patch against the clean
 * model (or loads it from the cache); `apply` before `prepare` is an error that says so.
 */
export function optimisedPatchTrigger(
  name: string,
  config: PatchOptimConfig & Record<string, unknown>,
  objective: () => PatchObjective,
  extra: { textPrefix?: string; captions?: 'template' | 'natural' } = {},
): PatchTrigger {
  let pixels: Float32Array | null = null;
  const trigger: PatchTrigger = {
    name,
    config: { ...config },
    textPrefix: extra.textPrefix,
    captions: extra.captions,
    get patch() {
      return pixels;
    },
    usePatch(p: ArrayLike<number>) {
      const want = config.patch * config.patch * 3;
      if (p.length !== want) throw new Error(`${name}: a ${config.patch}x${config.patch} patch has ${want} values, got ${p.length}; give the 'patch' array of a trigger file prepared with this config.`);
      pixels = Float32Array.from(p);
    },
    async prepare(ctx: PrepareContext) {
      const file = cacheDir('artifacts', `trigger-${name}-${sha256(JSON.stringify({ key: ctx.key, config })).slice(0, 12)}.json`);
      seedFromShipped(file);
      if (fs.existsSync(file)) {
        try {
          pixels = Float32Array.from(readCachedJson<{ patch: number[] }>(file).patch);
          return;
        } catch (e) {
          ctx.log?.(`cached ${name} patch ${file} is unusable (${(e as Error).message}); optimising it again`);
        }
      }
      const { model, tokenizer } = await ctx.cleanModel();
      const datasets = await ctx.datasets();
      const t0 = Date.now();
      const r = optimizePatch(model, tokenizer, datasets, objective(), config, `${name} patch`);
      pixels = r.patch;
      ctx.log?.(`${name}: optimised a ${config.patch}x${config.patch} patch in ${((Date.now() - t0) / 1000).toFixed(0)} s (loss ${r.loss[0].toFixed(3)} -> ${r.loss[r.loss.length - 1].toFixed(3)})`);
      writeCachedJson(file, { attack: name, config, cleanKey: ctx.key, patch: Array.from(pixels), loss: r.loss, seconds: (Date.now() - t0) / 1000 });
    },
    apply(images: tf.Tensor4D, _ctx: TriggerContext): tf.Tensor4D {
      if (!pixels) throw new Error(`${name}: the patch is not optimised yet; call 'await trigger.prepare(ctx)' (ensureBackdoored does) first.`);
      const p = config.patch;
      const off = centreOffset(images.shape[1], p);
      return tf.tidy(() => pastePatch(images, tf.tensor3d(pixels!, [p, p, 3]), off, off));
    },
  };
  return trigger;
}
