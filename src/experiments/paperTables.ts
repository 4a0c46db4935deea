/**
 * The paper's tables at our scale, all from cached cells (defenseRun.ts):
 * - Table 1: the main dataset (Fashion-MNIST; ImageNet's role), six attacks x five methods.
 * - Table 2: the emoji dataset (Caltech101/OxfordPets' role), BadNet, Blended, WaNet.
 * - Table 3: purified on the training artist (Twemoji), tested on the other artists (the paper's ImageNet-V2/-R/
 *   -Sketch), BadNet, Blended, BadCLIP, for No defense, CleanCLIP and RVPT.
 * - The cost table: CleanCLIP against RVPT (the paper's Table 9).
 */
import { ATTACK_NAMES, makeTrigger } from '../attacks/registry';
import { DefenseCost } from '../defenses/defense';
import { gitCommit } from '../util/provenance';
import { BackdoorResult, ensureBackdoored, testSetNames } from './backdoorRun';
import { CellResult, runCell } from './defenseRun';
import { CellJob } from './cellPool';
import { Profile } from './profiles';
import { externalWeights } from './externalWeights';
import { Cell, METHODS, ResultsTable, TableData, tableProvenance, writeTable, resultsDir } from './tables';
import { median } from '../util/stats';
import { writeFileAtomic, writeJsonAtomic } from '../util/fsutil';
import * as path from 'path';

export interface TableSpec {
  name: string;
  title: string;
  dataset: string;
  attacks: string[];
  methods: string[];
  /** Test sets reported (each a dataset entry of the table). */
  report: string[];
}

/**
 * The attacks a profile can run on a dataset, of `among`: all of them when it injects its own backdoors; at paper
 * scale those the weights file has a checkpoint for and whose trigger can be made without the poisoning run (BadNet,
 * Blended, WaNet: TrojVQA's and BadCLIP's patches and ISSBA's encoder belong to the run that made the checkpoint).
 */
export function availableAttacks(profile: Profile, dataset: string, among: string[] = ATTACK_NAMES): string[] {
  const ext = externalWeights(profile);
  if (!ext) return among;
  return among.filter((a) => {
    const v = ext.backdoored[a];
    return (typeof v === 'string' || !!v?.[dataset]) && !makeTrigger(a).prepare;
  });
}

export function paperTableSpecs(profile: Profile): TableSpec[] {
  const main = profile.datasets.main;
  const emoji = profile.datasets.emoji;
  if (externalWeights(profile)) {
    // Paper scale: the methods that need no pre-training corpus (CleanCLIP fine-tunes on CC3M, which is not part of
    // this setting); Table 3 is the paper's domain-shift table (tuned on ImageNet, tested on its shifts).
    const methods = METHODS.filter((m) => m !== 'CleanCLIP');
    const specs: TableSpec[] = [{ name: 'table1', title: `Table 1: ${main}, ASR (CA)`, dataset: main, attacks: availableAttacks(profile, main), methods, report: [main] }];
    for (const [i, d] of [emoji, ...(profile.datasets.more ?? [])].entries()) {
      specs.push({ name: i ? `table2-${d}` : 'table2', title: `Table 2: ${d}, ASR (CA)`, dataset: d, attacks: availableAttacks(profile, d, ['BadNet', 'Blended', 'WaNet']), methods, report: [d] });
    }
    specs.push({ name: 'table3', title: `Table 3: purified on ${main}, tested on its distribution shifts, ASR (CA)`, dataset: main, attacks: availableAttacks(profile, main, ['BadNet', 'Blended', 'BadCLIP']), methods: ['No defense', 'RVPT'], report: testSetNames(main) });
    return specs;
  }
  return [
    { name: 'table1', title: `Table 1: ${main}, ASR (CA)`, dataset: main, attacks: ATTACK_NAMES, methods: METHODS, report: [main] },
    { name: 'table2', title: `Table 2: ${emoji}, ASR (CA)`, dataset: emoji, attacks: ['BadNet', 'Blended', 'WaNet'], methods: METHODS, report: [emoji] },
    { name: 'table3', title: `Table 3: purified on ${emoji} (Twemoji), tested on other artists, ASR (CA)`, dataset: emoji, attacks: ['BadNet', 'Blended', 'BadCLIP'], methods: ['No defense', 'CleanCLIP', 'RVPT'], report: testSetNames(emoji) },
  ];
}

