/**
 * Contrastive image-text pre-training (CLIP's recipe, scaled down): symmetric InfoNCE with a learnable
 * temperature, AdamW with linear warm-up and cosine decay, optional image augmentation. Deterministic for a
 * seed (batch order, captions and augmentation all come from per-step seeded draws), and resumable from a
 * periodic state file.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { TextTokenizer } from '../model/tokenizer';
import { trainableParams } from '../model/params';
import { CaptionCorpus } from '../data/corpus';
import { AugmentConfig, drawAugment } from '../data/augment';
import { AdamW, OptimizerState, warmupCosine } from './optim';
import { makeRng, permutation } from '../util/rng';
import { Progress } from '../util/progress';
import { sha256 } from '../util/fsutil';
import { readSafetensors, writeSafetensors } from '../checkpoint/safetensors';
import { backendInfo } from '../backend';
import { ContrastiveWorker } from './parallel';
import { contrastiveStep } from './step';

export interface PretrainConfig {
  batch: number;
  steps: number;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  augment: AugmentConfig | null;
  seed: number;
  /** Threads computing gradients: 1, or 2 to use a second core (see parallel.ts). Default 1. */
  workers?: number;
}

export interface TrainHistory {
  loss: number[];
  lr: number[];
  /** tf.memory().numTensors at the end of each epoch (should stay flat). */
  tensorsPerEpoch: number[];
  seconds: number;
}

export interface PretrainHooks {
  /** Write resumable state here every `stateEvery` steps, and resume from it when it exists. */
  stateFile?: string;
  stateEvery?: number;
  onStep?: (step: number, loss: number) => void;
  quiet?: boolean;
}

/** The last epoch's permutation: drawing it afresh every step cost 11 ms of a ~570 ms step at 59K pairs (25 ms at 135K). */
let lastEpoch: { key: string; perm: Int32Array } | null = null;

/** Corpus rows of step `s`: epochs are seeded permutations, so any step can be recomputed on resume. */
export function stepIndices(corpusSize: number, batch: number, step: number, seed: number): Int32Array {
  const perEpoch = Math.floor(corpusSize / batch);
  if (perEpoch < 1) throw new Error(`Corpus of ${corpusSize} pairs is smaller than one batch of ${batch}.`);
  const epoch = Math.floor(step / perEpoch);
  const key = `${corpusSize}-${seed}-${epoch}`;
  if (lastEpoch?.key !== key) lastEpoch = { key, perm: permutation(corpusSize, makeRng(`epoch-${seed}-${epoch}`)) };
  const perm = lastEpoch.perm;
  const o = (step % perEpoch) * batch;
  return perm.slice(o, o + batch);
}

/** What a saved state must match to be resumed: model shape, training config and the corpus's make-up. */
function stateKey(model: MiniCLIP, cfg: PretrainConfig, corpus: CaptionCorpus): string {
  const parts = corpus.parts.map((p) => [p.data.name, p.rows?.length ?? p.data.labels.length, p.repeat]);
  return sha256(JSON.stringify({ model: model.config, cfg, parts }));
}

