/**
 * The repulsion probe (the probes notebook, README "Defenses"). The scale probe compared RVPT at two widths at the paper's
 * alpha only, and one point per width cannot tell a better trade-off from a point further along the same one: the
 * wider model kept more CA but also removed less. This probe traces each width's whole trade-off instead. It runs
 * RVPT at several weights alpha of the repelling term on the tables' backdoored models of each profile (`small`, and
 * `research/profiles/wide.json`, the image tower twice as wide), with VPT (alpha 0) as the curve's start. At equal ASR, the
 * curve with the higher CA is the better trade-off.
 * Each point is the profile with RVPT's alpha overridden (`repulsionProfile`), so its cells are cached like the
 * tables', and the profile's own alpha *is* the tables' cell. On the emoji dataset (`--dataset emoji`) the same curve
 * is traced on Table 2's models, where prompt tuning has CA to gain.
 */
import * as path from 'path';
import { BackdoorMetrics } from '../../src/metrics/backdoor';
import { RVPT_DEFAULTS } from '../../src/defenses/rvpt';
import { ensureBackdoored } from '../../src/experiments/backdoorRun';
import { runCellsInParallel, CellJob } from '../../src/experiments/cellPool';
import { runCell } from '../../src/experiments/defenseRun';
import { externalWeights } from '../../src/experiments/externalWeights';
import { testSetNames } from '../../src/data/load';
import { Profile } from '../../src/experiments/profiles';
import { finalFR } from './strengthProbe';
import { TableProvenance, asrCaText, signedText, tableProvenance } from '../../src/experiments/tables';
import { ATTACK_COLOURS, ATTACK_SYMBOLS, committedProbe, groupRows, probeAttacks, probeMarkdown, targetRegion, writeProbe, labResults } from './probeFiles';
import { Figure } from '../../src/viz/plotly';
import { projectRoot } from '../../src/util/fsutil';

/** The committed alphas: half, once, twice and four times the paper's alpha = 2 (the tables'). */
export const REPULSION_ALPHAS = [1, 2, 4, 8];

/** The profiles of the committed probe, as `rvpt-lab repulsion-probe --profiles` takes them. */
export const REPULSION_PROFILES = ['small', 'research/profiles/wide.json'];

/** The attacks of the committed probe (the tuning probe's too: `probeAttacks`). */
export const repulsionAttacks = probeAttacks;

/** The files' stem: repulsion-probe on the main dataset, repulsion-probe-DATASET on another. */
export function repulsionFileName(profile: Profile, dataset: string): string {
  return dataset === profile.datasets.main ? 'repulsion-probe' : `repulsion-probe-${dataset}`;
}

/** The profile with RVPT's alpha set to `alpha`; the profile's own value leaves the config as written (the tables' cell). */
export function repulsionProfile(profile: Profile, alpha: number): Profile {
  if (!Number.isFinite(alpha) || alpha <= 0) throw new Error(`Repulsion probe: alpha ${alpha} must be a positive number (alpha 0 is VPT, which every curve starts from).`);
  const config = profile.defenses.RVPT ?? {};
  if ({ ...RVPT_DEFAULTS, ...config }.alpha === alpha) return profile;
  return { ...profile, defenses: { ...profile.defenses, RVPT: { ...config, alpha } } };
}

export interface RepulsionRow {
  profile: string;
  /** The image tower's width. */
  width: number;
  /**
   * The image tower's blocks. Files written before this field (widths 64, 128 and 256, all 6 blocks) lack it:
   * `committedRepulsionProbe` fills it in from the file's own provenance.
   */
  layers?: number;
  attack: string;
  /** 0: VPT. */
  alpha: number;
  /** The defended model on the probe's dataset's test set. */
  metrics: BackdoorMetrics;
  /** The undefended model's, for the CA change. */
  noDefense: BackdoorMetrics;
  /** The FR term (mean cosine to the frozen class tokens) over the last epoch of steps. */
  finalFR: number | null;
}

export interface RepulsionProbe {
  probe: 'repulsion';
  dataset: string;
  rows: RepulsionRow[];
  provenance: TableProvenance;
}

