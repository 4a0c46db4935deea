/**
 * The paper's Fig. 3: RVPT's ASR and CA against shots, alpha, prompt length b, depth (from the output and from the
 * input) and margin.
 */
import { RVPT_DEFAULTS } from '../../defenses/rvpt';
import { writeJsonAtomic } from '../../util/fsutil';
import { Progress } from '../../util/progress';
import { Figure } from '../../viz/plotly';
import { ensureBackdoored } from '../backdoorRun';
import { defenseConfig, runCell } from '../defenseRun';
import { runCellsInParallel } from '../cellPool';
import { Profile } from '../profiles';
import { PALETTE, Log, quietLog, writeAnalysisFigure, figureAttacks, Claim } from './common';

export interface AblationPoint {
  parameter: string;
  value: number;
  attack: string;
  asr: number;
  ca: number;
  seconds: number;
}

export const ABLATION_GRID: Record<string, number[]> = {
  shots: [1, 2, 4, 8, 16, 32],
  alpha: [0, 0.5, 1, 2, 4],
  promptLength: [2, 4, 8, 16, 32],
  'depth from output': [1, 2, 3, 4, 5, 6],
  'depth from input': [1, 2, 3, 4, 5, 6],
  margin: [-1, -0.5, 0, 0.5, 1],
};

/**
 * The RVPT config and shots for one ablation point (everything else as the profile's RVPT). A value equal to the
 * default leaves the config as it is, so that each parameter's default point is one cell, computed once for all of
 * them (its cache key is the config as written: {alpha: 2} and {} would be two runs of the same thing).
 */
export function ablationSetting(profile: Profile, parameter: string, value: number): { shots: number; config: Record<string, unknown> } {
  const L = profile.model.layers;
  const config: Record<string, unknown> = { ...defenseConfig(profile, 'RVPT'), epochs: profile.analysis?.ablationEpochs ?? defenseConfig(profile, 'RVPT').epochs };
  const effective: Record<string, unknown> = { ...RVPT_DEFAULTS, ...config };
  let shots = profile.shots;
  if (parameter === 'shots') shots = value;
  else if (parameter === 'depth from output') {
    if (config.layers !== undefined || effective.depth !== L - value) config.depth = L - value; // prompts on the last `value` blocks
  } else if (parameter === 'depth from input') {
    // The first `value` blocks; all of them is the same prompt set as depth 0 from the output, so the same config.
    if (value === L) config.depth = 0;
    else config.layers = Array.from({ length: value }, (_, i) => i);
  } else if (effective[parameter] !== value) config[parameter] = value;
  return { shots, config };
}

/** The attacks the ablations run on: the profile's choice, else the paper's Fig. 3 three (those the profile has). */
function ablationAttacks(profile: Profile): string[] {
  return profile.analysis?.ablationAttacks ?? figureAttacks(profile, ['BadNet', 'Blended', 'BadCLIP']);
}

export async function runAblations(profile: Profile, log: Log = quietLog): Promise<AblationPoint[]> {
  const attacks = ablationAttacks(profile);
  const grid = profile.analysis?.ablationGrid ?? ABLATION_GRID;
  const evalLimit = profile.analysis?.ablationEvalLimit ?? profile.evalLimit;
  const dataset = profile.datasets.main;
  const out: AblationPoint[] = [];
  const settings = (parameter: string, values: number[]) =>
    values
      .filter((v) => parameter !== 'depth from output' && parameter !== 'depth from input' ? true : v <= profile.model.layers)
      .map((value) => {
        const s = ablationSetting(profile, parameter, value);
        return { value, profile: { ...profile, shots: s.shots, evalLimit, defenses: { ...profile.defenses, RVPT: s.config } } as Profile };
      });
  // Both cores: the runs are cells, computed side by side first, then read back below.
  await runCellsInParallel(
    attacks.flatMap((attack) => Object.entries(grid).flatMap(([parameter, values]) => settings(parameter, values).map((s) => ({ profile: s.profile, attack, method: 'RVPT', dataset, testSets: [dataset] })))),
    profile.jobs ?? 1,
    log,
  );
  const total = attacks.length * Object.values(grid).reduce((s, v) => s + v.length, 0);
  const bar = new Progress('ablations', total);
  for (const attack of attacks) {
    const bd = await ensureBackdoored(profile, attack, { dataset, log });
    try {
      for (const [parameter, values] of Object.entries(grid)) {
        for (const { value, profile: p } of settings(parameter, values)) {
          const cell = await runCell(p, attack, 'RVPT', dataset, [dataset], { backdoored: bd, log: () => {}, quiet: true });
          const m = cell.metrics[dataset]!;
          out.push({ parameter, value, attack, asr: m.asr, ca: m.ca, seconds: cell.cost.seconds });
          bar.tick(1, `${attack} ${parameter}=${value}: ASR ${m.asr.toFixed(1)} CA ${m.ca.toFixed(1)}`);
        }
      }
    } finally {
      bd.model.dispose();
    }
  }
  bar.done();
  return out;
}

