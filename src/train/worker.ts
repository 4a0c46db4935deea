/** The second core's side of two-core contrastive training (see parallel.ts for the protocol). */
import { workerData } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend';
import { MiniCLIP } from '../model/clip';
import { CLIPConfig } from '../model/config';
import { namedGrads, trainableParams } from '../model/params';
import { AdamW } from './optim';
import { currentThreadId } from '../util/threads';
import { CTRL, ParallelLayout, SHARED_ONLY_MAIN, SharedBuffers, SharedViews, halfContrastiveLoss, readTokens, signal, waitFor } from './parallel';

async function run(): Promise<void> {
  const { layout, bufs, config, backend } = workerData as { layout: ParallelLayout; bufs: SharedBuffers; config: CLIPConfig; backend: string };
  process.env.RVPT_QUIET = '1';
  await initBackend(backend);
  const v = new SharedViews(layout, bufs);
  const model = MiniCLIP.init(config, 0);
  const trained = Object.fromEntries(layout.names.filter((_, i) => layout.owner[i] >= 0).map((n) => [n, model.params[n]]));
  const opt = AdamW.fromSpec(trained, layout.optimizer);
  v.shareSlots(opt);
  const differentiated = trainableParams(trained, (n) => !SHARED_ONLY_MAIN.has(n));
  v.readParams(model);
  Atomics.store(v.ctrl, CTRL.TID, currentThreadId());
  signal(v.ctrl, CTRL.READY, 1);
  let done = 0;
  for (;;) {
    waitFor(v.ctrl, CTRL.CMD, done + 1);
    if (Atomics.load(v.ctrl, CTRL.STOP)) return;
    const step = Atomics.load(v.ctrl, CTRL.CMD);
    tf.tidy(() => {
      const x = v.workerImages();
      const t = readTokens(v.tokens, layout.half, layout.contextLength);
      const { value, grads } = namedGrads(differentiated, () => halfContrastiveLoss(model, x, t, 'worker', v, step));
      value.dispose();
      opt.step = v.hyper[1];
      v.update(1, model, grads, opt, v.hyper[0], step);
    });
    done = step;
    signal(v.ctrl, CTRL.DONE, step);
  }
}

run().catch((e) => {
  process.stderr.write(`[rvpt worker] ${(e as Error).stack ?? e}\n`);
  Atomics.store(new Int32Array((workerData as { bufs: SharedBuffers }).bufs.ctrl), CTRL.ERROR, 1);
  throw e;
});
