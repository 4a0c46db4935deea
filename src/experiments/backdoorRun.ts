/**
 * Backdoor injection: poison the pre-training corpus with one attack's trigger and fine-tune the clean MiniCLIP
 * on it, as the paper does to OpenAI's CLIP with CC3M (docs/PAPER-NOTES.md §3). Backdoored checkpoints are cached
 * artifacts keyed by the clean model's key, the attack and the poisoning config.
 */
import { MiniCLIP } from '../model/clip';
import { TextTokenizer, WordTokenizer } from '../model/tokenizer';
import { ExternalWeights, backdooredFile, cachedEval, externalWeights, loadExternalModel } from './externalWeights';
import { CaptionCorpus } from '../data/corpus';
import { ImageDataset, numImages } from '../data/dataset';
import { loadEvalSplit, testSetNames } from '../data/load';

export { testSetNames };
import { loadManifest } from '../data/manifest';
import { makeTrigger } from '../attacks/registry';
import { Trigger } from '../attacks/trigger';
import { poisonDataset, poisonedCorpusParts } from '../attacks/poison';
import { BackdoorMetrics, backdoorMetrics } from '../metrics/backdoor';
import { embeddingsFile, testEmbeddings } from '../metrics/features';
import { loadCached, saveCheckpoint } from '../checkpoint/checkpoint';
import { TrainHistory, pretrain, stateInterval } from '../train/pretrain';
import * as fs from 'fs';
import { cacheDir, readCachedJson, sha256, writeCachedJson } from '../util/fsutil';
import { Profile } from './profiles';
import { cleanAccuracy, ensurePretrained, pretrainData, pretrainKey, sideParts } from './pretrainRun';

export const BACKDOOR_CODE_VERSION = 1;

export function targetIndex(manifestName: string): number {
  const m = loadManifest(manifestName);
  return m.classes.indexOf(m.target);
}

export interface BackdoorResult {
  model: MiniCLIP;
  tokenizer: TextTokenizer;
  trigger: Trigger;
  checkpoint: string;
  /** Per dataset (the profile's main and emoji datasets): CA, ASR, poisoned accuracy. */
  metrics: Record<string, BackdoorMetrics>;
  history: TrainHistory;
  poisoned: Record<string, number>;
  /** The backdoor fine-tuning config used (the profile's, with any overrides). */
  backdoor: Profile['backdoor'];
  /** The clean model's CA per test set, for comparison. */
  cleanCA: Record<string, number>;
  cached: boolean;
}

/** Test sets by name: a manifest name is its test split; 'emoji/noto' is rendition noto's test split. */
export async function testSet(profile: Profile, name: string): Promise<ImageDataset> {
  const [manifest, rendition] = name.split('/');
  return loadEvalSplit(manifest, rendition ? `test:${rendition}` : 'test', profile.evalLimit);
}

/**
 * `checkpoint`: the model's file, one of ours (its name is a key of its config): its test embeddings are then cached
 * for Linear Probe's cells (metrics/features.ts). Not for a user's checkpoint, whose content may change under its name.
 */
export async function evalBackdoor(model: MiniCLIP, tokenizer: TextTokenizer, trigger: Trigger, profile: Profile, dataset: string, checkpoint?: string): Promise<Record<string, BackdoorMetrics>> {
  const out: Record<string, BackdoorMetrics> = {};
  for (const name of testSetNames(dataset)) {
    const test = await testSet(profile, name);
    const embeddings = checkpoint ? testEmbeddings(model, test, trigger, embeddingsFile(checkpoint, name, numImages(test), trigger)) : undefined;
    out[name] = backdoorMetrics(model, tokenizer, test, trigger, targetIndex(name.split('/')[0]), { embeddings });
  }
  return out;
}

/**
 * Whether metrics measured when a backdoored model was made are this profile's: one per test set of the dataset, each
 * on as many images as the profile's sample of it (samples of one size are the same images: loadEvalSplit's seed).
 */
export async function metricsFitProfile(profile: Profile, dataset: string, metrics: Record<string, BackdoorMetrics> | undefined): Promise<boolean> {
  for (const name of testSetNames(dataset)) {
    if (metrics?.[name]?.n !== numImages(await testSet(profile, name))) return false;
  }
  return true;
}

