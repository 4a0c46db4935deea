/**
 * Two-core training must compute the same step as one core: the split-batch gradient (with the embedding
 * exchange) equals the full-batch gradient up to float summation order, and a two-core run is deterministic.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../src/model/clip';
import { WordTokenizer } from '../src/model/tokenizer';
import { CaptionCorpus } from '../src/data/corpus';
import { vocabularyTexts } from '../src/data/captions';
import { loadSplit } from '../src/data/load';
import { sample } from '../src/data/splits';
import { PretrainConfig, pretrain } from '../src/train/pretrain';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { maxAbsDiff, setup, TEST_CONFIG } from './helpers';

beforeAll(setup);

const C = { ...TEST_CONFIG, imageSize: 32, patch: 8, vocabSize: 256, width: 32, textWidth: 32, embedDim: 32 };
const cfg = (workers: number): PretrainConfig => ({ batch: 32, steps: 6, lr: 3e-3, warmupSteps: 2, weightDecay: 0.1, augment: { scale: [0.6, 1], ratio: [0.75, 1.33], flip: 0.5 }, seed: 2, workers });

test('two-core steps match one-core steps (1e-4) and repeat exactly', async () => {
  const data = sample(await loadSplit('fashion-mnist', 'pretrain'), 256, 'par');
  const corpus = new CaptionCorpus([{ data, repeat: 1 }]);
  const tok = WordTokenizer.fromCorpus(vocabularyTexts([data]));
  const one = MiniCLIP.init(C, 0);
  const two = MiniCLIP.init(C, 0);
  const again = MiniCLIP.init(C, 0);
  const h1 = await pretrain(one, tok, corpus, cfg(1), { quiet: true });
  const h2 = await pretrain(two, tok, corpus, cfg(2), { quiet: true });
  const h3 = await pretrain(again, tok, corpus, cfg(2), { quiet: true });
  h1.loss.forEach((l, i) => expect(Math.abs(l - h2.loss[i])).toBeLessThan(1e-4));
  expect(h3.loss).toEqual(h2.loss);
  for (const name of Object.keys(one.params)) {
    expect(maxAbsDiff(one.params[name], two.params[name])).toBeLessThan(1e-4);
    expect(maxAbsDiff(two.params[name], again.params[name])).toBe(0);
  }
  expect(tf.memory().numTensors).toBeLessThan(2000);
  // The optimiser's state, split between the threads in shared memory, is whole on the main side (checkpoints).
  const resumed = MiniCLIP.init(C, 0);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-par-')), 'state.safetensors');
  const stop = (step: number) => {
    if (step === 3) throw new Error('interrupted');
  };
  await expect(pretrain(resumed, tok, corpus, cfg(2), { quiet: true, stateFile: file, stateEvery: 2, onStep: stop })).rejects.toThrow('interrupted');
  expect(fs.existsSync(file)).toBe(true);
  const h4 = await pretrain(resumed, tok, corpus, cfg(2), { quiet: true, stateFile: file, stateEvery: 2 });
  expect(h4.loss).toEqual(h2.loss);
  for (const name of Object.keys(two.params)) expect(maxAbsDiff(two.params[name], resumed.params[name])).toBe(0);
  [one, two, again, resumed].forEach((m) => m.dispose());
});

test('an odd batch is refused for two cores', async () => {
  const m = MiniCLIP.init(C, 0);
  const data = sample(await loadSplit('fashion-mnist', 'pretrain'), 64, 'par');
  const corpus = new CaptionCorpus([{ data, repeat: 1 }]);
  const tok = WordTokenizer.fromCorpus(vocabularyTexts([data]));
  await expect(pretrain(m, tok, corpus, { ...cfg(2), batch: 31 }, { quiet: true })).rejects.toThrow(/batch 31 must be even/);
  m.dispose();
});
