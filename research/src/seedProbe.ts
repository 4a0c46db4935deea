/**
 * The seed probe (the probes notebook, README "Defenses"). Every cell of the tables, and every point of the other probes, is
 * one defense run at one seed, and the probes' readings ("width 128 trades better", "Blended's curve is not
 * monotone") compare such single runs. This probe measures how far a cell moves when only the defense's seed changes:
 * which 16 clean shots per class it is tuned on, the prompts' initialisation, the batch order and the augmentation.
 * The backdoored model and the test set (with its triggers) stay the tables' own, so the spread is the defense's alone.
 * Each run is the profile with the method's `seed` set (`seedProfile`, read by defenseRun.ts's defenseSeed); the
 * profile's own seed *is* the tables' cell.
 */
import * as path from 'path';
import { projectRoot } from '../../src/util/fsutil';
import { BackdoorMetrics } from '../../src/metrics/backdoor';
import { ensureBackdoored } from '../../src/experiments/backdoorRun';
import { runCellsInParallel, CellJob } from '../../src/experiments/cellPool';
import { runCell } from '../../src/experiments/defenseRun';
import { externalWeights } from '../../src/experiments/externalWeights';
import { availableAttacks } from '../../src/experiments/paperTables';
import { ATTACK_NAMES } from '../../src/attacks/registry';
import { testSetNames } from '../../src/data/load';
import { Profile, getProfile, loadProfileFile } from '../../src/experiments/profiles';
import { TableProvenance, asrCaText, signedText, tableProvenance } from '../../src/experiments/tables';
import { ATTACK_COLOURS, ATTACK_SYMBOLS, committedProbe, groupRows, probeMarkdown, targetRegion, writeProbe, labResults } from './probeFiles';
import { markdownTable } from '../../src/viz/notebook';
import { median } from '../../src/util/stats';
import { Figure } from '../../src/viz/plotly';
import { FR_TOKENS, FrToken, PromptTuningConfig, RVPT_DEFAULTS, isFrToken, repelledLayers } from '../../src/defenses/rvpt';
import { promptLayers } from '../../src/model/prompts';
import { RVPT_TARGET, inRvptTarget } from '../../src/metrics/target';
import { tuningProfile } from './tuningProbe';
import { PRETRAIN_PROBES } from './repulsionProbe';

/** The committed seeds: the tables' (0 at `small`) and four more. */
export const SEED_PROBE_SEEDS = [0, 1, 2, 3, 4];

/** The two prompt-tuning defenses: the spread of each, and whether RVPT's lead over VPT outlasts it. */
export const SEED_PROBE_METHODS = ['VPT', 'RVPT'];

export { RVPT_TARGET, atTargetAsr, withinCaBudget, inRvptTarget } from '../../src/metrics/target';

/** The attacks of the committed probe: each table's (Table 1's six on the main dataset, Table 2's three on emoji). */
export function seedProbeAttacks(profile: Profile, dataset = profile.datasets.main): string[] {
  return availableAttacks(profile, dataset, dataset === profile.datasets.main ? ATTACK_NAMES : ['BadNet', 'Blended', 'WaNet']);
}

/**
 * The files' stem: seed-probe on the main dataset, seed-probe-DATASET on another; -fixed-shots when the shots stay the
 * tables'; -fr-ln-post when RVPT's FR reads the last block's token after ln_post; -fr-layers-3-5 when it repels at
 * blocks 3 and 5 (1-based, as the notebooks count blocks) rather than at every prompted one; -budget-16 when the runs
 * take 16 times the tables' steps.
 */
export function seedProbeFileName(profile: Profile, dataset: string, fixedShots = false, frToken: FrToken = 'residual', frLayers?: number[], budget = 1): string {
  const fr = frToken === 'residual' ? [] : [`fr-${frToken.replace('_', '-')}`];
  const layers = frLayers ? [`fr-layers-${frLayers.map((l) => l + 1).join('-')}`] : [];
  const longer = budget === 1 ? [] : [`budget-${budget}`];
  return ['seed-probe', ...(dataset === profile.datasets.main ? [] : [dataset]), ...(fixedShots ? ['fixed-shots'] : []), ...fr, ...layers, ...longer].join('-');
}

