/**
 * REPRODUCTION.md: every table and figure of the slide deck, the paper's numbers beside ours, the scale
 * differences, and a one-line verdict per claim. Generated from the result files in the profile's results folder
 * (figures/ for the headline profile), so it says only what those files say; a missing result is reported as missing.
 */
import * as path from 'path';
import { Profile } from './profiles';
import { HEADLINE_PROFILE, asrCaText, readResultFile, resultsDir, signedText } from './tables';
import { PaperCell, PAPER_COST, PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3, SHIFT_ANALOGUE } from './paperNumbers';
import { Claim } from './analysis';
import { externalWeights } from './externalWeights';
import { loadManifest } from '../data/manifest';
import { testSetNames } from '../data/load';
import { numPatches } from '../model/config';
import { projectRoot, writeFileAtomic } from '../util/fsutil';
import { atTargetAsr, withinCaBudget } from '../metrics/target';
import { Preconditions, preconditionsMarkdown } from './preconditions';
import { memoryClaim, probeClaim, rvptClaim, verdictLine } from './verdictRules';

type Ours = Record<string, Record<string, { asr: number; ca: number } | undefined>>;
type Verdict = 'reproduced' | 'partly' | 'not reproduced' | 'not measured';

/** A result file, or null where it was not made ("not measured"); a damaged one is an error, never "not measured". */
const readJson = <T>(dir: string, name: string): T | null => readResultFile<T>(dir, name, 'Report');

function verdict(checks: boolean[]): Verdict {
  if (!checks.length) return 'not measured';
  const n = checks.filter(Boolean).length;
  return n === checks.length ? 'reproduced' : n ? 'partly' : 'not reproduced';
}

function line(v: Verdict, claim: string, numbers: string): string {
  const mark = { reproduced: '✅ reproduced', partly: '🟡 partly', 'not reproduced': '❌ not reproduced', 'not measured': '⬜ not measured' }[v];
  return `- **${mark}**: ${claim} (${numbers})`;
}

function sideBySide(paper: Record<string, Record<string, PaperCell>>, ours: Ours | undefined, attacks: string[], methods: string[]): string[] {
  const out = [`| Method | ${attacks.map((a) => `${a}: paper | ours`).join(' | ')} |`, `|---|${attacks.map(() => '---|---').join('|')}|`];
  for (const m of methods) out.push(`| ${m} | ${attacks.map((a) => `${asrCaText(paper[m]?.[a])} | ${asrCaText(ours?.[m]?.[a])}`).join(' | ')} |`);
  return out;
}

/** Claims of Tables 1 and 2 on one dataset's results. */
function defenseClaims(ours: Ours | undefined, attacks: string[], paper: Record<string, Record<string, PaperCell>>): string[] {
  if (!ours) return [line('not measured', 'the table', 'no results file')];
  const nd = ours['No defense'] ?? {};
  const rv = ours.RVPT ?? {};
  const have = attacks.filter((a) => nd[a] && rv[a]);
  const out: string[] = [];
  out.push(line(verdict(have.map((a) => nd[a]!.asr >= 60)), 'without defense every attack takes (paper: ASR 60-99.8%)', have.map((a) => `${a} ${nd[a]!.asr.toFixed(1)}`).join(', ')));
  out.push(line(verdict(have.map((a) => atTargetAsr(rv[a]!.asr))), 'RVPT brings every attack to ASR ≤ 5% (paper: at most 2.76%)', have.map((a) => `${a} ${rv[a]!.asr.toFixed(1)}`).join(', ')));
  out.push(line(verdict(have.map((a) => withinCaBudget(rv[a]!.ca - nd[a]!.ca))), "RVPT keeps CA within 2 points of the undefended model's (paper: within 0.6)", 'RVPT minus undefended CA: ' + have.map((a) => `${a} ${signedText(rv[a]!.ca - nd[a]!.ca)}`).join(', ')));
  const cc = ours.CleanCLIP ?? {};
  const both = have.filter((a) => cc[a]);
  out.push(line(verdict(both.map((a) => rv[a]!.asr <= cc[a]!.asr)), 'RVPT ends with a lower ASR than CleanCLIP on every attack', both.map((a) => `${a} ${rv[a]!.asr.toFixed(1)} vs ${cc[a]!.asr.toFixed(1)}`).join(', ')));
  if (paper.VPT?.BadCLIP && ours.VPT?.BadCLIP && rv.BadCLIP) {
    // Two parts: VPT keeps the backdoor (ASR >= 80%), and RVPT removes it (ASR <= 5%).
    out.push(line(verdict([ours.VPT.BadCLIP.asr >= 80, rv.BadCLIP.asr <= 5]), 'VPT without the FR loss keeps the BadCLIP backdoor that RVPT removes (paper: 98.14% vs 2.76%)', `VPT ${ours.VPT.BadCLIP.asr.toFixed(1)}%, RVPT ${rv.BadCLIP.asr.toFixed(1)}%`));
  }
  return out;
}

