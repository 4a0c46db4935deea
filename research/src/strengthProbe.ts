/**
 * The backdoor-strength probe (the probes notebook, README "Defenses"). At the `small` profile RVPT removes the backdoors
 * that took less firmly (BadNet, WaNet: 80-85% ASR undefended) and leaves much of the firmer ones (Blended, ISSBA,
 * TrojVQA, BadCLIP: 96-99%). The paper's backdoor is a light touch: CLIP fine-tuned on 0.3% poisoned pairs at lr 1e-6,
 * 1/500 of its pre-training lr, and its CA barely moves. Ours had to be pressed in harder to take at all: 5% of the
 * pairs at lr 5e-4, half the pre-training lr, and the fine-tune raises CA by 3 points, so it reshapes the whole model.
 * The probe makes one attack at other poisoning rates and fine-tuning learning rates, and defends each backdoored
 * model with VPT and RVPT at the profile's settings: how does RVPT's result move with the backdoor's strength (its
 * undefended ASR) and with how far the fine-tune moved the image tower (its relative weight change)?
 *
 * Each variant is the profile with its attack's backdoor config overridden (`variantProfile`), so its backdoored
 * model and cells are cached like the tables' and computed in the same two-process pool; the profile's own variant
 * reuses the tables' models.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as path from 'path';
import { MiniCLIP } from '../../src/model/clip';
import { BackdoorMetrics } from '../../src/metrics/backdoor';
import { RVPT_DEFAULTS } from '../../src/defenses/rvpt';
import { backdoorPlan, ensureBackdoored } from '../../src/experiments/backdoorRun';
import { runCellsInParallel, CellJob } from '../../src/experiments/cellPool';
import { runCell } from '../../src/experiments/defenseRun';
import { ensurePretrained } from '../../src/experiments/pretrainRun';
import { externalWeights } from '../../src/experiments/externalWeights';
import { Profile } from '../../src/experiments/profiles';
import { TableProvenance, asrCaText, signedText, tableProvenance } from '../../src/experiments/tables';
import { committedProbe, groupRows, probeMarkdown, writeProbe } from './probeFiles';
import { Figure } from '../../src/viz/plotly';
import { DEFAULT_AUGMENT } from '../../src/data/augment';

export interface StrengthVariant {
  attack: string;
  /** Share of the main dataset's pre-training pairs poisoned. */
  rate: number;
  /** Peak learning rate of the backdoor fine-tune. */
  lr: number;
  /**
   * Whether the fine-tune crops and flips its images (CoOp's augmentation, as the pre-training does). The profile's
   * backdoors do not (CleanCLIP poisons with CLIP's plain preprocessing), and the fine-tune raises CA by 3 points;
   * with it, CA stays as the clean model's, as in the paper. Absent: false.
   */
  augment?: boolean;
}

/**
 * The committed grid: the profile's own backdoors (5% at lr 5e-4), fewer poisoned pairs at the same lr, a lighter
 * fine-tune (lr 1e-4, 2e-5) with as many or more poisoned pairs, and the profile's own made with augmentation, for the
 * two attacks RVPT leaves most of.
 */
export const STRENGTH_GRID: StrengthVariant[] = ['Blended', 'BadCLIP'].flatMap((attack) => [
  { attack, rate: 0.01, lr: 5e-4 },
  { attack, rate: 0.02, lr: 5e-4 },
  { attack, rate: 0.05, lr: 5e-4 },
  { attack, rate: 0.05, lr: 1e-4 },
  { attack, rate: 0.2, lr: 1e-4 },
  { attack, rate: 0.2, lr: 2e-5 },
  { attack, rate: 0.05, lr: 5e-4, augment: true },
]);

export const STRENGTH_METHODS = ['VPT', 'RVPT'];

/**
 * A grid of one's own: every attack x rate x lr, each fine-tuned with augmentation when `augment`. What is not given
 * comes from the committed grid (its attacks, its rates, its lrs).
 */
export function strengthGrid(attacks?: string[], rates?: number[], lrs?: number[], augment = false): StrengthVariant[] {
  const uniq = <T>(xs: T[]) => [...new Set(xs)];
  const as = attacks ?? uniq(STRENGTH_GRID.map((v) => v.attack));
  const rs = rates ?? uniq(STRENGTH_GRID.map((v) => v.rate));
  const ls = lrs ?? uniq(STRENGTH_GRID.map((v) => v.lr));
  return as.flatMap((attack) => rs.flatMap((rate) => ls.map((lr) => ({ attack, rate, lr, ...(augment ? { augment } : {}) }))));
}

