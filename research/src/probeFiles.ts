/**
 * What the probes share: the committed file a notebook reads, the markdown beside it and how both are written
 * (atomically, into the lab's results folder: research/results/ at `small`, .cache/results/NAME/ for other profiles,
 * from where the research Makefile copies them to research/results/NAME/).
 */
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot, readJsonFile, writeFileAtomic, writeJsonAtomic } from '../../src/util/fsutil';
import { markdownTable } from '../../src/viz/notebook';
import { Profile } from '../../src/experiments/profiles';
import { TableProvenance, provenanceLine, resultsDir } from '../../src/experiments/tables';
import { figureAttacks } from '../../src/experiments/analysis';
import { availableAttacks } from '../../src/experiments/paperTables';

/** The folder of the committed probe results: research/results/ under the project root (or under `root`). */
export function labResults(root = projectRoot()): string {
  return path.join(root, 'research', 'results');
}

/** Where a probe run writes its files: research/results/ for `small`, the profile's cache results folder otherwise. */
export function labResultsDir(profile: Profile): string {
  return profile.name === 'small' ? labResults() : resultsDir(profile);
}

/**
 * The attacks a Fig. 3-style probe runs by default (the repulsion and tuning probes): on the main dataset the paper's
 * Fig. 3 three (those the profile has), on the emoji dataset Table 2's three.
 */
export function probeAttacks(profile: Profile, dataset = profile.datasets.main): string[] {
  return dataset === profile.datasets.main ? figureAttacks(profile, ['BadNet', 'Blended', 'BadCLIP']) : availableAttacks(profile, dataset, ['BadNet', 'Blended', 'WaNet']);
}

/**
 * `name`: the file's stem (strength-probe, seed-probe-emoji). `target`: the `make` target that writes it, the family's
 * own (seed-probe for every seed-probe-* file), which runs the `rvpt` command of that name; a scale probe's
 * (repulsion-probe-deep12) runs its family's commands on its profile, as the Makefile spells out.
 */
/** The probe families' `rvpt` commands, each also a `make` target. */
const COMMANDS = new Set(['strength-probe', 'tuning-probe', 'repulsion-probe', 'seed-probe', 'attribute-probe']);

export function committedProbe<T extends { rows: unknown[] }>(name: string, label: string, file = path.join(labResults(), `${name}.json`), target = name): T {
  if (!fs.existsSync(file)) throw new Error(`${label}: ${file} does not exist. Write it with \`make -C research ${target}\` (${COMMANDS.has(target) ? `it runs rvpt-lab ${target}` : 'research/Makefile lists the rvpt-lab commands it runs'}).`);
  const p = readJsonFile<T>(file, label);
  if (!Array.isArray(p.rows)) throw new Error(`${label}: ${file} has no 'rows' list; is it a file written by \`rvpt-lab ${name}\`?`);
  return p;
}

export function probeMarkdown(title: string, caption: string, table: { header: string[]; rows: string[][] }, pr: TableProvenance): string {
  return [
    `# ${title}`,
    '',
    caption,
    '',
    markdownTable(table.header, table.rows),
    '',
    provenanceLine(pr),
    '',
  ].join('\n');
}

/** Write NAME.json and NAME.md into the profile's results folder; returns the JSON's path. */
export function writeProbe(profile: Profile, name: string, probe: unknown, markdown: string): string {
  const dir = labResultsDir(profile);
  const json = path.join(dir, `${name}.json`);
  writeJsonAtomic(json, probe);
  writeFileAtomic(path.join(dir, `${name}.md`), markdown);
  return json;
}

/** A probe's rows grouped by `key` (one figure trace or summary line per group), in the order they first appear. */
export function groupRows<T>(rows: T[], key: (r: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  return groups;
}

/** One colour and marker per attack, shared by the probes' figures. */
export const ATTACK_COLOURS: Record<string, string> = { BadNet: '#1f77b4', Blended: '#2ca02c', BadCLIP: '#9467bd', WaNet: '#ff7f0e', ISSBA: '#d62728', TrojVQA: '#8c564b' };
export const ATTACK_SYMBOLS: Record<string, string> = { BadNet: 'circle', Blended: 'square', BadCLIP: 'diamond', WaNet: 'triangle-up', ISSBA: 'cross', TrojVQA: 'star' };

/**
 * The paper-level target region on an ASR (y) against CA-change (x) plot: ASR at most 5% and CA at most 2 points down,
 * so from x = -2 rightwards, past the largest CA change plotted (`xs`).
 */
export function targetRegion(xs: (number | null)[]): { shapes: Record<string, unknown>[]; annotations: Record<string, unknown>[] } {
  const right = Math.max(2, ...xs.filter((x): x is number => x !== null && Number.isFinite(x))) + 1;
  return {
    shapes: [{ type: 'rect', x0: -2, x1: right, y0: 0, y1: 5, line: { color: 'red', dash: 'dash' }, fillcolor: 'rgba(255,0,0,0.08)' }],
    annotations: [{ x: (right - 2) / 2, y: 5, text: 'target', showarrow: false, yanchor: 'bottom', font: { color: 'red' } }],
  };
}
