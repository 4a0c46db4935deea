/**
 * What the analysis figures share: the prompts VPT and RVPT learn (cached), the test sample, the JSON cache of a
 * computed result, where a figure is written, which attacks it shows, and the claim type each figure's verdicts use.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../../model/clip';
import { DeepPrompts } from '../../model/prompts';
import { ownedVariable } from '../../model/params';
import { ImageDataset, numImages } from '../../data/dataset';
import { loadShots } from '../../data/load';
import { sample } from '../../data/splits';
import { getDefense } from '../../defenses/registry';
import { decodeSafetensors, encodeSafetensors } from '../../checkpoint/safetensors';
import { promptsFromSafetensors } from '../../checkpoint/checkpoint';
import { adoptLegacy, cacheDir, cacheKey, readCached, writeCached, readCachedJson, writeCachedJson, seedFromShipped } from '../../util/fsutil';
import { Figure } from '../../viz/plotly';
import { saveFigure } from '../../viz/render';
import { BackdoorResult, testSet } from '../backdoorRun';
import { defenseConfig } from '../defenseRun';
import { availableAttacks } from '../paperTables';
import { Profile } from '../profiles';
import { resultsDir } from '../tables';

/**
 * 2: the fused LayerNorm/QuickGELU kernels (src/kernels/fused.c) change training at float rounding.
 * 3: deep prompts are keys and values only (model/transformer.ts): the same function, other float rounding.
 */
export const ANALYSIS_CODE_VERSION = 3;

export type Log = (s: string) => void;

export const quietLog: Log = (s) => process.env.RVPT_QUIET || process.stderr.write(`[rvpt] ${s}\n`);

/** Test images per analysis sample (PR, attention, embeddings). */
export function analysisSample(profile: Profile): number {
  return profile.analysis?.sample ?? (profile.name === 'tiny' ? 100 : 1000);
}

/** The deep prompts VPT or RVPT learns on a backdoored model (trained once, then read from .cache/artifacts). */
/** Where ensurePrompts caches the prompts of `method` on the backdoored checkpoint `backdoor` (and its legacy name). */
export function promptsPath(profile: Profile, attack: string, backdoor: string, method: 'VPT' | 'RVPT', dataset: string): { file: string; legacy: string } {
  const { key, legacy } = cacheKey({ v: ANALYSIS_CODE_VERSION, backdoor, method, config: defenseConfig(profile, method), shots: profile.shots, dataset }, 12);
  const name = (k: string) => cacheDir('artifacts', `prompts-${profile.name}-${attack}-${method}-${k}.safetensors`);
  return { file: name(key), legacy: name(legacy) };
}

export async function ensurePrompts(profile: Profile, bd: BackdoorResult, method: 'VPT' | 'RVPT', dataset: string, log: Log = quietLog): Promise<DeepPrompts> {
  const config = defenseConfig(profile, method);
  const where = promptsPath(profile, bd.trigger.name, bd.checkpoint, method, dataset);
  const file = adoptLegacy(where.file, where.legacy);
  seedFromShipped(file);
  if (fs.existsSync(file)) {
    try {
      return promptsFromSafetensors(decodeSafetensors(readCached(file), file), file);
    } catch (e) {
      log(`cached prompts ${file} are unreadable (${(e as Error).message}); training again`);
    }
  }
  const shots = await loadShots(dataset, profile.shots, profile.backdoor.seed, log);
  const d = await getDefense(method).run({ model: bd.model, tokenizer: bd.tokenizer, shots, cleanCorpus: async () => { throw new Error('unused'); }, seed: profile.backdoor.seed, log }, config);
  const p = d.prompts!;
  const tensors: Parameters<typeof encodeSafetensors>[0] = {};
  for (const [l, v] of p.tokens) tensors[`prompt.visual.${l}`] = { dtype: 'F32', shape: v.shape, data: Float32Array.from(v.dataSync()) };
  writeCached(file, encodeSafetensors(tensors, { length: String(p.length), method, backdoor: bd.checkpoint, config: JSON.stringify(config) }));
  // A copy that outlives the defense object.
  const tokens = new Map<number, tf.Variable>();
  for (const [l, v] of p.tokens) tokens.set(l, ownedVariable(tf.clone(v), true));
  d.dispose();
  return { tokens, length: p.length };
}

/** A test sample of a dataset (seeded) for the analyses. */
export async function analysisTest(profile: Profile, dataset: string, n: number): Promise<ImageDataset> {
  const t = await testSet(profile, dataset);
  return numImages(t) > n ? sample(t, n, 'analysis') : t;
}

/** A cached analysis result (JSON under .cache/results/analysis); `model` is disposed when the cache answers. */
export async function cached<T>(name: string, key: unknown, model: MiniCLIP, compute: () => Promise<T>): Promise<T> {
  const k = cacheKey(key, 16);
  const file = adoptLegacy(cacheDir('results', 'analysis', `${name}-${k.key}.json`), cacheDir('results', 'analysis', `${name}-${k.legacy}.json`));
  if (fs.existsSync(file)) {
    try {
      const r = readCachedJson<T>(file);
      model.dispose();
      return r;
    } catch (e) {
      quietLog(`cached analysis ${file} is unusable (${(e as Error).message}); computing it again`);
    }
  }
  const r = await compute();
  writeCachedJson(file, r);
  return r;
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];

/** Save a figure into the profile's results folder (figures/ for the headline profile) with its provenance sidecar. */
export function writeAnalysisFigure(profile: Profile, name: string, fig: Figure, title: string, config: unknown, seconds: number, size?: { width: number; height: number }, claims?: Claim[]) {
  return saveFigure(resultsDir(profile), name, fig, { title, profile: profile.name, config, seconds, claims }, size);
}

/**
 * The attacks a figure shows: the paper's choice where the profile has them; at paper scale (checkpoints from the
 * weights file) the available ones among them, else the first `n` available.
 */
export function figureAttacks(profile: Profile, wanted: string[], n = wanted.length): string[] {
  const have = availableAttacks(profile, profile.datasets.main, wanted);
  if (have.length) return have;
  const any = availableAttacks(profile, profile.datasets.main).slice(0, n);
  if (!any.length) throw new Error(`Profile '${profile.name}' has no attack to show on ${profile.datasets.main}: its weights file names no backdoored checkpoint for BadNet, Blended or WaNet there.`);
  return any;
}

export interface Claim {
  claim: string;
  ours: string;
  holds: boolean;
}

export const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