/** A committed probe (research/results/repulsion-probe.json; with a dataset, research/results/repulsion-probe-DATASET.json), for the probes notebook. */
export function committedRepulsionProbe(dataset?: string, file?: string): RepulsionProbe {
  return withLayers(committedProbe<RepulsionProbe>(dataset ? `repulsion-probe-${dataset}` : 'repulsion-probe', 'Repulsion probe', file, 'repulsion-probe'));
}

/** Rows without `layers` (files before it) get their profile's from the provenance's config, which records each model. */
export function withLayers(p: RepulsionProbe): RepulsionProbe {
  const models = (p.provenance.config as { profiles?: { name: string; model: { layers: number } }[] }).profiles ?? [];
  return {
    ...p,
    rows: p.rows.map((r) => {
      if (r.layers !== undefined) return r;
      const layers = models.find((m) => m.name === r.profile)?.model.layers;
      if (layers === undefined) throw new Error(`Repulsion probe: row of profile '${r.profile}' has no 'layers', and the file's provenance does not record that profile's model; rewrite the file with \`rvpt-lab repulsion-probe\`.`);
      return { ...r, layers };
    }),
  };
}

/**
 * Probes of one dataset read as one, their rows in order, for a table or figure across them (the committed widths 64
 * and 128 with 256). The provenance is the first probe's; each file keeps its own.
 */
export function joinRepulsionProbes(probes: RepulsionProbe[]): RepulsionProbe {
  if (!probes.length) throw new Error('Repulsion probe: no probes to join.');
  const datasets = [...new Set(probes.map((p) => p.dataset))];
  if (datasets.length > 1) throw new Error(`Repulsion probe: cannot join probes of different datasets (${datasets.join(', ')}); their CA and ASR are not comparable.`);
  return { probe: 'repulsion', dataset: datasets[0], rows: probes.flatMap((p) => p.rows), provenance: probes[0].provenance };
}

/**
 * The committed Fashion-MNIST curves at widths 64 and 128 (research/results/repulsion-probe.json) and 256 (research/results/wide256/).
 * Width 256 (`research/profiles/wide256.json`) is a probe of its own, `make repulsion-probe-wide256`: its pre-training and
 * backdoors take over an hour on two cores.
 */
export function committedWidthCurves(root = projectRoot()): RepulsionProbe {
  const wide256 = committedRepulsionProbeAt(root, 'wide256', 'Repulsion probe at width 256');
  return joinRepulsionProbes([committedRepulsionProbe(undefined, path.join(labResults(root), 'repulsion-probe.json')), wide256]);
}

/** A probe beyond research/results/repulsion-probe.json: its own profile (research/profiles/NAME.json), its results in research/results/NAME/. */
export interface ProfileProbe {
  name: string;
  label: string;
}

/** The probes of the scale grid beyond research/results/repulsion-probe.json: each in research/results/NAME/, by `make -C research repulsion-probe-NAME`. */
export const SCALE_PROBES: ProfileProbe[] = [
  { name: 'wide256', label: 'width 256' },
  { name: 'deep12', label: '12 blocks' },
  { name: 'wide-deep12', label: 'width 128 and 12 blocks' },
];

/** The pre-training probes: `small`'s tower pre-trained on a quarter of the data, or for four times the steps. */
export const PRETRAIN_PROBES: ProfileProbe[] = [
  { name: 'pretrain-15k', label: 'a quarter of the pre-training data' },
  { name: 'pretrain-4000', label: '4 times the pre-training steps' },
];

/**
 * Every committed Fashion-MNIST curve of the scale probes, one row set per image tower: widths 64 and 128 at 6 blocks
 * (research/results/repulsion-probe.json), width 256 (`research/profiles/wide256.json`), and 12 blocks, ViT-B/32's depth, prompted from
 * D = 3 as in the paper, at widths 64 (`research/profiles/deep12.json`) and 128 (`research/profiles/wide-deep12.json`).
 */
export function committedScaleCurves(root = projectRoot()): RepulsionProbe {
  return committedCurvesWith(SCALE_PROBES, root);
}

/**
 * `small`'s and `wide`'s curves (research/results/repulsion-probe.json) with those of `small`'s tower pre-trained on a quarter
 * of the Fashion-MNIST images (`research/profiles/pretrain-15k.json`) and for four times the steps (`research/profiles/pretrain-4000.json`).
 */
