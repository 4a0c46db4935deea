/**
 * Pre-LN residual attention blocks, as in CLIP's `ResidualAttentionBlock`:
 *   x = x + attn(ln_1(x));  x = x + mlp(ln_2(x)),  mlp = c_fc -> QuickGELU -> c_proj.
 * Activations are kept 2-D, [batch * tokens, width], so every dense layer is one plain matMul.
 */
import * as tf from '@tensorflow/tfjs-core';
import { wasmKernelsInstalled } from '../kernels';
import { attentionCore, dense, layerNorm, quickGelu } from './layers';
import { normalVar, constVar, ParamMap } from './params';

export interface BlockShape {
  batch: number;
  tokens: number;
  heads: number;
}

/** Create the parameters of `layers` blocks under `prefix` (e.g. 'visual.transformer'), CLIP's init scheme. */
export function initTransformer(params: ParamMap, prefix: string, width: number, layers: number, seed: number): void {
  const attnStd = width ** -0.5;
  const projStd = width ** -0.5 * (2 * layers) ** -0.5;
  const fcStd = (2 * width) ** -0.5;
  for (let i = 0; i < layers; i++) {
    const p = `${prefix}.resblocks.${i}`;
    const add = (name: string, v: tf.Variable) => (params[`${p}.${name}`] = v);
    add('ln_1.weight', constVar(`${p}.ln_1.weight`, [width], 1));
    add('ln_1.bias', constVar(`${p}.ln_1.bias`, [width], 0));
    add('attn.in_proj_weight', normalVar(seed, `${p}.attn.in_proj_weight`, [width, 3 * width], attnStd));
    add('attn.in_proj_bias', constVar(`${p}.attn.in_proj_bias`, [3 * width], 0));
    add('attn.out_proj.weight', normalVar(seed, `${p}.attn.out_proj.weight`, [width, width], projStd));
    add('attn.out_proj.bias', constVar(`${p}.attn.out_proj.bias`, [width], 0));
    add('ln_2.weight', constVar(`${p}.ln_2.weight`, [width], 1));
    add('ln_2.bias', constVar(`${p}.ln_2.bias`, [width], 0));
    add('mlp.c_fc.weight', normalVar(seed, `${p}.mlp.c_fc.weight`, [width, 4 * width], fcStd));
    add('mlp.c_fc.bias', constVar(`${p}.mlp.c_fc.bias`, [4 * width], 0));
    add('mlp.c_proj.weight', normalVar(seed, `${p}.mlp.c_proj.weight`, [4 * width, width], projStd));
    add('mlp.c_proj.bias', constVar(`${p}.mlp.c_proj.bias`, [width], 0));
  }
}

/** [B*T, H*dh] -> [B*H, T, dh] (4-D transposes only: 5-D ones are slow on WASM). */
function splitHeads(x: tf.Tensor2D, batch: number, tokens: number, heads: number, keysTransposed: boolean): tf.Tensor3D {
  const dh = x.shape[1] / heads;
  const x4 = tf.reshape(x, [batch, tokens, heads, dh]);
  if (keysTransposed) return tf.reshape(tf.transpose(x4, [0, 2, 3, 1]), [batch * heads, dh, tokens]);
  return tf.reshape(tf.transpose(x4, [0, 2, 1, 3]), [batch * heads, tokens, dh]);
}

/** Each image's T rows [B*T, C] followed by the same extra rows [b, C]: [B*(T+b), C]. */
function appendShared(x: tf.Tensor2D, s: BlockShape, extra: tf.Tensor2D): tf.Tensor2D {
  const width = x.shape[1];
  // A broadcast product, not tf.tile: WASM's Tile took 57 ms for [500, 16, 64], the Multiply 0.5 ms (same values).
  const shared = tf.mul(tf.ones([s.batch, 1, 1]), tf.expandDims(extra, 0));
  return tf.reshape(tf.concat([tf.reshape(x, [s.batch, s.tokens, width]), shared], 1), [-1, width]);
}

export interface AttentionOut {
  out: tf.Tensor2D;
  /** Softmax weights [B, H, T, T + b] (b shared keys, see `attention`), only when asked for. */
  weights?: tf.Tensor4D;
}

