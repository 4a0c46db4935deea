/**
 * Models and prompts from decoded safetensors, with no file access: checkpoint.ts reads the files in Node, the browser
 * lab (web/) decodes fetched bytes. Kept apart from checkpoint.ts so that a page bundles no file or process code.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ownedVariable } from '../model/params';
import { DeepPrompts } from '../model/prompts';
import { CLIPConfig, validateConfig } from '../model/config';
import { MiniCLIP } from '../model/clip';
import { WordTokenizer } from '../model/tokenizer';
import { RawTensor, SafetensorsFile } from './safetensors';

/** Check that a checkpoint's tensors fit `config` exactly; the error names every mismatch and the fix. */
export function checkShapes(
  file: string,
  tensors: Record<string, RawTensor>,
  expected: Record<string, number[]>,
  fix = 'Load it with the config it was saved with (its metadata holds it), or retrain for this config.',
): void {
  const problems: string[] = [];
  for (const [name, shape] of Object.entries(expected)) {
    const t = tensors[name];
    if (!t) problems.push(`missing '${name}'`);
    else if (t.shape.join(',') !== shape.join(',')) problems.push(`'${name}' is [${t.shape}] but the model needs [${shape}]`);
  }
  if (problems.length) {
    const shown = problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '');
    throw new Error(`Checkpoint ${file} does not fit the model: ${shown}. ${fix}`);
  }
}

/**
 * A MiniCLIP and its tokenizer from a decoded checkpoint (no file access: the browser lab calls it on fetched bytes).
 * With `expectConfig`, a checkpoint of another shape is a clear error naming `file`.
 */
export function modelFromSafetensors(st: SafetensorsFile, file: string, expectConfig?: CLIPConfig): { model: MiniCLIP; tokenizer: WordTokenizer; extra: Record<string, RawTensor> } {
  if (st.metadata.format !== 'rvpt-miniclip' || !st.metadata.config) {
    throw new Error(`Checkpoint ${file} is not an rvpt MiniCLIP checkpoint (metadata.format = ${st.metadata.format ?? 'none'}).`);
  }
  const saved: CLIPConfig = JSON.parse(st.metadata.config);
  const config = expectConfig ?? saved;
  validateConfig(config);
  // Build the expected shapes from a fresh model's names, without keeping its weights.
  const shapes = tf.tidy(() => {
    const probe = MiniCLIP.init(config, 0);
    const s = Object.fromEntries(Object.entries(probe.params).map(([k, v]) => [k, v.shape]));
    probe.dispose();
    return s;
  });
  checkShapes(file, st.tensors, shapes);
  const params: Record<string, tf.Variable> = {};
  for (const name of Object.keys(shapes)) {
    const t = st.tensors[name];
    params[name] = ownedVariable(tf.tensor(t.data as Float32Array, t.shape, 'float32'), true);
  }
  const extra: Record<string, RawTensor> = {};
  for (const [k, v] of Object.entries(st.tensors)) if (k.startsWith('extra.')) extra[k.slice(6)] = v;
  return { model: new MiniCLIP(config, params), tokenizer: new WordTokenizer(JSON.parse(st.metadata.vocab)), extra };
}

/** Deep prompts from a decoded prompts file (`prompt.visual.<block>` tensors, the length in the metadata). */
export function promptsFromSafetensors(st: SafetensorsFile, file: string): DeepPrompts {
  const length = Number(st.metadata.length);
  const tokens = new Map<number, tf.Variable>();
  for (const [k, t] of Object.entries(st.tensors)) {
    const block = Number(k.split('.').pop());
    if (!k.startsWith('prompt.visual.') || !Number.isInteger(block) || t.shape.length !== 2 || t.shape[0] !== length) {
      tokens.forEach((v) => v.dispose());
      throw new Error(`Prompts file ${file} holds '${k}' [${t.shape}], which is not a deep prompt 'prompt.visual.<block>' of [${length}, width]; re-create the file (rvpt figures writes them).`);
    }
    tokens.set(block, ownedVariable(tf.tensor(t.data as Float32Array, t.shape), true));
  }
  return { tokens, length };
}