/**
 * The profile with VPT's and RVPT's steps `budget` times the tables' (the tuning probe's budget: epochs and warm-up
 * stretched alike, the shots and augmentation as they are); 1 is the profile.
 */
export function budgetProfile(profile: Profile, budget = 1): Profile {
  if (budget === 1) return profile;
  const augment = { ...RVPT_DEFAULTS, ...(profile.defenses.RVPT ?? {}) }.augment !== null;
  return tuningProfile(profile, { shots: profile.shots, augment, budget });
}

/** The profile with RVPT's FR reading the last block's class token at `frToken` (rvpt.ts); 'residual' is the profile. */
export function frTokenProfile(profile: Profile, frToken: FrToken): Profile {
  if (!isFrToken(frToken)) throw new Error(`Seed probe: --fr-token ${JSON.stringify(frToken)} must be one of ${FR_TOKENS.join(', ')}.`);
  if (frToken === 'residual') return profile;
  return { ...profile, defenses: { ...profile.defenses, RVPT: { ...(profile.defenses.RVPT ?? {}), frToken } } };
}

/**
 * The profile with RVPT's FR at the blocks `frLayers` (0-based, rvpt.ts `frLayers`) instead of every prompted one;
 * undefined is the profile. The list is checked against the profile's prompted blocks here, before any run.
 */
export function frLayersProfile(profile: Profile, frLayers: number[] | undefined): Profile {
  if (frLayers === undefined) return profile;
  const rvpt = { ...RVPT_DEFAULTS, ...(profile.defenses.RVPT ?? {}) } as PromptTuningConfig;
  const L = profile.model.layers;
  const prompted = promptLayers(L, { length: rvpt.promptLength, depth: rvpt.depth, layers: rvpt.layers });
  const first = Math.min(...prompted);
  const early = frLayers.find((l) => l < first);
  if (early !== undefined) {
    throw new Error(`Seed probe: --fr-layers names block ${early + 1}, before profile '${profile.name}''s first prompted block, ${first + 1}: there the prompted and the frozen class tokens are the same. Give blocks ${first + 1} to ${L}.`);
  }
  const checked = repelledLayers('Seed probe', L, prompted, frLayers);
  return { ...profile, defenses: { ...profile.defenses, RVPT: { ...(profile.defenses.RVPT ?? {}), frLayers: checked } } };
}

/**
 * The profile with `method`'s seed set to `seed`; with `fixedShots`, the shots stay those of the profile's seed (only
 * the initialisation, batch order and augmentation change). The profile's own seed leaves the config as written (the
 * tables' cell).
 */
export function seedProfile(profile: Profile, method: string, seed: number, fixedShots = false): Profile {
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`Seed probe: seed ${seed} must be a whole number of at least 0.`);
  const current = profile.defenses[method] ?? {};
  const { seed: _seed, shotsSeed: _shotsSeed, ...rest } = current;
  if (seed === profile.backdoor.seed && !('seed' in current) && !('shotsSeed' in current)) return profile;
  const config = seed === profile.backdoor.seed ? rest : { ...rest, seed, ...(fixedShots ? { shotsSeed: profile.backdoor.seed } : {}) };
  return { ...profile, defenses: { ...profile.defenses, [method]: config } };
}

export interface SeedRow {
  attack: string;
  method: string;
  seed: number;
  /** The defended model on the dataset's test set. */
  metrics: BackdoorMetrics;
  /** The undefended model's, for the CA change (the same model at every seed). */
  noDefense: BackdoorMetrics;
}

