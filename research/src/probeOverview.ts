/**
 * Every committed RVPT run at once: the tables' cells and every probe's (the probes notebook's last section), read from the
 * result files under research/results/ (the in-domain tables in in-domain/), each judged against the paper's target (ASR at most 5%, CA at most 2 points below the
 * same backdoored model undefended). The probes each answer one question; this answers the one they share: did any
 * setting, tower or backdoor we tried get RVPT into the paper's region, and how close did each come?
 */
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot, readJsonFile } from '../../src/util/fsutil';
import { ResultsTable, signedText } from '../../src/experiments/tables';
import { RepulsionProbe } from './repulsionProbe';
import { SeedProbe, atTargetAsr, inRvptTarget, withinCaBudget } from './seedProbe';
import { TuningProbe } from './tuningProbe';
import { StrengthProbe } from './strengthProbe';
import { AttributeProbe } from './attributeProbe';
import { ATTACK_NAMES } from '../../src/attacks/registry';
import { labResults } from './probeFiles';

/** One RVPT run (one defended model on one test set) against its own undefended model. */
export interface RvptRun {
  /** The result file, relative to research/results/in-domain/ or research/results/ and without `.json` (e.g. `deep12/seed-probe`). */
  source: string;
  /** The profile whose tower and pre-training the backdoored model has (small, wide, deep12, ...). */
  profile: string;
  dataset: string;
  attack: string;
  /** What the run changed from the tables' cell, in words (`α 4`, `seed 3`, `256 shots, crop+flip, 16x steps`). */
  setting: string;
  asr: number;
  ca: number;
  noDefense: { asr: number; ca: number };
}

/** A file that records only a median and range per attack over seeds (the attribute probes), not each run. */
export interface RvptRange {
  source: string;
  profile: string;
  dataset: string;
  attack: string;
  seeds: number;
  asr: [number, number];
  caChange: [number, number];
}

export interface RvptRuns {
  runs: RvptRun[];
  ranges: RvptRange[];
  /** Result files read that hold no RVPT run against its own undefended model, each with why. */
  skipped: { source: string; why: string }[];
}

export const caChangeOf = (r: RvptRun): number => r.ca - r.noDefense.ca;
export const meetsTarget = (r: RvptRun): boolean => inRvptTarget(r.asr, caChangeOf(r));

function jsonFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? jsonFiles(p) : e.name.endsWith('.json') ? [p] : [];
  }).sort();
}

/** The tables' own cells: the defenses of Tables 1 and 2 (Table 3 tests on other renditions, the cost table times). */
function tableRuns(source: string, t: ResultsTable): RvptRun[] {
  return Object.entries(t.datasets).flatMap(([dataset, methods]) =>
    Object.entries(methods.RVPT ?? {}).flatMap(([attack, m]) => {
      const nd = methods['No defense']?.[attack];
      return nd ? [{ source, profile: t.provenance.profile, dataset, attack, setting: 'the tables\' cell', asr: m.asr, ca: m.ca, noDefense: { asr: nd.asr, ca: nd.ca } }] : [];
    }));
}

function seedSetting(p: SeedProbe, seed: number): string {
  const extra = [
    p.fixedShots ? 'the tables\' shots' : '',
    p.frToken ? `FR on ${p.frToken}` : '',
    p.frLayers ? `FR at blocks ${p.frLayers.map((l) => l + 1).join(', ')}` : '',
    p.budget && p.budget !== 1 ? `${p.budget}x steps` : '',
  ].filter(Boolean);
  return [`seed ${seed}`, ...extra].join(', ');
}

/**
 * Every RVPT run in the committed result files under `root`/research/results: the in-domain setting's tables (in-domain/) and the probes. A probe family this does not know fails loudly
 * (naming the file), so that a new probe cannot drop out of the overview unseen.
 */
