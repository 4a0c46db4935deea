/**
 * One JSON shape for every results table:
 *   {"table", "datasets": {DATASET: {METHOD: {ATTACK: {"asr", "ca", ...}}}}, "provenance": {...}}
 * and its markdown rendering in the paper's layout (methods as rows, attacks as columns, "ASR (CA)").
 * Tables of the headline profile (`transfer`) go to figures/ (committed); other profiles to .cache/results/PROFILE/.
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic, writeJsonAtomic, cacheDir, projectRoot } from '../util/fsutil';
import { gitCommit, provenance } from '../util/provenance';
import { Profile } from './profiles';

export const METHODS = ['No defense', 'CleanCLIP', 'Linear Probe', 'VPT', 'RVPT'];

export interface Cell {
  asr: number;
  ca: number;
  [extra: string]: number | string | undefined;
}

export type TableData = Record<string, Record<string, Record<string, Cell>>>;

export interface TableProvenance {
  commit: string;
  profile: string;
  config: unknown;
  seed: number;
  backend: string;
  date: string;
  seconds: number;
  [extra: string]: unknown;
}

export interface ResultsTable {
  table: string;
  datasets: TableData;
  provenance: TableProvenance;
}

/**
 * The footer line of a results file. `seconds` is the writing call's own wall time, which is a second or two when every
 * run came from the cache; files that record `trainingSeconds` (the sum of their defense runs' own tuning times, kept
 * in each run's cache entry; evaluation, pre-training and backdoors not included) say what the tuning itself cost.
 */
export function provenanceLine(p: TableProvenance): string {
  const training = typeof p.trainingSeconds === 'number' ? ` (the defense runs' tuning: ${p.trainingSeconds.toFixed(0)} s in all)` : '';
  return `Profile \`${p.profile}\`, seed ${p.seed}, backend ${p.backend}, commit \`${p.commit.slice(0, 12)}\`, ${p.date}, ${p.seconds.toFixed(0)} s${training}.`;
}

export function tableProvenance(profile: Profile, config: unknown, seed: number, seconds: number): TableProvenance {
  const p = provenance();
  return { commit: gitCommit(), profile: profile.name, config, seed, backend: p.backend, date: p.date, seconds, versions: p.versions, machine: p.machine };
}

/** The headline profile: `make reproduce`'s default, whose results are committed in figures/ and REPRODUCTION.md. */
export const HEADLINE_PROFILE = 'transfer';

export function resultsDir(profile: Profile): string {
  return profile.name === HEADLINE_PROFILE ? path.join(projectRoot(), 'figures') : cacheDir('results', profile.name);
}

/**
 * A result file of `dir` (a table, a figure's JSON, the preconditions): null when absent, an error naming the file and
 * the fix when it is not valid JSON (a corrupt file is never read as "not measured").
 */
export function readResultFile<T>(dir: string, name: string, what = 'Report'): T | null {
  const f = path.join(dir, name);
  if (!fs.existsSync(f)) return null;
  try {
    return JSON.parse(fs.readFileSync(f, 'utf8')) as T;
  } catch (e) {
    throw new Error(`${what}: ${f} is not valid JSON (${(e as Error).message}); write it again (\`npx rvpt tables\`, \`npx rvpt figures\` or \`npx rvpt slides\`) or restore it from git.`);
  }
}

/** A difference with its sign, to `digits` decimals: +5.1, -0.6. */
export function signedText(x: number, digits = 1): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;
}

/**
 * A cell as the paper prints it, "ASR (CA)", or '–' where there is none; a cell of several seeds gives medians with
 * their ranges, "ASR [min-max] (CA [min-max])".
 */
export function asrCaText(x: { asr: number; ca: number; asrMin?: unknown; asrMax?: unknown; caMin?: unknown; caMax?: unknown } | null | undefined): string {
  if (!x) return '–';
  // A range that is one value (No defense: evaluation only, the same at every seed) is left out.
  const range = (lo: unknown, hi: unknown) => (typeof lo === 'number' && typeof hi === 'number' && lo.toFixed(1) !== hi.toFixed(1) ? ` [${lo.toFixed(1)}-${hi.toFixed(1)}]` : '');
  return `${x.asr.toFixed(2)}${range(x.asrMin, x.asrMax)} (${x.ca.toFixed(2)}${range(x.caMin, x.caMax)})`;
}

/** Markdown: one section per dataset, methods x attacks, each cell "ASR (CA)". */
export function tableMarkdown(t: ResultsTable, title: string): string {
  const seeds = Array.isArray(t.provenance.seeds) ? (t.provenance.seeds as number[]) : [];
  const out = [
    `# ${title}`,
    '',
    `Each cell: ASR % (CA %). ASR over test images whose true class is not the target.${seeds.length > 1 ? ` Medians over ${seeds.length} defense seeds (${seeds.join(', ')}), [min-max] beside them.` : ''}`,
    '',
  ];
  for (const [dataset, methods] of Object.entries(t.datasets)) {
    const attacks = [...new Set(Object.values(methods).flatMap((m) => Object.keys(m)))];
    const n = Object.values(methods).flatMap((cs) => Object.values(cs))[0]?.n;
    out.push(`## ${dataset}`, '', ...(typeof n === 'number' ? [`Test set: ${n} images.`, ''] : []), `| Method | ${attacks.join(' | ')} |`, `|---|${attacks.map(() => '---').join('|')}|`);
    for (const [method, cells] of Object.entries(methods)) {
      out.push(`| ${method} | ${attacks.map((a) => asrCaText(cells[a])).join(' | ')} |`);
    }
    out.push('');
  }
  const p = t.provenance;
  out.push(provenanceLine(p), '');
  return out.join('\n');
}

/** Write NAME.json and NAME.md into the profile's results folder (atomically); returns the JSON path. */
export function writeTable(profile: Profile, name: string, t: ResultsTable, title: string, extra = ''): string {
  const dir = resultsDir(profile);
  const json = path.join(dir, `${name}.json`);
  writeJsonAtomic(json, t);
  writeFileAtomic(path.join(dir, `${name}.md`), tableMarkdown(t, title) + extra);
  return json;
}
