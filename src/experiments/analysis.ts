/**
 * The paper's analysis figures at our scale, each computed from cached models and written to the
 * profile's results folder (figures/ at `small`) as HTML, PNG (Chromium) and a JSON sidecar:
 *   fig4-pr         Perturbation Resistivity across layers: backdoored CLIP, + VPT, + RVPT, a supervised ViT
 *   fig6-attention  last-layer class-token attention, clean and triggered, backdoored vs RVPT
 *   fig7-tsne/umap  image embeddings, clean (dots) and triggered (stars), backdoored / VPT / RVPT
 *   ablations       ASR and CA against shots, alpha, b, depth (from the output and from the input) and margin
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { TSNE } from '@keckelt/tsne';
import { UMAP } from 'umap-js';
import { MiniCLIP } from '../model/clip';
import { DeepPrompts, disposePrompts } from '../model/prompts';
import { ownedVariable } from '../model/params';
import { l2normalize } from '../model/layers';
import { ImageDataset, imageRows, numImages, pixelsPerImage } from '../data/dataset';
import { loadShots } from '../data/load';
import { sample } from '../data/splits';
import { getDefense } from '../defenses/registry';
import { RVPT_DEFAULTS } from '../defenses/rvpt';
import { imageBatch } from '../metrics/zeroshot';
import { TEST_TRIGGER_SEED } from '../metrics/backdoor';
import { Perturbation, perturbationResistivity, promptDisplacement, standardPerturbations, triggerPerturbation } from '../metrics/pr';
import { readSafetensors, writeSafetensors } from '../checkpoint/safetensors';
import { adoptLegacy, cacheDir, cacheKey, writeJsonAtomic } from '../util/fsutil';
import { makeRng } from '../util/rng';
import { Progress } from '../util/progress';
import { Figure } from '../viz/plotly';
import { saveFigure } from '../viz/render';
import { BackdoorResult, ensureBackdoored, targetIndex, testSet } from './backdoorRun';
import { defenseConfig, runCell } from './defenseRun';
import { ensureSupervisedViT } from './supervised';
import { externalWeights } from './externalWeights';
import { availableAttacks } from './paperTables';
import { runCellsInParallel } from './cellPool';
import { Profile } from './profiles';
import { resultsDir } from './tables';

/**
 * 2: the fused LayerNorm/QuickGELU kernels (src/kernels/fused.c) change training at float rounding.
 * 3: deep prompts are keys and values only (model/transformer.ts): the same function, other float rounding.
 */
export const ANALYSIS_CODE_VERSION = 3;
type Log = (s: string) => void;
const quietLog: Log = (s) => process.env.RVPT_QUIET || process.stderr.write(`[rvpt] ${s}\n`);

/** Test images per analysis sample (PR, attention, embeddings). */
export function analysisSample(profile: Profile): number {
  return profile.analysis?.sample ?? (profile.name === 'tiny' ? 100 : 1000);
}

// --------------------------------------------------------------------------------------------------------------
// Prompts of a prompt-tuning defense, cached (the tables keep only metrics).
// --------------------------------------------------------------------------------------------------------------

/** The deep prompts VPT or RVPT learns on a backdoored model (trained once, then read from .cache/artifacts). */
export async function ensurePrompts(profile: Profile, bd: BackdoorResult, method: 'VPT' | 'RVPT', dataset: string, log: Log = quietLog): Promise<DeepPrompts> {
  const config = defenseConfig(profile, method);
  const { key, legacy } = cacheKey({ v: ANALYSIS_CODE_VERSION, backdoor: bd.checkpoint, method, config, shots: profile.shots, dataset }, 12);
  const name = (k: string) => cacheDir('artifacts', `prompts-${profile.name}-${bd.trigger.name}-${method}-${k}.safetensors`);
  const file = adoptLegacy(name(key), name(legacy));
  if (fs.existsSync(file)) {
    try {
      const st = readSafetensors(file);
      const tokens = new Map<number, tf.Variable>();
      for (const [k, t] of Object.entries(st.tensors)) tokens.set(Number(k.split('.').pop()), ownedVariable(tf.tensor(t.data as Float32Array, t.shape), true));
      return { tokens, length: Number(st.metadata.length) };
    } catch (e) {
      log(`cached prompts ${file} are unreadable (${(e as Error).message}); training again`);
    }
  }
  const shots = await loadShots(dataset, profile.shots, profile.backdoor.seed, log);
  const d = await getDefense(method).run({ profile, model: bd.model, tokenizer: bd.tokenizer, shots, cleanCorpus: async () => { throw new Error('unused'); }, seed: profile.backdoor.seed, log }, config);
  const p = d.prompts!;
  const tensors: Parameters<typeof writeSafetensors>[1] = {};
  for (const [l, v] of p.tokens) tensors[`prompt.visual.${l}`] = { dtype: 'F32', shape: v.shape, data: Float32Array.from(v.dataSync()) };
  writeSafetensors(file, tensors, { length: String(p.length), method, backdoor: bd.checkpoint, config: JSON.stringify(config) });
  // A copy that outlives the defense object.
  const tokens = new Map<number, tf.Variable>();
  for (const [l, v] of p.tokens) tokens.set(l, ownedVariable(tf.clone(v), true));
  d.dispose();
  return { tokens, length: p.length };
}

/** A test sample of a dataset (seeded) for the analyses. */
async function analysisTest(profile: Profile, dataset: string, n: number): Promise<ImageDataset> {
  const t = await testSet(profile, dataset);
  return numImages(t) > n ? sample(t, n, 'analysis') : t;
}

/** A cached analysis result (JSON under .cache/results/analysis); `model` is disposed when the cache answers. */
async function cached<T>(name: string, key: unknown, model: MiniCLIP, compute: () => Promise<T>): Promise<T> {
  const k = cacheKey(key, 16);
  const file = adoptLegacy(cacheDir('results', 'analysis', `${name}-${k.key}.json`), cacheDir('results', 'analysis', `${name}-${k.legacy}.json`));
  if (fs.existsSync(file)) {
    try {
      const r = JSON.parse(fs.readFileSync(file, 'utf8')) as T;
      model.dispose();
      return r;
    } catch {
      // unreadable (e.g. cut short): recomputed below
    }
  }
  const r = await compute();
  writeJsonAtomic(file, r);
  return r;
}

