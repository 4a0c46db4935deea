/**
 * One slide-ready figure per claim of the paper (PNG, 1280 x 720), drawn from the committed result files only (no
 * training), each titled with the paper's claim and, under it, what was measured here and the verdict by the rules of
 * verdictRules.ts. `rvpt slides` writes them to RESULTS/slides/ with an index (slides.json); REPRODUCTION.md links them.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Figure } from '../viz/plotly';
import { renderPngs } from '../viz/render';
import { writeJsonAtomic } from '../util/fsutil';
import { gitCommit } from '../util/provenance';
import { Profile } from './profiles';
import { readResultFile, resultsDir } from './tables';
import { PRECONDITION_BOUNDS, Preconditions } from './preconditions';
import { median } from '../util/stats';
import { ClaimVerdict, memoryClaim, probeClaim, rvptClaim } from './verdictRules';

export interface Slide {
  file: string;
  claim: string;
  /** What was measured and the verdict, one line. */
  result: string;
}

type Cell = { asr: number; ca: number; asrMin?: number; asrMax?: number; n?: number };
type Table = { datasets: Record<string, Record<string, Record<string, Cell>>> };

const WIDTH = 1280;
const HEIGHT = 720;
const COLOURS: Record<string, string> = { 'No defense': '#d62728', CleanCLIP: '#9467bd', 'Linear Probe': '#8c564b', VPT: '#1f77b4', RVPT: '#2ca02c' };

const read = <T>(dir: string, name: string): T | null => readResultFile<T>(dir, name, 'Slides');

const verdictText = (v: ClaimVerdict) => `${v.verdict}${v.why ? ` (${v.why})` : ''}: ${v.cases.filter((c) => c.holds).length}/${v.cases.length} cases hold`;

/** Title (the claim, bold) and a subtitle (the result), sized for a slide. */
function titled(fig: Figure, claim: string, result: string): Figure {
  const wrap = (s: string, n: number) => s.replace(new RegExp(`(.{1,${n}})(\\s|$)`, 'g'), '$1<br>').replace(/<br>$/, '');
  return {
    data: fig.data,
    layout: {
      ...fig.layout,
      title: { text: `<b>${wrap(claim, 95)}</b><br><span style="font-size:15px">${wrap(result, 150)}</span>`, x: 0.02, xanchor: 'left', font: { size: 22 } },
      font: { size: 16 },
      margin: { t: 175, l: 80, r: 30, b: 110 },
      width: WIDTH,
      height: HEIGHT,
    },
  };
}

/** ASR bars per method and attack (with the seeds' range), CA as a second panel. */
function tableFigure(cells: Record<string, Record<string, Cell>>, attacks: string[], methods: string[]): Figure {
  const data: Record<string, unknown>[] = [];
  for (const m of methods.filter((x) => cells[x])) {
    const have = attacks.filter((a) => cells[m][a]);
    const bar = (metric: 'asr' | 'ca', axis: string) => ({
      type: 'bar', name: m, legendgroup: m, showlegend: metric === 'asr', marker: { color: COLOURS[m] ?? '#7f7f7f' }, x: have, y: have.map((a) => cells[m][a][metric]), xaxis: axis, yaxis: axis.replace('x', 'y'),
      ...(metric === 'asr' ? { error_y: { type: 'data', symmetric: false, array: have.map((a) => (cells[m][a].asrMax ?? cells[m][a].asr) - cells[m][a].asr), arrayminus: have.map((a) => cells[m][a].asr - (cells[m][a].asrMin ?? cells[m][a].asr)) } } : {}),
    });
    data.push(bar('asr', 'x'), bar('ca', 'x2'));
  }
  return {
    data,
    layout: {
      barmode: 'group', grid: { rows: 1, columns: 2, pattern: 'independent' },
      yaxis: { title: { text: 'ASR % (median, range over seeds)' }, range: [0, 100] }, yaxis2: { title: { text: 'CA %' } },
      legend: { orientation: 'h', y: -0.12 },
    },
  };
}

