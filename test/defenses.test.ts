import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { DEFENSES, getDefense } from '../src/defenses/registry';
import { DefenseContext } from '../src/defenses/defense';
import { RVPT_DEFAULTS, featureRepelling, promptTuning, repelledLayers, repelledTokens, startPromptTuning } from '../src/defenses/rvpt';
import { layerNorm } from '../src/model/layers';
import { edaAugment } from '../src/defenses/cleanclip';
import { evaluateDefended } from '../src/metrics/defended';
import { testEmbeddings } from '../src/metrics/features';
import { TEST_TRIGGER_SEED } from '../src/metrics/backdoor';
import { imageBatch } from '../src/data/batches';
import { makeTrigger } from '../src/attacks/registry';
import { MiniCLIP } from '../src/model/clip';
import { WordTokenizer } from '../src/model/tokenizer';
import { vocabularyTexts } from '../src/data/captions';
import { CaptionCorpus } from '../src/data/corpus';
import { ImageDataset } from '../src/data/dataset';
import { makeRng } from '../src/util/rng';
import { setup, TEST_CONFIG, maxAbsDiff } from './helpers';

beforeAll(setup);

/** Four classes that differ in colour, so a few steps can learn them. */
function toy(n: number): ImageDataset {
  const rng = makeRng('defense-toy');
  const colours = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]];
  const images = new Float32Array(n * 16 * 16 * 3);
  for (let i = 0; i < n; i++) for (let p = 0; p < 256; p++) for (let c = 0; c < 3; c++) images[(i * 256 + p) * 3 + c] = 0.6 * colours[i % 4][c] + 0.4 * rng();
  return { name: 'toy', size: 16, images, labels: Int32Array.from({ length: n }, (_, i) => i % 4), classNames: ['bag', 'coat', 'dress', 'shirt'] };
}

const C = { ...TEST_CONFIG, vocabSize: 256 };
const shots = toy(32);
let model: MiniCLIP;
let tokenizer: WordTokenizer;
const ctx = (): DefenseContext => ({
  model,
  tokenizer,
  shots,
  cleanCorpus: async () => new CaptionCorpus([{ data: toy(64), repeat: 1 }]),
  seed: 0,
  quiet: true,
});

beforeAll(() => {
  model = MiniCLIP.init(C, 5);
  tokenizer = WordTokenizer.fromCorpus(vocabularyTexts([shots]));
});
afterAll(() => model.dispose());

test('the registry has the paper\'s methods and names them on a typo', () => {
  expect(Object.keys(DEFENSES)).toEqual(['No defense', 'CleanCLIP', 'Linear Probe', 'VPT', 'RVPT']);
  expect(() => getDefense('Fine-pruning')).toThrow(/Unknown defense 'Fine-pruning'. Registered defenses: No defense, CleanCLIP/);
});

test('feature repelling: cosine 1 for identical class tokens, -1 for opposite ones, averaged over layers', () => {
  const a = tf.tensor2d([[1, 2, 3], [0, 1, 0]]);
  expect(Array.from(featureRepelling([a, a], [a, a]).dataSync()).map((v) => +v.toFixed(5))).toEqual([1, 1]);
  expect(Array.from(featureRepelling([a, tf.neg(a) as tf.Tensor2D], [a, a]).dataSync()).map((v) => +v.toFixed(5))).toEqual([0, 0]);
});

test('RVPT tunes only the prompts, repels the class tokens (FR falls) and leaks no tensors; VPT repels less', async () => {
  const n0 = tf.memory().numTensors;
  const before = Object.fromEntries(Object.entries(model.params).map(([k, v]) => [k, v.clone()]));
  const cfg = { epochs: 12, batch: 8, lr: 1, warmupEpochs: 0, promptLength: 4, depth: 1, initStd: 0.5 };
  const r = await getDefense('RVPT').run(ctx(), cfg);
  for (const [k, v] of Object.entries(model.params)) expect(maxAbsDiff(v, before[k])).toBe(0);
  const fr = r.history.fr;
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  expect(mean(fr.slice(-4))).toBeLessThan(mean(fr.slice(0, 4)) - 0.015); // measured 0.995 -> 0.966 on this random model
  expect(r.cost.tunableParams).toBe(4 * C.width * (C.layers - 1));
  expect(r.cost.samples).toBe(12 * 4 * 8);
  const vpt = await getDefense('VPT').run(ctx(), cfg);
  expect(mean(vpt.history.fr.slice(-4))).toBeGreaterThan(mean(fr.slice(-4)));
  const m = evaluateDefended(r, toy(20), makeTrigger('Blended'), 0)!;
  expect(m.n).toBe(20);
  r.dispose();
  vpt.dispose();
  tf.dispose(Object.values(before));
  expect(tf.memory().numTensors).toBe(n0);
});

