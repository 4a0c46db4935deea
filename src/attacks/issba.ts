/**
 * ISSBA (invisible sample-specific backdoor): the trigger is the residual a steganography encoder adds to hide a
 * fixed secret in each image, so it differs from image to image and is near-invisible. The paper uses the
 * pretrained StegaStamp encoder (secret 'Stega!!', docs/PAPER-NOTES.md §3); those TensorFlow weights are not
 * available here, so the project trains its own small StegaStamp-style encoder/decoder pair on the pre-training
 * images: the encoder hides random bit strings as a bounded residual, the decoder must read them back, and an L2
 * penalty keeps the residual small. The attack then hides one fixed code (the first bits of 'Stega!!').
 * Written by hand because no npm library provides a steganographic encoder; the networks are small per-block MLPs.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { ownedVariable } from '../model/params';
import { ImageDataset, copyImageRow, numImages, pixelsPerImage } from '../data/dataset';
import { makeRng, randInt } from '../util/rng';
import { Progress } from '../util/progress';
import { cacheDir, sha256, readCachedJson, writeCachedJson, seedFromShipped } from '../util/fsutil';
import { PrepareContext, Trigger } from './trigger';
import { patchify } from '../model/vision';

export interface ISSBAConfig {
  /** Length of the hidden bit string. */
  bits: number;
  /** Residual bound: the encoder's output is eps * tanh(.), so no pixel moves more than eps. */
  eps: number;
  /** Weight of the mean squared residual in the encoder's loss. */
  l2Weight: number;
  /** Encoder/decoder training. */
  steps: number;
  batch: number;
  lr: number;
  hidden: number;
  seed: number;
  secret: string;
  /**
   * Version of the encoder's training, part of the trigger's config so that cached encoders and the models poisoned
   * with them are rebuilt when it changes. 2: every initial weight seeded (in 1, seed 0 left the first unseeded).
   */
  encoderVersion: number;
}

export const ISSBA_DEFAULTS: ISSBAConfig = { bits: 32, eps: 0.1, l2Weight: 30, steps: 400, batch: 32, lr: 5e-3, hidden: 64, seed: 0, secret: 'Stega!!', encoderVersion: 2 };

type Weights = Record<string, tf.Variable>;

/** The secret's ASCII bits, cycled to `n` bits. */
export function secretBits(secret: string, n: number): Float32Array {
  const bits: number[] = [];
  for (const ch of secret) for (let b = 7; b >= 0; b--) bits.push((ch.charCodeAt(0) >> b) & 1);
  return Float32Array.from({ length: n }, (_, i) => bits[i % bits.length]);
}

/** Side of the blocks the encoder and decoder work on (ViT-style patches). */
const BLOCK = 4;

function initWeights(size: number, c: ISSBAConfig): Weights {
  const h = c.hidden;
  const blocks = (size / BLOCK) ** 2;
  const pix = BLOCK * BLOCK * 3;
  const shapes: Record<string, number[]> = {
    'enc.code': [c.bits, blocks * 16],
    'enc.fc1': [pix + 16, h],
    'enc.fc2': [h, h],
    'enc.fc3': [h, pix],
    'dec.fc1': [pix, 32],
    'dec.out': [blocks * 32, c.bits],
  };
  const w: Weights = {};
  let k = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    // TF.js reads a seed of 0 as "no seed" (Math.random): every seed here is at least 1.
    w[name] = ownedVariable(tf.randomNormal(shape, 0, Math.sqrt(2 / shape[0]), 'float32', c.seed * 100 + ++k), true);
  }
  return w;
}

/** Inverse of patchify: [B * g * g, p * p * 3] -> [B, S, S, 3]. */
function unpatchify(x: tf.Tensor2D, b: number, size: number, p: number): tf.Tensor4D {
  const g = size / p;
  return tf.reshape(tf.transpose(tf.reshape(x, [b * g, g, p, p * 3]), [0, 2, 1, 3]), [b, size, size, 3]) as tf.Tensor4D;
}

