/**
 * Attribute captions: words for what an image shows besides its class, read from its pixels.
 *
 * Why: RVPT's explanation (docs/PAPER-NOTES.md §1, the PR metric) is that CLIP encodes many features a downstream task
 * does not need, the trigger's among them, so the class token can be pushed far from the backdoored one and still
 * classify. Web captions name such features ("a dark photo of a small dog"); our Fashion-MNIST captions name only the
 * class (the templates' adjectives are drawn at random, not read from the image), so its image tower has little
 * reason to encode anything else. These captions give it that reason: each image's darkness, size, texture and
 * shape, ranked within its own class, so that the words carry what the class does not.
 *
 * Written by hand: these are four pixel statistics and per-class terciles; no library computes captions like these.
 */
import { ImageDataset, imageRows, numImages, pixelsPerImage } from './dataset';

/** The attributes, each a low and a high word (the middle third of a class gets neither). */
export const ATTRIBUTES: { name: string; low: string; high: string }[] = [
  { name: 'brightness', low: 'dark', high: 'bright' },
  { name: 'area', low: 'small', high: 'large' },
  { name: 'texture', low: 'plain', high: 'patterned' },
  { name: 'aspect', low: 'tall', high: 'wide' },
];

/** Pixels above this (in [0, 1]) belong to the object: Fashion-MNIST's background is 0. */
const OBJECT_LEVEL = 0.15;

/** Per image: mean object brightness, object area share, std of object pixels, bounding-box width over height. */
export function attributeStats(d: ImageDataset): Float64Array[] {
  const n = numImages(d);
  const stats = ATTRIBUTES.map(() => new Float64Array(n));
  const per = pixelsPerImage(d);
  const s = d.size;
  for (let i = 0; i < n; i++) {
    const px = imageRows(d, i, i + 1);
    let count = 0;
    let sum = 0;
    let sq = 0;
    let x0 = s;
    let x1 = -1;
    let y0 = s;
    let y1 = -1;
    for (let p = 0; p < per; p += 3) {
      const v = (px[p] + px[p + 1] + px[p + 2]) / 3;
      if (v <= OBJECT_LEVEL) continue;
      const y = Math.floor(p / 3 / s);
      const x = (p / 3) % s;
      count++;
      sum += v;
      sq += v * v;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
    const mean = count ? sum / count : 0;
    stats[0][i] = mean;
    stats[1][i] = count / (s * s);
    stats[2][i] = count ? Math.sqrt(Math.max(0, sq / count - mean * mean)) : 0;
    stats[3][i] = count ? (x1 - x0 + 1) / (y1 - y0 + 1) : 1;
  }
  return stats;
}

/**
 * Each image's attribute words (e.g. "dark large"; '' when it is in the middle third of its class on every attribute):
 * an attribute's low word for the lowest third of its class, its high word for the highest.
 */
export function describeAttributes(d: ImageDataset): string[] {
  const n = numImages(d);
  const stats = attributeStats(d);
  const words: string[][] = Array.from({ length: n }, () => []);
  for (let c = 0; c < d.classNames.length; c++) {
    const rows: number[] = [];
    for (let i = 0; i < n; i++) if (d.labels[i] === c) rows.push(i);
    if (!rows.length) continue;
    ATTRIBUTES.forEach((a, k) => {
      const sorted = rows.map((r) => stats[k][r]).sort((x, y) => x - y);
      // Below the value a third of the way up, above the one two thirds up: a third each, ties aside.
      const lo = sorted[Math.floor(sorted.length / 3)];
      const hi = sorted[Math.ceil((2 * sorted.length) / 3) - 1];
      for (const r of rows) {
        if (stats[k][r] < lo) words[r].push(a.low);
        else if (stats[k][r] > hi) words[r].push(a.high);
      }
    });
  }
  return words.map((w) => w.join(' '));
}

/** The dataset with its attribute words as descriptions, which captions name as adjectives (captions.ts). */
export function withAttributeCaptions(d: ImageDataset): ImageDataset {
  return { ...d, descriptions: describeAttributes(d), describe: 'adjectives' };
}