export async function pretrain(model: MiniCLIP, tokenizer: TextTokenizer, corpus: CaptionCorpus, cfg: PretrainConfig, hooks: PretrainHooks = {}): Promise<TrainHistory> {
  const workers = cfg.workers ?? 1;
  if (workers !== 1 && workers !== 2) throw new Error(`workers must be 1 or 2 (got ${workers}).`);
  if (tokenizer.size > model.config.vocabSize) {
    throw new Error(`The tokenizer has ${tokenizer.size} words but the model's vocabSize is ${model.config.vocabSize}: raise vocabSize in the model config.`);
  }
  const params = trainableParams(model.params);
  const opt = new AdamW(params, { weightDecay: cfg.weightDecay });
  const schedule = warmupCosine(cfg.lr, cfg.warmupSteps, cfg.steps);
  const hist: TrainHistory = { loss: [], lr: [], tensorsPerEpoch: [], seconds: 0 };
  const perEpoch = Math.floor(corpus.size / cfg.batch);
  const key = stateKey(model, cfg, corpus);
  let start = 0;
  if (hooks.stateFile && fs.existsSync(hooks.stateFile)) start = resume(hooks.stateFile, key, model, opt, hist);

  const t0 = Date.now();
  const helper = workers === 2 ? await ContrastiveWorker.start(model, cfg.batch, backendInfo().name, opt) : null;
  const bar = new Progress('pretrain', cfg.steps, { quiet: hooks.quiet });
  bar.tick(start);
  try {
    for (let step = start; step < cfg.steps; step++) {
      const rng = makeRng(`step-${cfg.seed}-${step}`);
      const b = corpus.batch(stepIndices(corpus.size, cfg.batch, step, cfg.seed), rng);
      const tokens = tokenizer.encodeBatch(b.captions, model.config.contextLength);
      const lr = schedule(step);
      const raw = tf.tensor4d(b.images, [cfg.batch, corpus.imageSize, corpus.imageSize, 3]);
      // The crops and flips are drawn here, in the step's rng order, and applied in the step (by both threads).
      const draw = cfg.augment ? drawAugment(cfg.batch, cfg.augment, rng) : null;
      const loss = contrastiveStep(model, params, opt, raw, tokens, lr, helper, step, draw);
      raw.dispose();
      const l = loss.dataSync()[0];
      loss.dispose();
      if (!Number.isFinite(l)) throw new Error(`Pre-training diverged at step ${step}: loss ${l}. Lower the learning rate (now ${cfg.lr}).`);
      hist.loss.push(l);
      hist.lr.push(lr);
      hooks.onStep?.(step, l);
      bar.tick(1, `loss ${l.toFixed(3)}`);
      if ((step + 1) % perEpoch === 0 || step + 1 === cfg.steps) hist.tensorsPerEpoch.push(tf.memory().numTensors);
      if (hooks.stateFile && hooks.stateEvery && (step + 1) % hooks.stateEvery === 0 && step + 1 < cfg.steps) {
        saveState(hooks.stateFile, key, step + 1, model, opt, { ...hist, seconds: hist.seconds + (Date.now() - t0) / 1000 });
      }
    }
  } finally {
    bar.done();
    await helper?.stop();
  }
  hist.seconds += (Date.now() - t0) / 1000;
  opt.dispose();
  if (hooks.stateFile && fs.existsSync(hooks.stateFile)) fs.unlinkSync(hooks.stateFile);
  return hist;
}

function saveState(file: string, key: string, step: number, model: MiniCLIP, opt: AdamW, hist: TrainHistory): void {
  const tensors: Parameters<typeof writeSafetensors>[1] = {};
  for (const [k, v] of Object.entries(model.params)) tensors[`param.${k}`] = { dtype: 'F32', shape: v.shape, data: Float32Array.from(v.dataSync()) };
  for (const [k, v] of Object.entries(opt.state())) tensors[`opt.${k}`] = { dtype: 'F32', shape: v.shape, data: v.data };
  writeSafetensors(file, tensors, { key, step: String(step), optStep: String(opt.step), history: JSON.stringify(hist) });
}

function resume(file: string, key: string, model: MiniCLIP, opt: AdamW, hist: TrainHistory): number {
  let st;
  try {
    st = readSafetensors(file);
  } catch (e) {
    process.stderr.write(`[rvpt] ignoring unreadable training state ${file}: ${(e as Error).message}\n`);
    return 0;
  }
  if (st.metadata.key !== key) {
    process.stderr.write(`[rvpt] training state ${file} belongs to another configuration; starting from scratch\n`);
    return 0;
  }
  const optState: OptimizerState = {};
  for (const [k, t] of Object.entries(st.tensors)) {
    if (k.startsWith('param.')) tf.tidy(() => model.params[k.slice(6)].assign(tf.tensor(t.data as Float32Array, t.shape)));
    else if (k.startsWith('opt.')) optState[k.slice(4)] = { shape: t.shape, data: t.data as Float32Array };
  }
  opt.loadState(optState);
  opt.step = Number(st.metadata.optStep);
  Object.assign(hist, JSON.parse(st.metadata.history));
  const step = Number(st.metadata.step);
  process.stderr.write(`[rvpt] resuming pre-training from step ${step} (${file})\n`);
  return step;
}

/** How often a run of `steps` steps saves its resumable state: every 10% of the run, between 5 and 100 steps. */
export function stateInterval(steps: number): number {
  return Math.max(5, Math.min(100, Math.round(steps / 10)));
}