// --------------------------------------------------------------------------------------------------------------
// Fig. 4: Perturbation Resistivity across layers.
// --------------------------------------------------------------------------------------------------------------

export interface PRResult {
  attack: string;
  dataset: string;
  layers: number;
  promptedLayers: number[];
  n: number;
  /** perturbation -> encoder -> PR per block (index 0 = output of block 1). */
  pr: Record<string, Record<string, number[]>>;
  /** Null at paper scale, where no supervised ViT is trained (the PR figure then compares the CLIP encoders alone). */
  supervisedAccuracy: number | null;
}

export async function computePR(profile: Profile, attack: string, dataset = profile.datasets.main, log: Log = quietLog): Promise<PRResult> {
  const n = analysisSample(profile);
  const bd = await ensureBackdoored(profile, attack, { dataset, log });
  const key = { v: ANALYSIS_CODE_VERSION, backdoor: bd.checkpoint, attack, dataset, n, rvpt: defenseConfig(profile, 'RVPT'), vpt: defenseConfig(profile, 'VPT'), shots: profile.shots, supervised: profile.supervised ?? null };
  return cached(`pr-${profile.name}-${attack}`, key, bd.model, async () => {
    // At paper scale the reference would be an ImageNet-supervised ViT-B/32, which is not trained here.
    const sup = externalWeights(profile) ? null : await ensureSupervisedViT(profile, log);
    const vpt = await ensurePrompts(profile, bd, 'VPT', dataset, log);
    const rvpt = await ensurePrompts(profile, bd, 'RVPT', dataset, log);
    try {
      const test = await analysisTest(profile, dataset, n);
      const perts: Record<string, Perturbation> = { ...standardPerturbations(), [`trigger (${attack})`]: triggerPerturbation(bd.trigger) };
      const encoders: Record<string, { model: MiniCLIP; prompts?: DeepPrompts }> = {
        'backdoored CLIP': { model: bd.model },
        '+ VPT': { model: bd.model, prompts: vpt },
        '+ RVPT': { model: bd.model, prompts: rvpt },
        ...(sup ? { 'supervised ViT': { model: sup.model } } : {}),
      };
      const pr: PRResult['pr'] = {};
      const bar = new Progress(`PR (${attack})`, Object.keys(perts).length * Object.keys(encoders).length);
      for (const [pn, p] of Object.entries(perts)) {
        pr[pn] = {};
        for (const [en, e] of Object.entries(encoders)) {
          pr[pn][en] = perturbationResistivity(e.model, test, p, { prompts: e.prompts });
          bar.tick(1, `${pn}: ${en}`);
        }
      }
      bar.done();
      return { attack, dataset, layers: profile.model.layers, promptedLayers: [...rvpt.tokens.keys()], n: numImages(test), pr, supervisedAccuracy: sup?.accuracy ?? null };
    } finally {
      disposePrompts(vpt);
      disposePrompts(rvpt);
      sup?.model.dispose();
      bd.model.dispose();
    }
  });
}

/** How far VPT's and RVPT's prompts move the class token (metrics/pr.ts promptDisplacement), clean and triggered. */
export interface DisplacementResult {
  attack: string;
  dataset: string;
  n: number;
  promptedLayers: number[];
  /** method ('VPT', 'RVPT') -> images ('clean', 'triggered') -> per block: moved and spread. */
  methods: Record<string, Record<string, { moved: number[]; spread: number[] }>>;
}

/**
 * Why RVPT removes one backdoor and not another: whether its prompts move the *triggered* images' class tokens as far
 * from the frozen encoder's as the clean ones (it is tuned on clean shots only). Cached like the PR figure; the
 * prompts are the same cached ones.
 */
export async function computeDisplacement(profile: Profile, attack: string, dataset = profile.datasets.main, log: Log = quietLog): Promise<DisplacementResult> {
  const n = analysisSample(profile);
  const bd = await ensureBackdoored(profile, attack, { dataset, log });
  const key = { v: ANALYSIS_CODE_VERSION, backdoor: bd.checkpoint, attack, dataset, n, rvpt: defenseConfig(profile, 'RVPT'), vpt: defenseConfig(profile, 'VPT'), shots: profile.shots };
  return cached(`displacement-${profile.name}-${attack}`, key, bd.model, async () => {
    const test = await analysisTest(profile, dataset, n);
    const methods: DisplacementResult['methods'] = {};
    let promptedLayers: number[] = [];
    try {
      for (const method of ['VPT', 'RVPT'] as const) {
        const prompts = await ensurePrompts(profile, bd, method, dataset, log);
        try {
          promptedLayers = [...prompts.tokens.keys()].sort((a, b) => a - b);
          methods[method] = {
            clean: promptDisplacement(bd.model, test, prompts),
            triggered: promptDisplacement(bd.model, test, prompts, { transform: triggerPerturbation(bd.trigger) }),
          };
        } finally {
          disposePrompts(prompts);
        }
      }
    } finally {
      bd.model.dispose();
    }
    return { attack, dataset, n: numImages(test), promptedLayers, methods };
  });
}

/** One row per attack, method and prompted block: how far the prompts moved clean and triggered class tokens. */
export function displacementRows(results: DisplacementResult[]): (string | number)[][] {
  return results.flatMap((r) =>
    Object.entries(r.methods).flatMap(([method, m]) =>
      r.promptedLayers.map((l) => [r.attack, method, String(l + 1), m.clean.moved[l], m.clean.spread[l], m.triggered.moved[l], m.triggered.spread[l]]),
    ),
  );
}

const COLORS: Record<string, string> = { 'backdoored CLIP': '#d62728', '+ VPT': '#ff7f0e', '+ RVPT': '#2ca02c', 'supervised ViT': '#1f77b4' };

