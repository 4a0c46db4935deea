/** The CLI as a user meets it: help, and clear errors for unknown profiles and flags. */
import { spawnSync } from 'child_process';
import * as path from 'path';

const root = path.join(__dirname, '..');
const rvpt = (...args: string[]) => spawnSync('node', [path.join(root, 'bin', 'rvpt.js'), ...args], { encoding: 'utf8', env: { ...process.env, RVPT_QUIET: '1' } });

test('--help lists the commands', () => {
  const r = rvpt('--help');
  expect(r.status).toBe(0);
  for (const c of ['pretrain', 'eval', 'bench']) expect(r.stdout).toContain(c);
});

test('an unknown profile names the profiles that exist', () => {
  const r = rvpt('bench', '--profile', 'huge');
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/Unknown profile 'huge'. Use one of: tiny, small/);
});

test('an unknown flag is refused with a suggestion', () => {
  const r = rvpt('pretrain', '--stepz', '3');
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/unknown option '--stepz'[\s\S]*Did you mean --steps\?/);
});

test('a bad number and a bad backend are refused', () => {
  expect(rvpt('bench', '--steps', 'many').stderr).toMatch(/option '--steps <n>' argument 'many' is invalid. It must be a non-negative integer/);
  const r = rvpt('bench', '--profile', 'tiny', '--backend', 'tpu');
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/Unknown backend 'tpu'.*tensorflow, wasm, cpu/);
});

test('bench --json ends with one JSON object of the documented shape', () => {
  const r = rvpt('bench', '--profile', 'tiny', '--steps', '1', '--warmup', '3', '--json');
  expect(r.status).toBe(0);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
  expect(Object.keys(last).sort()).toEqual(
    ['backend', 'config', 'denseGflops', 'efficiency', 'efficiencyCeiling', 'gflops', 'matmulGflops', 'msPerStep', 'phasesMs', 'stepGflop', 'threadCpu', 'warmupSteps', 'wasmKernels', 'workers'].sort(),
  );
  expect(last.warmupSteps).toBe(3);
  // By default the warm-up outlasts V8's compiling of TF.js's JavaScript (benchTrainStep's comment).
  expect(rvpt('bench', '--help').stdout).toMatch(/--warmup <n>[\s\S]*\(default: 100\)/);
  expect(last.phasesMs).toBeNull(); // one core has no phases
  // Linux's per-thread counters: the main thread computed the step; there is no worker.
  expect(last.threadCpu.mainMs).toBeGreaterThan(0);
  expect(last.threadCpu.workerMs).toBe(0);
  expect(Object.keys(last.config).sort()).toEqual(['batch', 'contextLength', 'embedDim', 'heads', 'imageSize', 'layers', 'patch', 'textHeads', 'textLayers', 'textWidth', 'vocabSize', 'width'].sort());
  // A median of per-step ratios (the yardstick is timed after each step), so near, not equal to, the ratio of medians.
  const ratio = last.gflops / last.matmulGflops;
  expect(last.efficiency).toBeGreaterThan(ratio / 1.5);
  expect(last.efficiency).toBeLessThan(ratio * 1.5);
  expect(last.efficiencyCeiling).toBeCloseTo(last.denseGflops / last.matmulGflops, 6);
  expect(last.denseGflops).toBeGreaterThan(0);
  expect(last.backend).toBe('wasm');
  expect(last.wasmKernels).toBe(true);
});

