/** Backdoor metrics of a defended classifier: CA on clean test images, ASR with the trigger (PAPER.md section 4). */
import * as tf from '@tensorflow/tfjs-core';
import { ImageDataset, numImages } from '../data/dataset';
import { imageBatch } from '../metrics/zeroshot';
import { BackdoorMetrics, TEST_TRIGGER_SEED, metricsFromPredictions } from '../metrics/backdoor';
import { Trigger } from '../attacks/trigger';
import { Classifier, Defended } from './defense';

function predictAll(c: Classifier, d: ImageDataset, transform?: (x: tf.Tensor4D, start: number) => tf.Tensor4D, batch = 500): Int32Array {
  const n = numImages(d);
  const out = new Int32Array(n);
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const p = tf.tidy(() => {
      const x = imageBatch(d, s, e);
      return c.predict(transform ? transform(x, s) : x);
    });
    out.set(p.dataSync() as Int32Array, s);
    p.dispose();
  }
  return out;
}

/** null where the defense cannot see the trigger's text key (Linear Probe under TrojVQA: the paper's "–"). */
export function evaluateDefended(defended: Defended, test: ImageDataset, trigger: Trigger, target: number): BackdoorMetrics | null {
  const clean = defended.classifier(test.classNames);
  if (!clean) throw new Error('A defense must provide a clean classifier.');
  const trig = trigger.textPrefix ? defended.classifier(test.classNames, trigger.textPrefix) : clean;
  try {
    if (!trig) return null;
    const pc = predictAll(clean, test);
    const pt = predictAll(trig, test, (x, start) => trigger.apply(x, { seed: TEST_TRIGGER_SEED, offset: start }));
    return metricsFromPredictions(pc, pt, test.labels, target);
  } finally {
    clean.dispose();
    if (trig && trig !== clean) trig.dispose();
  }
}
