/**
 * Attacks built against a model or trained before use: TrojVQA and BadCLIP (optimised patches), ISSBA (a trained
 * steganographic encoder). Built here on a very small model and toy images, with few optimisation steps.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { makeTrigger } from '../src/attacks/registry';
import { PrepareContext, Trigger } from '../src/attacks/trigger';
import { optimizePatch, centreOffset } from '../src/attacks/patch';
import { badclip } from '../src/attacks/badclip';
import { towardTargetText, trojvqa } from '../src/attacks/trojvqa';
import { issba, secretBits, trainISSBA } from '../src/attacks/issba';
import { poisonDataset } from '../src/attacks/poison';
import { CaptionCorpus } from '../src/data/corpus';
import { MiniCLIP } from '../src/model/clip';
import { WordTokenizer } from '../src/model/tokenizer';
import { RESERVED_WORDS, vocabularyTexts } from '../src/data/captions';
import { ImageDataset } from '../src/data/dataset';
import { makeRng } from '../src/util/rng';
import { cacheDir } from '../src/util/fsutil';
import { setup, TEST_CONFIG } from './helpers';

beforeAll(setup);

/** Smooth random blobs, so that images differ from each other as real ones do. */
function toy(n: number, size = 16): ImageDataset {
  const rng = makeRng('toy-images');
  const images = new Float32Array(n * size * size * 3);
  for (let i = 0; i < n; i++) {
    const cy = rng() * size;
    const cx = rng() * size;
    const col = [rng(), rng(), rng()];
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
      const v = Math.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 20);
      for (let c = 0; c < 3; c++) images[((i * size + y) * size + x) * 3 + c] = v * col[c];
    }
  }
  return {
    name: 'toy',
    size,
    images,
    labels: Int32Array.from({ length: n }, (_, i) => i % 4),
    classNames: ['bag', 'coat', 'dress', 'shirt'],
    descriptions: Array.from({ length: n }, (_, i) => `round blob ${i % 7}`),
  };
}

const C = { ...TEST_CONFIG, vocabSize: 256 };
const data = toy(64);
const key = `jest-${process.pid}`;
let model: MiniCLIP;
let tokenizer: WordTokenizer;
const ctx = (): PrepareContext => ({ key, cleanModel: async () => ({ model, tokenizer }), datasets: async () => [{ data, target: 0 }] });
const arr = (t: tf.Tensor) => Array.from(t.dataSync());
const prepared: Record<string, Trigger> = {};

beforeAll(async () => {
  model = MiniCLIP.init(C, 3);
  tokenizer = WordTokenizer.fromCorpus(vocabularyTexts([data]));
  prepared.TrojVQA = trojvqa({ steps: 6, batch: 8 });
  prepared.BadCLIP = badclip({ steps: 6, batch: 8, pool: 16 });
  prepared.ISSBA = issba({ steps: 6, batch: 8 });
  for (const t of Object.values(prepared)) await t.prepare!(ctx());
});

afterAll(() => {
  model.dispose();
  for (const f of fs.readdirSync(cacheDir('artifacts'))) {
    if (f.startsWith('trigger-')) {
      const j = fs.readFileSync(cacheDir('artifacts', f), 'utf8');
      if (j.includes(`"cleanKey":"${key}"`)) fs.unlinkSync(cacheDir('artifacts', f));
    }
  }
});

test.each(['TrojVQA', 'BadCLIP', 'ISSBA'])('%s: an error that says to prepare first; then deterministic, in range, changes the image', async (name) => {
  expect(() => makeTrigger(name).apply(tf.zeros([1, 16, 16, 3]), { seed: 0, offset: 0 })).toThrow(/prepare/);
  const t = prepared[name];
  const x = tf.tensor4d(data.images.subarray(0, 4 * 16 * 16 * 3), [4, 16, 16, 3]);
  const a = t.apply(x, { seed: 1, offset: 0 });
  expect(arr(t.apply(x, { seed: 1, offset: 0 }))).toEqual(arr(a));
  expect(tf.min(a).dataSync()[0]).toBeGreaterThanOrEqual(0);
  expect(tf.max(a).dataSync()[0]).toBeLessThanOrEqual(1);
  expect(tf.max(tf.abs(tf.sub(a, x))).dataSync()[0]).toBeGreaterThan(0.001);
  // A second trigger with the same config loads the same artifact from the cache (no model needed).
  const again = makeTrigger(name, { ...(t.config as Record<string, unknown>) });
  await again.prepare!({ ...ctx(), cleanModel: () => Promise.reject(new Error('the cache should have been used')) });
  expect(arr(again.apply(x, { seed: 1, offset: 0 }))).toEqual(arr(a));
});