test('bench --rounds pairs a one-core and a two-core run per round, and its medians are of the paired ratios', () => {
  const r = rvpt('bench', '--profile', 'tiny', '--steps', '3', '--warmup', '2', '--rounds', '2', '--json');
  expect(r.status).toBe(0);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
  expect(last.rounds).toHaveLength(2);
  const phases = ['forward', 'waitEmbeddings', 'backward', 'writeGradients', 'waitGradients', 'update', 'waitUpdate', 'loadOther'];
  type Phases = Record<string, number>;
  const sum = (p: Phases, names: string[]) => names.reduce((a, n) => a + p[n], 0);
  for (const round of last.rounds) {
    expect([round.one.warmupSteps, round.two.warmupSteps]).toEqual([2, 2]);
    const p = round.two.phasesMs;
    for (const side of ['main', 'worker']) {
      expect(Object.keys(p[side]).sort()).toEqual([...phases].sort());
      for (const n of phases) expect(p[side][n]).toBeGreaterThanOrEqual(0);
      // The phases run inside the timed step (from the half's forward to the load of the other half; the worker's
      // load may end a little after the main side's), so their mean sum is at most the slowest step, and they are
      // most of it (the rest: the submit, the slice, the tidy's end).
      expect(sum(p[side], phases)).toBeLessThanOrEqual(round.two.msPerStep.max + 5);
      expect(sum(p[side], phases)).toBeGreaterThan(0.5 * round.two.msPerStep.min);
    }
    expect(round.two.threadCpu.workerMs).toBeGreaterThan(0);
  }
  // The account is the medians (of two: the mean) of the rounds' sums by kind.
  const med2 = (xs: number[]) => (xs[0] + xs[1]) / 2;
  const twoOf = (f: (x: { two: { phasesMs: Record<string, Phases> } }) => number) => med2(last.rounds.map(f));
  expect(last.account.waitMs.main).toBeCloseTo(twoOf((x) => sum(x.two.phasesMs.main, ['waitEmbeddings', 'waitGradients', 'waitUpdate'])), 10);
  expect(last.account.computeMs.worker).toBeCloseTo(twoOf((x) => sum(x.two.phasesMs.worker, ['forward', 'backward', 'update'])), 10);
  expect(last.account.copyMs.main).toBeCloseTo(twoOf((x) => sum(x.two.phasesMs.main, ['writeGradients', 'loadOther'])), 10);
  expect(last.account.otherThreadsMs.two).toBeCloseTo(med2(last.rounds.map((x: { two: { threadCpu: { otherMs: number } } }) => x.two.threadCpu.otherMs)), 10);
  for (const round of last.rounds) {
    expect([round.one.workers, round.two.workers]).toEqual([1, 2]);
    expect(round.twoOverOneMs).toBeCloseTo(round.one.msPerStep.median / round.two.msPerStep.median, 10);
    expect(round.twoOverOneNormalised).toBeCloseTo(round.two.efficiency / round.one.efficiency, 10);
  }
  expect(last.median.twoOverOneMs).toBeCloseTo(med2(last.rounds.map((x: { twoOverOneMs: number }) => x.twoOverOneMs)), 10);
  expect(last.median.oneCoreEfficiency).toBeCloseTo(med2(last.rounds.map((x: { one: { efficiency: number } }) => x.one.efficiency)), 10);
  expect(last.provenance.backend).toBe('wasm');
  expect(rvpt('bench', '--profile', 'tiny', '--rounds', '0').stderr).toMatch(/rounds must be a positive integer, got 0/);
  expect(rvpt('bench', '--profile', 'tiny', '--warmup', '0').stderr).toMatch(/warmup must be a whole number of steps of at least 1 \(the first pays for kernel set-up\), got 0/);
});

test('eval of a missing or foreign checkpoint says what is wrong', () => {
  const r = rvpt('eval', '--profile', 'tiny', '--checkpoint', '/nonexistent/model.safetensors');
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/Checkpoint \/nonexistent\/model\.safetensors does not exist/);
  const pkg = path.join(root, 'package.json');
  const r2 = rvpt('eval', '--profile', 'tiny', '--checkpoint', pkg);
  expect(r2.status).toBe(1);
  expect(r2.stderr).toMatch(/package\.json is invalid/);
});

test('backdoor with an unknown attack names the registered attacks before any training (a usage error: exit 2)', () => {
  const r = rvpt('backdoor', '--profile', 'tiny', '--attack', 'Sleeper');
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/Unknown attack 'Sleeper'. Registered attacks: BadNet, Blended, ISSBA, WaNet, TrojVQA, BadCLIP/);
  const t = rvpt('backdoor', '--profile', 'tiny', '--attack', 'BadNet', '-t', 'size=3');
  expect(t.status).toBe(2);
  expect(t.stderr).toMatch(/BadNet: unknown trigger parameter\(s\) size; known: patch, noise, patternSeed/);
  const u = rvpt('tables', '--profile', 'tiny', '--only', 'table9');
  expect(u.status).toBe(2);
  expect(u.stderr).toMatch(/Unknown table\(s\) table9; use no-defense, table1, table2, table3, cost/);
});


test('a bad option value found inside a command is said, with exit status 2, before any work', () => {
  const t = rvpt('backdoor', '--profile', 'tiny', '-a', 'BadNet', '-t', 'patch');
  expect(t.status).toBe(2);
  expect(t.stderr).toMatch(/rvpt: 'patch' is not key=value \(e\.g\. patch=6\)\.\n\(run `rvpt --help` for usage\)/);
  const c = rvpt('clip', '-w', 'none.safetensors', '-t', 'none', '-c', 'cat', 'a.png');
  expect(c.status).toBe(2);
  expect(c.stderr).toMatch(/--classes 'cat' names 1 class; give at least two/);
  const t2 = rvpt('clip', '-w', 'none.safetensors', '-t', 'none', '-c', 'cat,dog', '--template', 'a photo', 'a.png');
  expect(t2.status).toBe(2);
  expect(t2.stderr).toMatch(/--template 'a photo' has no '\{\}'/);
  const lr = rvpt('backdoor', '--profile', 'tiny', '-a', 'BadNet', '--lr', 'abc');
  expect(lr.status).toBe(2);
  expect(lr.stderr).toMatch(/option '--lr <x>' argument 'abc' is invalid\. It must be a positive number/);
});
