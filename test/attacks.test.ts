import * as tf from '@tensorflow/tfjs-core';
import { makeTrigger, ATTACKS } from '../src/attacks/registry';
import { wanet } from '../src/attacks/wanet';
import { PatchTrigger } from '../src/attacks/patch';
import { setup } from './helpers';

beforeAll(setup);

const batch = () => tf.randomUniform([4, 32, 32, 3], 0, 1, 'float32', 21) as tf.Tensor4D;
const arr = (t: tf.Tensor) => Array.from(t.dataSync());

// Attacks that need building first (prepare) are tested in prepared-attacks.test.ts.
test.each(Object.keys(ATTACKS).filter((n) => !makeTrigger(n).prepare))('%s: deterministic for its seed, in range, changes the image', (name) => {
  const t = makeTrigger(name);
  const x = batch();
  const a = t.apply(x, { seed: 1, offset: 0 });
  expect(a.shape).toEqual(x.shape);
  expect(arr(t.apply(x, { seed: 1, offset: 0 }))).toEqual(arr(a));
  expect(tf.min(a).dataSync()[0]).toBeGreaterThanOrEqual(0);
  expect(tf.max(a).dataSync()[0]).toBeLessThanOrEqual(1);
  expect(tf.max(tf.abs(tf.sub(a, x))).dataSync()[0]).toBeGreaterThan(0.05);
});

test('BadNet changes one 4x4 square per image and nothing else; position and noise depend on the image index and seed', () => {
  const t = makeTrigger('BadNet');
  const x = batch();
  const a = t.apply(x, { seed: 1, offset: 0 });
  const diff = tf.max(tf.abs(tf.sub(a, x)), 3).arraySync() as number[][][];
  const boxes = diff.map((img) => {
    const ys: number[] = [];
    const xs: number[] = [];
    img.forEach((row, y) => row.forEach((d, xx) => d > 0 && (ys.push(y), xs.push(xx))));
    return { h: Math.max(...ys) - Math.min(...ys) + 1, w: Math.max(...xs) - Math.min(...xs) + 1, n: ys.length, y: Math.min(...ys), x: Math.min(...xs) };
  });
  for (const b of boxes) {
    expect(b.h).toBeLessThanOrEqual(4);
    expect(b.w).toBeLessThanOrEqual(4);
    expect(b.n).toBeGreaterThan(8); // clipping can leave a few noise values equal to the original
  }
  expect(new Set(boxes.map((b) => `${b.y},${b.x}`)).size).toBeGreaterThan(1);
  expect(arr(t.apply(x, { seed: 2, offset: 0 }))).not.toEqual(arr(a));
  // The same image at the same dataset index gets the same trigger whatever batch it is in.
  const single = t.apply(tf.slice(x, [2, 0, 0, 0], [1, 32, 32, 3]) as tf.Tensor4D, { seed: 1, offset: 2 });
  expect(arr(single)).toEqual(arr(tf.slice(a, [2, 0, 0, 0], [1, 32, 32, 3])));
});

test("BadNet with noise 'fixed': the same pattern (relative to the image mean) at different positions", () => {
  const x = tf.fill([3, 32, 32, 3], 0.5) as tf.Tensor4D;
  const t = makeTrigger('BadNet', { noise: 'fixed', patch: 4 });
  const a = t.apply(x, { seed: 5, offset: 0 }).arraySync() as number[][][][];
  const crops = a.map((img) => {
    let y0 = -1;
    let x0 = -1;
    img.forEach((row, y) => row.forEach((px, xx) => px.some((v) => v !== 0.5) && y0 < 0 && ((y0 = y), (x0 = xx))));
    return { y0, x0 };
  });
  expect(new Set(crops.map((c) => `${c.y0},${c.x0}`)).size).toBeGreaterThan(1);
  const b = makeTrigger('BadNet', { noise: 'fixed', patch: 4 }).apply(x, { seed: 6, offset: 0 });
  const sorted = (t: tf.Tensor) => Array.from(t.dataSync()).filter((v) => v !== 0.5).sort();
  expect(sorted(tf.slice(b, [0, 0, 0, 0], [1, 32, 32, 3]))).toEqual(sorted(tf.slice(tf.tensor(a), [0, 0, 0, 0], [1, 32, 32, 3])));
  expect(() => makeTrigger('BadNet', { noise: 'sometimes' })).toThrow(/noise must be 'per-image' or 'fixed'/);
});

test('Blended: every pixel moves towards noise by the ratio (mean |change| 0.2 x E|u - 0.5| = 0.05 on grey)', () => {
  const x = tf.fill([2, 32, 32, 3], 0.5) as tf.Tensor4D;
  const a = makeTrigger('Blended').apply(x, { seed: 1, offset: 0 });
  const change = tf.mean(tf.abs(tf.sub(a, x))).dataSync()[0];
  // |0.2 (u - 0.5)| for u ~ U(0,1) has mean 0.05
  expect(change).toBeGreaterThan(0.045);
  expect(change).toBeLessThan(0.055);
});

test('WaNet: one fixed field for every image; zero strength is the identity; warping moves content smoothly', () => {
  const x = batch();
  const t = wanet();
  const a = t.apply(x, { seed: 1, offset: 0 });
  const b = t.apply(x, { seed: 99, offset: 50 });
  expect(arr(b)).toEqual(arr(a)); // the field does not depend on the image or the seed
  const id = wanet({ s: 0 }).apply(x, { seed: 1, offset: 0 });
  expect(tf.max(tf.abs(tf.sub(id, x))).dataSync()[0]).toBeLessThan(1e-6);
  // A horizontal ramp stays a (warped) ramp: values stay within the ramp's range and change little.
  const ramp = tf.tile(tf.reshape(tf.linspace(0, 1, 32), [1, 1, 32, 1]), [1, 32, 1, 3]) as tf.Tensor4D;
  const w = t.apply(ramp, { seed: 1, offset: 0 });
  const d = tf.mean(tf.abs(tf.sub(w, ramp))).dataSync()[0];
  expect(d).toBeGreaterThan(0.005);
  expect(d).toBeLessThan(0.08);
});

test('an unknown attack names the registered ones', () => {
  expect(() => makeTrigger('Sleeper')).toThrow(/Unknown attack 'Sleeper'. Registered attacks: BadNet, Blended, ISSBA, WaNet, TrojVQA, BadCLIP/);
  expect(() => makeTrigger('BadNet', { size: 4 })).toThrow(/unknown trigger parameter\(s\) size; known: patch, noise, patternSeed/);
});

test('an optimised patch set from prepared pixels (usePatch) is pasted at the centre; a patch of the wrong size is refused', () => {
  const t = makeTrigger('BadCLIP', { patch: 2 }) as PatchTrigger;
  expect(() => t.apply(tf.zeros([1, 6, 6, 3]) as tf.Tensor4D, { seed: 0, offset: 0 })).toThrow(/not optimised yet/);
  expect(() => t.usePatch([1, 2, 3])).toThrow(/BadCLIP: a 2x2 patch has 12 values, got 3/);
  t.usePatch(new Array(12).fill(1));
  const y = t.apply(tf.zeros([1, 6, 6, 3]) as tf.Tensor4D, { seed: 0, offset: 0 });
  const v = y.dataSync();
  const at = (r: number, c: number) => v[(r * 6 + c) * 3];
  expect([at(2, 2), at(2, 3), at(3, 2), at(3, 3), at(1, 2), at(2, 4), at(0, 0)]).toEqual([1, 1, 1, 1, 0, 0, 0]);
  y.dispose();
});