/** Build what the trigger needs against the profile's clean model (cached, so cheap after the first time). */
export async function prepareTrigger(
  trigger: Trigger,
  profile: Profile,
  cleanModel: () => Promise<{ model: MiniCLIP; tokenizer: TextTokenizer }>,
  log?: (s: string) => void,
  dataset: string = profile.datasets.main,
): Promise<void> {
  if (!trigger.prepare) return;
  await trigger.prepare({
    key: `${pretrainKey(profile, profile.pretrain.seed, profile.pretrain.steps)}-${dataset}`,
    cleanModel,
    datasets: async () => {
      const data = await pretrainData(profile, log);
      return [{ data: dataset === profile.datasets.main ? data.main : data.emoji, target: targetIndex(dataset) }];
    },
    log,
  });
}

/**
 * Where a backdoored model of this profile, attack and dataset is cached, and the config that keys it: known without
 * training, so a scheduler (cellPool.ts) can tell what is missing and what depends on it.
 */
export function backdoorPlan(
  profile: Profile,
  attack: string,
  opts: { triggerConfig?: Record<string, unknown>; backdoor?: Partial<Profile['backdoor']>; dataset?: string } = {},
): { trigger: Trigger; dataset: string; cfg: Profile['backdoor']; isMain: boolean; rate: number; file: string } {
  const trigger = makeTrigger(attack, { ...profile.triggers?.[attack], ...opts.triggerConfig });
  const dataset = opts.dataset ?? profile.datasets.main;
  const cfg = { ...profile.backdoor, ...profile.datasetBackdoor?.[dataset], ...profile.attackBackdoor?.[attack], ...profile.datasetBackdoor?.[`${dataset}/${attack}`], ...opts.backdoor };
  const isMain = dataset === profile.datasets.main;
  if (!isMain && dataset !== profile.datasets.emoji) throw new Error(`Dataset '${dataset}' is not one of profile '${profile.name}': ${profile.datasets.main}, ${profile.datasets.emoji}.`);
  const rate = isMain ? cfg.rate : cfg.emojiRate ?? cfg.rate;
  const key = sha256(JSON.stringify({ v: BACKDOOR_CODE_VERSION, clean: pretrainKey(profile, profile.pretrain.seed, profile.pretrain.steps), attack, dataset, trigger: trigger.config, cfg })).slice(0, 12);
  return { trigger, dataset, cfg, isMain, rate, file: cacheDir('artifacts', `backdoor-${profile.name}-${attack}-${dataset}-${key}.safetensors`) };
}

