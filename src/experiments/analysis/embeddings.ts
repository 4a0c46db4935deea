/**
 * Fig. 7: image embeddings of clean (dots) and triggered (stars) test images, backdoored / VPT / RVPT, in t-SNE and
 * UMAP, with the verdict computed in the full space (the classes of each triggered image's nearest clean neighbours).
 */
import * as tf from '@tensorflow/tfjs-core';
import { TSNE } from '@keckelt/tsne';
import { UMAP } from 'umap-js';
import { MiniCLIP } from '../../model/clip';
import { DeepPrompts, disposePrompts } from '../../model/prompts';
import { l2normalize } from '../../model/layers';
import { numImages } from '../../data/dataset';
import { imageBatch } from '../../data/batches';
import { TEST_TRIGGER_SEED } from '../../metrics/backdoor';
import { makeRng } from '../../util/rng';
import { Progress } from '../../util/progress';
import { Figure } from '../../viz/plotly';
import { ensureBackdoored, targetIndex } from '../backdoorRun';
import { defenseConfig } from '../defenseRun';
import { Profile } from '../profiles';
import { PALETTE, ANALYSIS_CODE_VERSION, Log, quietLog, ensurePrompts, analysisTest, cached, writeAnalysisFigure, figureAttacks, Claim } from './common';

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

/**
 * For each triggered image (rows nClean..end of `emb`), the majority class of its k nearest clean neighbours (rows
 * 0..nClean-1, by dot product of normalised embeddings): the share (%) whose majority is the image's own class, and
 * the share whose majority is the target. `labels` has one entry per row of `emb`, the triggered rows' own classes
 * included, so a triggered image's class is `labels[i]`. A triggered image is never of the target class, so the two
 * shares add up to at most 100.
 */
export function knnShares(emb: number[][], nClean: number, labels: number[], target: number, k = 10): { own: number; tgt: number } {
  if (labels.length !== emb.length) throw new Error(`knnShares: ${labels.length} labels for ${emb.length} embeddings; give one per row (clean, then triggered).`);
  let own = 0;
  let tgt = 0;
  for (let i = nClean; i < emb.length; i++) {
    const sims = emb.slice(0, nClean).map((c, j) => [c.reduce((s, v, d) => s + v * emb[i][d], 0), j]).sort((a, b) => b[0] - a[0]).slice(0, k);
    const votes = new Map<number, number>();
    for (const [, j] of sims) votes.set(labels[j], (votes.get(labels[j]) ?? 0) + 1);
    const top = [...votes.entries()].sort((a, b) => b[1] - a[1])[0][0];
    if (top === labels[i]) own++;
    if (top === target) tgt++;
  }
  const n = emb.length - nClean;
  return { own: (100 * own) / n, tgt: (100 * tgt) / n };
}

export async function computeEmbeddings(profile: Profile, attack: string, dataset = profile.datasets.main, n = 400, log: Log = quietLog): Promise<EmbeddingResult> {
  const bd = await ensureBackdoored(profile, attack, { dataset, log });
  // knn 2: the shares read each triggered image's own class (knnShares once read a clean image's, which made own +
  // target exceed 100%); results cached before are recomputed.
  const key = { v: ANALYSIS_CODE_VERSION, backdoor: bd.checkpoint, attack, dataset, n, rvpt: defenseConfig(profile, 'RVPT'), vpt: defenseConfig(profile, 'VPT'), shots: profile.shots, tsne: { perplexity: 10, iterations: 1000 }, knn: 2 };
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

export function embeddingFigure(r: EmbeddingResult, method: 'tsne' | 'umap'): Figure {
  const models = Object.keys(r.points);
  const nClean = r.nClean;
  const data: Record<string, unknown>[] = [];
  const annotations: Record<string, unknown>[] = [];
  const className = (c: number) => (c === r.target ? `${r.classNames[c]} (target)` : r.classNames[c]);
  models.forEach((m, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    const pts = r.points[m][method];
    r.classNames.forEach((_, c) => {
      for (const triggered of [false, true]) {
        const idx = pts.map((_, j) => j).filter((j) => r.labels[j] === c && (j >= nClean) === triggered);
        if (!idx.length) continue;
        data.push({
          type: 'scatter',
          mode: 'markers',
          name: className(c),
          legendgroup: `class-${c}`,
          // One legend entry per class (its colour); the two marker shapes have entries of their own below.
          showlegend: i === 0 && !triggered,
          x: idx.map((j) => pts[j][0]),
          y: idx.map((j) => pts[j][1]),
          xaxis: `x${ax}`,
          yaxis: `y${ax}`,
          hovertext: triggered ? `${r.classNames[c]} + trigger` : r.classNames[c],
          marker: triggered ? { symbol: 'star', size: 9, color: PALETTE[c % PALETTE.length], line: { width: 0.5, color: '#000' } } : { symbol: 'circle', size: 5, color: PALETTE[c % PALETTE.length], opacity: 0.6 },
        });
      }
    });
    // 10-NN verdicts of the triggered images, computed in the full embedding space.
    annotations.push({ text: `<b>${m}</b>: triggered → own class ${r.ownClassKnn[m].toFixed(0)}%, target ${r.targetKnn[m].toFixed(0)}%`, xref: `x${ax} domain`, yref: `y${ax} domain`, x: 0.5, y: 1.04, showarrow: false, font: { size: 12 } });
  });
  for (const [name, marker] of [['clean image', { symbol: 'circle', size: 7, color: '#888' }], ['triggered image', { symbol: 'star', size: 10, color: '#888', line: { width: 0.5, color: '#000' } }]] as const) {
    data.push({ type: 'scatter', mode: 'markers', name, legendgroup: name, x: [null], y: [null], marker, hoverinfo: 'skip' });
  }
  const layout: Record<string, unknown> = {
    title: { text: `${method === 'tsne' ? 't-SNE' : 'UMAP'} of image embeddings (${r.attack}; shares: the 10 nearest clean neighbours' majority class)`, y: 0.98 },
    margin: { t: 90, l: 20, r: 20, b: 20 },
    grid: { rows: 1, columns: models.length, pattern: 'independent' },
    annotations,
    legend: { font: { size: 11 }, tracegroupgap: 2 },
  };
  models.forEach((_, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    layout[`xaxis${ax}`] = { showticklabels: false, zeroline: false };
    layout[`yaxis${ax}`] = { showticklabels: false, zeroline: false };
  });
  return { data, layout };
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