export interface SeedProbe {
  probe: 'seed';
  dataset: string;
  /** Whether every run was tuned on the tables' shots (only the initialisation, order and augmentation vary); absent: no. */
  fixedShots?: boolean;
  /** Where RVPT's FR read the last block's class token, when not the tables' residual stream; its RVPT rows are then not the tables' cells. */
  frToken?: FrToken;
  /** The blocks (0-based) at which RVPT's FR repelled, when not every prompted one; its RVPT rows are then not the tables' cells. */
  frLayers?: number[];
  /** VPT's and RVPT's steps as a multiple of the tables', when not 1; its rows are then not the tables' cells. */
  budget?: number;
  /** The tables' seed: its rows are the tables' cells (but RVPT's with another frToken or frLayers, and none with a budget). */
  tableSeed: number;
  rows: SeedRow[];
  provenance: TableProvenance;
}

/**
 * A committed probe, for the probes notebook: research/results/seed-probe.json, or with a variant research/results/seed-probe-VARIANT.json
 * (emoji: Table 2's models; fixed-shots: the tables' shots at every seed).
 */
export function committedSeedProbe(variant?: string, file?: string): SeedProbe {
  return committedProbe<SeedProbe>(variant ? `seed-probe-${variant}` : 'seed-probe', 'Seed probe', file, 'seed-probe');
}

/**
 * The seed probes of profiles beyond the tables' beside the tables' (small's), labelled by profile and image tower,
 * for `seedSummaryRowsAcross`: research/results/NAME/seed-probe.json, written by `make -C research repulsion-probe-NAME`.
 */
export function committedSeedProbesWith(names: string[], root = projectRoot()): { model: string; probe: SeedProbe }[] {
  const tower = (p: Profile) => `${p.name} (${p.model.width} wide, ${p.model.layers} blocks)`;
  const at = (name: string) => ({
    model: tower(loadProfileFile(path.join(root, 'research', 'profiles', `${name}.json`))),
    probe: committedProbe<SeedProbe>('seed-probe', `Seed probe of ${name}`, path.join(labResults(root), name, 'seed-probe.json'), `repulsion-probe-${name}`),
  });
  return [{ model: tower(getProfile('small')), probe: committedSeedProbe(undefined, path.join(labResults(root), 'seed-probe.json')) }, ...names.map(at)];
}

/** The twelve-block towers' seed probes (research/results/deep12/, research/results/wide-deep12/) beside the tables'. */
export const committedDepthSeedProbes = (root = projectRoot()) => committedSeedProbesWith(['deep12', 'wide-deep12'], root);

/** The pre-training probes' seed probes (research/results/pretrain-15k/, research/results/pretrain-4000/) beside the tables'. */
export const committedPretrainSeedProbes = (root = projectRoot()) => committedSeedProbesWith(PRETRAIN_PROBES.map((p) => p.name), root);

/** The probe's FR token when it is not the tables' (its RVPT runs are then not the tables' cells). */
const otherFrToken = (p: SeedProbe) => (p.frToken && p.frToken !== 'residual' ? p.frToken : undefined);

/** Whether a row is a table's cell: the tables' seed, at the tables' settings. */
export const isTableRow = (p: SeedProbe, r: SeedRow) => r.seed === p.tableSeed && !(p.budget && p.budget !== 1) && !((otherFrToken(p) || p.frLayers) && r.method === 'RVPT');

const byAttackAndMethod = (p: SeedProbe) => groupRows(p.rows, (r) => `${r.attack}|${r.method}`);

const meetsTarget = (r: SeedRow) => inRvptTarget(r.metrics.asr, r.metrics.ca - r.noDefense.ca);

export interface SeedSummary {
  attack: string;
  method: string;
  seeds: number;
  /** The tables' cell. */
  table: BackdoorMetrics | null;
  asr: { median: number; min: number; max: number };
  /** CA minus No defense. */
  caChange: { median: number; min: number; max: number };
  /** Seeds whose run meets the paper-level target (ASR at most 5%, CA at most 2 points down). */
  meetTarget: number;
}

/** Per attack and method: the median and range over seeds, the tables' cell among them, and how many meet the target. */
export function seedSummaries(p: SeedProbe): SeedSummary[] {
  const groups = byAttackAndMethod(p);
  const spread = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });
  return [...groups.values()].map((rows) => ({
    attack: rows[0].attack,
    method: rows[0].method,
    seeds: rows.length,
    table: rows.find((r) => isTableRow(p, r))?.metrics ?? null,
    asr: spread(rows.map((r) => r.metrics.asr)),
    caChange: spread(rows.map((r) => r.metrics.ca - r.noDefense.ca)),
    meetTarget: rows.filter(meetsTarget).length,
  }));
}

