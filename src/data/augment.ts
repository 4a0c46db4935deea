/**
 * Image augmentation on batches, in TF.js: random resized crop (CoOp/CLIP style) and horizontal flip. Draws
 * come from a seeded JS rng, so a step's augmentation is reproducible and a resumed run repeats it exactly.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng';

export interface AugmentConfig {
  /** Crop area as a share of the image, [min, max] (torchvision's RandomResizedCrop scale). */
  scale: [number, number];
  /** Aspect ratio range of the crop. */
  ratio: [number, number];
  /** Probability of a horizontal flip. */
  flip: number;
}

export const DEFAULT_AUGMENT: AugmentConfig = { scale: [0.6, 1], ratio: [3 / 4, 4 / 3], flip: 0.5 };

/** Normalised crop boxes [y1, x1, y2, x2] and flip flags, one of each per image of a batch. */
export interface AugmentDraw {
  boxes: Float32Array;
  flips: boolean[];
}

/** Crop boxes and flip flags for a batch. */
export function drawAugment(n: number, cfg: AugmentConfig, rng: Rng): AugmentDraw {
  const boxes = new Float32Array(n * 4);
  const flips: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const area = cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * rng();
    const logR = Math.log(cfg.ratio[0]) + (Math.log(cfg.ratio[1]) - Math.log(cfg.ratio[0])) * rng();
    const r = Math.exp(logR);
    const w = Math.min(1, Math.sqrt(area * r));
    const h = Math.min(1, Math.sqrt(area / r));
    const y = (1 - h) * rng();
    const x = (1 - w) * rng();
    boxes.set([y, x, y + h, x + w], i * 4);
    flips.push(rng() < cfg.flip);
  }
  return { boxes, flips };
}

/** The draws of images [from, to) of a batch. */
export function sliceDraw(d: AugmentDraw, from: number, to: number): AugmentDraw {
  return { boxes: d.boxes.slice(from * 4, to * 4), flips: d.flips.slice(from, to) };
}

/**
 * Crop, resize and flip image i by draw i. Each image's values depend on its own draw only, so the halves of a batch
 * augmented apart (one per training thread) give the whole batch's values exactly.
 */
export function applyAugment(images: tf.Tensor4D, d: AugmentDraw): tf.Tensor4D {
  const [n, h, w] = images.shape;
  if (d.flips.length !== n || d.boxes.length !== 4 * n) throw new Error(`applyAugment: ${d.flips.length} draws for ${n} images.`);
  return tf.tidy(() => {
    const cropped = tf.image.cropAndResize(images, tf.tensor2d(d.boxes, [n, 4]), tf.range(0, n, 1, 'int32') as tf.Tensor1D, [h, w], 'bilinear');
    if (!d.flips.some((f) => f)) return cropped;
    const mask = tf.tensor4d(Float32Array.from(d.flips, (f) => (f ? 1 : 0)), [n, 1, 1, 1]);
    const flipped = tf.reverse(cropped, 2);
    return tf.add(tf.mul(flipped, mask), tf.mul(cropped, tf.sub(1, mask))) as tf.Tensor4D;
  });
}

/** A batch's crops and flips, drawn from `rng`. */
export function augmentBatch(images: tf.Tensor4D, cfg: AugmentConfig, rng: Rng): tf.Tensor4D {
  return applyAugment(images, drawAugment(images.shape[0], cfg, rng));
}