/**
 * Multi-head self-attention; `mask` [T, T] is added to the scores (causal text tower). `shared` [b, C] (the block's
 * deep prompts, already through ln_1) are rows every image attends to after its own T: they give keys and values
 * but no queries. That is exactly VPT-deep, whose prompt slots are replaced before the next block, so their outputs
 * are never read: computing them (q, the out projection and the MLP on b more rows per image, b = 16 beside T = 17
 * at the small profile) would double a prompted block's cost for nothing. Their keys and values are computed once
 * for the batch, not once per image.
 */
export function attention(
  params: ParamMap,
  p: string,
  x: tf.Tensor2D,
  s: BlockShape,
  mask: tf.Tensor2D | null,
  wantWeights: boolean,
  shared?: tf.Tensor2D,
): AttentionOut {
  if (mask && shared) throw new Error('attention: a mask and shared prompt rows cannot be combined.');
  const width = x.shape[1];
  const dh = width / s.heads;
  const w = params[`${p}.attn.in_proj_weight`] as tf.Tensor2D;
  const b = params[`${p}.attn.in_proj_bias`] as tf.Tensor1D;
  // One packed q/k/v product: measured faster than three [C, C] products plus splitting the weight.
  const qkv = dense(x, w, b);
  const outProj = (merged: tf.Tensor2D) => dense(merged, params[`${p}.attn.out_proj.weight`] as tf.Tensor2D, params[`${p}.attn.out_proj.bias`] as tf.Tensor1D);
  const sharedQkv = shared && dense(shared, w, b);
  // On WASM, unless the weights are asked for: the same function and bits from kernels of ours (layers.ts).
  if (!wantWeights && wasmKernelsInstalled()) return { out: outProj(attentionCore(qkv, s.tokens, s.heads, mask, sharedQkv)) };
  const [q, k, v] = tf.split(qkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  let [keysOf, valuesOf, keys] = [k, v, s.tokens];
  if (sharedQkv) {
    const [, kp, vp] = tf.split(sharedQkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    [keysOf, valuesOf, keys] = [appendShared(k, s, kp), appendShared(v, s, vp), s.tokens + shared.shape[0]];
  }
  const qh = splitHeads(tf.mul(q, dh ** -0.5), s.batch, s.tokens, s.heads, false);
  const khT = splitHeads(keysOf, s.batch, keys, s.heads, true);
  const vh = splitHeads(valuesOf, s.batch, keys, s.heads, false);
  let scores: tf.Tensor3D = tf.matMul(qh, khT);
  if (mask) scores = tf.add(scores, mask) as tf.Tensor3D;
  const attn = tf.softmax(scores);
  const ctx = tf.matMul(attn, vh); // [B*H, T, dh]
  const merged = tf.reshape(tf.transpose(tf.reshape(ctx, [s.batch, s.heads, s.tokens, dh]), [0, 2, 1, 3]), [s.batch * s.tokens, width]) as tf.Tensor2D;
  return { out: outProj(merged), weights: wantWeights ? tf.reshape(attn, [s.batch, s.heads, s.tokens, keys]) : undefined };
}

export function residualBlock(
  params: ParamMap,
  p: string,
  x: tf.Tensor2D,
  s: BlockShape,
  mask: tf.Tensor2D | null,
  wantWeights = false,
  prompt?: tf.Tensor2D,
): AttentionOut {
  const ln1 = (t: tf.Tensor2D) => layerNorm(t, params[`${p}.ln_1.weight`] as tf.Tensor1D, params[`${p}.ln_1.bias`] as tf.Tensor1D);
  const a = attention(params, p, ln1(x), s, mask, wantWeights, prompt && ln1(prompt));
  const x1 = tf.add(x, a.out) as tf.Tensor2D;
  const h = layerNorm(x1, params[`${p}.ln_2.weight`] as tf.Tensor1D, params[`${p}.ln_2.bias`] as tf.Tensor1D);
  const m = dense(
    quickGelu(dense(h, params[`${p}.mlp.c_fc.weight`] as tf.Tensor2D, params[`${p}.mlp.c_fc.bias`] as tf.Tensor1D)) as tf.Tensor2D,
    params[`${p}.mlp.c_proj.weight`] as tf.Tensor2D,
    params[`${p}.mlp.c_proj.bias`] as tf.Tensor1D,
  );
  return { out: tf.add(x1, m) as tf.Tensor2D, weights: a.weights };
}
