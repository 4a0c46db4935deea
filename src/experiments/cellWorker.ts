/**
 * One process of the training pool (cellPool.ts): makes the backdoored models, clean fine-tune controls and defense
 * cells it is sent, one at a time, each cached where it would be made alone, keeping the last backdoored model loaded
 * for the next cell on the same one.
 */
import { initBackend } from '../backend';
import { BackdoorResult, cleanFinetuneCA, ensureBackdoored } from './backdoorRun';
import { runCell } from './defenseRun';
import { addManifestDirs } from '../data/manifest';
import { BackdoorJob, FromWorker, ToWorker, backdoorKey } from './cellPool';

const send = (m: FromWorker) => process.send!(m);

async function main(): Promise<void> {
  process.env.RVPT_QUIET = '1';
  await initBackend(process.env.RVPT_BACKEND, { quiet: true });
  let held: { key: string; bd: BackdoorResult } | null = null;
  const backdoored = async (j: BackdoorJob): Promise<BackdoorResult> => {
    const key = backdoorKey(j);
    if (held?.key !== key) {
      held?.bd.model.dispose();
      held = null; // should the next one fail, no disposed model is left held
      held = { key, bd: await ensureBackdoored(j.profile, j.attack, { dataset: j.dataset, quiet: true }) };
    }
    return held.bd;
  };
  process.on('message', async (m: ToWorker) => {
    if ('exit' in m) {
      held?.bd.model.dispose();
      process.exit(0);
    }
    const { task, index } = m;
    try {
      if ('backdoor' in task) {
        addManifestDirs(task.backdoor.profile.manifests ?? []);
        await backdoored(task.backdoor);
      } else if ('control' in task) {
        addManifestDirs(task.control.profile.manifests ?? []);
        await cleanFinetuneCA(task.control.profile, task.control.dataset);
      } else {
        const job = task.cell;
        addManifestDirs(job.profile.manifests ?? []); // a profile file's own datasets
        await runCell(job.profile, job.attack, job.method, job.dataset, job.testSets, { backdoored: await backdoored(job), quiet: true });
      }
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