/** One panel per perturbation, PR against block, a line per encoder; prompted blocks shaded. */
export function prFigure(results: PRResult[]): Figure {
  const panels = results.flatMap((r, ri) => Object.keys(r.pr).filter((p) => ri === 0 || p.startsWith('trigger')).map((p) => ({ r, p })));
  const cols = 3;
  const rows = Math.ceil(panels.length / cols);
  const data: Record<string, unknown>[] = [];
  const annotations: Record<string, unknown>[] = [];
  const shapes: Record<string, unknown>[] = [];
  panels.forEach(({ r, p }, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    for (const [enc, ys] of Object.entries(r.pr[p])) {
      data.push({ type: 'scatter', mode: 'lines+markers', name: enc, legendgroup: enc, showlegend: i === 0, x: ys.map((_, l) => l + 1), y: ys, xaxis: `x${ax}`, yaxis: `y${ax}`, line: { color: COLORS[enc] } });
    }
    annotations.push({ text: `<b>${p}</b>`, xref: `x${ax} domain`, yref: `y${ax} domain`, x: 0.5, y: 1.12, showarrow: false, font: { size: 12 } });
    const lo = Math.min(...r.promptedLayers) + 0.5;
    shapes.push({ type: 'rect', xref: `x${ax}`, yref: `y${ax} domain`, x0: lo, x1: r.layers + 0.5, y0: 0, y1: 1, fillcolor: 'rgba(44,160,44,0.07)', line: { width: 0 } });
  });
  const layout: Record<string, unknown> = {
    title: { text: 'Perturbation Resistivity across layers (cosine of class tokens, clean vs perturbed; shaded: prompted blocks)' },
    grid: { rows, columns: cols, pattern: 'independent', ygap: 0.35 },
    margin: { t: 95 },
    annotations,
    shapes,
    legend: { orientation: 'h', y: -0.12 },
  };
  panels.forEach((_, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    layout[`xaxis${ax}`] = { title: { text: 'block' }, dtick: 1 };
    layout[`yaxis${ax}`] = { title: { text: 'PR' } };
  });
  return { data, layout };
}

// --------------------------------------------------------------------------------------------------------------
// Fig. 6: attention maps.
// --------------------------------------------------------------------------------------------------------------

/** Last-block attention of the class token over the patch tokens (prompt keys dropped), head-averaged: [n, g*g]. */
export function clsAttention(model: MiniCLIP, images: tf.Tensor4D, prompts?: DeepPrompts): Float32Array[] {
  const m = (model.config.imageSize / model.config.patch) ** 2;
  const att = tf.tidy(() => {
    const w = model.encodeImage(images, { prompts, collectAttention: true }).attention!; // [B, H, T, T]
    const row = tf.slice(w, [0, 0, 0, 1], [-1, -1, 1, m]); // CLS query, patch keys only
    const mean = tf.mean(tf.reshape(row, [w.shape[0], w.shape[1], m]), 1);
    return tf.div(mean, tf.sum(mean, 1, true)); // re-normalised over the patches
  });
  const a = att.arraySync() as number[][];
  att.dispose();
  return a.map((r) => Float32Array.from(r));
}

/** A perceptual colour map (viridis, 5 stops, linear between them): sharp has no colour maps. */
function viridis(t: number): [number, number, number] {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]))) as [number, number, number];
}

/** The image upscaled, with the attention map (bicubic-upsampled by sharp, colour-mapped) laid over it. */
export async function attentionOverlay(image: Float32Array, size: number, att: Float32Array, out = 96): Promise<Buffer> {
  const g = Math.round(Math.sqrt(att.length));
  const max = Math.max(...att);
  const min = Math.min(...att);
  const heat = await sharp(Buffer.from(Array.from(att, (v) => Math.round((255 * (v - min)) / (max - min || 1)))), { raw: { width: g, height: g, channels: 1 } })
    .resize(out, out, { kernel: 'cubic' })
    .extractChannel(0) // sharp writes grey input back as sRGB otherwise
    .raw()
    .toBuffer();
  // Opacity follows attention too, so the image shows through where the class token does not look.
  const rgba = Buffer.alloc(out * out * 4);
  for (let i = 0; i < out * out; i++) {
    const t = heat[i] / 255;
    const [r, gg, b] = viridis(t);
    rgba.set([r, gg, b, Math.round(30 + 170 * t)], i * 4);
  }
  const base = await sharp(Buffer.from(Array.from(image, (v) => Math.round(255 * Math.max(0, Math.min(1, v))))), { raw: { width: size, height: size, channels: 3 } })
    .resize(out, out, { kernel: 'nearest' })
    .png()
    .toBuffer();
  return sharp(base).composite([{ input: rgba, raw: { width: out, height: out, channels: 4 } }]).png().toBuffer();
}

export interface AttentionResult {
  attacks: string[];
  /** PNG (data URI) of the grid and its labels. */
  png: string;
  rows: string[];
  cols: string[];
  /**
   * Mean share of the class token's attention on the patches the trigger changes (patch triggers only), on the clean
   * and on the triggered image, per attack and model: the rise is what the trigger draws.
   */
  triggerShare: Record<string, Record<string, { clean: number; triggered: number } | null>>;
}