export function seedSummaryRows(p: SeedProbe): { header: string[]; rows: string[][] } {
  const header = ['attack', 'method', 'seeds', `table's cell (seed ${p.tableSeed})`, 'ASR median [min, max]', 'CA minus No defense, median [min, max]', 'runs meeting the target'];
  const rows = seedSummaries(p).map((s) => [
    s.attack,
    s.method,
    String(s.seeds),
    asrCaText(s.table),
    `${s.asr.median.toFixed(2)} [${s.asr.min.toFixed(2)}, ${s.asr.max.toFixed(2)}]`,
    `${signedText(s.caChange.median, 2)} [${signedText(s.caChange.min, 2)}, ${signedText(s.caChange.max, 2)}]`,
    `${s.meetTarget} of ${s.seeds}`,
  ]);
  return { header, rows };
}

/**
 * Several models' seed probes side by side (the scale probe's image towers): per model, attack and method, the median
 * and range over seeds of ASR and CA change, and the runs meeting the target. `attacks` keeps those attacks only (the
 * tables' probe holds six, the scale grid's three).
 */
export function seedSummaryRowsAcross(entries: { model: string; probe: SeedProbe }[], attacks?: string[]): { header: string[]; rows: string[][] } {
  const header = ['model', 'attack', 'method', 'seeds', 'ASR median [min, max]', 'CA minus No defense, median [min, max]', 'runs meeting the target'];
  const rows = entries.flatMap(({ model, probe }) =>
    seedSummaries(probe)
      .filter((s) => !attacks || attacks.includes(s.attack))
      .map((s) => [
        model,
        s.attack,
        s.method,
        String(s.seeds),
        `${s.asr.median.toFixed(2)} [${s.asr.min.toFixed(2)}, ${s.asr.max.toFixed(2)}]`,
        `${signedText(s.caChange.median, 2)} [${signedText(s.caChange.min, 2)}, ${signedText(s.caChange.max, 2)}]`,
        `${s.meetTarget} of ${s.seeds}`,
      ]),
  );
  return { header, rows };
}

/**
 * Two probes' runs paired by attack, method and seed (e.g. the ln_post variant against the tables' settings): per
 * attack and method, `b` minus `a` in ASR and in CA, median [min, max] over the seeds both hold.
 */
export function pairedSeedRows(a: SeedProbe, b: SeedProbe): { header: string[]; rows: string[][] } {
  const key = (r: SeedRow) => `${r.attack}|${r.method}|${r.seed}`;
  const inA = new Map(a.rows.map((r) => [key(r), r]));
  const pairs = b.rows.filter((r) => inA.has(key(r))).map((r) => ({ attack: r.attack, method: r.method, a: inA.get(key(r))!.metrics, b: r.metrics }));
  if (!pairs.length) throw new Error('pairedSeedRows: the two probes share no attack, method and seed.');
  const range = (xs: number[]) => `${signedText(median(xs), 2)} [${signedText(Math.min(...xs), 2)}, ${signedText(Math.max(...xs), 2)}]`;
  const rows = [...groupRows(pairs, (x) => `${x.attack}|${x.method}`).values()].map((g) => [
    g[0].attack,
    g[0].method,
    String(g.length),
    range(g.map((x) => x.b.asr - x.a.asr)),
    range(g.map((x) => x.b.ca - x.a.ca)),
  ]);
  return { header: ['attack', 'method', 'seeds', 'ASR change, median [min, max]', 'CA change, median [min, max]'], rows };
}