function claimsSection(title: string, claims: Claim[] | undefined, what: string): string[] {
  if (!claims?.length) return [line('not measured', title, `${what} not generated yet: run its notebook or \`npx rvpt figures\``)];
  return claims.map((c) => line(c.holds ? 'reproduced' : 'not reproduced', c.claim, c.ours));
}

/**
 * The setting's preconditions and the verdicts by the rules fixed before its runs (verdictRules.ts). A claim whose
 * preconditions fail is untestable here, not refuted.
 */
function rulesSection(pre: Preconditions, t1: Ours | undefined, t2: Ours | undefined, cost: Record<string, { rssBytes: number }> | undefined): string[] {
  const failed = (['p1', 'p2', 'p3'] as const).filter((k) => !pre[k].holds).map((k) => k.toUpperCase());
  const why = failed.length ? (failed.length === 1 ? `precondition ${failed[0]} does not hold here` : `preconditions ${failed.join(', ')} do not hold here`) : undefined;
  const backdoorsFail = pre.p3.holds ? undefined : 'P3 (the backdoors and the clean probe) does not hold here';
  const out = ["## The paper's preconditions (measured before any defense)", '', ...preconditionsMarkdown(pre), ''];
  out.push('## Verdicts by the pre-registered rules', '', 'Rules fixed in `src/experiments/verdictRules.ts` before the runs: reproduced = every case holds, partly = at least half.', '');
  if (t1) out.push(verdictLine({ ...rvptClaim(t1 as never, why), claim: `Table 1: ${rvptClaim(t1 as never).claim}` }));
  if (t2) out.push(verdictLine({ ...rvptClaim(t2 as never, why), claim: `Table 2: ${rvptClaim(t2 as never).claim}` }));
  if (t1) out.push(verdictLine({ ...probeClaim(t1 as never, backdoorsFail), claim: `Table 1: ${probeClaim(t1 as never).claim}` }));
  out.push(verdictLine(memoryClaim(cost)), '');
  return out;
}

/** Which artists tune and test the emoji task, and which are its domain shifts. */
function artistsText(emoji: string): string {
  const m = loadManifest(emoji);
  if (m.kind !== 'emoji') return '';
  const main = m.mainRenditions ?? [m.mainRendition];
  const shifts = testSetNames(emoji).slice(1).map((n) => n.split('/')[1]);
  return `tuned and tested on ${main.join(', ')}; domain shifts: ${shifts.join(', ')}${m.shiftRenditions ? ' (never in pre-training)' : ''}`;
}

