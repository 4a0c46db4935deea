import * as tf from '@tensorflow/tfjs-core';
import { poisonDataset } from '../src/attacks/poison';
import { makeTrigger } from '../src/attacks/registry';
import { Trigger } from '../src/attacks/trigger';
import { backdoorMetrics } from '../src/metrics/backdoor';
import { predict, zeroShotClassifier, accuracy } from '../src/metrics/zeroshot';
import { MiniCLIP } from '../src/model/clip';
import { WordTokenizer } from '../src/model/tokenizer';
import { vocabularyTexts } from '../src/data/captions';
import { ImageDataset, numImages } from '../src/data/dataset';
import { setup, TEST_CONFIG } from './helpers';

beforeAll(setup);

function toy(n: number): ImageDataset {
  return {
    name: 'toy',
    size: 16,
    images: Float32Array.from({ length: n * 16 * 16 * 3 }, (_, i) => ((i * 7919) % 255) / 255),
    labels: Int32Array.from({ length: n }, (_, i) => i % 4),
    classNames: ['bag', 'coat', 'dress', 'shirt'],
    descriptions: Array.from({ length: n }, (_, i) => `item ${i}`),
  };
}

test('poisoning replaces a seeded share of pairs by triggered images labelled with the target', () => {
  const d = toy(200);
  const p = poisonDataset(d, makeTrigger('BadNet'), { rate: 0.05, target: 0, seed: 3 });
  expect(numImages(p.poisoned)).toBe(10);
  expect(numImages(p.clean)).toBe(190);
  expect(Array.from(p.poisoned.labels).every((l) => l === 0)).toBe(true);
  expect(p.poisoned.descriptions).toBeUndefined(); // captions must name the target, not the original content
  expect(new Set(p.rows).size).toBe(10);
  expect(poisonDataset(d, makeTrigger('BadNet'), { rate: 0.05, target: 0, seed: 3 }).rows).toEqual(p.rows);
  expect(poisonDataset(d, makeTrigger('BadNet'), { rate: 0.05, target: 0, seed: 4 }).rows).not.toEqual(p.rows);
  // The poisoned image is the triggered original.
  const per = 16 * 16 * 3;
  const orig = d.images.subarray(p.rows[0] * per, (p.rows[0] + 1) * per);
  const pois = p.poisoned.images.subarray(0, per);
  let changed = 0;
  for (let i = 0; i < per; i++) if (Math.abs(orig[i] - pois[i]) > 1e-6) changed++;
  expect(changed).toBeGreaterThan(0);
  expect(changed).toBeLessThanOrEqual(4 * 4 * 3);
  expect(() => poisonDataset(d, makeTrigger('BadNet'), { rate: 0, target: 0, seed: 1 })).toThrow(/rate must be in \(0, 1\)/);
});

test('backdoor metrics: with an identity "trigger", poisoned accuracy equals CA and ASR counts target predictions', () => {
  const C = { ...TEST_CONFIG, vocabSize: 256 };
  const m = MiniCLIP.init(C, 1);
  const d = toy(64);
  const tok = WordTokenizer.fromCorpus(vocabularyTexts([d]));
  const identity: Trigger = { name: 'none', config: {}, apply: (x) => x.clone() };
  const r = backdoorMetrics(m, tok, d, identity, 2);
  expect(r.n).toBe(64);
  expect(r.poisonedAccuracy).toBeCloseTo(r.ca, 6);
  const cls = zeroShotClassifier(m, tok, d.classNames);
  const pred = predict(m, cls, d);
  cls.dispose();
  expect(r.ca).toBeCloseTo(accuracy(pred, d.labels), 6);
  const toTarget = Array.from(pred).filter((p, i) => p === 2 && d.labels[i] !== 2).length;
  expect(r.asr).toBeCloseTo((100 * toTarget) / 48, 6);
  expect(r.asrAll).toBeCloseTo((100 * Array.from(pred).filter((p) => p === 2).length) / 64, 6);
  m.dispose();
  expect(tf.memory().numTensors).toBeLessThan(500);
});
