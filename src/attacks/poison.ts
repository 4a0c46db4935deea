/**
 * Poisoning the caption corpus (CleanCLIP's create_backdoor_data.py, scaled): a seeded random `rate` of a
 * dataset's pairs is replaced by the triggered image with a caption naming the attacker's target class, built
 * from the same templates as clean captions (CleanCLIP draws from the 80 ImageNet templates).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ImageDataset, imageRows, numImages, subset } from '../data/dataset';
import { splitOff } from '../data/splits';
import { Trigger } from './trigger';
import { makeRng, randInt } from '../util/rng';

export interface PoisonSplit {
  /** The pairs left clean. */
  clean: ImageDataset;
  /** Triggered images, labelled with the target class (so every caption names it). */
  poisoned: ImageDataset;
  /** Row of each poisoned image in the source dataset. */
  rows: number[];
}

/** Apply a trigger to a whole dataset in batches; per-image randomness is keyed on `offset + row`. */
export function triggerDataset(d: ImageDataset, trigger: Trigger, seed: number, offset = 0, batch = 500): Float32Array {
  const per = d.size * d.size * 3;
  const n = numImages(d);
  const out = new Float32Array(n * per);
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const t = tf.tidy(() => trigger.apply(tf.tensor4d(imageRows(d, s, e), [e - s, d.size, d.size, 3]), { seed, offset: offset + s }));
    out.set(t.dataSync(), s * per);
    t.dispose();
  }
  return out;
}

export function poisonDataset(d: ImageDataset, trigger: Trigger, opts: { rate: number; target: number; seed: number }): PoisonSplit {
  if (!(opts.rate > 0 && opts.rate < 1)) throw new Error(`Poisoning rate must be in (0, 1), got ${opts.rate}.`);
  if (opts.target < 0 || opts.target >= d.classNames.length) throw new Error(`Target class ${opts.target} is not a class of '${d.name}'.`);
  const n = numImages(d);
  const count = Math.max(1, Math.round(n * opts.rate));
  // Rows come from a seeded permutation; which rows is recorded so the clean part excludes exactly them.
  const [chosen] = splitOff({ ...d, labels: Int32Array.from({ length: n }, (_, i) => i) }, count, `poison-${opts.seed}`);
  const rows = Array.from(chosen.labels);
  const picked = subset(d, rows, `${d.name}/poison`);
  const keep = new Set(rows);
  const clean = subset(d, Array.from({ length: n }, (_, i) => i).filter((i) => !keep.has(i)), `${d.name}/clean`);
  const images = triggerDataset(picked, trigger, opts.seed, 0);
  // Template captions name the target through the class label. Natural captions (BadCLIP) also borrow the
  // descriptions of real target-class images, where the dataset has them (the emoji annotations).
  let descriptions: string[] | undefined;
  if (trigger.captions === 'natural' && d.descriptions) {
    const pool = Array.from({ length: n }, (_, i) => i).filter((i) => d.labels[i] === opts.target);
    const rng = makeRng(`natural-captions-${opts.seed}`);
    descriptions = rows.map(() => d.descriptions![pool[randInt(rng, pool.length)]]);
  }
  const poisoned: ImageDataset = { ...picked, images, labels: new Int32Array(count).fill(opts.target), descriptions, ids: undefined, name: `${d.name}/poisoned-${trigger.name}` };
  return { clean, poisoned, rows };
}
