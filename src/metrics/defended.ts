/** Backdoor metrics of a defended classifier: CA on clean test images, ASR with the trigger (docs/PAPER-NOTES.md §4). */
import { ImageDataset } from '../data/dataset';
import { classifyEmbeddings, predictWith } from './zeroshot';
import { BackdoorMetrics, metricsFromPredictions, testTimeTrigger } from './backdoor';
import { Trigger } from '../attacks/trigger';
import type { TestEmbeddings } from './features';
import { MiniCLIP } from '../model/clip';
import { Defended } from '../defenses/defense';

/**
 * null where the defense cannot see the trigger's text key (Linear Probe under TrojVQA: the paper's "–").
 * `frozen`: the backdoored model and its embeddings of `test` (clean, triggered), used when the defense's
 * classifiers classify that very model's embeddings (Classifier.encoder) instead of encoding the images again.
 */
export function evaluateDefended(
  defended: Defended,
  test: ImageDataset,
  trigger: Trigger,
  target: number,
  frozen?: { model: MiniCLIP; embeddings: () => TestEmbeddings },
): BackdoorMetrics | null {
  const clean = defended.classifier(test.classNames, undefined, test.templates);
  if (!clean) throw new Error('A defense must provide a clean classifier.');
  const trig = trigger.textPrefix ? defended.classifier(test.classNames, trigger.textPrefix, test.templates) : clean;
  try {
    if (!trig) return null;
    if (frozen && clean.fromEmbedding && trig.fromEmbedding && clean.encoder === frozen.model && trig.encoder === frozen.model) {
      const e = frozen.embeddings();
      return metricsFromPredictions(classifyEmbeddings(e.clean, e.dim, clean.fromEmbedding), classifyEmbeddings(e.triggered, e.dim, trig.fromEmbedding), test.labels, target);
    }
    const pc = predictWith((x) => clean.predict(x), test);
    const pt = predictWith((x) => trig.predict(x), test, { transform: testTimeTrigger(trigger) });
    return metricsFromPredictions(pc, pt, test.labels, target);
  } finally {
    clean.dispose();
    if (trig && trig !== clean) trig.dispose();
  }
}
