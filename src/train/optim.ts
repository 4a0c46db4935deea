/**
 * Optimisers as the paper's recipes need them. TF.js ships Adam and SGD with momentum but neither decoupled
 * weight decay (AdamW, CLIP/CleanCLIP) nor per-parameter decay masks nor a settable learning rate per step, so
 * both are written here in a few lines each, over a named parameter map.
 */
import * as tf from '@tensorflow/tfjs-core';

export type Schedule = (step: number) => number;

/** Linear warm-up to `lr`, then cosine decay to `minLr` at `total` steps (CLIP, CleanCLIP). */
export function warmupCosine(lr: number, warmup: number, total: number, minLr = 0): Schedule {
  return (step) => {
    if (step < warmup) return (lr * (step + 1)) / warmup;
    const t = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * t));
  };
}

/** Constant `warmupLr` for `warmup` steps, then cosine from `lr` (CoOp/Dassl's "constant" warm-up). */
export function constantWarmupCosine(lr: number, warmup: number, warmupLr: number, total: number): Schedule {
  return (step) => (step < warmup ? warmupLr : 0.5 * lr * (1 + Math.cos((Math.PI * (step - warmup)) / Math.max(1, total - warmup))));
}

export function constant(lr: number): Schedule {
  return () => lr;
}

/** Optimiser state, as plain arrays (checkpointed as `opt.NAME` tensors). */
export type OptimizerState = Record<string, { shape: number[]; data: Float32Array }>;

export interface Optimizer {
  /** Apply one update with the given gradients (disposes them). */
  apply(grads: Record<string, tf.Tensor>, lr: number): void;
  /** The same, with gradients as arrays. */
  applyArrays(grads: Record<string, Float32Array>, lr: number): void;
  state(): OptimizerState;
  loadState(state: OptimizerState): void;
  step: number;
  dispose(): void;
}

/** No weight decay on gains, biases, embeddings of scale, temperature (CleanCLIP's exclusion list). */
export function decays(name: string): boolean {
  return !/(\.bias$|ln_|logit_scale|class_embedding|positional_embedding)/.test(name);
}

/**
 * The update runs in plain JavaScript over each parameter's values: one read of the gradient and the
 * parameter and one write back, instead of ~12 small TF.js kernels per parameter (~800 per step for MiniCLIP,
 * whose dispatch cost dominated the update on WASM). The arithmetic is the same, element by element.
 */
abstract class JsOptimizer implements Optimizer {
  step = 0;
  protected slots: Record<string, Float32Array[]> = {};

  constructor(protected readonly params: Record<string, tf.Variable>) {}

  protected abstract readonly nSlots: number;
  protected abstract update(name: string, p: Float32Array, g: Float32Array, slots: Float32Array[], lr: number): void;

  apply(grads: Record<string, tf.Tensor>, lr: number): void {
    const arrays: Record<string, Float32Array> = {};
    for (const [name, g] of Object.entries(grads)) arrays[name] = g.dataSync() as Float32Array;
    tf.dispose(Object.values(grads));
    this.applyArrays(arrays, lr);
  }

  applyArrays(grads: Record<string, Float32Array>, lr: number): void {
    this.step++;
    for (const [name, g] of Object.entries(grads)) {
      const v = this.params[name];
      if (!v) throw new Error(`Gradient for unknown parameter '${name}'.`);
      const p = Float32Array.from(v.dataSync());
      this.updateValues(name, p, g, lr);
      const next = tf.tensor(p, v.shape);
      v.assign(next);
      next.dispose();
    }
  }

  /**
   * Update one parameter's values `p` in place with its gradient `g`, at the current `step` (which the caller
   * advances): two-core training splits a step's update by parameter between its threads.
   */
  updateValues(name: string, p: Float32Array, g: Float32Array, lr: number): void {
    if (!this.slots[name]) this.slots[name] = Array.from({ length: this.nSlots }, () => new Float32Array(p.length));
    this.update(name, p, g, this.slots[name], lr);
  }

