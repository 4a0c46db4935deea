/**
 * Data-parallel contrastive training on two cores. The WASM backend is single-threaded in Node, so a second
 * TF.js instance runs in a worker thread and each step is split in halves:
 *
 *   main:   forward own half ─┐ exchange  ┌─ full-batch loss, backward ─┐ exchange ┌─ sum, AdamW: first half of ─┐ load the
 *   worker: forward own half ─┘embeddings └─ through own half          ─┘ grads    └─ sum, AdamW: second half  ─┘ other half
 *                                                                                     (of the parameters)
 *
 * CLIP's loss couples every image with every caption of the batch, so halves cannot simply average their own
 * losses (that would be a different objective). Each side computes the *full* batch's loss with the other half's
 * embeddings as constants; dL/dθ = dL/dE_main·dE_main/dθ + dL/dE_worker·dE_worker/dθ, so the two sides' gradients
 * sum to the exact full-batch gradient (as CLIP's all-gather does across GPUs). Parameters used outside the towers
 * (the logit scale) take the main side's gradient only. The exchanges are synchronous (Atomics.wait) because a
 * TF.js gradient tape cannot span an `await`.
 *
 * The update is split too: each side sums the two gradients (main + worker, a fixed order, in the optimiser's loop)
 * and runs the optimiser for its share of the parameters (half the values), in place in shared memory, then loads the other side's
 * share. The optimiser's state lives in shared memory as well, so the main side can checkpoint all of it. The
 * update is element by element, so who computes an element does not change its bits: a run is deterministic for
 * a given seed and worker count, and its update is the one a single thread would make from the same sums.
 */
import { compiledScript } from '../util/fsutil';
import { Worker } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { CLIPConfig } from '../model/config';
import { MiniCLIP, clipLoss } from '../model/clip';
import { TokenBatch } from '../model/text';
import { AdamW, AdamWSpec, assignValues } from './optim';
import { valuesView } from '../kernels/wasmModule';
import { AdamWKernel } from '../kernels/adamw';
import { AugmentDraw, applyAugment } from '../data/augment';

/** Control slots in the shared Int32Array. */
export const CTRL = { CMD: 0, MAIN_EMB: 1, WORK_EMB: 2, WORK_GRAD: 3, READY: 4, ERROR: 5, STOP: 6, MAIN_GRAD: 7, MAIN_UPD: 8, WORK_UPD: 9, TID: 10, DONE: 11 } as const;

/**
 * Where each side's step goes, in the order it happens (see the diagram above): its half's forward pass and the
 * embeddings' copy, the wait for the other half's embeddings, the loss and the backward pass, the copy of its
 * gradients, the wait for the other side's, AdamW on its share, the wait for the other share, and its load.
 */
export const STEP_PHASES = ['forward', 'waitEmbeddings', 'backward', 'writeGradients', 'waitGradients', 'update', 'waitUpdate', 'loadOther'] as const;
export type StepPhase = (typeof STEP_PHASES)[number];

/** Parameters that only the main side differentiates (they are not part of either tower). */
export const SHARED_ONLY_MAIN = new Set(['logit_scale']);

export interface ParallelLayout {
  names: string[];
  sizes: number[];
  total: number;
  half: number;
  imageSize: number;
  contextLength: number;
  embedDim: number;
  /** Who updates each parameter (by index in `names`): 0 the main side, 1 the worker, -1 nobody (not trained). */
  owner: number[];
  /** The optimiser, as the worker rebuilds it. */
  optimizer: AdamWSpec;
}

