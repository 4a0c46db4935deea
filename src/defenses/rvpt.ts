/**
 * RVPT, Repulsive Visual Prompt Tuning (docs/PAPER-NOTES.md §1): freeze the backdoored CLIP, learn deep visual prompts
 * (b tokens at every block from the non-prompted depth D on) on a few clean shots per class, with
 *   L = CE(zero-shot logits of the prompted encoder) + alpha * L_FR,
 *   L_FR = mean over samples of max(m, mean over prompted layers of cos(c^d, sigma^d)),
 * where c^d is the prompted encoder's class token after block d and sigma^d the frozen original's. m = -1 is full
 * repulsion (the paper's default); alpha = 0 is plain VPT (vpt.ts). The text side is the fixed zero-shot classifier.
 */
import * as tf from '@tensorflow/tfjs-core';
import { l2normalize, layerNorm, matMulBT, withFrozenWeights } from '../model/layers';
import { MiniCLIP } from '../model/clip';
import { DeepPrompts, disposePrompts, initDeepPrompts, promptLayers, promptParams } from '../model/prompts';
import { rowsBatch } from '../data/batches';
import { zeroShotClassifier } from '../model/zeroShot';
import { AugmentConfig, DEFAULT_AUGMENT, augmentBatch } from '../data/augment';
import { numImages } from '../data/dataset';
import { SGD, constantWarmupCosine } from '../train/optim';
import { makeRng, permutation } from '../util/rng';
import { Progress } from '../util/progress';
import { Defended, Defense, DefenseContext, MemoryMeter, optimStep, zeroShotClassifierOf } from './defense';

export interface PromptTuningConfig {
  /** Prompt tokens per prompted block, b (paper: 50 for 49 patch tokens; here 16 for 16 patch tokens). */
  promptLength: number;
  /** Non-prompted depth D: blocks D..L-1 get prompts (paper: 3 of 12; here 2 of 6). */
  depth: number;
  /** Or the prompted blocks explicitly (the ablation's depth counted from the input: blocks 0..k-1). */
  layers?: number[];
  /** Weight of the feature-repelling loss (paper: 2; 0 is VPT). */
  alpha: number;
  /** Per-sample margin on the FR term (paper default: full repulsion, -1; m = 1 makes it plain VPT). */
  margin: number;
  epochs: number;
  batch: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  /** CoOp's constant warm-up: this many epochs at warmupLr. */
  warmupEpochs: number;
  warmupLr: number;
  initStd: number;
  augment: AugmentConfig | null;
  /**
   * 1/temperature of the CE logits; null: the model's own learned one, as the paper uses CLIP's (100 for OpenAI's
   * CLIP, ~14 for MiniCLIP). Forcing 100 on MiniCLIP was worse (WaNet model, 3,000 test images: VPT CA 78.3% against
   * 82.1% at the model's scale; RVPT ASR 9.1% against 0.4%).
   */
  logitScale: number | null;
  /**
   * Where FR reads the last block's class token c^L: 'residual', the residual stream like every other prompted
   * block's (the default), or 'ln_post', after the image tower's final LayerNorm, the token the projection reads.
   * docs/PAPER-NOTES.md §1: the paper does not say which.
   */
  frToken: FrToken;
  /**
   * The blocks whose output class token FR repels; undefined: every prompted block, the paper's d = D+1..L. An
   * ablation (notebook 03's FR-layer probe): which layers' repelling removes the backdoor and which costs the CA.
   */
  frLayers?: number[];
}

export const FR_TOKENS = ['residual', 'ln_post'] as const;
export type FrToken = (typeof FR_TOKENS)[number];
export const isFrToken = (x: unknown): x is FrToken => (FR_TOKENS as readonly unknown[]).includes(x);

export const RVPT_DEFAULTS: PromptTuningConfig = {
  promptLength: 16,
  depth: 2,
  alpha: 2,
  margin: -1,
  epochs: 50,
  batch: 32,
  lr: 0.002,
  momentum: 0.9,
  weightDecay: 5e-4,
  warmupEpochs: 1,
  warmupLr: 1e-5,
  initStd: 0.02,
  augment: DEFAULT_AUGMENT,
  logitScale: null,
  frToken: 'residual',
};

/** Mean over layers of the cosine between prompted and original class tokens, per sample: [B]. */
export function featureRepelling(prompted: tf.Tensor2D[], original: tf.Tensor2D[]): tf.Tensor1D {
  const cos = prompted.map((c, i) => tf.sum(tf.mul(l2normalize(c), l2normalize(original[i])), 1));
  return tf.div(tf.addN(cos), cos.length) as tf.Tensor1D;
}

/**
 * The class tokens FR compares, one per prompted block (`cls` indexed by block), with the last block's taken after
 * ln_post when `frToken` says so.
 */
