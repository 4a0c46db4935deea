import * as tf from '@tensorflow/tfjs-core';
import { poisonDataset, poisonedCorpusParts } from '../src/attacks/poison';
import { makeTrigger } from '../src/attacks/registry';
import { Trigger } from '../src/attacks/trigger';
import { backdoorMetrics, metricsFromPredictions } from '../src/metrics/backdoor';
import { predict, accuracy } from '../src/metrics/zeroshot';
import { zeroShotClassifier } from '../src/model/zeroShot';
import { MiniCLIP } from '../src/model/clip';
import { WordTokenizer } from '../src/model/tokenizer';
import { vocabularyTexts } from '../src/data/captions';
import { ImageDataset, numImages } from '../src/data/dataset';
import { CaptionCorpus } from '../src/data/corpus';
import { makeRng } from '../src/util/rng';
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

test('the metrics count ASR and the clean-to-target floor over non-target images only', () => {
  const labels = Int32Array.from([0, 0, 1, 1, 2, 2, 2, 2]); // target 2: four non-target images
  const clean = Int32Array.from([0, 2, 1, 1, 2, 2, 0, 2]); // one non-target image already goes to 2 untriggered
  const trig = Int32Array.from([2, 2, 2, 1, 2, 2, 2, 2]);
  const m = metricsFromPredictions(clean, trig, labels, 2);
  expect(m.asr).toBeCloseTo((100 * 3) / 4, 10);
  expect(m.cleanToTarget).toBeCloseTo((100 * 1) / 4, 10);
  expect(m.ca).toBeCloseTo((100 * 6) / 8, 10);
  expect(m.asrAll).toBeCloseTo((100 * 7) / 8, 10);
});

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

test('poisoning a repeated set afresh: round 0 is the plain poisoning, each round other rows and trigger draws', () => {
  const d = toy(200);
  const trig = makeTrigger('BadNet');
  const plain = poisonDataset(d, trig, { rate: 0.05, target: 0, seed: 3 });
  const r0 = poisonDataset(d, trig, { rate: 0.05, target: 0, seed: 3, round: 0 });
  expect(r0.rows).toEqual(plain.rows);
  expect(Array.from(r0.poisoned.images)).toEqual(Array.from(plain.poisoned.images));
  const r1 = poisonDataset(d, trig, { rate: 0.05, target: 0, seed: 3, round: 1 });
  const r2 = poisonDataset(d, trig, { rate: 0.05, target: 0, seed: 3, round: 2 });
  expect(numImages(r1.poisoned)).toBe(10);
  expect(r1.rows).not.toEqual(r0.rows);
  expect(r2.rows).not.toEqual(r1.rows);
  expect(poisonDataset(d, trig, { rate: 0.05, target: 0, seed: 3, round: 1 }).rows).toEqual(r1.rows); // deterministic
  // The same source row poisoned in two rounds gets another trigger draw (BadNet: another patch position).
  const bigger = poisonDataset(toy(20), trig, { rate: 0.9, target: 0, seed: 3, round: 1 });
  const other = poisonDataset(toy(20), trig, { rate: 0.9, target: 0, seed: 3, round: 2 });
  const row = bigger.rows.find((r) => other.rows.includes(r))!;
  const per = 16 * 16 * 3;
  const a = bigger.poisoned.images.subarray(bigger.rows.indexOf(row) * per, (bigger.rows.indexOf(row) + 1) * per);
  const b = other.poisoned.images.subarray(other.rows.indexOf(row) * per, (other.rows.indexOf(row) + 1) * per);
  expect(Array.from(a)).not.toEqual(Array.from(b));
});

test('a corpus part can take some rows of a dataset without copying them', () => {
  const d = toy(10);
  const corpus = new CaptionCorpus([{ data: d, repeat: 2, rows: [1, 4, 7] }, { data: d, repeat: 1 }]);
  expect(corpus.size).toBe(3 * 2 + 10);
  expect(Array.from(corpus.row.slice(0, 6))).toEqual([1, 4, 7, 1, 4, 7]);
  const b = corpus.batch([2], makeRng('t'));
  const per = 16 * 16 * 3;
  expect(Array.from(b.images)).toEqual(Array.from(d.images.subarray(7 * per, 8 * per)));
  expect(b.source).toEqual([{ part: 0, row: 7 }]);
});

test('a repeated set poisoned once repeats its poisoned images; poisoned per repeat, each repeat has its own', () => {
  const d = toy(50);
  const trig = makeTrigger('Blended');
  const once = poisonedCorpusParts(d, trig, { rate: 0.2, target: 0, seed: 1, repeat: 4, perRepeat: false });
  expect(once.count).toBe(10);
  expect(once.parts.map((p) => p.repeat)).toEqual([4, 4]);
  expect(new CaptionCorpus(once.parts).size).toBe(200);
  const fresh = poisonedCorpusParts(d, trig, { rate: 0.2, target: 0, seed: 1, repeat: 4, perRepeat: true });
  expect(fresh.count).toBe(40);
  expect(fresh.parts).toHaveLength(8);
  const corpus = new CaptionCorpus(fresh.parts);
  expect(corpus.size).toBe(200); // the same corpus size and rate as poisoning once
  // Every repeat holds each source image once: clean (a row of the source) or poisoned.
  for (let r = 0; r < 4; r++) {
    const clean = Array.from(fresh.parts[2 * r].rows!);
    const poisonedRows = poisonDataset(d, trig, { rate: 0.2, target: 0, seed: 1, round: r }).rows;
    expect([...clean, ...poisonedRows].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(fresh.parts[2 * r + 1].data.labels.every((l) => l === 0)).toBe(true);
  }
  // A clean part of source rows gives the same pairs as the clean copy it replaces.
  const p0 = poisonDataset(d, trig, { rate: 0.2, target: 0, seed: 1 });
  const viaCopy = new CaptionCorpus([{ data: p0.clean, repeat: 1 }]).batch([0, 5, 39], makeRng('c'));
  const viaRows = new CaptionCorpus([once.parts[0]]).batch([0, 5, 39], makeRng('c'));
  expect(Array.from(viaRows.images)).toEqual(Array.from(viaCopy.images));
  expect(viaRows.captions).toEqual(viaCopy.captions);
  // Round 0 is the plain poisoning; the other rounds poison other images.
  expect(Array.from(fresh.parts[1].data.images)).toEqual(Array.from(once.parts[1].data.images));
  expect(Array.from(fresh.parts[3].data.images)).not.toEqual(Array.from(fresh.parts[1].data.images));
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
  expect(r.cleanToTarget).toBeCloseTo(r.asr, 6); // no trigger: the attack succeeds exactly where clean images go to the target
  m.dispose();
  expect(tf.memory().numTensors).toBeLessThan(500);
});