/** The profile with `v`'s rate and lr for its attack, checked against the config the fine-tune will really use. */
export function variantProfile(profile: Profile, v: StrengthVariant): Profile {
  if (!(v.rate > 0 && v.rate < 1)) throw new Error(`Strength probe: poisoning rate ${v.rate} (${v.attack}) must be in (0, 1).`);
  if (!(v.lr > 0)) throw new Error(`Strength probe: learning rate ${v.lr} (${v.attack}) must be positive.`);
  // The augmentation is overridden only when asked: a variant without it is the profile's backdoor config as written.
  const augment = v.augment ? { augment: DEFAULT_AUGMENT } : {};
  const p: Profile = { ...profile, attackBackdoor: { ...profile.attackBackdoor, [v.attack]: { ...profile.attackBackdoor?.[v.attack], rate: v.rate, lr: v.lr, ...augment } } };
  const { cfg } = backdoorPlan(p, v.attack, { dataset: profile.datasets.main });
  if (cfg.rate !== v.rate || cfg.lr !== v.lr || (v.augment && cfg.augment !== DEFAULT_AUGMENT)) {
    throw new Error(`Strength probe: profile '${profile.name}' overrides ${v.attack}'s backdoor on ${profile.datasets.main} (datasetBackdoor), so rate ${v.rate} and lr ${v.lr}${v.augment ? ' with augmentation' : ''} would not apply.`);
  }
  return p;
}

/**
 * How far the backdoor fine-tune moved the image tower: ||theta_backdoored - theta_clean|| / ||theta_clean|| over
 * every `visual.*` weight (the tower RVPT prompts).
 */
export function imageTowerShift(clean: MiniCLIP, backdoored: MiniCLIP): number {
  return tf.tidy(() => {
    let diff = 0;
    let norm = 0;
    for (const [name, w] of Object.entries(clean.params)) {
      if (!name.startsWith('visual.')) continue;
      const b = backdoored.params[name];
      if (!b) throw new Error(`Strength probe: the backdoored model has no parameter '${name}'.`);
      diff += tf.sum(tf.square(tf.sub(b, w))).dataSync()[0];
      norm += tf.sum(tf.square(w)).dataSync()[0];
    }
    return Math.sqrt(diff / norm);
  });
}

/** The FR term at the end of a prompt-tuning run: its mean over the last epoch's steps, with `epochs` epochs in all. */
export function finalFR(fr: number[], epochs: number): number {
  const tail = fr.slice(-Math.max(1, Math.floor(fr.length / epochs)));
  return tail.reduce((a, b) => a + b, 0) / tail.length;
}

export interface StrengthRow extends StrengthVariant {
  /** Poisoned pairs in the fine-tune's corpus. */
  poisoned: number;
  /** Relative weight change of the image tower (imageTowerShift). */
  shift: number;
  /** CA of the clean pre-trained model, for the fine-tune's own CA change. */
  cleanCA: number;
  /** No defense, VPT, RVPT on the main dataset's test set. */
  metrics: Record<string, BackdoorMetrics>;
  /** RVPT's FR term (mean cosine to the frozen class tokens) over its last epoch's steps. */
  rvptFinalFR: number | null;
  backdoorCheckpoint: string;
}

export interface StrengthProbe {
  probe: 'backdoor strength';
  dataset: string;
  rows: StrengthRow[];
  provenance: TableProvenance;
}

/** The committed probe of the `small` profile (research/results/strength-probe.json), for the probes notebook. */
export function committedStrengthProbe(file?: string): StrengthProbe {
  return committedProbe<StrengthProbe>('strength-probe', 'Strength probe', file);
}

/** Rows for the probes notebook and the markdown: one per variant, in the file's order. */
export function strengthRows(p: StrengthProbe): { header: string[]; rows: string[][] } {
  const header = ['attack', 'poisoned (rate)', 'fine-tune lr', 'fine-tune augmentation', 'image-tower weight change', 'fine-tune CA change', 'No defense ASR (CA)', ...STRENGTH_METHODS.map((m) => `${m} ASR (CA)`), 'RVPT ASR / No defense ASR'];
  const rows = p.rows.map((r) => {
    const nd = r.metrics['No defense'];
    const rv = r.metrics.RVPT;
    return [
      r.attack,
      `${r.poisoned} (${+(r.rate * 100).toFixed(2)}%)`,
      String(r.lr),
      r.augment ? 'crop + flip' : 'none',
      `${(r.shift * 100).toFixed(2)}%`,
      nd ? signedText(nd.ca - r.cleanCA, 2) : '–',
      asrCaText(nd),
      ...STRENGTH_METHODS.map((m) => asrCaText(r.metrics[m])),
      nd && rv && nd.asr > 0 ? (rv.asr / nd.asr).toFixed(2) : '–',
    ];
  });
  return { header, rows };
}

/**
 * RVPT's ASR against the undefended model's, one trace per attack and fine-tuning lr (points labelled with the
 * poisoning rate), with the line where RVPT removes nothing and the paper-level 5% target.
 */
