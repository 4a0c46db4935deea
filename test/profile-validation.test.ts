/**
 * Bad profiles are refused before any work starts, with a message that names the file, the field, the value, what is
 * allowed and, for a misspelling, the nearest valid key; every committed profile passes.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PROFILES, getProfile, loadProfileFile, profileErrors } from '../src/experiments/profiles';
import { nearestKey } from '../src/experiments/profileSchema';
import { loadManifest } from '../src/data/manifest';
import { loadImageFolder } from '../src/data/imageFolder';
import { ensurePretrained } from '../src/experiments/pretrainRun';
import { setup } from './helpers';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-profiles-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Write a profile file extending tiny with `fields`, and return loading's error message. */
function refusal(fields: Record<string, unknown>): string {
  const file = path.join(dir, `p${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, JSON.stringify({ name: 'bad', extends: 'tiny', ...fields }));
  try {
    loadProfileFile(file);
  } catch (e) {
    const m = (e as Error).message;
    expect(m).toContain(file);
    return m;
  }
  throw new Error(`profile ${JSON.stringify(fields)} was accepted`);
}

test.each([
  [{ model: { widht: 96 } }, /field 'model\.widht' is not a profile field; did you mean 'model\.width'\?/],
  [{ batchSize: 4 }, /field 'batchSize' is not a profile field \(known here: name, model/],
  [{ pretrain: { steps: -5 } }, /field 'pretrain\.steps' is -5; it must be at least 0/],
  [{ pretrain: { steps: 0 } }, /field 'pretrain\.steps' is 0; it must be at least 1 \(0 steps would cache an untrained model/],
  [{ backdoor: { rate: 1.5 } }, /field 'backdoor\.rate' is 1\.5; it must be below 1/],
  [{ evalLimit: -3 }, /field 'evalLimit' is -3; it must be at least 1/],
  [{ shots: 2.5 }, /field 'shots' is 2\.5; it must be a whole number/],
  [{ pretrain: { batch: 0 } }, /field 'pretrain\.batch' is 0; it must be at least 1/],
  [{ pretrain: { lr: 'fast' } }, /field 'pretrain\.lr' is "fast"; it must be a number/],
  [{ model: { heads: 3 } }, /field 'model\.heads' must divide width \(32\); it is 3/],
  [{ model: { patch: 5 } }, /field 'model\.patch' must divide imageSize \(32\); it is 5/],
  [{ defenses: { RVPT: { epohcs: 3 } } }, /field 'defenses\.RVPT\.epohcs' is not a RVPT parameter; did you mean 'epochs'\?/],
  [{ defenses: { RVTP: {} } }, /field 'defenses\.RVTP' names no defense; did you mean 'RVPT'\?/],
  [{ defenses: { RVPT: { epochs: -1 } } }, /field 'defenses\.RVPT\.epochs' is -1; it must be a whole number of at least 1/],
  [{ defenses: { CleanCLIP: { lr: 0 } } }, /field 'defenses\.CleanCLIP\.lr' is 0; it must be a positive number/],
  [{ triggers: { BadNet: { size: 3 } } }, /field 'triggers\.BadNet': BadNet: unknown trigger parameter\(s\) size; known: patch/],
  [{ triggers: { BadNett: {} } }, /field 'triggers\.BadNett' names no attack; did you mean 'BadNet'\?/],
  [{ datasets: { main: 'fashion-mnist', emoji: 'emoji', extra: 'x' } }, /field 'datasets\.extra' is not a profile field/],
])('%j is refused', (fields, message) => {
  expect(refusal(fields)).toMatch(message);
});

test('every problem is listed at once, one line each', () => {
  const m = refusal({ shots: 0, evalLimit: 0 });
  expect(m.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(2);
});

test('every committed profile passes: the built-in ones, the lab’s, the paper-toy fixture', () => {
  for (const p of Object.values(PROFILES)) expect(profileErrors(p)).toEqual([]);
  const root = path.join(__dirname, '..');
  const files = [...fs.readdirSync(path.join(root, 'research', 'profiles')).map((f) => path.join(root, 'research', 'profiles', f)), path.join(__dirname, 'fixtures', 'paper-toy', 'profile.json')];
  for (const f of files) expect(() => getProfile(f)).not.toThrow();
});

test('nearestKey suggests a close key and nothing for a distant one', () => {
  expect(nearestKey('widht', ['width', 'layers'])).toBe('width');
  expect(nearestKey('EPOCHS', ['epochs', 'batch'])).toBe('epochs');
  expect(nearestKey('colour', ['width', 'layers'])).toBeUndefined();
});

test('a manifest key that is misspelt is refused with the nearest valid one, not ignored; every committed manifest passes', () => {
  const file = path.join(dir, 'pets.json');
  fs.writeFileSync(file, JSON.stringify({ name: 'pets', kind: 'image-folder', imageSize: 32, classes: ['cat', 'dog'], target: 'dog', splits: { test: dir }, exlude: ['x'] }));
  expect(() => loadManifest(file)).toThrow(/Manifest .*pets\.json: field 'exlude' is not a field of a 'image-folder' manifest; did you mean 'exclude'\?/);
  const root = path.join(__dirname, '..');
  for (const f of fs.readdirSync(path.join(root, 'data-manifests')).filter((n) => n.endsWith('.json') && !n.startsWith('paper-weights'))) {
    expect(() => loadManifest(path.join(root, 'data-manifests', f))).not.toThrow(/is not a field/);
  }
});

test('a model too large for the WASM heap is refused before anything is allocated', async () => {
  await setup();
  const tiny = getProfile('tiny');
  const huge = { ...tiny, name: 'huge-width', model: { ...tiny.model, width: 4096, heads: 64 } };
  const t0 = Date.now();
  await expect(ensurePretrained(huge)).rejects.toThrow(/profile 'huge-width' \(model, pretrain\.batch\): training needs about \d+\.\d GiB, more than the WASM backend's 4 GiB heap holds\. Lower model\.width/);
  expect(Date.now() - t0).toBeLessThan(2000);
});

test('an image folder whose class folder is empty is an error naming the class and the folder, not a class dropped in silence', async () => {
  const root = path.join(dir, 'empty-class');
  fs.mkdirSync(path.join(root, 'cat'), { recursive: true });
  fs.mkdirSync(path.join(root, 'dog'), { recursive: true });
  const pets = path.join(__dirname, 'fixtures', 'paper-toy', 'pets', 'test');
  const someClass = fs.readdirSync(pets)[0];
  fs.copyFileSync(path.join(pets, someClass, fs.readdirSync(path.join(pets, someClass))[0]), path.join(root, 'cat', 'a.png'));
  const file = path.join(dir, 'empty-class.json');
  fs.writeFileSync(file, JSON.stringify({ name: 'empty-class', kind: 'image-folder', imageSize: 32, classes: ['cat', 'dog'], target: 'dog', splits: { test: root } }));
  const m = loadManifest(file);
  await expect(loadImageFolder(m as never, 'test')).rejects.toThrow(/class 'dog' has no images in .*empty-class[/\\]dog .*Add its images, or leave the class out/);
});
