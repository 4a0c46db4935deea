/**
 * Bad inputs as a user meets them, through the `rvpt` command (run in this process on the current source): each gets
 * a message that names what is wrong and what to do, the documented exit status (1 a run-time failure, 2 a usage
 * error), and leaves the cache and the committed files as they were. Categories: profile files, manifests, checkpoints
 * and weights files, command-line options.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main } from '../src/cli';
import { restoreCacheAfterAll, runInProcess } from './helpers';

restoreCacheAfterAll();
const root = path.join(__dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-bad-'));
const cache = path.join(dir, 'cache');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Every file under the folders a bad input must not touch, with its size and modification time. */
function snapshot(): string {
  const walk = (d: string): string[] =>
    fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [`${path.join(d, e.name)} ${fs.statSync(path.join(d, e.name)).size} ${fs.statSync(path.join(d, e.name)).mtimeMs}`])) : [];
  return [cache, path.join(root, 'figures'), path.join(root, 'profiles'), path.join(root, 'data-manifests'), path.join(root, 'research', 'results')].flatMap(walk).sort().join('\n');
}

const rvpt = (...args: string[]) => runInProcess(main, args);

/** A file in the test's folder. */
function file(name: string, content: unknown): string {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}
const profile = (name: string, fields: Record<string, unknown>) => file(`${name}.json`, { name, extends: 'tiny', ...fields });

beforeAll(() => {
  process.env.RVPT_CACHE = cache;
  process.env.RVPT_QUIET = '1';
  fs.mkdirSync(path.join(dir, 'pets', 'cat'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'pets', 'dog'), { recursive: true });
  const pets = { name: 'bad-pets', kind: 'image-folder', imageSize: 32, classes: ['cat', 'dog'], target: 'dog', splits: { test: path.join(dir, 'pets') } };
  file('m-target/bad-pets.json', { ...pets, target: 'bird' });
  file('m-typo/bad-pets.json', { ...pets, exlude: ['cat'] });
  file('m-kind/bad-pets.json', { ...pets, kind: 'folder' });
  file('m-classes/bad-pets.json', { ...pets, classes: ['cat'], target: 'cat' });
  file('m-json/bad-pets.json', '{"name": "bad-pets",');
  file('junk.safetensors', Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 256)));
  file('weights.json', { clean: path.join(dir, 'none.safetensors') });
  file('w-typo/weights.json', { clean: 'x', tokenizer: 'y', backdored: {} });
  file('w-attack/weights.json', { clean: 'x', tokenizer: 'y', backdoored: { BadNett: 'z' } });
  file('w-missing/weights.json', { clean: 'none.safetensors', tokenizer: 'y', backdoored: {} });
});

const weightsProfile = (folder: string) => file(`pw-${folder}.json`, { name: `pw-${folder}`, extends: 'paper', weightsFile: path.join(dir, folder, 'weights.json') });
const manifestProfile = (folder: string) => profile(`p-${folder}`, { manifests: [path.join(dir, folder)], datasets: { main: 'bad-pets', emoji: 'emoji' } });