export function committedRvptRuns(root = projectRoot()): RvptRuns {
  const figures = path.join(labResults(root), 'in-domain');
  if (!fs.existsSync(figures)) throw new Error(`RVPT overview: ${figures} does not exist; the in-domain setting's tables are committed there.`);
  // The in-domain tables, then the probes in research/results/ (a file's source is its path inside its folder).
  const files = [figures, labResults(root)].filter((d) => fs.existsSync(d)).flatMap((dir) => jsonFiles(dir).filter((f) => dir === figures || !f.startsWith(figures + path.sep)).map((file) => ({ dir, file })));
  const out: RvptRuns = { runs: [], ranges: [], skipped: [] };
  for (const { dir, file } of files) {
    const source = path.relative(dir, file).replace(/\.json$/, '');
    const f = readJsonFile<Record<string, unknown>>(file, 'RVPT overview');
    const profile = (f.provenance as { profile?: string } | undefined)?.profile ?? 'small';
    if (typeof f.probe === 'string' && !Array.isArray(f.rows)) throw new Error(`RVPT overview: ${file} is a '${f.probe}' probe with no 'rows' list; write it again with its make target.`);
    if (f.table === 'table1' || f.table === 'table2') {
      out.runs.push(...tableRuns(source, f as unknown as ResultsTable));
    } else if (f.probe === 'repulsion') {
      const p = f as unknown as RepulsionProbe;
      for (const r of p.rows) if (r.alpha > 0) out.runs.push({ source, profile: r.profile, dataset: p.dataset, attack: r.attack, setting: `α ${r.alpha}`, asr: r.metrics.asr, ca: r.metrics.ca, noDefense: r.noDefense });
    } else if (f.probe === 'seed') {
      const p = f as unknown as SeedProbe;
      for (const r of p.rows) if (r.method === 'RVPT') out.runs.push({ source, profile, dataset: p.dataset, attack: r.attack, setting: seedSetting(p, r.seed), asr: r.metrics.asr, ca: r.metrics.ca, noDefense: r.noDefense });
    } else if (f.probe === 'tuning data') {
      const p = f as unknown as TuningProbe;
      for (const r of p.rows) {
        const setting = [`${r.shots} shots`, r.augment ? 'crop+flip' : 'no augmentation', (r.budget ?? 1) !== 1 ? `${r.budget}x steps` : '', r.margin !== undefined ? `m ${r.margin}` : ''].filter(Boolean).join(', ');
        out.runs.push({ source, profile, dataset: p.dataset, attack: r.attack, setting, asr: r.metrics.RVPT.asr, ca: r.metrics.RVPT.ca, noDefense: r.metrics['No defense'] });
      }
    } else if (f.probe === 'backdoor strength') {
      // Each row is its own backdoored model, so its RVPT run is judged against that model undefended.
      const p = f as unknown as StrengthProbe;
      for (const r of p.rows) {
        const setting = `backdoor: ${+(r.rate * 100).toFixed(2)}% poisoned, lr ${r.lr}${r.augment ? ', crop+flip' : ''}`;
        out.runs.push({ source, profile, dataset: p.dataset, attack: r.attack, setting, asr: r.metrics.RVPT.asr, ca: r.metrics.RVPT.ca, noDefense: r.metrics['No defense'] });
      }
    } else if (f.probe === 'attributes') {
      const p = f as unknown as AttributeProbe;
      for (const r of p.rows) if (r.method === 'RVPT') out.ranges.push({ source, profile: r.profile, dataset: p.dataset, attack: r.attack, seeds: r.seeds, asr: r.asr, caChange: r.caChange });
    } else if (typeof f.probe === 'string') {
      throw new Error(`RVPT overview: ${file} is a '${f.probe}' probe, which research/src/probeOverview.ts does not read; add its rows there.`);
    } else {
      const ablations = f.figure === 'ablations' || source === 'ablations.points';
      const why = ablations
        ? "notebook 08's ablations: 2,000 test images, half the steps, no undefended model on the same images"
        : f.table === 'table3'
          ? 'Table 3: RVPT tested on other renditions than it was tuned on'
          : f.table
            ? `table '${f.table}': no RVPT cells`
            : 'not a defense result';
      out.skipped.push({ source, why });
    }
  }
  return out;
}

/**
 * The same run often sits in several files (the tables' cell is also the repulsion probe's α 2 point, the seed
 * probe's seed 0 and the tuning probe's first row): one copy each, the first file's, keyed by model and numbers.
 */
