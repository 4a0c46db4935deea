/**
 * The shipped checkpoints (checkpoints/, teach mode): every file still has the exact name the pipeline asks for at
 * profile `transfer` (a change of profile, data or code version renames what the pipeline looks for, and teach mode
 * would then train instead of loading: this test says so first), its bytes match its recorded sha256, the folder stays
 * within its 30 MB budget, and teach mode seeds an empty cache from it while the default never does.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cacheKey, sha256, useShippedCheckpoints } from '../src/util/fsutil';
import { getProfile } from '../src/experiments/profiles';
import { pretrainKey, pretrainPath } from '../src/experiments/pretrainRun';
import { backdoorPlan } from '../src/experiments/backdoorRun';
import { defenseConfig } from '../src/experiments/defenseRun';
import { ANALYSIS_CODE_VERSION } from '../src/experiments/analysis/common';
import { makeTrigger } from '../src/attacks/registry';
import { loadCached } from '../src/checkpoint/checkpoint';

const dir = path.join(__dirname, '..', 'checkpoints');
const profile = getProfile('transfer');
const files = fs.readdirSync(dir).filter((f) => f !== 'README.md');

test('the shipped files are exactly the ones the pipeline asks for at profile transfer', () => {
  const main = profile.datasets.main;
  const emoji = profile.datasets.emoji;
  const bd = (attack: string, dataset = main) => backdoorPlan(profile, attack, { dataset }).file;
  const prompts = (attack: string, method: 'VPT' | 'RVPT') =>
    `prompts-transfer-${attack}-${method}-${cacheKey({ v: ANALYSIS_CODE_VERSION, backdoor: bd(attack), method, config: defenseConfig(profile, method), shots: profile.shots, dataset: main }, 12).key}.safetensors`;
  const trigger = (attack: string) => `trigger-${attack}-${sha256(JSON.stringify({ key: `${pretrainKey(profile, profile.pretrain.seed, profile.pretrain.steps)}-${main}`, ...(attack === 'ISSBA' ? { c: makeTrigger(attack, profile.triggers?.[attack]).config } : { config: makeTrigger(attack, profile.triggers?.[attack]).config }) })).slice(0, 12)}.json`;
  const models = [pretrainPath(profile, profile.pretrain.seed, profile.pretrain.steps), ...['BadNet', 'Blended', 'WaNet', 'BadCLIP'].map((a) => bd(a)), bd('BadNet', emoji)].map((f) => path.basename(f));
  const expected = [
    ...models.flatMap((f) => [f, f.replace(/\.safetensors$/, '.json')]),
    ...['BadNet', 'Blended', 'WaNet', 'BadCLIP'].flatMap((a) => (['VPT', 'RVPT'] as const).flatMap((m) => [prompts(a, m), `${prompts(a, m)}.sha256`])),
    ...['BadCLIP', 'ISSBA', 'TrojVQA'].flatMap((a) => [trigger(a), `${trigger(a)}.sha256`]),
  ];
  expect(files.sort()).toEqual(expected.sort());
});

test('each shipped file matches its recorded sha256, and the folder stays within 30 MB', () => {
  let total = 0;
  for (const f of files) {
    const bytes = fs.readFileSync(path.join(dir, f));
    total += bytes.length;
    if (f.endsWith('.safetensors') && fs.existsSync(path.join(dir, f.replace(/\.safetensors$/, '.json')))) {
      expect({ f, sha: sha256(bytes) }).toEqual({ f, sha: JSON.parse(fs.readFileSync(path.join(dir, f.replace(/\.safetensors$/, '.json')), 'utf8')).sha256 });
    } else if (fs.existsSync(path.join(dir, `${f}.sha256`))) {
      expect({ f, sha: sha256(bytes) }).toEqual({ f, sha: fs.readFileSync(path.join(dir, `${f}.sha256`), 'utf8').trim().split(/\s+/)[0] });
    }
  }
  expect(total).toBeLessThanOrEqual(30e6);
});

test('teach mode seeds an empty cache from checkpoints/; the default mode never does', () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-teach-'));
  const before = process.env.RVPT_CACHE;
  process.env.RVPT_CACHE = cache;
  try {
    const file = pretrainPath(profile, profile.pretrain.seed, profile.pretrain.steps);
    expect(file.startsWith(cache)).toBe(true);
    useShippedCheckpoints(false);
    expect(loadCached(file, profile.model, () => {})).toBeNull();
    expect(fs.existsSync(file)).toBe(false);
    useShippedCheckpoints(true);
    const ck = loadCached(file, profile.model, () => {});
    expect(ck).not.toBeNull();
    expect(ck!.model.numParams()).toBe(997185);
    ck!.model.dispose();
    expect(fs.existsSync(file.replace(/\.safetensors$/, '.json'))).toBe(true);
  } finally {
    useShippedCheckpoints(false);
    if (before === undefined) delete process.env.RVPT_CACHE;
    else process.env.RVPT_CACHE = before;
    fs.rmSync(cache, { recursive: true, force: true });
  }
});
