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

export function encodeText(params: ParamMap, c: CLIPConfig, t: TokenBatch): tf.Tensor2D {
  if (t.contextLength !== c.contextLength) {
    throw new Error(`encodeText: tokens have context ${t.contextLength}, the model expects ${c.contextLength}.`);
  }
  const { batch } = t;
  const ids = tf.tensor1d(t.ids, 'int32');
  let x = embeddingLookup(params['token_embedding.weight'] as tf.Tensor2D, ids);
  x = tf.reshape(tf.add(tf.reshape(x, [batch, c.contextLength, c.textWidth]), params["positional_embedding"]), [-1, c.textWidth]) as tf.Tensor2D;
  const mask = causalMask(c.contextLength);
  for (let i = 0; i < c.textLayers; i++) {
    x = residualBlock(params, `transformer.resblocks.${i}`, x, { batch, tokens: c.contextLength, heads: c.textHeads }, mask).out;
  }
  // Select each row's EOT feature with a one-hot weighted sum: a gather's gradient needs a kernel WASM lacks.
  const sel = tf.reshape(tf.cast(tf.oneHot(tf.tensor1d(t.eot, 'int32'), c.contextLength), 'float32'), [batch, c.contextLength, 1]);
  const eotFeat = tf.sum(tf.mul(tf.reshape(x, [batch, c.contextLength, c.textWidth]), sel), 1) as tf.Tensor2D;
  const normed = layerNorm(eotFeat, params['ln_final.weight'] as tf.Tensor1D, params['ln_final.bias'] as tf.Tensor1D);
  return tf.matMul(normed, params['text_projection'] as tf.Tensor2D);
}