/** The grid: for each attack, rows clean / triggered x (backdoored, RVPT); columns: test images. */
export async function computeAttention(profile: Profile, attacks: string[], dataset = profile.datasets.main, perAttack = 6, log: Log = quietLog): Promise<AttentionResult> {
  const tiles: Buffer[] = [];
  const rows: string[] = [];
  const triggerShare: AttentionResult['triggerShare'] = {};
  const out = 96;
  for (const attack of attacks) {
    const bd = await ensureBackdoored(profile, attack, { dataset, log });
    const rvpt = await ensurePrompts(profile, bd, 'RVPT', dataset, log);
    try {
      const test = await analysisTest(profile, dataset, analysisSample(profile));
      const target = targetIndex(dataset);
      // The first images whose class is not the target, so the trigger has work to do.
      const idx: number[] = [];
      for (let i = 0; i < numImages(test) && idx.length < perAttack; i++) if (test.labels[i] !== target) idx.push(i);
      const per = pixelsPerImage(test);
      const clean = tf.tidy(() => tf.concat(idx.map((i) => imageBatch(test, i, i + 1))) as tf.Tensor4D);
      const trig = bd.trigger.apply(clean, { seed: TEST_TRIGGER_SEED, offset: 0 });
      const trigPixels = trig.dataSync() as Float32Array;
      const changed = patchesChanged(clean, trig, profile.model.patch);
      triggerShare[attack] = {};
      for (const [name, prompts] of [['backdoored', undefined], ['RVPT', rvpt]] as const) {
        for (const [kind, x, pixels] of [['clean', clean, null], ['triggered', trig, trigPixels]] as const) {
          const maps = clsAttention(bd.model, x, prompts);
          rows.push(`${attack}: ${name}, ${kind}`);
          for (let k = 0; k < idx.length; k++) {
            const img = pixels ? pixels.subarray(k * per, (k + 1) * per) : imageRows(test, idx[k], idx[k] + 1);
            tiles.push(await attentionOverlay(Float32Array.from(img), test.size, maps[k], out));
          }
          const share = changed.every((c) => c.length) ? mean(maps.map((m, k) => changed[k].reduce((s, j) => s + m[j], 0))) : null;
          if (share === null) triggerShare[attack][name] = null;
          else triggerShare[attack][name] = { ...(triggerShare[attack][name] ?? { clean: 0, triggered: 0 }), [kind]: share };
        }
      }
      tf.dispose([clean, trig]);
    } finally {
      disposePrompts(rvpt);
      bd.model.dispose();
    }
  }
  const cols = perAttack;
  const gap = 4;
  const W = cols * (out + gap);
  const H = rows.length * (out + gap);
  const grid = await sharp({ create: { width: W, height: H, channels: 3, background: '#ffffff' } })
    .composite(tiles.map((t, i) => ({ input: t, left: (i % cols) * (out + gap), top: Math.floor(i / cols) * (out + gap) })))
    .png()
    .toBuffer();
  return { attacks, png: `data:image/png;base64,${grid.toString('base64')}`, rows, cols: Array.from({ length: cols }, (_, i) => `image ${i + 1}`), triggerShare };
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Per image, the patch indices the trigger changed (a patch trigger touches few; a global one touches all). */
function patchesChanged(clean: tf.Tensor4D, trig: tf.Tensor4D, patch: number): number[][] {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(trig, clean)), 3));
  const [n, s] = clean.shape;
  const g = s / patch;
  const v = d.dataSync();
  d.dispose();
  return Array.from({ length: n }, (_, k) => {
    const hit: number[] = [];
    for (let py = 0; py < g; py++) for (let px = 0; px < g; px++) {
      let any = false;
      for (let y = 0; y < patch && !any; y++) for (let x = 0; x < patch && !any; x++) any = v[(k * s + py * patch + y) * s + px * patch + x] > 1e-3;
      if (any) hit.push(py * g + px);
    }
    // A trigger that changes every patch (Blended, WaNet, ISSBA) has no "trigger region" to measure.
    return hit.length < g * g ? hit : [];
  });
}

export function attentionFigure(r: AttentionResult): Figure {
  const n = r.rows.length;
  return {
    data: [{ type: 'image', source: r.png, hoverinfo: 'skip' }],
    layout: {
      title: { text: `Class-token attention, last block (${r.attacks.join(', ')})`, x: 0.02, xanchor: 'left' },
      xaxis: { visible: false },
      yaxis: { visible: false },
      margin: { l: 230, r: 10, t: 60, b: 10 },
      annotations: r.rows.map((label, i) => ({ text: label, xref: 'paper', yref: 'paper', x: -0.01, xanchor: 'right', y: 1 - (i + 0.5) / n, showarrow: false, font: { size: 11 } })),
    },
  };
}

// --------------------------------------------------------------------------------------------------------------
// Fig. 7: t-SNE and UMAP of image embeddings.
// --------------------------------------------------------------------------------------------------------------

export interface EmbeddingResult {
  attack: string;
  labels: number[];
  classNames: string[];
  target: number;
  /** model -> method -> [x, y] per point; the first half clean, the second half triggered (same images). */
  points: Record<string, Record<'tsne' | 'umap', number[][]>>;
  /** model -> share of triggered images whose 10 nearest clean neighbours are mostly of the image's own class. */
  ownClassKnn: Record<string, number>;
  /** model -> share whose neighbours are mostly of the target class. */
  targetKnn: Record<string, number>;
  /** Points [0, nClean) are clean images, the rest their triggered copies (non-target images only). */
  nClean: number;
}

/** L2-normalised image embeddings [n, d] as rows. */
function embeddings(model: MiniCLIP, x: tf.Tensor4D, prompts?: DeepPrompts): number[][] {
  return tf.tidy(() => l2normalize(model.encodeImage(x, { prompts }).embedding).arraySync() as number[][]);
}

/** @keckelt/tsne draws its initial solution from Math.random and has no seed option: seed it for the call. */
function withSeededRandom<T>(seed: string, f: () => T): T {
  const orig = Math.random;
  Math.random = makeRng(seed);
  try {
    return f();
  } finally {
    Math.random = orig;
  }
}

/** t-SNE to 2-D; perplexity 10 and 1,000 iterations as CleanCLIP's backdoor/tsne-labelled.py. */
export function tsne2d(x: number[][], seed: string, iterations = 1000, perplexity = 10): number[][] {
  return withSeededRandom(seed, () => {
    const t = new TSNE({ epsilon: 10, perplexity, dim: 2 });
    t.initDataRaw(x);
    for (let i = 0; i < iterations; i++) t.step();
    return t.getSolution() as number[][];
  });
}

export function umap2d(x: number[][], seed: string): number[][] {
  return new UMAP({ nComponents: 2, nNeighbors: 15, minDist: 0.1, random: makeRng(seed) }).fit(x);
}