export function seedRows(p: SeedProbe): { header: string[]; rows: string[][] } {
  // Results from before the clean-to-target floor was measured lack it: the column appears where every run has it.
  const floor = p.rows.length > 0 && p.rows.every((r) => r.metrics.cleanToTarget !== undefined);
  const header = ['attack', 'method', 'seed', 'ASR (CA)', 'CA minus No defense', ...(floor ? ['clean images to the target (the ASR floor)'] : [])];
  const rows = p.rows.map((r) => [
    r.attack,
    r.method,
    isTableRow(p, r) ? `${r.seed} (tables)` : String(r.seed),
    asrCaText(r.metrics),
    signedText(r.metrics.ca - r.noDefense.ca, 2),
    ...(floor ? [r.metrics.cleanToTarget!.toFixed(2)] : []),
  ]);
  return { header, rows };
}

/**
 * Every run: ASR (y) against the CA change from the undefended model (x), one colour per attack, VPT open and RVPT
 * filled, the tables' seed larger; with the paper-level target region (ASR at most 5%, CA at most 2 points down).
 */
export function seedFigure(p: SeedProbe): Figure {
  const groups = byAttackAndMethod(p);
  const data: Record<string, unknown>[] = [...groups.values()].map((rows) => {
    const r0 = rows[0];
    const vpt = r0.method === 'VPT';
    return {
      type: 'scatter',
      mode: 'markers',
      name: `${r0.attack}, ${r0.method}`,
      x: rows.map((r) => r.metrics.ca - r.noDefense.ca),
      y: rows.map((r) => r.metrics.asr),
      text: rows.map((r) => `seed ${r.seed}${isTableRow(p, r) ? ' (tables)' : ''}`),
      marker: { size: rows.map((r) => (isTableRow(p, r) ? 13 : 8)), symbol: (ATTACK_SYMBOLS[r0.attack] ?? 'circle') + (vpt ? '-open' : ''), color: ATTACK_COLOURS[r0.attack] },
    };
  });
  return {
    data,
    layout: {
      title: { text: `VPT (open) and RVPT (filled) at ${[...new Set(p.rows.map((r) => r.seed))].length} defense seeds${p.fixedShots ? ", the tables' shots at each" : ''}${frNote(p)} (${p.dataset}; larger: the tables' seed)` },
      xaxis: { title: { text: 'CA minus No defense CA (points)' } },
      yaxis: { title: { text: 'ASR (%)' }, range: [-3, 105] },
      ...targetRegion(data.flatMap((d) => d.x as number[])),
    },
  };
}

const frNote = (p: SeedProbe) =>
  (otherFrToken(p) ? `, RVPT's FR on the last block's token after ${p.frToken}` : '') +
  (p.frLayers ? `, RVPT's FR at block${p.frLayers.length > 1 ? 's' : ''} ${p.frLayers.map((l) => l + 1).join(', ')} only` : '') +
  (p.budget && p.budget !== 1 ? `, ${p.budget} times the tables' steps` : '');

export function seedMarkdown(p: SeedProbe): string {
  const perSeed = seedRows(p);
  return [
    probeMarkdown(
      `Seed probe: VPT and RVPT at several defense seeds on the tables' backdoored models (${p.dataset}${p.fixedShots ? ", the tables' shots at every seed" : ''}${frNote(p)})`,
      `Each run: a table's backdoored model defended at the profile's settings but for the defense's seed (${p.fixedShots ? "the prompts' initialisation, the batch order and the augmentation; the clean shots are the tables' at every seed" : "the clean shots drawn, the prompts' initialisation, the batch order and the augmentation"}); the backdoored model and the test set are the same at every seed. ASR % (CA %) on the test set (all of it); ASR over images whose true class is not the target. Target: ASR at most ${RVPT_TARGET.asr}% and CA at most ${RVPT_TARGET.caDrop} points below No defense.`,
      seedSummaryRows(p),
      p.provenance,
    ).trimEnd(),
    '',
    '## Every run',
    '',
    markdownTable(perSeed.header, perSeed.rows),
    '',
  ].join('\n');
}

