/**
 * Real CLIP checkpoints for a profile (the `paper` profile): which files hold the clean model, the tokenizer and
 * the backdoored models. Read from the profile's weights file (env RVPT_WEIGHTS overrides), a JSON object:
 *
 *   { "clean": "ViT-B-32.safetensors", "tokenizer": "bpe_simple_vocab_16e6.txt.gz",
 *     "backdoored": { "BadNet": "badnet-banana.safetensors", "Blended": { "imagenet": "...", "caltech101": "..." } } }
 *
 * Relative paths are relative to the JSON file. Nothing is downloaded: every path must exist on disk.
 */
import { nearestKey } from '../util/nearest';
import { ATTACK_NAMES } from '../attacks/registry';
import * as fs from 'fs';
import * as path from 'path';
import { MiniCLIP } from '../model/clip';
import { ClipTokenizer } from '../model/clipTokenizer';
import { loadClipWeights } from '../checkpoint/clipWeights';
import { cacheDir, projectRoot, readJsonFile, sha256, readCachedJson, writeCachedJson } from '../util/fsutil';
import { provenance } from '../util/provenance';
import { Profile } from './profiles';

export interface ExternalWeights {
  file: string;
  clean: string;
  tokenizer: string;
  /** attack -> checkpoint, or attack -> dataset -> checkpoint (the paper has one backdoored model per target). */
  backdoored: Record<string, string | Record<string, string>>;
  heads?: number;
  textHeads?: number;
}

/** The profile's weights (null for profiles that pre-train their own MiniCLIP). */
export function externalWeights(profile: Profile): ExternalWeights | null {
  if (!profile.weightsFile) return null;
  const file = path.resolve(projectRoot(), process.env.RVPT_WEIGHTS ?? profile.weightsFile);
  if (!fs.existsSync(file)) {
    throw new Error(
      `Profile '${profile.name}' runs on real CLIP checkpoints, listed in ${file}, which does not exist. ` +
        `Copy data-manifests/paper-weights.example.json there (or set RVPT_WEIGHTS to another file) and point it at your safetensors files.`,
    );
  }
  const j = readJsonFile(file, 'Weights file');
  // A misspelt key (`backdored`) would leave the attacks without checkpoints and tables without their rows.
  const known = ['clean', 'tokenizer', 'backdoored', 'heads', 'textHeads'];
  for (const k of Object.keys(j)) {
    if (known.includes(k) || k.startsWith('_')) continue;
    const near = nearestKey(k, known);
    throw new Error(`Weights file ${file}: field '${k}' is not a weights-file field${near ? `; did you mean '${near}'?` : ''} (known: ${known.join(', ')}).`);
  }
  for (const attack of Object.keys((j.backdoored ?? {}) as Record<string, unknown>)) {
    if (ATTACK_NAMES.includes(attack)) continue;
    const near = nearestKey(attack, ATTACK_NAMES);
    throw new Error(`Weights file ${file}: field 'backdoored.${attack}' names no attack${near ? `; did you mean '${near}'?` : ''} (registered: ${ATTACK_NAMES.join(', ')}).`);
  }
  const resolve = (field: string, p: unknown): string => {
    if (typeof p !== 'string' || !p) throw new Error(`Weights file ${file}: field '${field}' must be a path (string).`);
    const abs = path.resolve(path.dirname(file), p);
    if (!fs.existsSync(abs)) throw new Error(`Weights file ${file}: field '${field}' points at ${abs}, which does not exist.`);
    return abs;
  };
  const backdoored: ExternalWeights['backdoored'] = {};
  for (const [attack, v] of Object.entries((j.backdoored ?? {}) as Record<string, unknown>)) {
    if (typeof v === 'string') backdoored[attack] = resolve(`backdoored.${attack}`, v);
    else if (v && typeof v === 'object') {
      backdoored[attack] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([d, p]) => [d, resolve(`backdoored.${attack}.${d}`, p)]));
    } else throw new Error(`Weights file ${file}: field 'backdoored.${attack}' must be a path or {dataset: path}.`);
  }
  return {
    file,
    clean: resolve('clean', j.clean),
    tokenizer: resolve('tokenizer', j.tokenizer),
    backdoored,
    heads: j.heads as number | undefined,
    textHeads: j.textHeads as number | undefined,
  };
}

/** The checkpoint of a backdoored model for an attack and dataset, or a clear error naming the field to add. */
export function backdooredFile(w: ExternalWeights, attack: string, dataset: string): string {
  const v = w.backdoored[attack];
  const f = typeof v === 'string' ? v : v?.[dataset];
  if (!f) {
    throw new Error(
      `Weights file ${w.file} names no backdoored checkpoint for ${attack} on ${dataset}: add "backdoored": {"${attack}": "path.safetensors"} ` +
        `(or {"${attack}": {"${dataset}": "path"}}). At paper scale backdoors are not injected here (the paper poisons CC3M).`,
    );
  }
  return f;
}

/** Load one real checkpoint as a MiniCLIP with CLIP's tokenizer; a checkpoint of another size than the profile's is an error. */
export function loadExternalModel(w: ExternalWeights, file: string, profile: Profile): { model: MiniCLIP; tokenizer: ClipTokenizer } {
  const { model } = loadClipWeights(file, { heads: w.heads, textHeads: w.textHeads });
  const diff = (Object.keys(profile.model) as (keyof Profile['model'])[]).filter((k) => JSON.stringify(model.config[k]) !== JSON.stringify(profile.model[k]));
  if (diff.length) {
    model.dispose();
    throw new Error(
      `${file} is not the model profile '${profile.name}' expects: ${diff.map((k) => `${k} ${JSON.stringify(model.config[k])} (expected ${JSON.stringify(profile.model[k])})`).join(', ')}.`,
    );
  }
  return { model, tokenizer: ClipTokenizer.load(w.tokenizer) };
}

/**
 * Measurements of a user's checkpoint (CA, ASR), cached as JSON: at paper scale one evaluation of 2,000 images is
 * an hour on a CPU. Keyed by the file's identity (path, size, modification time), the profile's evalLimit and what
 * is measured; a cache file that does not parse is measured again.
 */
export async function cachedEval<T>(profile: Profile, file: string, what: Record<string, unknown>, compute: () => Promise<T>): Promise<T> {
  const st = fs.statSync(file);
  const key = sha256(JSON.stringify({ file, size: st.size, mtime: st.mtimeMs, evalLimit: profile.evalLimit, what })).slice(0, 16);
  const out = cacheDir('results', 'external', `${profile.name}-${key}.json`);
  if (fs.existsSync(out)) {
    try {
      return readCachedJson<{ value: T }>(out).value;
    } catch (e) {
      process.stderr.write(`[rvpt] ${out} is unusable (${(e as Error).message}); measuring again\n`);
    }
  }
  const t0 = Date.now();
  const value = await compute();
  writeCachedJson(out, { file, what, evalLimit: profile.evalLimit, value, seconds: (Date.now() - t0) / 1000, provenance: provenance() });
  return value;
}
