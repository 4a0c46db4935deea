/**
 * Data-parallel contrastive training on two cores. The WASM backend is single-threaded in Node, so a second
 * TF.js instance runs in a worker thread and each step is split in halves:
 *
 *   main:   forward own half ─┐ exchange embeddings ┌─ full-batch loss, backward through own half ─┐
 *   worker: forward own half ─┘  (SharedArrayBuffer) └─ full-batch loss, backward through own half ─┴─ sum grads
 *
 * CLIP's loss couples every image with every caption of the batch, so halves cannot simply average their own
 * losses (that would be a different objective). Each side computes the *full* batch's loss with the other half's
 * embeddings as constants; dL/dθ = dL/dE_main·dE_main/dθ + dL/dE_worker·dE_worker/dθ, so the two sides' gradients
 * sum to the exact full-batch gradient (as CLIP's all-gather does across GPUs). Parameters used outside the towers
 * (the logit scale) take the main side's gradient only. The exchange is synchronous (Atomics.wait) because a
 * TF.js gradient tape cannot span an `await`.
 *
 * The optimiser lives on the main thread; updated parameters are copied to the worker each step. Summation order
 * is fixed (main + worker), so a run is deterministic for a given seed and worker count.
 */
import { compiledScript } from '../util/fsutil';
import { Worker } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { CLIPConfig } from '../model/config';
import { MiniCLIP, clipLoss } from '../model/clip';
import { TokenBatch } from '../model/text';

/** Control slots in the shared Int32Array. */
export const CTRL = { CMD: 0, MAIN_EMB: 1, WORK_EMB: 2, WORK_GRAD: 3, READY: 4, ERROR: 5, STOP: 6 } as const;

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
}

export interface SharedBuffers {
  ctrl: SharedArrayBuffer;
  params: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  images: SharedArrayBuffer;
  tokens: SharedArrayBuffer;
  /** [main img, main txt, worker img, worker txt] embeddings, each half x embedDim. */
  emb: SharedArrayBuffer;
}

export function makeLayout(model: MiniCLIP, batch: number): ParallelLayout {
  if (batch % 2 !== 0) throw new Error(`Two-core training splits the batch in halves: batch ${batch} must be even.`);
  const names = Object.keys(model.params).sort();
  const sizes = names.map((n) => model.params[n].size);
  return {
    names,
    sizes,
    total: sizes.reduce((a, b) => a + b, 0),
    half: batch / 2,
    imageSize: model.config.imageSize,
    contextLength: model.config.contextLength,
    embedDim: model.config.embedDim,
  };
}

