/**
 * The training-step benchmark: one full contrastive step (both towers, loss, backward, AdamW update) at a
 * profile's model size, and, in the same run, the backend's plain 2-D 1024^3 matmul as the yardstick.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CLIPConfig, numPatches } from '../model/config';
import { MiniCLIP } from '../model/clip';
import { TokenBatch, trimTokens } from '../model/text';
import { AdamW } from '../train/optim';
import { ContrastiveWorker, STEP_PHASES, StepPhase } from '../train/parallel';
import { ThreadClock, ThreadCpu } from '../util/threads';
import { contrastiveStep } from '../train/step';
import { SGD } from '../train/optim';
import { l2normalize, weightGrad } from '../model/layers';
import { disposePrompts, initDeepPrompts, promptLayers, promptParams } from '../model/prompts';
import { MemoryMeter } from '../defenses/defense';
import { PromptStepState, promptTuningStep } from '../defenses/rvpt';
import { wasmKernelsInstalled } from '../kernels';
import { median } from '../util/stats';

/** Forward multiply-add FLOPs of one transformer block over `t` tokens of width `w` (2 FLOPs per MAC). */
function blockFlops(t: number, w: number): number {
  return 2 * t * 12 * w * w + 2 * 2 * t * t * w;
}

/** Forward FLOPs of one image-caption pair, counting matmuls only (the convention of FLOP-per-step figures). */
export function pairForwardFlops(c: CLIPConfig, promptTokens = 0, textTokens = c.contextLength): number {
  const m = numPatches(c);
  const t = m + 1 + promptTokens;
  const image = 2 * m * c.patch * c.patch * 3 * c.width + c.layers * blockFlops(t, c.width) + 2 * c.width * c.embedDim;
  const text = c.textLayers * blockFlops(textTokens, c.textWidth) + 2 * c.textWidth * c.embedDim;
  return image + text;
}

export interface BenchResult {
  backend: string;
  workers: number;
  /** Untimed steps run first (see benchTrainStep). */
  warmupSteps: number;
  /** Whether our WASM kernels (src/kernels/) replaced some of TF.js's (src/kernels/index.ts; RVPT_WASM_KERNELS=0: no). */
  wasmKernels: boolean;
  config: Record<string, number>;
  msPerStep: { median: number; min: number; max: number };
  stepGflop: number;
  gflops: number;
  /** The plain 1024^3 product, timed once after each step (median). */
  matmulGflops: number;
  /** Median over the steps of (step GFLOP/s) / (the product's GFLOP/s just after it). */
  efficiency: number;
  /**
   * The step's own dense products (forward x @ W, and the weight gradients' x^T @ dy as the step computes them) timed
   * alone, FLOP-weighted: how fast the backend multiplies matrices of this model's shapes.
   */
  denseGflops: number;
  /** denseGflops / matmulGflops: about the best `efficiency` a step made of these products could reach. */
  efficiencyCeiling: number;
  /**
   * Per timed step (mean), from the kernel's per-thread counters: the training threads' time on a CPU and runnable
   * without one, and the other threads' (V8's GC and compiler) time on a CPU. Null where Linux's schedstat is absent.
   */
  threadCpu: ThreadCpu | null;
  /** Two cores only: each side's milliseconds per timed step (mean) in each of STEP_PHASES (train/parallel.ts). */
  phasesMs: { main: Record<StepPhase, number>; worker: Record<StepPhase, number> } | null;
}

/**
 * The dense products of one training step at batch `batch`, each timed alone (median of `reps`): forward
 * [rows, in] @ [in, out] and the weight gradient [rows, in]^T @ [rows, out] (layers.ts's `weightGrad`), for every
 * layer shape of both towers. Returns their FLOP-weighted GFLOP/s.
 */
export function benchDenseShapes(c: CLIPConfig, batch: number, reps = 5): number {
  const imageRows = batch * (numPatches(c) + 1);
  const textRows = batch * c.contextLength;
  const shapes: [number, number, number][] = [];
  for (const [rows, w] of [[imageRows, c.width], [textRows, c.textWidth]]) {
    for (const [i, o] of [[w, 3 * w], [w, w], [w, 4 * w], [4 * w, w]]) shapes.push([rows, i, o]);
  }
  let flop = 0;
  let ms = 0;
  for (const [rows, i, o] of shapes) {
    const x = tf.randomNormal([rows, i], 0, 1, 'float32', 1) as tf.Tensor2D;
    const w = tf.randomNormal([i, o], 0, 1, 'float32', 2);
    const dy = tf.randomNormal([rows, o], 0, 1, 'float32', 3) as tf.Tensor2D;
    for (const f of [() => tf.matMul(x, w), () => weightGrad(x, dy)]) {
      const times: number[] = [];
      for (let r = 0; r < reps + 1; r++) {
        const t0 = performance.now();
        // Braces: a typed array returned from tf.tidy is walked element by element as a tensor container.
        tf.tidy(() => {
          f().dataSync();
        });
        if (r > 0) times.push(performance.now() - t0);
      }
      flop += 2 * rows * i * o;
      ms += median(times);
    }
    tf.dispose([x, w, dy]);
  }
  return flop / (ms * 1e6);
}

