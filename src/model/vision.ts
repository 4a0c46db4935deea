/**
 * The image tower, CLIP's `VisionTransformer`: patchify (conv1 as a dense layer on flattened patches), prepend
 * the class token, add positions, ln_pre, residual blocks (with deep prompts when given), ln_post on the class
 * token, projection. Hooks: every block's class token and the last block's attention weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CLIPConfig, numPatches } from './config';
import { denseNoBias, layerNorm, repeatRows } from './layers';
import { ParamMap, normalVar, constVar } from './params';
import { DeepPrompts } from './prompts';
import { initTransformer, residualBlock } from './transformer';

export interface VisionOptions {
  prompts?: DeepPrompts;
  /** Return the class token after every block (the residual stream, before ln_post). */
  collectCls?: boolean;
  /** Return the last block's attention weights [B, heads, T, T + b] (b: that block's prompt keys, if prompted). */
  collectAttention?: boolean;
  /** Also return the residual stream entering this block (`hidden`), to resume from it with `resume`. */
  keepInputOf?: number;
  /**
   * Start at block `block` from a residual stream `x` a pass without prompts before that block returned
   * (`hidden`), instead of from the pixels: RVPT's prompted and frozen passes share their unprompted blocks.
   * `cls` then has no entries below `block`.
   */
  resume?: { block: number; x: tf.Tensor2D };
}

export interface VisionOut {
  /** Projected image embedding [B, embedDim] (not normalised). */
  embedding: tf.Tensor2D;
  /** Per block, the class token [B, width]; index i = output of block i. */
  cls?: tf.Tensor2D[];
  attention?: tf.Tensor4D;
  /** The residual stream entering block `keepInputOf`, [B * (1 + M), width]. */
  hidden?: tf.Tensor2D;
}

export function initVision(params: ParamMap, c: CLIPConfig, seed: number): void {
  const scale = c.width ** -0.5;
  const patchDim = c.patch * c.patch * 3;
  params['visual.conv1.weight'] = normalVar(seed, 'visual.conv1.weight', [patchDim, c.width], patchDim ** -0.5);
  params['visual.class_embedding'] = normalVar(seed, 'visual.class_embedding', [c.width], scale);
  params['visual.positional_embedding'] = normalVar(seed, 'visual.positional_embedding', [numPatches(c) + 1, c.width], scale);
  params['visual.ln_pre.weight'] = constVar('visual.ln_pre.weight', [c.width], 1);
  params['visual.ln_pre.bias'] = constVar('visual.ln_pre.bias', [c.width], 0);
  initTransformer(params, 'visual.transformer', c.width, c.layers, seed);
  params['visual.ln_post.weight'] = constVar('visual.ln_post.weight', [c.width], 1);
  params['visual.ln_post.bias'] = constVar('visual.ln_post.bias', [c.width], 0);
  params['visual.proj'] = normalVar(seed, 'visual.proj', [c.width, c.embedDim], scale);
}

/**
 * [B, S, S, 3] -> [B * g * g, p * p * 3], each patch flattened in (row, col, channel) order, i.e. conv1's
 * weight permuted to HWIO. Two 4-D reshapes/transposes instead of one 6-D transpose.
 */
export function patchify(images: tf.Tensor4D, patch: number): tf.Tensor2D {
  const [b, s] = images.shape;
  const g = s / patch;
  const rows = tf.reshape(images, [b * g, patch, g, patch * 3]);
  return tf.reshape(tf.transpose(rows, [0, 2, 1, 3]), [b * g * g, patch * patch * 3]);
}

export function normalizePixels(images: tf.Tensor4D, c: CLIPConfig): tf.Tensor4D {
  return tf.div(tf.sub(images, tf.tensor1d(c.mean)), tf.tensor1d(c.std));
}

function clsToken(x: tf.Tensor2D, batch: number, tokens: number): tf.Tensor2D {
  return tf.reshape(tf.slice(tf.reshape(x, [batch, tokens, -1]), [0, 0, 0], [batch, 1, -1]), [batch, -1]);
}

export function encodeImage(params: ParamMap, c: CLIPConfig, images: tf.Tensor4D, opts: VisionOptions = {}): VisionOut {
  const [batch, h, w, ch] = images.shape;
  if (h !== c.imageSize || w !== c.imageSize || ch !== 3) {
    throw new Error(`encodeImage: expected images [B, ${c.imageSize}, ${c.imageSize}, 3], got [${images.shape.join(', ')}].`);
  }
  const m = numPatches(c);
  const base = m + 1;
  const start = opts.resume?.block ?? 0;
  let x = opts.resume ? opts.resume.x : embedPatches(params, c, images);
  if (opts.resume) {
    for (let i = 0; i < start; i++) {
      if (opts.prompts?.tokens.has(i)) throw new Error(`encodeImage: cannot resume at block ${start}: block ${i} is prompted.`);
    }
    if (x.shape[0] !== batch * base) throw new Error(`encodeImage: the resumed stream has ${x.shape[0]} rows, expected ${batch * base}.`);
  }

  // The stream holds the 1 + M image tokens only: a prompted block's prompts are keys and values of its attention
  // (residualBlock), and what would be their outputs is never read (VPT-deep replaces them before the next block).
  const shape = { batch, tokens: base, heads: c.heads };
  const clsPerLayer: tf.Tensor2D[] = new Array(start);
  let attention: tf.Tensor4D | undefined;
  let hidden: tf.Tensor2D | undefined;
  for (let i = start; i < c.layers; i++) {
    if (i === opts.keepInputOf) hidden = x;
    const last = i === c.layers - 1;
    const prompt = opts.prompts?.tokens.get(i) as tf.Tensor2D | undefined;
    const r = residualBlock(params, `visual.transformer.resblocks.${i}`, x, shape, null, last && !!opts.collectAttention, prompt);
    x = r.out;
    if (r.weights) attention = r.weights;
    if (opts.collectCls) clsPerLayer[i] = clsToken(x, batch, base);
  }
  const pooled = layerNorm(clsToken(x, batch, base), params['visual.ln_post.weight'] as tf.Tensor1D, params['visual.ln_post.bias'] as tf.Tensor1D);
  const embedding = tf.matMul(pooled, params['visual.proj'] as tf.Tensor2D) as tf.Tensor2D;
  return { embedding, cls: opts.collectCls ? clsPerLayer : undefined, attention, hidden };
}

/** Pixels to the residual stream entering block 0: patch embedding, class token, positions, ln_pre. */
function embedPatches(params: ParamMap, c: CLIPConfig, images: tf.Tensor4D): tf.Tensor2D {
  const batch = images.shape[0];
  const m = numPatches(c);
  const patches = denseNoBias(patchify(normalizePixels(images, c), c.patch), params['visual.conv1.weight'] as tf.Tensor2D);
  const cls = tf.reshape(repeatRows(params['visual.class_embedding'], batch), [batch, 1, c.width]);
  let x3 = tf.concat([cls, tf.reshape(patches, [batch, m, c.width])], 1);
  x3 = tf.add(x3, params['visual.positional_embedding']);
  return layerNorm(tf.reshape(x3, [-1, c.width]) as tf.Tensor2D, params['visual.ln_pre.weight'] as tf.Tensor1D, params['visual.ln_pre.bias'] as tf.Tensor1D);
}