test("FR's last class token: the residual stream by default, after ln_post with frToken 'ln_post'; a bad value is refused", async () => {
  const last = C.layers - 1;
  const cls = Array.from({ length: C.layers }, (_, i) => tf.add(tf.randomNormal([3, C.width], 0, 1, 'float32', 10 + i), 2 * i) as tf.Tensor2D);
  const layers = [1, last];
  const residual = repelledTokens(model, cls, layers, 'residual');
  const post = repelledTokens(model, cls, layers, 'ln_post');
  expect(residual).toEqual([cls[1], cls[last]]);
  expect(post[0]).toBe(cls[1]);
  const want = layerNorm(cls[last], model.params['visual.ln_post.weight'] as tf.Tensor1D, model.params['visual.ln_post.bias'] as tf.Tensor1D);
  expect(maxAbsDiff(post[1], want)).toBe(0);
  // Not a no-op: the cosine to another token changes once the mean is taken out (the tokens are offset by 2 * i).
  const other = cls[0];
  const cos = (t: tf.Tensor2D) => featureRepelling([t], [other]).dataSync()[0];
  expect(Math.abs(cos(post[1]) - cos(residual[1]))).toBeGreaterThan(0.01);
  // Unprompted blocks are left out, as before: only `layers` count, in block order.
  expect(repelledTokens(model, cls, [last, 0], 'residual')).toEqual([cls[0], cls[last]]);
  tf.dispose([...cls, ...post.slice(1), want]);
  // Over a run: the same CE at the first step (the same prompts), another FR, both finite.
  const cfg = { epochs: 2, batch: 8, promptLength: 2, depth: 1 };
  const a = await getDefense('RVPT').run(ctx(), cfg);
  const b = await getDefense('RVPT').run(ctx(), { ...cfg, frToken: 'ln_post' });
  expect(b.history.ce[0]).toBe(a.history.ce[0]);
  expect(b.history.fr[0]).not.toBe(a.history.fr[0]);
  expect(b.history.loss.every(Number.isFinite)).toBe(true);
  a.dispose();
  b.dispose();
  await expect(getDefense('RVPT').run(ctx(), { ...cfg, frToken: 'proj' })).rejects.toThrow(/RVPT: frToken is "proj"; it must be one of 'residual', 'ln_post'/);
});

test("FR's blocks: every prompted one by default; frLayers picks some, from the first prompted block on; bad lists are refused", async () => {
  expect(repelledLayers('RVPT', 6, [2, 3, 4, 5], undefined)).toEqual([2, 3, 4, 5]);
  expect(repelledLayers('RVPT', 6, [2, 3, 4, 5], [5, 3, 5])).toEqual([3, 5]);
  expect(() => repelledLayers('RVPT', 6, [2, 3, 4, 5], [1])).toThrow(/RVPT: frLayers holds 1; each must be a block in 2\.\.5/);
  expect(() => repelledLayers('RVPT', 6, [2, 3, 4, 5], [6])).toThrow(/frLayers holds 6/);
  expect(() => repelledLayers('RVPT', 6, [2, 3, 4, 5], [])).toThrow(/give a non-empty list of blocks in 2\.\.5/);
  // Over a run: the same prompts and CE at the first step; FR at the last block alone is another number, and the
  // explicit list of every prompted block is the default to the bit.
  const cfg = { epochs: 2, batch: 8, promptLength: 2, depth: 1 };
  const all = await getDefense('RVPT').run(ctx(), cfg);
  const listed = await getDefense('RVPT').run(ctx(), { ...cfg, frLayers: Array.from({ length: C.layers - 1 }, (_, i) => i + 1) });
  const last = await getDefense('RVPT').run(ctx(), { ...cfg, frLayers: [C.layers - 1] });
  expect(listed.history).toEqual(all.history);
  expect(last.history.ce[0]).toBe(all.history.ce[0]);
  expect(last.history.fr[0]).not.toBe(all.history.fr[0]);
  expect(last.history.loss.every(Number.isFinite)).toBe(true);
  [all, listed, last].forEach((d) => d.dispose());
  await expect(getDefense('RVPT').run(ctx(), { ...cfg, frLayers: [0] })).rejects.toThrow(/frLayers holds 0; each must be a block in 1\.\./);
});

test('Linear Probe learns the shots, leaks no tensors; it has no text side, so a text trigger gets null (the paper\'s "-")', async () => {
  const n0 = tf.memory().numTensors;
  const r = await getDefense('Linear Probe').run(ctx(), { epochs: 60, lr: 0.5 });
  const m = evaluateDefended(r, shots, makeTrigger('Blended'), 0)!;
  expect(m.ca).toBeGreaterThan(50); // 4 classes: chance is 25%
  expect(r.classifier(shots.classNames, 'sudo ')).toBeNull();
  expect(r.cost.tunableParams).toBe(C.embedDim * 4 + 4);
  r.dispose();
  expect(tf.memory().numTensors).toBe(n0);
});

