/**
 * The clean pre-training experiment: build the caption corpus and tokenizer from the profile's datasets,
 * train MiniCLIP, measure zero-shot clean accuracy, save a checkpoint. Checkpoints are cached artifacts keyed
 * by everything that determines them, so notebooks and later experiments reuse them.
 */
import { CLIPConfig, WASM_HEAP_BYTES, trainingBytes } from '../model/config';
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../model/clip';
import { TextTokenizer, WordTokenizer } from '../model/tokenizer';
import { cachedEval, externalWeights, loadExternalModel } from './externalWeights';
import { CaptionCorpus, CorpusPart } from '../data/corpus';
import { withCoarseCaptions } from '../data/coarse';
import { loadWeb, webCorpusKey, withNameCaptions } from '../data/web';
import { datasetFingerprint } from '../data/fingerprint';
import { loadManifest } from '../data/manifest';
import { vocabularyTexts } from '../data/captions';
import { withAttributeCaptions } from '../data/attributes';
import { ImageDataset } from '../data/dataset';
import { loadEvalSplit, loadSplit, testSetNames } from '../data/load';
import { sample } from '../data/splits';
import { loadCached, saveCheckpoint } from '../checkpoint/checkpoint';
import { TrainHistory, pretrain, stateInterval } from '../train/pretrain';
import { zeroShotAccuracy } from '../metrics/zeroshot';
import { cacheDir, sha256 } from '../util/fsutil';
import { Profile, profileDatasets } from './profiles';

/**
 * Bump when a code change alters what pre-training produces, so stale cached checkpoints are not reused (backdoored
 * models and controls are keyed by it too). 3: the fused LayerNorm/QuickGELU kernels (src/kernels/fused.c).
 */
export const PRETRAIN_CODE_VERSION = 3;

export interface PretrainData {
  corpus: CaptionCorpus;
  tokenizer: WordTokenizer;
  main: ImageDataset;
  emoji: ImageDataset;
  /** The broad corpus, where the profile has one (datasets.web). */
  web?: ImageDataset;
}

/** The main and emoji pre-training splits as the profile captions them. */
async function captionedSplits(profile: Profile, log?: (s: string) => void): Promise<{ main: ImageDataset; emoji: ImageDataset }> {
  let main = await loadSplit(profile.datasets.main, 'pretrain', log);
  if (profile.pretrain.mainLimit) main = sample(main, profile.pretrain.mainLimit, 'pretrain-limit');
  if (profile.pretrain.attributeCaptions) main = withAttributeCaptions(main);
  if (profile.pretrain.mainCaptions === 'coarse') main = withCoarseCaptions(main, profile.pretrain.namedShare ?? 0);
  let emoji = await loadSplit(profile.datasets.emoji, 'pretrain', log);
  if (profile.pretrain.emojiCaptions === 'names') {
    const em = loadManifest(profile.datasets.emoji);
    if (em.kind !== 'emoji') throw new Error(`Profile '${profile.name}': pretrain.emojiCaptions 'names' needs an emoji manifest in datasets.emoji; '${profile.datasets.emoji}' is a '${em.kind}' manifest.`);
    emoji = withNameCaptions(emoji, em);
  }
  return { main, emoji };
}

/** The corpus parts other than the main dataset's: the emoji set repeated, and the web corpus where there is one. */
export function sideParts(profile: Profile, data: { emoji: ImageDataset; web?: ImageDataset }, emojiRepeat: number): CorpusPart[] {
  return [{ data: data.emoji, repeat: emojiRepeat }, ...(data.web ? [{ data: data.web, repeat: profile.pretrain.webRepeat ?? 1 }] : [])];
}

const dataMemo = new Map<string, Promise<PretrainData>>();

/**
 * The pre-training corpus and tokenizer of a profile, built once per process: a backdoor fine-tune, its control and
 * CleanCLIP each ask for it, and building it reads the web corpus (353 MB at `transfer`) and captions 55,000 images.
 */
