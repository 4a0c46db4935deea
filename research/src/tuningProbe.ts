/**
 * The tuning-data probe (the probes notebook, README "Defenses"). At the `small` profile RVPT costs 6-9 points of CA
 * against VPT on Fashion-MNIST, and removes some backdoors and not others. Two things about the clean data it is tuned
 * on could be the cause, and the probe varies each with all else fixed:
 *   - how many clean shots it sees: with only 16 per class, the prompts may be unable to relearn what repelling moves
 *     away. Each variant with k shots runs the tables' number of steps (epochs and warm-up scaled by 16/k), so more
 *     shots means more distinct images, not more training;
 *   - the augmentation (CoOp's random resized crop and flip): the paper does not state it (docs/PAPER-NOTES.md,
 *     inferred from CoOp), and its Perturbation Resistivity argument is about features that perturbations change.
 * A third question came after: with enough distinct images, does RVPT keep its CA given more *training*? The paper
 * takes about 900 (OxfordPets) to 25,000 (ImageNet) optimiser steps, the tables 100. A variant's `budget` multiplies the
 * tables' steps (epochs and warm-up stretched alike, so the cosine schedule keeps its shape); such variants go to
 * tuning-probe-budget.{json,md}, beside the committed same-steps probe. Those longer runs repel further, so a variant
 * may also cap RVPT's repulsion with the paper's margin m (the FR term max(cos, m) per sample): tuning-probe-margin.
 * Each variant is the profile with its VPT and RVPT configs and shot count overridden (`tuningProfile`), so its cells
 * are cached like the tables' on the tables' own backdoored models, and the profile's own variant (16 shots,
 * augmented, budget 1) *is* the tables' cells.
 */
import { BackdoorMetrics } from '../../src/metrics/backdoor';
import { RVPT_DEFAULTS } from '../../src/defenses/rvpt';
import { DEFAULT_AUGMENT } from '../../src/data/augment';
import { loadShots } from '../../src/data/load';
import { ensureBackdoored } from '../../src/experiments/backdoorRun';
import { runCellsInParallel, CellJob } from '../../src/experiments/cellPool';
import { runCell } from '../../src/experiments/defenseRun';
import { externalWeights } from '../../src/experiments/externalWeights';
import { Profile } from '../../src/experiments/profiles';
import { finalFR } from './strengthProbe';
import { TableProvenance, asrCaText, signedText, tableProvenance } from '../../src/experiments/tables';
import { ATTACK_COLOURS, ATTACK_SYMBOLS, committedProbe, groupRows, probeAttacks, probeMarkdown, targetRegion, writeProbe } from './probeFiles';
import { Figure } from '../../src/viz/plotly';

export interface TuningVariant {
  /** Clean shots per class. */
  shots: number;
  /** CoOp's augmentation (random resized crop and flip) on the shots, or none. */
  augment: boolean;
  /** Optimiser steps as a multiple of the tables' (default 1: the same steps whatever the shots). */
  budget?: number;
  /** RVPT's FR margin m in [-1, 1] (default: the profile's, -1, full repulsion); VPT has no FR term to cap. */
  margin?: number;
}

/** The budget probe's grid (`make -C research tuning-probe`'s second run): 256 shots per class at 1, 4 and 16 times the tables' steps (1: tuning-probe.json's own 256-shot cells). */
export const BUDGET_GRID: TuningVariant[] = [1, 4, 16].flatMap((budget) => [true, false].map((augment) => ({ shots: 256, augment, budget })));

const budgetOf = (v: TuningVariant) => v.budget ?? 1;

/** The margin probe's grid: the budget probe's longest runs with RVPT's repulsion capped at m = 0.5 and 0.7 (-1: uncapped). */
export const MARGIN_GRID: TuningVariant[] = [-1, 0.5, 0.7].flatMap((margin) => [true, false].map((augment) => ({ shots: 256, augment, budget: 16, margin })));

/**
 * The files' stem: tuning-probe for the same-steps grid, tuning-probe-budget once any variant trains longer,
 * tuning-probe-margin once any sets RVPT's margin; then -DATASET on a dataset other than the main one.
 */
