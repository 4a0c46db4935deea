/** Image grids as PNG (sharp), for notebooks and figures. */
import sharp from 'sharp';
import { ImageDataset, imageRows } from '../data/dataset';

/** Tile images (each size x size x 3 floats in [0,1]) into a PNG, upscaled `scale` times (nearest). */
export async function gridPng(images: Float32Array[], size: number, cols: number, scale = 3, gap = 2): Promise<Buffer> {
  const rows = Math.ceil(images.length / cols);
  const cell = size * scale + gap;
  const w = cols * cell + gap;
  const h = rows * cell + gap;
  const buf = Buffer.alloc(w * h * 3, 255);
  images.forEach((img, k) => {
    const ox = gap + (k % cols) * cell;
    const oy = gap + Math.floor(k / cols) * cell;
    for (let y = 0; y < size * scale; y++) {
      for (let x = 0; x < size * scale; x++) {
        const s = (Math.floor(y / scale) * size + Math.floor(x / scale)) * 3;
        const d = ((oy + y) * w + ox + x) * 3;
        for (let c = 0; c < 3; c++) buf[d + c] = Math.max(0, Math.min(255, Math.round(img[s + c] * 255)));
      }
    }
  });
  return sharp(buf, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

export function datasetImages(d: ImageDataset, rows: number[]): Float32Array[] {
  return rows.map((r) => imageRows(d, r, r + 1).slice());
}

/** The first `perClass` images of every class, one class per row. */
export function classRows(d: ImageDataset, perClass: number): number[] {
  const out: number[] = [];
  d.classNames.forEach((_, c) => {
    let k = 0;
    for (let i = 0; i < d.labels.length && k < perClass; i++) if (d.labels[i] === c) (out.push(i), k++);
  });
  return out;
}

/**
 * Rows of clean images, their triggered versions and the difference (|triggered - clean|, amplified `gain`
 * times so near-invisible triggers show), for a notebook figure.
 */
export function triggerRows(clean: Float32Array[], triggered: Float32Array[], gain = 5): Float32Array[] {
  const diff = clean.map((c, i) => c.map((v, j) => Math.min(1, gain * Math.abs(triggered[i][j] - v))));
  return [...clean, ...triggered, ...diff];
}

/** Concatenate per-image pixel arrays into one batch buffer. */
export function concatImages(images: Float32Array[]): Float32Array {
  const out = new Float32Array(images.reduce((a, i) => a + i.length, 0));
  let o = 0;
  for (const i of images) (out.set(i, o), (o += i.length));
  return out;
}

/** Split a [B, S, S, 3] batch buffer into per-image arrays. */
export function splitImages(batch: Float32Array, size: number): Float32Array[] {
  const per = size * size * 3;
  return Array.from({ length: batch.length / per }, (_, i) => batch.slice(i * per, (i + 1) * per));
}