export interface SharedBuffers {
  ctrl: SharedArrayBuffer;
  /** The step's learning rate, optimiser step count, and 1 if its images are to be augmented (float64). */
  hyper: SharedArrayBuffer;
  /**
   * The AdamW kernel's memory, holding in this order (see SharedViews): the parameters, the worker's gradients, the
   * main side's, and AdamW's two slots (m, v) one after the other, each in `names` order.
   */
  optimizer: WebAssembly.Memory;
  /** Whether the main side has a gradient for each parameter (one without is not updated, as on one core). */
  present: SharedArrayBuffer;
  images: SharedArrayBuffer;
  /** The worker's half's crop boxes (4 per image) and flips (1 or 0), when the step augments. */
  augment: SharedArrayBuffer;
  tokens: SharedArrayBuffer;
  /** [main img, main txt, worker img, worker txt] embeddings, each half x embedDim. */
  emb: SharedArrayBuffer;
  /** Milliseconds spent in each of STEP_PHASES, summed over steps: the main side's, then the worker's (float64). */
  phases: SharedArrayBuffer;
}

export function makeLayout(model: MiniCLIP, batch: number, optimizer: AdamWSpec, trained: string[]): ParallelLayout {
  if (batch % 2 !== 0) throw new Error(`Two-core training splits the batch in halves: batch ${batch} must be even.`);
  const names = Object.keys(model.params).sort();
  const sizes = names.map((n) => model.params[n].size);
  const total = sizes.reduce((a, b) => a + b, 0);
  const isTrained = new Set(trained);
  const trainedTotal = names.reduce((a, n, i) => a + (isTrained.has(n) ? sizes[i] : 0), 0);
  // Split the trained values in two equal halves, in name order.
  let seen = 0;
  const owner = names.map((n, i) => {
    if (!isTrained.has(n)) return -1;
    const side = seen + sizes[i] / 2 <= trainedTotal / 2 ? 0 : 1;
    seen += sizes[i];
    return side;
  });
  return {
    names,
    sizes,
    total,
    owner,
    optimizer,
    half: batch / 2,
    imageSize: model.config.imageSize,
    contextLength: model.config.contextLength,
    embedDim: model.config.embedDim,
  };
}

export function makeBuffers(l: ParallelLayout): SharedBuffers {
  const f = (n: number) => new SharedArrayBuffer(n * 4);
  return {
    ctrl: f(16),
    hyper: f(2 * 3),
    optimizer: AdamWKernel.create(5 * l.total, 4).memory,
    present: f(l.names.length),
    images: f(l.half * l.imageSize * l.imageSize * 3),
    augment: f(l.half * 5),
    tokens: f(l.half * (l.contextLength + 1)),
    emb: f(4 * l.half * l.embedDim),
    phases: f(2 * 2 * STEP_PHASES.length),
  };
}

/** Spin-free wait until ctrl[slot] >= value (or the other side reports an error). */
export function waitFor(ctrl: Int32Array, slot: number, value: number): void {
  for (;;) {
    const v = Atomics.load(ctrl, slot);
    if (v >= value) return;
    if (Atomics.load(ctrl, CTRL.ERROR) !== 0) throw new Error('the other training thread failed (see its error above)');
    Atomics.wait(ctrl, slot, v, 1000);
  }
}

export function signal(ctrl: Int32Array, slot: number, value: number): void {
  Atomics.store(ctrl, slot, value);
  Atomics.notify(ctrl, slot);
}

/**
 * The loss of one side: own half's embeddings with gradient, the other half's as constants, in the fixed
 * order [main half; worker half] so both sides compute the same logits.
 */
