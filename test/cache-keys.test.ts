/**
 * Cache keys name results by their inputs, not by where the cache lies: a backdoored checkpoint inside the cache
 * enters a key relative to it, so moving the project (or pointing RVPT_CACHE elsewhere) keeps every cached cell.
 * Results cached under the older absolute-path keys are adopted (renamed), not computed again.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { adoptLegacy, cacheDir, cacheKey } from '../src/util/fsutil';
import { cellFile } from '../src/experiments/defenseRun';
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