export function repelledTokens(model: MiniCLIP, cls: tf.Tensor2D[], layers: number[], frToken: FrToken): tf.Tensor2D[] {
  const last = model.config.layers - 1;
  const lnPost = (t: tf.Tensor2D) => layerNorm(t, model.params['visual.ln_post.weight'] as tf.Tensor1D, model.params['visual.ln_post.bias'] as tf.Tensor1D);
  return cls.flatMap((t, i) => (layers.includes(i) ? [frToken === 'ln_post' && i === last ? lnPost(t) : t] : []));
}

/**
 * FR's blocks: by default the prompted ones. Others must come at or after the first prompted block (before it the
 * prompted and the frozen tokens are the same, and their cosine is 1 whatever the prompts).
 */
export function repelledLayers(name: string, totalLayers: number, prompted: number[], frLayers: number[] | undefined): number[] {
  if (frLayers === undefined) return prompted;
  const first = Math.min(...prompted);
  if (!Array.isArray(frLayers) || frLayers.length === 0) {
    throw new Error(`${name}: frLayers is ${JSON.stringify(frLayers)}; give a non-empty list of blocks in ${first}..${totalLayers - 1}, or leave it out to repel at every prompted block.`);
  }
  for (const l of frLayers) {
    if (!Number.isInteger(l) || l < first || l >= totalLayers) {
      throw new Error(`${name}: frLayers holds ${JSON.stringify(l)}; each must be a block in ${first}..${totalLayers - 1} (from the first prompted block, ${first}, to the last).`);
    }
  }
  return [...new Set(frLayers)].sort((a, b) => a - b);
}

/** What one prompt-tuning step needs besides the batch. */
export interface PromptStepState {
  model: MiniCLIP;
  prompts: DeepPrompts;
  params: Record<string, tf.Variable>;
  opt: SGD;
  /** Prompted block indices. */
  layers: number[];
  /** The blocks at whose outputs FR is taken (by default the prompted ones). */
  frLayers: number[];
  /** Zero-shot text classifier [classes, embedDim], L2-normalised. */
  text: tf.Tensor2D;
  scale: tf.Scalar;
  mem: MemoryMeter;
}

/**
 * One step: sigma = the frozen model's class tokens; loss = CE(prompted zero-shot logits) + alpha * max(FR, m).
 * Returns [loss, ce, fr].
 */
export function promptTuningStep(s: PromptStepState, c: Pick<PromptTuningConfig, 'alpha' | 'margin'> & { frToken?: FrToken }, x: tf.Tensor4D, labels: tf.Tensor2D, lr: number): number[] {
  return tf.tidy(() => {
    // Own tidy: the frozen pass's activations are released before the prompted pass (at ViT-B/32, ~80 MB per image).
    // The blocks before the first prompted one compute the same thing in both passes: the prompted pass resumes from
    // the frozen pass's residual stream there (the same bits; at the small profile's D = 2, two of its six blocks fewer).
    const first = Math.min(...s.layers);
    const frToken = c.frToken ?? 'residual';
    const frozen = tf.tidy(() => {
      const o = s.model.encodeImage(x, { collectCls: true, keepInputOf: first });
      return { sigma: repelledTokens(s.model, o.cls!, s.frLayers, frToken), hidden: o.hidden! };
    });
    const sigma = frozen.sigma;
    // The model is frozen: only the prompts get gradients (withFrozenWeights skips the weights' ones).
    return withFrozenWeights(() => optimStep(s.params, s.opt, lr, () => {
      const out = s.model.encodeImage(x, { prompts: s.prompts, collectCls: true, resume: { block: first, x: frozen.hidden } });
      const logits = tf.mul(matMulBT(l2normalize(out.embedding), s.text), s.scale) as tf.Tensor2D;
      const ce = tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
      const fr = tf.mean(tf.maximum(featureRepelling(repelledTokens(s.model, out.cls!, s.frLayers, frToken), sigma), c.margin)) as tf.Scalar;
      return [c.alpha ? (tf.add(ce, tf.mul(fr, c.alpha)) as tf.Scalar) : ce, ce, fr];
    }, s.mem));
  });
}

/**
 * Prompt tuning as a sequence of steps the caller drives: `step()` runs the next one and returns [loss, ce, fr];
 * `finish()` ends it and returns the defended model. `promptTuning` runs every step in one go; the browser lab runs
 * them a few at a time between frames, with held-out evaluations in between (`prompts` is the live state).
 */
export interface PromptTuningRun {
  readonly steps: number;
  readonly done: number;
  readonly prompts: DeepPrompts;
  readonly history: Record<'loss' | 'ce' | 'fr', number[]>;
  step(): number[];
  finish(): Defended;
}

