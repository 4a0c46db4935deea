import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP, clipLoss } from '../src/model/clip';
import { WordTokenizer } from '../src/model/tokenizer';
import { initDeepPrompts, promptLayers, disposePrompts } from '../src/model/prompts';
import { patchify } from '../src/model/vision';
import { maxAbsDiff, setup, TEST_CONFIG as C } from './helpers';

beforeAll(setup);

const images = () => tf.randomUniform([3, C.imageSize, C.imageSize, 3], 0, 1, 'float32', 11) as tf.Tensor4D;

test('image tower: embedding, one class token per block, last-layer attention rows sum to 1', () => {
  const m = MiniCLIP.init(C, 1);
  tf.tidy(() => {
    const out = m.encodeImage(images(), { collectCls: true, collectAttention: true });
    expect(out.embedding.shape).toEqual([3, C.embedDim]);
    expect(out.cls).toHaveLength(C.layers);
    out.cls!.forEach((c) => expect(c.shape).toEqual([3, C.width]));
    const t = (C.imageSize / C.patch) ** 2 + 1;
    expect(out.attention!.shape).toEqual([3, C.heads, t, t]);
    expect(maxAbsDiff(tf.sum(out.attention!, 3), tf.onesLike(tf.sum(out.attention!, 3)))).toBeLessThan(1e-5);
  });
  m.dispose();
});

test('patchify flattens each patch in (row, col, channel) order, like conv1 with HWIO weights', () => {
  const x = tf.range(0, 2 * 8 * 8 * 3).reshape([2, 8, 8, 3]) as tf.Tensor4D;
  const p = patchify(x, 4).arraySync() as number[][];
  expect(p).toHaveLength(2 * 4);
  // Patch 1 of image 0 = rows 0-3, cols 4-7. Its first pixel is (0, 4), channel 0 = (0*8 + 4)*3.
  expect(p[1][0]).toBe(12);
  // Second row inside the patch starts at pixel (1, 4).
  expect(p[1][4 * 3]).toBe((1 * 8 + 4) * 3);
  // Patch 2 of image 1 = rows 4-7, cols 0-3: pixel (4, 0) of image 1.
  expect(p[4 + 2][0]).toBe(8 * 8 * 3 + 4 * 8 * 3);
});

test('deep prompts: blocks from D on are prompted, change the output, and the attention covers the prompt tokens', () => {
  expect(promptLayers(6, { length: 2, depth: 2 })).toEqual([2, 3, 4, 5]);
  expect(promptLayers(6, { length: 2, layers: [0, 1] })).toEqual([0, 1]);
  expect(() => promptLayers(6, { length: 2, depth: 6 })).toThrow(/depth/);
  const m = MiniCLIP.init(C, 1);
  const p = initDeepPrompts(C.layers, C.width, { length: 5, depth: 1, initStd: 0.5 }, 3);
  expect([...p.tokens.keys()]).toEqual([1, 2]);
  tf.tidy(() => {
    const x = images();
    const plain = m.encodeImage(x, { collectCls: true });
    const prompted = m.encodeImage(x, { prompts: p, collectCls: true, collectAttention: true });
    const t = (C.imageSize / C.patch) ** 2 + 1 + 5;
    expect(prompted.attention!.shape).toEqual([3, C.heads, t, t]);
    // Block 0 runs before any prompt: identical class token. Later blocks differ.
    expect(maxAbsDiff(plain.cls![0], prompted.cls![0])).toBe(0);
    expect(maxAbsDiff(plain.cls![2], prompted.cls![2])).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(plain.embedding, prompted.embedding)).toBeGreaterThan(1e-3);
  });
  disposePrompts(p);
  m.dispose();
});

test('a prompted pass resumed from an unprompted pass at the first prompted block gives the same bits and prompt gradients', () => {
  const m = MiniCLIP.init(C, 1);
  const p = initDeepPrompts(C.layers, C.width, { length: 4, depth: 1, initStd: 0.5 }, 3);
  const vars = [...p.tokens.values()];
  tf.tidy(() => {
    const x = images();
    const hidden = m.encodeImage(x, { collectCls: true, keepInputOf: 1 }).hidden!;
    expect(hidden.shape).toEqual([3 * ((C.imageSize / C.patch) ** 2 + 1), C.width]);
    const run = (resume: boolean) => {
      const f = () => {
        const o = m.encodeImage(x, { prompts: p, collectCls: true, resume: resume ? { block: 1, x: hidden } : undefined });
        return tf.add(tf.sum(tf.square(o.embedding)), tf.sum(o.cls![2])) as tf.Scalar;
      };
      const { value, grads } = tf.variableGrads(f, vars);
      const o = m.encodeImage(x, { prompts: p, collectCls: true, resume: resume ? { block: 1, x: hidden } : undefined });
      return { value: value.dataSync()[0], grads: vars.map((v) => Array.from(grads[v.name].dataSync())), emb: Array.from(o.embedding.dataSync()), cls: [1, 2].map((i) => Array.from(o.cls![i].dataSync())), has0: 0 in o.cls! };
    };
    const full = run(false);
    const resumed = run(true);
    expect(full.has0).toBe(true);
    expect(resumed.has0).toBe(false);
    expect({ ...resumed, has0: true }).toEqual(full);
    // Resuming past a prompted block would skip its prompt: refused.
    expect(() => m.encodeImage(x, { prompts: p, resume: { block: 2, x: hidden } })).toThrow(/block 1 is prompted/);
  });
  disposePrompts(p);
  m.dispose();
});

test('text tower is causal: tokens after the end-of-text token do not change the embedding', () => {
  const m = MiniCLIP.init(C, 2);
  const tok = WordTokenizer.fromCorpus(['a photo of a dog', 'a cat']);
  const a = tok.encodeBatch(['a photo of a dog'], C.contextLength);
  const b = { ...a, ids: a.ids.slice() };
  b.ids[C.contextLength - 1] = 5; // garbage after EOT, in the padding
  tf.tidy(() => expect(maxAbsDiff(m.encodeText(a), m.encodeText(b))).toBeLessThan(1e-6));
  m.dispose();
});

test('same seed, same model and outputs; another seed, another model', () => {
  const [a, b, c] = [MiniCLIP.init(C, 5), MiniCLIP.init(C, 5), MiniCLIP.init(C, 6)];
  tf.tidy(() => {
    const x = images();
    expect(maxAbsDiff(a.encodeImage(x).embedding, b.encodeImage(x).embedding)).toBe(0);
    expect(maxAbsDiff(a.encodeImage(x).embedding, c.encodeImage(x).embedding)).toBeGreaterThan(1e-3);
  });
  [a, b, c].forEach((m) => m.dispose());
});

test('contrastive loss is log(B) for uninformative logits and near 0 for a perfect match', () => {
  tf.tidy(() => {
    expect(clipLoss(tf.zeros([8, 8]) as tf.Tensor2D).dataSync()[0]).toBeCloseTo(Math.log(8), 5);
    expect(clipLoss(tf.mul(tf.eye(8), 50) as tf.Tensor2D).dataSync()[0]).toBeLessThan(1e-6);
  });
});

test('config errors name the field', () => {
  expect(() => MiniCLIP.init({ ...C, patch: 5 }, 0)).toThrow(/'patch'.*divide imageSize/);
  expect(() => MiniCLIP.init({ ...C, heads: 3 }, 0)).toThrow(/'heads'/);
});