/** The seeds of a table's defense runs: the profile's `seeds`, or its one seed. */
export function tableSeeds(profile: Profile): number[] {
  return profile.seeds ?? [profile.backdoor.seed];
}

/**
 * The profile whose defense runs use `seed` (which shots, initialisation, batch order, crops); the profile itself for
 * its own seed, so that its cached cells are the first seed's. The backdoored models are the same for every seed.
 */
export function withDefenseSeed(profile: Profile, seed: number): Profile {
  if (seed === profile.backdoor.seed) return profile;
  const methods = [...new Set([...METHODS, ...Object.keys(profile.defenses)])];
  return { ...profile, defenses: Object.fromEntries(methods.map((m) => [m, { ...(profile.defenses[m] ?? {}), seed }])) };
}

/** The cells of a table, for the cell pool (cellPool.ts); the cost table's two run alone (their time is a result). */
export function tableJobs(profile: Profile, spec: TableSpec): CellJob[] {
  const testSets = testSetNames(spec.dataset);
  const cost = spec.name === 'table1' ? costAttack(spec.attacks) : null;
  return tableSeeds(profile).flatMap((seed) =>
    spec.attacks.flatMap((attack) =>
      spec.methods.map((method) => ({
        profile: withDefenseSeed(profile, seed),
        attack,
        method,
        dataset: spec.dataset,
        testSets,
        alone: seed === profile.backdoor.seed && attack === cost && (method === 'CleanCLIP' || method === 'RVPT'),
      })),
    ),
  );
}

/** One table cell from its seeds' runs: median ASR and CA, their ranges, the seeds and the test-set size. */
export function seedCell(runs: { asr: number; ca: number; asrAll?: number; poisonedAccuracy?: number; n: number; seconds: number }[]): Cell {
  const pick = (k: 'asr' | 'ca') => runs.map((r) => r[k]);
  const first = runs[0];
  const cell: Cell = { asr: median(pick('asr')), ca: median(pick('ca')), n: first.n, seconds: median(runs.map((r) => r.seconds)), seeds: runs.length };
  if (first.asrAll !== undefined) cell.asrAll = median(runs.map((r) => r.asrAll!));
  if (first.poisonedAccuracy !== undefined) cell.poisonedAccuracy = median(runs.map((r) => r.poisonedAccuracy!));
  if (runs.length > 1) {
    cell.asrMin = Math.min(...pick('asr'));
    cell.asrMax = Math.max(...pick('asr'));
    cell.caMin = Math.min(...pick('ca'));
    cell.caMax = Math.max(...pick('ca'));
  }
  return cell;
}

