/**
 * WaNet: a fixed, smooth warping field applied with grid_sample-style bilinear interpolation (docs/PAPER-NOTES.md §3).
 * The field is a k x k grid of uniform noise in [-1, 1], normalised by its mean absolute value, upsampled to the
 * image (bilinearly; CleanCLIP uses bicubic), scaled by s / S and added to the identity grid, which is clamped to
 * [-1, 1] (align_corners). CleanCLIP's k = 224, s = 1 on 224-pixel images moves pixels by under one pixel; at 32
 * pixels that is invisible to the model, so the default follows the WaNet paper's smooth field instead (k = 4).
 */
import { Trigger, pixelTrigger } from './trigger';
import { makeRng } from '../util/rng';

export interface WaNetConfig {
  /** Control-grid side. */
  k: number;
  /** Strength, in pixels of displacement per unit of normalised noise. */
  s: number;
  /** Seed of the (fixed, attack-wide) field. */
  fieldSeed: number;
}

export const WANET_DEFAULTS: WaNetConfig = { k: 4, s: 1.5, fieldSeed: 0 };

/** Source coordinates (in pixels) for every output pixel: [S*S*2] as (y, x). */
export function wanetField(size: number, c: WaNetConfig): Float32Array {
  const rng = makeRng(`wanet-field-${c.fieldSeed}`);
  const noise = new Float32Array(2 * c.k * c.k).map(() => rng() * 2 - 1);
  const meanAbs = noise.reduce((a, v) => a + Math.abs(v), 0) / noise.length;
  for (let i = 0; i < noise.length; i++) noise[i] /= meanAbs;
  const out = new Float32Array(size * size * 2);
  const up = (ch: number, y: number, x: number) => {
    // bilinear upsampling of the k x k control grid, align_corners style
    const gy = (y * (c.k - 1)) / (size - 1);
    const gx = (x * (c.k - 1)) / (size - 1);
    const y0 = Math.floor(gy);
    const x0 = Math.floor(gx);
    const y1 = Math.min(c.k - 1, y0 + 1);
    const x1 = Math.min(c.k - 1, x0 + 1);
    const fy = gy - y0;
    const fx = gx - x0;
    const v = (yy: number, xx: number) => noise[ch * c.k * c.k + yy * c.k + xx];
    return (1 - fy) * ((1 - fx) * v(y0, x0) + fx * v(y0, x1)) + fy * ((1 - fx) * v(y1, x0) + fx * v(y1, x1));
  };
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 2;
      out[o] = Math.min(size - 1, Math.max(0, y + c.s * up(0, y, x)));
      out[o + 1] = Math.min(size - 1, Math.max(0, x + c.s * up(1, y, x)));
    }
  }
  return out;
}

export function wanet(config: Partial<WaNetConfig> = {}): Trigger {
  const c = { ...WANET_DEFAULTS, ...config };
  const fields = new Map<number, Float32Array>();
  return pixelTrigger('WaNet', c, (px, _index, size) => {
    if (!fields.has(size)) fields.set(size, wanetField(size, c));
    const field = fields.get(size)!;
    const src = Float32Array.from(px);
    const at = (yy: number, xx: number, ch: number) => src[(yy * size + xx) * 3 + ch];
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const o = (y * size + x) * 2;
        const y0 = Math.floor(field[o]);
        const x0 = Math.floor(field[o + 1]);
        const y1 = Math.min(size - 1, y0 + 1);
        const x1 = Math.min(size - 1, x0 + 1);
        const fy = field[o] - y0;
        const fx = field[o + 1] - x0;
        for (let ch = 0; ch < 3; ch++) {
          px[(y * size + x) * 3 + ch] = (1 - fy) * ((1 - fx) * at(y0, x0, ch) + fx * at(y0, x1, ch)) + fy * ((1 - fx) * at(y1, x0, ch) + fx * at(y1, x1, ch));
        }
      }
    }
  });
}
