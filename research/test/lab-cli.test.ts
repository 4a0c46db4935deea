/**
 * The lab's command line as a user meets it: bad options are refused (exit status 2), naming the option and the value,
 * before any training. It runs research/cli.ts in this process (the current source, not a build).
 */
import { main } from '../cli';
import { runInProcess } from '../../test/helpers';

/** Runs `rvpt-lab ARGS`: its exit status and what it wrote to stderr. */
const rvpt = (...args: string[]) => runInProcess(main, args);

test('tuning-probe refuses bad shots or an unknown attack before any training', async () => {
  const r = (await rvpt('tuning-probe', '--profile', 'tiny', '--shots', '16,2.5'));
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/--shots: '2\.5': It must be a positive whole number of shots per class/);
  expect((await rvpt('tuning-probe', '--profile', 'tiny', '--attacks', 'Sleeper')).stderr).toMatch(/Unknown attack 'Sleeper'/);
  const b = (await rvpt('tuning-probe', '--profile', 'tiny', '--budgets', '4,0'));
  expect(b.status).toBe(2);
  expect(b.stderr).toMatch(/--budgets: '0': It must be a positive whole number \(a multiple of the tables' steps\), e\.g\. 4/);
  const m = (await rvpt('tuning-probe', '--profile', 'tiny', '--margins', '0.5,2'));
  expect(m.status).toBe(2);
  expect(m.stderr).toMatch(/--margins: '2': It must be a cosine between -1 \(full repulsion, the paper\) and 1 \(none\)/);
  expect((await rvpt('tuning-probe', '--profile', 'tiny', '--dataset', 'mnist', '--budgets', '4')).stderr).toMatch(/--dataset: profile 'tiny' has no dataset 'mnist'/);
  expect((await rvpt('seed-probe', '--profile', 'tiny', '--budget', '2.5')).stderr).toMatch(/--budget: '2\.5': It must be a positive whole number \(a multiple of the tables' steps\), e\.g\. 16/);
});

test('repulsion-probe refuses a bad alpha, profile or attack before any training', async () => {
  const r = (await rvpt('repulsion-probe', '--profile', 'tiny', '--alphas', '1,0'));
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/--alphas: '0': It must be a positive number/);
  expect((await rvpt('repulsion-probe', '--profiles', 'tiny,huge')).stderr).toMatch(/Unknown profile 'huge'/);
  expect((await rvpt('repulsion-probe', '--profile', 'tiny', '--attacks', 'Sleeper')).stderr).toMatch(/Unknown attack 'Sleeper'/);
  expect((await rvpt('repulsion-probe', '--profile', 'tiny', '--dataset', 'mnist')).stderr).toMatch(/--dataset: profile 'tiny' has no dataset 'mnist' \(it has fashion-mnist, emoji\)/);
});

test('seed-probe refuses a bad seed, method, attack or dataset before any training', async () => {
  const r = (await rvpt('seed-probe', '--profile', 'tiny', '--seeds', '0,1.5'));
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/--seeds: '1\.5': It must be a whole number of at least 0/);
  expect((await rvpt('seed-probe', '--profile', 'tiny', '--seeds', '2,2')).stderr).toMatch(/seeds 2,2 repeat a seed/);
  expect((await rvpt('seed-probe', '--profile', 'tiny', '--methods', 'VPT,CleanCLIP')).stderr).toMatch(/--methods: 'CleanCLIP' is not one of VPT, RVPT/);
  expect((await rvpt('seed-probe', '--profile', 'tiny', '--attacks', 'Sleeper')).stderr).toMatch(/Unknown attack 'Sleeper'/);
  expect((await rvpt('seed-probe', '--profile', 'tiny', '--dataset', 'mnist')).stderr).toMatch(/--dataset: profile 'tiny' has no dataset 'mnist' \(it has fashion-mnist, emoji\)/);
  expect((await rvpt('seed-probe', '--profile', 'tiny', '--fr-token', 'proj')).stderr).toMatch(/--fr-token "proj" must be one of residual, ln_post/);
  expect((await rvpt('seed-probe', '--profile', 'tiny', '--fr-layers', '4,9')).stderr).toMatch(/--fr-layers: '9': It must be a block number from 1 to 4/);
  expect((await rvpt('seed-probe', '--profile', 'tiny', '--fr-layers', '1')).stderr).toMatch(/--fr-layers names block 1, before profile 'tiny''s first prompted block, 3/);
});

test('strength-probe refuses a bad rate, lr or attack before any training', async () => {
  const r = (await rvpt('strength-probe', '--profile', 'tiny', '--rates', '0.01,2'));
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/--rates: '2': It must be a number in \(0, 1\)/);
  expect((await rvpt('strength-probe', '--profile', 'tiny', '--lrs', '1e-4,0')).stderr).toMatch(/--lrs: '0': It must be a positive number/);
  expect((await rvpt('strength-probe', '--profile', 'tiny', '--attacks', 'Sleeper')).stderr).toMatch(/Unknown attack 'Sleeper'/);
});