export function pretrainData(profile: Profile, log?: (s: string) => void): Promise<PretrainData> {
  // The seed and steps do not change the data; everything else that does is in the key.
  const key = pretrainKey(profile, 0, 0);
  let hit = dataMemo.get(key);
  if (!hit) {
    hit = buildPretrainData(profile, log);
    dataMemo.set(key, hit);
    hit.catch(() => dataMemo.delete(key)); // a failed build is not remembered
  }
  return hit;
}

async function buildPretrainData(profile: Profile, log?: (s: string) => void): Promise<PretrainData> {
  const { main, emoji } = await captionedSplits(profile, log);
  const web = profile.datasets.web ? await loadWeb(profile.datasets.web, log) : undefined;
  const corpus = new CaptionCorpus([{ data: main, repeat: 1 }, ...sideParts(profile, { emoji, web }, profile.pretrain.emojiRepeat)]);
  const tokenizer = WordTokenizer.fromCorpus(vocabularyTexts([main, emoji, ...(web ? [web] : [])]));
  if (tokenizer.size > profile.model.vocabSize) {
    throw new Error(`The caption vocabulary has ${tokenizer.size} words but profile '${profile.name}' allows vocabSize ${profile.model.vocabSize}. Raise model.vocabSize.`);
  }
  return { corpus, tokenizer, main, emoji, web };
}

export function pretrainKey(profile: Profile, seed: number, steps: number): string {
  return sha256(JSON.stringify({ v: PRETRAIN_CODE_VERSION, model: profile.model, pretrain: { ...profile.pretrain, seed, steps }, datasets: profile.datasets, ...(profile.datasets.web ? { web: webCorpusKey(profile.datasets.web), emoji: datasetFingerprint(profile.datasets.emoji).hash } : {}) })).slice(0, 12);
}

export function pretrainPath(profile: Profile, seed: number, steps: number): string {
  return cacheDir('artifacts', `pretrain-${profile.name}-${pretrainKey(profile, seed, steps)}.safetensors`);
}

/**
 * Zero-shot CA on each test set of the given datasets (default: the profile's), distribution shifts included
 * (emoji renditions, ImageNet-V2...; testSetNames).
 */
export async function cleanAccuracy(
  model: MiniCLIP,
  tokenizer: TextTokenizer,
  profile: Profile,
  log?: (s: string) => void,
  datasets: string[] = profileDatasets(profile),
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of new Set(datasets.flatMap((d) => testSetNames(d)))) {
    const [manifest, rendition] = name.split('/');
    out[name] = zeroShotAccuracy(model, tokenizer, await loadEvalSplit(manifest, rendition ? `test:${rendition}` : 'test', profile.evalLimit, log));
  }
  return out;
}

/**
 * The clean model's zero-shot CA: measured after pre-training here, or for a user's checkpoint (paper scale) measured
 * on first use and cached (cachedEval), since ensurePretrained does not evaluate real checkpoints.
 */
export async function checkpointCA(profile: Profile, pre: { model: MiniCLIP; tokenizer: TextTokenizer; checkpoint: string; ca: Record<string, number> }, log?: (s: string) => void): Promise<Record<string, number>> {
  if (Object.keys(pre.ca).length) return pre.ca;
  const names = profileDatasets(profile);
  return cachedEval(profile, pre.checkpoint, { kind: 'clean', testSets: [...new Set(names.flatMap((d) => testSetNames(d)))] }, () => cleanAccuracy(pre.model, pre.tokenizer, profile, log, names));
}

export interface PretrainResult {
  checkpoint: string;
  ca: Record<string, number>;
  history: TrainHistory;
  profile: string;
  seed: number;
  steps: number;
  cached: boolean;
}

export interface PretrainOptions {
  seed?: number;
  steps?: number;
  /** Train again even if a valid cached checkpoint exists. */
  force?: boolean;
  quiet?: boolean;
  log?: (s: string) => void;
}

