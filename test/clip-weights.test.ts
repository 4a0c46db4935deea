/**
 * Parity with PyTorch: a small random CLIP of OpenAI's exact architecture, its outputs computed by
 * scripts/clip-parity-fixture.py (PyTorch, OpenAI's clip/model.py structure and simple_tokenizer algorithm) and
 * committed in test/fixtures/clip-parity/. Our loader, tokenizer and preprocessing must reproduce them.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { loadClipWeights } from '../src/checkpoint/clipWeights';
import { decodeSafetensors, encodeSafetensors, readSafetensors } from '../src/checkpoint/safetensors';
import { ClipTokenizer } from '../src/model/clipTokenizer';
import { MiniCLIP } from '../src/model/clip';
import { decodeImage } from '../src/data/imageFolder';
import { getDefense } from '../src/defenses/registry';
import { ImageDataset } from '../src/data/dataset';
import { benchClipScale } from '../src/experiments/bench';
import { TEST_CONFIG, setup } from './helpers';

beforeAll(setup);

const DIR = path.join(__dirname, 'fixtures', 'clip-parity');
const ref = JSON.parse(fs.readFileSync(path.join(DIR, 'reference.json'), 'utf8'));
const TOL = 1e-4;

function maxDiff(a: number[][], b: number[][]): number {
  let m = 0;
  a.forEach((row, i) => row.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i][j])))));
  return m;
}

function outputs(model: MiniCLIP, tokenizer: ClipTokenizer) {
  return tf.tidy(() => {
    const [n, s] = ref.imageShape;
    const images = tf.tensor4d(Float32Array.from(ref.images255 as number[], (v) => v / 255), [n, s, s, 3]);
    const img = model.encodeImage(images).embedding;
    const txt = model.encodeText(tokenizer.encodeBatch(ref.texts, model.config.contextLength));
    return { img: img.arraySync(), txt: txt.arraySync(), logits: model.logits(img, txt).arraySync() };
  });
}

function writeTemp(name: string, bytes: Uint8Array): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-clip-'));
  const f = path.join(dir, name);
  fs.writeFileSync(f, bytes);
  return f;
}

/** Re-encode the OpenAI fixture with some tensors renamed, dropped or reshaped. */
function variant(edit: (t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void): string {
  const st = readSafetensors(path.join(DIR, 'openai.safetensors'));
  const t = Object.fromEntries(Object.entries(st.tensors).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data as Float32Array }]));
  edit(t);
  return writeTemp('variant.safetensors', encodeSafetensors(t));
}

test('CLIP BPE tokenizer: tokenizer.json, vocab.json + merges.txt and OpenAI\'s merges file all give simple_tokenizer\'s ids', () => {
  for (const f of ['tokenizer.json', 'vocab.json', 'bpe_simple_vocab.txt.gz']) {
    const tok = ClipTokenizer.load(path.join(DIR, f));
    expect(tok.size).toBe(ref.config.vocab_size);
    const b = tok.encodeBatch(ref.texts, 77);
    ref.texts.forEach((_: string, i: number) => expect([f, Array.from(b.ids.slice(i * 77, i * 77 + 24))]).toEqual([f, ref.tokens[i]]));
    expect(Array.from(b.eot)).toEqual(ref.eot);
  }
  const tok = ClipTokenizer.load(DIR); // a folder: tokenizer.json is found
  expect(tok.decode(tok.encodeBatch(['a photo of a banana.'], 77).ids)).toBe('a photo of a banana.');
  // Truncation keeps the end-of-text token last, as clip.tokenize(truncate=True).
  const short = tok.encodeBatch([ref.texts[2]], 6);
  expect(Array.from(short.ids)).toEqual([tok.sot, ...ref.tokens[2].slice(1, 5), tok.eot]);
  expect(short.eot[0]).toBe(5);
  expect(() => ClipTokenizer.load(path.join(DIR, 'config.json'))).toThrow(/model.type.*BPE/);
  expect(() => ClipTokenizer.load(path.join(DIR, 'nope.json'))).toThrow(/does not exist/);
});

test.each(['openai', 'hf'])('the %s-named safetensors reproduce PyTorch\'s embeddings and logits within 1e-4', (naming) => {
  // The OpenAI file is loaded with the head counts given; the Hugging Face one reads them from config.json beside it.
  const loaded = loadClipWeights(path.join(DIR, `${naming}.safetensors`), naming === 'openai' ? { heads: 2, textHeads: 2 } : {});
  expect(loaded.naming).toBe(naming);
  const c = loaded.model.config;
  expect([c.imageSize, c.patch, c.width, c.layers, c.heads, c.embedDim]).toEqual([64, 16, 64, 2, 2, 24]);
  expect([c.textWidth, c.textLayers, c.textHeads, c.contextLength, c.vocabSize]).toEqual([64, 2, 2, 77, ref.config.vocab_size]);
  expect(loaded.unused).toEqual(naming === 'hf' ? ['text_model.embeddings.position_ids', 'vision_model.embeddings.position_ids'] : []);
  // Every MiniCLIP parameter comes from the file.
  const fresh = MiniCLIP.init(c, 0);
  expect(Object.keys(loaded.model.params).sort()).toEqual(Object.keys(fresh.params).sort());
  fresh.dispose();
  const out = outputs(loaded.model, ClipTokenizer.load(DIR));
  expect(maxDiff(out.img, ref.imageEmbeddings)).toBeLessThan(TOL);
  expect(maxDiff(out.txt, ref.textEmbeddings)).toBeLessThan(TOL);
  expect(maxDiff(out.logits, ref.logitsPerImage)).toBeLessThan(TOL);
  expect(loaded.model.logitScale().dataSync()[0]).toBeCloseTo(ref.logitScale, 4);
  loaded.model.dispose();
});

