/**
 * What a notebook asserts at its end: its key numbers against the ones the profile is known to give
 * (notebooks/expected.json, recorded from a run and committed), so a notebook that prints a wrong number fails its run
 * instead of passing. For a profile with no recorded numbers (one's own profile file) it checks only that every
 * number is finite. `RVPT_RECORD_EXPECTED=1` records the numbers of this run instead of checking them: do that only
 * after a change that is meant to move them, and say why in the commit.
 *
 * And whether the paper's claims can be judged at all: at a profile where the backdoors do not take (tiny), a
 * verdict on removing them means nothing, so the notebooks say so instead of printing one.
 */
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot, readJsonFile, writeJsonAtomic } from '../util/fsutil';
import { markdownTable } from '../viz/notebook';
import { ensureBackdoored } from './backdoorRun';
import type { Claim } from './analysis';
import type { Profile } from './profiles';

/** One notebook's recorded numbers at one profile, and how far a run may be from them. */
export interface ExpectedNumbers {
  tolerance: number;
  values: Record<string, number>;
}

/** notebooks/expected.json: profile -> notebook -> recorded numbers. */
export type ExpectedFile = Record<string, Record<string, ExpectedNumbers>>;

export function expectedFile(): string {
  return path.join(projectRoot(), 'notebooks', 'expected.json');
}

/**
 * The keys that differ from the recorded values by more than the tolerance, are missing, or are new, each as a line;
 * empty when the run gives the recorded numbers. Pure, so it is tested without a notebook.
 */
export function compareNumbers(observed: Record<string, number>, expected: ExpectedNumbers): string[] {
  const out: string[] = [];
  for (const [k, want] of Object.entries(expected.values)) {
    const got = observed[k];
    if (got === undefined) out.push(`${k}: recorded ${want}, not computed in this run`);
    else if (!Number.isFinite(got) || Math.abs(got - want) > expected.tolerance) out.push(`${k}: ${got} (recorded ${want}, tolerance ±${expected.tolerance})`);
  }
  for (const k of Object.keys(observed)) if (!(k in expected.values)) out.push(`${k}: ${observed[k]} has no recorded value`);
  return out;
}

/**
 * Check a notebook's key numbers at a profile; throws (failing the notebook's run) on any difference. Returns a line
 * for the notebook to show. `tolerance` applies when the numbers are recorded (percentage points for ASR and CA).
 */
export function checkNotebookNumbers(notebook: string, profile: string, observed: Record<string, number>, tolerance = 0.5): string {
  const bad = Object.entries(observed).filter(([, v]) => !Number.isFinite(v));
  if (bad.length) throw new Error(`${notebook}: not a finite number: ${bad.map(([k, v]) => `${k} = ${v}`).join(', ')}.`);
  const file = expectedFile();
  const all: ExpectedFile = fs.existsSync(file) ? readJsonFile<ExpectedFile>(file, 'Expected notebook numbers') : {};
  if (process.env.RVPT_RECORD_EXPECTED === '1') {
    all[profile] = { ...(all[profile] ?? {}), [notebook]: { tolerance, values: observed } };
    writeJsonAtomic(file, all);
    return `Recorded ${Object.keys(observed).length} numbers of ${notebook} at profile '${profile}' in notebooks/expected.json.`;
  }
  const expected = all[profile]?.[notebook];
  if (!expected) return `No recorded numbers for ${notebook} at profile '${profile}': checked only that its ${Object.keys(observed).length} key numbers are finite.`;
  const diff = compareNumbers(observed, expected);
  if (diff.length) {
    throw new Error(`${notebook} at profile '${profile}' does not give its recorded numbers (notebooks/expected.json):\n  ${diff.join('\n  ')}\nIf a change was meant to move them, record them again: RVPT_RECORD_EXPECTED=1 scripts/run-notebooks.sh ${profile}.`);
  }
  return `✔ All ${Object.keys(observed).length} key numbers equal the ones recorded for profile '${profile}' (within ±${expected.tolerance}).`;
}

/** No-defense ASR (%) at or above which a backdoor counts as taken, so that the paper's claims about it can be judged. */
export const BACKDOOR_TAKES_ASR = 50;

/**
 * Whether the paper's claims about removing a backdoor can be judged: every attack's no-defense ASR at least
 * BACKDOOR_TAKES_ASR. With the reason in words when they cannot.
 */
export function claimsJudgeable(noDefenseAsr: Record<string, number>): { judgeable: boolean; why: string } {
  const weak = Object.entries(noDefenseAsr).filter(([, asr]) => asr < BACKDOOR_TAKES_ASR);
  if (!weak.length) return { judgeable: true, why: '' };
  return {
    judgeable: false,
    why: `At this profile the backdoors do not take (no-defense ASR ${weak.map(([a, asr]) => `${a} ${asr.toFixed(1)}%`).join(', ')}, below ${BACKDOOR_TAKES_ASR}%), so the paper's claims about them are not judged here; run the notebook at \`small\` for the verdicts.`,
  };
}

/** The no-defense ASR (%) of each attack's backdoored model on `dataset` (cached: the backdoor's own record). */
export async function noDefenseAsr(profile: Profile, attacks: string[], dataset = profile.datasets.main): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const a of attacks) {
    const bd = await ensureBackdoored(profile, a, { dataset, quiet: true });
    out[a] = bd.metrics[dataset].asr;
    bd.model.dispose();
  }
  return out;
}

/**
 * A figure's claims as markdown: the verdict table where the claims can be judged, else why not and the numbers
 * without a verdict.
 */
export function claimsMarkdown(claims: Claim[], judge: { judgeable: boolean; why: string }): string {
  if (judge.judgeable) return markdownTable(['the paper says', 'ours', 'holds here'], claims.map((c) => [c.claim, c.ours, c.holds ? 'yes' : '**NO**']));
  return `${judge.why}\n\n${markdownTable(['the paper says', 'ours (not judged)'], claims.map((c) => [c.claim, c.ours]))}`;
}