export function halfContrastiveLoss(model: MiniCLIP, images: tf.Tensor4D, tokens: TokenBatch, side: 'main' | 'worker', v: SharedViews, step: number): tf.Scalar {
  const { layout: l, ctrl, emb } = v;
  const s = side === 'main' ? 0 : 1;
  v.startClock();
  const img = model.encodeImage(images).embedding;
  const txt = model.encodeText(tokens);
  const n = l.half * l.embedDim;
  const own = side === 'main' ? 0 : 2 * n;
  const other = side === 'main' ? 2 * n : 0;
  emb.set(valuesView(img), own);
  emb.set(valuesView(txt), own + n);
  v.lap(s, 'forward');
  signal(ctrl, side === 'main' ? CTRL.MAIN_EMB : CTRL.WORK_EMB, step);
  waitFor(ctrl, side === 'main' ? CTRL.WORK_EMB : CTRL.MAIN_EMB, step);
  v.lap(s, 'waitEmbeddings');
  const oImg = tf.tensor2d(emb.slice(other, other + n), [l.half, l.embedDim]);
  const oTxt = tf.tensor2d(emb.slice(other + n, other + 2 * n), [l.half, l.embedDim]);
  const allImg = side === 'main' ? tf.concat([img, oImg]) : tf.concat([oImg, img]);
  const allTxt = side === 'main' ? tf.concat([txt, oTxt]) : tf.concat([oTxt, txt]);
  return clipLoss(model.logits(allImg as tf.Tensor2D, allTxt as tf.Tensor2D));
}

/** Flat-buffer views of one parallel run, as both sides see them. */
export class SharedViews {
  readonly ctrl: Int32Array;
  readonly hyper: Float64Array;
  readonly kernel: AdamWKernel;
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly mainGrads: Float32Array;
  readonly present: Int32Array;
  readonly slots: Float32Array;
  readonly images: Float32Array;
  readonly augment: Float32Array;
  readonly tokens: Int32Array;
  readonly emb: Float32Array;
  readonly phases: Float64Array;
  /** Where each parameter starts in the flat buffers. */
  readonly offsets: number[] = [];
  /** When this thread's current phase began (performance.now()). */
  private phaseStart = 0;

  constructor(
    readonly layout: ParallelLayout,
    readonly bufs: SharedBuffers,
  ) {
    this.ctrl = new Int32Array(bufs.ctrl);
    this.hyper = new Float64Array(bufs.hyper);
    // Both sides lay the kernel's memory out by the same allocations, in the same order.
    this.kernel = AdamWKernel.attach(bufs.optimizer);
    this.params = this.kernel.alloc(layout.total);
    this.grads = this.kernel.alloc(layout.total);
    this.mainGrads = this.kernel.alloc(layout.total);
    this.slots = this.kernel.alloc(2 * layout.total);
    this.present = new Int32Array(bufs.present);
    this.images = new Float32Array(bufs.images);
    this.augment = new Float32Array(bufs.augment);
    this.tokens = new Int32Array(bufs.tokens);
    this.emb = new Float32Array(bufs.emb);
    this.phases = new Float64Array(bufs.phases);
    let o = 0;
    layout.sizes.forEach((n) => {
      this.offsets.push(o);
      o += n;
    });
  }

  /** The worker's half of the step's images, augmented if the main side asked for it (call inside a tidy). */
  workerImages(): tf.Tensor4D {
    const { half, imageSize: s } = this.layout;
    const raw = tf.tensor4d(this.images, [half, s, s, 3]);
    if (!this.hyper[2]) return raw;
    const boxes = this.augment.slice(0, 4 * half);
    const flips = Array.from(this.augment.subarray(4 * half, 5 * half), (f) => f === 1);
    return applyAugment(raw, { boxes, flips });
  }

  /** Start timing this thread's step (its first phase). */
  startClock(): void {
    this.phaseStart = performance.now();
  }

  /** Close `phase` of `side`'s step (0 main, 1 worker) and start the next. */
  lap(side: 0 | 1, phase: StepPhase): void {
    const now = performance.now();
    this.phases[side * STEP_PHASES.length + STEP_PHASES.indexOf(phase)] += now - this.phaseStart;
    this.phaseStart = now;
  }

  /** Each phase's milliseconds for `side`, summed over the steps since the last reset. */
  phaseTotals(side: 0 | 1): Record<StepPhase, number> {
    return Object.fromEntries(STEP_PHASES.map((p, i) => [p, this.phases[side * STEP_PHASES.length + i]])) as Record<StepPhase, number>;
  }

  /** Zero both sides' sums (between steps, while neither thread is in one). */
  resetPhases(): void {
    this.phases.fill(0);
  }

