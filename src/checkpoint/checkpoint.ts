/**
 * Model checkpoints: weights (and optional extra tensors, e.g. optimiser state or prompts) in one safetensors
 * file, the model config and tokenizer vocabulary in its metadata, and a JSON sidecar with everything a reader
 * of results needs (config, seed, backend, versions, metrics, timings). Both files are written atomically.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { CLIPConfig } from '../model/config';
import { MiniCLIP } from '../model/clip';
import { WordTokenizer } from '../model/tokenizer';
import { provenance } from '../util/provenance';
import { sha256, writeFileAtomic, writeJsonAtomic, seedFromShipped } from '../util/fsutil';
import { RawTensor, decodeSafetensors, encodeSafetensors, readSafetensors } from './safetensors';
import { checkShapes, modelFromSafetensors, promptsFromSafetensors } from './decode';

export { checkShapes, modelFromSafetensors, promptsFromSafetensors };

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
