/**
 * The scale probe: one table of the paper at two model sizes, side by side. At the `small` profile RVPT misses the
 * paper's targets on some attacks, and the probes notebook argues that a 64-wide model has too few task-irrelevant features
 * to give up. `research/profiles/wide.json` doubles the image tower's width and nothing else; `rvpt tables -p
 * research/profiles/wide.json --only table1` writes its Table 1, committed as research/results/wide/table1.json. This module only reads
 * result files: every number it shows was measured by `rvpt tables`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot, readJsonFile } from '../../src/util/fsutil';
import { ResultsTable, asrCaText, signedText } from '../../src/experiments/tables';
import { labResults } from './probeFiles';
import { PAPER_TABLE1 } from '../../src/experiments/paperNumbers';

export interface ScaleColumn {
  /** A short name for the column, e.g. 'small (width 64)'. */
  label: string;
  /** A table JSON written by `rvpt tables` (research/results/in-domain/table1.json, research/results/wide/table1.json). */
  file: string;
}

/** The committed probe: Table 1 of the `small` profile and of `research/profiles/wide.json`. */
export function committedScaleProbe(root = projectRoot()): ScaleColumn[] {
  return [
    { label: 'small (image width 64)', file: path.join(root, 'research', 'results', 'in-domain', 'table1.json') },
    { label: 'wide (image width 128)', file: path.join(labResults(root), 'wide', 'table1.json') },
  ];
}

function readTable(c: ScaleColumn): ResultsTable {
  if (!fs.existsSync(c.file)) throw new Error(`Scale probe: ${c.file} (column '${c.label}') does not exist. Write it with \`npx rvpt tables --only table1\` and the column's profile.`);
  const t = readJsonFile<ResultsTable>(c.file, 'Scale probe table');
  if (!t.datasets || typeof t.datasets !== 'object') throw new Error(`Scale probe: ${c.file} has no 'datasets' field; is it a table written by \`rvpt tables\`?`);
  return t;
}

/**
 * Rows [attack, method, ASR (CA) per column, and for RVPT its CA minus No defense's per column], for the attacks and
 * methods the first column's table has on `dataset`.
 */
export function scaleProbeRows(columns: ScaleColumn[], dataset: string, methods = ['No defense', 'VPT', 'RVPT']): { header: string[]; rows: string[][] } {
  const tables = columns.map(readTable);
  tables.forEach((t, i) => {
    if (!t.datasets[dataset]) throw new Error(`Scale probe: ${columns[i].file} has no dataset '${dataset}' (it has ${Object.keys(t.datasets).join(', ')}).`);
  });
  const first = tables[0].datasets[dataset];
  const attacks = Object.keys(first['No defense'] ?? Object.values(first)[0] ?? {});
  const rows: string[][] = [];
  for (const a of attacks) {
    for (const m of methods) {
      const cells = tables.map((t) => t.datasets[dataset][m]?.[a]);
      const drop = tables.map((t, i) => {
        const nd = t.datasets[dataset]['No defense']?.[a];
        return m === 'RVPT' && cells[i] && nd ? (cells[i]!.ca - nd.ca).toFixed(1) : '';
      });
      rows.push([a, m, ...cells.map(asrCaText), ...drop]);
    }
  }
  return { header: ['attack', 'method', ...columns.map((c) => `${c.label}: ASR (CA)`), ...columns.map((c) => `${c.label}: RVPT CA − no defense`)], rows };
}

/** One committed table and dataset whose CA the shares below split. */
export interface CaShareSource extends ScaleColumn {
  dataset: string;
}

/** Fashion-MNIST at both widths, and emoji at `small`: every table that has VPT beside RVPT. */
export function committedCaShares(root = projectRoot()): CaShareSource[] {
  const [small, wide] = committedScaleProbe(root);
  return [
    { ...small, dataset: 'fashion-mnist' },
    { ...wide, dataset: 'fashion-mnist' },
    { label: 'small (image width 64)', file: path.join(root, 'research', 'results', 'in-domain', 'table2.json'), dataset: 'emoji' },
  ];
}

/**
 * Where RVPT's CA change comes from, in two shares: prompt tuning itself (VPT minus No defense: what the same prompts
 * gain or lose on the same shots without the repelling term) and the repelling term (RVPT minus VPT). The paper's
 * BadCLIP cell on ImageNet (Tables 1 and 8, the only attack with a VPT number) comes first, computed from
 * paperNumbers.ts, then one row per source and attack.
 */
export function caShareRows(sources: CaShareSource[]): { header: string[]; rows: string[][] } {
  const header = ['model', 'dataset', 'attack', 'No defense CA', 'VPT minus No defense', 'RVPT minus VPT', 'RVPT minus No defense'];
  const row = (model: string, dataset: string, attack: string, nd: number, vpt: number, rvpt: number) => [model, dataset, attack, nd.toFixed(2), signedText(vpt - nd), signedText(rvpt - vpt), signedText(rvpt - nd)];
  const paper = (m: string) => PAPER_TABLE1[m].BadCLIP!.ca;
  const rows = [row('paper: CLIP ViT-B/32', 'ImageNet', 'BadCLIP', paper('No defense'), paper('VPT'), paper('RVPT'))];
  for (const s of sources) {
    const datasets = readTable(s).datasets;
    const t = datasets[s.dataset];
    if (!t) throw new Error(`CA shares: ${s.file} has no dataset '${s.dataset}' (it has ${Object.keys(datasets).join(', ')}).`);
    for (const [attack, nd] of Object.entries(t['No defense'] ?? {})) {
      const vpt = t.VPT?.[attack];
      const rvpt = t.RVPT?.[attack];
      if (nd && vpt && rvpt) rows.push(row(s.label, s.dataset, attack, nd.ca, vpt.ca, rvpt.ca));
    }
  }
  return { header, rows };
}
