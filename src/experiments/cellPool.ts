/**
 * Training runs side by side, one process per core: backdoor fine-tunes, the clean fine-tune controls, and defense
 * cells. Each trains on one thread (WASM runs single-threaded in Node), so a second process is what uses the second
 * core, and two single-core runs side by side get more from two cores than one run split over both (measured: a
 * two-thread step is about 1.5x a one-thread step; Table 2's cells in two processes 1.84x one). Every run is
 * deterministic for its seed and cached where it would be made alone, so any order or process gives the same
 * numbers; the caller then assembles its table or figure from the cache as before.
 *
 * A cell waits for the backdoored model it defends; the clean pre-trained model is made (or loaded) here first, so
 * two processes never train the same cached model at once.
 */
import * as fs from 'fs';
import { fork, ChildProcess } from 'child_process';
import { backendInfo } from '../backend';
import { compiledScript } from '../util/fsutil';
import { Progress } from '../util/progress';
import { backdoorPlan, controlPlan, ensureBackdoored } from './backdoorRun';
import { cellFile } from './defenseRun';
import { externalWeights } from './externalWeights';
import { ensurePretrained } from './pretrainRun';
import { Profile } from './profiles';

export interface CellJob {
  profile: Profile;
  attack: string;
  method: string;
  dataset: string;
  testSets: string[];
  /**
   * Its wall time is itself a result (the cost table's cells): it runs last, with the other processes idle, so that
   * what would run beside it does not enter its timing (measured: the BadCLIP RVPT cell took 10.0 and 12.6 s beside other
   * runs in two reproductions of the same bits, 8.4 s alone).
   */
  alone?: boolean;
}

/** A backdoored model to make: the profile's attack on a dataset. */
export interface BackdoorJob {
  profile: Profile;
  attack: string;
  dataset: string;
}

/** One unit of work for a pool process (cellWorker.ts). */
export type Task = { backdoor: BackdoorJob } | { control: { profile: Profile; dataset: string } } | { cell: CellJob };

/** The backdoored model a job needs (one per profile backdoor config, trigger, attack and dataset). */
export function backdoorKey(j: BackdoorJob): string {
  const p = j.profile;
  // Everything backdoorPlan merges into the fine-tune's config: profiles that differ only in an attack's override
  // (the strength probe's variants) hold different models.
  const overrides = [p.datasetBackdoor?.[j.dataset], p.attackBackdoor?.[j.attack], p.datasetBackdoor?.[`${j.dataset}/${j.attack}`]];
  return JSON.stringify([p.name, p.backdoor, ...overrides, p.triggers?.[j.attack], j.attack, j.dataset]);
}

/** Messages between the pool and its processes (cellWorker.ts). */
export type ToWorker = { task: Task; index: number } | { exit: true };
export type FromWorker = { ready: true } | { done: number } | { failed: number; error: string };

// Rough seconds per run at the small profile, to start the longest first (a long run last would leave a core idle)
// and to weigh the progress bar, whose time left would otherwise be read off a count of very unequal runs.
const COST: Record<string, number> = { backdoor: 250, control: 240, CleanCLIP: 100, VPT: 25, RVPT: 25, 'Linear Probe': 1, 'No defense': 1 };

/** What the pool knows of a run when it picks the next one. */
export interface PendingRun {
  /** The backdoored model's file it must wait for, if that is made in the pool. */
  after?: string;
  alone?: boolean;
}

/**
 * The run a free process takes next (`pending` is sorted longest first), or -1 to wait: the first ready run that
 * need not run alone; once only runs that must are left, one of them when nothing else is running.
 */
export function nextRun(pending: PendingRun[], started: Set<number>, made: Set<string>, running: number): number {
  const ready = (p: PendingRun, i: number) => !started.has(i) && (!p.after || made.has(p.after));
  const shared = pending.findIndex((p, i) => !p.alone && ready(p, i));
  if (shared >= 0) return shared;
  if (running > 0 || pending.some((p, i) => !p.alone && !started.has(i))) return -1;
  return pending.findIndex((p, i) => p.alone && ready(p, i));
}

function describe(t: Task): string {
  if ('backdoor' in t) return `backdoor ${t.backdoor.attack} (${t.backdoor.dataset})`;
  if ('control' in t) return `clean fine-tune (${t.control.dataset})`;
  return `${t.cell.method} vs ${t.cell.attack} (${t.cell.dataset})`;
}

/**
 * Compute what is not cached of `jobs` (defense cells) and of `extra` (backdoored models, and the clean fine-tune
 * controls of some datasets) in `processes` child processes. With one process nothing is done here: the caller
 * computes them itself, in order. Returns how many runs were computed.
 */
