/**
 * The paper-scale path on a toy: image-folder manifests (classes read off the folders), a weights file naming real
 * CLIP checkpoints (here the parity fixture's small random CLIP), and one defense cell run on them end to end.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { loadManifest, FolderManifest } from '../src/data/manifest';
import { loadShots, loadSplit } from '../src/data/load';
import { PROFILES, Profile } from '../src/experiments/profiles';
import { ensureBackdoored } from '../src/experiments/backdoorRun';
import { cleanAccuracy, ensurePretrained } from '../src/experiments/pretrainRun';
import { runCell } from '../src/experiments/defenseRun';
import { paperTableSpecs, runTable } from '../src/experiments/paperTables';
import { externalWeights } from '../src/experiments/externalWeights';
import { ClipTokenizer } from '../src/model/clipTokenizer';
import { cacheDir } from '../src/util/fsutil';
import { setup } from './helpers';

const FIXTURE = path.join(__dirname, 'fixtures', 'clip-parity');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-paper-'));
const CLASSES = ['american_pit_bull_terrier', 'beagle', 'samoyed'];

async function png(file: string, rgb: number[], seed: number): Promise<void> {
  const w = 40 + (seed % 3) * 7;
  const h = 30 + (seed % 2) * 11;
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) raw[i * 3 + c] = Math.max(0, Math.min(255, rgb[c] + ((i * (seed + 3)) % 40) - 20));
  await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
}

const profile = (): Profile => ({
  ...PROFILES.paper,
  name: 'paper-test',
  model: { ...PROFILES.paper.model, imageSize: 64, patch: 16, width: 64, layers: 2, heads: 2, embedDim: 24, textWidth: 64, textLayers: 2, textHeads: 2, vocabSize: 569 },
  datasets: { main: 'toy-pets', emoji: 'toy-pets' },
  weightsFile: path.join(root, 'weights.json'),
  shots: 2,
  evalLimit: 6,
  defenses: { RVPT: { epochs: 2, batch: 3, promptLength: 4, depth: 1, augment: null } },
  triggers: { BadNet: { patch: 8 } },
});

beforeAll(async () => {
  await setup();
  for (const split of ['train', 'test']) {
    for (const [k, c] of [...CLASSES, 'BACKGROUND'].entries()) {
      const dir = path.join(root, 'pets', split, c);
      fs.mkdirSync(dir, { recursive: true });
      for (let i = 0; i < 4; i++) await png(path.join(dir, `${c}_${i}.png`), [60 * k, 200 - 50 * k, 40 + 60 * (k % 2)], i + 4 * k);
    }
  }
  fs.writeFileSync(path.join(root, 'names.txt'), 'beagle beagle, Canis familiaris\nsamoyed samoyed, Samoyede\n');
  const manifest = {
    name: 'toy-pets',
    kind: 'image-folder',
    splits: { train: 'pets/train', test: 'pets/test' },
    classesFrom: 'test',
    exclude: ['BACKGROUND'],
    classNames: 'names.txt',
    classes: [],
    target: 'samoyed',
    templates: ['a photo of a {}, a type of pet.'],
    imageSize: 64,
  };
  fs.writeFileSync(path.join(root, 'toy-pets.json'), JSON.stringify(manifest));
  fs.writeFileSync(
    path.join(root, 'weights.json'),
    JSON.stringify({ clean: path.join(FIXTURE, 'hf.safetensors'), tokenizer: FIXTURE, backdoored: { BadNet: { 'toy-pets': path.join(FIXTURE, 'openai.safetensors') } }, heads: 2, textHeads: 2 }),
  );
  process.env.RVPT_MANIFESTS = root;
});

afterAll(() => {
  delete process.env.RVPT_MANIFESTS;
  for (const f of fs.readdirSync(cacheDir('results', 'cells'))) if (f.startsWith('paper-test-')) fs.unlinkSync(cacheDir('results', 'cells', f));
});

test('an image-folder manifest can read its classes off the folders: sorted, excluded, named from a synset-style file', async () => {
  const m = loadManifest('toy-pets') as FolderManifest;
  expect(m.classes).toEqual(['american pit bull terrier', 'beagle', 'samoyed']);
  expect(m.folders!['american pit bull terrier']).toBe('american_pit_bull_terrier');
  const test = await loadSplit(m, 'test');
  expect(test.labels.length).toBe(12);
  expect(test.templates).toEqual(['a photo of a {}, a type of pet.']);
  expect(test.size).toBe(64);
  // Shots are chosen per class before decoding, from 'train' (no 'tune' split), deterministically.
  const a = await loadShots('toy-pets', 2, 0);
  const b = await loadShots('toy-pets', 2, 0);
  expect(Array.from(a.labels)).toEqual([0, 0, 1, 1, 2, 2]);
  expect(a.ids).toEqual(b.ids);
  expect(a.ids!.every((f) => f.includes(`${path.sep}train${path.sep}`))).toBe(true);
  const bad = { ...JSON.parse(fs.readFileSync(path.join(root, 'toy-pets.json'), 'utf8')), splits: { test: 'nowhere' } };
  fs.writeFileSync(path.join(root, 'bad.json'), JSON.stringify(bad));
  expect(() => loadManifest('bad')).toThrow(/field 'splits.test' points at .*nowhere, which does not exist/);
});

test('the paper path: the weights file gives the clean and backdoored models, and a defense cell runs on them', async () => {
  const p = profile();
  const w = externalWeights(p)!;
  expect(w.backdoored.BadNet).toEqual({ 'toy-pets': path.join(FIXTURE, 'openai.safetensors') });
  const clean = await ensurePretrained(p);
  expect(clean.tokenizer).toBeInstanceOf(ClipTokenizer);
  expect(clean.checkpoint).toBe(path.join(FIXTURE, 'hf.safetensors'));
  // Zero-shot CA on image folders: a seeded sample of evalLimit images over the classes (here 2 per class).
  const ca = await cleanAccuracy(clean.model, clean.tokenizer, p);
  expect(Object.keys(ca)).toEqual(['toy-pets']);
  expect(ca['toy-pets']).toBeGreaterThanOrEqual(0);
  expect(ca['toy-pets']).toBeLessThanOrEqual(100);
  clean.model.dispose();
  const before = tf.memory().numTensors;
  const bd = await ensureBackdoored(p, 'BadNet', { dataset: 'toy-pets' });
  expect(bd.checkpoint).toBe(path.join(FIXTURE, 'openai.safetensors'));
  const nd = bd.metrics['toy-pets'];
  expect(nd.ca).toBeGreaterThanOrEqual(0);
  expect(nd.asr).toBeGreaterThanOrEqual(0);
  const cell = await runCell(p, 'BadNet', 'RVPT', 'toy-pets', ['toy-pets'], { backdoored: bd, force: true, quiet: true });
  expect(cell.cost.samples).toBe(2 * 3 * 2); // 2 epochs of 2 batches of 3 (6 shots)
  expect(cell.cost.tunableParams).toBe(4 * 64);
  expect(cell.history.loss.every(Number.isFinite)).toBe(true);
  const m = cell.metrics['toy-pets']!;
  expect(m.ca).toBeGreaterThanOrEqual(0);
  expect(m.ca).toBeLessThanOrEqual(100);
  bd.model.dispose();
  expect(tf.memory().numTensors).toBe(before);
});

test('paper-scale tables: the attacks the weights file has, the methods that need no pre-training corpus', async () => {
  const p = profile();
  const specs = paperTableSpecs(p);
  expect(specs.map((s) => [s.name, s.dataset])).toEqual([['table1', 'toy-pets'], ['table2', 'toy-pets']]);
  expect(specs[0].attacks).toEqual(['BadNet']);
  expect(specs[0].methods).toEqual(['No defense', 'Linear Probe', 'VPT', 'RVPT']);
  const r = await runTable({ ...p, defenses: { ...p.defenses, VPT: p.defenses.RVPT, 'Linear Probe': { epochs: 2 } } }, specs[0], { quiet: true, write: false });
  expect(Object.keys(r.table.datasets['toy-pets'])).toEqual(['No defense', 'Linear Probe', 'VPT', 'RVPT']);
  for (const m of Object.values(r.table.datasets['toy-pets'])) expect(m.BadNet.ca).toBeGreaterThanOrEqual(0);
});

test('paper-path errors name the file and the fix', async () => {
  const p = profile();
  await expect(ensureBackdoored(p, 'Blended', { dataset: 'toy-pets' })).rejects.toThrow(/names no backdoored checkpoint for Blended on toy-pets: add "backdoored": \{"Blended"/);
  await expect(ensureBackdoored(p, 'TrojVQA', { dataset: 'toy-pets' })).rejects.toThrow(/Use BadNet, Blended or WaNet at paper scale/);
  await expect(ensurePretrained({ ...p, model: PROFILES.paper.model })).rejects.toThrow(/is not the model profile 'paper-test' expects: imageSize 64 \(expected 224\)/);
  expect(() => externalWeights({ ...p, weightsFile: path.join(root, 'none.json') })).toThrow(/none\.json, which does not exist. Copy data-manifests\/paper-weights\.example\.json/);
  fs.writeFileSync(path.join(root, 'w2.json'), JSON.stringify({ clean: 'missing.safetensors', tokenizer: FIXTURE }));
  expect(() => externalWeights({ ...p, weightsFile: path.join(root, 'w2.json') })).toThrow(/field 'clean' points at .*missing\.safetensors, which does not exist/);
});
