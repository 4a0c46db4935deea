/** Deterministic splits and the k-shot sampler used by every few-shot defense. */
import { ImageDataset, numImages, subset } from './dataset';
import { makeRng, permutation } from '../util/rng';

/** Split rows into two datasets: `count` rows (chosen by a seeded permutation) and the rest. */
export function splitOff(d: ImageDataset, count: number, seed: number | string): [ImageDataset, ImageDataset] {
  const n = numImages(d);
  if (count > n) throw new Error(`Cannot split ${count} rows off '${d.name}', which has ${n}.`);
  const p = permutation(n, makeRng(`split-${seed}`));
  const taken = Array.from(p.slice(0, count)).sort((a, b) => a - b);
  const rest = Array.from(p.slice(count)).sort((a, b) => a - b);
  return [subset(d, taken), subset(d, rest)];
}

/**
 * k images per class (fewer where a class has fewer), chosen by seed; classes in `exclude` are left out (the
 * paper's "woTC" setting removes the target class).
 */
export function kShot(d: ImageDataset, k: number, seed: number, exclude: number[] = []): ImageDataset {
  if (!Number.isInteger(k) || k < 1) throw new Error(`kShot: shots per class must be a positive integer, got ${k}.`);
  const rng = makeRng(`kshot-${seed}-${k}`);
  const byClass: number[][] = d.classNames.map(() => []);
  d.labels.forEach((l, i) => byClass[l].push(i));
  const rows: number[] = [];
  byClass.forEach((idx, c) => {
    if (exclude.includes(c)) return;
    const p = permutation(idx.length, rng);
    for (let i = 0; i < Math.min(k, idx.length); i++) rows.push(idx[p[i]]);
  });
  rows.sort((a, b) => a - b);
  return subset(d, rows, `${d.name}/${k}-shot`);
}

/** Take the first n rows of a seeded permutation (a deterministic random sample, for quick evaluation). */
export function sample(d: ImageDataset, n: number, seed: number | string): ImageDataset {
  if (n >= numImages(d)) return d;
  return splitOff(d, n, `sample-${seed}`)[0];
}
