import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { CLIPConfig, CLIP_MEAN, CLIP_STD } from '../src/model/config';
import { Profile, getProfile } from '../src/experiments/profiles';
import { cacheDir } from '../src/util/fsutil';

export async function setup(): Promise<void> {
  process.env.RVPT_QUIET = '1';
  await initBackend(process.env.RVPT_BACKEND ?? 'wasm');
}

/** A very small MiniCLIP for unit tests. */
export const TEST_CONFIG: CLIPConfig = {
  imageSize: 16,
  patch: 4,
  width: 16,
  layers: 3,
  heads: 2,
  embedDim: 8,
  textWidth: 16,
  textLayers: 2,
  textHeads: 2,
  contextLength: 8,
  vocabSize: 32,
  mean: CLIP_MEAN,
  std: CLIP_STD,
};

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Metrics of one cell, for tables and probes built by hand. */
export const cellMetrics = (asr: number, ca: number) => ({ asr, ca, asrAll: asr, poisonedAccuracy: 0, n: 10 });

/** The provenance of a result file built by hand. */
export const HAND_PROVENANCE = { commit: 'abcdef1234567890', profile: 'small', config: {}, seed: 0, backend: 'wasm', date: 'd', seconds: 12 };

/** The tiny profile cut down to a few steps each, for end-to-end runs of the probes. */
export function cutDownTiny(name: string, defenses: Record<string, Record<string, unknown>>, shots: number): Profile {
  const tiny = getProfile('tiny');
  return {
    ...tiny,
    name,
    pretrain: { ...tiny.pretrain, steps: 6, mainLimit: 600 },
    backdoor: { ...tiny.backdoor, steps: 3 },
    evalLimit: 100,
    defenses: { ...tiny.defenses, ...defenses },
    shots,
    jobs: 1,
  };
}

/** Put RVPT_CACHE back as it was when the test file loaded, after its tests (which point it at their own folders). */
export function restoreCacheAfterAll(): void {
  const saved = process.env.RVPT_CACHE;
  afterAll(() => {
    if (saved === undefined) delete process.env.RVPT_CACHE;
    else process.env.RVPT_CACHE = saved;
  });
}

/**
 * Point RVPT_CACHE at a fresh temporary folder whose data/ is the default cache's (rendering the emoji sets takes about
 * a minute). The caller restores RVPT_CACHE (restoreCacheAfterAll).
 */
export function freshCacheSharingData(prefix: string): string {
  const data = cacheDir('data');
  fs.mkdirSync(data, { recursive: true });
  process.env.RVPT_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.symlinkSync(data, path.join(process.env.RVPT_CACHE, 'data'));
  return process.env.RVPT_CACHE;
}

/**
 * Run a command line's `main` in this process (the current source, not a build): its exit status and what it wrote
 * to stderr.
 */
export async function runInProcess(main: (argv: string[]) => Promise<number>, args: string[]): Promise<{ status: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { status: await main(args), stderr };
  } finally {
    process.stderr.write = write;
  }
}