function knnShares(emb: number[][], nClean: number, labels: number[], target: number, k = 10): { own: number; tgt: number } {
  let own = 0;
  let tgt = 0;
  for (let i = nClean; i < emb.length; i++) {
    const sims = emb.slice(0, nClean).map((c, j) => [c.reduce((s, v, d) => s + v * emb[i][d], 0), j]).sort((a, b) => b[0] - a[0]).slice(0, k);
    const votes = new Map<number, number>();
    for (const [, j] of sims) votes.set(labels[j], (votes.get(labels[j]) ?? 0) + 1);
    const top = [...votes.entries()].sort((a, b) => b[1] - a[1])[0][0];
    if (top === labels[i - nClean]) own++;
    if (top === target) tgt++;
  }
  const n = emb.length - nClean;
  return { own: (100 * own) / n, tgt: (100 * tgt) / n };
}

export async function computeEmbeddings(profile: Profile, attack: string, dataset = profile.datasets.main, n = 400, log: Log = quietLog): Promise<EmbeddingResult> {
  const bd = await ensureBackdoored(profile, attack, { dataset, log });
  const key = { v: ANALYSIS_CODE_VERSION, backdoor: bd.checkpoint, attack, dataset, n, rvpt: defenseConfig(profile, 'RVPT'), vpt: defenseConfig(profile, 'VPT'), shots: profile.shots, tsne: { perplexity: 10, iterations: 1000 } };
  return cached(`embeddings-${profile.name}-${attack}`, key, bd.model, async () => {
    const vpt = await ensurePrompts(profile, bd, 'VPT', dataset, log);
    const rvpt = await ensurePrompts(profile, bd, 'RVPT', dataset, log);
    try {
      const test = await analysisTest(profile, dataset, n);
      const target = targetIndex(dataset);
      // Triggered images: those whose class is not the target (as ASR counts them).
      const rows = Array.from({ length: numImages(test) }, (_, i) => i).filter((i) => test.labels[i] !== target);
      const clean = imageBatch(test, 0, numImages(test));
      const x = tf.tidy(() => tf.gather(clean, rows) as tf.Tensor4D);
      const trig = bd.trigger.apply(x, { seed: TEST_TRIGGER_SEED, offset: 0 });
      const points: EmbeddingResult['points'] = {};
      const ownClassKnn: Record<string, number> = {};
      const targetKnn: Record<string, number> = {};
      const labels = Array.from(test.labels);
      const bar = new Progress(`embeddings (${attack})`, 3);
      for (const [name, prompts] of [['backdoored', undefined], ['VPT', vpt], ['RVPT', rvpt]] as const) {
        const emb = [...embeddings(bd.model, clean, prompts), ...embeddings(bd.model, trig, prompts)];
        const k = knnShares(emb, labels.length, [...labels, ...rows.map((r) => labels[r])], target);
        ownClassKnn[name] = k.own;
        targetKnn[name] = k.tgt;
        points[name] = { tsne: tsne2d(emb, `tsne-${attack}-${name}`), umap: umap2d(emb, `umap-${attack}-${name}`) };
        bar.tick(1, name);
      }
      bar.done();
      tf.dispose([clean, x, trig]);
      return { attack, labels: [...labels, ...rows.map((r) => labels[r])], classNames: test.classNames, target, points, ownClassKnn, targetKnn, nClean: labels.length };
    } finally {
      disposePrompts(vpt);
      disposePrompts(rvpt);
      bd.model.dispose();
    }
  });
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];

export function embeddingFigure(r: EmbeddingResult, method: 'tsne' | 'umap'): Figure {
  const models = Object.keys(r.points);
  const nClean = r.nClean;
  const data: Record<string, unknown>[] = [];
  const annotations: Record<string, unknown>[] = [];
  models.forEach((m, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    const pts = r.points[m][method];
    r.classNames.forEach((cls, c) => {
      for (const triggered of [false, true]) {
        const idx = pts.map((_, j) => j).filter((j) => r.labels[j] === c && (j >= nClean) === triggered);
        if (!idx.length) continue;
        data.push({
          type: 'scatter',
          mode: 'markers',
          name: triggered ? `${cls} + trigger` : cls,
          legendgroup: `${cls}-${triggered}`,
          showlegend: i === 0,
          x: idx.map((j) => pts[j][0]),
          y: idx.map((j) => pts[j][1]),
          xaxis: `x${ax}`,
          yaxis: `y${ax}`,
          marker: triggered ? { symbol: 'star', size: 9, color: PALETTE[c % PALETTE.length], line: { width: 0.5, color: '#000' } } : { symbol: 'circle', size: 5, color: PALETTE[c % PALETTE.length], opacity: 0.6 },
        });
      }
    });
    // 10-NN verdicts of the triggered images, computed in the full embedding space.
    annotations.push({ text: `<b>${m}</b>: triggered → own class ${r.ownClassKnn[m].toFixed(0)}%, target ${r.targetKnn[m].toFixed(0)}%`, xref: `x${ax} domain`, yref: `y${ax} domain`, x: 0.5, y: 1.04, showarrow: false, font: { size: 12 } });
  });
  const layout: Record<string, unknown> = {
    title: { text: `${method === 'tsne' ? 't-SNE' : 'UMAP'} of image embeddings (${r.attack}; dots clean, stars triggered; target '${r.classNames[r.target]}'; shares: 10 nearest clean neighbours)`, y: 0.98 },
    margin: { t: 90, l: 20, r: 20, b: 20 },
    grid: { rows: 1, columns: models.length, pattern: 'independent' },
    annotations,
    legend: { font: { size: 9 } },
  };
  models.forEach((_, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    layout[`xaxis${ax}`] = { showticklabels: false, zeroline: false };
    layout[`yaxis${ax}`] = { showticklabels: false, zeroline: false };
  });
  return { data, layout };
}

// --------------------------------------------------------------------------------------------------------------
// Ablations (the paper's Fig. 3).
// --------------------------------------------------------------------------------------------------------------

