import * as tf from '@tensorflow/tfjs-core';
import { makeTrigger, ATTACKS } from '../src/attacks/registry';
import { wanet } from '../src/attacks/wanet';
import { setup } from './helpers';

beforeAll(setup);

const batch = () => tf.randomUniform([4, 32, 32, 3], 0, 1, 'float32', 21) as tf.Tensor4D;
const arr = (t: tf.Tensor) => Array.from(t.dataSync());

test.each(Object.keys(ATTACKS))('%s: deterministic for its seed, in range, changes the image', (name) => {
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
  expect(() => makeTrigger('Sleeper')).toThrow(/Unknown attack 'Sleeper'. Registered attacks: BadNet, Blended, WaNet/);
});
