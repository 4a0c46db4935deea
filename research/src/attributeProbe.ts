/**
 * The attribute probe (the probes notebook, README "Defenses"). The paper explains RVPT with Perturbation Resistivity: CLIP
 * encodes many features its downstream task does not need, the trigger's among them, so prompts can push the class
 * token far from the backdoored one and still classify. Our MiniCLIP's Fashion-MNIST captions name only the class.
 * This probe pre-trains a second MiniCLIP whose captions also name each image's darkness, size, texture and shape
 * within its class (src/data/attributes.ts; research/profiles/attributes.json), backdoors it the same way, and asks:
 *   1. does it keep more of what the class does not explain (within-class ridge R^2 of each attribute from the clean
 *      model's image embedding; the within-class share of the embedding's variance)?
 *   2. does RVPT then remove the backdoors at less CA (the seed probe's five seeds of VPT and RVPT on both models)?
 */
import { ATTRIBUTES, attributeStats } from '../../src/data/attributes';
import { numImages } from '../../src/data/dataset';
import { forBatches, imageBatch } from '../../src/data/batches';
import { withinClassR2, withinClassVarianceShare } from './decodability';
import { markdownTable } from '../../src/viz/notebook';
import { testSet } from '../../src/experiments/backdoorRun';
import { ensurePretrained } from '../../src/experiments/pretrainRun';
import { Profile } from '../../src/experiments/profiles';
import { committedProbe, probeMarkdown, writeProbe } from './probeFiles';
import { SeedProbe, SeedProbeOptions, runSeedProbe, seedSummaries } from './seedProbe';
import { TableProvenance, signedText, tableProvenance } from '../../src/experiments/tables';

/** The committed profile with attribute captions, made for `small` (relative to the project root). */
export const ATTRIBUTE_PROFILE = 'research/profiles/attributes.json';

export interface AttributeModel {
  profile: string;
  attributeCaptions: boolean;
  /** The clean pre-trained model's zero-shot CA on the main dataset's test set, %. */
  zeroShotCA: number;
  /** Per attribute: within-class ridge R^2 from the clean model's image embedding (5 folds). */
  r2: Record<string, number>;
  /** The within-class share of the embedding's total variance. */
  withinClassShare: number;
  n: number;
}

export interface AttributeRow {
  attack: string;
  method: string;
  profile: string;
  seeds: number;
  /** The undefended model's ASR and CA (the same model at every seed). */
  noDefense: { asr: number; ca: number };
  asrMedian: number;
  /** CA minus No defense. */
  caChangeMedian: number;
  asr: [number, number];
  caChange: [number, number];
}

export interface AttributeProbe {
  probe: 'attributes';
  dataset: string;
  models: AttributeModel[];
  rows: AttributeRow[];
  provenance: TableProvenance;
}

/** The committed probe (research/results/attribute-probe.json), for the probes notebook. */
export function committedAttributeProbe(file?: string): AttributeProbe {
  return committedProbe<AttributeProbe>('attribute-probe', 'Attribute probe', file);
}

/** The clean model's zero-shot CA and how much of each attribute its embedding holds beyond the class. */
export async function attributeModel(profile: Profile, log: (s: string) => void = () => {}): Promise<AttributeModel> {
  const pre = await ensurePretrained(profile, { log });
  try {
    const dataset = profile.datasets.main;
    const test = await testSet(profile, dataset);
    const n = numImages(test);
    const dim = profile.model.embedDim;
    const flat = forBatches(n, 256, dim, new Float32Array(n * dim), (s, e) => pre.model.encodeImage(imageBatch(test, s, e)).embedding);
    const emb = Array.from({ length: n }, (_, i) => Array.from(flat.subarray(i * dim, (i + 1) * dim)));
    const stats = attributeStats(test);
    const r2 = Object.fromEntries(ATTRIBUTES.map((a, k) => [a.name, withinClassR2(emb, Array.from(stats[k]), test.labels)]));
    return { profile: profile.name, attributeCaptions: !!profile.pretrain.attributeCaptions, zeroShotCA: pre.ca[dataset], r2, withinClassShare: withinClassVarianceShare(emb, test.labels), n };
  } finally {
    pre.model.dispose();
  }
}

/** Per attack, method and profile: each seed probe's summary (seedSummaries), the profiles side by side. */
export function attributeRows(probes: SeedProbe[], profiles: string[]): AttributeRow[] {
  const summaries = probes.map(seedSummaries);
  const key = (x: { attack: string; method: string }) => `${x.attack}|${x.method}`;
  const keys = [...new Set(summaries.flatMap((ss) => ss.map(key)))];
  return keys.flatMap((k) =>
    summaries.flatMap((ss, i) => {
      const s = ss.find((x) => key(x) === k);
      if (!s) return [];
      const nd = probes[i].rows.find((r) => r.attack === s.attack)!.noDefense;
      const row: AttributeRow = {
        attack: s.attack,
        method: s.method,
        profile: profiles[i],
        seeds: s.seeds,
        noDefense: { asr: nd.asr, ca: nd.ca },
        asrMedian: s.asr.median,
        caChangeMedian: s.caChange.median,
        asr: [s.asr.min, s.asr.max],
        caChange: [s.caChange.min, s.caChange.max],
      };
      return [row];
    }),
  );
}

