/** Seeded randomness for everything outside TF.js (shuffles, splits, augmentation draws, caption templates). */
import seedrandom from 'seedrandom';

export type Rng = () => number;

export function makeRng(seed: number | string): Rng {
  return seedrandom(String(seed));
}

export function randInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** Fisher-Yates shuffle of 0..n-1. */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
