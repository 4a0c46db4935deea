/**
 * Linear Probe (docs/PAPER-NOTES.md §3): the backdoored image encoder frozen, a linear classifier on its normalised
 * embeddings trained on the clean few-shot data (SGD, constant lr 0.01, momentum 0.9, batch 32, 40 epochs). It has no
 * text side, so TrojVQA's text key cannot reach it: the paper leaves that cell empty ("–"), and so do we.
 */
import * as tf from '@tensorflow/tfjs-core';
import { l2normalize } from '../model/layers';
import { numImages } from '../data/dataset';
import { SGD, constant } from '../train/optim';
import { makeRng, permutation } from '../util/rng';
import { Progress } from '../util/progress';
import { ownedVariable } from '../model/params';
import { rowsBatch } from '../data/batches';
import { Defense, MemoryMeter, optimStep } from './defense';

export interface LinearProbeConfig {
  epochs: number;
  batch: number;
  lr: number;
  momentum: number;
}

export const LINEAR_PROBE_DEFAULTS: LinearProbeConfig = { epochs: 40, batch: 32, lr: 0.01, momentum: 0.9 };

export const LinearProbe: Defense = {
  name: 'Linear Probe',
  perDataset: true,
  params: Object.keys(LINEAR_PROBE_DEFAULTS),
  async run(ctx, config) {
    const c = { ...LINEAR_PROBE_DEFAULTS, ...(config as Partial<LinearProbeConfig>) };
    const { model, shots } = ctx;
    const n = numImages(shots);
    const k = shots.classNames.length;
    const t0 = Date.now();
    const mem = new MemoryMeter();
    // The encoder is frozen and there is no augmentation, so features are computed once.
    const feats = tf.tidy(() => l2normalize(model.encodeImage(rowsBatch(shots, Array.from({ length: n }, (_, i) => i))).embedding));
    const labels = tf.tidy(() => tf.oneHot(tf.tensor1d(shots.labels, 'int32'), k));
    const params = { weight: ownedVariable(tf.zeros([model.config.embedDim, k])), bias: ownedVariable(tf.zeros([k])) };
    const opt = new SGD(params, { momentum: c.momentum });
    const perEpoch = Math.max(1, Math.ceil(n / c.batch));
    const steps = c.epochs * perEpoch;
    const history: Record<string, number[]> = { loss: [] };
    const bar = new Progress('Linear Probe', steps, { quiet: ctx.quiet });
    for (let step = 0; step < steps; step++) {
      const order = permutation(n, makeRng(`lp-${ctx.seed}-${Math.floor(step / perEpoch)}`));
      const rows = tf.tensor1d(order.slice((step % perEpoch) * c.batch, (step % perEpoch) * c.batch + c.batch), 'int32');
      const [loss] = tf.tidy(() => {
        const x = tf.gather(feats, rows);
        const y = tf.gather(labels, rows);
        return optimStep(params, opt, constant(c.lr)(step), () => [tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(x, params.weight), params.bias)) as tf.Scalar], mem);
      });
      rows.dispose();
      history.loss.push(loss);
      bar.tick(1, `loss ${history.loss[history.loss.length - 1].toFixed(3)}`);
    }
    bar.done();
    opt.dispose();
    tf.dispose([feats, labels]);
    const seconds = (Date.now() - t0) / 1000;
    return {
      classifier(classNames, textPrefix) {
        if (textPrefix) return null;
        if (classNames.length !== k) throw new Error(`Linear Probe was trained on ${k} classes, asked for ${classNames.length}.`);
        const fromEmbedding = (e: tf.Tensor2D) => tf.tidy(() => tf.argMax(tf.add(tf.matMul(l2normalize(e), params.weight), params.bias), 1) as tf.Tensor1D);
        return {
          predict: (images) => tf.tidy(() => fromEmbedding(model.encodeImage(images).embedding)),
          fromEmbedding,
          encoder: model,
          dispose: () => undefined,
        };
      },
      cost: { seconds, peakBytes: mem.peakBytes, rssBytes: mem.rssBytes, tunableParams: params.weight.size + params.bias.size, totalParams: model.numParams(), samples: steps * c.batch },
      history,
      dispose: () => tf.dispose([params.weight, params.bias]),
    };
  },
};
