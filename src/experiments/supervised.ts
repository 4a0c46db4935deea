/**
 * The PR figure's reference encoder: a ViT of MiniCLIP's image-tower size trained only on class labels (the paper
 * compares CLIP with an ImageNet-supervised ViT). Same code as the CLIP image tower, a linear head on its
 * embedding, cross-entropy on the main dataset's pre-training split; cached like every other model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { WordTokenizer } from '../model/tokenizer';
import { ownedVariable, trainableParams } from '../model/params';
import { loadEvalSplit, loadSplit } from '../data/load';
import { numImages } from '../data/dataset';
import { augmentBatch, DEFAULT_AUGMENT } from '../data/augment';
import { accuracy, predictWith } from '../metrics/zeroshot';
import { rowsBatch } from '../data/batches';
import { AdamW, warmupCosine } from '../train/optim';
import { MemoryMeter, optimStep } from '../defenses/defense';
import { loadCached, saveCheckpoint } from '../checkpoint/checkpoint';
import { cacheDir, sha256 } from '../util/fsutil';
import { makeRng, randInt } from '../util/rng';
import { Progress } from '../util/progress';
import { Profile } from './profiles';

export interface SupervisedConfig {
  steps: number;
  batch: number;
  lr: number;
  seed: number;
}

/** 2: the fused LayerNorm/QuickGELU kernels (src/kernels/fused.c) change training at float rounding. */
export const SUPERVISED_CODE_VERSION = 2;

export function supervisedConfig(profile: Profile): SupervisedConfig {
  return { steps: profile.name === 'tiny' ? 40 : 500, batch: profile.name === 'tiny' ? 64 : 128, lr: 1e-3, seed: 0, ...(profile.supervised ?? {}) };
}

export interface SupervisedViT {
  model: MiniCLIP;
  checkpoint: string;
  /** Test accuracy of its linear head (%). */
  accuracy: number;
  cached: boolean;
}

/** The supervised ViT for this profile's main dataset, trained once and cached (`seed`: another than the profile's). */
export async function ensureSupervisedViT(profile: Profile, log: (s: string) => void = () => {}, seed?: number): Promise<SupervisedViT> {
  const c = { ...supervisedConfig(profile), ...(seed === undefined ? {} : { seed }) };
  const key = sha256(JSON.stringify({ v: SUPERVISED_CODE_VERSION, model: profile.model, c, data: profile.datasets.main })).slice(0, 12);
  const file = cacheDir('artifacts', `supervised-${profile.name}-${key}.safetensors`);
  const ck = loadCached(file, profile.model, log);
  if (ck) return { model: ck.model, checkpoint: file, accuracy: (ck.info as unknown as { accuracy: number }).accuracy, cached: true };

  const train = await loadSplit(profile.datasets.main, 'pretrain', log);
  const model = MiniCLIP.init(profile.model, c.seed);
  const classes = train.classNames.length;
  const head = ownedVariable(tf.randomNormal([profile.model.embedDim, classes], 0, profile.model.embedDim ** -0.5, 'float32', c.seed + 1), true);
  const params = { ...trainableParams(model.params, (n) => n.startsWith('visual.')), head };
  const opt = new AdamW(params, { weightDecay: 0.05 });
  const schedule = warmupCosine(c.lr, Math.round(c.steps / 20), c.steps);
  const mem = new MemoryMeter();
  const rng = makeRng(`supervised-${c.seed}`);
  const bar = new Progress('supervised ViT', c.steps);
  const t0 = Date.now();
  for (let step = 0; step < c.steps; step++) {
    const rows = Array.from({ length: c.batch }, () => randInt(rng, numImages(train)));
    const batch = tf.tidy(() => [augmentBatch(rowsBatch(train, rows), DEFAULT_AUGMENT, rng), tf.oneHot(tf.tensor1d(rows.map((r) => train.labels[r]), 'int32'), classes)]);
    const [loss] = optimStep(params, opt, schedule(step), () => [tf.losses.softmaxCrossEntropy(batch[1], tf.matMul(model.encodeImage(batch[0] as tf.Tensor4D).embedding, head)) as tf.Scalar], mem);
    tf.dispose(batch);
    bar.tick(1, `loss ${loss.toFixed(3)}`);
  }
  bar.done();
  opt.dispose();
  const test = await loadEvalSplit(profile.datasets.main, 'test', profile.evalLimit, log);
  const pred = predictWith((x) => tf.argMax(tf.matMul(model.encodeImage(x).embedding, head), 1) as tf.Tensor1D, test);
  const acc = accuracy(pred, test.labels);
  log(`supervised ViT: test accuracy ${acc.toFixed(2)}% after ${c.steps} steps (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  // Checkpoints carry a tokenizer; this model has no text side, so an empty vocabulary stands in.
  saveCheckpoint(file, model, new WordTokenizer(['<pad>', '<start_of_text>', '<end_of_text>', '<unk>']), {
    kind: 'supervised-vit',
    config: profile.model,
    seed: c.seed,
    profile: profile.name,
    supervised: c,
    dataset: profile.datasets.main,
    accuracy: acc,
    timings: { trainSeconds: (Date.now() - t0) / 1000 },
  }, { head });
  head.dispose();
  return { model, checkpoint: file, accuracy: acc, cached: false };
}