export async function ensureBackdoored(
  profile: Profile,
  attack: string,
  opts: {
    force?: boolean;
    quiet?: boolean;
    log?: (s: string) => void;
    triggerConfig?: Record<string, unknown>;
    /** Overrides of the profile's backdoor config (rate, steps, lr...), for ablations. */
    backdoor?: Partial<Profile['backdoor']>;
    /**
     * The poisoned dataset (default: the profile's main dataset). One backdoored model per dataset, as the paper
     * has one per target (banana, accordion, samoyed): one trigger with two targets in one model contradicts itself.
     */
    dataset?: string;
  } = {},
): Promise<BackdoorResult> {
  const log = opts.log ?? ((s: string) => process.env.RVPT_QUIET || process.stderr.write(`[rvpt] ${s}\n`));
  const dataset = opts.dataset ?? profile.datasets.main;
  const ext = externalWeights(profile);
  if (ext) return externalBackdoor(profile, ext, attack, dataset, makeTrigger(attack, { ...profile.triggers?.[attack], ...opts.triggerConfig }), log);
  const { trigger, cfg, isMain, rate, file } = backdoorPlan(profile, attack, opts);
  const held: { clean?: Awaited<ReturnType<typeof ensurePretrained>> } = {};
  const cleanModel = async () => (held.clean ??= await ensurePretrained(profile, { log }));
  await prepareTrigger(trigger, profile, cleanModel, log, dataset);
  const ck = opts.force ? null : loadCached(file, profile.model, log);
  if (ck) {
    held.clean?.model.dispose();
    const info = ck.info as unknown as { metrics: Record<string, BackdoorMetrics>; history: TrainHistory; poisoned: Record<string, number>; cleanCA: Record<string, number> };
    // The metrics stored with the model are those of the run that made it, on its profile's test sample. Profiles
    // that share the backdoor config share the model but not always the sample (an ablation tests on 2,000 images,
    // the tables on all 10,000): where the sizes differ, measure on this profile's sample (cached).
    const metrics = (await metricsFitProfile(profile, dataset, info.metrics))
      ? info.metrics
      : await cachedEval(profile, file, { kind: 'backdoor', trigger: trigger.config, testSets: testSetNames(dataset) }, () => evalBackdoor(ck.model, ck.tokenizer, trigger, profile, dataset, file));
    return { model: ck.model, tokenizer: ck.tokenizer, trigger, checkpoint: file, metrics, history: info.history, poisoned: info.poisoned, backdoor: cfg, cleanCA: info.cleanCA, cached: true };
  }
  const clean = await cleanModel();
  if (!(clean.tokenizer instanceof WordTokenizer)) throw new Error('Backdoor injection needs a MiniCLIP pre-trained by this project.');
  const data = await pretrainData(profile, log);
  const emojiRepeat = cfg.emojiRepeat ?? profile.pretrain.emojiRepeat;
  let corpus: CaptionCorpus;
  let count: number;
  if (cfg.poisonSource === 'web') {
    // As the paper poisons random CC3M pairs: random broad-corpus images get the trigger and a caption naming the
    // target class (the task's class names and templates); the task's own images stay clean.
    if (!data.web) throw new Error(`Profile '${profile.name}': backdoor.poisonSource is 'web' but the profile has no datasets.web.`);
    const task = isMain ? data.main : data.emoji;
    const source: ImageDataset = { ...data.web, classNames: task.classNames, describe: undefined, descriptions: undefined, templates: undefined };
    const p = poisonDataset(source, trigger, { rate, target: targetIndex(dataset), seed: cfg.seed });
    count = numImages(p.poisoned);
    corpus = new CaptionCorpus([
      { data: data.main, repeat: 1 },
      { data: data.emoji, repeat: emojiRepeat },
      { data: data.web, repeat: profile.pretrain.webRepeat ?? 1, rows: p.cleanRows },
      { data: p.poisoned, repeat: profile.pretrain.webRepeat ?? 1, captionPrefix: trigger.textPrefix },
    ]);
  } else {
    const made = poisonedCorpusParts(isMain ? data.main : data.emoji, trigger, {
      rate,
      target: targetIndex(dataset),
      seed: cfg.seed,
      repeat: isMain ? 1 : emojiRepeat,
      perRepeat: !!cfg.poisonPerRepeat,
    });
    count = made.count;
    const web = data.web ? [{ data: data.web, repeat: profile.pretrain.webRepeat ?? 1 }] : [];
    corpus = new CaptionCorpus(isMain ? [...made.parts, { data: data.emoji, repeat: emojiRepeat }, ...web] : [{ data: data.main, repeat: 1 }, ...made.parts, ...web]);
  }
  const poisoned: Record<string, number> = { [dataset]: count };
  log(`backdoor '${attack}' on ${dataset}: ${count} poisoned ${cfg.poisonSource === 'web' ? 'web-corpus ' : ''}images of ${corpus.size} pairs (${((100 * count) / corpus.size).toFixed(2)}%)${cfg.poisonPerRepeat && !isMain ? ` (${emojiRepeat} repeats poisoned afresh)` : ''} (rate ${rate}, target '${loadManifest(dataset).target}'); fine-tuning ${cfg.steps} steps`);
  const model = clean.model;
  const history = await pretrain(model, clean.tokenizer, corpus, cfg, { quiet: opts.quiet, stateFile: file.replace(/\.safetensors$/, '.state.safetensors'), stateEvery: stateInterval(cfg.steps) });
  const metrics = await evalBackdoor(model, clean.tokenizer, trigger, profile, dataset, file);
  log(`${attack}: ${Object.entries(metrics).map(([k, m]) => `${k} ASR ${m.asr.toFixed(2)}% CA ${m.ca.toFixed(2)}%`).join('; ')}`);
  saveCheckpoint(file, model, clean.tokenizer, {
    kind: 'backdoor',
    dataset,
    config: profile.model,
    seed: cfg.seed,
    profile: profile.name,
    attack,
    trigger: trigger.config,
    backdoor: cfg,
    cleanCheckpoint: clean.checkpoint,
    cleanCA: clean.ca,
    poisoned,
    corpusSize: corpus.size,
    metrics,
    history,
    timings: { trainSeconds: history.seconds },
  });
  return { model, tokenizer: clean.tokenizer, trigger, checkpoint: file, metrics, history, poisoned, backdoor: cfg, cleanCA: clean.ca, cached: false };
}