test('training wrappers are handled: state_dict. and module. prefixes', () => {
  const f = variant((t) => {
    for (const k of Object.keys(t)) {
      t[`state_dict.module.${k}`] = t[k];
      delete t[k];
    }
  });
  const loaded = loadClipWeights(f, { heads: 2, textHeads: 2 });
  expect(maxDiff(outputs(loaded.model, ClipTokenizer.load(DIR)).img, ref.imageEmbeddings)).toBeLessThan(TOL);
  loaded.model.dispose();
});

test('bad weight files are clear errors: missing key, shape mismatch, truncated file, unknown naming, torch pickle', () => {
  const missing = variant((t) => delete t['visual.transformer.resblocks.1.mlp.c_fc.bias']);
  expect(() => loadClipWeights(missing, { heads: 2, textHeads: 2 })).toThrow(/missing 'visual\.transformer\.resblocks\.1\.mlp\.c_fc\.bias'/);
  const reshaped = variant((t) => {
    const w = t['transformer.resblocks.0.attn.out_proj.weight'];
    t['transformer.resblocks.0.attn.out_proj.weight'] = { ...w, shape: [32, 128] };
  });
  expect(() => loadClipWeights(reshaped, { heads: 2, textHeads: 2 })).toThrow(/'transformer\.resblocks\.0\.attn\.out_proj\.weight' is \[32,128\] but the model needs \[64,64\]/);
  const bytes = fs.readFileSync(path.join(DIR, 'openai.safetensors'));
  const truncated = writeTemp('cut.safetensors', bytes.subarray(0, bytes.length - 1000));
  expect(() => loadClipWeights(truncated)).toThrow(/cut\.safetensors is invalid: .*past the end of the file.*truncated/);
  const unknown = writeTemp('other.safetensors', encodeSafetensors({ 'encoder.layer.0.weight': { dtype: 'F32', shape: [2], data: new Float32Array(2) } }));
  expect(() => loadClipWeights(unknown)).toThrow(/unknown weight naming \(first keys: encoder\.layer\.0\.weight\)/);
  expect(() => loadClipWeights('/some/where/clip.pt')).toThrow(/PyTorch pickle: convert it once with 'python3 scripts\/pt-to-safetensors\.py/);
  expect(decodeSafetensors(bytes).metadata.note).toMatch(/clip-parity-fixture/);
});

test('CLIP preprocessing (resize the short side, bicubic; centre crop) matches PIL to half a grey level on average', async () => {
  const [s] = ref.preprocessedShape;
  const ours = await decodeImage(path.join(DIR, 'photo.png'), s);
  const theirs = ref.preprocessed255 as number[];
  let sum = 0;
  let max = 0;
  for (let i = 0; i < theirs.length; i++) {
    const d = Math.abs(ours[i] * 255 - theirs[i]);
    sum += d;
    max = Math.max(max, d);
  }
  // libvips and PIL bicubic differ by a fraction of a grey level (0.15 measured); a crop one pixel off costs 8.
  expect(sum / theirs.length).toBeLessThan(0.5);
  expect(max).toBeLessThan(8);
  expect(ours.length).toBe(s * s * 3);
});

test('a loaded CLIP takes deep prompts: one RVPT epoch trains on it, with no tensor left behind', async () => {
  const loaded = loadClipWeights(path.join(DIR, 'hf.safetensors'));
  const [n, s] = ref.imageShape;
  const shots: ImageDataset = {
    name: 'parity-shots',
    size: s,
    images: Float32Array.from({ length: 4 * s * s * 3 }, (_, i) => (ref.images255[i % (n * s * s * 3)] as number) / 255),
    labels: Int32Array.from([0, 1, 0, 1]),
    classNames: ['banana', 'accordion'],
  };
  const before = tf.memory().numTensors;
  const d = await getDefense('RVPT').run(
    { model: loaded.model, tokenizer: ClipTokenizer.load(DIR), shots, cleanCorpus: async () => { throw new Error('unused'); }, seed: 0, quiet: true },
    { epochs: 1, batch: 4, promptLength: 4, depth: 1, augment: null },
  );
  expect(d.history.loss.length).toBeGreaterThan(0);
  expect(d.history.loss.every(Number.isFinite)).toBe(true);
  expect(d.cost.tunableParams).toBe(4 * 64); // b = 4 tokens of width 64 at the one prompted block
  const clf = d.classifier(['banana', 'accordion'])!;
  const pred = tf.tidy(() => clf.predict(tf.tensor4d(shots.images, [4, s, s, 3])).arraySync());
  expect(pred).toHaveLength(4);
  clf.dispose();
  d.dispose();
  expect(tf.memory().numTensors).toBe(before);
  loaded.model.dispose();
});

test('the CLIP-scale benchmark (forward and RVPT step images/s) runs and leaks nothing', () => {
  const r = benchClipScale(TEST_CONFIG, 2, 1, 'wasm', { length: 2, depth: 1 });
  expect(r.forward.imagesPerSecond).toBeGreaterThan(0);
  expect(r.rvptStep.imagesPerSecond).toBeGreaterThan(0);
  expect(r.params).toBeGreaterThan(0);
  expect(r.tensorsLeaked).toBe(0);
});
