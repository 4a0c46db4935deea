/**
 * Defense cells in two processes (cellPool.ts): the same numbers as one after another, each cell computed once,
 * nothing computed again once cached. On the paper-toy fixture (a real-CLIP weights file), so no training is needed
 * before the cells. Needs the build in dist/ (the worker processes run JavaScript): `make test` builds first.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { getProfile, Profile } from '../src/experiments/profiles';
import { CellJob, runCellsInParallel } from '../src/experiments/cellPool';
import { runCell } from '../src/experiments/defenseRun';
import { setup } from './helpers';

const TOY = path.join(__dirname, 'fixtures', 'paper-toy');
const saved = process.env.RVPT_CACHE;

beforeAll(async () => {
  await setup();
  jest.spyOn(console, 'warn').mockImplementation(() => {});
});

afterAll(() => {
  if (saved === undefined) delete process.env.RVPT_CACHE;
  else process.env.RVPT_CACHE = saved;
});

test('two processes compute each uncached cell once, with the numbers of a sequential run', async () => {
  const profile: Profile = { ...getProfile(path.join(TOY, 'profile.json')), name: 'pool-test' };
  const jobs: CellJob[] = ['BadNet', 'WaNet'].flatMap((attack) => ['Linear Probe', 'VPT', 'RVPT'].map((method) => ({ profile, attack, method, dataset: 'toy-pets', testSets: ['toy-pets'] })));
  const pooled = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-pool-'));
  const serial = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-serial-'));

  process.env.RVPT_CACHE = pooled;
  expect(await runCellsInParallel([...jobs, jobs[2]], 2)).toBe(6); // a job listed twice (tables share cells) runs once
  expect(fs.readdirSync(path.join(pooled, 'results', 'cells'))).toHaveLength(6);
  expect(await runCellsInParallel(jobs, 2)).toBe(0); // all cached
  expect(await runCellsInParallel(jobs, 1)).toBe(0); // one process: the caller computes them itself
  const fromPool = [];
  for (const j of jobs) fromPool.push(await runCell(profile, j.attack, j.method, j.dataset, j.testSets, { quiet: true }));

  process.env.RVPT_CACHE = serial;
  for (const [i, j] of jobs.entries()) {
    const c = await runCell(profile, j.attack, j.method, j.dataset, j.testSets, { quiet: true });
    expect(c.metrics).toEqual(fromPool[i].metrics);
    expect(c.history).toEqual(fromPool[i].history);
  }
}, 120000);

test('a job whose backdoored model cannot be had fails before any process starts, naming the fix', async () => {
  const profile: Profile = { ...getProfile(path.join(TOY, 'profile.json')), name: 'pool-test' };
  process.env.RVPT_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-pool-'));
  await expect(runCellsInParallel([{ profile, attack: 'Blended', method: 'RVPT', dataset: 'toy-objects', testSets: ['toy-objects'] }], 2)).rejects.toThrow(
    /names no backdoored checkpoint for Blended on toy-objects/,
  );
});
