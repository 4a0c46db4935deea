/**
 * Per-thread scheduler times from Linux's /proc/self/task/TID/schedstat, for the benchmark's account of where a
 * two-core step goes. Node has no per-thread CPU clock before v23.9 (process.threadCpuUsage), and getrusage is
 * per process, so this reads the kernel's own nanosecond counters: time on a CPU, and time runnable but waiting for
 * one (a training thread preempted by V8's background threads or another process shows up there).
 */
import * as fs from 'fs';

export interface ThreadTimes {
  /** Nanoseconds the thread ran on a CPU. */
  runNs: number;
  /** Nanoseconds it was ready to run but waited in the run queue. */
  waitNs: number;
}

/** This process's threads' times by thread id, or null where /proc/self/task/TID/schedstat cannot be read. */
export function threadTimes(): Map<number, ThreadTimes> | null {
  let tids: string[];
  try {
    tids = fs.readdirSync('/proc/self/task');
  } catch {
    return null;
  }
  const out = new Map<number, ThreadTimes>();
  for (const tid of tids) {
    try {
      const [run, wait] = fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      if (Number.isFinite(run) && Number.isFinite(wait)) out.set(Number(tid), { runNs: run, waitNs: wait });
    } catch {
      // The thread ended between the listing and the read, or the kernel keeps no schedstat (CONFIG_SCHED_INFO off).
    }
  }
  return out.size ? out : null;
}

/** The calling thread's id as the kernel numbers it (0 where /proc/thread-self does not exist). */
export function currentThreadId(): number {
  try {
    const id = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(id) ? id : 0;
  } catch {
    return 0;
  }
}

/** Sums of per-thread time over chosen windows (the timed steps), split into the main thread, one other named thread and the rest. */
export class ThreadClock {
  private start: Map<number, ThreadTimes> | null = null;
  private sums = new Map<number, ThreadTimes>();
  private windows = 0;
  private available = true;

  begin(): void {
    this.start = threadTimes();
    if (!this.start) this.available = false;
  }

  end(): void {
    const stop = threadTimes();
    if (!this.start || !stop) {
      this.available = false;
      return;
    }
    for (const [tid, t] of stop) {
      const s = this.start.get(tid) ?? { runNs: 0, waitNs: 0 };
      const acc = this.sums.get(tid) ?? { runNs: 0, waitNs: 0 };
      this.sums.set(tid, { runNs: acc.runNs + t.runNs - s.runNs, waitNs: acc.waitNs + t.waitNs - s.waitNs });
    }
    this.windows++;
    this.start = null;
  }

  /**
   * Milliseconds per window: on a CPU and waiting for one, for the main thread (`mainTid`), the worker (`workerTid`,
   * 0 for none) and all other threads together (V8's GC and compiler threads, libuv's pool); null if unreadable.
   */
  perWindow(mainTid: number, workerTid: number): ThreadCpu | null {
    if (!this.available || !this.windows) return null;
    const ms = (ns: number) => ns / 1e6 / this.windows;
    const pick = (tid: number) => this.sums.get(tid) ?? { runNs: 0, waitNs: 0 };
    let other = 0;
    for (const [tid, t] of this.sums) if (tid !== mainTid && tid !== workerTid) other += t.runNs;
    const main = pick(mainTid);
    const worker = pick(workerTid);
    return { mainMs: ms(main.runNs), mainWaitMs: ms(main.waitNs), workerMs: ms(worker.runNs), workerWaitMs: ms(worker.waitNs), otherMs: ms(other) };
  }
}

export interface ThreadCpu {
  /** The main thread's time on a CPU, and runnable without one. */
  mainMs: number;
  mainWaitMs: number;
  /** The training worker's (0 on one core). */
  workerMs: number;
  workerWaitMs: number;
  /** Every other thread of the process, on a CPU. */
  otherMs: number;
}
