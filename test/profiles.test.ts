/** The built-in profiles are data (profiles/*.json): they load as written, and keep the caches' keys. */
import * as fs from 'fs';
import * as path from 'path';
import { readJsonFile } from '../src/util/fsutil';
import { BUILT_IN_PROFILES, PROFILES, VIT_B32 } from '../src/experiments/profiles';
import { pretrainKey } from '../src/experiments/pretrainRun';

test('each built-in profile is its file in profiles/, with the notes (keys starting with _) dropped', () => {
  for (const name of BUILT_IN_PROFILES) {
    const file = readJsonFile<Record<string, unknown>>(path.join(__dirname, '..', 'profiles', `${name}.json`), 'profile');
    expect(file.name).toBe(name);
    expect(Object.keys(file).some((k) => k.startsWith('_'))).toBe(true);
    expect(PROFILES[name]).toEqual(Object.fromEntries(Object.entries(file).filter(([k]) => !k.startsWith('_'))));
    expect(Object.keys(PROFILES[name]).some((k) => k.startsWith('_'))).toBe(false);
  }
  expect(PROFILES.paper.model).toEqual(VIT_B32);
});

test("small's pre-training key is the committed model's (research/results/in-domain/pretrain-small.json): moving the profile to a file changed no cache key", () => {
  const committed = readJsonFile<{ file: string }>(path.join(__dirname, '..', 'research', 'results', 'in-domain', 'pretrain-small.json'), 'pretrain record');
  const p = PROFILES.small;
  expect(committed.file).toBe(`pretrain-small-${pretrainKey(p, p.pretrain.seed, p.pretrain.steps)}.safetensors`);
});

test('every committed result file records the clean commit that computed it (no "+dirty")', () => {
  const root = path.join(__dirname, '..');
  const files = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.json') ? [path.join(dir, e.name)] : []));
  const dirty = (dir: string) => files(path.join(root, dir)).filter((f) => /"commit":\s*"[0-9a-f]+\+dirty"/.test(fs.readFileSync(f, 'utf8'))).map((f) => path.relative(root, f));
  // The headline's: 5 tables, 5 figures, the ablation points, the pre-training record, the preconditions, the slides' index.
  expect(files(path.join(root, 'figures')).length).toBe(14);
  expect(dirty('figures')).toEqual([]);
  expect(files(path.join(root, 'research', 'results', 'in-domain')).length).toBe(12);
  // Two probe results were computed on a tree with uncommitted changes before this check existed; recomputing them
  // takes about two hours (research/README.md says so). No other may join them.
  expect(dirty(path.join('research', 'results'))).toEqual([path.join('research', 'results', 'wide', 'attribute-probe.json'), path.join('research', 'results', 'wide', 'table1.json')]);
});