export function tuningStem(variants: TuningVariant[], dataset?: string): string {
  const stem = variants.some((v) => v.margin !== undefined) ? 'tuning-probe-margin' : variants.some((v) => budgetOf(v) !== 1) ? 'tuning-probe-budget' : 'tuning-probe';
  return dataset ? `${stem}-${dataset}` : stem;
}

/** The committed grid: 16, 64 and 256 shots per class, each with and without augmentation. */
export const TUNING_GRID: TuningVariant[] = [16, 64, 256].flatMap((shots) => [true, false].map((augment) => ({ shots, augment })));

export const TUNING_METHODS = ['VPT', 'RVPT'];

/** The attacks of the committed probes (the repulsion probe's too: `probeAttacks`). */
export const tuningAttacks = probeAttacks;

/**
 * The profile with `v`'s shots and augmentation for VPT and RVPT, at `v.budget` times the profile's number of steps:
 * epochs and warm-up epochs scaled by budget x profile.shots / v.shots. A value equal to the profile's leaves the
 * config as written, so the profile's own variant has the tables' cache keys.
 */
export function tuningProfile(profile: Profile, v: TuningVariant): Profile {
  if (!Number.isInteger(v.shots) || v.shots < 1) throw new Error(`Tuning probe: shots ${v.shots} must be a positive integer (shots per class).`);
  const budget = budgetOf(v);
  if (!Number.isInteger(budget) || budget < 1) throw new Error(`Tuning probe: budget ${v.budget} must be a positive integer (a multiple of the tables' steps, e.g. 4).`);
  if (v.margin !== undefined && !(v.margin >= -1 && v.margin <= 1)) throw new Error(`Tuning probe: margin ${v.margin} must be a cosine in [-1, 1] (-1: full repulsion, the paper's default; 1: no repulsion, VPT).`);
  const defenses = { ...profile.defenses };
  for (const m of TUNING_METHODS) {
    const config: Record<string, unknown> = { ...(profile.defenses[m] ?? {}) };
    const effective = { ...RVPT_DEFAULTS, ...config };
    if (v.shots !== profile.shots || budget !== 1) {
      config.epochs = (effective.epochs * profile.shots * budget) / v.shots;
      config.warmupEpochs = (effective.warmupEpochs * profile.shots * budget) / v.shots;
    }
    if (!v.augment && effective.augment !== null) config.augment = null;
    if (v.augment && effective.augment === null) config.augment = DEFAULT_AUGMENT;
    if (m === 'RVPT' && v.margin !== undefined && v.margin !== effective.margin) config.margin = v.margin;
    defenses[m] = config;
  }
  return { ...profile, shots: v.shots, defenses };
}

export interface TuningRow extends TuningVariant {
  attack: string;
  /** Clean tuning images (shots x classes, fewer where a class has fewer). */
  images: number;
  /** Optimiser steps of each method's run (the tables' 100 in every row of tuning-probe.json: the epochs are scaled to keep them). */
  steps: number;
  /** No defense, VPT, RVPT on the probe's dataset's test set. */
  metrics: Record<string, BackdoorMetrics>;
  /** Each method's FR term (mean cosine to the frozen class tokens) over the profile's last epoch of steps. */
  finalFR: Record<string, number | null>;
}

export interface TuningProbe {
  probe: 'tuning data';
  dataset: string;
  rows: TuningRow[];
  provenance: TableProvenance;
}

/** The committed probe of the `small` profile (research/results/tuning-probe.json, or with `stem` tuning-probe-budget), for the probes notebook. */
export function committedTuningProbe(file?: string, stem = 'tuning-probe'): TuningProbe {
  return committedProbe<TuningProbe>(stem, 'Tuning probe', file, 'tuning-probe');
}

/** Rows for the probes notebook and the markdown: one per attack and variant, in the file's order. */
export function tuningRows(p: TuningProbe): { header: string[]; rows: string[][] } {
  const margins = isMarginProbe(p);
  const header = ['attack', 'shots per class', 'augmentation', 'images (steps)', ...(margins ? ['RVPT margin'] : []), 'No defense ASR (CA)', ...TUNING_METHODS.map((m) => `${m} ASR (CA)`), 'RVPT CA minus No defense', 'final FR: VPT / RVPT'];
  const rows = p.rows.map((r) => {
    const nd = r.metrics['No defense'];
    const rv = r.metrics.RVPT;
    const fr = (m: string) => (r.finalFR[m] === null || r.finalFR[m] === undefined ? '–' : r.finalFR[m]!.toFixed(3));
    return [
      r.attack,
      String(r.shots),
      r.augment ? 'crop + flip' : 'none',
      `${r.images} (${r.steps})`,
      ...(margins ? [marginText(r)] : []),
      asrCaText(nd),
      ...TUNING_METHODS.map((m) => asrCaText(r.metrics[m])),
      nd && rv ? signedText(rv.ca - nd.ca, 2) : '–',
      `${fr('VPT')} / ${fr('RVPT')}`,
    ];
  });
  return { header, rows };
}