/** Each ablated parameter's name on the figure, in the paper's symbols. */
const PARAMETER_LABELS: Record<string, string> = {
  shots: 'clean shots per class',
  alpha: 'α (weight of the FR loss)',
  promptLength: 'prompt length b (tokens per block)',
  'depth from output': 'prompted blocks, counted from the output',
  'depth from input': 'prompted blocks, counted from the input',
  margin: 'margin m (1: no repulsion)',
};

export function ablationFigure(points: AblationPoint[]): Figure {
  const params = [...new Set(points.map((p) => p.parameter))];
  const attacks = [...new Set(points.map((p) => p.attack))];
  const cols = 3;
  const data: Record<string, unknown>[] = [];
  const annotations: Record<string, unknown>[] = [];
  params.forEach((param, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    attacks.forEach((a, k) => {
      const pts = points.filter((p) => p.parameter === param && p.attack === a).sort((x, y) => x.value - y.value);
      for (const metric of ['asr', 'ca'] as const) {
        data.push({
          type: 'scatter',
          mode: 'lines+markers',
          name: `${a} ${metric.toUpperCase()}`,
          legendgroup: `${a}-${metric}`,
          showlegend: i === 0,
          x: pts.map((p) => p.value),
          y: pts.map((p) => p[metric]),
          xaxis: `x${ax}`,
          yaxis: `y${ax}`,
          line: { color: PALETTE[k], dash: metric === 'ca' ? 'dot' : 'solid' },
        });
      }
    });
    annotations.push({ text: `<b>${PARAMETER_LABELS[param] ?? param}</b>`, xref: `x${ax} domain`, yref: `y${ax} domain`, x: 0.5, y: 1.12, showarrow: false });
  });
  const layout: Record<string, unknown> = {
    title: { text: 'RVPT ablations: ASR (solid) and CA (dotted), %' },
    grid: { rows: Math.ceil(params.length / cols), columns: cols, pattern: 'independent', ygap: 0.35 },
    margin: { t: 95 },
    annotations,
    legend: { orientation: 'h', y: -0.12 },
  };
  params.forEach((param, i) => {
    const ax = i === 0 ? '' : String(i + 1);
    // Ticks at the values measured, so a log axis reads 1, 2, 4, 8, 16, 32 rather than plotly's 1, 2, 5, 10, 2.
    const values = [...new Set(points.filter((p) => p.parameter === param).map((p) => p.value))].sort((a, b) => a - b);
    layout[`xaxis${ax}`] = { title: { text: PARAMETER_LABELS[param] ?? param }, type: param === 'shots' ? 'log' : 'linear', tickvals: values, ticktext: values.map(String) };
    layout[`yaxis${ax}`] = { range: [0, 100], title: { text: '%' }, ticksuffix: '%' };
  });
  return { data, layout };
}

export async function figureAblations(profile: Profile, log: Log = quietLog) {
  const t0 = Date.now();
  const points = await runAblations(profile, log);
  const fig = ablationFigure(points);
  const config = { grid: profile.analysis?.ablationGrid ?? ABLATION_GRID, attacks: ablationAttacks(profile), epochs: profile.analysis?.ablationEpochs, evalLimit: profile.analysis?.ablationEvalLimit };
  const claims = ablationClaims(points);
  const saved = await writeAnalysisFigure(profile, 'ablations', fig, 'RVPT ablations', config, (Date.now() - t0) / 1000, { width: 1200, height: 760 }, claims);
  writeJsonAtomic(saved.json.replace(/\.json$/, '.points.json'), points);
  return { points, fig, saved, claims };
}