export function committedPretrainCurves(root = projectRoot()): RepulsionProbe {
  return committedCurvesWith(PRETRAIN_PROBES, root);
}

function committedCurvesWith(probes: ProfileProbe[], root: string): RepulsionProbe {
  const base = committedRepulsionProbe(undefined, path.join(labResults(root), 'repulsion-probe.json'));
  return joinRepulsionProbes([base, ...probes.map((s) => committedRepulsionProbeAt(root, s.name, `Repulsion probe at ${s.label}`))]);
}

/** research/results/NAME/repulsion-probe.json, written by `make -C research repulsion-probe-NAME`. */
function committedRepulsionProbeAt(root: string, name: string, label: string): RepulsionProbe {
  return withLayers(committedProbe<RepulsionProbe>('repulsion-probe', label, path.join(labResults(root), name, 'repulsion-probe.json'), `repulsion-probe-${name}`));
}

/** 'a', 'a and b', 'a, b and c'. */
function andList(xs: (string | number)[]): string {
  const w = xs.map(String);
  return w.length <= 2 ? w.join(' and ') : `${w.slice(0, -1).join(', ')} and ${w[w.length - 1]}`;
}

/** The image towers of a probe: 'image width 64, 128 and 256, 6 blocks'; 'image width 64, 6 and 12 blocks'. */
function towerList(p: RepulsionProbe): string {
  const widths = [...new Set(p.rows.map((r) => r.width))];
  const layers = [...new Set(p.rows.map((r) => r.layers).filter((l): l is number => l !== undefined))];
  if (layers.length === 0) return `image width ${andList(widths)}`;
  if (layers.length === 1) return `image width ${andList(widths)}, ${layers[0]} blocks`;
  if (widths.length === 1) return `image width ${widths[0]}, ${andList(layers)} blocks`;
  return `image towers ${andList([...new Set(p.rows.map((r) => `${r.width} wide x ${r.layers} blocks`))])}`;
}

/** A curve's profile and tower: 'small (64)', or with its depth known, 'deep12 (64 wide, 12 blocks)'. */
function towerLabel(r: { profile: string; width: number; layers?: number }): string {
  return `${r.profile} (${r.layers === undefined ? r.width : `${r.width} wide, ${r.layers} blocks`})`;
}

/** One curve's CA change where its ASR first reaches a level (`caCostAtAsr`). */
export interface CurveCost {
  profile: string;
  width: number;
  layers?: number;
  attack: string;
  /**
   * The CA change (points from No defense) at which the curve's ASR first reaches the level, read off the straight
   * line between the two alphas around the crossing; null where no alpha reaches it.
   */
  caChange: number | null;
  /** The alphas around the crossing (equal where a measured point is at or below the level and the one before is not). */
  alphas: [number, number] | null;
  /** The curve's lowest ASR and its point, for the curves that never reach the level. */
  lowest: { alpha: number; asr: number; caChange: number };
}

/**
 * What each curve pays in CA to bring the ASR down to `asr` percent (default: the target's 5%): walking up in alpha,
 * the first pair of points whose ASR crosses the level, interpolated linearly in ASR between them. A summary of the
 * curves in one number per width and attack, for comparing widths; between two measured alphas it is an estimate
 * (the curve between them is not measured, and one seed per point).
 */
export function caCostAtAsr(p: RepulsionProbe, asr = 5): CurveCost[] {
  return [...groupRows(p.rows, (r) => `${r.profile}|${r.attack}`).values()].map((group) => {
    const pts = [...group].sort((a, b) => a.alpha - b.alpha).map((r) => ({ alpha: r.alpha, asr: r.metrics.asr, ca: r.metrics.ca - r.noDefense.ca }));
    const lowest = pts.reduce((a, b) => (b.asr < a.asr ? b : a));
    const base = { profile: group[0].profile, width: group[0].width, layers: group[0].layers, attack: group[0].attack, lowest: { alpha: lowest.alpha, asr: lowest.asr, caChange: lowest.ca } };
    const i = pts.findIndex((q) => q.asr <= asr);
    if (i < 0) return { ...base, caChange: null, alphas: null };
    if (i === 0) return { ...base, caChange: pts[0].ca, alphas: [pts[0].alpha, pts[0].alpha] };
    const [a, b] = [pts[i - 1], pts[i]];
    return { ...base, caChange: a.ca + ((a.asr - asr) / (a.asr - b.asr)) * (b.ca - a.ca), alphas: [a.alpha, b.alpha] };
  });
}

