/**
 * Parameters live in a flat map of named variables, one name per tensor, so checkpoints, freezing and
 * "which parameters does this defense tune" are all plain look-ups. Names follow OpenAI CLIP's state dict
 * (docs/PAPER-NOTES.md §6); dense weights are stored [in, out] (TF layout) rather than torch's [out, in].
 */
import * as tf from '@tensorflow/tfjs-core';

export type ParamMap = Record<string, tf.Variable>;
export type TensorMap = Record<string, tf.Tensor>;

export function countParams(params: Record<string, tf.Tensor>, filter: (name: string) => boolean = () => true): number {
  let n = 0;
  for (const [k, v] of Object.entries(params)) if (filter(k)) n += v.size;
  return n;
}

export function disposeParams(params: Record<string, tf.Tensor>): void {
  for (const v of Object.values(params)) v.dispose();
}

/** FNV-1a: a stable 32-bit seed for each parameter name, so adding a parameter does not reshuffle the others. */
export function nameSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // TF.js treats a seed of 0 as unseeded (Math.random), so 0 never comes out.
  return h % 2147483647 || 1;
}

/** A variable from an initial tensor that is then released (tf.variable keeps its own reference to the data). */
export function ownedVariable(init: tf.Tensor, trainable = true): tf.Variable {
  const v = tf.variable(init, trainable);
  init.dispose();
  return v;
}

export function normalVar(seed: number, name: string, shape: number[], std: number, trainable = true): tf.Variable {
  return ownedVariable(tf.randomNormal(shape, 0, std, 'float32', nameSeed(seed, name)), trainable);
}

export function constVar(name: string, shape: number[], value: number, trainable = true): tf.Variable {
  return ownedVariable(tf.fill(shape, value), trainable);
}

/**
 * Loss and gradients for the named parameters in `trainable`. TF.js keys variableGrads by its own (globally
 * unique) variable names; parameters here are deliberately unnamed so that several models can live in one
 * process, so the result is re-keyed by our names.
 */
export function namedGrads(trainable: Record<string, tf.Variable>, loss: () => tf.Scalar): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const names = Object.keys(trainable);
  const vars = names.map((n) => trainable[n]);
  const byVar = new Map(vars.map((v, i) => [v.name, names[i]]));
  const { value, grads } = tf.variableGrads(loss, vars);
  const out: Record<string, tf.Tensor> = {};
  for (const [vn, g] of Object.entries(grads)) out[byVar.get(vn)!] = g;
  return { value, grads: out };
}

export function trainableParams(params: ParamMap, filter: (name: string) => boolean = () => true): Record<string, tf.Variable> {
  return Object.fromEntries(Object.entries(params).filter(([k, v]) => v.trainable && filter(k)));
}