  /** A parameter's values in the shared buffer (index in `names`). */
  private paramValues(i: number): Float32Array {
    return this.params.subarray(this.offsets[i], this.offsets[i] + this.layout.sizes[i]);
  }

  writeParams(model: MiniCLIP): void {
    this.layout.names.forEach((name, i) => this.paramValues(i).set(model.params[name].dataSync()));
  }

  /** Load parameters from the shared buffer: all of them, or only those `owner` updates. */
  readParams(model: MiniCLIP, owner?: number): void {
    this.layout.names.forEach((name, i) => {
      if (owner === undefined || this.layout.owner[i] === owner) assignValues(model.params[name], this.paramValues(i));
    });
  }

  /** Back the optimiser's state of every trained parameter with the shared slots, updated by the shared kernel. */
  shareSlots(opt: AdamW): void {
    const l = this.layout;
    opt.useKernel(this.kernel);
    l.names.forEach((name, i) => {
      if (l.owner[i] < 0) return;
      const o = this.offsets[i];
      opt.shareSlots(name, [0, 1].map((k) => this.slots.subarray(k * l.total + o, k * l.total + o + l.sizes[i])));
    });
  }

  /**
   * Write this side's gradients, wait for the other side's, then update this side's share of the parameters in
   * place in the shared memory (on the AdamW kernel, which needs all its arrays there) and in this side's variables.
   * `opt.step` must already be the step's count.
   */
  update(side: 0 | 1, model: MiniCLIP, grads: Record<string, tf.Tensor>, opt: AdamW, lr: number, step: number): void {
    const l = this.layout;
    const mine = side === 0 ? this.mainGrads : this.grads;
    const region = (buf: Float32Array, i: number) => buf.subarray(this.offsets[i], this.offsets[i] + l.sizes[i]);
    this.lap(side, 'backward');
    l.names.forEach((name, i) => {
      if (side === 0) this.present[i] = grads[name] ? 1 : 0;
      if (l.owner[i] < 0) return;
      const g = grads[name];
      if (g) mine.set(valuesView(g), this.offsets[i]);
      else region(mine, i).fill(0);
    });
    this.lap(side, 'writeGradients');
    signal(this.ctrl, side === 0 ? CTRL.MAIN_GRAD : CTRL.WORK_GRAD, step);
    waitFor(this.ctrl, side === 0 ? CTRL.WORK_GRAD : CTRL.MAIN_GRAD, step);
    this.lap(side, 'waitGradients');
    l.names.forEach((name, i) => {
      if (l.owner[i] !== side || !this.present[i]) return;
      const p = this.paramValues(i);
      opt.updateValues(name, p, region(this.mainGrads, i), lr, SHARED_ONLY_MAIN.has(name) ? undefined : region(this.grads, i));
      assignValues(model.params[name], p);
    });
    this.lap(side, 'update');
    signal(this.ctrl, side === 0 ? CTRL.MAIN_UPD : CTRL.WORK_UPD, step);
    waitFor(this.ctrl, side === 0 ? CTRL.WORK_UPD : CTRL.MAIN_UPD, step);
    this.lap(side, 'waitUpdate');
    this.readParams(model, 1 - side);
    this.lap(side, 'loadOther');
  }
}

export function writeTokens(t: TokenBatch, offset: number, count: number, buf: Int32Array): void {
  const c = t.contextLength;
  buf.set(t.ids.subarray(offset * c, (offset + count) * c), 0);
  buf.set(t.eot.subarray(offset, offset + count), count * c);
}

export function readTokens(buf: Int32Array, count: number, contextLength: number): TokenBatch {
  return { ids: buf.slice(0, count * contextLength), eot: buf.slice(count * contextLength, count * (contextLength + 1)), batch: count, contextLength };
}

/** The main side's handle on the worker. */
export class ContrastiveWorker {
  private worker: Worker;
  private failure: Error | null = null;
  /** The last step handed to the worker. */
  private submitted = 0;