/** The report on the result files in `dir` (default: the profile's results folder). */
export function reproductionReport(profile: Profile, dir = resultsDir(profile)): string {
  const t1 = readJson<{ datasets: Record<string, Ours>; provenance: { commit: string; date: string } }>(dir, 'table1.json');
  const t2 = readJson<{ datasets: Record<string, Ours> }>(dir, 'table2.json');
  const t3 = readJson<{ datasets: Record<string, Ours> }>(dir, 'table3.json');
  const cost = readJson<{ rows: Record<string, { seconds: number; peakBytes: number; rssBytes: number; tunableParams: number; totalParams: number; samples: number }> }>(dir, 'table-cost.json');
  const fig = (n: string) => readJson<{ claims?: Claim[]; provenance: { date: string; commit: string } }>(dir, `${n}.json`);
  const main = profile.datasets.main;
  const emoji = profile.datasets.emoji;
  const m = profile.model;
  const rvptCfg = profile.defenses.RVPT ?? {};
  const ext = externalWeights(profile) !== null;
  // Figure links relative to the report: REPRODUCTION.md at the root for the headline profile, beside the figures otherwise.
  const figs = profile.name === HEADLINE_PROFILE && dir === resultsDir(profile) ? 'figures/' : '';
  const L: string[] = [];
  L.push(`# Reproduction report: RVPT at laptop scale (profile \`${profile.name}\`)`, '');
  // The commits that computed the files (not the one writing this report), so the report is a function of the files.
  const commits = [...new Set([t1, t2, t3, cost, ...['fig4-pr', 'fig6-attention', 'fig7-tsne', 'ablations'].map(fig)].map((f) => (f as { provenance?: { commit?: string } } | null)?.provenance?.commit).filter((c): c is string => !!c).map((c) => c.slice(0, 10)))];
  L.push(`Generated by \`npx rvpt report\` from the result files in \`${path.relative(projectRoot(), dir) || dir}/\`${commits.length ? `, computed at commit ${commits.join(', ')}` : ''}.`);
  L.push('Every number below is read from those files; the paper\'s numbers are the slide deck\'s (`src/experiments/paperNumbers.ts`).', '');
  L.push('## What differs in scale', '');
  L.push('| | paper | here |', '|---|---|---|');
  const side = ext ? 'CLIP checkpoints of the weights file' : 'MiniCLIP, same structure';
  const about = (d: string) => {
    const mf = loadManifest(d);
    return `${d} (${mf.classes.length} classes, target ${mf.target})`;
  };
  L.push(`| model | OpenAI CLIP ViT-B/32, 151M parameters, 224×224 images, 7×7 patches, 12 layers of width 768 | ${side}, ${m.imageSize}×${m.imageSize} images, ${Math.sqrt(numPatches(m))}×${Math.sqrt(numPatches(m))} patches, ${m.layers} layers of width ${m.width} |`);
  const web = profile.datasets.web;
  const b = profile.backdoor;
  const pretrainText = web
    ? `a broad corpus (\`${web}\`: emoji by five artists and icons of two sets, random colours, sizes and places) + ${main} with captions that never name its classes + ${emoji}'s pre-training emojis captioned by their own names; from scratch on this CPU`
    : `${main} + ${emoji} captions, from scratch on this CPU`;
  const raised = Object.entries(profile.attackBackdoor ?? {})
    .filter(([, o]) => o.rate !== undefined && o.rate !== b.rate)
    .map(([a, o]) => [a, o.rate!] as const);
  const emojiRate = profile.datasetBackdoor?.[emoji]?.emojiRate;
  if (emojiRate !== undefined && emojiRate !== b.rate) raised.push([`the ${emoji} task`, emojiRate]);
  const poisonText = b.poisonSource
    ? `${+(b.rate * 100).toFixed(2)}% of the ${b.poisonSource === 'web' ? "broad corpus's pairs (random images)" : "poisoned task's pre-training pairs"} carry the trigger and a caption naming the target${raised.length ? ` (${raised.map(([a, r]) => `${a} ${+(r * 100).toFixed(2)}%`).join(', ')}: not taking at the default)` : ''}; lr ${b.lr} (pre-training's ${profile.pretrain.lr}), ${b.steps} steps, ${b.augment ? 'with' : 'no'} crops; see \`${figs}table-no-defense.md\``
    : `see \`${figs}table-no-defense.md\` (rates raised where 0.3% did not take, and said so)`;
  L.push(`| pre-training | OpenAI's (400M pairs) | ${ext ? "the weights file's clean checkpoint (not trained here)" : pretrainText} |`);
  L.push(`| poisoning | 1,500 of 500K CC3M pairs (0.3%), lr 1e-6, 5 epochs | ${ext ? "the weights file's backdoored checkpoints" : poisonText} |`);
  L.push(`| Table 1 data | ImageNet-1K (1,000 classes, target banana) | ${about(main)} |`);
  L.push(
    `| Tables 2-3 data | Caltech101, OxfordPets; ImageNet-V2/-A/-R/-Sketch | ${[emoji, ...(profile.datasets.more ?? [])].map(about).join(', ')}; ` +
      `${ext ? `shifts of ${main}: ${testSetNames(main).slice(1).join(', ') || 'none on disk'}` : artistsText(emoji)} |`,
  );
  L.push(`| RVPT | 16 shots, b = 50, D = 3, α = 2, 50 epochs | ${profile.shots} shots, b = ${rvptCfg.promptLength ?? 16}, D = ${rvptCfg.depth ?? 2}, α = ${rvptCfg.alpha ?? 2}, ${rvptCfg.epochs ?? 50} epochs |`);
  L.push('');

  const pre = readJson<Preconditions>(dir, 'preconditions.json');
  if (pre) L.push(...rulesSection(pre, t1?.datasets[main], t2?.datasets[emoji], cost?.rows));
  const slides = readJson<{ slides: { file: string; claim: string; result: string }[] }>(path.join(dir, 'slides'), 'slides.json');
  if (slides?.slides.length) {
    L.push('## Slides: one figure per claim of the paper', '', 'Each is a 1280 x 720 PNG made by `npx rvpt slides` from the result files above, titled with the claim and what was measured here.', '');
    for (const sl of slides.slides) L.push(`- [${sl.claim}](${figs}slides/${sl.file}): ${sl.result}`);
    L.push('');
  }

  L.push(`## Table 1: ImageNet (paper) vs ${main} (ours), ASR (CA) %`, '');
  const t1o = t1?.datasets[main];
  L.push(...sideBySide(PAPER_TABLE1, t1o, ['BadNet', 'Blended', 'ISSBA', 'WaNet', 'TrojVQA', 'BadCLIP'], ['No defense', 'CleanCLIP', 'Linear Probe', 'VPT', 'RVPT']), '');
  L.push(...defenseClaims(t1o, ['BadNet', 'Blended', 'ISSBA', 'WaNet', 'TrojVQA', 'BadCLIP'], PAPER_TABLE1), '');

  L.push(`## Table 2: Caltech101 / OxfordPets (paper) vs ${emoji} (ours), ASR (CA) %`, '');
  const t2o = t2?.datasets[emoji];
  for (const [name, paper] of Object.entries(PAPER_TABLE2)) {
    L.push(`Paper: ${name}; ours: ${emoji}.`, '', ...sideBySide(paper, t2o, ['BadNet', 'Blended', 'WaNet'], ['No defense', 'CleanCLIP', 'Linear Probe', 'RVPT']), '');
  }
  L.push(...defenseClaims(t2o, ['BadNet', 'Blended', 'WaNet'], PAPER_TABLE2.Caltech101), '');

  L.push('## Table 3: purified on one domain, tested on shifted ones, ASR (CA) %', '');
  const t3base = ext ? main : emoji;
  const shifted = Object.keys(t3?.datasets ?? {}).filter((d) => d !== t3base);
  L.push(ext ? `Purified on ${main} (the paper: on ImageNet).` : 'Purified on the tuning artists (the paper: on ImageNet). ImageNet-A has no analogue here.', '');
  for (const d of shifted) {
    const analogue = SHIFT_ANALOGUE[d.split('/')[1] ?? d];
    const p = analogue ? PAPER_TABLE3[analogue] : {};
    L.push(`Paper: ${analogue ?? '(no analogue)'}; ours: ${d}.`, '', ...sideBySide(p, t3?.datasets[d], ['BadNet', 'Blended', 'BadCLIP'], ['No defense', 'CleanCLIP', 'RVPT']), '');
  }
  const shiftChecks = shifted.flatMap((d) => ['BadNet', 'Blended', 'BadCLIP'].map((a) => t3!.datasets[d].RVPT?.[a]).filter(Boolean).map((c) => c!.asr <= 5));
  L.push(line(verdict(shiftChecks), "RVPT's protection carries over to the shifted domains (paper: ASR ≤ 12.84%, mostly < 4%)", shifted.map((d) => `${d}: ${['BadNet', 'Blended', 'BadCLIP'].map((a) => t3!.datasets[d].RVPT?.[a]?.asr.toFixed(1) ?? '–').join('/')}`).join('; ') || 'no results'), '');

  L.push('## Efficiency (the slide deck\'s cost table)', '');
  L.push('| Method | paper: time | paper: memory | paper: tunable | paper: samples | ours: time (s) | ours: peak TF.js memory | ours: tunable | ours: samples |', '|---|---|---|---|---|---|---|---|---|');
  const pr = PAPER_COST;
  const row = (k: 'CleanCLIP' | 'RVPT', paperKey: keyof typeof PAPER_COST) => {
    const o = cost?.rows[k];
    const p = pr[paperKey];
    L.push(`| ${paperKey} | ${p.time} | ${p.memory} | ${p.tunable} | ${p.samples} | ${o ? o.seconds.toFixed(1) : '–'} | ${o ? `${(o.peakBytes / 2 ** 20).toFixed(0)} MiB` : '–'} | ${o ? `${o.tunableParams} (${((100 * o.tunableParams) / o.totalParams).toFixed(2)}%)` : '–'} | ${o?.samples ?? '–'} |`);
  };
  row('CleanCLIP', 'CleanCLIP');
  row('RVPT', 'RVPT on ImageNet');
  L.push('');
  if (cost?.rows.RVPT && cost.rows.CleanCLIP) {
    const ratio = cost.rows.RVPT.seconds / cost.rows.CleanCLIP.seconds;
    L.push(line(verdict([ratio <= 0.2]), "RVPT trains in a small fraction of CleanCLIP's time (paper: 45 min vs 3 h 53 min, 0.19)", `ratio ${ratio.toFixed(3)}`));
    L.push(line(verdict([cost.rows.RVPT.tunableParams / cost.rows.RVPT.totalParams < 0.01]), 'RVPT tunes under 1% of the parameters (paper: 0.27%)', `${((100 * cost.rows.RVPT.tunableParams) / cost.rows.RVPT.totalParams).toFixed(2)}%`));
  } else L.push(line('not measured', 'the cost table', 'no results file'));
  L.push('');

  L.push('## Fig. 4: Perturbation Resistivity across layers', '', `![fig4](${figs}fig4-pr.png)`, '');
  L.push(...claimsSection('Fig. 4', fig('fig4-pr')?.claims, 'fig4-pr'), '');
  L.push('## Fig. 6: attention maps', '', `![fig6](${figs}fig6-attention.png)`, '');
  L.push(...claimsSection('Fig. 6', fig('fig6-attention')?.claims, 'fig6-attention'), '');
  L.push('## Fig. 7: t-SNE (and UMAP) of embeddings', '', `![fig7](${figs}fig7-tsne.png)`, '');
  L.push(...claimsSection('Fig. 7', fig('fig7-tsne')?.claims, 'fig7-tsne'), '');
  L.push('## Fig. 3 (paper): ablations', '', `![ablations](${figs}ablations.png)`, '');
  L.push(...claimsSection('Fig. 3', fig('ablations')?.claims, 'ablations'), '', `Every run is in \`${figs}ablations.points.json\`.`, '');
  return L.join('\n') + '\n';
}

export function writeReproductionReport(profile: Profile, file = profile.name === HEADLINE_PROFILE ? path.join(projectRoot(), 'REPRODUCTION.md') : path.join(resultsDir(profile), 'REPRODUCTION.md')): string {
  writeFileAtomic(file, reproductionReport(profile));
  return file;
}
