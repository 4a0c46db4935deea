/**
 * Perturbation Resistivity (docs/PAPER-NOTES.md §1, the slide deck's Fig. 4): PR(x, delta) = cos(f(x), f(x + delta)),
 * where f is a layer's class token, averaged over a test sample, for every block of the image encoder. A high PR
 * means the layer ignores the perturbation; CLIP's low PR under task-irrelevant perturbations is the paper's
 * explanation of why triggers take. Using the per-block class token as f is the paper's unstated choice [inferred].
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { DeepPrompts } from '../model/prompts';
import { l2normalize } from '../model/layers';
import { ImageDataset, numImages } from '../data/dataset';
import { imageBatch } from '../data/batches';
import { Trigger } from '../attacks/trigger';
import { testTimeTrigger } from './backdoor';
import { makeRng, Rng } from '../util/rng';

/** A perturbation of a batch: images in [0, 1] -> perturbed images in [0, 1]; `offset` is the batch's first index. */
export type Perturbation = (images: tf.Tensor4D, offset: number) => tf.Tensor4D;

/** Mean over the sample of the cosine between clean and perturbed class tokens, per block: [layers]. */
export function perturbationResistivity(model: MiniCLIP, d: ImageDataset, perturb: Perturbation, opts: { prompts?: DeepPrompts; batchSize?: number } = {}): number[] {
  const n = numImages(d);
  const bs = opts.batchSize ?? 256;
  const sums = new Float64Array(model.config.layers);
  for (let start = 0; start < n; start += bs) {
    const end = Math.min(n, start + bs);
    const cos = tf.tidy(() => {
      const x = imageBatch(d, start, end);
      const a = model.encodeImage(x, { prompts: opts.prompts, collectCls: true }).cls!;
      const b = model.encodeImage(perturb(x, start), { prompts: opts.prompts, collectCls: true }).cls!;
      return tf.stack(a.map((c, i) => tf.sum(tf.sum(tf.mul(l2normalize(c), l2normalize(b[i])), 1)))) as tf.Tensor1D;
    });
    cos.dataSync().forEach((v, i) => (sums[i] += v));
    cos.dispose();
  }
  return Array.from(sums, (s) => s / n);
}

/**
 * How far deep prompts move each image's class token away from the frozen encoder's, per block: `moved[l]` is the mean
 * over images of cos(c_i^l with prompts, c_i^l without), which RVPT's FR term minimises over its prompted blocks. A
 * cosine means little alone, so `spread[l]` gives the scale: the mean over pairs of different images of
 * cos(c_i^l, c_j^l) in the frozen encoder. A move to `moved` below `spread` takes an image further from itself than
 * another image is. `transform` (e.g. a trigger) is applied to every batch first. Pairs are summed as
 * (|sum_i n_i|^2 - N) / (N (N - 1)) over the unit vectors n_i, so no N x N matrix is formed.
 */
export function promptDisplacement(
  model: MiniCLIP,
  d: ImageDataset,
  prompts: DeepPrompts,
  opts: { transform?: Perturbation; batchSize?: number } = {},
): { moved: number[]; spread: number[] } {
  const n = numImages(d);
  if (n < 2) throw new Error(`promptDisplacement: needs at least 2 images, got ${n} from '${d.name}'.`);
  const L = model.config.layers;
  const bs = opts.batchSize ?? 256;
  const moved = new Float64Array(L);
  const unitSums = Array.from({ length: L }, () => new Float64Array(model.config.width));
  for (let start = 0; start < n; start += bs) {
    const end = Math.min(n, start + bs);
    const [cos, sums] = tf.tidy(() => {
      const raw = imageBatch(d, start, end);
      const x = opts.transform ? opts.transform(raw, start) : raw;
      const a = model.encodeImage(x, { collectCls: true }).cls!.map((c) => l2normalize(c));
      const b = model.encodeImage(x, { prompts, collectCls: true }).cls!.map((c) => l2normalize(c));
      return [tf.stack(a.map((c, i) => tf.sum(tf.mul(c, b[i])))), tf.stack(a.map((c) => tf.sum(c, 0)))];
    });
    cos.dataSync().forEach((v, i) => (moved[i] += v));
    const s = sums.dataSync();
    unitSums.forEach((u, l) => u.forEach((_, k) => (u[k] += s[l * u.length + k])));
    tf.dispose([cos, sums]);
  }
  const spread = unitSums.map((u) => (u.reduce((a, v) => a + v * v, 0) - n) / (n * (n - 1)));
  return { moved: Array.from(moved, (v) => v / n), spread };
}

