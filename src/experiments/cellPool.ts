/**
 * Defense cells side by side, one process per core. A cell (defenseRun.ts) trains on one thread: WASM runs single-
 * threaded in Node, so a second process is what uses the second core. Cells are independent and deterministic for
 * their seed, so running them in any order or process gives the same numbers; each is cached by runCell, and the
 * caller then assembles its table or figure from the cache as before.
 *
 * The backdoored models are made (or loaded) here first, one after another: backdoor fine-tuning already uses both
 * cores, and two processes must never train the same cached model at once.
 */
import * as fs from 'fs';
import { fork, ChildProcess } from 'child_process';
import { backendInfo } from '../backend';
import { compiledScript } from '../util/fsutil';
import { Progress } from '../util/progress';
import { ensureBackdoored } from './backdoorRun';
import { cellFile } from './defenseRun';
import { Profile } from './profiles';

export interface CellJob {
  profile: Profile;
  attack: string;
  method: string;
  dataset: string;
  testSets: string[];
}

/** The backdoored model a job needs (one per profile backdoor config, trigger, attack and dataset). */
export function backdoorKey(j: CellJob): string {
  return JSON.stringify([j.profile.name, j.profile.backdoor, j.profile.triggers?.[j.attack], j.attack, j.dataset]);
}

/** Messages between the pool and its processes (cellWorker.ts). */
export type ToWorker = { job: CellJob; index: number } | { exit: true };
export type FromWorker = { ready: true } | { done: number } | { failed: number; error: string };

// Rough seconds per cell at the small profile, to start the longest first (a long cell last would leave a core idle).
const COST: Record<string, number> = { CleanCLIP: 125, VPT: 40, RVPT: 40, 'Linear Probe': 1, 'No defense': 0 };

/**
 * Compute the uncached cells of `jobs` in `processes` child processes (1: nothing to do, the caller computes them
 * itself). Returns how many were computed.
 */
export async function runCellsInParallel(jobs: CellJob[], processes: number, log: (s: string) => void = () => {}): Promise<number> {
  if (processes <= 1 || !jobs.length) return 0;
  const pending: CellJob[] = [];
  const checkpoints = new Map<string, string>();
  const seen = new Set<string>(); // tables share cells (Tables 2 and 3 on emoji): each is computed once
  for (const j of jobs) {
    const bdKey = backdoorKey(j);
    if (!checkpoints.has(bdKey)) {
      const bd = await ensureBackdoored(j.profile, j.attack, { dataset: j.dataset, log });
      bd.model.dispose();
      checkpoints.set(bdKey, bd.checkpoint);
    }
    const file = cellFile(j.profile, j.attack, j.method, j.dataset, j.testSets, checkpoints.get(bdKey)!);
    if (!seen.has(file) && !fs.existsSync(file)) pending.push(j);
    seen.add(file);
  }
  if (!pending.length) return 0;
  pending.sort((a, b) => (COST[b.method] ?? 40) - (COST[a.method] ?? 40));
  const n = Math.min(processes, pending.length);
  log(`${pending.length} defense cells in ${n} processes`);
  const bar = new Progress('defense cells', pending.length);
  const children: ChildProcess[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let next = 0;
      let finished = 0;
      const feed = (c: ChildProcess) => {
        if (next < pending.length) {
          const index = next++;
          c.send({ job: pending[index], index } satisfies ToWorker);
        } else c.send({ exit: true } satisfies ToWorker);
      };
      for (let k = 0; k < n; k++) {
        const c = fork(compiledScript(__dirname, 'experiments/cellWorker.js'), [], { env: { ...process.env, RVPT_BACKEND: backendInfo().name } });
        children.push(c);
        c.on('message', (m: FromWorker) => {
          if ('ready' in m) return feed(c);
          if ('failed' in m) return reject(new Error(`Defense cell ${pending[m.failed].method} vs ${pending[m.failed].attack} (${pending[m.failed].dataset}) failed in a worker process: ${m.error}`));
          const j = pending[m.done];
          bar.tick(1, `${j.method} vs ${j.attack} (${j.dataset})`);
          if (++finished === pending.length) resolve();
          else feed(c);
        });
        c.on('exit', (code, signal) => {
          // A process killed by a signal (out of memory) has no exit code: it must fail the pool, not hang it.
          if ((code || signal) && finished < pending.length) {
            reject(new Error(`A defense-cell process ended (${signal ?? `exit code ${code}`}); the cells done so far are cached, so running again resumes.`));
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
