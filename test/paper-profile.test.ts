/**
 * The paper-scale path on a toy: image-folder manifests (classes read off the folders), a weights file naming real
 * CLIP checkpoints (here the parity fixture's small random CLIP), and one defense cell run on them end to end.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { loadManifest, FolderManifest } from '../src/data/manifest';
import { exampleImages, loadShots, loadSplit, testSetNames } from '../src/data/load';
import { PROFILES, Profile, getProfile } from '../src/experiments/profiles';
import { ensureBackdoored } from '../src/experiments/backdoorRun';
import { cleanAccuracy, ensurePretrained } from '../src/experiments/pretrainRun';
import { runCell } from '../src/experiments/defenseRun';
import { availableAttacks, paperTableSpecs, runTable } from '../src/experiments/paperTables';
import { noDefenseSpec } from '../src/experiments/noDefense';
import { cachedEval, externalWeights } from '../src/experiments/externalWeights';
import { ClipTokenizer } from '../src/model/clipTokenizer';
import { reproductionReport } from '../src/experiments/report';
import { cacheDir } from '../src/util/fsutil';
import { setup } from './helpers';

const FIXTURE = path.join(__dirname, 'fixtures', 'clip-parity');
// The committed paper-scale fixture (scripts/paper-toy-fixture.js): image folders, a weights file, a profile file.
const TOY = path.join(__dirname, 'fixtures', 'paper-toy');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-paper-'));

// The fixture's profile under another name, so that the tests' cached cells never stand in for the notebooks' (CI
// runs every notebook at paper-toy after the tests).
const profile = (): Profile => ({ ...getProfile(path.join(TOY, 'profile.json')), name: 'paper-test' });

const warnings: string[] = [];
beforeAll(async () => {
  await setup();
  jest.spyOn(console, 'warn').mockImplementation((m: string) => void warnings.push(m));
  profile();
});

afterAll(() => {
  for (const dir of [cacheDir('results', 'cells'), cacheDir('results', 'external')]) for (const f of fs.readdirSync(dir)) if (f.startsWith('paper-test-')) fs.unlinkSync(path.join(dir, f));
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
  const bad = { ...JSON.parse(fs.readFileSync(path.join(TOY, 'toy-pets.json'), 'utf8')), splits: { test: 'nowhere' } };
  fs.writeFileSync(path.join(root, 'bad.json'), JSON.stringify(bad));
  expect(() => loadManifest(path.join(root, 'bad.json'))).toThrow(/field 'splits.test' points at .*nowhere, which does not exist/);
});

test('the paper path: the weights file gives the clean and backdoored models, and a defense cell runs on them', async () => {
  const p = profile();
  const w = externalWeights(p)!;
  expect(w.backdoored.BadNet).toBe(path.join(FIXTURE, 'openai.safetensors'));
  expect(w.backdoored.Blended).toEqual({ 'toy-pets': path.join(FIXTURE, 'openai.safetensors') });
  const clean = await ensurePretrained(p);
  expect(clean.tokenizer).toBeInstanceOf(ClipTokenizer);
  expect(clean.checkpoint).toBe(path.join(FIXTURE, 'hf.safetensors'));
  // Zero-shot CA on image folders: a seeded sample of evalLimit images over the classes (here 2 per class).
  const ca = await cleanAccuracy(clean.model, clean.tokenizer, p);
  // Every test set of every dataset, distribution shifts included.
  expect(Object.keys(ca)).toEqual(['toy-pets', 'toy-pets-sketch', 'toy-objects']);
  for (const v of Object.values(ca)) expect(v >= 0 && v <= 100).toBe(true);
  clean.model.dispose();
  const before = tf.memory().numTensors;
  const bd = await ensureBackdoored(p, 'BadNet', { dataset: 'toy-pets' });
  expect(bd.checkpoint).toBe(path.join(FIXTURE, 'openai.safetensors'));
  const nd = bd.metrics['toy-pets'];
  expect(Object.keys(bd.metrics)).toEqual(['toy-pets', 'toy-pets-sketch']);
  // The clean model's CA beside the backdoored one's, measured once and cached.
  expect(Object.keys(bd.cleanCA)).toEqual(['toy-pets', 'toy-pets-sketch']);
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

test('paper-scale tables: the attacks the weights file has, the methods that need no pre-training corpus, the shifts on disk', async () => {
  const p = profile();
  const specs = paperTableSpecs(p);
  // BadCLIP has a checkpoint but its trigger cannot be re-made; Blended has one for toy-pets only.
  expect(specs.map((s) => [s.name, s.dataset, s.attacks.join(',')])).toEqual([
    ['table1', 'toy-pets', 'BadNet,Blended,WaNet'],
    ['table2', 'toy-objects', 'BadNet,WaNet'],
    ['table3', 'toy-pets', 'BadNet,Blended'],
  ]);
  expect(specs[0].methods).toEqual(['No defense', 'Linear Probe', 'VPT', 'RVPT']);
  expect(specs[2].methods).toEqual(['No defense', 'RVPT']);
  expect(specs[2].report).toEqual(['toy-pets', 'toy-pets-sketch']);
  expect(noDefenseSpec(p)).toEqual({ 'toy-pets': ['BadNet', 'Blended', 'WaNet'], 'toy-objects': ['BadNet', 'WaNet'] });
  expect(availableAttacks(PROFILES.small, 'fashion-mnist')).toHaveLength(6);
  const r = await runTable(p, { ...specs[0], attacks: ['BadNet'] }, { quiet: true, write: false });
  expect(Object.keys(r.table.datasets['toy-pets'])).toEqual(['No defense', 'Linear Probe', 'VPT', 'RVPT']);
  for (const m of Object.values(r.table.datasets['toy-pets'])) expect(m.BadNet.ca).toBeGreaterThanOrEqual(0);
  const t3 = await runTable(p, { ...specs[2], attacks: ['BadNet'] }, { quiet: true, write: false });
  expect(Object.keys(t3.table.datasets)).toEqual(['toy-pets', 'toy-pets-sketch']);
  // Table 3's RVPT cell is Table 1's (same cell key): nothing was tuned twice.
  expect(t3.cells.find((c) => c.method === 'RVPT')!.cost).toEqual(r.cells.find((c) => c.method === 'RVPT')!.cost);
});

test('a profile file extends a built-in profile: nested fields merged, paths relative to the file, clear errors', () => {
  const p = getProfile(path.join(TOY, 'profile.json'));
  expect(p.name).toBe('paper-toy');
  expect(p.model.imageSize).toBe(64);
  expect(p.model.contextLength).toBe(77); // from 'paper'
  expect(p.model.mean).toEqual(PROFILES.paper.model.mean);
  expect(p.defenses.RVPT).toEqual({ epochs: 2, batch: 3, promptLength: 4, depth: 1, augment: null });
  expect(p.evalLimit).toBe(12);
  expect(p.weightsFile).toBe(path.join(TOY, 'weights.json'));
  expect(p.manifests).toEqual([TOY]);
  const write = (name: string, v: unknown) => {
    const f = path.join(root, name);
    fs.writeFileSync(f, typeof v === 'string' ? v : JSON.stringify(v));
    return f;
  };
  expect(() => getProfile(write('p1.json', { name: 'small' }))).toThrow(/p1\.json: field 'name' must be a new profile name/);
  expect(() => getProfile(write('p2.json', { name: 'mine', extends: 'huge' }))).toThrow(/p2\.json: field 'extends' 'huge' is not a built-in profile \(tiny, small, transfer, paper\)/);
  expect(() => getProfile(write('p3.json', { name: 'mine', model: [1] }))).toThrow(/p3\.json: field 'model' must be an object/);
  expect(() => getProfile(write('p4.json', { name: 'mine', manifests: ['no-such-dir'] }))).toThrow(/p4\.json: field 'manifests' names .*no-such-dir, which does not exist/);
  expect(() => getProfile(write('p5.json', '{"name": '))).toThrow(/p5\.json is not valid JSON/);
  expect(() => getProfile(path.join(root, 'none.json'))).toThrow(/Profile file .*none\.json does not exist/);
  expect(() => getProfile('huge')).toThrow(/Unknown profile 'huge'.*or a profile file/);
  const small = getProfile(write('p6.json', { name: 'mine', shots: 4, defenses: { RVPT: { epochs: 3 } } }));
  expect(small.model).toEqual(PROFILES.small.model); // extends 'small' by default
  expect(small.defenses.RVPT).toEqual({ epochs: 3 });
  expect(small.defenses.CleanCLIP).toEqual(PROFILES.small.defenses.CleanCLIP);
});

test('distribution shifts: the ones on disk are test sets, a missing one is left out with a message', async () => {
  expect(testSetNames('toy-pets')).toEqual(['toy-pets', 'toy-pets-sketch']);
  // Said once per process, naming the manifest, the shift and the missing folder.
  expect(warnings.filter((w) => w.includes("distribution shift 'toy-pets-missing' left out"))).toHaveLength(1);
  expect(warnings.join('\n')).toMatch(/toy-pets-missing\.json: field 'splits\.test' points at .*nowhere\/test, which does not exist/);
  const sketch = await loadSplit('toy-pets-sketch', 'test');
  expect(sketch.classNames).toEqual(['american pit bull terrier', 'beagle', 'samoyed']);
  expect(sketch.labels.length).toBe(12);
  // A preview reads one image of each of the first n classes, nothing else.
  const ex = await exampleImages('toy-pets', 2);
  expect(Array.from(ex.labels)).toEqual([0, 1]);
  expect(ex.images.length).toBe(2 * 64 * 64 * 3);
});

test("ImageNetV2's layout: sub-folders numbered by the class's line in the names file", () => {
  const dir = path.join(root, 'v2');
  for (const k of [0, 1, 2, 10]) fs.mkdirSync(path.join(dir, 'test', String(k)), { recursive: true });
  const names = Array.from({ length: 11 }, (_, i) => `n0${i} class${i}, alias`).join('\n');
  fs.writeFileSync(path.join(dir, 'names.txt'), names);
  const m = { name: 'v2', kind: 'image-folder', splits: { test: 'test' }, classesFrom: 'test', folderNames: 'index', classNames: 'names.txt', classes: [], target: 'class10', imageSize: 32 };
  fs.writeFileSync(path.join(dir, 'v2.json'), JSON.stringify(m));
  const v2 = loadManifest(path.join(dir, 'v2.json')) as FolderManifest;
  // Numeric order (0, 1, 2, 10), not code-point order (0, 1, 10, 2).
  expect(v2.classes).toEqual(['class0', 'class1', 'class2', 'class10']);
  expect(v2.folders!.class10).toBe('10');
  fs.mkdirSync(path.join(dir, 'test', 'n01440764'));
  expect(() => loadManifest(path.join(dir, 'v2.json'))).toThrow(/field 'folderNames' is 'index' but .* has sub-folders that are not numbers \(n01440764\)/);
});

test('measurements of a user checkpoint are cached by the file and what is measured; an unreadable cache is measured again', async () => {
  const p = profile();
  let calls = 0;
  const measure = async () => ++calls;
  expect(await cachedEval(p, path.join(FIXTURE, 'openai.safetensors'), { kind: 'cache-test', n: 1 }, measure)).toBe(1);
  expect(await cachedEval(p, path.join(FIXTURE, 'openai.safetensors'), { kind: 'cache-test', n: 1 }, measure)).toBe(1);
  expect(await cachedEval(p, path.join(FIXTURE, 'openai.safetensors'), { kind: 'cache-test', n: 2 }, measure)).toBe(2);
  const dir = cacheDir('results', 'external');
  for (const f of fs.readdirSync(dir)) if (f.startsWith('paper-test-') && fs.readFileSync(path.join(dir, f), 'utf8').includes('cache-test')) fs.writeFileSync(path.join(dir, f), '{"val');
  expect(await cachedEval(p, path.join(FIXTURE, 'openai.safetensors'), { kind: 'cache-test', n: 1 }, measure)).toBe(3);
});

test("the reproduction report describes a paper-scale profile's own data and checkpoints", () => {
  const r = reproductionReport(profile());
  expect(r).toContain("| pre-training | OpenAI's (400M pairs) | the weights file's clean checkpoint (not trained here) |");
  expect(r).toContain('| Table 1 data | ImageNet-1K (1,000 classes, target banana) | toy-pets (3 classes, target samoyed) |');
  expect(r).toContain('toy-objects (3 classes, target accordion); shifts of toy-pets: toy-pets-sketch');
  expect(r).toContain('![fig4](fig4-pr.png)'); // beside the figures, in the profile's results folder
});

test('paper-path errors name the file and the fix', async () => {
  const p = profile();
  await expect(ensureBackdoored(p, 'Blended', { dataset: 'toy-objects' })).rejects.toThrow(/names no backdoored checkpoint for Blended on toy-objects: add "backdoored": \{"Blended"/);
  await expect(ensureBackdoored(p, 'TrojVQA', { dataset: 'toy-pets' })).rejects.toThrow(/Use BadNet, Blended or WaNet at paper scale/);
  await expect(ensurePretrained({ ...p, model: PROFILES.paper.model })).rejects.toThrow(/is not the model profile 'paper-test' expects: imageSize 64 \(expected 224\)/);
  expect(() => externalWeights({ ...p, weightsFile: path.join(root, 'none.json') })).toThrow(/none\.json, which does not exist. Copy data-manifests\/paper-weights\.example\.json/);
  fs.writeFileSync(path.join(root, 'w2.json'), JSON.stringify({ clean: 'missing.safetensors', tokenizer: FIXTURE }));
  expect(() => externalWeights({ ...p, weightsFile: path.join(root, 'w2.json') })).toThrow(/field 'clean' points at .*missing\.safetensors, which does not exist/);
});