test('No defense and Linear Probe are evaluated from the frozen model\'s cached test embeddings: the same metrics; a truncated cache is said and recomputed', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-features-'));
  const file = path.join(dir, 'features.safetensors');
  const test = toy(40);
  const trigger = makeTrigger('Blended');
  const lp = await getDefense('Linear Probe').run(ctx(), { epochs: 20, lr: 0.5 });
  const none = await getDefense('No defense').run(ctx(), {});
  const rvpt = await getDefense('RVPT').run(ctx(), { epochs: 1, batch: 8, promptLength: 2, depth: 1 });
  let computed = 0;
  const frozen = { model, embeddings: () => {
    const logs: string[] = [];
    const e = testEmbeddings(model, test, trigger, file, (s) => logs.push(s));
    computed += logs.length;
    return e;
  } };
  const n0 = tf.memory().numTensors;
  for (const d of [lp, none]) {
    const fromImages = evaluateDefended(d, test, trigger, 0)!;
    expect(evaluateDefended(d, test, trigger, 0, frozen)).toEqual(fromImages);
  }
  expect(fs.existsSync(file)).toBe(true);
  // What is cached is the model's embedding of the images, clean and with the test-time trigger, bit for bit.
  const e = frozen.embeddings();
  tf.tidy(() => {
    const x = imageBatch(test, 0, 40);
    expect(Array.from(e.clean)).toEqual(Array.from(model.encodeImage(x).embedding.dataSync()));
    expect(Array.from(e.triggered)).toEqual(Array.from(model.encodeImage(trigger.apply(x, { seed: TEST_TRIGGER_SEED, offset: 0 })).embedding.dataSync()));
  });
  expect(tf.tidy(() => maxAbsDiff(tf.tensor(e.clean), tf.tensor(e.triggered)))).toBeGreaterThan(1e-3);
  // A prompted model's or a fine-tuned copy's embeddings are not the frozen model's: RVPT and CleanCLIP never use them.
  const refuse = { model, embeddings: (): never => { throw new Error('read the frozen embeddings'); } };
  expect(evaluateDefended(rvpt, test, trigger, 0, refuse)).not.toBeNull();
  const cleanclip = await getDefense('CleanCLIP').run(ctx(), { steps: 2, batch: 8 });
  expect(evaluateDefended(cleanclip, test, trigger, 0, refuse)).toEqual(evaluateDefended(cleanclip, test, trigger, 0));
  cleanclip.dispose();
  expect(tf.memory().numTensors).toBe(n0);
  const whole = fs.readFileSync(file);
  fs.writeFileSync(file, whole.subarray(0, whole.length - 100));
  const again = evaluateDefended(lp, test, trigger, 0, frozen);
  expect(computed).toBe(1); // the truncated file was reported once and rewritten
  expect(again).toEqual(evaluateDefended(lp, test, trigger, 0));
  expect(fs.readFileSync(file).equals(whole)).toBe(true);
  for (const d of [lp, none, rvpt]) d.dispose();
  fs.rmSync(dir, { recursive: true });
});

test('CleanCLIP fine-tunes a copy (the given model is untouched) with both losses finite', async () => {
  const before = model.params['visual.proj'].clone();
  const r = await getDefense('CleanCLIP').run(ctx(), { steps: 3, batch: 8 });
  expect(maxAbsDiff(model.params['visual.proj'], before)).toBe(0);
  expect(r.history.multimodal.every(Number.isFinite)).toBe(true);
  expect(r.history.unimodal.every(Number.isFinite)).toBe(true);
  expect(r.cost.tunableParams).toBe(r.cost.totalParams);
  r.dispose();
  before.dispose();
});

test('EDA text augmentation: deterministic for its rng, keeps the words it does not delete', () => {
  const s = 'a photo of a small red bag';
  const a = edaAugment(s, makeRng(3), 0.1);
  expect(edaAugment(s, makeRng(3), 0.1)).toBe(a);
  for (const w of a.split(' ')) expect(s.split(' ')).toContain(w);
  expect(edaAugment('bag', makeRng(1), 0.99)).toBe('bag');
});

test('a prompt-tuning run stepped by the caller (the browser lab) gives promptTuning\'s prompts and losses, and stops at its end', async () => {
  const cfg = { ...RVPT_DEFAULTS, epochs: 2, batch: 8, lr: 0.5, warmupEpochs: 0, promptLength: 2, depth: 1, augment: null };
  const whole = await promptTuning('RVPT', ctx(), cfg);
  const n0 = tf.memory().numTensors;
  const run = startPromptTuning('RVPT', ctx(), cfg);
  expect(run.steps).toBe(8);
  const losses: number[] = [];
  while (run.done < run.steps) losses.push(run.step()[0]);
  expect(() => run.step()).toThrow(/all 8 steps are done; call finish\(\)/);
  const d = run.finish();
  expect(() => run.finish()).toThrow(/finish\(\) was called already/);
  expect(() => run.step()).toThrow(/the run is finished \(after 8 of 8 steps\)/);
  expect(losses).toEqual(whole.history.loss);
  for (const [l, v] of whole.prompts!.tokens) expect(maxAbsDiff(v, d.prompts!.tokens.get(l)!)).toBe(0);
  expect(d.cost.samples).toBe(whole.cost.samples);
  d.dispose();
  expect(tf.memory().numTensors).toBe(n0);
  whole.dispose();
});