export function attributeModelRows(p: AttributeProbe): { header: string[]; rows: string[][] } {
  return {
    header: ['profile', 'attribute captions', 'zero-shot CA', ...ATTRIBUTES.map((a) => `R² ${a.name}`), 'within-class variance share'],
    rows: p.models.map((m) => [m.profile, m.attributeCaptions ? 'yes' : 'no', m.zeroShotCA.toFixed(2), ...ATTRIBUTES.map((a) => m.r2[a.name].toFixed(3)), m.withinClassShare.toFixed(3)]),
  };
}

export function attributeDefenseRows(p: AttributeProbe): { header: string[]; rows: string[][] } {
  return {
    header: ['attack', 'method', 'profile', 'seeds', 'No defense ASR (CA)', 'ASR median [min, max]', 'CA minus No defense, median [min, max]'],
    rows: p.rows.map((r) => [
      r.attack,
      r.method,
      r.profile,
      String(r.seeds),
      `${r.noDefense.asr.toFixed(2)} (${r.noDefense.ca.toFixed(2)})`,
      `${r.asrMedian.toFixed(2)} [${r.asr[0].toFixed(2)}, ${r.asr[1].toFixed(2)}]`,
      `${signedText(r.caChangeMedian, 2)} [${signedText(r.caChange[0], 2)}, ${signedText(r.caChange[1], 2)}]`,
    ]),
  };
}

export function attributeMarkdown(p: AttributeProbe): string {
  const models = attributeModelRows(p);
  return [
    probeMarkdown(
      `Attribute probe: does a MiniCLIP taught features the task does not need let RVPT repel at less CA? (${p.dataset})`,
      "Two clean MiniCLIPs, pre-trained alike but for their captions: the profile's name only the class; the other's also name each image's darkness, size, texture and shape within its class (src/data/attributes.ts). Each backdoored by the six attacks at the profile's settings, then defended by VPT and RVPT at each seed of the seed probe (shots, initialisation, order and augmentation drawn per seed). ASR % over test images whose true class is not the target.",
      attributeDefenseRows(p),
      p.provenance,
    ).trimEnd(),
    '',
    '## What each clean model keeps beyond the class',
    '',
    "R²: within-class ridge regression of each attribute from the clean model's image embedding, 5 folds over the test set (the class explains nothing by construction; higher: the embedding keeps more that the class does not need). Within-class variance share: of the embedding's total variance.",
    '',
    markdownTable(models.header, models.rows),
    '',
  ].join('\n');
}

/**
 * Both models' decodability, both seed probes (cached cells; each writes its own seed-probe file), and
 * attribute-probe.{json,md} in `base`'s results folder (research/results/ at small).
 */
export async function runAttributeProbe(
  base: Profile,
  withAttributes: Profile,
  opts: Pick<SeedProbeOptions, 'attacks' | 'seeds' | 'methods'> & { log?: (s: string) => void } = {},
): Promise<{ path: string; probe: AttributeProbe }> {
  const log = opts.log ?? (() => {});
  if (base.pretrain.attributeCaptions) throw new Error(`Attribute probe: profile '${base.name}' already has attribute captions; the base must be a profile without them (e.g. small).`);
  if (!withAttributes.pretrain.attributeCaptions) {
    throw new Error(`Attribute probe: profile '${withAttributes.name}' has no attribute captions; give a profile file with "pretrain": {"attributeCaptions": true} (e.g. research/profiles/attributes.json).`);
  }
  if (base.name === withAttributes.name) throw new Error(`Attribute probe: both profiles are named '${base.name}'; their caches and results are keyed by name, so the second needs its own.`);
  if (JSON.stringify(base.model) !== JSON.stringify(withAttributes.model) || base.datasets.main !== withAttributes.datasets.main) {
    throw new Error(`Attribute probe: profiles '${base.name}' and '${withAttributes.name}' differ in model or main dataset; the probe compares captions alone.`);
  }
  const t0 = Date.now();
  const profiles = [base, withAttributes];
  const models: AttributeModel[] = [];
  for (const p of profiles) {
    log(`attribute probe: decodability of ${p.name}'s clean model`);
    models.push(await attributeModel(p, log));
  }
  const probes: SeedProbe[] = [];
  for (const p of profiles) {
    log(`attribute probe: seed probe of ${p.name}`);
    probes.push((await runSeedProbe(p, { attacks: opts.attacks, seeds: opts.seeds, methods: opts.methods, log })).probe);
  }
  const config = { profiles: profiles.map((p) => ({ name: p.name, pretrain: p.pretrain })), seedProbes: probes.map((p) => p.provenance.config) };
  const probe: AttributeProbe = {
    probe: 'attributes',
    dataset: base.datasets.main,
    models,
    rows: attributeRows(probes, profiles.map((p) => p.name)),
    provenance: tableProvenance(base, config, base.backdoor.seed, (Date.now() - t0) / 1000),
  };
  return { path: writeProbe(base, 'attribute-probe', probe, attributeMarkdown(probe)), probe };
}