/** `caCostAtAsr` as a table: one row per attack, one column per profile (width). */
export function caCostRows(p: RepulsionProbe, asr = 5): { header: string[]; rows: string[][] } {
  const costs = caCostAtAsr(p, asr);
  const profiles = [...new Set(costs.map(towerLabel))];
  const attacks = [...new Set(costs.map((c) => c.attack))];
  const text = (c: CurveCost | undefined) => {
    if (!c) return '–';
    if (c.caChange === null) return `not reached (lowest ${c.lowest.asr.toFixed(2)}% at α ${c.lowest.alpha}, ${signedText(c.lowest.caChange, 1)})`;
    const [a, b] = c.alphas!;
    return `${signedText(c.caChange, 1)} (${a === b ? (a === 0 ? 'VPT' : `α ${a}`) : `between α ${a} and ${b}`})`;
  };
  return {
    header: ['attack', ...profiles.map((w) => `${w}: CA change at ${asr}% ASR`)],
    rows: attacks.map((a) => [a, ...profiles.map((w) => text(costs.find((c) => c.attack === a && towerLabel(c) === w)))]),
  };
}

export function repulsionRows(p: RepulsionProbe): { header: string[]; rows: string[][] } {
  const header = [p.rows.some((r) => r.layers !== undefined) ? 'profile (image tower)' : 'profile (width)', 'attack', 'alpha', 'ASR (CA)', 'CA minus No defense', 'final FR'];
  const rows = p.rows.map((r) => [
    towerLabel(r),
    r.attack,
    r.alpha === 0 ? '0 (VPT)' : String(r.alpha),
    asrCaText(r.metrics),
    signedText(r.metrics.ca - r.noDefense.ca, 2),
    r.finalFR === null ? '–' : r.finalFR.toFixed(3),
  ]);
  return { header, rows };
}

/** One line style per profile, in the probe's order: the narrowest model dotted (with open markers), the next solid. */
const PROFILE_DASHES = ['dot', 'solid', 'dash', 'longdash'];

/**
 * At each ASR, what it costs in CA: the CA change from the undefended model (x) against the ASR (y) at each alpha, one
 * curve per profile and attack, with the paper-level target region (ASR at most 5%, CA at most 2 points down).
 */
export function repulsionFigure(p: RepulsionProbe): Figure {
  const groups = groupRows(p.rows, (r) => `${r.attack}|${r.profile}`);
  const profiles = [...new Set(p.rows.map((r) => r.profile))];
  const data = [...groups.values()].map((rows) => {
    const r0 = rows[0];
    const first = profiles.indexOf(r0.profile) === 0;
    return {
      type: 'scatter',
      mode: 'lines+markers+text',
      name: `${r0.attack}, ${r0.profile} (width ${r0.width}${r0.layers === undefined ? '' : `, ${r0.layers} blocks`})`,
      x: rows.map((r) => r.metrics.ca - r.noDefense.ca),
      y: rows.map((r) => r.metrics.asr),
      text: rows.map((r) => (r.alpha === 0 ? 'VPT' : `α${r.alpha}`)),
      textposition: 'top center',
      marker: { size: 9, symbol: (ATTACK_SYMBOLS[r0.attack] ?? 'circle') + (first ? '-open' : ''), color: ATTACK_COLOURS[r0.attack] },
      line: { dash: PROFILE_DASHES[profiles.indexOf(r0.profile) % PROFILE_DASHES.length], color: ATTACK_COLOURS[r0.attack] },
    };
  });
  return {
    data,
    layout: {
      title: { text: `RVPT's trade-off as alpha grows (${p.dataset}, ${towerList(p)}; VPT is alpha 0)` },
      xaxis: { title: { text: 'CA minus No defense CA (points)' } },
      yaxis: { title: { text: 'ASR (%)' }, range: [-3, 105] },
      ...targetRegion(data.flatMap((d) => d.x as (number | null)[])),
    },
  };
}