/**
 * Residual [B, S, S, 3] that hides `code` [B, bits] in `images`: an MLP on each 4x4 block's pixels and a learned
 * per-block embedding of the code (StegaStamp's U-Net, shrunk to what trains in a minute here). Matmuls and
 * reshapes only: the WASM backend has no gradient kernel for conv2d's filter, and im2col convolutions were 10x
 * slower (measured 2.6 s per step at batch 32).
 */
export function issbaResidual(w: Record<string, tf.Tensor>, images: tf.Tensor4D, code: tf.Tensor2D, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, s] = images.shape;
    const blocks = patchify(tf.sub(images, 0.5) as tf.Tensor4D, BLOCK);
    const codeEmb = tf.reshape(tf.matMul(code, w['enc.code'] as tf.Tensor2D), [blocks.shape[0], 16]);
    let h = tf.relu(tf.matMul(tf.concat([blocks, codeEmb], 1), w['enc.fc1'] as tf.Tensor2D));
    h = tf.relu(tf.matMul(h, w['enc.fc2'] as tf.Tensor2D));
    return unpatchify(tf.mul(tf.tanh(tf.matMul(h, w['enc.fc3'] as tf.Tensor2D)), eps) as tf.Tensor2D, b, s, BLOCK);
  });
}

function decode(w: Weights, images: tf.Tensor4D): tf.Tensor2D {
  const b = images.shape[0];
  const h = tf.relu(tf.matMul(patchify(tf.sub(images, 0.5) as tf.Tensor4D, BLOCK), w['dec.fc1'] as tf.Tensor2D));
  return tf.matMul(tf.reshape(h, [b, -1]), w['dec.out'] as tf.Tensor2D);
}

/** Clip to [0, 1] forward, identity backward. */
const clipStraightThrough = tf.customGrad(((x: tf.Tensor) => ({ value: tf.clipByValue(x, 0, 1), gradFunc: (dy: tf.Tensor) => dy })) as never) as unknown as (x: tf.Tensor4D) => tf.Tensor4D;

export interface ISSBATraining {
  encoder: Record<string, { shape: number[]; data: number[] }>;
  loss: number[];
  /** Bit accuracy of the decoder on the last 10 batches (%). */
  bitAccuracy: number;
  meanAbsResidual: number;
  seconds: number;
}

/** Train the encoder/decoder pair on random bit strings hidden in the given images. */
export function trainISSBA(images: ImageDataset[], c: ISSBAConfig, label = 'ISSBA encoder'): ISSBATraining {
  const size = images[0].size;
  const per = pixelsPerImage(images[0]);
  const w = initWeights(size, c);
  const opt = tf.train.adam(c.lr);
  const rng = makeRng(`issba-train-${c.seed}`);
  const loss: number[] = [];
  const bitAcc: number[] = [];
  const absRes: number[] = [];
  const t0 = Date.now();
  const progress = new Progress(label, c.steps);
  try {
    for (let step = 0; step < c.steps; step++) {
      const buf = new Float32Array(c.batch * per);
      for (let i = 0; i < c.batch; i++) {
        const d = images[randInt(rng, images.length)];
        const r = randInt(rng, numImages(d));
        copyImageRow(d, r, buf, i * per);
      }
      const code = tf.tensor2d(Float32Array.from({ length: c.batch * c.bits }, () => (rng() < 0.5 ? 0 : 1)), [c.batch, c.bits]);
      const x = tf.tensor4d(buf, [c.batch, size, size, 3]);
      const stats = tf.tidy(() => {
        // minimize() disposes what its closure makes, so the monitoring numbers are kept from inside it.
        let monitor: tf.Tensor[] = [];
        const l = opt.minimize(() => {
          const res = issbaResidual(w, x, code, c.eps);
          // Clipped as the trigger will be, with a straight-through gradient: on black backgrounds (Fashion-MNIST)
          // a plain clip would zero the gradient of every negative residual.
          const logits = decode(w, clipStraightThrough(tf.add(x, res) as tf.Tensor4D));
          monitor = [tf.mean(tf.cast(tf.equal(tf.greater(logits, 0), tf.cast(code, 'bool')), 'float32')), tf.mean(tf.abs(res))].map((t) => tf.keep(t));
          // The residual penalty is off for the first 30% of steps and ramps up until 70%, as StegaStamp's ramps
          // late: the decoder first learns to read a loud code, then the encoder learns to hide it (with the
          // penalty on from the start the residual collapsed to zero before any bit was read).
          const l2 = c.l2Weight * Math.min(1, Math.max(0, (step / c.steps - 0.3) / 0.4));
          return tf.add(tf.losses.sigmoidCrossEntropy(code, logits), tf.mul(tf.mean(tf.square(res)), l2)) as tf.Scalar;
        }, true) as tf.Scalar;
        const out = tf.stack([l, ...monitor]);
        tf.dispose(monitor);
        return out;
      });
      const [l, acc, ab] = stats.dataSync();
      tf.dispose([stats, x, code]);
      loss.push(l);
      bitAcc.push(acc);
      absRes.push(ab);
      progress.tick(1, `loss ${l.toFixed(3)} bits ${(100 * acc).toFixed(1)}% |r| ${ab.toFixed(4)}`);
    }
    const tail = (a: number[]) => a.slice(-10).reduce((s, v) => s + v, 0) / Math.min(10, a.length);
    const encoder = Object.fromEntries(Object.entries(w).filter(([k]) => k.startsWith('enc.')).map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.dataSync()) }]));
    return { encoder, loss, bitAccuracy: 100 * tail(bitAcc), meanAbsResidual: tail(absRes), seconds: (Date.now() - t0) / 1000 };
  } finally {
    progress.done();
    opt.dispose();
    tf.dispose(Object.values(w));
  }
}

