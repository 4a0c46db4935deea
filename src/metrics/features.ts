/**
 * A frozen model's image embeddings of a test set, clean and with the test-time trigger, cached on disk beside the
 * checkpoint they come from. "No defense" (the backdoored model's own metrics) and Linear Probe (a head on the same
 * frozen encoder) classify the same 2 x 10,000 embeddings at the small profile: ~25 s of encoding on one core,
 * which the second now reads back instead of computing again.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { ImageDataset, numImages } from '../data/dataset';
import { Trigger } from '../attacks/trigger';
import { decodeSafetensors, encodeSafetensors } from '../checkpoint/safetensors';
import { cacheDir, cacheKey, readCached, writeCached } from '../util/fsutil';
import { TEST_TRIGGER_SEED, testTimeTrigger } from './backdoor';
import { EVAL_BATCH } from './zeroshot';
import { forBatches, imageBatch } from '../data/batches';

/** Bump when the image encoder's arithmetic changes without its checkpoints' keys changing. */
export const FEATURES_CODE_VERSION = 1;
const defaultLog = (s: string) => void (process.env.RVPT_QUIET || process.stderr.write(`[rvpt] ${s}\n`));

export interface TestEmbeddings {
  /** [n, dim] row-major, unnormalised (the projection's output). */
  clean: Float32Array;
  triggered: Float32Array;
  dim: number;
}

/** Where the embeddings of `testName` under the checkpoint `checkpoint` and `trigger` are cached. */
export function embeddingsFile(checkpoint: string, testName: string, n: number, trigger: Trigger): string {
  const { key } = cacheKey({ v: FEATURES_CODE_VERSION, checkpoint, testName, n, trigger: trigger.config, seed: TEST_TRIGGER_SEED }, 12);
  return cacheDir('artifacts', `features-${path.basename(checkpoint).replace(/\.safetensors$/, '')}-${testName.replace(/\W+/g, '_')}-${key}.safetensors`);
}

function encodeAll(model: MiniCLIP, test: ImageDataset, transform?: (x: tf.Tensor4D, start: number) => tf.Tensor4D): Float32Array {
  const n = numImages(test);
  const dim = model.config.embedDim;
  return forBatches(n, EVAL_BATCH, dim, new Float32Array(n * dim), (s, e) => {
    const x = imageBatch(test, s, e);
    return model.encodeImage(transform ? transform(x, s) : x).embedding;
  });
}

/**
 * The embeddings, read from `file` when it holds them (a damaged file is said and recomputed), else computed in
 * batches of EVAL_BATCH (the same batches as a classifier's predictions, hence the same bits), written atomically.
 */
export function testEmbeddings(model: MiniCLIP, test: ImageDataset, trigger: Trigger, file?: string, log: (s: string) => void = defaultLog): TestEmbeddings {
  const dim = model.config.embedDim;
  const n = numImages(test);
  if (file && fs.existsSync(file)) {
    try {
      const t = decodeSafetensors(readCached(file), file).tensors;
      const ok = (x: (typeof t)[string] | undefined) => !!x && x.data instanceof Float32Array && x.shape.join() === `${n},${dim}`;
      if (ok(t.clean) && ok(t.triggered)) return { clean: t.clean.data as Float32Array, triggered: t.triggered.data as Float32Array, dim };
      log(`cached embeddings ${file} do not hold [${n}, ${dim}] clean and triggered tensors: recomputing them`);
    } catch (e) {
      log(`cached embeddings ${file} are unreadable (${(e as Error).message}): recomputing them`);
    }
  }
  const clean = encodeAll(model, test);
  const triggered = encodeAll(model, test, testTimeTrigger(trigger));
  if (file) writeCached(file, encodeSafetensors({ clean: { dtype: 'F32', shape: [n, dim], data: clean }, triggered: { dtype: 'F32', shape: [n, dim], data: triggered } }));
  return { clean, triggered, dim };
}
