/**
 * The paper's preconditions, checked before any defense cell runs (docs/PAPER-NOTES.md §7). RVPT's argument needs a
 * setting in which (P1) CLIP transfers to the task only moderately and few-shot tuning helps, (P2) CLIP encodes
 * features the task does not need, more than a supervised model does, and (P3) a light poisoning implants every
 * backdoor without moving clean accuracy, with the trigger beside the class features (a clean linear probe removes
 * the simple backdoors). The bounds are fixed here, before the runs; `rvpt preconditions` measures and stores them.
 */
import { ImageDataset, numImages } from '../data/dataset';
import { loadEvalSplit, loadShots } from '../data/load';
import { makeTrigger } from '../attacks/registry';
import { LinearProbe } from '../defenses/linearProbe';
import { evaluateDefended } from '../metrics/defended';
import { perturbationResistivity, standardPerturbations } from '../metrics/pr';
import { noDefenseSpec } from './noDefense';
import { median } from '../util/stats';
import { Profile } from './profiles';
import { ensurePretrained, pretrainData } from './pretrainRun';
import { ensureBackdoored, targetIndex } from './backdoorRun';
import { runCell } from './defenseRun';
import { ensureSupervisedViT } from './supervised';
import { sample } from '../data/splits';
import * as path from 'path';
import { writeFileAtomic, writeJsonAtomic } from '../util/fsutil';
import { provenanceLine, resultsDir, tableProvenance } from './tables';

/** The pre-registered bounds of P1-P3 (docs/PAPER-NOTES.md §7), fixed before the first measurement and never tuned to it. */
export const PRECONDITION_BOUNDS = {
  /** P1: zero-shot CA on the main task within these (%), and a 16-shot linear probe at least this far above it. */
  zeroShot: [40, 75] as [number, number],
  probeGain: 8,
  /** P2: CLIP's PR below the supervised ViT's on at least this many of the four task-irrelevant perturbations. */
  prWins: 3,
  /** P3: every backdoor's ASR at least this (%), its CA within this many points of the clean model's. */
  backdoorAsr: 80,
  caShift: 1,
  /** P3: the clean linear probe leaves at most this ASR (%) on these attacks. */
  probeAsr: 20,
  probeAttacks: ['BadNet', 'Blended'],
  /** Seeds of each measured spread (linear-probe shots, supervised ViTs, PR samples). */
  seeds: [0, 1, 2],
};

