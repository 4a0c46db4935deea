/**
 * Model checkpoints: weights (and optional extra tensors, e.g. optimiser state or prompts) in one safetensors
 * file, the model config and tokenizer vocabulary in its metadata, and a JSON sidecar with everything a reader
 * of results needs (config, seed, backend, versions, metrics, timings). Both files are written atomically.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { ownedVariable } from '../model/params';
import { DeepPrompts } from '../model/prompts';
import { CLIPConfig, validateConfig } from '../model/config';
import { MiniCLIP } from '../model/clip';
import { WordTokenizer } from '../model/tokenizer';
import { provenance } from '../util/provenance';
import { sha256, writeFileAtomic, writeJsonAtomic, seedFromShipped } from '../util/fsutil';
import { RawTensor, SafetensorsFile, decodeSafetensors, encodeSafetensors, readSafetensors } from './safetensors';

export interface CheckpointInfo {
  kind: string;
  config: CLIPConfig;
  seed: number;
  [key: string]: unknown;
}

function toRaw(t: tf.Tensor): { dtype: 'F32' | 'I32'; shape: number[]; data: Float32Array | Int32Array } {
  const data = t.dataSync();
  return t.dtype === 'int32' ? { dtype: 'I32', shape: t.shape, data: data as Int32Array } : { dtype: 'F32', shape: t.shape, data: Float32Array.from(data) };
}

export function sidecarPath(file: string): string {
  return file.replace(/\.safetensors$/, '') + '.json';
}

export function saveCheckpoint(
  file: string,
  model: MiniCLIP,
  tokenizer: WordTokenizer,
  info: CheckpointInfo,
  extra: Record<string, tf.Tensor> = {},
): void {
  const tensors: Parameters<typeof encodeSafetensors>[0] = {};
  for (const [k, v] of Object.entries(model.params)) tensors[k] = toRaw(v);
  for (const [k, v] of Object.entries(extra)) tensors[`extra.${k}`] = toRaw(v);
  const bytes = encodeSafetensors(tensors, { format: 'rvpt-miniclip', config: JSON.stringify(model.config), vocab: JSON.stringify(tokenizer.vocab) });
  writeFileAtomic(file, bytes);
  // The sidecar goes second: a sidecar never describes weights that are not there yet. Its sha256 lets a later load
  // tell weights changed on disk (a flipped byte loads as a valid but wrong model) from the ones written here.
  writeJsonAtomic(sidecarPath(file), { ...info, provenance: provenance(), params: model.numParams(), file, sha256: sha256(bytes) });
}

export interface LoadedCheckpoint {
  model: MiniCLIP;
  tokenizer: WordTokenizer;
  info: CheckpointInfo | null;
  extra: Record<string, RawTensor>;
}

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

/**
 * Load a checkpoint. With `expectConfig`, a checkpoint of another shape is a clear error. `bytes`: the file's bytes
 * when the caller has read them already (loadCached hashes the same bytes).
 */
export function loadCheckpoint(file: string, expectConfig?: CLIPConfig, bytes?: Uint8Array): LoadedCheckpoint {
  const st = bytes ? decodeSafetensors(bytes, file) : readSafetensors(file);
  const { model, tokenizer, extra } = modelFromSafetensors(st, file, expectConfig);
  const info = fs.existsSync(sidecarPath(file)) ? (JSON.parse(fs.readFileSync(sidecarPath(file), 'utf8')) as CheckpointInfo) : null;
  return { model, tokenizer, info, extra };
}

/**
 * A cached artifact: the checkpoint if it and its sidecar exist and it fits `config`, else null. An unreadable
 * or mismatched file is reported through `log` and treated as absent, so the caller rebuilds it.
 */
export function loadCached(file: string, config: CLIPConfig, log: (s: string) => void): LoadedCheckpoint | null {
  seedFromShipped(file);
  if (!fs.existsSync(file) || !fs.existsSync(sidecarPath(file))) return null;
  try {
    const bytes = fs.readFileSync(file);
    const ck = loadCheckpoint(file, config, bytes);
    if (!ck.info) throw new Error('its sidecar is unreadable');
    // A file that still decodes may hold other bytes than were written (a flipped bit loads as a valid, wrong model).
    // Sidecars written before the hash was recorded have none: those files are checked for shape only.
    const recorded = ck.info.sha256 as string | undefined;
    if (recorded !== undefined) {
      const now = sha256(bytes);
      if (now !== recorded) {
        ck.model.dispose();
        throw new Error(`its bytes changed since it was written (sha256 ${now.slice(0, 12)}, recorded ${recorded.slice(0, 12)})`);
      }
    }
    const when = (ck.info.provenance as { date?: string } | undefined)?.date;
    log(`using cached ${ck.info.kind} model ${file}${when ? ` (trained ${when.slice(0, 16).replace('T', ' ')})` : ''}`);
    return ck;
  } catch (e) {
    log(`cached checkpoint ${file} is unusable (${(e as Error).message}); training again`);
    return null;
  }
}
