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

export interface Optimizer {
  /** Apply one update with the given gradients (disposes them). */
  apply(grads: Record<string, tf.Tensor>, lr: number): void;
  /** State tensors, for checkpointing. */
  state(): Record<string, tf.Tensor>;
  loadState(state: Record<string, tf.Tensor>): void;
  step: number;
  dispose(): void;
}

/** No weight decay on gains, biases, embeddings of scale, temperature (CleanCLIP's exclusion list). */
export function decays(name: string): boolean {
  return !/(\.bias$|ln_|logit_scale|class_embedding|positional_embedding)/.test(name);
}

export class AdamW implements Optimizer {
  step = 0;
  private m: Record<string, tf.Variable> = {};
  private v: Record<string, tf.Variable> = {};

  constructor(
    private readonly params: Record<string, tf.Variable>,
    private readonly opts: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number; decayFilter?: (n: string) => boolean } = {},
  ) {}

  apply(grads: Record<string, tf.Tensor>, lr: number): void {
    const b1 = this.opts.beta1 ?? 0.9;
    const b2 = this.opts.beta2 ?? 0.98;
    const eps = this.opts.eps ?? 1e-6;
    const wd = this.opts.weightDecay ?? 0.1;
    const filter = this.opts.decayFilter ?? decays;
    this.step++;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    tf.tidy(() => {
      for (const [name, g] of Object.entries(grads)) {
        const p = this.params[name];
        if (!this.m[name]) {
          this.m[name] = tf.variable(tf.zerosLike(p), false);
          this.v[name] = tf.variable(tf.zerosLike(p), false);
        }
        const m = tf.add(tf.mul(this.m[name], b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(this.v[name], b2), tf.mul(tf.square(g), 1 - b2));
        this.m[name].assign(m);
        this.v[name].assign(v);
        let update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), eps));
        if (wd > 0 && filter(name)) update = tf.add(update, tf.mul(p, wd));
        p.assign(tf.sub(p, tf.mul(update, lr)));
      }
    });
    for (const g of Object.values(grads)) g.dispose();
  }

  state(): Record<string, tf.Tensor> {
    const s: Record<string, tf.Tensor> = {};
    for (const k of Object.keys(this.m)) {
      s[`m.${k}`] = this.m[k];
      s[`v.${k}`] = this.v[k];
    }
    return s;
  }

  loadState(state: Record<string, tf.Tensor>): void {
    for (const [k, t] of Object.entries(state)) {
      const [kind, ...rest] = k.split('.');
      const name = rest.join('.');
      const target = kind === 'm' ? this.m : this.v;
      target[name]?.dispose();
      target[name] = tf.variable(t.clone(), false);
    }
  }

  dispose(): void {
    for (const t of [...Object.values(this.m), ...Object.values(this.v)]) t.dispose();
    this.m = {};
    this.v = {};
  }
}

/** SGD with momentum and (coupled, torch-style) weight decay: CoOp/Dassl's optimiser for prompt tuning. */
export class SGD implements Optimizer {
  step = 0;
  private buf: Record<string, tf.Variable> = {};

  constructor(
    private readonly params: Record<string, tf.Variable>,
    private readonly opts: { momentum?: number; weightDecay?: number } = {},
  ) {}

  apply(grads: Record<string, tf.Tensor>, lr: number): void {
    const mu = this.opts.momentum ?? 0.9;
    const wd = this.opts.weightDecay ?? 0;
    this.step++;
    tf.tidy(() => {
      for (const [name, g0] of Object.entries(grads)) {
        const p = this.params[name];
        const g = wd > 0 ? tf.add(g0, tf.mul(p, wd)) : g0;
        let d: tf.Tensor = g;
        if (mu > 0) {
          if (!this.buf[name]) this.buf[name] = tf.variable(g.clone(), false);
          else this.buf[name].assign(tf.add(tf.mul(this.buf[name], mu), g));
          d = this.buf[name];
        }
        p.assign(tf.sub(p, tf.mul(d, lr)));
      }
    });
    for (const g of Object.values(grads)) g.dispose();
  }

  state(): Record<string, tf.Tensor> {
    return Object.fromEntries(Object.entries(this.buf).map(([k, v]) => [`buf.${k}`, v]));
  }

  loadState(state: Record<string, tf.Tensor>): void {
    for (const [k, t] of Object.entries(state)) {
      const name = k.slice(4);
      this.buf[name]?.dispose();
      this.buf[name] = tf.variable(t.clone(), false);
    }
  }

  dispose(): void {
    for (const t of Object.values(this.buf)) t.dispose();
    this.buf = {};
  }
}
