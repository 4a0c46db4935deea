/**
 * The text tower, CLIP's `encode_text`: token + position embeddings, causal residual blocks, ln_final on the
 * end-of-text token's feature, text projection.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CLIPConfig } from './config';
import { embeddingLookup, layerNorm } from './layers';
import { ParamMap, normalVar, constVar } from './params';
import { initTransformer, residualBlock } from './transformer';

/** A tokenised batch: ids [B, contextLength] and the position of each row's end-of-text token. */
export interface TokenBatch {
  ids: Int32Array;
  eot: Int32Array;
  batch: number;
  contextLength: number;
}

export function initText(params: ParamMap, c: CLIPConfig, seed: number): void {
  params['token_embedding.weight'] = normalVar(seed, 'token_embedding.weight', [c.vocabSize, c.textWidth], 0.02);
  params['positional_embedding'] = normalVar(seed, 'positional_embedding', [c.contextLength, c.textWidth], 0.01);
  initTransformer(params, 'transformer', c.textWidth, c.textLayers, seed);
  params['ln_final.weight'] = constVar('ln_final.weight', [c.textWidth], 1);
  params['ln_final.bias'] = constVar('ln_final.bias', [c.textWidth], 0);
  params['text_projection'] = normalVar(seed, 'text_projection', [c.textWidth, c.embedDim], c.textWidth ** -0.5);
}

/** -inf above the diagonal (a large negative number, so softmax stays finite). */
export function causalMask(n: number): tf.Tensor2D {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) m[i * n + j] = -1e9;
  return tf.tensor2d(m, [n, n]);
}

/**
 * Positions after the batch's last end-of-text token cannot influence any row's EOT feature (the mask is causal
 * and only the EOT feature is read), so the batch is cut to its longest caption: the same result, less work.
 */
export function trimTokens(t: TokenBatch): TokenBatch {
  let len = 0;
  for (const e of t.eot) len = Math.max(len, e + 1);
  if (len >= t.contextLength) return t;
  const ids = new Int32Array(t.batch * len);
  for (let b = 0; b < t.batch; b++) ids.set(t.ids.subarray(b * t.contextLength, b * t.contextLength + len), b * len);
  return { ids, eot: t.eot, batch: t.batch, contextLength: len };
}

export function encodeText(params: ParamMap, c: CLIPConfig, tokens: TokenBatch): tf.Tensor2D {
  if (tokens.contextLength !== c.contextLength) {
    throw new Error(`encodeText: tokens have context ${tokens.contextLength}, the model expects ${c.contextLength}.`);
  }
  const t = trimTokens(tokens);
  const { batch, contextLength: len } = t;
  const ids = tf.tensor1d(t.ids, 'int32');
  let x = embeddingLookup(params['token_embedding.weight'] as tf.Tensor2D, ids);
  const pos = tf.slice(params['positional_embedding'], [0, 0], [len, c.textWidth]);
  x = tf.reshape(tf.add(tf.reshape(x, [batch, len, c.textWidth]), pos), [-1, c.textWidth]) as tf.Tensor2D;
  const mask = causalMask(len);
  for (let i = 0; i < c.textLayers; i++) {
    x = residualBlock(params, `transformer.resblocks.${i}`, x, { batch, tokens: len, heads: c.textHeads }, mask).out;
  }
  // Select each row's EOT feature with a one-hot weighted sum: a gather's gradient needs a kernel WASM lacks.
  const sel = tf.reshape(tf.cast(tf.oneHot(tf.tensor1d(t.eot, 'int32'), len), 'float32'), [batch, len, 1]);
  const eotFeat = tf.sum(tf.mul(tf.reshape(x, [batch, len, c.textWidth]), sel), 1) as tf.Tensor2D;
  const normed = layerNorm(eotFeat, params['ln_final.weight'] as tf.Tensor1D, params['ln_final.bias'] as tf.Tensor1D);
  return tf.matMul(normed, params['text_projection'] as tf.Tensor2D);
}