/** Steps per epoch (whole batches of the shots; a remainder is left out) and in all. */
export function promptTuningSteps(shots: number, c: Pick<PromptTuningConfig, 'batch' | 'epochs'>): { perEpoch: number; steps: number } {
  const perEpoch = Math.max(1, Math.floor(shots / c.batch));
  return { perEpoch, steps: c.epochs * perEpoch };
}

export function startPromptTuning(name: string, ctx: DefenseContext, c: PromptTuningConfig): PromptTuningRun {
  const { model, tokenizer, shots } = ctx;
  if (!isFrToken(c.frToken)) {
    throw new Error(`${name}: frToken is ${JSON.stringify(c.frToken)}; it must be one of ${FR_TOKENS.map((t) => `'${t}'`).join(', ')} (where FR reads the last block's class token).`);
  }
  const L = model.config.layers;
  const spec = { length: c.promptLength, depth: c.depth, layers: c.layers, initStd: c.initStd };
  const layers = promptLayers(L, spec);
  const frLayers = repelledLayers(name, L, layers, c.frLayers);
  const prompts: DeepPrompts = initDeepPrompts(L, model.config.width, spec, ctx.seed);
  const params = promptParams(prompts);
  const opt = new SGD(params, { momentum: c.momentum, weightDecay: c.weightDecay });
  const n = numImages(shots);
  const { perEpoch, steps } = promptTuningSteps(n, c);
  const schedule = constantWarmupCosine(c.lr, c.warmupEpochs * perEpoch, c.warmupLr, steps);
  const text = zeroShotClassifier(model, tokenizer, shots.classNames, shots.templates);
  const scale = c.logitScale === null ? model.logitScale() : tf.scalar(c.logitScale);
  const history = { loss: [] as number[], ce: [] as number[], fr: [] as number[] };
  const mem = new MemoryMeter();
  const state: PromptStepState = { model, prompts, params, opt, layers, frLayers, text, scale, mem };
  const bar = new Progress(name, steps, { quiet: ctx.quiet });
  const t0 = Date.now();
  let step = 0;
  let finished = false;
  return {
    steps,
    prompts,
    history,
    get done() {
      return step;
    },
    step() {
      if (finished) throw new Error(`${name}: the run is finished (after ${step} of ${steps} steps); start a new one.`);
      if (step >= steps) throw new Error(`${name}: all ${steps} steps are done; call finish().`);
      const rng = makeRng(`${name}-${ctx.seed}-${step}`);
      const order = permutation(n, makeRng(`${name}-epoch-${ctx.seed}-${Math.floor(step / perEpoch)}`));
      const rows = order.slice((step % perEpoch) * c.batch, (step % perEpoch) * c.batch + c.batch);
      const batch = tf.tidy(() => {
        const raw = rowsBatch(shots, rows);
        return [c.augment ? augmentBatch(raw, c.augment, rng) : raw, tf.oneHot(tf.tensor1d(Array.from(rows, (r) => shots.labels[r]), 'int32'), shots.classNames.length)];
      });
      const out = promptTuningStep(state, c, batch[0] as tf.Tensor4D, batch[1] as tf.Tensor2D, schedule(step));
      tf.dispose(batch);
      const [l, ce, fr] = out;
      history.loss.push(l);
      history.ce.push(ce);
      history.fr.push(fr);
      bar.tick(1, `loss ${l.toFixed(3)} ce ${ce.toFixed(3)} fr ${fr.toFixed(3)}`);
      step++;
      return out;
    },
    finish() {
      if (finished) throw new Error(`${name}: finish() was called already.`);
      finished = true;
      bar.done();
      opt.dispose();
      tf.dispose([text, scale]);
      const seconds = (Date.now() - t0) / 1000;
      return {
        classifier: (classNames, textPrefix, templates) => zeroShotClassifierOf(model, tokenizer, classNames, textPrefix, prompts, templates),
        cost: { seconds, peakBytes: mem.peakBytes, rssBytes: mem.rssBytes, tunableParams: c.promptLength * model.config.width * layers.length, totalParams: model.numParams(), samples: step * c.batch },
        history,
        prompts,
        dispose: () => disposePrompts(prompts),
      };
    },
  };
}

export async function promptTuning(name: string, ctx: DefenseContext, c: PromptTuningConfig): Promise<Defended> {
  const run = startPromptTuning(name, ctx, c);
  while (run.done < run.steps) run.step();
  return run.finish();
}

/** Every key a prompt-tuning config may hold (the optional ones have no default). */
export const PROMPT_TUNING_PARAMS: readonly string[] = [...Object.keys(RVPT_DEFAULTS), 'layers', 'frLayers'];

export const RVPT: Defense = {
  name: 'RVPT',
  perDataset: true,
  params: PROMPT_TUNING_PARAMS,
  run: (ctx, config) => promptTuning('RVPT', ctx, { ...RVPT_DEFAULTS, ...(config as Partial<PromptTuningConfig>) }),
};
