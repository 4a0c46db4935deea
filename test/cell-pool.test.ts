/**
 * Training runs in two processes (cellPool.ts): the same numbers as one after another, each run computed once,
 * nothing computed again once cached. Defense cells on the paper-toy fixture (a real-CLIP weights file, so no
 * training is needed before them); backdoored models, controls and the cells on them at a cut-down tiny profile.
 * Needs the build in dist/ (the worker processes run JavaScript): `make test` builds first.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { getProfile, Profile } from '../src/experiments/profiles';
import { CellJob, nextRun, runCellsInParallel } from '../src/experiments/cellPool';
import { runCell } from '../src/experiments/defenseRun';
import { cleanFinetuneCA, ensureBackdoored } from '../src/experiments/backdoorRun';
import { restoreCacheAfterAll, setup } from './helpers';

const TOY = path.join(__dirname, 'fixtures', 'paper-toy');

beforeAll(async () => {
  await setup();
  jest.spyOn(console, 'warn').mockImplementation(() => {});
});

restoreCacheAfterAll();

test('two processes compute each uncached cell once, with the numbers of a sequential run', async () => {
  const profile: Profile = { ...getProfile(path.join(TOY, 'profile.json')), name: 'pool-test' };
  // One cell runs alone (as the cost table's do): the same numbers, only scheduled last.
  const jobs: CellJob[] = ['BadNet', 'WaNet'].flatMap((attack) =>
    ['Linear Probe', 'VPT', 'RVPT'].map((method) => ({ profile, attack, method, dataset: 'toy-pets', testSets: ['toy-pets'], alone: attack === 'WaNet' && method === 'VPT' })),
  );
  const pooled = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-pool-'));
  const serial = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-serial-'));

  process.env.RVPT_CACHE = pooled;
  expect(await runCellsInParallel([...jobs, jobs[2]], 2)).toBe(6); // a job listed twice (tables share cells) runs once
  // Six cells, each with the sha256 its next load checks.
  const cellFiles = fs.readdirSync(path.join(pooled, 'results', 'cells'));
  expect(cellFiles.filter((f) => f.endsWith('.json'))).toHaveLength(6);
  expect(cellFiles.filter((f) => f.endsWith('.json.sha256'))).toHaveLength(6);
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

test('a run that must run alone waits until every other run is done and nothing else runs', () => {
  const pending = [{}, { alone: true }, { after: 'bd.safetensors' }, {}, { alone: true }];
  const none = new Set<string>();
  const bd = new Set(['bd.safetensors']);
  expect(nextRun(pending, new Set(), none, 0)).toBe(0);
  expect(nextRun(pending, new Set([0]), none, 1)).toBe(3); // 2 waits for its backdoored model
  expect(nextRun(pending, new Set([0, 3]), none, 2)).toBe(-1); // not the alone ones while 2 is still to come
  expect(nextRun(pending, new Set([0, 3]), none, 0)).toBe(-1); // ... even with nothing running
  expect(nextRun(pending, new Set([0, 3]), bd, 1)).toBe(2);
  expect(nextRun(pending, new Set([0, 2, 3]), bd, 1)).toBe(-1); // only alone runs left, but one run is going
  expect(nextRun(pending, new Set([0, 2, 3]), bd, 0)).toBe(1);
  expect(nextRun(pending, new Set([0, 1, 2, 3]), bd, 1)).toBe(-1); // one alone run at a time
  expect(nextRun(pending, new Set([0, 1, 2, 3]), bd, 0)).toBe(4);
  expect(nextRun(pending, new Set([0, 1, 2, 3, 4]), bd, 0)).toBe(-1);
});

test('a job whose backdoored model cannot be had fails before any process starts, naming the fix', async () => {
  const profile: Profile = { ...getProfile(path.join(TOY, 'profile.json')), name: 'pool-test' };
  process.env.RVPT_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-pool-'));
  await expect(runCellsInParallel([{ profile, attack: 'Blended', method: 'RVPT', dataset: 'toy-objects', testSets: ['toy-objects'] }], 2)).rejects.toThrow(
    /names no backdoored checkpoint for Blended on toy-objects/,
  );
});

test('the pool makes backdoored models and controls too, the cells on them wait for them, and the numbers are those made alone', async () => {
  // A few steps of the tiny profile: what is tested is the scheduling and that a run is the same in either place.
  const tiny = getProfile('tiny');
  const profile: Profile = { ...tiny, name: 'pool-bd-test', pretrain: { ...tiny.pretrain, steps: 6, mainLimit: 600 }, backdoor: { ...tiny.backdoor, steps: 3 }, evalLimit: 100, defenses: { ...tiny.defenses, RVPT: { epochs: 1 } }, shots: 2 };
  const backdoors = ['BadNet', 'Blended'].map((attack) => ({ profile, attack, dataset: 'fashion-mnist' }));
  const jobs: CellJob[] = backdoors.map(({ attack }) => ({ profile, attack, method: 'RVPT', dataset: 'fashion-mnist', testSets: ['fashion-mnist'] }));
  const pooled = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-pool-bd-'));
  process.env.RVPT_CACHE = pooled;
  // 2 backdoors, 1 control, 2 cells; the cells are listed first but must wait for their backdoored models.
  expect(await runCellsInParallel(jobs, 2, () => {}, { backdoors, controls: [{ profile, dataset: 'fashion-mnist' }] })).toBe(5);
  expect(await runCellsInParallel(jobs, 2, () => {}, { backdoors, controls: [{ profile, dataset: 'fashion-mnist' }] })).toBe(0);
  const fromPool = [];
  for (const b of backdoors) {
    const r = await ensureBackdoored(profile, b.attack, { dataset: b.dataset, quiet: true });
    r.model.dispose();
    expect(r.cached).toBe(true);
    fromPool.push({ metrics: r.metrics, loss: r.history.loss, cell: (await runCell(profile, b.attack, 'RVPT', b.dataset, ['fashion-mnist'], { quiet: true })).metrics });
  }
  const control = await cleanFinetuneCA(profile, 'fashion-mnist');

  process.env.RVPT_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-serial-bd-'));
  fs.symlinkSync(path.join(pooled, 'data'), path.join(process.env.RVPT_CACHE, 'data')); // rendered images only
  for (const [i, b] of backdoors.entries()) {
    const r = await ensureBackdoored(profile, b.attack, { dataset: b.dataset, quiet: true });
    r.model.dispose();
    expect(r.cached).toBe(false);
    expect({ metrics: r.metrics, loss: r.history.loss, cell: (await runCell(profile, b.attack, 'RVPT', b.dataset, ['fashion-mnist'], { quiet: true })).metrics }).toEqual(fromPool[i]);
  }
  expect((await cleanFinetuneCA(profile, 'fashion-mnist')).ca).toEqual(control.ca);
}, 300000);