export function strengthFigure(p: StrengthProbe): Figure {
  const groups = groupRows(p.rows, (r) => `${r.attack}, lr ${r.lr}${r.augment ? ', augmented' : ''}`);
  const symbols: Record<string, string> = { BadCLIP: 'diamond' };
  const data: Record<string, unknown>[] = [...groups.entries()].map(([name, rows]) => ({
    type: 'scatter',
    mode: 'lines+markers+text',
    name,
    x: rows.map((r) => r.metrics['No defense']?.asr),
    y: rows.map((r) => r.metrics.RVPT?.asr),
    text: rows.map((r) => `${+(r.rate * 100).toFixed(2)}%`),
    textposition: 'top center',
    marker: { size: 10, symbol: symbols[rows[0].attack] ?? 'circle' },
  }));
  data.push({ type: 'scatter', mode: 'lines', name: 'RVPT removes nothing', x: [0, 100], y: [0, 100], line: { dash: 'dot', color: 'gray' } });
  data.push({ type: 'scatter', mode: 'lines', name: 'target: 5%', x: [0, 100], y: [5, 5], line: { dash: 'dash', color: 'red' } });
  return {
    data,
    layout: {
      title: { text: `RVPT against backdoors of different strength (${p.dataset}; labels: share of pairs poisoned)` },
      xaxis: { title: { text: 'No defense ASR (%)' }, range: [30, 100] },
      yaxis: { title: { text: 'RVPT ASR (%)' }, range: [0, 100] },
    },
  };
}

export function strengthMarkdown(p: StrengthProbe): string {
  return probeMarkdown(
    `Backdoor-strength probe: RVPT and VPT against lighter and firmer backdoors (${p.dataset})`,
    'Each row: one backdoored model (the profile with that poisoning rate, fine-tuning lr and augmentation), defended at the profile settings. ASR % (CA %) on the full test set; ASR over images whose true class is not the target.',
    strengthRows(p),
    p.provenance,
  );
}

/**
 * Backdoor, defend and measure every variant (cached; two processes when the profile has two jobs), then write
 * strength-probe.{json,md} into the profile's results folder (research/results/ for `small`). Returns the JSON path.
 */
export async function runStrengthProbe(profile: Profile, variants: StrengthVariant[] = STRENGTH_GRID, log: (s: string) => void = () => {}): Promise<{ path: string; probe: StrengthProbe }> {
  if (!variants.length) throw new Error('Strength probe: no variants to run.');
  if (externalWeights(profile)) throw new Error(`Strength probe: profile '${profile.name}' takes its backdoored models from a weights file; the probe trains its own (use small or a profile file that extends it).`);
  const t0 = Date.now();
  const dataset = profile.datasets.main;
  const profiles = variants.map((v) => variantProfile(profile, v));
  const jobs: CellJob[] = profiles.flatMap((p, i) => STRENGTH_METHODS.map((method) => ({ profile: p, attack: variants[i].attack, method, dataset, testSets: [dataset] })));
  await runCellsInParallel(jobs, profile.jobs ?? 1, log);
  const clean = await ensurePretrained(profile, { log });
  const rows: StrengthRow[] = [];
  try {
    for (const [i, v] of variants.entries()) {
      log(`strength probe ${i + 1}/${variants.length}: ${v.attack}, rate ${v.rate}, lr ${v.lr}${v.augment ? ', augmented' : ''}`);
      const bd = await ensureBackdoored(profiles[i], v.attack, { dataset, log });
      try {
        const metrics: Record<string, BackdoorMetrics> = { 'No defense': bd.metrics[dataset] };
        let rvptFinalFR: number | null = null;
        for (const m of STRENGTH_METHODS) {
          const c = await runCell(profiles[i], v.attack, m, dataset, [dataset], { backdoored: bd, log });
          metrics[m] = c.metrics[dataset]!;
          const fr = c.history?.fr;
          if (m === 'RVPT' && fr?.length) rvptFinalFR = finalFR(fr, { ...RVPT_DEFAULTS, ...c.config }.epochs);
        }
        rows.push({ ...v, poisoned: bd.poisoned[dataset], shift: imageTowerShift(clean.model, bd.model), cleanCA: clean.ca[dataset], metrics, rvptFinalFR, backdoorCheckpoint: path.basename(bd.checkpoint) });
      } finally {
        bd.model.dispose();
      }
    }
  } finally {
    clean.model.dispose();
  }
  const config = { variants, methods: STRENGTH_METHODS, backdoor: profile.backdoor, defenses: Object.fromEntries(STRENGTH_METHODS.map((m) => [m, profile.defenses[m] ?? {}])), shots: profile.shots, evalLimit: profile.evalLimit };
  const probe: StrengthProbe = { probe: 'backdoor strength', dataset, rows, provenance: tableProvenance(profile, config, profile.backdoor.seed, (Date.now() - t0) / 1000) };
  return { path: writeProbe(profile, 'strength-probe', probe, strengthMarkdown(probe)), probe };
}