/** The paper's remarks on its Fig. 3 (docs/PAPER-NOTES.md §1), each checked on every attack's curve. */
export function ablationClaims(points: AblationPoint[]): Claim[] {
  const attacks = [...new Set(points.map((p) => p.attack))];
  const at = (param: string, attack: string) => points.filter((p) => p.parameter === param && p.attack === attack).sort((a, b) => a.value - b.value);
  const ends = (param: string) =>
    attacks.map((a) => ({ a, pts: at(param, a) })).filter((x) => x.pts.length >= 2).map(({ a, pts }) => ({ a, lo: pts[0], hi: pts[pts.length - 1], pts }));
  const fmt = (p: AblationPoint) => `${p.asr.toFixed(1)}/${p.ca.toFixed(1)}`;
  const out: Claim[] = [];
  const alpha = ends('alpha');
  if (alpha.length) out.push({ claim: 'raising α lowers both ASR and CA', ours: alpha.map((x) => `${x.a} α=${x.lo.value}→${x.hi.value}: ${fmt(x.lo)} → ${fmt(x.hi)}`).join('; '), holds: alpha.every((x) => x.hi.asr < x.lo.asr && x.hi.ca < x.lo.ca) });
  const margin = ends('margin');
  if (margin.length) out.push({ claim: 'a larger margin m raises both ASR and CA', ours: margin.map((x) => `${x.a} m=${x.lo.value}→${x.hi.value}: ${fmt(x.lo)} → ${fmt(x.hi)}`).join('; '), holds: margin.every((x) => x.hi.asr > x.lo.asr && x.hi.ca > x.lo.ca) });
  const shots = ends('shots');
  const oneShot = shots.filter((x) => x.a === 'BadNet' || x.a === 'Blended');
  if (oneShot.length) out.push({ claim: 'one shot per class already gives near-0 ASR for BadNet and Blended', ours: oneShot.map((x) => `${x.a} ${x.lo.asr.toFixed(1)}%`).join(', '), holds: oneShot.every((x) => x.lo.value === 1 && x.lo.asr <= 5) });
  const badclip = shots.find((x) => x.a === 'BadCLIP');
  if (badclip) {
    const first = badclip.pts.find((p) => p.asr < 5);
    out.push({ claim: 'BadCLIP needs about 8 shots per class to get below 5% ASR', ours: first ? `below 5% from ${first.value} shots` : `never below 5% (at ${badclip.hi.value} shots: ${badclip.hi.asr.toFixed(1)}%)`, holds: !!first && first.value <= 8 });
  }
  const b = ends('promptLength');
  if (b.length) out.push({ claim: 'a short prompt (b = 5) already gives ASR < 5% for every attack', ours: b.map((x) => `${x.a}: ${x.pts.map((p) => `b=${p.value} ${p.asr.toFixed(1)}%`).join(', ')}`).join('; '), holds: b.every((x) => x.pts.some((p) => p.value <= 5 && p.asr < 5)) });
  const fromOut = attacks.map((a) => ({ a, o: at('depth from output', a), i: at('depth from input', a) })).filter((x) => x.o.length && x.i.length);
  if (fromOut.length) {
    const best = (pts: AblationPoint[]) => Math.min(...pts.map((p) => p.asr));
    out.push({ claim: 'prompts counted from the input do worse than the same number counted from the output', ours: fromOut.map((x) => `${x.a} best ASR ${best(x.o).toFixed(1)}% (output) vs ${best(x.i).toFixed(1)}% (input)`).join('; '), holds: fromOut.every((x) => best(x.i) > best(x.o)) });
  }
  return out;
}

/** Per parameter and attack: ASR and CA at the smallest and largest value, for the ablation notebook's table. */
export function ablationSummary(points: AblationPoint[]): { parameter: string; attack: string; values: string; asr: string; ca: string }[] {
  const keys = [...new Set(points.map((p) => `${p.parameter}|${p.attack}`))];
  return keys.map((k) => {
    const [parameter, attack] = k.split('|');
    const pts = points.filter((p) => p.parameter === parameter && p.attack === attack).sort((a, b) => a.value - b.value);
    return { parameter, attack, values: pts.map((p) => p.value).join(', '), asr: pts.map((p) => p.asr.toFixed(1)).join(' → '), ca: pts.map((p) => p.ca.toFixed(1)).join(' → ') };
  });
}
