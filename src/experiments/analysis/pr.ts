/**
 * Fig. 4: Perturbation Resistivity across layers (backdoored CLIP, + VPT, + RVPT, a supervised ViT), and how far the
 * prompts move the class token (the displacement table of notebook 03).
 */
import { MiniCLIP } from '../../model/clip';
import { DeepPrompts, disposePrompts } from '../../model/prompts';
import { numImages } from '../../data/dataset';
import { Perturbation, perturbationResistivity, promptDisplacement, standardPerturbations, triggerPerturbation } from '../../metrics/pr';
import { Progress } from '../../util/progress';
import { Figure } from '../../viz/plotly';
import { ensureBackdoored } from '../backdoorRun';
import { defenseConfig } from '../defenseRun';
import { ensureSupervisedViT } from '../supervised';
import { externalWeights } from '../externalWeights';
import { Profile } from '../profiles';
import { ANALYSIS_CODE_VERSION, Log, quietLog, analysisSample, ensurePrompts, analysisTest, cached, writeAnalysisFigure, figureAttacks, Claim, avg } from './common';

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

/** An encoder's name in the legend: the results key the backdoored model 'backdoored CLIP', whichever model it is. */
function encoderLabel(enc: string, model: string): string {
  if (enc === 'backdoored CLIP') return `backdoored ${model}`;
  if (enc.startsWith('+ ')) return `${model} ${enc}`;
  return enc === 'supervised ViT' ? 'supervised ViT (same tower, trained with labels)' : enc;
}

/**
 * One panel per perturbation, PR against block, a line per encoder; prompted blocks shaded. `model` names the
 * backdoored model in the legend: MiniCLIP, or CLIP for real checkpoints.
 */
export function prFigure(results: PRResult[], model = 'MiniCLIP'): Figure {
  const panels = results.flatMap((r, ri) => Object.keys(r.pr).filter((p) => ri === 0 || p.startsWith('trigger')).map((p) => ({ r, p })));
  const cols = 3;
  const rows = Math.ceil(panels.length / cols);
  const data: Record<string, unknown>[] = [];
  const annotations: Record<string, unknown>[] = [];
  const shapes: Record<string, unknown>[] = [];
  panels.forEach(({ r, p }, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    for (const [enc, ys] of Object.entries(r.pr[p])) {
      data.push({ type: 'scatter', mode: 'lines+markers', name: encoderLabel(enc, model), legendgroup: enc, showlegend: i === 0, x: ys.map((_, l) => l + 1), y: ys, xaxis: `x${ax}`, yaxis: `y${ax}`, line: { color: COLORS[enc] } });
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
    layout[`yaxis${ax}`] = { title: { text: 'PR (cosine)' } };
  });
  return { data, layout };
}

export async function figurePR(profile: Profile, attacks = figureAttacks(profile, ['BadNet', 'BadCLIP']), log: Log = quietLog) {
  const t0 = Date.now();
  const results: PRResult[] = [];
  for (const a of attacks) results.push(await computePR(profile, a, profile.datasets.main, log));
  const fig = prFigure(results, externalWeights(profile) ? 'CLIP' : 'MiniCLIP');
  const claims = prClaims(results);
  const saved = await writeAnalysisFigure(profile, 'fig4-pr', fig, 'Perturbation Resistivity across layers', { attacks, sample: analysisSample(profile) }, (Date.now() - t0) / 1000, { width: 1200, height: 760 }, claims);
  return { results, fig, saved, claims };
}

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
