/** Image grids as PNG (sharp), for notebooks and figures. */
import sharp from 'sharp';
import { ImageDataset, pixelsPerImage } from '../data/dataset';

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
  const p = pixelsPerImage(d);
  return rows.map((r) => d.images.slice(r * p, (r + 1) * p));
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
