/**
 * The main job survives being killed and bad cache files: a `tiny` pre-training is killed (SIGKILL) mid-training
 * and restarted, and must end with exactly the numbers of an uninterrupted run; a truncated cached checkpoint is
 * detected, reported and rebuilt, while the other cached artifact is reused. Each run is a real `rvpt` process
 * with its own cache folder (RVPT_CACHE); the rendered emoji are shared with the project's cache.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'bin', 'rvpt.js');
const STEPS = 40;

function cache(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-resume-'));
  const shared = path.join(ROOT, '.cache', 'data');
  fs.mkdirSync(shared, { recursive: true });
  fs.symlinkSync(shared, path.join(dir, 'data'));
  return dir;
}

function pretrain(dir: string, steps = STEPS): { out: { ca: Record<string, number>; finalLoss: number; cached: boolean; checkpoint: string }; log: string } {
  const r = spawnSync('node', [CLI, 'pretrain', '-p', 'tiny', '--steps', String(steps), '--json'], { env: { ...process.env, RVPT_CACHE: dir, RVPT_QUIET: '' }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`rvpt pretrain failed (${r.status}): ${r.stderr}`);
  return { out: JSON.parse(r.stdout.trim().split('\n').pop()!), log: r.stderr };
}

function waitFor(file: () => string | undefined, child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = setInterval(() => {
      const f = file();
      if (f) {
        clearInterval(tick);
        resolve(f);
      } else if (child.exitCode !== null || Date.now() - t0 > timeoutMs) {
        clearInterval(tick);
        reject(new Error(child.exitCode !== null ? `the run ended (code ${child.exitCode}) before writing its state` : 'no state file in time'));
      }
    }, 20);
  });
}

const artifacts = (dir: string) => path.join(dir, 'artifacts');
const stateFile = (dir: string) => (fs.existsSync(artifacts(dir)) ? fs.readdirSync(artifacts(dir)).find((f) => f.endsWith('.state.safetensors')) : undefined);

let reference: ReturnType<typeof pretrain>['out'];

beforeAll(() => {
  reference = pretrain(cache()).out;
}, 300000);

test('a tiny pre-training killed mid-training resumes to the same final numbers', async () => {
  const dir = cache();
  const child = spawn('node', [CLI, 'pretrain', '-p', 'tiny', '--steps', String(STEPS), '--json'], { env: { ...process.env, RVPT_CACHE: dir }, stdio: 'ignore' });
  await waitFor(() => stateFile(dir), child, 240000);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  expect(fs.readdirSync(artifacts(dir)).filter((f) => /^pretrain-tiny-[0-9a-f]+\.safetensors$/.test(f))).toEqual([]); // not finished
  const resumed = pretrain(dir);
  expect(resumed.log).toMatch(/resuming pre-training from step \d+/);
  expect(resumed.out.finalLoss).toBe(reference.finalLoss);
  expect(resumed.out.ca).toEqual(reference.ca);
}, 300000);

test('a truncated cached checkpoint is detected and rebuilt, and only that one', () => {
  const dir = cache();
  const a = pretrain(dir, STEPS).out;
  const b = pretrain(dir, STEPS - 10).out;
  const bMtime = fs.statSync(b.checkpoint).mtimeMs;
  const size = fs.statSync(a.checkpoint).size;
  fs.truncateSync(a.checkpoint, Math.floor(size / 2));
  const again = pretrain(dir, STEPS);
  expect(again.log).toMatch(/cached checkpoint .* is unusable \(.*truncated.*\); training again/);
  expect(again.out.cached).toBe(false);
  expect(again.out.finalLoss).toBe(reference.finalLoss);
  expect(fs.statSync(again.out.checkpoint).size).toBe(size);
  const other = pretrain(dir, STEPS - 10);
  expect(other.out.cached).toBe(true);
  expect(other.log).toMatch(/using cached pretrain model/);
  expect(fs.statSync(b.checkpoint).mtimeMs).toBe(bMtime);
}, 300000);
