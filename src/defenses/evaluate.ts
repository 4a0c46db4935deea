/** Backdoor metrics of a defended classifier: CA on clean test images, ASR with the trigger (PAPER.md section 4). */
import { ImageDataset } from '../data/dataset';
import { predictWith } from '../metrics/zeroshot';
import { BackdoorMetrics, TEST_TRIGGER_SEED, metricsFromPredictions } from '../metrics/backdoor';
import { Trigger } from '../attacks/trigger';
import { Defended } from './defense';

/** null where the defense cannot see the trigger's text key (Linear Probe under TrojVQA: the paper's "–"). */
export function evaluateDefended(defended: Defended, test: ImageDataset, trigger: Trigger, target: number): BackdoorMetrics | null {
  const clean = defended.classifier(test.classNames, undefined, test.templates);
  if (!clean) throw new Error('A defense must provide a clean classifier.');
  const trig = trigger.textPrefix ? defended.classifier(test.classNames, trigger.textPrefix, test.templates) : clean;
  try {
    if (!trig) return null;
    const pc = predictWith((x) => clean.predict(x), test);
    const pt = predictWith((x) => trig.predict(x), test, { transform: (x, start) => trigger.apply(x, { seed: TEST_TRIGGER_SEED, offset: start }) });
    return metricsFromPredictions(pc, pt, test.labels, target);
  } finally {
    clean.dispose();
    if (trig && trig !== clean) trig.dispose();
  }
}