/**
 * The trade-off: for each attack and augmentation, RVPT's ASR against its CA change from the undefended model, points
 * labelled with the shots (with a budget: the steps; with margins: m), and the paper-level target region (ASR at most 5%,
 * CA at most 2 points down).
 */
export function tuningFigure(p: TuningProbe): Figure {
  const budget = isBudgetProbe(p);
  const margins = isMarginProbe(p);
  const groups = groupRows(p.rows, (r) => `${r.attack}, ${r.augment ? 'augmented' : 'no augmentation'}${budget ? `, ${r.shots} shots` : ''}`);
  // One colour and marker per attack; augmented runs solid, the others open and dotted.
  const data: Record<string, unknown>[] = [...groups.entries()].map(([name, rows]) => ({
    type: 'scatter',
    mode: 'lines+markers+text',
    name,
    x: rows.map((r) => (r.metrics.RVPT && r.metrics['No defense'] ? r.metrics.RVPT.ca - r.metrics['No defense'].ca : null)),
    y: rows.map((r) => r.metrics.RVPT?.asr),
    text: rows.map((r) => (margins ? `m ${marginText(r)}` : `${budget ? r.steps : r.shots}`)),
    textposition: 'top center',
    marker: { size: 10, symbol: (ATTACK_SYMBOLS[rows[0].attack] ?? 'circle') + (rows[0].augment ? '' : '-open'), color: ATTACK_COLOURS[rows[0].attack] },
    line: { dash: rows[0].augment ? 'solid' : 'dot', color: ATTACK_COLOURS[rows[0].attack] },
  }));
  return {
    data,
    layout: {
      title: {
        text: margins
          ? `RVPT trained longer with its repulsion capped (${p.dataset}; labels: margin m)`
          : budget
          ? `RVPT trained longer, with and without augmentation (${p.dataset}; labels: steps)`
          : `RVPT with more clean shots (same steps) and without augmentation (${p.dataset}; labels: shots per class)`,
      },
      xaxis: { title: { text: 'RVPT CA minus No defense CA (points)' } },
      yaxis: { title: { text: 'RVPT ASR (%)' }, range: [0, 105] },
      ...targetRegion(data.flatMap((d) => d.x as (number | null)[])),
    },
  };
}

/** Whether the probe trains any variant longer than the tables (tuning-probe-budget.json, tuning-probe-margin.json). */
export function isBudgetProbe(p: TuningProbe): boolean {
  return p.rows.some((r) => budgetOf(r) !== 1);
}

/** Whether the probe sets RVPT's margin (tuning-probe-margin.json). */
export function isMarginProbe(p: TuningProbe): boolean {
  return p.rows.some((r) => r.margin !== undefined);
}

/** The margin a row's RVPT ran with ('-1' for the uncapped default). */
const marginText = (r: TuningVariant) => String(r.margin ?? RVPT_DEFAULTS.margin);