export function makeBuffers(l: ParallelLayout): SharedBuffers {
  const f = (n: number) => new SharedArrayBuffer(n * 4);
  return {
    ctrl: f(8),
    params: f(l.total),
    grads: f(l.total),
    images: f(l.half * l.imageSize * l.imageSize * 3),
    tokens: f(l.half * (l.contextLength + 1)),
    emb: f(4 * l.half * l.embedDim),
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
export function halfContrastiveLoss(
  model: MiniCLIP,
  images: tf.Tensor4D,
  tokens: TokenBatch,
  side: 'main' | 'worker',
  l: ParallelLayout,
  ctrl: Int32Array,
  emb: Float32Array,
  step: number,
): tf.Scalar {
  const img = model.encodeImage(images).embedding;
  const txt = model.encodeText(tokens);
  const n = l.half * l.embedDim;
  const own = side === 'main' ? 0 : 2 * n;
  const other = side === 'main' ? 2 * n : 0;
  emb.set(img.dataSync(), own);
  emb.set(txt.dataSync(), own + n);
  signal(ctrl, side === 'main' ? CTRL.MAIN_EMB : CTRL.WORK_EMB, step);
  waitFor(ctrl, side === 'main' ? CTRL.WORK_EMB : CTRL.MAIN_EMB, step);
  const oImg = tf.tensor2d(emb.slice(other, other + n), [l.half, l.embedDim]);
  const oTxt = tf.tensor2d(emb.slice(other + n, other + 2 * n), [l.half, l.embedDim]);
  const allImg = side === 'main' ? tf.concat([img, oImg]) : tf.concat([oImg, img]);
  const allTxt = side === 'main' ? tf.concat([txt, oTxt]) : tf.concat([oTxt, txt]);
  return clipLoss(model.logits(allImg as tf.Tensor2D, allTxt as tf.Tensor2D));
}

export function writeParams(model: MiniCLIP, l: ParallelLayout, buf: Float32Array): void {
  let o = 0;
  l.names.forEach((name, i) => {
    buf.set(model.params[name].dataSync(), o);
    o += l.sizes[i];
  });
}

export function readParams(model: MiniCLIP, l: ParallelLayout, buf: Float32Array): void {
  let o = 0;
  tf.tidy(() => {
    l.names.forEach((name, i) => {
      const v = model.params[name];
      v.assign(tf.tensor(buf.subarray(o, o + l.sizes[i]), v.shape));
      o += l.sizes[i];
    });
  });
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
  readonly ctrl: Int32Array;
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly images: Float32Array;
  readonly tokens: Int32Array;
  readonly emb: Float32Array;
  /** Where each parameter starts in the flat params/grads buffers. */
  readonly offsets: Record<string, number> = {};
  private worker: Worker;
  private failure: Error | null = null;

  private constructor(
    readonly layout: ParallelLayout,
    readonly bufs: SharedBuffers,
    config: CLIPConfig,
    backend: string,
  ) {
    this.ctrl = new Int32Array(bufs.ctrl);
    this.params = new Float32Array(bufs.params);
    this.grads = new Float32Array(bufs.grads);
    this.images = new Float32Array(bufs.images);
    this.tokens = new Int32Array(bufs.tokens);
    this.emb = new Float32Array(bufs.emb);
    let o = 0;
    layout.names.forEach((n, i) => {
      this.offsets[n] = o;
      o += layout.sizes[i];
    });
    this.worker = new Worker(compiledScript(__dirname, 'train/worker.js'), { workerData: { layout, bufs, config, backend } });
    this.worker.on('error', (e) => {
      this.failure = e;
      Atomics.store(this.ctrl, CTRL.ERROR, 1);
    });
  }

  static async start(model: MiniCLIP, batch: number, backend: string): Promise<ContrastiveWorker> {
    const layout = makeLayout(model, batch);
    const w = new ContrastiveWorker(layout, makeBuffers(layout), model.config, backend);
    writeParams(model, layout, w.params);
    // Wait (asynchronously: the worker needs the event loop to start) until its backend is up.
    const t0 = Date.now();
    while (Atomics.load(w.ctrl, CTRL.READY) === 0) {
      if (w.failure) throw new Error(`The training worker failed to start: ${w.failure.message}`);
      if (Date.now() - t0 > 60000) throw new Error('The training worker did not start within 60 s.');
      await new Promise((r) => setTimeout(r, 5));
    }
    return w;
  }

  /** Hand the worker its half of step `step` (1-based; the parameters must already be in `params`). */
  submit(step: number, images: Float32Array, tokens: TokenBatch): void {
    const l = this.layout;
    const per = l.imageSize * l.imageSize * 3;
    this.images.set(images.subarray(l.half * per, 2 * l.half * per));
    writeTokens(tokens, l.half, l.half, this.tokens);
    signal(this.ctrl, CTRL.CMD, step);
  }

  /** Wait for the worker's gradients of step `step`; returns them by parameter name (views, copy to keep). */
  collect(step: number): Record<string, Float32Array> {
    waitFor(this.ctrl, CTRL.WORK_GRAD, step);
    const out: Record<string, Float32Array> = {};
    let o = 0;
    this.layout.names.forEach((name, i) => {
      out[name] = this.grads.subarray(o, o + this.layout.sizes[i]);
      o += this.layout.sizes[i];
    });
    return out;
  }

  checkFailure(): void {
    if (this.failure) throw new Error(`The training worker failed: ${this.failure.message}`);
  }

  async stop(): Promise<void> {
    signal(this.ctrl, CTRL.STOP, 1);
    signal(this.ctrl, CTRL.CMD, -1 >>> 1);
    await this.worker.terminate();
  }
}
