/**
 * Optimisers as the paper's recipes need them. TF.js ships Adam and SGD with momentum but neither decoupled
 * weight decay (AdamW, CLIP/CleanCLIP) nor per-parameter decay masks nor a settable learning rate per step, so
 * both are written here in a few lines each, over a named parameter map.
 */
import * as tf from '@tensorflow/tfjs-core';
import { valuesView } from '../kernels/wasmModule';
import { AdamWKernel } from '../kernels/adamw';

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

/**
 * Give a variable new values, as a new tensor. Never written in place: TF.js's WASM matmul keeps XNNPACK operators
 * with the weights packed, cached by the weights' data id, and would go on using the old values.
 */
export function assignValues(v: tf.Variable, values: Float32Array): void {
  const next = tf.tensor(values, v.shape, 'float32');
  v.assign(next);
  next.dispose();
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

  /** Zeroed slots for a parameter of `n` values. */
  protected newSlots(n: number): Float32Array[] {
    return Array.from({ length: this.nSlots }, () => new Float32Array(n));
  }
  protected abstract update(name: string, p: Float32Array, g: Float32Array, slots: Float32Array[], lr: number, g2?: Float32Array): void;

  apply(grads: Record<string, tf.Tensor>, lr: number): void {
    this.step++;
    for (const [name, g] of Object.entries(grads)) {
      const v = this.param(name);
      const p = Float32Array.from(valuesView(v));
      this.updateValues(name, p, valuesView(g), lr);
      assignValues(v, p);
    }
    tf.dispose(Object.values(grads));
  }

  applyArrays(grads: Record<string, Float32Array>, lr: number): void {
    this.step++;
    for (const [name, g] of Object.entries(grads)) {
      const v = this.param(name);
      const p = Float32Array.from(valuesView(v));
      this.updateValues(name, p, g, lr);
      assignValues(v, p);
    }
  }

  protected param(name: string): tf.Variable {
    const v = this.params[name];
    if (!v) throw new Error(`Gradient for unknown parameter '${name}'.`);
    return v;
  }

  /**
   * Update one parameter's values `p` in place with its gradient `g`, at the current `step` (which the caller
   * advances). Two-core training splits a step's update by parameter between its threads, and passes the two
   * threads' gradients as `g` and `g2`: their float32 sum is the gradient, summed here rather than in a pass of
   * its own.
   */
  updateValues(name: string, p: Float32Array, g: Float32Array, lr: number, g2?: Float32Array): void {
    if (!this.slots[name]) this.slots[name] = this.newSlots(p.length);
    this.update(name, p, g, this.slots[name], lr, g2);
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
      if (data.length !== this.params[name].size) throw new Error(`Optimizer state '${key}' holds ${data.length} values; parameter '${name}' has ${this.params[name].size}.`);
      (this.slots[name] ??= this.newSlots(data.length))[i].set(data);
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
  /** The WASM kernel the update runs on, for arrays in its memory: this optimiser's own, or two-core training's. */
  private kernel: AdamWKernel | null = null;
  private ownsKernel = false;
  /** Staging for a parameter's values and gradient in the own kernel's memory. */
  private stage: [Float32Array, Float32Array] | null = null;

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

  /** Update on `kernel` the parameters whose values, gradients and slots lie in its memory (two-core training). */
  useKernel(kernel: AdamWKernel): void {
    this.kernel = kernel;
    this.ownsKernel = false;
    this.stage = null;
  }

  /** A kernel with room for every parameter's slots and the staging, holding any slots made before. */
  private ownKernel(): [Float32Array, Float32Array] {
    if (this.ownsKernel && this.stage) return this.stage;
    const sizes = Object.values(this.params).map((v) => v.size);
    const max = Math.max(0, ...sizes);
    const k = AdamWKernel.create(2 * sizes.reduce((a, b) => a + b, 0) + 2 * max, 2 * sizes.length + 2);
    for (const [name, arrays] of Object.entries(this.slots)) {
      this.slots[name] = arrays.map((a) => {
        const b = k.alloc(a.length);
        b.set(a);
        return b;
      });
    }
    this.kernel = k;
    this.ownsKernel = true;
    this.stage = [k.alloc(max), k.alloc(max)];
    return this.stage;
  }

  protected newSlots(n: number): Float32Array[] {
    if (this.kernel && this.ownsKernel) return [this.kernel.alloc(n), this.kernel.alloc(n)];
    return super.newSlots(n);
  }

  /** As JsOptimizer's, with each parameter staged in the kernel's memory (two copies of ~1 ms in all, for ~4 ms saved). */
  apply(grads: Record<string, tf.Tensor>, lr: number): void {
    const [ps, gs] = this.ownKernel();
    this.step++;
    for (const [name, g] of Object.entries(grads)) {
      const v = this.param(name);
      const p = ps.subarray(0, v.size);
      const gv = gs.subarray(0, v.size);
      p.set(valuesView(v));
      gv.set(valuesView(g));
      this.updateValues(name, p, gv, lr);
      assignValues(v, p);
    }
    tf.dispose(Object.values(grads));
  }

  protected update(name: string, p: Float32Array, g: Float32Array, [m, v]: Float32Array[], lr: number, g2?: Float32Array): void {
    const b1 = this.opts.beta1 ?? 0.9;
    const b2 = this.opts.beta2 ?? 0.98;
    const eps = this.opts.eps ?? 1e-6;
    const wd = (this.opts.decayFilter ?? decays)(name) ? this.opts.weightDecay ?? 0.1 : 0;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    if (this.kernel?.holds(p, g, g2, m, v)) {
      this.kernel.run(p, g, g2, m, v, { beta1: b1, beta2: b2, eps, lr, weightDecay: wd, c1, c2 });
      return;
    }
    // The reference (and the path for arrays outside the kernel's memory): the kernel computes the same bits.
    for (let i = 0; i < p.length; i++) {
      const gi = g2 ? Math.fround(g[i] + g2[i]) : g[i];
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      p[i] -= lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + eps) + wd * p[i]);
    }
  }

  dispose(): void {
    super.dispose();
    this.kernel = null;
    this.ownsKernel = false;
    this.stage = null;
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

  protected update(_name: string, p: Float32Array, g: Float32Array, [buf]: Float32Array[], lr: number, g2?: Float32Array): void {
    const mu = this.opts.momentum ?? 0.9;
    const wd = this.opts.weightDecay ?? 0;
    const first = this.step === 1;
    for (let i = 0; i < p.length; i++) {
      const d = (g2 ? Math.fround(g[i] + g2[i]) : g[i]) + wd * p[i];
      // torch initialises the momentum buffer with the first gradient
      buf[i] = mu > 0 ? (first ? d : mu * buf[i] + d) : d;
      p[i] -= lr * buf[i];
    }
  }
}