export function tuningMarkdown(p: TuningProbe): string {
  const fr = "Final FR: the mean cosine between the prompted and the frozen class tokens over the run's last 5% of steps (the profile's last epoch, stretched with the run).";
  const where = 'ASR % (CA %) on the test set (all of it at `small`); ASR over images whose true class is not the target.';
  const [title, caption] = isMarginProbe(p)
    ? [
        `Margin probe: RVPT trained longer with its repulsion capped (${p.dataset})`,
        `Each row: the tables' backdoored model, defended at the profile settings but for the shots per class, the augmentation, the number of steps (a multiple of the tables') and RVPT's margin m: its FR term is the mean over samples of max(cos, m), so the prompts stop repelling a token once its cosine to the frozen one is below m (-1: never, the paper's default). VPT has no FR term, so its runs are the budget probe's. ${where} ${fr} With a margin the term is the capped one, at least m.`,
      ]
    : isBudgetProbe(p)
      ? [
          `Budget probe: VPT and RVPT trained longer, with and without augmentation (${p.dataset})`,
          `Each row: the tables' backdoored model, defended at the profile settings but for the shots per class, the augmentation and the number of steps, a multiple of the tables' (epochs and warm-up stretched alike). ${where} ${fr}`,
        ]
      : [
          `Tuning-data probe: VPT and RVPT with more clean shots at the same steps, with and without augmentation (${p.dataset})`,
          `Each row: the tables' backdoored model, defended at the profile settings but for the shots per class and the augmentation; every run takes the same number of steps. ${where} Final FR: the mean cosine between the prompted and the frozen class tokens over the profile's last epoch of steps.`,
        ];
  return probeMarkdown(title, caption, tuningRows(p), p.provenance);
}

/**
 * Defend and measure every attack x variant on `dataset`'s backdoored models (cached; two processes when the profile
 * has two jobs), then write the files named by tuningStem into the profile's results folder (research/results/ for `small`).
 * Returns the JSON path.
 */
export async function runTuningProbe(
  profile: Profile,
  attacks?: string[],
  variants: TuningVariant[] = TUNING_GRID,
  log: (s: string) => void = () => {},
  dataset: string = profile.datasets.main,
): Promise<{ path: string; probe: TuningProbe }> {
  attacks ??= tuningAttacks(profile, dataset);
  if (!variants.length || !attacks.length) throw new Error('Tuning probe: no attacks or no variants to run.');
  if (externalWeights(profile)) throw new Error(`Tuning probe: profile '${profile.name}' takes its backdoored models from a weights file, and a fixed-steps run of 256 shots per class at ViT-B/32 takes hours on a CPU; use small or a profile file that extends it.`);
  const t0 = Date.now();
  const profiles = variants.map((v) => tuningProfile(profile, v));
  const jobs: CellJob[] = attacks.flatMap((attack) => profiles.flatMap((p) => TUNING_METHODS.map((method) => ({ profile: p, attack, method, dataset, testSets: [dataset] }))));
  await runCellsInParallel(jobs, profile.jobs ?? 1, log);
  const images = new Map<number, number>();
  for (const v of variants) if (!images.has(v.shots)) images.set(v.shots, (await loadShots(dataset, v.shots, profile.backdoor.seed)).labels.length);
  const baseEpochs = { ...RVPT_DEFAULTS, ...(profile.defenses.RVPT ?? {}) }.epochs;
  const rows: TuningRow[] = [];
  for (const attack of attacks) {
    const bd = await ensureBackdoored(profile, attack, { dataset, log });
    try {
      for (const [i, v] of variants.entries()) {
        log(`tuning probe ${attack}: ${v.shots} shots, ${v.augment ? 'augmented' : 'no augmentation'}, ${budgetOf(v)}x the tables' steps`);
        const metrics: Record<string, BackdoorMetrics> = { 'No defense': bd.metrics[dataset] };
        const fr: Record<string, number | null> = {};
        let steps = 0;
        for (const m of TUNING_METHODS) {
          const c = await runCell(profiles[i], attack, m, dataset, [dataset], { backdoored: bd, log });
          metrics[m] = c.metrics[dataset]!;
          fr[m] = c.history?.fr?.length ? finalFR(c.history.fr, baseEpochs) : null;
          steps = c.history?.loss?.length ?? 0;
        }
        rows.push({ attack, ...v, images: images.get(v.shots)!, steps, metrics, finalFR: fr });
      }
    } finally {
      bd.model.dispose();
    }
  }
  const config = { attacks, variants, methods: TUNING_METHODS, defenses: Object.fromEntries(TUNING_METHODS.map((m) => [m, profile.defenses[m] ?? {}])), shots: profile.shots, evalLimit: profile.evalLimit };
  const probe: TuningProbe = { probe: 'tuning data', dataset, rows, provenance: tableProvenance(profile, config, profile.backdoor.seed, (Date.now() - t0) / 1000) };
  return { path: writeProbe(profile, tuningStem(variants, dataset === profile.datasets.main ? undefined : dataset), probe, tuningMarkdown(probe)), probe };
}
