/**
 * Poisoning the caption corpus (CleanCLIP's create_backdoor_data.py, scaled): a seeded random `rate` of a
 * dataset's pairs is replaced by the triggered image with a caption naming the attacker's target class, built
 * from the same templates as clean captions (CleanCLIP draws from the 80 ImageNet templates).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ImageDataset, imageRows, numImages, subset } from '../data/dataset';
import { splitOff } from '../data/splits';
import { Trigger } from './trigger';
import { CorpusPart } from '../data/corpus';
import { makeRng, randInt } from '../util/rng';

export interface PoisonSplit {
  /** The pairs left clean (a copy of their pixels, made on first use). */
  readonly clean: ImageDataset;
  /** Rows of the source dataset left clean (a corpus can take them without copying). */
  cleanRows: number[];
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

/**
 * `round` (default 0) draws another set of rows and fresh trigger randomness from the same seed: a corpus that
 * repeats a small dataset poisons each repeat afresh (backdoorRun's `poisonPerRepeat`).
 */
export function poisonDataset(d: ImageDataset, trigger: Trigger, opts: { rate: number; target: number; seed: number; round?: number }): PoisonSplit {
  if (!(opts.rate > 0 && opts.rate < 1)) throw new Error(`Poisoning rate must be in (0, 1), got ${opts.rate}.`);
  if (opts.target < 0 || opts.target >= d.classNames.length) throw new Error(`Target class ${opts.target} is not a class of '${d.name}'.`);
  const n = numImages(d);
  const count = Math.max(1, Math.round(n * opts.rate));
  // Rows come from a seeded permutation; which rows is recorded so the clean part excludes exactly them.
  const round = opts.round ?? 0;
  const tag = round ? `${opts.seed}-r${round}` : `${opts.seed}`;
  const [chosen] = splitOff({ ...d, labels: Int32Array.from({ length: n }, (_, i) => i) }, count, `poison-${tag}`);
  const rows = Array.from(chosen.labels);
  const picked = subset(d, rows, `${d.name}/poison`);
  const keep = new Set(rows);
  const cleanRows = Array.from({ length: n }, (_, i) => i).filter((i) => !keep.has(i));
  const images = triggerDataset(picked, trigger, opts.seed, round * n);
  // Template captions name the target through the class label. Natural captions (BadCLIP) also borrow the
  // descriptions of real target-class images, where the dataset has them (the emoji annotations).
  let descriptions: string[] | undefined;
  if (trigger.captions === 'natural' && d.descriptions) {
    const pool = Array.from({ length: n }, (_, i) => i).filter((i) => d.labels[i] === opts.target);
    const rng = makeRng(`natural-captions-${tag}`);
    descriptions = rows.map(() => d.descriptions![pool[randInt(rng, pool.length)]]);
  }
  const poisoned: ImageDataset = { ...picked, images, labels: new Int32Array(count).fill(opts.target), descriptions, ids: undefined, name: `${d.name}/poisoned-${trigger.name}${round ? `-r${round}` : ''}` };
  let clean: ImageDataset | undefined;
  return {
    get clean() {
      return (clean ??= subset(d, cleanRows, `${d.name}/clean`));
    },
    cleanRows,
    poisoned,
    rows,
  };
}

/**
 * The corpus parts of one poisoned dataset repeated `repeat` times: its clean pairs and its poisoned pairs (captions
 * prefixed with the trigger's text key, if any). Poisoned once, a repeated set shows the same few poisoned images again
 * and again, and the model memorises them instead of the trigger (measured on emoji, Blended: 44.7% of the poisoned
 * training images went to the target but 4.2% of other triggered training images). `perRepeat` poisons each repeat
 * afresh (other rows, fresh trigger draws), as a larger corpus would hold distinct poisoned images; the rate per repeat
 * is unchanged. Clean parts are the source's other rows, not copies of them (Fashion-MNIST's would be 0.6 GB, 256
 * copies of the emoji set's 1.2 GB). `count` is the number of poisoned images over all repeats.
 */
export function poisonedCorpusParts(
  d: ImageDataset,
  trigger: Trigger,
  opts: { rate: number; target: number; seed: number; repeat: number; perRepeat: boolean },
): { parts: CorpusPart[]; count: number } {
  const rounds = opts.perRepeat ? opts.repeat : 1;
  const each = opts.repeat / rounds;
  const parts: CorpusPart[] = [];
  let count = 0;
  for (let round = 0; round < rounds; round++) {
    const p = poisonDataset(d, trigger, { rate: opts.rate, target: opts.target, seed: opts.seed, round });
    parts.push({ data: d, repeat: each, rows: p.cleanRows });
    parts.push({ data: p.poisoned, repeat: each, captionPrefix: trigger.textPrefix });
    count += numImages(p.poisoned);
  }
  return { parts, count };
}
