/**
 * Deep visual prompts (VPT-deep, as RVPT uses them; docs/PAPER-NOTES.md §1).
 *
 * Block i (0-based) of the image tower is "prompted" when `tokens[i]` exists: the block sees p_i after the patch
 * tokens, and the next block sees its own prompts instead, as in multimodal-prompt-learning's
 * `ResidualAttentionBlock_IVLP`. Since a block's prompt outputs are thrown away, vision.ts gives the prompts keys and
 * values only (transformer.ts `attention`): the same function at half the cost. The paper's default prompts every
 * block from the non-prompted depth D on; other layer sets (counted from the input, Fig. 3e) are just other lists.
 */
import * as tf from '@tensorflow/tfjs-core';
import { nameSeed, ownedVariable } from './params';

export interface DeepPrompts {
  /** Prompt tokens per prompted block index, each [length, width]. */
  tokens: Map<number, tf.Variable>;
  length: number;
}

export interface PromptSpec {
  /** Prompt tokens per layer, b (paper default 50 for 49 patches). */
  length: number;
  /** Which blocks get prompts. Default: every block from `depth` on. */
  layers?: number[];
  /** Non-prompted depth D: blocks D..L-1 are prompted (paper default 3 of 12). */
  depth?: number;
  /** Std of the zero-mean Gaussian init (MaPLe's VPT uses 0.02; the paper does not say). */
  initStd?: number;
}

export function promptLayers(totalLayers: number, spec: PromptSpec): number[] {
  if (spec.layers) {
    for (const l of spec.layers) {
      if (!Number.isInteger(l) || l < 0 || l >= totalLayers) throw new Error(`Prompt layer ${l} is outside 0..${totalLayers - 1}.`);
    }
    return [...spec.layers].sort((a, b) => a - b);
  }
  const d = spec.depth ?? 0;
  if (!Number.isInteger(d) || d < 0 || d >= totalLayers) throw new Error(`Prompt depth D=${d} must be in 0..${totalLayers - 1}.`);
  return Array.from({ length: totalLayers - d }, (_, i) => d + i);
}

export function initDeepPrompts(totalLayers: number, width: number, spec: PromptSpec, seed: number): DeepPrompts {
  if (!Number.isInteger(spec.length) || spec.length < 1) throw new Error(`Prompt length b=${spec.length} must be a positive integer.`);
  const tokens = new Map<number, tf.Variable>();
  for (const l of promptLayers(totalLayers, spec)) {
    const name = `prompt.visual.${l}`;
    tokens.set(l, ownedVariable(tf.randomNormal([spec.length, width], 0, spec.initStd ?? 0.02, 'float32', nameSeed(seed, name)), true));
  }
  return { tokens, length: spec.length };
}

export function promptParams(p: DeepPrompts): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const [l, v] of p.tokens) out[`prompt.visual.${l}`] = v;
  return out;
}

export function disposePrompts(p: DeepPrompts): void {
  for (const v of p.tokens.values()) v.dispose();
}