export function slideSpecs(profile: Profile, dir = resultsDir(profile)): { slide: Slide; fig: Figure }[] {
  const pre = read<Preconditions>(dir, 'preconditions.json');
  const t1 = read<Table>(dir, 'table1.json');
  const t2 = read<Table>(dir, 'table2.json');
  const t3 = read<Table>(dir, 'table3.json');
  const cost = read<{ rows: Record<string, { seconds: number; peakBytes: number; rssBytes: number; tunableParams: number; totalParams: number }> }>(dir, 'table-cost.json');
  const out: { slide: Slide; fig: Figure }[] = [];
  const add = (file: string, claim: string, result: string, fig: Figure) => out.push({ slide: { file, claim, result }, fig: titled(fig, claim, result) });
  const failed = pre ? (['p1', 'p2', 'p3'] as const).filter((k) => !pre[k].holds).map((k) => k.toUpperCase()) : [];
  const why = failed.length ? `preconditions ${failed.join(', ')} do not hold here` : undefined;

  if (pre) {
    const perts = Object.entries(pre.p2.perturbations);
    const p3 = Object.entries(pre.p3.attacks).flatMap(([a, rows]) => rows.map((r) => ({ name: `${a} (${r.dataset === profile.datasets.main ? 'main' : 'emoji'})`, asr: r.asr })));
    add('01-preconditions.png', "The paper's preconditions: CLIP transfers (P1), carries task-irrelevant features (P2), and the backdoors take (P3)",
      `P1 ${pre.p1.holds ? 'holds' : 'fails'}: zero-shot ${pre.p1.zeroShot.toFixed(1)}%, 16-shot probe ${pre.p1.probeMedian.toFixed(1)}%. P2 ${pre.p2.holds ? 'holds' : 'fails'}: CLIP's PR lower on ${pre.p2.wins} of ${perts.length}. P3 ${pre.p3.holds ? 'holds' : 'fails'}: ${p3.filter((r) => r.asr >= PRECONDITION_BOUNDS.backdoorAsr).length} of ${p3.length} backdoors reach ${PRECONDITION_BOUNDS.backdoorAsr}% ASR.`,
      {
        data: [
          { type: 'bar', name: 'zero-shot CA', x: ['P1'], y: [pre.p1.zeroShot], xaxis: 'x', yaxis: 'y', marker: { color: '#7f7f7f' } },
          { type: 'bar', name: '16-shot linear probe CA', x: ['P1'], y: [pre.p1.probeMedian], xaxis: 'x', yaxis: 'y', marker: { color: '#1f77b4' } },
          { type: 'bar', name: 'MiniCLIP PR', x: perts.map(([p]) => p), y: perts.map(([, r]) => median(r.clip)), xaxis: 'x2', yaxis: 'y2', marker: { color: '#2ca02c' } },
          { type: 'bar', name: 'supervised ViT PR', x: perts.map(([p]) => p), y: perts.map(([, r]) => median(r.supervised)), xaxis: 'x2', yaxis: 'y2', marker: { color: '#ff7f0e' } },
          { type: 'bar', name: 'backdoor ASR', x: p3.map((r) => r.name), y: p3.map((r) => r.asr), xaxis: 'x3', yaxis: 'y3', marker: { color: '#d62728' } },
        ],
        layout: {
          grid: { rows: 1, columns: 3, pattern: 'independent' }, barmode: 'group', legend: { orientation: 'h', y: -0.35 },
          yaxis: { title: { text: 'CA %' } }, yaxis2: { title: { text: 'PR' }, range: [0.85, 1] }, yaxis3: { title: { text: 'ASR %' }, range: [0, 100] },
          shapes: [{ type: 'line', xref: 'x3 domain', yref: 'y3', x0: 0, x1: 1, y0: PRECONDITION_BOUNDS.backdoorAsr, y1: PRECONDITION_BOUNDS.backdoorAsr, line: { dash: 'dash', color: '#d62728' } }],
        },
      });
  }
  const tableSlide = (file: string, label: string, t: Table | null, attacks: string[]) => {
    const ds = t && Object.keys(t.datasets)[0];
    if (!t || !ds) return;
    const cells = t.datasets[ds];
    const v = rvptClaim(cells as never, why);
    add(file, `${label}: RVPT removes the backdoors (ASR near 0) and keeps clean accuracy; VPT without the FR loss does not`, `${ds}: ${verdictText(v)}.`, tableFigure(cells, attacks.filter((a) => cells['No defense']?.[a]), ['No defense', 'CleanCLIP', 'Linear Probe', 'VPT', 'RVPT']));
  };
  tableSlide('02-table1.png', 'Table 1', t1, ['BadNet', 'Blended', 'ISSBA', 'WaNet', 'TrojVQA', 'BadCLIP']);
  tableSlide('03-table2.png', 'Table 2', t2, ['BadNet', 'Blended', 'WaNet', 'BadCLIP']);
  if (t1) {
    const v = probeClaim(t1.datasets[profile.datasets.main] as never, pre && !pre.p3.holds ? 'P3 does not hold here' : undefined);
    const lp = t1.datasets[profile.datasets.main];
    const attacks = Object.keys(lp['Linear Probe'] ?? {});
    add('04-linear-probe.png', 'A clean linear probe removes every attack but BadCLIP: the simple triggers lie apart from the class features', `${verdictText(v)}.`, tableFigure(lp, attacks, ['No defense', 'Linear Probe', 'RVPT']));
  }
  if (t3) {
    const names = Object.keys(t3.datasets);
    const attack = Object.keys(t3.datasets[names[0]]['RVPT'] ?? {})[0];
    const methods = Object.keys(t3.datasets[names[0]]);
    add('05-table3.png', 'Table 3: the defense tuned on one domain keeps working under domain shift', `${attack}, tuned on ${names[0]}, tested on ${names.length - 1} shifted sets; ASR and CA per test set.`, {
      data: methods.flatMap((m) => (['asr', 'ca'] as const).map((k) => ({ type: 'bar', name: m, legendgroup: m, showlegend: k === 'asr', marker: { color: COLOURS[m] ?? '#7f7f7f' }, x: names.map((n) => n.split('/')[1] ?? 'tuning styles'), y: names.map((n) => t3.datasets[n][m]?.[attack]?.[k] ?? null), xaxis: k === 'asr' ? 'x' : 'x2', yaxis: k === 'asr' ? 'y' : 'y2' }))),
      layout: { barmode: 'group', grid: { rows: 1, columns: 2, pattern: 'independent' }, yaxis: { title: { text: 'ASR %' } }, yaxis2: { title: { text: 'CA %' } }, legend: { orientation: 'h', y: -0.12 } },
    });
  }
  if (cost?.rows.RVPT && cost.rows.CleanCLIP) {
    const r = cost.rows.RVPT;
    const c = cost.rows.CleanCLIP;
    const mem = memoryClaim(cost.rows);
    const measures: [string, number][] = [['wall time', r.seconds / c.seconds], ['peak TF.js memory', r.peakBytes / c.peakBytes], ['peak process RSS', r.rssBytes / c.rssBytes], ['tuned parameters', r.tunableParams / c.tunableParams]];
    add('06-cost.png', 'RVPT is cheap: a fraction of CleanCLIP\'s time and memory, 0.27% of the parameters', `time ratio ${(r.seconds / c.seconds).toFixed(2)}, ${((100 * r.tunableParams) / r.totalParams).toFixed(2)}% of the parameters; memory (peak RSS): ${verdictText(mem)}.`, {
      data: [{ type: 'bar', x: measures.map((m) => m[0]), y: measures.map((m) => m[1]), text: measures.map((m) => m[1].toFixed(3)), textposition: 'outside', marker: { color: measures.map((m) => (m[1] < 1 ? '#2ca02c' : '#d62728')) } }],
      layout: { yaxis: { title: { text: 'RVPT / CleanCLIP (below 1: RVPT cheaper)' }, range: [0, 1.3] }, shapes: [{ type: 'line', xref: 'paper', x0: 0, x1: 1, y0: 1, y1: 1, line: { dash: 'dash' } }] },
    });
  }
  for (const [file, json, claim] of [
    ['07-pr.png', 'fig4-pr.json', "Fig. 4: CLIP's features resist task-irrelevant perturbations less than a supervised model's; RVPT raises resistivity under the trigger"],
    ['08-attention.png', 'fig6-attention.json', "Fig. 6: the trigger draws the backdoored model's attention; RVPT's looks at the object"],
    ['09-embeddings.png', 'fig7-tsne.json', 'Fig. 7: triggered images leave their classes in the backdoored model and return to them after RVPT'],
    ['10-ablations.png', 'ablations.json', 'Fig. 3: ablations of shots, α, prompt length, depth and margin'],
  ] as const) {
    const f = read<{ spec: Figure; claims?: { claim: string; ours: string; holds: boolean }[] }>(dir, json);
    if (!f) continue;
    const claims = f.claims ?? [];
    // The figure's own panels need the room: one line of result, the sub-claims' numbers are in REPRODUCTION.md.
    add(file, claim, `${claims.filter((c) => c.holds).length} of ${claims.length} sub-claims hold here (each with its numbers in REPRODUCTION.md).`, { data: f.spec.data, layout: { ...f.spec.layout, legend: { orientation: 'h', y: -0.2 } } });
  }
  return out;
}

export async function writeSlides(profile: Profile, dir = resultsDir(profile)): Promise<string[]> {
  const specs = slideSpecs(profile, dir);
  const slidesDir = path.join(dir, 'slides');
  fs.mkdirSync(slidesDir, { recursive: true });
  await renderPngs(specs.map((s) => ({ fig: s.fig, file: path.join(slidesDir, s.slide.file), width: WIDTH, height: HEIGHT })));
  writeJsonAtomic(path.join(slidesDir, 'slides.json'), { slides: specs.map((s) => s.slide), provenance: { profile: profile.name, commit: gitCommit(), width: WIDTH, height: HEIGHT, from: 'the result files beside this folder' } });
  return specs.map((s) => path.join(slidesDir, s.slide.file));
}