export interface Preconditions {
  profile: string;
  dataset: string;
  testSize: number;
  p1: { zeroShot: number; probe: number[]; probeMedian: number; gain: number; holds: boolean; shots: number };
  p2: {
    /** Per perturbation: CLIP's and the supervised ViT's mean PR over blocks, one per seed. */
    perturbations: Record<string, { clip: number[]; supervised: number[]; gap: number; spread: number; below: boolean }>;
    wins: number;
    supervisedAccuracy: number[];
    sample: number;
    holds: boolean;
  };
  p3: {
    cleanCA: number;
    attacks: Record<string, { dataset: string; asr: number; ca: number; caShift: number; poisoned: number; holds: boolean }[]>;
    probe: Record<string, { asr: number; ca: number; holds: boolean }>;
    holds: boolean;
  };
  holds: boolean;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** P1: zero-shot CA against a 16-shot linear probe on the clean model (three shot draws). */
async function p1(profile: Profile, log: (s: string) => void): Promise<Preconditions['p1'] & { testSize: number }> {
  const clean = await ensurePretrained(profile, { log });
  try {
    const dataset = profile.datasets.main;
    const test = await loadEvalSplit(dataset, 'test', profile.evalLimit, log);
    const zeroShot = clean.ca[dataset];
    const trigger = makeTrigger('BadNet', {});
    const probe: number[] = [];
    for (const seed of PRECONDITION_BOUNDS.seeds) {
      const shots = await loadShots(dataset, profile.shots, seed, log);
      const d = await LinearProbe.run({ model: clean.model, tokenizer: clean.tokenizer, shots, cleanCorpus: async () => (await pretrainData(profile)).corpus, seed, log, quiet: true }, {});
      try {
        probe.push(evaluateDefended(d, test, trigger, targetIndex(dataset))!.ca);
      } finally {
        d.dispose();
      }
    }
    const probeMedian = median(probe);
    const [lo, hi] = PRECONDITION_BOUNDS.zeroShot;
    const gain = probeMedian - zeroShot;
    log(`P1: zero-shot ${zeroShot.toFixed(2)}%, ${profile.shots}-shot linear probe ${probe.map((x) => x.toFixed(2)).join('/')}% (gain ${gain.toFixed(2)})`);
    return { zeroShot, probe, probeMedian, gain, holds: zeroShot >= lo && zeroShot <= hi && gain >= PRECONDITION_BOUNDS.probeGain, shots: profile.shots, testSize: numImages(test) };
  } finally {
    clean.model.dispose();
  }
}

/** P2: CLIP's PR against supervised ViTs of its image tower's size (three seeds each side). */
async function p2(profile: Profile, log: (s: string) => void): Promise<Preconditions['p2']> {
  const n = profile.analysis?.sample ?? 1000;
  const full = await loadEvalSplit(profile.datasets.main, 'test', profile.evalLimit, log);
  const samples: ImageDataset[] = PRECONDITION_BOUNDS.seeds.map((s) => sample(full, Math.min(n, numImages(full)), `pr-${s}`));
  const perts = standardPerturbations();
  const names = Object.keys(perts);
  const clipPR: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  const supPR: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  const supervisedAccuracy: number[] = [];
  const clean = await ensurePretrained(profile, { log });
  try {
    // CLIP: one pre-trained model, three test samples; its spread is the sampling noise of the measure.
    for (const d of samples) for (const k of names) clipPR[k].push(mean(perturbationResistivity(clean.model, d, perts[k])));
  } finally {
    clean.model.dispose();
  }
  for (const [i, seed] of PRECONDITION_BOUNDS.seeds.entries()) {
    const sup = await ensureSupervisedViT(profile, log, seed);
    try {
      supervisedAccuracy.push(sup.accuracy);
      for (const k of names) supPR[k].push(mean(perturbationResistivity(sup.model, samples[i], perts[k])));
    } finally {
      sup.model.dispose();
    }
  }
  const perturbations: Preconditions['p2']['perturbations'] = {};
  for (const k of names) {
    const c = clipPR[k];
    const s = supPR[k];
    const gap = median(s) - median(c);
    const spread = Math.max(Math.max(...c) - Math.min(...c), Math.max(...s) - Math.min(...s));
    perturbations[k] = { clip: c, supervised: s, gap, spread, below: gap > spread };
  }
  const wins = Object.values(perturbations).filter((p) => p.below).length;
  log(`P2: CLIP's PR below the supervised ViT's on ${wins}/${names.length} perturbations`);
  return { perturbations, wins, supervisedAccuracy, sample: numImages(samples[0]), holds: wins >= PRECONDITION_BOUNDS.prWins };
}

/** P3: every backdoor of the tables (six on the main task, four on the emoji task), and the clean linear probe against the simple ones. */
async function p3(profile: Profile, log: (s: string) => void, spec: Record<string, string[]>): Promise<Preconditions['p3']> {
  const out: Preconditions['p3'] = { cleanCA: 0, attacks: {}, probe: {}, holds: true };
  const clean = await ensurePretrained(profile, { log });
  clean.model.dispose();
  out.cleanCA = clean.ca[profile.datasets.main];
  for (const [dataset, attacks] of Object.entries(spec)) {
    for (const attack of attacks) {
      out.attacks[attack] ??= [];
      const bd = await ensureBackdoored(profile, attack, { dataset, log });
      bd.model.dispose();
      const m = bd.metrics[dataset];
      const caShift = m.ca - bd.cleanCA[dataset];
      const holds = m.asr >= PRECONDITION_BOUNDS.backdoorAsr && Math.abs(caShift) <= PRECONDITION_BOUNDS.caShift;
      out.attacks[attack].push({ dataset, asr: m.asr, ca: m.ca, caShift, poisoned: bd.poisoned[dataset], holds });
      out.holds &&= holds;
    }
  }
  for (const attack of PRECONDITION_BOUNDS.probeAttacks.filter((a) => spec[profile.datasets.main]?.includes(a))) {
    const cell = await runCell(profile, attack, 'Linear Probe', profile.datasets.main, [profile.datasets.main], { log, quiet: true });
    const m = cell.metrics[profile.datasets.main]!;
    const holds = m.asr <= PRECONDITION_BOUNDS.probeAsr;
    out.probe[attack] = { asr: m.asr, ca: m.ca, holds };
    out.holds &&= holds;
  }
  log(`P3: ${out.holds ? 'holds' : 'does not hold'}`);
  return out;
}

/** Measure P1-P3 (each model cached, so a second call is quick). `spec`: the backdoors, per dataset (default: the tables'). */
export async function checkPreconditions(profile: Profile, log: (s: string) => void, spec: Record<string, string[]> = noDefenseSpec(profile)): Promise<Preconditions> {
  const a = await p1(profile, log);
  const b = await p2(profile, log);
  const c = await p3(profile, log, spec);
  const { testSize, ...first } = a;
  return { profile: profile.name, dataset: profile.datasets.main, testSize, p1: first, p2: b, p3: c, holds: first.holds && b.holds && c.holds };
}

/** The preconditions as markdown lines: each with its measured values, bound and verdict. */
export function preconditionsMarkdown(p: Preconditions): string[] {
  const yes = (h: boolean) => (h ? 'holds' : '**does not hold**');
  const B = PRECONDITION_BOUNDS;
  const lines = [
    `- **P1** (zero-shot ${B.zeroShot[0]}-${B.zeroShot[1]}%, ${p.p1.shots}-shot linear probe >= +${B.probeGain}): zero-shot ${p.p1.zeroShot.toFixed(2)}%, probe median ${p.p1.probeMedian.toFixed(2)}% (${p.p1.probe.map((x) => x.toFixed(2)).join(', ')}; n = 3 shot draws), gain ${p.p1.gain.toFixed(2)}; test set ${p.testSize}: ${yes(p.p1.holds)}.`,
    `- **P2** (CLIP's PR below a supervised ViT's by more than the spread, on >= ${B.prWins} of 4): ${p.p2.wins} of 4 (${Object.entries(p.p2.perturbations)
      .map(([k, v]) => `${k}: CLIP ${median(v.clip).toFixed(4)} vs ${median(v.supervised).toFixed(4)}, gap ${v.gap.toFixed(4)}, spread ${v.spread.toFixed(4)}`)
      .join('; ')}; n = 3, ${p.p2.sample} images each): ${yes(p.p2.holds)}.`,
    `- **P3** (ASR >= ${B.backdoorAsr}% with CA within ${B.caShift} point of the clean model's; clean linear probe ASR <= ${B.probeAsr}% on ${B.probeAttacks.join(' and ')}): ${yes(p.p3.holds)}.`,
  ];
  for (const [attack, rows] of Object.entries(p.p3.attacks)) {
    lines.push(`  - ${attack}: ${rows.map((r) => `${r.dataset} ASR ${r.asr.toFixed(2)}%, CA ${r.ca.toFixed(2)}% (${r.caShift >= 0 ? '+' : ''}${r.caShift.toFixed(2)}), ${r.poisoned} poisoned pairs${r.holds ? '' : ' (fails)'}`).join('; ')}`);
  }
  for (const [attack, r] of Object.entries(p.p3.probe)) lines.push(`  - Linear Probe vs ${attack}: ASR ${r.asr.toFixed(2)}%, CA ${r.ca.toFixed(2)}%${r.holds ? '' : ' (fails)'}`);
  return lines;
}

/** Store the measurement beside the profile's tables (preconditions.json and .md), with its provenance. */
export function writePreconditions(profile: Profile, p: Preconditions, seconds: number): string {
  const dir = resultsDir(profile);
  const json = path.join(dir, 'preconditions.json');
  const prov = tableProvenance(profile, { bounds: PRECONDITION_BOUNDS, model: profile.model, pretrain: profile.pretrain, backdoor: profile.backdoor, datasets: profile.datasets }, profile.backdoor.seed, seconds);
  writeJsonAtomic(json, { ...p, bounds: PRECONDITION_BOUNDS, provenance: prov });
  const md = [`# The paper's preconditions, profile \`${profile.name}\``, '', `Measured before any defense runs; bounds fixed in src/experiments/preconditions.ts. Overall: ${p.holds ? 'all hold' : '**not all hold**'}.`, '', ...preconditionsMarkdown(p), '', provenanceLine(prov), ''];
  writeFileAtomic(path.join(dir, 'preconditions.md'), md.join('\n'));
  return json;
}
