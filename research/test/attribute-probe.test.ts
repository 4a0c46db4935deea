/**
 * The attribute probe (attributeProbe.ts) and its metric (decodability.ts). The metric on synthetic features whose
 * answer is known; the probe end to end at a cut-down tiny profile: what is tested is the plumbing (two models that
 * differ in their captions alone, both seed probes, the file), not the finding.
 */
import * as fs from 'fs';
import { withinClassR2, withinClassVarianceShare } from '../src/decodability';
import { AttributeProbe, attributeMarkdown, runAttributeProbe } from '../src/attributeProbe';
import { pretrainPath } from '../../src/experiments/pretrainRun';
import { makeRng } from '../../src/util/rng';
import { cutDownTiny, freshCacheSharingData, restoreCacheAfterAll, setup } from '../../test/helpers';

beforeAll(setup);
restoreCacheAfterAll();

test('within-class R²: near 1 when the features hold the value, near 0 when they hold only the class; variance share likewise', () => {
  const rng = makeRng('decodability');
  const n = 300;
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const y = Array.from({ length: n }, () => rng());
  const noise = () => rng() - 0.5;
  const holds = y.map((v, i) => [labels[i] * 5, v + 0.05 * noise(), noise()]);
  const classOnly = y.map((_, i) => [labels[i] * 5, labels[i] === 1 ? 1 : 0, noise()]);
  expect(withinClassR2(holds, y, labels)).toBeGreaterThan(0.95);
  expect(withinClassR2(classOnly, y, labels)).toBeLessThan(0.05);
  // A value that is the class itself is explained away before the regression, whatever the features.
  const byClass = Array.from(labels, (c) => c * 2 + 0.1 * noise());
  expect(Math.abs(withinClassR2(holds, byClass, labels))).toBeLessThan(0.1);
  expect(() => withinClassR2(holds, Array.from(labels, (c) => c), labels)).toThrow(/do not vary within classes/);
  expect(() => withinClassR2(holds.slice(1), y, labels)).toThrow(/299 feature rows, 300 values and 300 labels/);
  expect(withinClassVarianceShare(y.map((_, i) => [labels[i], labels[i] * 2]), labels)).toBeCloseTo(0, 9);
  expect(withinClassVarianceShare(y.map(() => [noise(), noise()]), labels)).toBeGreaterThan(0.95);
});

test('the probe pre-trains a second model that differs in its captions alone, runs both seed probes and writes its file', async () => {
  const base = cutDownTiny('attr-base', { RVPT: { epochs: 2, batch: 10, warmupEpochs: 0 } }, 2);
  const withAttrs = { ...base, name: 'attr-with', pretrain: { ...base.pretrain, attributeCaptions: true } };
  freshCacheSharingData('rvpt-attr-');
  await expect(runAttributeProbe(withAttrs, base)).rejects.toThrow(/profile 'attr-with' already has attribute captions/);
  await expect(runAttributeProbe(base, { ...withAttrs, name: 'attr-base' })).rejects.toThrow(/both profiles are named 'attr-base'/);
  await expect(runAttributeProbe(base, { ...withAttrs, model: { ...base.model, layers: 3 } })).rejects.toThrow(/differ in model or main dataset/);
  const r = await runAttributeProbe(base, withAttrs, { attacks: ['BadNet'], seeds: [0], methods: ['RVPT'] });
  const written = JSON.parse(fs.readFileSync(r.path, 'utf8')) as AttributeProbe;
  expect(written.models.map((m) => [m.profile, m.attributeCaptions])).toEqual([['attr-base', false], ['attr-with', true]]);
  // Two pre-trainings (another key), whose embeddings differ, so their R² differ; each R² is a finite number at most 1.
  expect(pretrainPath(base, base.pretrain.seed, base.pretrain.steps)).not.toBe(pretrainPath(withAttrs, withAttrs.pretrain.seed, withAttrs.pretrain.steps));
  for (const m of written.models) for (const v of Object.values(m.r2)) expect(v).toBeLessThanOrEqual(1);
  expect(written.models[0].r2).not.toEqual(written.models[1].r2);
  expect(written.rows.map((x) => [x.attack, x.method, x.profile, x.seeds])).toEqual([['BadNet', 'RVPT', 'attr-base', 1], ['BadNet', 'RVPT', 'attr-with', 1]]);
  expect(fs.readFileSync(r.path.replace(/json$/, 'md'), 'utf8')).toBe(attributeMarkdown(written));
  expect(fs.existsSync(r.path.replace('attribute-probe.json', 'seed-probe.json'))).toBe(true);
}, 600_000);