  /** The views must hold the parameters and the optimiser's state before the worker starts reading them. */
  private constructor(
    readonly views: SharedViews,
    config: CLIPConfig,
    backend: string,
  ) {
    const { layout, bufs } = views;
    this.worker = new Worker(compiledScript(__dirname, 'train/worker.js'), { workerData: { layout, bufs, config, backend } });
    this.worker.on('error', (e) => {
      this.failure = e;
      Atomics.store(this.views.ctrl, CTRL.ERROR, 1);
    });
  }

  get layout(): ParallelLayout {
    return this.views.layout;
  }

  /**
   * Start the worker for `opt` (an AdamW over the model's trained parameters, already resumed if resuming): its
   * state moves to shared memory, where both sides update it.
   */
  static async start(model: MiniCLIP, batch: number, backend: string, opt: AdamW): Promise<ContrastiveWorker> {
    const layout = makeLayout(model, batch, opt.spec(), opt.paramNames());
    const views = new SharedViews(layout, makeBuffers(layout));
    views.writeParams(model);
    views.shareSlots(opt);
    const w = new ContrastiveWorker(views, model.config, backend);
    // Wait (asynchronously: the worker needs the event loop to start) until its backend is up.
    const t0 = Date.now();
    while (Atomics.load(w.views.ctrl, CTRL.READY) === 0) {
      if (w.failure) throw new Error(`The training worker failed to start: ${w.failure.message}`);
      if (Date.now() - t0 > 60000) throw new Error('The training worker did not start within 60 s.');
      await new Promise((r) => setTimeout(r, 5));
    }
    return w;
  }

  /**
   * Hand the worker its half of step `step` (1-based): the second half of the batch's images and captions, to be
   * updated at learning rate `lr` and optimiser step `optStep`; `augment`, the draws of that half, if the step
   * augments (the worker crops and flips its own half, so that both cores share the work).
   */
  submit(step: number, images: Float32Array, tokens: TokenBatch, lr: number, optStep: number, augment: AugmentDraw | null = null): void {
    const l = this.layout;
    const v = this.views;
    if (images.length !== v.images.length) throw new Error(`The worker's half batch has ${v.images.length} image values, not ${images.length}.`);
    v.images.set(images);
    if (augment) {
      if (augment.flips.length !== l.half) throw new Error(`The worker's half batch has ${l.half} images, not ${augment.flips.length} augmentation draws.`);
      v.augment.set(augment.boxes, 0);
      v.augment.set(Float32Array.from(augment.flips, (f) => (f ? 1 : 0)), 4 * l.half);
    }
    v.hyper[2] = augment ? 1 : 0;
    writeTokens(tokens, l.half, l.half, v.tokens);
    v.hyper[0] = lr;
    v.hyper[1] = optStep;
    this.submitted = step;
    signal(v.ctrl, CTRL.CMD, step);
  }

  /** The worker's thread id as the kernel numbers it (0 where unknown), for per-thread CPU accounting. */
  get threadId(): number {
    return Atomics.load(this.views.ctrl, CTRL.TID);
  }

  /** Both sides' milliseconds per phase (STEP_PHASES) since the last reset, once the worker has finished its step. */
  phaseTotals(): { main: Record<StepPhase, number>; worker: Record<StepPhase, number> } {
    this.waitIdle();
    return { main: this.views.phaseTotals(0), worker: this.views.phaseTotals(1) };
  }

  /** Zero the phase sums, once the worker has finished its step (the main side's has returned). */
  resetPhases(): void {
    this.waitIdle();
    this.views.resetPhases();
  }

  /** Block until the worker has finished the last step handed to it (its phases are then complete). */
  private waitIdle(): void {
    waitFor(this.views.ctrl, CTRL.DONE, this.submitted);
  }

  async stop(): Promise<void> {
    signal(this.views.ctrl, CTRL.STOP, 1);
    signal(this.views.ctrl, CTRL.CMD, -1 >>> 1);
    await this.worker.terminate();
  }
}