export async function runCellsInParallel(
  jobs: CellJob[],
  processes: number,
  log: (s: string) => void = () => {},
  extra: { backdoors?: BackdoorJob[]; controls?: { profile: Profile; dataset: string }[] } = {},
): Promise<number> {
  if (processes <= 1) return 0;
  // `makes`: the backdoored model's file a backdoor run writes; `after`: the one a cell must wait for.
  const pending: { task: Task; makes?: string; after?: string; alone?: boolean; cost: number }[] = [];
  const checkpoints = new Map<string, string>();
  const making = new Set<string>(); // backdoored models made in the pool: the cells on them wait
  const seen = new Set<string>(); // tables share cells (Tables 2 and 3 on emoji): each is computed once
  // The clean model the pool's fine-tunes start from: made (or checked) once, before the processes start.
  const pretrained = new Set<string>();
  const needPretrained = async (profile: Profile) => {
    if (pretrained.has(profile.name)) return;
    (await ensurePretrained(profile, { log })).model.dispose();
    pretrained.add(profile.name);
  };
  const backdoorFile = async (j: BackdoorJob): Promise<string> => {
    const key = backdoorKey(j);
    if (!checkpoints.has(key)) {
      const file = externalWeights(j.profile) ? null : backdoorPlan(j.profile, j.attack, { dataset: j.dataset }).file;
      if (file && !fs.existsSync(file)) {
        await needPretrained(j.profile);
        pending.push({ task: { backdoor: { profile: j.profile, attack: j.attack, dataset: j.dataset } }, makes: file, cost: COST.backdoor });
        making.add(file);
        checkpoints.set(key, file);
      } else {
        // Cached (or the user's checkpoint): loading it checks it, and rebuilds it here if it is damaged.
        const bd = await ensureBackdoored(j.profile, j.attack, { dataset: j.dataset, log });
        bd.model.dispose();
        checkpoints.set(key, bd.checkpoint);
      }
    }
    return checkpoints.get(key)!;
  };
  for (const j of extra.backdoors ?? []) await backdoorFile(j);
  for (const c of extra.controls ?? []) {
    if (externalWeights(c.profile) || fs.existsSync(controlPlan(c.profile, c.dataset).file)) continue;
    await needPretrained(c.profile);
    pending.push({ task: { control: c }, cost: COST.control });
  }
  for (const j of jobs) {
    const checkpoint = await backdoorFile(j);
    const file = cellFile(j.profile, j.attack, j.method, j.dataset, j.testSets, checkpoint);
    if (!seen.has(file) && !fs.existsSync(file)) pending.push({ task: { cell: j }, after: making.has(checkpoint) ? checkpoint : undefined, alone: j.alone, cost: COST[j.method] ?? 40 });
    seen.add(file);
  }
  if (!pending.length) return 0;
  pending.sort((a, b) => b.cost - a.cost);
  const n = Math.min(processes, pending.length);
  log(`${pending.length} training runs in ${n} processes`);
  const bar = new Progress('training runs (weighted by expected time)', pending.reduce((a, p) => a + p.cost, 0));
  const children: ChildProcess[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const started = new Set<number>();
      const made = new Set<string>();
      const idle: ChildProcess[] = [];
      let finished = 0;
      // The longest ready run; a process with nothing ready waits for a backdoored model to be finished, or for the
      // others to go idle before a run that must run alone.
      const feed = (c: ChildProcess) => {
        const index = nextRun(pending, started, made, started.size - finished);
        if (index >= 0) {
          started.add(index);
          c.send({ task: pending[index].task, index } satisfies ToWorker);
        } else if (started.size < pending.length) idle.push(c);
        else c.send({ exit: true } satisfies ToWorker);
      };
      for (let k = 0; k < n; k++) {
        const c = fork(compiledScript(__dirname, 'experiments/cellWorker.js'), [], { env: { ...process.env, RVPT_BACKEND: backendInfo().name } });
        children.push(c);
        c.on('message', (m: FromWorker) => {
          if ('ready' in m) return feed(c);
          if ('failed' in m) return reject(new Error(`${describe(pending[m.failed].task)} failed in a worker process: ${m.error}`));
          const { task: t, makes } = pending[m.done];
          if (makes) made.add(makes);
          bar.tick(pending[m.done].cost, `${finished + 1}/${pending.length} runs: ${describe(t)}`);
          if (++finished === pending.length) return resolve();
          feed(c);
          for (const w of idle.splice(0)) feed(w);
        });
        c.on('exit', (code, signal) => {
          // A process killed by a signal (out of memory) has no exit code: it must fail the pool, not hang it.
          if ((code || signal) && finished < pending.length) {
            reject(new Error(`A training process ended (${signal ?? `exit code ${code}`}); the runs done so far are cached, so running again resumes.`));
          }
        });
      }
    });
  } finally {
    bar.done();
    for (const c of children) if (c.exitCode === null) c.kill();
  }
  return pending.length;
}