export function issba(config: Partial<ISSBAConfig> = {}): Trigger & { readonly training: ISSBATraining | null } {
  const c = { ...ISSBA_DEFAULTS, ...config };
  let enc: Record<string, tf.Tensor> | null = null;
  let training: ISSBATraining | null = null;
  const code = secretBits(c.secret, c.bits);
  const load = (t: ISSBATraining) => {
    training = t;
    enc = Object.fromEntries(Object.entries(t.encoder).map(([k, v]) => [k, tf.keep(tf.tensor(v.data, v.shape))]));
  };
  return {
    name: 'ISSBA',
    config: { ...c },
    get training() {
      return training;
    },
    async prepare(ctx: PrepareContext) {
      if (enc) return;
      // The encoder depends only on the pre-training images (not on the model): keyed by the clean model's key,
      // which covers the data, so a change of data retrains it.
      const file = cacheDir('artifacts', `trigger-ISSBA-${sha256(JSON.stringify({ key: ctx.key, c })).slice(0, 12)}.json`);
      seedFromShipped(file);
      if (fs.existsSync(file)) {
        try {
          return load(readCachedJson<ISSBATraining>(file));
        } catch (e) {
          ctx.log?.(`cached ISSBA encoder ${file} is unusable (${(e as Error).message}); training it again`);
        }
      }
      const t = trainISSBA((await ctx.datasets()).map((d) => d.data), c);
      ctx.log?.(`ISSBA: encoder trained in ${t.seconds.toFixed(0)} s; decoder bit accuracy ${t.bitAccuracy.toFixed(1)}%, mean |residual| ${t.meanAbsResidual.toFixed(4)}`);
      writeCachedJson(file, { attack: 'ISSBA', config: c, cleanKey: ctx.key, ...t });
      load(t);
    },
    apply(images) {
      if (!enc) throw new Error("ISSBA: the encoder is not trained yet; call 'await trigger.prepare(ctx)' (ensureBackdoored does) first.");
      return tf.tidy(() => {
        const b = images.shape[0];
        const codes = tf.tile(tf.tensor2d(code, [1, c.bits]), [b, 1]) as tf.Tensor2D;
        return tf.clipByValue(tf.add(images, issbaResidual(enc!, images, codes, c.eps)), 0, 1) as tf.Tensor4D;
      });
    },
  };
}