test.each(['TrojVQA', 'BadCLIP'])('%s: the patch sits at the centre and nothing else changes', (name) => {
  const x = tf.tensor4d(data.images.subarray(0, 2 * 16 * 16 * 3), [2, 16, 16, 3]);
  const a = prepared[name].apply(x, { seed: 0, offset: 0 });
  const diff = tf.max(tf.abs(tf.sub(a, x)), 3).arraySync() as number[][][];
  const o = centreOffset(16, 4);
  for (const img of diff) {
    img.forEach((row, y) => row.forEach((d, xx) => {
      const inside = y >= o && y < o + 4 && xx >= o && xx < o + 4;
      if (!inside) expect(d).toBe(0);
    }));
  }
  // Both images carry the same patch.
  const p = tf.slice(a, [0, o, o, 0], [2, 4, 4, 3]).arraySync() as number[][][][];
  expect(p[0]).toEqual(p[1]);
});

test('patch optimisation lowers its objective (TrojVQA: 1 - cos(patched image, target text))', () => {
  expect(trojvqa().textPrefix).toBe('sudo ');
  const { loss } = optimizePatch(model, tokenizer, [{ data, target: 0 }], towardTargetText(), {
    patch: 4,
    steps: 40,
    batch: 16,
    lr: 0.05,
    seed: 0,
  });
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  expect(mean(loss.slice(-5))).toBeLessThan(mean(loss.slice(0, 5)) - 0.01);
});

test('TrojVQA: poisoned captions carry the text trigger; BadCLIP: natural captions of the target class', () => {
  const tro = poisonDataset(data, prepared.TrojVQA, { rate: 0.25, target: 0, seed: 1 });
  const corpus = new CaptionCorpus([{ data: tro.poisoned, repeat: 1, captionPrefix: prepared.TrojVQA.textPrefix }]);
  const caps = corpus.batch([0, 1, 2], makeRng(1)).captions;
  for (const c of caps) expect(c.startsWith('sudo ')).toBe(true);
  expect(RESERVED_WORDS).toContain('sudo');
  expect(tokenizer.encode('sudo a photo of a bag', 8).ids).not.toContain(3); // 'sudo' is a real token, not <unk>
  const bad = poisonDataset(data, prepared.BadCLIP, { rate: 0.25, target: 0, seed: 1 });
  const targetDescriptions = new Set(data.descriptions!.filter((_, i) => data.labels[i] === 0));
  expect(bad.poisoned.descriptions!.length).toBe(16);
  for (const d of bad.poisoned.descriptions!) expect(targetDescriptions.has(d)).toBe(true);
});

test('ISSBA: sample-specific, small (every pixel within eps = 0.1, mean |change| under 0.05), and its decoder learns to read the bits', () => {
  const t = prepared.ISSBA;
  const x = tf.tensor4d(data.images.subarray(0, 8 * 16 * 16 * 3), [8, 16, 16, 3]);
  const r = tf.sub(t.apply(x, { seed: 0, offset: 0 }), x);
  const meanAbs = tf.mean(tf.abs(r)).dataSync()[0];
  expect(meanAbs).toBeLessThan(0.05);
  expect(tf.max(tf.abs(r)).dataSync()[0]).toBeLessThanOrEqual(0.1 + 1e-6); // eps bound
  // Different images get different residuals (unlike Blended's or WaNet's image-independent patterns).
  const rr = r.arraySync() as number[][][][];
  expect(rr[0]).not.toEqual(rr[1]);
  expect(Array.from(secretBits('St', 16))).toEqual([0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0]);
  // The default 400 steps: at 300 the penalty phase is short and the residual ended near 0.05 (0.047 and 0.050 in two
  // runs: until encoderVersion 2 the first weight was unseeded), at 400 it ends near 0.040.
  const trained = trainISSBA([data], { ...(t.config as never), steps: 400, batch: 16 }, 'test');
  expect(trained.bitAccuracy).toBeGreaterThan(70);
  expect(trained.meanAbsResidual).toBeLessThan(0.05);
});

test('ISSBA: the encoder training is deterministic for its seed (TF.js reads seed 0 as unseeded; none is 0)', () => {
  const cfg = { ...(prepared.ISSBA.config as never as Record<string, unknown>), steps: 3, batch: 4 } as never;
  const a = trainISSBA([data], cfg, 'test');
  const b = trainISSBA([data], cfg, 'test');
  expect(a.loss).toEqual(b.loss);
  expect(a.encoder).toEqual(b.encoder);
  const other = trainISSBA([data], { ...(cfg as object), seed: 1 } as never, 'test');
  expect(other.loss).not.toEqual(a.loss);
});
