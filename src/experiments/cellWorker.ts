/**
 * One process of the cell pool (cellPool.ts): computes the defense cells it is sent, one at a time, each cached by
 * runCell, keeping the last backdoored model loaded for the next cell on the same one.
 */
import { initBackend } from '../backend';
import { BackdoorResult, ensureBackdoored } from './backdoorRun';
import { runCell } from './defenseRun';
import { addManifestDirs } from '../data/manifest';
import { FromWorker, ToWorker, backdoorKey } from './cellPool';

const send = (m: FromWorker) => process.send!(m);

async function main(): Promise<void> {
  process.env.RVPT_QUIET = '1';
  await initBackend(process.env.RVPT_BACKEND, { quiet: true });
  let held: { key: string; bd: BackdoorResult } | null = null;
  process.on('message', async (m: ToWorker) => {
    if ('exit' in m) {
      held?.bd.model.dispose();
      process.exit(0);
    }
    const { job, index } = m;
    try {
      addManifestDirs(job.profile.manifests ?? []); // a profile file's own datasets
      const key = backdoorKey(job);
      if (held?.key !== key) {
        held?.bd.model.dispose();
        held = { key, bd: await ensureBackdoored(job.profile, job.attack, { dataset: job.dataset, quiet: true }) };
      }
      await runCell(job.profile, job.attack, job.method, job.dataset, job.testSets, { backdoored: held.bd, quiet: true });
      send({ done: index });
    } catch (e) {
      send({ failed: index, error: (e as Error).stack ?? String(e) });
    }
  });
  send({ ready: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