/** Run (or load) every cell of a table, then write it. Cells are evaluated on all of the dataset's test sets. */
export async function runTable(profile: Profile, spec: TableSpec, opts: { log?: (s: string) => void; quiet?: boolean; write?: boolean } = {}): Promise<{ table: ResultsTable; cells: CellResult[]; path?: string }> {
  const t0 = Date.now();
  const datasets: TableData = {};
  const cells: CellResult[] = [];
  const seeds = tableSeeds(profile);
  for (const attack of spec.attacks) {
    let bd: BackdoorResult | null = null;
    try {
      for (const method of spec.methods) {
        bd ??= await ensureBackdoored(profile, attack, { log: opts.log, dataset: spec.dataset });
        const runs: Record<string, { asr: number; ca: number; asrAll: number; poisonedAccuracy: number; n: number; seconds: number }[]> = {};
        for (const seed of seeds) {
          const cell = await runCell(withDefenseSeed(profile, seed), attack, method, spec.dataset, testSetNames(spec.dataset), { backdoored: bd, log: opts.log, quiet: opts.quiet });
          // The cost table reads the first seed's cells (the profile's own), whose time was measured alone.
          if (seed === profile.backdoor.seed) cells.push(cell);
          for (const t of spec.report) {
            const m = cell.metrics[t];
            if (m) (runs[t] ??= []).push({ asr: m.asr, ca: m.ca, asrAll: m.asrAll, poisonedAccuracy: m.poisonedAccuracy, n: m.n, seconds: cell.cost.seconds });
          }
        }
        for (const t of spec.report) {
          if (runs[t]) ((datasets[t] ??= {})[method] ??= {})[attack] = seedCell(runs[t]);
          else ((datasets[t] ??= {})[method] ??= {});
        }
      }
    } finally {
      bd?.model.dispose();
    }
  }
  const table: ResultsTable = {
    table: spec.name,
    datasets,
    provenance: { ...tableProvenance(profile, { spec, model: profile.model, shots: profile.shots, defenses: profile.defenses, backdoor: profile.backdoor, seeds }, profile.backdoor.seed, (Date.now() - t0) / 1000), seeds },
  };
  const file = opts.write === false ? undefined : writeTable(profile, spec.name, table, `${spec.title} (profile ${profile.name})`);
  return { table, cells, path: file };
}

/** The attack the cost table is measured on: BadCLIP (the paper's Table 9) when available. */
export function costAttack(attacks: string[]): string {
  return attacks.includes('BadCLIP') ? 'BadCLIP' : attacks[0];
}

export interface CostTable {
  rows: Record<string, DefenseCost>;
  provenance: ReturnType<typeof tableProvenance>;
}

/**
 * CleanCLIP vs RVPT cost, from their Table 1 cells on one attack (BadCLIP, as the paper's Table 9; else the first
 * attack the cells have). At paper scale CleanCLIP is not run, so the table has RVPT alone.
 */
export function costTable(profile: Profile, cells: CellResult[], attack = costAttack(cells.map((c) => c.attack)), write = true): CostTable {
  const rows: Record<string, DefenseCost> = {};
  for (const method of ['CleanCLIP', 'RVPT']) {
    const c = cells.find((x) => x.method === method && x.attack === attack);
    if (c) rows[method] = c.cost;
  }
  const t: CostTable = { rows, provenance: tableProvenance(profile, { attack, dataset: profile.datasets.main, defenses: profile.defenses }, profile.backdoor.seed, 0) };
  if (write) {
    const dir = resultsDir(profile);
    writeJsonAtomic(path.join(dir, 'table-cost.json'), t);
    const mb = (b: number) => (b / 2 ** 20).toFixed(1);
    const lines = [
      `# Cost: CleanCLIP vs RVPT (profile ${profile.name}, attack ${attack}, ${profile.datasets.main})`,
      '',
      '| Method | Wall time (s) | Peak TF.js memory (MiB) | Peak RSS (MiB) | Tunable params | Share of model | Training samples |',
      '|---|---|---|---|---|---|---|',
      ...Object.entries(rows).map(([m, r]) => `| ${m} | ${r.seconds.toFixed(1)} | ${mb(r.peakBytes)} | ${mb(r.rssBytes)} | ${r.tunableParams} | ${((100 * r.tunableParams) / r.totalParams).toFixed(2)}% | ${r.samples} |`),
      '',
      rows.CleanCLIP && rows.RVPT ? `RVPT / CleanCLIP wall time: ${(rows.RVPT.seconds / rows.CleanCLIP.seconds).toFixed(3)}.` : '',
      `Commit \`${gitCommit().slice(0, 12)}\`, backend ${t.provenance.backend}, ${t.provenance.date}.`,
      '',
    ];
    writeFileAtomic(path.join(dir, 'table-cost.md'), lines.join('\n'));
  }
  return t;
}