export function distinctRuns(runs: RvptRun[]): RvptRun[] {
  const seen = new Set<string>();
  return runs.filter((r) => {
    const key = [r.profile, r.dataset, r.attack, r.asr, r.ca, r.noDefense.asr, r.noDefense.ca].join('|');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export interface RunsSummary {
  runs: number;
  meeting: number;
  /** Of the runs within the CA budget (at most 2 points down), the one with the lowest ASR; null: none within it. */
  lowestAsrInCaBudget: RvptRun | null;
  /** Of the runs at or below 5% ASR, the one that kept the most CA; null: none got there. */
  mostCaAtTargetAsr: RvptRun | null;
}

export function summariseRuns(runs: RvptRun[]): RunsSummary {
  const best = (rs: RvptRun[], better: (a: RvptRun, b: RvptRun) => boolean) => rs.reduce<RvptRun | null>((acc, r) => (acc === null || better(r, acc) ? r : acc), null);
  return {
    runs: runs.length,
    meeting: runs.filter(meetsTarget).length,
    lowestAsrInCaBudget: best(runs.filter((r) => withinCaBudget(caChangeOf(r))), (a, b) => a.asr < b.asr),
    mostCaAtTargetAsr: best(runs.filter((r) => atTargetAsr(r.asr)), (a, b) => caChangeOf(a) > caChangeOf(b)),
  };
}

const runText = (r: RvptRun | null, where: (r: RvptRun) => string): string => (r ? `${r.asr.toFixed(2)}% (CA ${signedText(caChangeOf(r), 2)} points): ${where(r)}` : 'none');

/** One row per result file: its RVPT runs, how many meet the target, and the two nearest approaches to it. */
export function overviewBySource(o: RvptRuns): { header: string[]; rows: string[][] } {
  const header = ['file', 'dataset', 'RVPT runs', 'meeting the target', 'lowest ASR within 2 CA points', 'most CA kept at ≤ 5% ASR'];
  // The tables' own files first, then the probes' in path order.
  const isTable = (s: string) => /(^|\/)table\d$/.test(s);
  const sources = [...new Set(o.runs.map((r) => r.source))].sort((a, b) => Number(isTable(b)) - Number(isTable(a)) || a.localeCompare(b));
  const rows = sources.map((s) => {
    const runs = o.runs.filter((r) => r.source === s);
    const sum = summariseRuns(runs);
    const manyProfiles = new Set(runs.map((x) => x.profile)).size > 1;
    const where = (r: RvptRun) => [manyProfiles ? r.profile : '', r.attack, r.setting].filter(Boolean).join(', ');
    return [s, [...new Set(runs.map((r) => r.dataset))].join(', '), String(sum.runs), String(sum.meeting), runText(sum.lowestAsrInCaBudget, where), runText(sum.mostCaAtTargetAsr, where)];
  });
  return { header, rows };
}

/** One row per dataset and attack over every file, each run counted once. */
export function overviewByAttack(o: RvptRuns): { header: string[]; rows: string[][] } {
  const header = ['dataset', 'attack', 'distinct RVPT runs', 'meeting the target', 'lowest ASR within 2 CA points', 'most CA kept at ≤ 5% ASR'];
  const runs = distinctRuns(o.runs);
  const datasets = [...new Set(runs.map((r) => r.dataset))];
  const attackRank = (a: string) => (ATTACK_NAMES.includes(a) ? ATTACK_NAMES.indexOf(a) : ATTACK_NAMES.length);
  const keys = [...new Set(runs.map((r) => `${r.dataset}|${r.attack}`))].sort((a, b) => {
    const [da, aa] = a.split('|');
    const [db, ab] = b.split('|');
    return datasets.indexOf(da) - datasets.indexOf(db) || attackRank(aa) - attackRank(ab) || aa.localeCompare(ab);
  });
  const rows = keys.map((k) => {
    const [dataset, attack] = k.split('|');
    const sum = summariseRuns(runs.filter((r) => r.dataset === dataset && r.attack === attack));
    const where = (r: RvptRun) => `${r.profile}, ${r.setting} (${r.source})`;
    return [dataset, attack, String(sum.runs), String(sum.meeting), runText(sum.lowestAsrInCaBudget, where), runText(sum.mostCaAtTargetAsr, where)];
  });
  return { header, rows };
}

/**
 * What the range-only files allow one to say for sure: a file's runs of one attack cannot meet the target when even
 * their best CA change is more than 2 points down, or their lowest ASR is above 5%.
 */
export function rangeVerdicts(o: RvptRuns): { header: string[]; rows: string[][] } {
  const header = ['file', 'profile', 'attack', 'seeds', 'ASR [min, max]', 'CA change [min, max]', 'can any run meet the target?'];
  const rows = o.ranges.map((r) => {
    // The best corner of the ranges (lowest ASR, least CA lost) is the only place a run could meet the target.
    const out = !inRvptTarget(r.asr[0], r.caChange[1]);
    return [r.source, r.profile, r.attack, String(r.seeds), `[${r.asr[0].toFixed(2)}, ${r.asr[1].toFixed(2)}]`, `[${signedText(r.caChange[0], 2)}, ${signedText(r.caChange[1], 2)}]`, out ? 'no' : 'not recorded per run'];
  });
  return { header, rows };
}
