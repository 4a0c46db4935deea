/** The second core's side of two-core contrastive training (see parallel.ts for the protocol). */
import { workerData } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend';
import { MiniCLIP } from '../model/clip';
import { CLIPConfig } from '../model/config';
import { namedGrads, trainableParams } from '../model/params';
import { CTRL, ParallelLayout, SHARED_ONLY_MAIN, SharedBuffers, halfContrastiveLoss, readParams, readTokens, signal, waitFor } from './parallel';

async function run(): Promise<void> {
  const { layout, bufs, config, backend } = workerData as { layout: ParallelLayout; bufs: SharedBuffers; config: CLIPConfig; backend: string };
  process.env.RVPT_QUIET = '1';
  await initBackend(backend);
  const ctrl = new Int32Array(bufs.ctrl);
  const params = new Float32Array(bufs.params);
  const grads = new Float32Array(bufs.grads);
  const images = new Float32Array(bufs.images);
  const tokens = new Int32Array(bufs.tokens);
  const emb = new Float32Array(bufs.emb);
  const model = MiniCLIP.init(config, 0);
  const trainable = trainableParams(model.params, (n) => !SHARED_ONLY_MAIN.has(n));
  signal(ctrl, CTRL.READY, 1);
  let done = 0;
  for (;;) {
    waitFor(ctrl, CTRL.CMD, done + 1);
    if (Atomics.load(ctrl, CTRL.STOP)) return;
    const step = Atomics.load(ctrl, CTRL.CMD);
    readParams(model, layout, params);
    const s = layout.imageSize;
    tf.tidy(() => {
      const x = tf.tensor4d(images, [layout.half, s, s, 3]);
      const t = readTokens(tokens, layout.half, layout.contextLength);
      const { value, grads: g } = namedGrads(trainable, () => halfContrastiveLoss(model, x, t, 'worker', layout, ctrl, emb, step));
      let o = 0;
      layout.names.forEach((name, i) => {
        if (g[name]) grads.set(g[name].dataSync(), o);
        else grads.fill(0, o, o + layout.sizes[i]);
        o += layout.sizes[i];
      });
      value.dispose();
    });
    signal(ctrl, CTRL.WORK_GRAD, step);
    done = step;
  }
}

run().catch((e) => {
  process.stderr.write(`[rvpt worker] ${(e as Error).stack ?? e}\n`);
  Atomics.store(new Int32Array((workerData as { bufs: SharedBuffers }).bufs.ctrl), CTRL.ERROR, 1);
  throw e;
});
