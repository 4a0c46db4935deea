/**
 * Pre-LN residual attention blocks, as in CLIP's `ResidualAttentionBlock`:
 *   x = x + attn(ln_1(x));  x = x + mlp(ln_2(x)),  mlp = c_fc -> QuickGELU -> c_proj.
 * Activations are kept 2-D, [batch * tokens, width], so every dense layer is one plain matMul.
 */
import * as tf from '@tensorflow/tfjs-core';
import { dense, layerNorm, quickGelu } from './layers';
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
function splitHeads(x: tf.Tensor2D, s: BlockShape, keysTransposed: boolean): tf.Tensor3D {
  const dh = x.shape[1] / s.heads;
  const x4 = tf.reshape(x, [s.batch, s.tokens, s.heads, dh]);
  if (keysTransposed) return tf.reshape(tf.transpose(x4, [0, 2, 3, 1]), [s.batch * s.heads, dh, s.tokens]);
  return tf.reshape(tf.transpose(x4, [0, 2, 1, 3]), [s.batch * s.heads, s.tokens, dh]);
}

export interface AttentionOut {
  out: tf.Tensor2D;
  /** Softmax weights [B, H, T, T], only when asked for. */
  weights?: tf.Tensor4D;
}

/** Multi-head self-attention; `mask` [T, T] is added to the scores (causal text tower). */
export function attention(
  params: ParamMap,
  p: string,
  x: tf.Tensor2D,
  s: BlockShape,
  mask: tf.Tensor2D | null,
  wantWeights: boolean,
): AttentionOut {
  const width = x.shape[1];
  const dh = width / s.heads;
  // One packed q/k/v product: measured faster than three [C, C] products plus splitting the weight.
  const qkv = dense(x, params[`${p}.attn.in_proj_weight`] as tf.Tensor2D, params[`${p}.attn.in_proj_bias`] as tf.Tensor1D);
  const [q, k, v] = tf.split(qkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  const qh = splitHeads(tf.mul(q, dh ** -0.5), s, false);
  const khT = splitHeads(k, s, true);
  const vh = splitHeads(v, s, false);
  let scores: tf.Tensor3D = tf.matMul(qh, khT);
  if (mask) scores = tf.add(scores, mask) as tf.Tensor3D;
  const attn = tf.softmax(scores);
  const ctx = tf.matMul(attn, vh); // [B*H, T, dh]
  const merged = tf.reshape(tf.transpose(tf.reshape(ctx, [s.batch, s.heads, s.tokens, dh]), [0, 2, 1, 3]), [s.batch * s.tokens, width]) as tf.Tensor2D;
  const out = dense(merged, params[`${p}.attn.out_proj.weight`] as tf.Tensor2D, params[`${p}.attn.out_proj.bias`] as tf.Tensor1D);
  return { out, weights: wantWeights ? tf.reshape(attn, [s.batch, s.heads, s.tokens, s.tokens]) : undefined };
}

export function residualBlock(
  params: ParamMap,
  p: string,
  x: tf.Tensor2D,
  s: BlockShape,
  mask: tf.Tensor2D | null,
  wantWeights = false,
): AttentionOut {
  const a = attention(params, p, layerNorm(x, params[`${p}.ln_1.weight`] as tf.Tensor1D, params[`${p}.ln_1.bias`] as tf.Tensor1D), s, mask, wantWeights);
  const x1 = tf.add(x, a.out) as tf.Tensor2D;
  const h = layerNorm(x1, params[`${p}.ln_2.weight`] as tf.Tensor1D, params[`${p}.ln_2.bias`] as tf.Tensor1D);
  const m = dense(
    quickGelu(dense(h, params[`${p}.mlp.c_fc.weight`] as tf.Tensor2D, params[`${p}.mlp.c_fc.bias`] as tf.Tensor1D)) as tf.Tensor2D,
    params[`${p}.mlp.c_proj.weight`] as tf.Tensor2D,
    params[`${p}.mlp.c_proj.bias`] as tf.Tensor1D,
  );
  return { out: tf.add(x1, m) as tf.Tensor2D, weights: a.weights };
}
