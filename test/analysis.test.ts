/**
 * The analysis figures' parts: the PR metric and its perturbations, class-token attention and its overlay,
 * seeded t-SNE/UMAP, the ablation settings, and a real Chromium rendering of a figure to PNG.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../src/model/clip';
import { initDeepPrompts, disposePrompts } from '../src/model/prompts';
import { ImageDataset } from '../src/data/dataset';
import { colorJitter, gaussianBlur, gaussianNoise, horizontalFlip, perturbationResistivity, promptDisplacement } from '../src/metrics/pr';
import { l2normalize } from '../src/model/layers';
import { imageBatch } from '../src/data/batches';
import { promptLayers } from '../src/model/prompts';
import { ablationSetting, attentionOverlay, clsAttention, tsne2d, umap2d } from '../src/experiments/analysis';
import { PROFILES } from '../src/experiments/profiles';
import { lineFigure } from '../src/viz/plotly';
import { saveFigure } from '../src/viz/render';
import { makeRng } from '../src/util/rng';
import { TEST_CONFIG, setup } from './helpers';

beforeAll(setup);

function toy(n: number, size = 16): ImageDataset {
  const rng = makeRng('analysis-toy');
  return { name: 'toy', size, images: Float32Array.from({ length: n * size * size * 3 }, () => rng()), labels: Int32Array.from({ length: n }, (_, i) => i % 3), classNames: ['a', 'b', 'c'] };
}

test('PR for each block equals a hand computation: the mean over images of cos(class token, perturbed class token), the last partial batch included', () => {
  const model = MiniCLIP.init(TEST_CONFIG, 2);
  const d = toy(7);
  const perturb = gaussianNoise(0.2);
  // By hand: every image alone, its class tokens read one block at a time, the cosine summed in float64.
  const sums = new Float64Array(TEST_CONFIG.layers);
  for (let i = 0; i < 7; i++) {
    tf.tidy(() => {
      const x = tf.tensor4d(d.images.subarray(i * 16 * 16 * 3, (i + 1) * 16 * 16 * 3), [1, 16, 16, 3]);
      // The perturbation draws its noise from the batch's first index: give each image the index it has in the batches.
      const batchStart = i < 4 ? 0 : 4;
      const full = tf.tensor4d(d.images.subarray(batchStart * 768, (batchStart + (i < 4 ? 4 : 3)) * 768), [i < 4 ? 4 : 3, 16, 16, 3]);
      const px = tf.slice(perturb(full, batchStart), [i - batchStart, 0, 0, 0], [1, 16, 16, 3]) as tf.Tensor4D;
      const a = model.encodeImage(x, { collectCls: true }).cls!;
      const b = model.encodeImage(px, { collectCls: true }).cls!;
      a.forEach((c, l) => {
        const u = Array.from(c.dataSync());
        const v = Array.from(b[l].dataSync());
        const dot = u.reduce((s, ui, k) => s + ui * v[k], 0);
        sums[l] += dot / (Math.hypot(...u) * Math.hypot(...v));
      });
    });
  }
  const pr = perturbationResistivity(model, d, perturb, { batchSize: 4 }); // batches of 4 and 3
  pr.forEach((v, l) => expect(v).toBeCloseTo(sums[l] / 7, 5));
  model.dispose();
});

test('PR: 1 at every layer for the identity, below 1 under noise, deterministic, no tensors left', () => {
  const model = MiniCLIP.init(TEST_CONFIG, 1);
  const d = toy(10);
  const before = tf.memory().numTensors;
  const same = perturbationResistivity(model, d, (x) => tf.clone(x), { batchSize: 4 });
  expect(same).toHaveLength(TEST_CONFIG.layers);
  for (const v of same) expect(v).toBeCloseTo(1, 5);
  const noisy = perturbationResistivity(model, d, gaussianNoise(0.3), { batchSize: 4 });
  for (const v of noisy) expect(v).toBeLessThan(0.9999);
  expect(perturbationResistivity(model, d, gaussianNoise(0.3), { batchSize: 4 })).toEqual(noisy);
  const prompts = initDeepPrompts(TEST_CONFIG.layers, TEST_CONFIG.width, { length: 2, depth: 1 }, 0);
  expect(perturbationResistivity(model, d, horizontalFlip, { prompts })).toHaveLength(TEST_CONFIG.layers);
  disposePrompts(prompts);
  expect(tf.memory().numTensors).toBe(before);
  model.dispose();
});

test('prompt displacement: the mean cosine to the own unprompted class token and between different images, as computed pair by pair', () => {
  const model = MiniCLIP.init(TEST_CONFIG, 1);
  const d = toy(7);
  const prompts = initDeepPrompts(TEST_CONFIG.layers, TEST_CONFIG.width, { length: 2, depth: 1, initStd: 0.5 }, 0);
  const before = tf.memory().numTensors;
  const r = promptDisplacement(model, d, prompts, { batchSize: 3, transform: horizontalFlip });
  expect(tf.memory().numTensors).toBe(before);
  // Reference: every class token at once, the 7 x 7 cosine matrix, the off-diagonal mean.
  const [a, b] = tf.tidy(() => {
    const x = horizontalFlip(imageBatch(d, 0, 7), 0);
    const u = model.encodeImage(x, { collectCls: true }).cls!.map((c) => l2normalize(c).arraySync() as number[][]);
    const v = model.encodeImage(x, { prompts, collectCls: true }).cls!.map((c) => l2normalize(c).arraySync() as number[][]);
    return [u, v];
  });
  const dot = (p: number[], q: number[]) => p.reduce((s, x, k) => s + x * q[k], 0);
  for (let l = 0; l < TEST_CONFIG.layers; l++) {
    const moved = a[l].reduce((s, p, i) => s + dot(p, b[l][i]), 0) / 7;
    let pairs = 0;
    for (let i = 0; i < 7; i++) for (let j = 0; j < 7; j++) if (i !== j) pairs += dot(a[l][i], a[l][j]);
    expect(r.moved[l]).toBeCloseTo(moved, 5);
    expect(r.spread[l]).toBeCloseTo(pairs / 42, 5);
  }
  // Block 0 is not prompted: its class token does not move. The prompted blocks' do.
  expect(r.moved[0]).toBeCloseTo(1, 5);
  for (const m of r.moved.slice(1)) expect(m).toBeLessThan(1 - 1e-4);
  expect(promptDisplacement(model, d, prompts, { batchSize: 256, transform: horizontalFlip }).spread.map((v) => v.toFixed(5))).toEqual(r.spread.map((v) => v.toFixed(5)));
  expect(() => promptDisplacement(model, toy(1), prompts)).toThrow(/at least 2 images.*toy/);
  disposePrompts(prompts);
  model.dispose();
});

test('perturbations keep shape and range; blur keeps a flat image flat; flip is its own inverse', () => {
  const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  for (const p of [gaussianNoise(0.1), gaussianBlur(1), colorJitter(0.4), horizontalFlip]) {
    const y = p(x, 0);
    expect(y.shape).toEqual(x.shape);
    expect(tf.min(y).dataSync()[0]).toBeGreaterThanOrEqual(0);
    expect(tf.max(y).dataSync()[0]).toBeLessThanOrEqual(1);
    y.dispose();
  }
  const flat = tf.fill([1, 16, 16, 3], 0.3) as tf.Tensor4D;
  expect(tf.max(tf.abs(tf.sub(gaussianBlur(1.5)(flat, 0), 0.3))).dataSync()[0]).toBeLessThan(1e-5);
  expect(Array.from(horizontalFlip(horizontalFlip(x, 0), 0).dataSync())).toEqual(Array.from(x.dataSync()));
  tf.dispose([x, flat]);
});

test('class-token attention: one map over the patches per image, prompt keys dropped, sums to 1; the overlay is an image', async () => {
  const model = MiniCLIP.init(TEST_CONFIG, 2);
  const x = tf.randomUniform([3, 16, 16, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
  const prompts = initDeepPrompts(TEST_CONFIG.layers, TEST_CONFIG.width, { length: 3, depth: 1 }, 0);
  for (const maps of [clsAttention(model, x), clsAttention(model, x, prompts)]) {
    expect(maps).toHaveLength(3);
    for (const m of maps) {
      expect(m.length).toBe(16); // 4 x 4 patches
      expect(m.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  }
  const png = await attentionOverlay(x.dataSync().slice(0, 16 * 16 * 3) as Float32Array, 16, clsAttention(model, x)[0], 64);
  const meta = await sharp(png).metadata();
  expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 64]);
  disposePrompts(prompts);
  tf.dispose(x);
  model.dispose();
});

test('t-SNE and UMAP (maintained libraries) are seeded: the same seed gives the same layout', () => {
  const rng = makeRng('pts');
  const pts = Array.from({ length: 40 }, (_, i) => Array.from({ length: 8 }, () => rng() + (i % 2) * 3));
  const a = tsne2d(pts, 's', 100);
  expect(tsne2d(pts, 's', 100)).toEqual(a);
  expect(tsne2d(pts, 't', 100)).not.toEqual(a);
  expect(a).toHaveLength(40);
  expect(umap2d(pts, 's')).toEqual(umap2d(pts, 's'));
});

test('ablation settings: depth from the output prompts the last k blocks, from the input the first k', () => {
  const p = PROFILES.small;
  expect(ablationSetting(p, 'depth from output', 2).config.depth).toBe(4);
  expect(ablationSetting(p, 'depth from input', 3).config.layers).toEqual([0, 1, 2]);
  expect(ablationSetting(p, 'shots', 4).shots).toBe(4);
  expect(ablationSetting(p, 'alpha', 0.5).config.alpha).toBe(0.5);
  expect(ablationSetting(p, 'alpha', 0.5).config.epochs).toBe(10);
  // Each parameter's default point is the same config, hence one cached cell for all of them.
  const defaults = [ablationSetting(p, 'shots', p.shots), ablationSetting(p, 'alpha', 2), ablationSetting(p, 'promptLength', 16), ablationSetting(p, 'depth from output', 4), ablationSetting(p, 'margin', -1)];
  for (const d of defaults) expect(d).toEqual({ shots: p.shots, config: { epochs: 10 } });
  expect(ablationSetting(p, 'margin', 0).config).toEqual({ epochs: 10, margin: 0 });
  expect(ablationSetting(p, 'depth from input', 6)).toEqual(ablationSetting(p, 'depth from output', 6)); // every block
  expect(promptLayers(6, ablationSetting(p, 'depth from input', 6).config as never)).toEqual([0, 1, 2, 3, 4, 5]);
});

test('a figure is rendered by headless Chromium: a real PNG of the asked size, not blank; HTML and provenance sidecar beside it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-fig-'));
  const fig = lineFigure('PR test', [{ name: 'a', y: [1, 0.9, 0.7, 0.8] }, { name: 'b', y: [1, 0.95, 0.9, 0.92] }], 'block', 'PR');
  const out = await saveFigure(dir, 'test-fig', fig, { title: 'test', profile: 'test' }, { width: 640, height: 400 });
  const buf = fs.readFileSync(out.png);
  expect(buf.subarray(1, 4).toString()).toBe('PNG');
  const meta = await sharp(buf).metadata();
  expect([meta.width, meta.height]).toEqual([640, 400]);
  const stats = await sharp(buf).stats();
  // A blank page is one flat colour; a drawn plot has lines, text and axes.
  expect(Math.max(...stats.channels.map((c) => c.stdev))).toBeGreaterThan(10);
  const { data } = await sharp(buf).raw().toBuffer({ resolveWithObject: true });
  const colours = new Set<number>();
  for (let i = 0; i < data.length; i += 3) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  expect(colours.size).toBeGreaterThan(20);
  expect(fs.readFileSync(out.html, 'utf8')).toContain('Plotly.newPlot');
  const side = JSON.parse(fs.readFileSync(out.json, 'utf8'));
  expect(side.provenance.profile).toBe('test');
  expect(side.provenance.commit).toBeTruthy();
}, 60000);