// [what, args (a function: the files exist only once beforeAll has run), exit status, the message]
const CASES: [string, () => string[], number, RegExp][] = [
  // Profile files
  ['a misspelt model key', () => ['pretrain', '-p', profile('typo', { model: { widht: 96 } })], 1, /field 'model\.widht' is not a profile field; did you mean 'model\.width'\?/],
  ['an unknown top-level key', () => ['pretrain', '-p', profile('top', { batchSize: 4 })], 1, /field 'batchSize' is not a profile field/],
  ['negative pre-training steps', () => ['pretrain', '-p', profile('steps', { pretrain: { steps: -5 } })], 1, /field 'pretrain\.steps' is -5; it must be at least 0/],
  ['zero pre-training steps', () => ['pretrain', '-p', profile('steps0', { pretrain: { steps: 0 } })], 1, /field 'pretrain\.steps' is 0; it must be at least 1/],
  ['a negative evalLimit', () => ['pretrain', '-p', profile('eval', { evalLimit: -1 })], 1, /field 'evalLimit' is -1; it must be at least 1/],
  ['batch 0', () => ['pretrain', '-p', profile('b0', { pretrain: { batch: 0 } })], 1, /field 'pretrain\.batch' is 0; it must be at least 1/],
  ['batch 2.5', () => ['pretrain', '-p', profile('b25', { pretrain: { batch: 2.5 } })], 1, /field 'pretrain\.batch' is 2\.5; it must be a whole number/],
  ['a learning rate that is text', () => ['pretrain', '-p', profile('lr', { pretrain: { lr: 'fast' } })], 1, /field 'pretrain\.lr' is "fast"; it must be a number/],
  ['a misspelt defense parameter', () => ['pretrain', '-p', profile('dp', { defenses: { RVPT: { epohcs: 3 } } })], 1, /field 'defenses\.RVPT\.epohcs' is not a RVPT parameter; did you mean 'epochs'\?/],
  ['an unknown defense', () => ['pretrain', '-p', profile('dn', { defenses: { RVTP: {} } })], 1, /field 'defenses\.RVTP' names no defense; did you mean 'RVPT'\?/],
  ['negative defense epochs', () => ['pretrain', '-p', profile('de', { defenses: { VPT: { epochs: -1 } } })], 1, /field 'defenses\.VPT\.epochs' is -1; it must be a whole number of at least 1/],
  ['an unknown trigger parameter', () => ['pretrain', '-p', profile('tp', { triggers: { BadNet: { size: 3 } } })], 1, /field 'triggers\.BadNet': BadNet: unknown trigger parameter\(s\) size/],
  ['a trigger of an unknown attack', () => ['pretrain', '-p', profile('ta', { triggers: { BadNett: {} } })], 1, /field 'triggers\.BadNett' names no attack; did you mean 'BadNet'\?/],
  ['heads that do not divide the width', () => ['pretrain', '-p', profile('heads', { model: { heads: 3 } })], 1, /field 'model\.heads' must divide width \(32\); it is 3/],
  ['a poisoning rate above 1', () => ['pretrain', '-p', profile('rate', { backdoor: { rate: 1.5 } })], 1, /field 'backdoor\.rate' is 1\.5; it must be below 1/],
  ['a misspelt datasets key', () => ['pretrain', '-p', profile('ds', { datasets: { main: 'fashion-mnist', emoji: 'emoji', extra: 'x' } })], 1, /field 'datasets\.extra' is not a profile field/],
  ['a width too large for WASM', () => ['pretrain', '-p', profile('huge', { model: { width: 4096, heads: 64 } })], 1, /training needs about \d+\.\d GiB, more than the WASM backend's 4 GiB heap holds/],
  ['a profile named like a built-in one', () => ['pretrain', '-p', file('clash.json', { name: 'small', extends: 'tiny' })], 1, /field 'name' must be a new profile name/],
  ['an unknown base profile', () => ['pretrain', '-p', file('ext.json', { name: 'x1', extends: 'huge' })], 1, /field 'extends' 'huge' is not a built-in profile \(tiny, small, transfer, paper\)/],
  ['a manifests folder that does not exist', () => ['pretrain', '-p', profile('man', { manifests: [path.join(dir, 'nowhere')] })], 1, /field 'manifests' names .*nowhere, which does not exist/],
  ['a profile file that is not JSON', () => ['pretrain', '-p', file('broken.json', '{"name": "x3",')], 1, /Profile file .*broken\.json is not valid JSON/],
  ['a profile file that does not exist', () => ['pretrain', '-p', path.join(dir, 'missing.json')], 1, /Profile file .*missing\.json does not exist/],
  ['an unknown profile name', () => ['pretrain', '-p', 'huge'], 1, /Unknown profile 'huge'\. Use one of: tiny, small, transfer, paper/],
  // Manifests
  ['a manifest target not among its classes', () => ['pretrain', '-p', manifestProfile('m-target')], 1, /Manifest .*bad-pets\.json: field 'target' 'bird' is not one of the classes \(cat, dog\)/],
  ['a misspelt manifest key', () => ['pretrain', '-p', manifestProfile('m-typo')], 1, /field 'exlude' is not a field of a 'image-folder' manifest; did you mean 'exclude'\?/],
  ['an unknown manifest kind', () => ['pretrain', '-p', manifestProfile('m-kind')], 1, /field 'kind' 'folder' is unknown \(use 'idx', 'emoji' or 'image-folder'\)/],
  ['a manifest with one class', () => ['pretrain', '-p', manifestProfile('m-classes')], 1, /field 'classes' must list at least two class names/],
  ['a manifest that is not JSON', () => ['pretrain', '-p', manifestProfile('m-json')], 1, /bad-pets\.json is not valid JSON/],
  // Checkpoints and weights files
  ['a checkpoint that does not exist', () => ['eval', '-p', 'tiny', '-c', path.join(dir, 'none.safetensors')], 1, /Checkpoint .*none\.safetensors does not exist\. Give the path of a \.safetensors file/],
  ['a checkpoint of random bytes', () => ['eval', '-p', 'tiny', '-c', path.join(dir, 'junk.safetensors')], 1, /Safetensors file .*junk\.safetensors is invalid: .* re-create or re-copy it/],
  ['the paper profile without its weights file', () => ['defend', '-p', 'paper', '-a', 'BadNet', '-m', 'RVPT', '-d', 'imagenet'], 1, /paper-weights\.json, which does not exist\. Copy data-manifests\/paper-weights\.example\.json there/],
  ['a misspelt weights-file key', () => ['defend', '-p', weightsProfile('w-typo'), '-a', 'BadNet', '-m', 'RVPT'], 1, /Weights file .*weights\.json: field 'backdored' is not a weights-file field; did you mean 'backdoored'\?/],
  ['a weights file naming an unknown attack', () => ['defend', '-p', weightsProfile('w-attack'), '-a', 'BadNet', '-m', 'RVPT'], 1, /field 'backdoored\.BadNett' names no attack; did you mean 'BadNet'\?/],
  ['a weights file pointing at a missing checkpoint', () => ['defend', '-p', weightsProfile('w-missing'), '-a', 'BadNet', '-m', 'RVPT'], 1, /field 'clean' points at .*none\.safetensors, which does not exist/],
  ['CLIP weights that do not exist', () => ['clip', '-w', path.join(dir, 'none.safetensors'), '-t', path.join(dir, 'none'), '-c', 'cat,dog', 'a.png'], 1, /none\.safetensors does not exist/],
  // Command-line options
  ['an unknown command', () => ['frobnicate'], 2, /unknown command 'frobnicate'/],
  ['an unknown option, with a suggestion', () => ['pretrain', '--stepz', '3'], 2, /unknown option '--stepz'[\s\S]*Did you mean --steps\?/],
  ['steps that are not a number', () => ['pretrain', '-p', 'tiny', '--steps', 'many'], 2, /option '--steps <n>' argument 'many' is invalid/],
  ['a negative seed', () => ['pretrain', '-p', 'tiny', '--seed', '-1'], 2, /option '--seed <n>' argument '-1' is invalid\. It must be a non-negative integer/],
  ['an unknown backend', () => ['bench', '-p', 'tiny', '--backend', 'tpu'], 1, /Unknown backend 'tpu'.*tensorflow, wasm, cpu/],
  ['an unknown attack', () => ['backdoor', '-p', 'tiny', '-a', 'Sleeper'], 2, /Unknown attack 'Sleeper'\. Registered attacks: BadNet/],
  ['a trigger parameter that is not key=value', () => ['backdoor', '-p', 'tiny', '-a', 'BadNet', '-t', 'patch'], 2, /'patch' is not key=value \(e\.g\. patch=6\)/],
  ['an unknown trigger parameter', () => ['backdoor', '-p', 'tiny', '-a', 'BadNet', '-t', 'size=3'], 2, /BadNet: unknown trigger parameter\(s\) size; known: patch, noise, patternSeed/],
  ['a poisoning rate above 1', () => ['backdoor', '-p', 'tiny', '-a', 'BadNet', '--rate', '2'], 2, /option '--rate <x>' argument '2' is invalid\. It must be a number in \(0, 1\)/],
  ['a learning rate that is text', () => ['backdoor', '-p', 'tiny', '-a', 'BadNet', '--lr', 'abc'], 2, /option '--lr <x>' argument 'abc' is invalid\. It must be a positive number/],
  ['a dataset the profile does not have', () => ['backdoor', '-p', 'tiny', '-a', 'BadNet', '-d', 'nosuch'], 2, /--dataset: profile 'tiny' has no dataset 'nosuch' \(it has fashion-mnist, emoji\)/],
  ['an unknown defense', () => ['defend', '-p', 'tiny', '-a', 'BadNet', '-m', 'RVTP'], 2, /Unknown defense 'RVTP'\. Registered defenses: No defense, CleanCLIP, Linear Probe, VPT, RVPT/],
  ['an unknown table', () => ['tables', '-p', 'tiny', '--only', 'table9'], 2, /Unknown table\(s\) table9; use no-defense, table1, table2, table3, cost/],
  ['an unknown figure', () => ['figures', '-p', 'tiny', '--only', 'foo'], 2, /Unknown figure\(s\) foo; use pr, attention, embeddings, ablations/],
  ['one class for clip', () => ['clip', '-w', 'w.safetensors', '-t', 'tok', '-c', 'cat', 'a.png'], 2, /--classes 'cat' names 1 class; give at least two/],
  ['a clip template without {}', () => ['clip', '-w', 'w.safetensors', '-t', 'tok', '-c', 'cat,dog', '--template', 'a photo', 'a.png'], 2, /--template 'a photo' has no '\{\}'/],
];

test(`${CASES.length} bad inputs: at least 40 cases across profiles, manifests, checkpoints and options`, () => {
  expect(CASES.length).toBeGreaterThanOrEqual(40);
});

test.each(CASES)('%s: a clear message, the documented exit status, nothing cached or committed changed', async (_what, args, status, message) => {
  const before = snapshot();
  const r = await rvpt(...args());
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status, stderr: expect.stringMatching(message) });
  expect(snapshot()).toBe(before);
});
