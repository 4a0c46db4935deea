/** Per-thread scheduler times (src/util/threads.ts), which `rvpt bench` uses to account for a two-core step. */
import { ThreadClock, currentThreadId, threadTimes } from '../src/util/threads';

const busy = (ms: number) => {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
};

test('the main thread is found by its id, and its time on a CPU grows with work', () => {
  expect(currentThreadId()).toBe(process.pid);
  const a = threadTimes()!;
  expect(a.has(process.pid)).toBe(true);
  busy(60);
  const b = threadTimes()!;
  const ranMs = (b.get(process.pid)!.runNs - a.get(process.pid)!.runNs) / 1e6;
  // 60 ms of spinning: on a CPU for most of it (a busy machine may preempt it), and never more than the wall time.
  expect(ranMs).toBeGreaterThan(20);
  expect(ranMs).toBeLessThan(60 + 30);
});

test('ThreadClock averages over its windows only, and splits main, worker and the rest', () => {
  const clock = new ThreadClock();
  for (let i = 0; i < 2; i++) {
    clock.begin();
    busy(40);
    clock.end();
    busy(80); // between windows: not counted
  }
  const c = clock.perWindow(process.pid, 0)!;
  expect(c.mainMs).toBeGreaterThan(15);
  expect(c.mainMs).toBeLessThan(40 + 20);
  expect(c.workerMs).toBe(0);
  expect(c.otherMs).toBeGreaterThanOrEqual(0);
  expect(new ThreadClock().perWindow(process.pid, 0)).toBeNull();
});