export interface AblationPoint {
  parameter: string;
  value: number;
  attack: string;
  asr: number;
  ca: number;
  seconds: number;
}

export const ABLATION_GRID: Record<string, number[]> = {
  shots: [1, 2, 4, 8, 16, 32],
  alpha: [0, 0.5, 1, 2, 4],
  promptLength: [2, 4, 8, 16, 32],
  'depth from output': [1, 2, 3, 4, 5, 6],
  'depth from input': [1, 2, 3, 4, 5, 6],
  margin: [-1, -0.5, 0, 0.5, 1],
};

/**
 * The RVPT config and shots for one ablation point (everything else as the profile's RVPT). A value equal to the
 * default leaves the config as it is, so that each parameter's default point is one cell, computed once for all of
 * them (its cache key is the config as written: {alpha: 2} and {} would be two runs of the same thing).
 */
export function ablationSetting(profile: Profile, parameter: string, value: number): { shots: number; config: Record<string, unknown> } {
  const L = profile.model.layers;
  const config: Record<string, unknown> = { ...defenseConfig(profile, 'RVPT'), epochs: profile.analysis?.ablationEpochs ?? defenseConfig(profile, 'RVPT').epochs };
  const effective: Record<string, unknown> = { ...RVPT_DEFAULTS, ...config };
  let shots = profile.shots;
  if (parameter === 'shots') shots = value;
  else if (parameter === 'depth from output') {
    if (config.layers !== undefined || effective.depth !== L - value) config.depth = L - value; // prompts on the last `value` blocks
  } else if (parameter === 'depth from input') {
    // The first `value` blocks; all of them is the same prompt set as depth 0 from the output, so the same config.
    if (value === L) config.depth = 0;
    else config.layers = Array.from({ length: value }, (_, i) => i);
  } else if (effective[parameter] !== value) config[parameter] = value;
  return { shots, config };
}

/** The attacks the ablations run on: the profile's choice, else the paper's Fig. 3 three (those the profile has). */
function ablationAttacks(profile: Profile): string[] {
  return profile.analysis?.ablationAttacks ?? figureAttacks(profile, ['BadNet', 'Blended', 'BadCLIP']);
}

export async function runAblations(profile: Profile, log: Log = quietLog): Promise<AblationPoint[]> {
  const attacks = ablationAttacks(profile);
  const grid = profile.analysis?.ablationGrid ?? ABLATION_GRID;
  const evalLimit = profile.analysis?.ablationEvalLimit ?? profile.evalLimit;
  const dataset = profile.datasets.main;
  const out: AblationPoint[] = [];
  const settings = (parameter: string, values: number[]) =>
    values
      .filter((v) => parameter !== 'depth from output' && parameter !== 'depth from input' ? true : v <= profile.model.layers)
      .map((value) => {
        const s = ablationSetting(profile, parameter, value);
        return { value, profile: { ...profile, shots: s.shots, evalLimit, defenses: { ...profile.defenses, RVPT: s.config } } as Profile };
      });
  // Both cores: the runs are cells, computed side by side first, then read back below.
  await runCellsInParallel(
    attacks.flatMap((attack) => Object.entries(grid).flatMap(([parameter, values]) => settings(parameter, values).map((s) => ({ profile: s.profile, attack, method: 'RVPT', dataset, testSets: [dataset] })))),
    profile.jobs ?? 1,
    log,
  );
  const total = attacks.length * Object.values(grid).reduce((s, v) => s + v.length, 0);
  const bar = new Progress('ablations', total);
  for (const attack of attacks) {
    const bd = await ensureBackdoored(profile, attack, { dataset, log });
    try {
      for (const [parameter, values] of Object.entries(grid)) {
        for (const { value, profile: p } of settings(parameter, values)) {
          const cell = await runCell(p, attack, 'RVPT', dataset, [dataset], { backdoored: bd, log: () => {}, quiet: true });
          const m = cell.metrics[dataset]!;
          out.push({ parameter, value, attack, asr: m.asr, ca: m.ca, seconds: cell.cost.seconds });
          bar.tick(1, `${attack} ${parameter}=${value}: ASR ${m.asr.toFixed(1)} CA ${m.ca.toFixed(1)}`);
        }
      }
    } finally {
      bd.model.dispose();
    }
  }
  bar.done();
  return out;
}

export function ablationFigure(points: AblationPoint[]): Figure {
  const params = [...new Set(points.map((p) => p.parameter))];
  const attacks = [...new Set(points.map((p) => p.attack))];
  const cols = 3;
  const data: Record<string, unknown>[] = [];
  const annotations: Record<string, unknown>[] = [];
  params.forEach((param, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    attacks.forEach((a, k) => {
      const pts = points.filter((p) => p.parameter === param && p.attack === a).sort((x, y) => x.value - y.value);
      for (const metric of ['asr', 'ca'] as const) {
        data.push({
          type: 'scatter',
          mode: 'lines+markers',
          name: `${a} ${metric.toUpperCase()}`,
          legendgroup: `${a}-${metric}`,
          showlegend: i === 0,
          x: pts.map((p) => p.value),
          y: pts.map((p) => p[metric]),
          xaxis: `x${ax}`,
          yaxis: `y${ax}`,
          line: { color: PALETTE[k], dash: metric === 'ca' ? 'dot' : 'solid' },
        });
      }
    });
    annotations.push({ text: `<b>${param}</b>`, xref: `x${ax} domain`, yref: `y${ax} domain`, x: 0.5, y: 1.12, showarrow: false });
  });
  const layout: Record<string, unknown> = {
    title: { text: 'RVPT ablations: ASR (solid) and CA (dotted), %' },
    grid: { rows: Math.ceil(params.length / cols), columns: cols, pattern: 'independent', ygap: 0.35 },
    margin: { t: 95 },
    annotations,
    legend: { orientation: 'h', y: -0.12 },
  };
  params.forEach((param, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    layout[`xaxis${ax}`] = { title: { text: param }, type: param === 'shots' ? 'log' : 'linear' };
    layout[`yaxis${ax}`] = { range: [0, 100] };
  });
  return { data, layout };
}

