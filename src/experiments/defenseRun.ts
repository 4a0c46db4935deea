/**
 * Running a defense on a backdoored model and measuring it: one "cell" is (attack, method, dataset the defense
 * is tuned on, test sets). Cells are cached as JSON in .cache/results/cells/ under a key of everything they depend
 * on, so a table that is interrupted resumes where it stopped, and tables that share cells (1, 2, 3 and the cost
 * table) compute them once.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadShots } from '../data/load';
import { getDefense } from '../defenses/registry';
import { datasetFingerprint } from '../data/fingerprint';
import { DefenseCost } from '../defenses/defense';
import { evaluateDefended } from '../metrics/defended';
import { embeddingsFile, testEmbeddings } from '../metrics/features';
import { numImages } from '../data/dataset';
import { BackdoorMetrics } from '../metrics/backdoor';
import { adoptLegacy, cacheDir, cacheKey, readCachedJson, writeCachedJson } from '../util/fsutil';
import { BackdoorResult, ensureBackdoored, targetIndex, testSet } from './backdoorRun';
import { pretrainData } from './pretrainRun';
import { externalWeights } from './externalWeights';
import { Profile } from './profiles';

/**
 * 2: the fused LayerNorm/QuickGELU kernels (src/kernels/fused.c) change training at float rounding.
 * 3: deep prompts are keys and values only (model/transformer.ts), CleanCLIP runs each tower once on the batch and
 *    its augmented copy: the same functions, other float rounding.
 */
export const DEFENSE_CODE_VERSION = 3;

export interface CellResult {
  attack: string;
  method: string;
  /** Dataset whose clean shots the defense was tuned on. */
  dataset: string;
  config: Record<string, unknown>;
  /** Metrics per test set (null: the defense cannot see the trigger, the paper's "–"). */
  metrics: Record<string, BackdoorMetrics | null>;
  cost: DefenseCost;
  history: Record<string, number[]>;
  backdoorCheckpoint: string;
  seed: number;
}

export function defenseConfig(profile: Profile, method: string): Record<string, unknown> {
  return { ...(profile.defenses[method] ?? {}) };
}

/**
 * The seed of a defense run: which clean shots it gets, its initialisation, batch order and augmentation. A method's
 * config may set its own (`seed`: the seed probe's runs, seedProbe.ts); without one it is the profile's seed, as in
 * every table's cell. The backdoored model it defends is the same either way. `shotsSeed` draws the shots alone
 * (default: the run's seed), so that the shots can stay fixed while the rest of the run's randomness changes.
 */
export function defenseSeed(profile: Profile, method: string, field: 'seed' | 'shotsSeed' = 'seed'): number {
  const s = profile.defenses[method]?.[field];
  if (s === undefined) return field === 'seed' ? profile.backdoor.seed : defenseSeed(profile, method);
  if (typeof s !== 'number' || !Number.isInteger(s) || s < 0) {
    throw new Error(`Profile '${profile.name}': defenses.${method}.${field} is ${JSON.stringify(s)}; it must be a whole number of at least 0, or left out to use ${field === 'seed' ? `the profile's seed (${profile.backdoor.seed})` : "the run's seed"}.`);
  }
  return s;
}

/**
 * Where a cell is cached: a key of everything it depends on (the backdoored checkpoint, the method's config, ...,
 * and the content of the datasets it tunes and tests on: datasetFingerprint). A cell cached before the data entered
 * the key is adopted where the project pins the data (IDX and emoji sets), never for an image folder of one's own.
 */
export function cellFile(profile: Profile, attack: string, method: string, dataset: string, testSets: string[], backdoorCheckpoint: string): string {
  const tuneOn = getDefense(method).perDataset ? dataset : '*';
  const config = defenseConfig(profile, method);
  const inputs = { v: DEFENSE_CODE_VERSION, backdoor: backdoorCheckpoint, method, config, shots: profile.shots, tuneOn, testSets, evalLimit: profile.evalLimit };
  const prints = [...new Set([dataset, ...testSets])].map((n) => [n, datasetFingerprint(n)] as const);
  const { key } = cacheKey({ ...inputs, data: Object.fromEntries(prints.map(([n, f]) => [n, f.hash])) }, 16);
  const name = (k: string) => cacheDir('results', 'cells', `${profile.name}-${attack}-${method.replace(/\s+/g, '_')}-${k}.json`);
  if (!prints.every(([, f]) => f.pinned)) return name(key);
  const before = cacheKey(inputs, 16);
  return adoptLegacy(adoptLegacy(name(key), name(before.key)), name(before.legacy));
}

export async function runCell(
  profile: Profile,
  attack: string,
  method: string,
  dataset: string,
  testSets: string[],
  opts: { backdoored?: BackdoorResult; log?: (s: string) => void; quiet?: boolean; force?: boolean } = {},
): Promise<CellResult> {
  const log = opts.log ?? ((s: string) => process.env.RVPT_QUIET || process.stderr.write(`[rvpt] ${s}\n`));
  const defense = getDefense(method);
  const config = defenseConfig(profile, method);
  const bd = opts.backdoored ?? (await ensureBackdoored(profile, attack, { log, dataset }));
  const file = cellFile(profile, attack, method, dataset, testSets, bd.checkpoint);
  if (!opts.force && fs.existsSync(file)) {
    try {
      const cell = readCachedJson<CellResult>(file);
      if (!opts.quiet) log(`${method} on ${attack} (${dataset}): the cached result of ${fs.statSync(file).mtime.toISOString().slice(0, 16).replace('T', ' ')} (${path.basename(file)}; --force computes it again)`);
      return cell;
    } catch (e) {
      log(`cached cell ${file} is unusable (${(e as Error).message}); computing it again`);
    }
  }
  const seed = defenseSeed(profile, method);
  const shots = await loadShots(dataset, profile.shots, defenseSeed(profile, method, 'shotsSeed'));
  const { seed: _seed, shotsSeed: _shotsSeed, ...methodConfig } = config; // the run's seeds, not the method's hyperparameters
  const defended = await defense.run(
    { model: bd.model, tokenizer: bd.tokenizer, shots, cleanCorpus: async () => (await pretrainData(profile)).corpus, seed, log, quiet: opts.quiet },
    methodConfig,
  );
  try {
    const metrics: Record<string, BackdoorMetrics | null> = {};
    for (const t of testSets) {
      const test = await testSet(profile, t);
      // Our checkpoints' names are keys of their configs; a user's checkpoint may change under its name: not cached.
      const frozen = externalWeights(profile) ? undefined : { model: bd.model, embeddings: () => testEmbeddings(bd.model, test, bd.trigger, embeddingsFile(bd.checkpoint, t, numImages(test), bd.trigger), log) };
      metrics[t] = evaluateDefended(defended, test, bd.trigger, targetIndex(t.split('/')[0]), frozen);
    }
    const summary = Object.entries(metrics).map(([t, m]) => (m ? `${t} ASR ${m.asr.toFixed(2)}% CA ${m.ca.toFixed(2)}%` : `${t} –`)).join('; ');
    log(`${method} vs ${attack}: ${summary} (${defended.cost.seconds.toFixed(0)} s)`);
    const cell: CellResult = { attack, method, dataset, config, metrics, cost: defended.cost, history: defended.history, backdoorCheckpoint: bd.checkpoint, seed };
    writeCachedJson(file, cell);
    return cell;
  } finally {
    defended.dispose();
  }
}