export interface SeedProbeOptions {
  /** Default: the dataset's table's (seedProbeAttacks). */
  attacks?: string[];
  seeds?: number[];
  /** Default: the profile's main dataset; emoji: Table 2's models. */
  dataset?: string;
  methods?: string[];
  /** Tune every run on the tables' shots, so that only the initialisation, order and augmentation vary. */
  fixedShots?: boolean;
  /** Where RVPT's FR reads the last block's class token (default: 'residual', the tables'). */
  frToken?: FrToken;
  /** The blocks (0-based) at which RVPT's FR repels (default: every prompted block, the tables'). */
  frLayers?: number[];
  /** VPT's and RVPT's steps as a multiple of the tables' (default 1). */
  budget?: number;
  log?: (s: string) => void;
}

/**
 * Defend and measure every attack x method x seed on the dataset (cached, and on all of the dataset's test sets as the
 * tables' cells are, so the tables' seed reads their cells; two processes when the profile has two jobs), then write
 * seed-probe[-DATASET][-fixed-shots].{json,md} into the profile's results folder (research/results/ for `small`). Returns the
 * JSON path.
 */
export async function runSeedProbe(profile: Profile, opts: SeedProbeOptions = {}): Promise<{ path: string; probe: SeedProbe }> {
  const { seeds = SEED_PROBE_SEEDS, dataset = profile.datasets.main, methods = SEED_PROBE_METHODS, fixedShots = false, frToken = 'residual', budget = 1, log = () => {} } = opts;
  // The same name: the tables' backdoored models and results folder.
  profile = budgetProfile(frLayersProfile(frTokenProfile(profile, frToken), opts.frLayers), budget);
  const frLayers = profile.defenses.RVPT?.frLayers as number[] | undefined;
  if (!seeds.length || !methods.length) throw new Error('Seed probe: no seeds or no methods to run.');
  if (new Set(seeds).size !== seeds.length) throw new Error(`Seed probe: seeds ${seeds.join(',')} repeat a seed; give each once.`);
  for (const m of methods) if (!SEED_PROBE_METHODS.includes(m)) throw new Error(`Seed probe: method '${m}' is not one of ${SEED_PROBE_METHODS.join(', ')} (the prompt-tuning defenses, whose cells the probe reruns).`);
  if (externalWeights(profile)) throw new Error(`Seed probe: profile '${profile.name}' takes its backdoored models from a weights file; run the probe at small or a profile file that makes its own.`);
  const t0 = Date.now();
  const testSets = testSetNames(dataset);
  const list = opts.attacks ?? seedProbeAttacks(profile, dataset);
  const variant = (m: string, s: number) => seedProfile(profile, m, s, fixedShots);
  const jobs: CellJob[] = list.flatMap((attack) => methods.flatMap((method) => seeds.map((s) => ({ profile: variant(method, s), attack, method, dataset, testSets }))));
  await runCellsInParallel(jobs, profile.jobs ?? 1, log);
  const rows: SeedRow[] = [];
  let trainingSeconds = 0;
  for (const attack of list) {
    const bd = await ensureBackdoored(profile, attack, { dataset, log });
    try {
      for (const method of methods) {
        for (const seed of seeds) {
          const c = await runCell(variant(method, seed), attack, method, dataset, testSets, { backdoored: bd, log });
          trainingSeconds += c.cost.seconds;
          rows.push({ attack, method, seed, metrics: c.metrics[dataset]!, noDefense: bd.metrics[dataset] });
        }
      }
    } finally {
      bd.model.dispose();
    }
  }
  const config = { attacks: list, methods, seeds, fixedShots, defenses: Object.fromEntries(methods.map((m) => [m, profile.defenses[m] ?? {}])), shots: profile.shots, evalLimit: profile.evalLimit };
  const fr = { ...(frToken === 'residual' ? {} : { frToken }), ...(frLayers ? { frLayers } : {}), ...(budget === 1 ? {} : { budget }) };
  const probe: SeedProbe = { probe: 'seed', dataset, fixedShots, ...fr, tableSeed: profile.backdoor.seed, rows, provenance: { ...tableProvenance(profile, config, profile.backdoor.seed, (Date.now() - t0) / 1000), trainingSeconds } };
  return { path: writeProbe(profile, seedProbeFileName(profile, dataset, fixedShots, frToken, frLayers, budget), probe, seedMarkdown(probe)), probe };
}
