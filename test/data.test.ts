import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { parseIdx, readIdxFile } from '../src/data/idx';
import { loadIdxSplit } from '../src/data/fashionMnist';
import { IdxManifest, loadManifest, EmojiManifest, FolderManifest } from '../src/data/manifest';
import { emojiEntries, renderSvg } from '../src/data/emoji';
import { loadImageFolder } from '../src/data/imageFolder';
import { kShot, splitOff } from '../src/data/splits';
import { classCounts, copyImageRow, imageRows, numImages, subset, ImageDataset } from '../src/data/dataset';
import { applyAugment, augmentBatch, DEFAULT_AUGMENT, drawAugment, sliceDraw } from '../src/data/augment';
import { makeRng } from '../src/util/rng';
import { setup } from './helpers';

beforeAll(setup);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-test-'));
const fm = () => loadManifest('fashion-mnist') as IdxManifest;

test('Fashion-MNIST test split: 10,000 images padded to 32x32 RGB, labels 0..9, checksums verified', () => {
  const d = loadIdxSplit(fm(), 'test');
  expect(numImages(d)).toBe(10000);
  expect(d.size).toBe(32);
  expect(classCounts(d)).toEqual(new Array(10).fill(1000));
  // The 2-pixel border is black, the channels are equal.
  const px = (i: number, y: number, x: number, c: number) => d.images[i * 32 * 32 * 3 + (y * 32 + x) * 3 + c];
  expect(px(0, 0, 0, 0)).toBe(0);
  expect(px(0, 16, 16, 0)).toBe(px(0, 16, 16, 2));
  expect(Math.max(...d.images.subarray(0, 3072))).toBeLessThanOrEqual(1);
});

function manifestCopy(dir: string, patch: (m: IdxManifest) => void): IdxManifest {
  const m = JSON.parse(JSON.stringify(fm())) as IdxManifest;
  patch(m);
  m.file = path.join(dir, 'm.json');
  return m;
}

test('missing dataset file: the error names the file, the manifest field and the fix', () => {
  const m = manifestCopy(tmp(), (m) => (m.root = '/nonexistent/fashion'));
  expect(() => loadIdxSplit(m, 'test')).toThrow(/\/nonexistent\/fashion\/t10k-images-idx3-ubyte\.gz.*files\.test\.images.*apt-get install dataset-fashion-mnist/);
});

test('checksum mismatch is detected and explained', () => {
  const dir = tmp();
  const src = path.join(fm().root, 't10k-images-idx3-ubyte.gz');
  fs.copyFileSync(src, path.join(dir, 't10k-images-idx3-ubyte.gz'));
  fs.copyFileSync(path.join(fm().root, 't10k-labels-idx1-ubyte.gz'), path.join(dir, 't10k-labels-idx1-ubyte.gz'));
  const m = manifestCopy(dir, (m) => {
    m.root = dir;
    m.files.test.images.sha256 = '0'.repeat(64);
  });
  expect(() => loadIdxSplit(m, 'test')).toThrow(/checksum mismatch.*t10k-images-idx3-ubyte\.gz.*expects 0000/);
});

test('truncated IDX files: gzip and raw, each a clear error', () => {
  const dir = tmp();
  const full = fs.readFileSync(path.join(fm().root, 't10k-labels-idx1-ubyte.gz'));
  const cut = path.join(dir, 'cut.gz');
  fs.writeFileSync(cut, full.subarray(0, full.length / 2));
  expect(() => readIdxFile(cut)).toThrow(/cut\.gz is not valid gzip.*truncated/);
  const raw = zlib.gunzipSync(full);
  expect(() => parseIdx(raw.subarray(0, 5000), 'labels.idx')).toThrow(/labels\.idx is truncated: header says 10000 = 10000 values, file holds 4992/);
  expect(() => parseIdx(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]), 'x.idx')).toThrow(/bad magic number/);
});

test('manifest errors name the field', () => {
  const dir = tmp();
  const f = path.join(dir, 'bad.json');
  fs.writeFileSync(f, JSON.stringify({ ...fm(), target: 'unicorn' }));
  expect(() => loadManifest(f)).toThrow(/field 'target' 'unicorn' is not one of the classes/);
  expect(() => loadManifest('no-such-dataset')).toThrow(/not found.*Known manifests: .*fashion-mnist/);
});

test('emoji split: deterministic, disjoint train/test, every class present in both', () => {
  const m = loadManifest('emoji') as EmojiManifest;
  const a = emojiEntries(m);
  const b = emojiEntries(m);
  expect(a.train.map((e) => e.hexcode)).toEqual(b.train.map((e) => e.hexcode));
  const testSet = new Set(a.test.map((e) => e.hexcode));
  expect(a.train.some((e) => testSet.has(e.hexcode))).toBe(false);
  for (let c = 0; c < m.classes.length; c++) {
    expect(a.train.filter((e) => e.cls === c).length).toBeGreaterThan(5);
    expect(a.test.filter((e) => e.cls === c).length).toBeGreaterThan(3);
  }
});