/** Seeded N(0, 1) draws for a tensor of `n` values (TF.js's own seeded ops vary by backend; a JS rng does not). */
function normals(n: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng(), 1e-12);
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** Additive Gaussian noise of standard deviation `std` (pixels in [0, 1]), clipped. */
export function gaussianNoise(std: number, seed = 0): Perturbation {
  return (x, offset) => tf.tidy(() => tf.clipByValue(tf.add(x, tf.mul(tf.tensor(normals(x.size, makeRng(`noise-${seed}-${offset}`)), x.shape), std)), 0, 1) as tf.Tensor4D);
}

/** Gaussian blur of standard deviation `sigma` pixels, as a separable depthwise convolution with edge padding. */
export function gaussianBlur(sigma: number): Perturbation {
  const r = Math.max(1, Math.ceil(2 * sigma));
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const sum = k.reduce((a, b) => a + b, 0);
  const w = k.map((v) => v / sum);
  return (x) =>
    tf.tidy(() => {
      const kx = tf.tile(tf.reshape(tf.tensor1d(w), [1, 2 * r + 1, 1, 1]), [1, 1, 3, 1]) as tf.Tensor4D;
      const ky = tf.tile(tf.reshape(tf.tensor1d(w), [2 * r + 1, 1, 1, 1]), [1, 1, 3, 1]) as tf.Tensor4D;
      const pad = tf.mirrorPad(x, [[0, 0], [r, r], [r, r], [0, 0]], 'symmetric');
      return tf.depthwiseConv2d(tf.depthwiseConv2d(pad, kx, 1, 'valid'), ky, 1, 'valid');
    });
}

/** Colour jitter: per-image brightness, contrast and saturation factors drawn from [1 - s, 1 + s]. */
export function colorJitter(strength: number, seed = 0): Perturbation {
  return (x, offset) =>
    tf.tidy(() => {
      const n = x.shape[0];
      const rng = makeRng(`jitter-${seed}-${offset}`);
      const draw = () => tf.tensor4d(Float32Array.from({ length: n }, () => 1 + strength * (2 * rng() - 1)), [n, 1, 1, 1]);
      const [bright, contrast, sat] = [draw(), draw(), draw()];
      let y = tf.mul(x, bright);
      const mean = tf.mean(y, [1, 2, 3], true);
      y = tf.add(tf.mul(tf.sub(y, mean), contrast), mean);
      const grey = tf.mean(y, 3, true);
      y = tf.add(tf.mul(tf.sub(y, grey), sat), grey);
      return tf.clipByValue(y, 0, 1) as tf.Tensor4D;
    });
}

export const horizontalFlip: Perturbation = (x) => tf.reverse(x, 2);

/** A backdoor trigger as a perturbation (the test-time draws of its randomness). */
export function triggerPerturbation(trigger: Trigger): Perturbation {
  return testTimeTrigger(trigger);
}

/** The task-irrelevant perturbations of the PR figure, at strengths that leave the image recognisable. */
export function standardPerturbations(): Record<string, Perturbation> {
  return { 'Gaussian noise (σ=0.1)': gaussianNoise(0.1), 'Gaussian blur (σ=1)': gaussianBlur(1), 'colour jitter (±0.4)': colorJitter(0.4), 'horizontal flip': horizontalFlip };
}