/** The plain [n, n] @ [n, n] product, its operands made once: `time()` runs it once and returns milliseconds. */
function yardstick(n = 1024): { gflop: number; time(): number; dispose(): void } {
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 1);
  const b = tf.randomNormal([n, n], 0, 1, 'float32', 2);
  return {
    gflop: (2 * n ** 3) / 1e9,
    time() {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
      return performance.now() - t0;
    },
    dispose: () => tf.dispose([a, b]),
  };
}

export function benchMatmul(n = 1024, reps = 5): number {
  const y = yardstick(n);
  y.time(); // warm-up
  const times = Array.from({ length: reps }, () => y.time());
  y.dispose();
  return y.gflop / (median(times) / 1000);
}

/** A random but well-formed batch (the step's cost does not depend on the pixel or token values). */
export function syntheticBatch(c: CLIPConfig, batch: number, seed = 0): { images: tf.Tensor4D; tokens: TokenBatch } {
  const images = tf.randomUniform([batch, c.imageSize, c.imageSize, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
  const ids = new Int32Array(batch * c.contextLength);
  const eot = new Int32Array(batch);
  for (let i = 0; i < batch; i++) {
    const len = 4 + ((i * 7 + seed) % Math.max(1, c.contextLength - 5));
    ids[i * c.contextLength] = 1;
    for (let j = 1; j < len; j++) ids[i * c.contextLength + j] = 4 + ((i * 31 + j * 17 + seed) % (c.vocabSize - 4));
    ids[i * c.contextLength + len] = 2;
    eot[i] = len;
  }
  return { images, tokens: { ids, eot, batch, contextLength: c.contextLength } };
}

/**
 * `steps` timed training steps after `warmup` untimed ones. The first step pays for kernel set-up and allocations;
 * the next hundred or so for V8 compiling TF.js's JavaScript with TurboFan, on background threads (measured at small:
 * 52 ms of compiling per step over steps 1-20, 17 over 41-60, 9 over 101-120). With one worker that runs on the idle
 * second core; with two it takes CPU from both training threads, so a short warm-up times the compiler, not the step.
 */
export async function benchTrainStep(c: CLIPConfig, batch: number, steps: number, backend: string, log?: (s: string) => void, workers = 1, warmup = 1): Promise<BenchResult> {
  if (!Number.isInteger(warmup) || warmup < 1) throw new Error(`bench: warmup must be a whole number of steps of at least 1 (the first pays for kernel set-up), got ${warmup}.`);
  const model = MiniCLIP.init(c, 0);
  const opt = new AdamW(model.params);
  const { images, tokens } = syntheticBatch(c, batch);
  const helper = workers === 2 ? await ContrastiveWorker.start(model, batch, backend, opt) : null;
  const times: number[] = [];
  // The yardstick is timed between the steps, one product after each, so that a drift of the machine's speed (10-30%
  // within minutes on a shared VM) hits both alike: efficiency is the median of the per-step ratios.
  const yard = yardstick();
  yard.time(); // warm-up
  const yardMs: number[] = [];
  // The threads' CPU is summed over the timed steps only (not the yardstick, which runs on the main thread alone).
  const cpu = new ThreadClock();
  let phases: NonNullable<BenchResult['phasesMs']> | null = null;
  let threadCpu: ThreadCpu | null = null;
  try {
    for (let i = 0; i < warmup + steps; i++) {
      const timed = i >= warmup;
      if (i === warmup) helper?.resetPhases();
      if (timed) cpu.begin();
      const t0 = performance.now();
      contrastiveStep(model, model.params, opt, images, tokens, 1e-4, helper, i).dispose();
      const ms = performance.now() - t0;
      if (timed) {
        cpu.end();
        times.push(ms);
        yardMs.push(yard.time());
      }
      if (timed || i % 10 === 0 || i === warmup - 1) log?.(timed ? `step ${i - warmup + 1}/${steps}: ${ms.toFixed(0)} ms` : `warm-up step ${i + 1}/${warmup}: ${ms.toFixed(0)} ms (not counted)`);
    }
    threadCpu = cpu.perWindow(process.pid, helper?.threadId ?? 0);
    if (helper && steps > 0) {
      const totals = helper.phaseTotals();
      const perStep = (r: Record<StepPhase, number>) => Object.fromEntries(STEP_PHASES.map((p) => [p, r[p] / steps])) as Record<StepPhase, number>;
      phases = { main: perStep(totals.main), worker: perStep(totals.worker) };
    }
  } finally {
    await helper?.stop(); // a waiting worker would keep the process alive
  }
  images.dispose();
  opt.dispose();
  model.dispose();
  yard.dispose();
  const matmulGflops = yard.gflop / (median(yardMs) / 1000);
  const denseGflops = benchDenseShapes(c, batch);
  // Count the text tokens the step really processes (the batch is cut to its longest caption).
  const stepGflop = (3 * batch * pairForwardFlops(c, 0, trimTokens(tokens).contextLength) + 3 * 2 * batch * batch * c.embedDim) / 1e9;
  const med = median(times);
  const gflops = stepGflop / (med / 1000);
  const efficiency = median(times.map((ms, i) => stepGflop / ms / (yard.gflop / yardMs[i])));
  return {
    backend,
    workers,
    warmupSteps: warmup,
    wasmKernels: wasmKernelsInstalled(),
    config: {
      batch,
      imageSize: c.imageSize,
      patch: c.patch,
      width: c.width,
      layers: c.layers,
      heads: c.heads,
      textWidth: c.textWidth,
      textLayers: c.textLayers,
      textHeads: c.textHeads,
      contextLength: c.contextLength,
      vocabSize: c.vocabSize,
      embedDim: c.embedDim,
    },
    msPerStep: { median: med, min: Math.min(...times), max: Math.max(...times) },
    stepGflop,
    gflops,
    matmulGflops,
    efficiency,
    denseGflops,
    efficiencyCeiling: denseGflops / matmulGflops,
    threadCpu,
    phasesMs: phases,
  };
}

export interface WorkersComparison {
  /** One round: a one-worker run, then a two-worker run, each its own benchTrainStep. */
  rounds: { one: BenchResult; two: BenchResult; twoOverOneMs: number; twoOverOneNormalised: number }[];
  /** Medians over the rounds: one core's efficiency, and how much faster two cores are than one. */
  median: { oneCoreEfficiency: number; twoOverOneMs: number; twoOverOneNormalised: number };
  /** Where the two-core step goes (medians over the rounds, ms per step); null without the per-thread counters. */
  account: StepAccount | null;
}

/**
 * A two-core step's time by kind, per side: its own work (forward, backward, AdamW on its share), the copies into
 * and out of shared memory, and the waits for the other side; the training threads' time runnable without a CPU,
 * and the other threads' time on one, at one core and at two.
 */
export interface StepAccount {
  computeMs: { main: number; worker: number };
  copyMs: { main: number; worker: number };
  waitMs: { main: number; worker: number };
  runQueueMs: { one: number; two: number };
  otherThreadsMs: { one: number; two: number };
}

const COMPUTE: StepPhase[] = ['forward', 'backward', 'update'];
const COPY: StepPhase[] = ['writeGradients', 'loadOther'];
const WAIT: StepPhase[] = ['waitEmbeddings', 'waitGradients', 'waitUpdate'];

/** Medians over the rounds of the two-core runs' phases and of both runs' thread counters. */
export function stepAccount(rounds: WorkersComparison['rounds']): StepAccount | null {
  const two = rounds.map((r) => r.two.phasesMs);
  const cpu = rounds.map((r) => [r.one.threadCpu, r.two.threadCpu] as const);
  if (!rounds.length || two.some((p) => !p) || cpu.some(([a, b]) => !a || !b)) return null;
  const phases = two as NonNullable<BenchResult['phasesMs']>[];
  const counters = cpu as unknown as [ThreadCpu, ThreadCpu][];
  const sum = (r: Record<StepPhase, number>, ps: StepPhase[]) => ps.reduce((a, p) => a + r[p], 0);
  const bySide = (ps: StepPhase[]) => ({ main: median(phases.map((p) => sum(p.main, ps))), worker: median(phases.map((p) => sum(p.worker, ps))) });
  return {
    computeMs: bySide(COMPUTE),
    copyMs: bySide(COPY),
    waitMs: bySide(WAIT),
    runQueueMs: { one: median(counters.map(([a]) => a.mainWaitMs)), two: median(counters.map(([, b]) => b.mainWaitMs + b.workerWaitMs)) },
    otherThreadsMs: { one: median(counters.map(([a]) => a.otherMs)), two: median(counters.map(([, b]) => b.otherMs)) },
  };
}

/**
 * One core against two, in alternating rounds. On a shared VM the machine's speed drifts by 10-50% within minutes,
 * and a one-thread step drifts more than a two-thread one, so runs far apart in time do not compare: each round pairs
 * a one-worker run with the two-worker run right after it. Two ratios per round: of the step times, and of the
 * efficiencies (each run normalised by its own yardstick). `run` makes one benchTrainStep run; the CLI runs each in a
 * fresh process, as separate `rvpt bench` runs are, so that no run inherits another's heap, compiled code or worker.
 */
export async function compareWorkers(rounds: number, run: (workers: 1 | 2) => Promise<BenchResult>, log?: (s: string) => void): Promise<WorkersComparison> {
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`compareWorkers: rounds must be a positive integer, got ${rounds}.`);
  const out: WorkersComparison['rounds'] = [];
  for (let r = 0; r < rounds; r++) {
    const one = await run(1);
    const two = await run(2);
    const round = { one, two, twoOverOneMs: one.msPerStep.median / two.msPerStep.median, twoOverOneNormalised: two.efficiency / one.efficiency };
    out.push(round);
    log?.(`round ${r + 1}/${rounds}: one core ${one.msPerStep.median.toFixed(0)} ms (efficiency ${one.efficiency.toFixed(3)}), two ${two.msPerStep.median.toFixed(0)} ms: ${round.twoOverOneMs.toFixed(2)}x (${round.twoOverOneNormalised.toFixed(2)}x normalised)`);
  }
  return {
    rounds: out,
    median: {
      oneCoreEfficiency: median(out.map((r) => r.one.efficiency)),
      twoOverOneMs: median(out.map((r) => r.twoOverOneMs)),
      twoOverOneNormalised: median(out.map((r) => r.twoOverOneNormalised)),
    },
    account: stepAccount(out),
  };
}

export interface ClipScaleBench {
  backend: string;
  config: CLIPConfig;
  params: number;
  batch: number;
  promptLength: number;
  depth: number;
  forward: { msPerBatch: number; imagesPerSecond: number };
  rvptStep: { msPerBatch: number; imagesPerSecond: number };
  tensorsLeaked: number;
}

/**
 * A random model of the given size (ViT-B/32 for the `paper` profile): image-encoder forward passes and RVPT
 * training steps (b prompt tokens from block D on, FR + CE), timed after one warm-up each; medians.
 */
export function benchClipScale(c: CLIPConfig, batch: number, steps: number, backend: string, prompt = { length: 50, depth: 3 }, log?: (s: string) => void): ClipScaleBench {
  const before = tf.memory().numTensors;
  const model = MiniCLIP.init(c, 0);
  const images = tf.randomUniform([batch, c.imageSize, c.imageSize, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const fwd: number[] = [];
  for (let i = 0; i < steps + 1; i++) {
    const t0 = performance.now();
    tf.tidy(() => {
      model.encodeImage(images).embedding.dataSync();
    });
    if (i > 0) fwd.push(performance.now() - t0);
    log?.(`forward ${i}/${steps}: ${(performance.now() - t0).toFixed(0)} ms${i === 0 ? ' (warm-up)' : ''}`);
  }
  const layers = promptLayers(c.layers, { length: prompt.length, depth: prompt.depth });
  const prompts = initDeepPrompts(c.layers, c.width, { length: prompt.length, depth: prompt.depth }, 0);
  const params = promptParams(prompts);
  const opt = new SGD(params, { momentum: 0.9, weightDecay: 5e-4 });
  const classes = 1000;
  const text = tf.tidy(() => l2normalize(tf.randomNormal([classes, c.embedDim], 0, 1, 'float32', 4)));
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => (i * 37) % classes), 'int32'), classes)) as tf.Tensor2D;
  const scale = tf.scalar(100);
  const state: PromptStepState = { model, prompts, params, opt, layers, frLayers: layers, text, scale, mem: new MemoryMeter() };
  const step: number[] = [];
  for (let i = 0; i < steps + 1; i++) {
    const t0 = performance.now();
    promptTuningStep(state, { alpha: 2, margin: -1 }, images, labels, 0.002);
    if (i > 0) step.push(performance.now() - t0);
    log?.(`RVPT step ${i}/${steps}: ${(performance.now() - t0).toFixed(0)} ms${i === 0 ? ' (warm-up)' : ''}`);
  }
  opt.dispose();
  disposePrompts(prompts);
  tf.dispose([images, text, labels, scale]);
  const params0 = model.numParams();
  model.dispose();
  const f = median(fwd);
  const s = median(step);
  return {
    backend,
    config: c,
    params: params0,
    batch,
    promptLength: prompt.length,
    depth: prompt.depth,
    forward: { msPerBatch: f, imagesPerSecond: (1000 * batch) / f },
    rvptStep: { msPerBatch: s, imagesPerSecond: (1000 * batch) / s },
    tensorsLeaked: tf.memory().numTensors - before,
  };
}