test('SVG rendering: a real emoji renders to non-blank pixels; an unreadable SVG is a clear error', async () => {
  const px = await renderSvg('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="#f00"/></svg>', 32);
  expect(px.length).toBe(32 * 32 * 3);
  const centre = (16 * 32 + 16) * 3;
  expect([px[centre], px[centre + 1], px[centre + 2]]).toEqual([1, 0, 0]);
  await expect(renderSvg('<svg this is not xml', 32, '#fff', 'emoji TEST (fixture)')).rejects.toThrow(/Cannot render emoji TEST \(fixture\).*valid SVG/);
});

test('image-folder reader: one folder per class, resized and centre-cropped; a broken image names the file', async () => {
  const dir = tmp();
  for (const [cls, color] of [['red', { r: 255, g: 0, b: 0 }], ['blue', { r: 0, g: 0, b: 255 }]] as const) {
    fs.mkdirSync(path.join(dir, 'train', cls), { recursive: true });
    for (let i = 0; i < 2; i++) {
      await sharp({ create: { width: 40 + i * 10, height: 30, channels: 3, background: color } }).png().toFile(path.join(dir, 'train', cls, `${i}.png`));
    }
  }
  const m: FolderManifest = { kind: 'image-folder', name: 'colors', classes: ['red', 'blue'], target: 'red', imageSize: 16, splits: { train: 'train' }, file: path.join(dir, 'm.json') };
  const d = await loadImageFolder(m, 'train');
  expect(numImages(d)).toBe(4);
  expect(Array.from(d.labels)).toEqual([0, 0, 1, 1]);
  // Held as bytes (a quarter of float32's memory), read as float32 in [0, 1].
  expect(d.images).toBeInstanceOf(Uint8Array);
  expect([d.images[0], d.images[1], d.images[3 * 16 * 16 * 3 + 2]]).toEqual([255, 0, 255]);
  const px = imageRows(d, 0, numImages(d));
  expect([px[0], px[1], px[3 * 16 * 16 * 3 + 2]]).toEqual([1, 0, 1]);
  const copy = new Float32Array(16 * 16 * 3 + 2);
  copyImageRow(d, 3, copy, 2);
  expect(Array.from(copy.subarray(2))).toEqual(Array.from(px.subarray(3 * 16 * 16 * 3)));
  expect(subset(d, [3]).images).toBeInstanceOf(Uint8Array);
  fs.writeFileSync(path.join(dir, 'train', 'red', 'broken.png'), 'not a png');
  await expect(loadImageFolder(m, 'train')).rejects.toThrow(/Cannot decode image .*broken\.png/);
  await expect(loadImageFolder({ ...m, classes: ['red', 'green'] }, 'train')).rejects.toThrow(/class 'green' has no folder/);
});

function toy(n: number, classes: number): ImageDataset {
  return { name: 'toy', size: 2, images: Float32Array.from({ length: n * 12 }, (_, i) => (i % 7) / 7), labels: Int32Array.from({ length: n }, (_, i) => i % classes), classNames: Array.from({ length: classes }, (_, i) => `c${i}`) };
}

test('k-shot sampler: k per class, deterministic for a seed, excludes classes on request', () => {
  const d = toy(100, 4);
  const a = kShot(d, 3, 1);
  expect(classCounts(a)).toEqual([3, 3, 3, 3]);
  expect(Array.from(kShot(d, 3, 1).images)).toEqual(Array.from(a.images));
  expect(classCounts(kShot(d, 5, 1, [2]))).toEqual([5, 5, 0, 5]);
  const [x, y] = splitOff(d, 30, 's');
  expect(numImages(x) + numImages(y)).toBe(100);
});

test('augmentation keeps shape and range and is reproducible from its seed', () => {
  const x = tf.randomUniform([4, 16, 16, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const a = augmentBatch(x, DEFAULT_AUGMENT, makeRng(5));
  const b = augmentBatch(x, DEFAULT_AUGMENT, makeRng(5));
  expect(a.shape).toEqual([4, 16, 16, 3]);
  expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
  expect(tf.min(a).dataSync()[0]).toBeGreaterThanOrEqual(0);
  expect(tf.max(a).dataSync()[0]).toBeLessThanOrEqual(1);
  expect(tf.max(tf.abs(tf.sub(a, x))).dataSync()[0]).toBeGreaterThan(0.01);
});

test("a batch's halves augmented apart (as two-core training does) give the whole batch's values exactly", () => {
  const x = tf.randomUniform([8, 16, 16, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
  const d = drawAugment(8, DEFAULT_AUGMENT, makeRng(6));
  // Both halves must hold a flip and an unflipped image, or the test would not cover the flip's mask.
  for (const half of [d.flips.slice(0, 4), d.flips.slice(4)]) expect(new Set(half).size).toBe(2);
  const whole = applyAugment(x, d);
  const halves = tf.concat([applyAugment(tf.slice(x, [0], [4]), sliceDraw(d, 0, 4)), applyAugment(tf.slice(x, [4], [4]), sliceDraw(d, 4, 8))]);
  expect(Array.from(halves.dataSync())).toEqual(Array.from(whole.dataSync()));
  // The draws come from the rng as augmentBatch's do.
  expect(Array.from(whole.dataSync())).toEqual(Array.from(augmentBatch(x, DEFAULT_AUGMENT, makeRng(6)).dataSync()));
  expect(() => applyAugment(x, sliceDraw(d, 0, 4))).toThrow(/applyAugment: 4 draws for 8 images/);
});
