/**
 * Cache keys name results by their inputs, not by where the cache lies: a backdoored checkpoint inside the cache
 * enters a key relative to it, so moving the project (or pointing RVPT_CACHE elsewhere) keeps every cached cell.
 * Results cached under the older absolute-path keys are adopted (renamed), not computed again.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { adoptLegacy, cacheDir, cacheKey } from '../src/util/fsutil';
import { DEFENSE_CODE_VERSION, cellFile, defenseConfig } from '../src/experiments/defenseRun';
import { PROFILES } from '../src/experiments/profiles';
import { restoreCacheAfterAll } from './helpers';

restoreCacheAfterAll();

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-keys-'));

test('a cell keeps its cache file name when the cache moves; a checkpoint outside the cache keeps its absolute path', () => {
  const cell = (cache: string, checkpoint: string) => {
    process.env.RVPT_CACHE = cache;
    return path.relative(cache, cellFile(PROFILES.tiny, 'BadNet', 'RVPT', 'fashion-mnist', ['fashion-mnist'], checkpoint));
  };
  const [a, b] = [tmp(), tmp()];
  const inA = cell(a, path.join(a, 'artifacts', 'backdoor-tiny-BadNet.safetensors'));
  expect(inA).toMatch(/^results\/cells\/tiny-BadNet-RVPT-[0-9a-f]{16}\.json$/);
  expect(cell(b, path.join(b, 'artifacts', 'backdoor-tiny-BadNet.safetensors'))).toBe(inA);
  expect(cell(b, path.join(b, 'artifacts', 'backdoor-tiny-BadNet-other.safetensors'))).not.toBe(inA);
  expect(cell(a, '/weights/badnet.safetensors')).toBe(cell(b, '/weights/badnet.safetensors'));
});

test('cacheKey: relative inside the cache, the legacy key absolute; adoptLegacy renames an old result once', () => {
  process.env.RVPT_CACHE = tmp();
  const inside = { backdoor: path.join(cacheDir(), 'artifacts', 'm.safetensors'), n: 1 };
  const k = cacheKey(inside, 16);
  expect(k.key).not.toBe(k.legacy);
  expect(cacheKey({ backdoor: '/elsewhere/m.safetensors', n: 1 }, 16).key).toBe(cacheKey({ backdoor: '/elsewhere/m.safetensors', n: 1 }, 16).legacy);
  const dir = cacheDir('results');
  fs.mkdirSync(dir, { recursive: true });
  const [now, old] = [path.join(dir, `${k.key}.json`), path.join(dir, `${k.legacy}.json`)];
  fs.writeFileSync(old, '{"asr": 1}');
  expect(adoptLegacy(now, old)).toBe(now);
  expect(fs.readFileSync(now, 'utf8')).toBe('{"asr": 1}');
  expect(fs.existsSync(old)).toBe(false);
  fs.writeFileSync(old, '{"asr": 2}'); // a current result wins over a stale legacy one
  adoptLegacy(now, old);
  expect(fs.readFileSync(now, 'utf8')).toBe('{"asr": 1}');
});

test("a cell's key holds its data: changing an image folder's files or its manifest gives a new key; cells cached before are adopted only for the project's pinned datasets", () => {
  const root = tmp();
  process.env.RVPT_CACHE = path.join(root, 'cache');
  const manifests = path.join(root, 'manifests');
  const images = path.join(root, 'pets');
  for (const c of ['cat', 'dog']) fs.mkdirSync(path.join(images, c), { recursive: true });
  fs.writeFileSync(path.join(images, 'cat', 'a.png'), 'x');
  fs.mkdirSync(manifests);
  const manifest = { name: 'key-pets', kind: 'image-folder', imageSize: 32, classes: ['cat', 'dog'], target: 'dog', splits: { train: images, test: images }, templates: ['a photo of a {}.'] };
  fs.writeFileSync(path.join(manifests, 'key-pets.json'), JSON.stringify(manifest));
  const saved = process.env.RVPT_MANIFESTS;
  process.env.RVPT_MANIFESTS = manifests;
  try {
    const cell = () => path.basename(cellFile(PROFILES.tiny, 'BadNet', 'RVPT', 'key-pets', ['key-pets'], '/w/b.safetensors'));
    const first = cell();
    expect(cell()).toBe(first);
    fs.writeFileSync(path.join(images, 'dog', 'b.png'), 'y');
    const second = cell();
    expect(second).not.toBe(first);
    fs.writeFileSync(path.join(manifests, 'key-pets.json'), JSON.stringify({ ...manifest, templates: ['a photo of my {}.'] }));
    expect(cell()).not.toBe(second);
    // An image-folder cell cached under the key without the data is not adopted: its images may have changed since.
    const p = PROFILES.tiny;
    const inputs = { v: DEFENSE_CODE_VERSION, backdoor: '/w/b.safetensors', method: 'RVPT', config: defenseConfig(p, 'RVPT'), shots: p.shots, tuneOn: 'key-pets', testSets: ['key-pets'], evalLimit: p.evalLimit };
    const old = cacheDir('results', 'cells', `tiny-BadNet-RVPT-${cacheKey(inputs, 16).key}.json`);
    fs.mkdirSync(path.dirname(old), { recursive: true });
    fs.writeFileSync(old, '{"asr": 1}');
    expect(fs.existsSync(cellFile(p, 'BadNet', 'RVPT', 'key-pets', ['key-pets'], '/w/b.safetensors'))).toBe(false);
    expect(fs.existsSync(old)).toBe(true);
  } finally {
    if (saved === undefined) delete process.env.RVPT_MANIFESTS;
    else process.env.RVPT_MANIFESTS = saved;
  }
});

test('a Fashion-MNIST cell cached before the data entered the key is adopted, not computed again', () => {
  process.env.RVPT_CACHE = tmp();
  const p = PROFILES.tiny;
  const inputs = { v: DEFENSE_CODE_VERSION, backdoor: '/w/b.safetensors', method: 'RVPT', config: defenseConfig(p, 'RVPT'), shots: p.shots, tuneOn: 'fashion-mnist', testSets: ['fashion-mnist'], evalLimit: p.evalLimit };
  const old = cacheDir('results', 'cells', `tiny-BadNet-RVPT-${cacheKey(inputs, 16).key}.json`);
  fs.mkdirSync(path.dirname(old), { recursive: true });
  fs.writeFileSync(old, '{"asr": 1}');
  const now = cellFile(p, 'BadNet', 'RVPT', 'fashion-mnist', ['fashion-mnist'], '/w/b.safetensors');
  expect(now).not.toBe(old);
  expect(fs.readFileSync(now, 'utf8')).toBe('{"asr": 1}');
  expect(fs.existsSync(old)).toBe(false);
});