export function repulsionMarkdown(p: RepulsionProbe): string {
  return probeMarkdown(
    `Repulsion probe: VPT and RVPT at several alphas, on ${p.dataset} (${towerList(p)})`,
    "Each row: a profile's backdoored model from its tables, defended by VPT (alpha 0) or RVPT at the given alpha, all else at the profile's settings. ASR % (CA %) on the dataset's test set (all of it); ASR over images whose true class is not the target. Final FR: the mean cosine between the prompted and the frozen class tokens over the last epoch of steps.",
    repulsionRows(p),
    p.provenance,
  );
}

/**
 * Defend and measure every profile x attack x alpha on `dataset` (default: the first profile's main one; cached, and on
 * all of the dataset's test sets as the tables' cells are; two processes when the first profile has two jobs), then
 * write repulsion-probe[-DATASET].{json,md} into the first profile's results folder (research/results/ for `small`). Returns the
 * JSON path.
 */
export async function runRepulsionProbe(
  profiles: Profile[],
  attacks?: string[],
  alphas: number[] = REPULSION_ALPHAS,
  log: (s: string) => void = () => {},
  dataset = profiles[0]?.datasets.main,
): Promise<{ path: string; probe: RepulsionProbe }> {
  if (!profiles.length || !alphas.length) throw new Error('Repulsion probe: no profiles or no alphas to run.');
  for (const p of profiles) {
    if (externalWeights(p)) throw new Error(`Repulsion probe: profile '${p.name}' takes its backdoored models from a weights file; the probe compares profiles that make their own (small, research/profiles/wide.json).`);
  }
  const t0 = Date.now();
  const testSets = testSetNames(dataset);
  const variants = profiles.map((p) => alphas.map((a) => repulsionProfile(p, a)));
  const attacksOf = (p: Profile) => attacks ?? repulsionAttacks(p, dataset);
  const cell = (profile: Profile, attack: string, method: string): CellJob => ({ profile, attack, method, dataset, testSets });
  const jobs = profiles.flatMap((p, i) => attacksOf(p).flatMap((a) => [cell(p, a, 'VPT'), ...variants[i].map((v) => cell(v, a, 'RVPT'))]));
  await runCellsInParallel(jobs, profiles[0].jobs ?? 1, log);
  const rows: RepulsionRow[] = [];
  let trainingSeconds = 0;
  for (const [i, p] of profiles.entries()) {
    const epochs = (m: string) => ({ ...RVPT_DEFAULTS, ...(p.defenses[m] ?? {}) }).epochs;
    for (const attack of attacksOf(p)) {
      const bd = await ensureBackdoored(p, attack, { dataset, log });
      try {
        const noDefense = bd.metrics[dataset];
        const point = async (v: Profile, method: string, alpha: number) => {
          log(`repulsion probe ${p.name} ${attack}: alpha ${alpha}`);
          const c = await runCell(v, attack, method, dataset, testSets, { backdoored: bd, log });
          trainingSeconds += c.cost.seconds;
          rows.push({ profile: p.name, width: p.model.width, layers: p.model.layers, attack, alpha, metrics: c.metrics[dataset]!, noDefense, finalFR: c.history?.fr?.length ? finalFR(c.history.fr, epochs(method)) : null });
        };
        await point(p, 'VPT', 0);
        for (const [k, alpha] of alphas.entries()) await point(variants[i][k], 'RVPT', alpha);
      } finally {
        bd.model.dispose();
      }
    }
  }
  const config = {
    profiles: profiles.map((p) => ({ name: p.name, model: p.model, pretrain: p.pretrain, defenses: { VPT: p.defenses.VPT ?? {}, RVPT: p.defenses.RVPT ?? {} }, shots: p.shots, evalLimit: p.evalLimit })),
    attacks: attacks ?? null,
    alphas,
  };
  const probe: RepulsionProbe = { probe: 'repulsion', dataset, rows, provenance: { ...tableProvenance(profiles[0], config, profiles[0].backdoor.seed, (Date.now() - t0) / 1000), trainingSeconds } };
  return { path: writeProbe(profiles[0], repulsionFileName(profiles[0], dataset), probe, repulsionMarkdown(probe)), probe };
}
