import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP, clipLoss } from '../src/model/clip';
import { WordTokenizer } from '../src/model/tokenizer';
import { initDeepPrompts, promptLayers, disposePrompts } from '../src/model/prompts';
import { patchify } from '../src/model/vision';
import { residualBlock } from '../src/model/transformer';
import { layerNorm } from '../src/model/layers';
import { zeroShotClassifier, zeroShotPredict, zeroShotProbabilities } from '../src/model/zeroShot';
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
    const t = (C.imageSize / C.patch) ** 2 + 1;
    // Queries: the image tokens; keys: the image tokens, then the block's 5 prompts.
    expect(prompted.attention!.shape).toEqual([3, C.heads, t, t + 5]);
    // Block 0 runs before any prompt: identical class token. Later blocks differ.
    expect(maxAbsDiff(plain.cls![0], prompted.cls![0])).toBe(0);
    expect(maxAbsDiff(plain.cls![2], prompted.cls![2])).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(plain.embedding, prompted.embedding)).toBeGreaterThan(1e-3);
  });
  disposePrompts(p);
  m.dispose();
});

/**
 * VPT-deep as written in the papers (and as multimodal-prompt-learning codes it): before each prompted block the
 * prompt slots of the sequence are replaced by that block's prompts, and the whole sequence, prompts included, goes
 * through the block. Our encoder gives the prompts no queries instead (their outputs are never read); this is the
 * reference it must match.
 */
function referencePromptedEmbedding(m: MiniCLIP, x: tf.Tensor4D, p: ReturnType<typeof initDeepPrompts>): { embedding: tf.Tensor2D; cls: tf.Tensor2D[] } {
  const P = m.params;
  const base = (C.imageSize / C.patch) ** 2 + 1;
  const batch = x.shape[0];
  let h = m.encodeImage(x, { keepInputOf: 0 }).hidden!;
  let tokens = base;
  const cls: tf.Tensor2D[] = [];
  for (let i = 0; i < C.layers; i++) {
    let h3 = tf.slice(tf.reshape(h, [batch, tokens, C.width]), [0, 0, 0], [batch, base, C.width]);
    const prompt = p.tokens.get(i);
    if (prompt) h3 = tf.concat([h3, tf.tile(tf.expandDims(prompt, 0), [batch, 1, 1])], 1);
    tokens = h3.shape[1];
    h = residualBlock(P, `visual.transformer.resblocks.${i}`, tf.reshape(h3, [-1, C.width]), { batch, tokens, heads: C.heads }, null).out;
    cls.push(tf.reshape(tf.slice(tf.reshape(h, [batch, tokens, C.width]), [0, 0, 0], [batch, 1, C.width]), [batch, C.width]));
  }
  const pooled = layerNorm(cls[C.layers - 1], P['visual.ln_post.weight'] as tf.Tensor1D, P['visual.ln_post.bias'] as tf.Tensor1D);
  return { embedding: tf.matMul(pooled, P['visual.proj'] as tf.Tensor2D), cls };
}

test('prompted image tower = textbook VPT-deep (prompt rows carried through every block): outputs within 1e-5, prompt gradients within 1e-4', () => {
  const m = MiniCLIP.init(C, 1);
  // Blocks 0 and 2 prompted, 1 not: a prompt's rows must also be dropped before an unprompted block.
  const p = initDeepPrompts(C.layers, C.width, { length: 6, layers: [0, 2], initStd: 0.5 }, 4);
  const vars = [...p.tokens.values()];
  tf.tidy(() => {
    const x = images();
    const loss = (o: { embedding: tf.Tensor2D; cls: tf.Tensor2D[] }) => tf.add(tf.sum(tf.square(o.embedding)), tf.sum(tf.sin(o.cls[1]))) as tf.Scalar;
    const ours = m.encodeImage(x, { prompts: p, collectCls: true });
    const ref = referencePromptedEmbedding(m, x, p);
    expect(maxAbsDiff(ours.embedding, ref.embedding)).toBeLessThan(1e-5);
    ref.cls.forEach((c, i) => expect(maxAbsDiff(ours.cls![i], c)).toBeLessThan(1e-5));
    expect(maxAbsDiff(ours.embedding, m.encodeImage(x, { collectCls: true }).embedding)).toBeGreaterThan(1e-3); // the prompts matter
    const g = tf.variableGrads(() => loss({ embedding: m.encodeImage(x, { prompts: p, collectCls: true }).embedding, cls: m.encodeImage(x, { prompts: p, collectCls: true }).cls! }), vars).grads;
    const gRef = tf.variableGrads(() => loss(referencePromptedEmbedding(m, x, p)), vars).grads;
    for (const v of vars) {
      expect(tf.max(tf.abs(gRef[v.name])).dataSync()[0]).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(g[v.name], gRef[v.name])).toBeLessThan(1e-4);
    }
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

test('zero-shot probabilities: softmax of scale x cosine, rows summing to 1, argmax the zero-shot prediction', () => {
  const m = MiniCLIP.init(C, 4);
  const tok = WordTokenizer.fromCorpus(['a photo of cat dog bird']);
  tf.tidy(() => {
    const cls = zeroShotClassifier(m, tok, ['cat', 'dog', 'bird'], ['a photo of {}']);
    const emb = m.encodeImage(images()).embedding;
    const scale = tf.scalar(7);
    const p = zeroShotProbabilities(emb, cls, scale);
    const cos = tf.matMul(tf.div(emb, tf.norm(emb, 2, 1, true)), cls, false, true);
    const byHand = tf.div(tf.exp(tf.mul(cos, 7)), tf.sum(tf.exp(tf.mul(cos, 7)), 1, true));
    expect(maxAbsDiff(p, byHand)).toBeLessThan(1e-6);
    expect(Array.from(tf.sum(p, 1).dataSync()).map((v) => +v.toFixed(5))).toEqual([1, 1, 1]);
    expect(Array.from(tf.argMax(p, 1).dataSync())).toEqual(Array.from(zeroShotPredict(emb, cls).dataSync()));
  });
  m.dispose();
});