/** Save a figure into the profile's results folder (figures/ at small) with its provenance sidecar. */
export function writeAnalysisFigure(profile: Profile, name: string, fig: Figure, title: string, config: unknown, seconds: number, size?: { width: number; height: number }, claims?: Claim[]) {
  return saveFigure(resultsDir(profile), name, fig, { title, profile: profile.name, config, seconds, claims }, size);
}

// --------------------------------------------------------------------------------------------------------------
// The figures, end to end (what `rvpt figures` and the notebooks call).
// --------------------------------------------------------------------------------------------------------------

/**
 * The attacks a figure shows: the paper's choice where the profile has them; at paper scale (checkpoints from the
 * weights file) the available ones among them, else the first `n` available.
 */
export function figureAttacks(profile: Profile, wanted: string[], n = wanted.length): string[] {
  const have = availableAttacks(profile, profile.datasets.main, wanted);
  if (have.length) return have;
  const any = availableAttacks(profile, profile.datasets.main).slice(0, n);
  if (!any.length) throw new Error(`Profile '${profile.name}' has no attack to show on ${profile.datasets.main}: its weights file names no backdoored checkpoint for BadNet, Blended or WaNet there.`);
  return any;
}

export async function figurePR(profile: Profile, attacks = figureAttacks(profile, ['BadNet', 'BadCLIP']), log: Log = quietLog) {
  const t0 = Date.now();
  const results: PRResult[] = [];
  for (const a of attacks) results.push(await computePR(profile, a, profile.datasets.main, log));
  const fig = prFigure(results);
  const claims = prClaims(results);
  const saved = await writeAnalysisFigure(profile, 'fig4-pr', fig, 'Perturbation Resistivity across layers', { attacks, sample: analysisSample(profile) }, (Date.now() - t0) / 1000, { width: 1200, height: 760 }, claims);
  return { results, fig, saved, claims };
}

export async function figureAttention(profile: Profile, attacks = figureAttacks(profile, ['BadCLIP', 'BadNet']), log: Log = quietLog) {
  const t0 = Date.now();
  const result = await computeAttention(profile, attacks, profile.datasets.main, 6, log);
  const fig = attentionFigure(result);
  const height = 90 + result.rows.length * 100;
  const claims = attentionClaims(result);
  const saved = await writeAnalysisFigure(profile, 'fig6-attention', fig, 'Attention maps', { attacks }, (Date.now() - t0) / 1000, { width: 900, height }, claims);
  return { result, fig, saved, height, claims };
}

export async function figureEmbeddings(profile: Profile, attack = figureAttacks(profile, ['BadCLIP'])[0], log: Log = quietLog) {
  const t0 = Date.now();
  const result = await computeEmbeddings(profile, attack, profile.datasets.main, profile.name === 'tiny' ? 120 : 400, log);
  const tsne = embeddingFigure(result, 'tsne');
  const umap = embeddingFigure(result, 'umap');
  const seconds = (Date.now() - t0) / 1000;
  const size = { width: 1500, height: 560 };
  const claims = embeddingClaims(result);
  const saved = {
    tsne: await writeAnalysisFigure(profile, 'fig7-tsne', tsne, 't-SNE of image embeddings', { attack, knn: 10 }, seconds, size, claims),
    umap: await writeAnalysisFigure(profile, 'fig7-umap', umap, 'UMAP of image embeddings', { attack, knn: 10 }, seconds, size, claims),
  };
  return { result, tsne, umap, saved, claims };
}

export async function figureAblations(profile: Profile, log: Log = quietLog) {
  const t0 = Date.now();
  const points = await runAblations(profile, log);
  const fig = ablationFigure(points);
  const config = { grid: profile.analysis?.ablationGrid ?? ABLATION_GRID, attacks: ablationAttacks(profile), epochs: profile.analysis?.ablationEpochs, evalLimit: profile.analysis?.ablationEvalLimit };
  const claims = ablationClaims(points);
  const saved = await writeAnalysisFigure(profile, 'ablations', fig, 'RVPT ablations', config, (Date.now() - t0) / 1000, { width: 1200, height: 760 }, claims);
  writeJsonAtomic(saved.json.replace(/\.json$/, '.points.json'), points);
  return { points, fig, saved, claims };
}

// --------------------------------------------------------------------------------------------------------------
// The paper's claims about each figure, checked against our numbers (the notebooks print these).
// --------------------------------------------------------------------------------------------------------------

export interface Claim {
  claim: string;
  ours: string;
  holds: boolean;
}

const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export function prClaims(results: PRResult[]): Claim[] {
  const out: Claim[] = [];
  const r0 = results[0];
  const std = Object.keys(r0.pr).filter((p) => !p.startsWith('trigger'));
  if (r0.pr[std[0]]['supervised ViT']) {
    const clip = avg(std.map((p) => avg(r0.pr[p]['backdoored CLIP'])));
    const sup = avg(std.map((p) => avg(r0.pr[p]['supervised ViT'])));
    out.push({ claim: "CLIP's PR is below the supervised ViT's (mean over layers and the four task-irrelevant perturbations)", ours: `CLIP ${clip.toFixed(4)}, supervised ViT ${sup.toFixed(4)}`, holds: clip < sup });
  }
  for (const r of results) {
    const t = Object.keys(r.pr).find((p) => p.startsWith('trigger'))!;
    const inPrompted = (enc: string) => avg(r.promptedLayers.map((l) => r.pr[t][enc][l]));
    const [b, v, rv] = [inPrompted('backdoored CLIP'), inPrompted('+ VPT'), inPrompted('+ RVPT')];
    out.push({ claim: `${r.attack}: under the trigger, RVPT's PR in the prompted layers is above the backdoored model's and VPT's`, ours: `RVPT ${rv.toFixed(4)}, backdoored ${b.toFixed(4)}, VPT ${v.toFixed(4)}`, holds: rv > b && rv > v });
  }
  return out;
}