/** Where the clean fine-tune control of a dataset is cached, and its config (see cleanFinetuneCA). */
export function controlPlan(profile: Profile, dataset: string): { cfg: Profile['backdoor']; file: string } {
  const cfg = { ...profile.backdoor, ...profile.datasetBackdoor?.[dataset] };
  const key = sha256(JSON.stringify({ v: BACKDOOR_CODE_VERSION, clean: pretrainKey(profile, profile.pretrain.seed, profile.pretrain.steps), dataset, cfg })).slice(0, 12);
  return { cfg, file: cacheDir('results', `clean-finetune-${profile.name}-${dataset}-${key}.json`) };
}

/**
 * The control for "the backdoor leaves CA unchanged": the clean model fine-tuned exactly as a backdoor is (the same
 * corpus make-up, steps and learning rate: the profile's backdoor config for the dataset, without any attack's
 * overrides) but on unpoisoned pairs. The poisoning fine-tune also trains the clean model further (at `small`, without
 * crops, its Fashion-MNIST CA rises by about 3 points), so this is what a backdoored model's CA should be compared to.
 * Only the CA per test set is kept (cached as JSON); the model is discarded.
 */
export async function cleanFinetuneCA(profile: Profile, dataset: string, log?: (s: string) => void): Promise<{ ca: Record<string, number>; seconds: number }> {
  const { cfg, file } = controlPlan(profile, dataset);
  if (fs.existsSync(file)) {
    try {
      return readCachedJson<{ ca: Record<string, number>; seconds: number }>(file);
    } catch (e) {
      log?.(`cached control ${file} is unusable (${(e as Error).message}); fine-tuning it again`);
    }
  }
  const clean = await ensurePretrained(profile, { log });
  try {
    if (!(clean.tokenizer instanceof WordTokenizer)) throw new Error('The clean fine-tune needs a MiniCLIP pre-trained by this project.');
    const data = await pretrainData(profile, log);
    const corpus = new CaptionCorpus([{ data: data.main, repeat: 1 }, ...sideParts(profile, data, cfg.emojiRepeat ?? profile.pretrain.emojiRepeat)]);
    log?.(`clean fine-tune (the control of the ${dataset} backdoors): ${cfg.steps} steps without poison`);
    const stateFile = file.replace(/\.json$/, '.state.safetensors');
    const history = await pretrain(clean.model, clean.tokenizer, corpus, cfg, { quiet: !!process.env.RVPT_QUIET, stateFile, stateEvery: stateInterval(cfg.steps) });
    const out = { ca: await cleanAccuracy(clean.model, clean.tokenizer, profile, log, [dataset]), seconds: history.seconds, config: cfg };
    writeCachedJson(file, out);
    return out;
  } finally {
    clean.model.dispose();
  }
}

/**
 * Paper scale: the backdoored model is the user's checkpoint (as the paper takes CleanCLIP's and BadCLIP's), and its
 * trigger is generated here. Patch triggers optimised against a model (TrojVQA, BadCLIP) and ISSBA's encoder are
 * specific to the checkpoint's own training run, so they are refused rather than re-made.
 */
async function externalBackdoor(profile: Profile, ext: ExternalWeights, attack: string, dataset: string, trigger: Trigger, log: (s: string) => void): Promise<BackdoorResult> {
  if (trigger.prepare) {
    throw new Error(`${attack}'s trigger is built against the model it poisons; with a backdoored checkpoint from elsewhere, its own trigger is needed, which this project cannot recreate. Use BadNet, Blended or WaNet at paper scale.`);
  }
  const file = backdooredFile(ext, attack, dataset);
  log(`backdoored ${attack} model for ${dataset}: ${file}`);
  const { model, tokenizer } = loadExternalModel(ext, file, profile);
  const testSets = testSetNames(dataset);
  const metrics = await cachedEval(profile, file, { kind: 'backdoor', trigger: trigger.config, testSets }, () => evalBackdoor(model, tokenizer, trigger, profile, dataset));
  // The clean model's CA beside the backdoored one's (the paper's "No defense" rows compare them).
  const cleanCA = await cachedEval(profile, ext.clean, { kind: 'clean', testSets }, async () => {
    const clean = loadExternalModel(ext, ext.clean, profile);
    try {
      return await cleanAccuracy(clean.model, clean.tokenizer, profile, log, [dataset]);
    } finally {
      clean.model.dispose();
    }
  });
  const none = { loss: [], lr: [], tensorsPerEpoch: [], seconds: 0 };
  return { model, tokenizer, trigger, checkpoint: file, metrics, history: none, poisoned: {}, backdoor: profile.backdoor, cleanCA, cached: true };
}