/** Load the cached pre-trained model for this profile and seed, training it first if needed. */
/**
 * Refuse a model too large to train on the WASM backend before allocating it (it would abort inside WASM after
 * minutes): the estimate of trainingBytes against WASM's 4 GiB heap. Other backends are not limited here.
 */
export function checkFitsBackend(config: CLIPConfig, batch: number, what: string): void {
  if (tf.getBackend() !== 'wasm') return;
  const need = trainingBytes(config, batch);
  if (need > 0.85 * WASM_HEAP_BYTES) {
    throw new Error(`${what}: training needs about ${(need / 1024 ** 3).toFixed(1)} GiB, more than the WASM backend's 4 GiB heap holds. Lower model.width, model.layers or the batch, or use a native backend (--backend tensorflow, with @tensorflow/tfjs-node installed).`);
  }
}

export async function ensurePretrained(profile: Profile, opts: PretrainOptions = {}): Promise<PretrainResult & { model: MiniCLIP; tokenizer: TextTokenizer }> {
  const seed = opts.seed ?? profile.pretrain.seed;
  const steps = opts.steps ?? profile.pretrain.steps;
  const ext = externalWeights(profile);
  if (ext) {
    // Real CLIP: the user's checkpoint is the clean model (its CA is measured by `rvpt eval`, not here).
    const { model, tokenizer } = loadExternalModel(ext, ext.clean, profile);
    return { model, tokenizer, checkpoint: ext.clean, ca: {}, history: { loss: [], lr: [], tensorsPerEpoch: [], seconds: 0 }, profile: profile.name, seed, steps: 0, cached: true };
  }
  const file = pretrainPath(profile, seed, steps);
  const log = opts.log ?? ((s: string) => process.env.RVPT_QUIET || process.stderr.write(`[rvpt] ${s}\n`));
  const ck = opts.force ? null : loadCached(file, profile.model, log);
  if (ck) {
    const info = ck.info as unknown as { metrics: { ca: Record<string, number> }; history: TrainHistory };
    return { model: ck.model, tokenizer: ck.tokenizer, checkpoint: file, ca: info.metrics.ca, history: info.history, profile: profile.name, seed, steps, cached: true };
  }
  checkFitsBackend(profile.model, profile.pretrain.batch, `profile '${profile.name}' (model, pretrain.batch)`);
  const data = await pretrainData(profile, log);
  log(`pre-training '${profile.name}': ${data.corpus.size} pairs per epoch, ${steps} steps of ${profile.pretrain.batch}, vocabulary ${data.tokenizer.size} words`);
  const model = MiniCLIP.init(profile.model, seed);
  const history = await pretrain(model, data.tokenizer, data.corpus, { ...profile.pretrain, seed, steps }, {
    stateFile: file.replace(/\.safetensors$/, '.state.safetensors'),
    stateEvery: stateInterval(steps),
    quiet: opts.quiet,
  });
  const t0 = Date.now();
  const ca = await cleanAccuracy(model, data.tokenizer, profile, log);
  const evalSeconds = (Date.now() - t0) / 1000;
  log(`zero-shot CA: ${Object.entries(ca).map(([k, v]) => `${k} ${v.toFixed(2)}%`).join(', ')}`);
  saveCheckpoint(file, model, data.tokenizer, {
    kind: 'pretrain',
    config: profile.model,
    seed,
    profile: profile.name,
    pretrain: { ...profile.pretrain, seed, steps },
    datasets: profile.datasets,
    corpusSize: data.corpus.size,
    metrics: { ca, finalLoss: history.loss[history.loss.length - 1] },
    history,
    timings: { trainSeconds: history.seconds, evalSeconds },
    numTensorsAfter: tf.memory().numTensors,
  });
  return { model, tokenizer: data.tokenizer, checkpoint: file, ca, history, profile: profile.name, seed, steps, cached: false };
}