export function embeddingClaims(r: EmbeddingResult): Claim[] {
  return [
    {
      claim: `${r.attack}: in the backdoored model, triggered images cluster apart from their classes (their 10 nearest clean neighbours are mostly not their own class)`,
      ours: `own class ${r.ownClassKnn.backdoored.toFixed(1)}%, target class ${r.targetKnn.backdoored.toFixed(1)}%`,
      holds: r.ownClassKnn.backdoored < 50,
    },
    {
      claim: `${r.attack}: after RVPT, triggered images sit with their own class (and more so than after VPT)`,
      ours: `own class: RVPT ${r.ownClassKnn.RVPT.toFixed(1)}%, VPT ${r.ownClassKnn.VPT.toFixed(1)}%, backdoored ${r.ownClassKnn.backdoored.toFixed(1)}%`,
      holds: r.ownClassKnn.RVPT >= 50 && r.ownClassKnn.RVPT > r.ownClassKnn.VPT && r.ownClassKnn.RVPT > r.ownClassKnn.backdoored,
    },
  ];
}

export function attentionClaims(r: AttentionResult): Claim[] {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return Object.entries(r.triggerShare)
    .filter(([, s]) => s.backdoored && s.RVPT)
    .map(([attack, s]) => {
      const [b, v] = [s.backdoored!, s.RVPT!];
      return {
        claim: `${attack}: the trigger draws the backdoored model's class token to its patches; RVPT's less`,
        ours: `attention on the trigger's patches, clean → triggered image: backdoored ${pct(b.clean)} → ${pct(b.triggered)}, RVPT ${pct(v.clean)} → ${pct(v.triggered)}`,
        holds: b.triggered > b.clean && v.triggered - v.clean < b.triggered - b.clean,
      };
    });
}

/** The paper's remarks on its Fig. 3 (docs/PAPER-NOTES.md §1), each checked on every attack's curve. */
export function ablationClaims(points: AblationPoint[]): Claim[] {
  const attacks = [...new Set(points.map((p) => p.attack))];
  const at = (param: string, attack: string) => points.filter((p) => p.parameter === param && p.attack === attack).sort((a, b) => a.value - b.value);
  const ends = (param: string) =>
    attacks.map((a) => ({ a, pts: at(param, a) })).filter((x) => x.pts.length >= 2).map(({ a, pts }) => ({ a, lo: pts[0], hi: pts[pts.length - 1], pts }));
  const fmt = (p: AblationPoint) => `${p.asr.toFixed(1)}/${p.ca.toFixed(1)}`;
  const out: Claim[] = [];
  const alpha = ends('alpha');
  if (alpha.length) out.push({ claim: 'raising α lowers both ASR and CA', ours: alpha.map((x) => `${x.a} α=${x.lo.value}→${x.hi.value}: ${fmt(x.lo)} → ${fmt(x.hi)}`).join('; '), holds: alpha.every((x) => x.hi.asr < x.lo.asr && x.hi.ca < x.lo.ca) });
  const margin = ends('margin');
  if (margin.length) out.push({ claim: 'a larger margin m raises both ASR and CA', ours: margin.map((x) => `${x.a} m=${x.lo.value}→${x.hi.value}: ${fmt(x.lo)} → ${fmt(x.hi)}`).join('; '), holds: margin.every((x) => x.hi.asr > x.lo.asr && x.hi.ca > x.lo.ca) });
  const shots = ends('shots');
  const oneShot = shots.filter((x) => x.a === 'BadNet' || x.a === 'Blended');
  if (oneShot.length) out.push({ claim: 'one shot per class already gives near-0 ASR for BadNet and Blended', ours: oneShot.map((x) => `${x.a} ${x.lo.asr.toFixed(1)}%`).join(', '), holds: oneShot.every((x) => x.lo.value === 1 && x.lo.asr <= 5) });
  const badclip = shots.find((x) => x.a === 'BadCLIP');
  if (badclip) {
    const first = badclip.pts.find((p) => p.asr < 5);
    out.push({ claim: 'BadCLIP needs about 8 shots per class to get below 5% ASR', ours: first ? `below 5% from ${first.value} shots` : `never below 5% (at ${badclip.hi.value} shots: ${badclip.hi.asr.toFixed(1)}%)`, holds: !!first && first.value <= 8 });
  }
  const b = ends('promptLength');
  if (b.length) out.push({ claim: 'a short prompt (b = 5) already gives ASR < 5% for every attack', ours: b.map((x) => `${x.a}: ${x.pts.map((p) => `b=${p.value} ${p.asr.toFixed(1)}%`).join(', ')}`).join('; '), holds: b.every((x) => x.pts.some((p) => p.value <= 5 && p.asr < 5)) });
  const fromOut = attacks.map((a) => ({ a, o: at('depth from output', a), i: at('depth from input', a) })).filter((x) => x.o.length && x.i.length);
  if (fromOut.length) {
    const best = (pts: AblationPoint[]) => Math.min(...pts.map((p) => p.asr));
    out.push({ claim: 'prompts counted from the input do worse than the same number counted from the output', ours: fromOut.map((x) => `${x.a} best ASR ${best(x.o).toFixed(1)}% (output) vs ${best(x.i).toFixed(1)}% (input)`).join('; '), holds: fromOut.every((x) => best(x.i) > best(x.o)) });
  }
  return out;
}

/** Per parameter and attack: ASR and CA at the smallest and largest value, for the ablation notebook's table. */
export function ablationSummary(points: AblationPoint[]): { parameter: string; attack: string; values: string; asr: string; ca: string }[] {
  const keys = [...new Set(points.map((p) => `${p.parameter}|${p.attack}`))];
  return keys.map((k) => {
    const [parameter, attack] = k.split('|');
    const pts = points.filter((p) => p.parameter === parameter && p.attack === attack).sort((a, b) => a.value - b.value);
    return { parameter, attack, values: pts.map((p) => p.value).join(', '), asr: pts.map((p) => p.asr.toFixed(1)).join(' → '), ca: pts.map((p) => p.ca.toFixed(1)).join(' → ') };
  });
}