  /** Keep one parameter's slots in `arrays` (views of memory another thread also updates), values carried over. */
  shareSlots(name: string, arrays: Float32Array[]): void {
    if (arrays.length !== this.nSlots) throw new Error(`${this.constructor.name} keeps ${this.nSlots} slots per parameter, not ${arrays.length}.`);
    this.slots[name]?.forEach((d, i) => arrays[i].set(d));
    this.slots[name] = arrays;
  }

  paramNames(): string[] {
    return Object.keys(this.params);
  }

  state(): OptimizerState {
    const out: OptimizerState = {};
    for (const [name, slots] of Object.entries(this.slots)) slots.forEach((d, i) => (out[`${i}.${name}`] = { shape: this.params[name].shape, data: d }));
    return out;
  }

  loadState(state: OptimizerState): void {
    for (const [key, { data }] of Object.entries(state)) {
      const dot = key.indexOf('.');
      const i = Number(key.slice(0, dot));
      const name = key.slice(dot + 1);
      if (!this.params[name]) throw new Error(`Optimizer state names parameter '${name}', which the model does not have.`);
      this.slots[name] = this.slots[name] ?? Array.from({ length: this.nSlots }, () => new Float32Array(data.length));
      this.slots[name][i] = Float32Array.from(data);
    }
  }

  dispose(): void {
    this.slots = {};
  }
}

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  decayFilter?: (n: string) => boolean;
}

/** AdamW's options as plain data (the decay filter as the names it decays), to build the same optimiser in a worker. */
export interface AdamWSpec {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  decayed: string[];
}

/** AdamW (decoupled weight decay), CLIP's and CleanCLIP's optimiser; defaults as in CLIP (beta2 0.98, eps 1e-6). */
export class AdamW extends JsOptimizer {
  protected readonly nSlots = 2;

  constructor(
    params: Record<string, tf.Variable>,
    private readonly opts: AdamWOptions = {},
  ) {
    super(params);
  }

  spec(): AdamWSpec {
    const { decayFilter, ...rest } = this.opts;
    return { ...rest, decayed: Object.keys(this.params).filter(decayFilter ?? decays) };
  }

  static fromSpec(params: Record<string, tf.Variable>, { decayed, ...rest }: AdamWSpec): AdamW {
    const set = new Set(decayed);
    return new AdamW(params, { ...rest, decayFilter: (n) => set.has(n) });
  }

  protected update(name: string, p: Float32Array, g: Float32Array, [m, v]: Float32Array[], lr: number): void {
    const b1 = this.opts.beta1 ?? 0.9;
    const b2 = this.opts.beta2 ?? 0.98;
    const eps = this.opts.eps ?? 1e-6;
    const wd = (this.opts.decayFilter ?? decays)(name) ? this.opts.weightDecay ?? 0.1 : 0;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    for (let i = 0; i < p.length; i++) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + eps) + wd * p[i]);
    }
  }
}

/** SGD with momentum and coupled (torch-style) weight decay: CoOp/Dassl's optimiser for prompt tuning. */
export class SGD extends JsOptimizer {
  protected readonly nSlots = 1;

  constructor(
    params: Record<string, tf.Variable>,
    private readonly opts: { momentum?: number; weightDecay?: number } = {},
  ) {
    super(params);
  }

  protected update(_name: string, p: Float32Array, g: Float32Array, [buf]: Float32Array[], lr: number): void {
    const mu = this.opts.momentum ?? 0.9;
    const wd = this.opts.weightDecay ?? 0;
    const first = this.step === 1;
    for (let i = 0; i < p.length; i++) {
      const d = g[i] + wd * p[i];
      // torch initialises the momentum buffer with the first gradient
      buf[i] = mu > 0 ? (first ? d : mu * buf[i] + d) : d;
      p[i] -= lr * buf[i];
    }
  }
}
