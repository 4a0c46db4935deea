/**
 * Profiles: one named bundle of sizes for everything, so that a test, a notebook and `make reproduce` agree.
 * `tiny` is for tests and CI (each step seconds, not minutes); `small` is the reproduction default.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CLIPConfig, CLIP_MEAN, CLIP_STD } from '../model/config';
import { addManifestDirs } from '../data/manifest';
import { readJsonFile } from '../util/fsutil';
import { DEFAULT_AUGMENT } from '../data/augment';
import { PretrainConfig } from '../train/pretrain';

export interface Profile {
  name: string;
  model: CLIPConfig;
  /** Data manifests: the main dataset (Table 1's role) and the emoji dataset (Table 2/3's role). */
  datasets: { main: string; emoji: string; /** Further Table 2 datasets (the paper: OxfordPets beside Caltech101). */ more?: string[] };
  pretrain: PretrainConfig & {
    /** Use at most this many main-dataset pairs (null: all). */
    mainLimit: number | null;
    /** How many times the small emoji pre-training set is repeated per epoch. */
    emojiRepeat: number;
    /**
     * Captions of the main dataset also name each image's attributes (darkness, size, texture, shape, ranked within
     * its class; src/data/attributes.ts), as web captions do: the attribute probe (profiles/attributes.json). The
     * same corpus feeds the backdoor fine-tunes and CleanCLIP. Default false.
     */
    attributeCaptions?: boolean;
  };
  /** Backdoor injection: fine-tune the clean model on the poisoned corpus (PAPER.md section 3). */
  backdoor: PretrainConfig & {
    /** Share of each dataset's pre-training pairs replaced by poisoned pairs (the paper: 1,500 / 500K = 0.3%). */
    rate: number;
    /** The emoji dataset's rate, when it differs (its pre-training set is small: 5% is a few dozen pairs). */
    emojiRate?: number;
    /** Repeats of the emoji set in the poisoned corpus (default: the pre-training's emojiRepeat). */
    emojiRepeat?: number;
    /** Poison each repeat of a repeated set afresh (other rows, fresh trigger randomness) rather than once. */
    poisonPerRepeat?: boolean;
  };
  /** Clean shots per class for the few-shot defenses (the paper: 16). */
  shots: number;
  /** Defense hyperparameters per method, where the profile's scale needs other values than the defaults. */
  defenses: Record<string, Record<string, unknown>>;
  /** Backdoor fine-tuning overrides per poisoned dataset ('emoji'), or per dataset and attack ('emoji/WaNet', applied last). */
  datasetBackdoor?: Record<string, Partial<Profile['backdoor']>>;
  /** Backdoor fine-tuning overrides per attack (rates or learning rates an attack needs to take at this scale). */
  attackBackdoor?: Record<string, Partial<Profile['backdoor']>>;
  /** Trigger parameters per attack, where the profile's scale needs other values than the attack's defaults. */
  triggers?: Record<string, Record<string, unknown>>;
  /** Evaluate on at most this many test images per dataset (null: all). */
  evalLimit: number | null;
  benchBatch: number;
  /**
   * Real CLIP checkpoints instead of pre-training and backdoor injection (the `paper` profile): a JSON file (see
   * data-manifests/paper-weights.example.json; env RVPT_WEIGHTS overrides) naming the clean model, the tokenizer
   * and the backdoored checkpoints per attack.
   */
  weightsFile?: string;
  /**
   * Processes training side by side (cellPool.ts): the backdoor fine-tunes, their clean controls and the defense
   * cells of the tables, and the ablations' cells. Each run trains on one thread, so 2 uses both cores of a 2-core
   * machine. Default 1.
   */
  jobs?: number;
  /** Folders of data manifests searched before data-manifests/ (a profile file's own datasets). */
  manifests?: string[];
  /** The supervised reference ViT of the PR figure (steps, batch, lr, seed), where the defaults do not fit. */
  supervised?: Partial<{ steps: number; batch: number; lr: number; seed: number }>;
  /** Analysis figures: test images per PR/attention/embedding sample, and the ablation runs' settings. */
  analysis?: { sample?: number; ablationEpochs?: number; ablationEvalLimit?: number; ablationAttacks?: string[]; ablationGrid?: Record<string, number[]> };
}

/** OpenAI CLIP ViT-B/32 (PAPER.md section 6): what the `paper` profile expects its checkpoints to be. */
export const VIT_B32: CLIPConfig = {
  imageSize: 224,
  patch: 32,
  width: 768,
  layers: 12,
  heads: 12,
  embedDim: 512,
  textWidth: 512,
  textLayers: 12,
  textHeads: 8,
  contextLength: 77,
  vocabSize: 49408,
  mean: CLIP_MEAN,
  std: CLIP_STD,
};

/*
 * Sizes for this 2-core machine. The paper's ViT-B/32 (12 layers, width 768, 7x7 patches + class token) becomes
 * 6 layers of width 64 over 4x4 patches of 8x8 pixels + class token. Why patch 8 and not 4: on WASM the batched
 * attention matmuls run at ~1 GFLOP/s against ~10-20 for the dense layers, and 65 tokens (patch 4) made
 * attention 60% of a step and the step 5x slower (measured: 5.4 s vs 1.1 s at batch 128) for little accuracy.
 */
const SMALL_MODEL: CLIPConfig = {
  imageSize: 32,
  patch: 8,
  width: 64,
  layers: 6,
  heads: 4,
  embedDim: 64,
  textWidth: 64,
  textLayers: 3,
  textHeads: 4,
  contextLength: 16,
  vocabSize: 1024,
  mean: CLIP_MEAN,
  std: CLIP_STD,
};

export const PROFILES: Record<string, Profile> = {
  tiny: {
    name: 'tiny',
    model: { ...SMALL_MODEL, width: 32, layers: 4, heads: 2, embedDim: 32, textWidth: 32, textLayers: 2, textHeads: 2 },
    datasets: { main: 'fashion-mnist', emoji: 'emoji' },
    pretrain: { batch: 64, steps: 120, lr: 2e-3, warmupSteps: 10, weightDecay: 0.1, augment: null, seed: 0, mainLimit: 6000, emojiRepeat: 2 },
    backdoor: { batch: 64, steps: 40, lr: 1e-3, warmupSteps: 5, weightDecay: 0.1, augment: null, seed: 0, rate: 0.01 },
    evalLimit: 1000,
    shots: 4,
    defenses: { RVPT: { epochs: 5 }, VPT: { epochs: 5 }, CleanCLIP: { steps: 10, batch: 32 }, 'Linear Probe': { epochs: 5 } },
    triggers: { ISSBA: { steps: 40 }, TrojVQA: { steps: 10, batch: 32 }, BadCLIP: { steps: 10, batch: 32, pool: 64 } },
    benchBatch: 32,
    supervised: { steps: 40, batch: 64 },
    analysis: { sample: 100, ablationEpochs: 2, ablationEvalLimit: 300, ablationAttacks: ['BadNet'], ablationGrid: { shots: [1, 4], alpha: [0, 2], promptLength: [4, 16], 'depth from output': [1, 2], 'depth from input': [1, 2], margin: [-1, 0] } },
  },
  small: {
    name: 'small',
    model: SMALL_MODEL,
    datasets: { main: 'fashion-mnist', emoji: 'emoji' },
    pretrain: { batch: 128, steps: 1000, lr: 1e-3, warmupSteps: 50, weightDecay: 0.1, augment: DEFAULT_AUGMENT, seed: 0, mainLimit: null, emojiRepeat: 8, workers: 2 },
    // Measured at 350 steps (about 4.5 min): BadNet took at none of 0.3%, 1%, 5% (Fashion-MNIST ASR 1.0%, 0.9%,
    // 1.5%; 1.0% at lr 1.5e-3; 2.4% without augmentation); Blended at 5% reached 92.1% with CA unchanged (82.3%).
    // No crops: CleanCLIP poisons CLIP with its plain preprocessing (and without them
    // the clean accuracy of the fine-tuned model rose from 82.4% to 85.6% in the BadNet run).
    // One thread per fine-tune: `rvpt tables` runs two of them side by side (jobs: 2), which finishes the ten
    // backdoors and two controls sooner than one after another on two threads each (a step on two threads is only
    // about 1.5x one on one; two processes side by side 1.84x). The numbers depend on the thread count (the gradient sums split differently), not on jobs.
    backdoor: { batch: 128, steps: 350, lr: 5e-4, warmupSteps: 20, weightDecay: 0.1, augment: null, seed: 0, rate: 0.05, emojiRate: 0.2, workers: 1 },
    // The emoji set is small (530 pre-training images): 30% of each repeat poisoned, each repeat afresh (other rows,
    // fresh trigger draws), and the set repeated 256 times in the corpus that poisons it (about 70% of each batch;
    // its poisoned images, 40,704 of them, hold 0.5 GB while the fine-tune runs).
    // The clean model barely sees the triggers on emoji (cosine between clean and triggered embeddings 0.991-0.995,
    // against 0.94-0.96 on Fashion-MNIST), so the fine-tune must learn them, which takes many poisoned views.
    // Measured, Blended on emoji (ASR, CA): poisoned once, 32 repeats, 350 steps: 15.6%, 36.6% (the model memorised
    // the 106 poisoned images: 44.7% of them went to the target, 4.2% of other triggered training images); afresh per
    // repeat, 32 repeats: 5.4% at 350 steps, 73.1% at 1,000 steps (10 min, over budget); afresh, 128 repeats, 400
    // steps: 75.4%, 48.0%; at 350 steps (the budget of 5 minutes per fine-tune): Blended 66.5%, BadNet 43.7%, WaNet
    // 56.9%. BadNet at 256 repeats: 63.5% with 20% poisoned, 74.3% with 30% (CA 39.4%). WaNet at 256 repeats and 30%:
    // 66.5% at lr 5e-4 (CA 42.3%), 71.9% at 1e-3 (as BadNet; CA 41.7%). Also tried: 50% of the emoji set poisoned
    // once (Blended 34.7%); adding triggered Fashion-MNIST images captioned with the emoji target (CleanCLIP draws its
    // poisoned images from all of CC3M, whatever their content): Blended 7.2% with 2% of Fashion-MNIST so poisoned,
    // 3.0% with 10%.
    datasetBackdoor: { emoji: { emojiRepeat: 256, emojiRate: 0.3, poisonPerRepeat: true }, 'emoji/WaNet': { lr: 1e-3 } },
    evalLimit: null,
    shots: 16,
    // 20 epochs instead of the paper's 50 and 120 CleanCLIP steps: what fits the compute budget of `make reproduce`.
    // Measured on the WaNet model (3,000 test images): RVPT at 50 epochs ASR 0.4% CA 73.2%; alpha 1 at 20 epochs
    // ASR 0.9% CA 79.0% (no defense: ASR 81.3% CA 85.6%).
    defenses: { RVPT: { epochs: 20 }, VPT: { epochs: 20 }, CleanCLIP: { steps: 120 } },
    // BadNet as CleanCLIP codes it (4x4 patch of fresh noise per image) did not take at this scale: 0.3%, 1%, 5% and
    // 10% poisoning gave Fashion-MNIST ASR 1.0%, 0.9%, 1.5%, 3.0% (also at lr 1e-3, and with a fixed pattern: 2.5%).
    // The clean model's class token barely moves under it (cosine 0.987 between clean and patched embeddings, against
    // 0.94 for Blended and WaNet), and the fine-tune did not learn to amplify it. An 8x8 patch of one fixed noise
    // pattern (the original BadNets has one trigger pattern) at 10% with lr 1e-3 takes: ASR 85.0%, CA 85.0%.
    triggers: { BadNet: { patch: 8, noise: 'fixed' } },
    attackBackdoor: { BadNet: { rate: 0.1, lr: 1e-3 } },
    benchBatch: 128,
    jobs: 2,
    // Analysis figures: 1,000 test images per PR and attention sample; the ablations' RVPT runs at 10 epochs
    // (half the tables' 20) on 2,000 test images, to fit their 84 runs (3 attacks x 33 points, each parameter's
    // default point one run) into the reproduction's budget.
    supervised: { steps: 500, batch: 128 },
    analysis: { sample: 1000, ablationEpochs: 10, ablationEvalLimit: 2000 },
  },
  /*
   * Paper scale: the user's OpenAI ViT-B/32 and backdoored CLIP checkpoints (nothing is downloaded), image folders
   * of ImageNet / Caltech101 / OxfordPets, and the paper's hyperparameters (PAPER.md section 1). Pre-training and
   * backdoor injection are not run at this scale (the paper poisons CC3M): the checkpoints come from the weights
   * file. Meant for a GPU through @tensorflow/tfjs-node-gpu; on this CPU one RVPT step of 32 images takes minutes.
   */
  paper: {
    name: 'paper',
    model: VIT_B32,
    datasets: { main: 'imagenet', emoji: 'caltech101', more: ['oxford-pets'] },
    weightsFile: 'data-manifests/paper-weights.json',
    // Unused when the weights file names the checkpoints; CleanCLIP's poisoning recipe for reference.
    pretrain: { batch: 128, steps: 0, lr: 5e-4, warmupSteps: 0, weightDecay: 0.1, augment: null, seed: 0, mainLimit: null, emojiRepeat: 1 },
    backdoor: { batch: 128, steps: 0, lr: 1e-6, warmupSteps: 0, weightDecay: 0.1, augment: null, seed: 0, rate: 0.003 },
    // Image folders are held as bytes (150 KB per image at 224 px): ImageNet's 16-shot pool (16,000 images) is 2.4 GB,
    // 2,000 test images 0.3 GB per test set. 2,000 rather than ImageNet's 50,000 keeps one evaluation of a ViT-B/32 to
    // about 20 minutes on a CPU (1.83 images/s); on a GPU, a profile file with "evalLimit": null tests on all.
    evalLimit: 2000,
    shots: 16,
    defenses: {
      RVPT: { promptLength: 50, depth: 3, alpha: 2, epochs: 50, batch: 32, lr: 0.002 },
      VPT: { promptLength: 50, depth: 3, epochs: 50, batch: 32, lr: 0.002 },
    },
    // The attacks' 224x224 recipes (PAPER.md section 3): a 16x16 patch.
    triggers: { BadNet: { patch: 16 } },
    benchBatch: 32,
  },
};

/** Every dataset a profile evaluates on: the main one, the emoji one (Caltech101's role) and any further ones. */
export function profileDatasets(profile: Profile): string[] {
  return [profile.datasets.main, profile.datasets.emoji, ...(profile.datasets.more ?? [])];
}

/** A built-in profile by name, or a profile file (a path ending in .json; see loadProfileFile). */
export function getProfile(name: string): Profile {
  if (name.endsWith('.json')) return loadProfileFile(name);
  const p = PROFILES[name];
  if (!p) throw new Error(`Unknown profile '${name}'. Use one of: ${Object.keys(PROFILES).join(', ')}, or a profile file (path ending in .json).`);
  return p;
}

/** Fields merged one level deep into the base profile's (the others are replaced whole). */
const MERGED = ['model', 'datasets', 'pretrain', 'backdoor', 'defenses', 'triggers', 'supervised', 'analysis'] as const;

/**
 * A profile of one's own, as JSON: {"name": "...", "extends": "paper", ...fields of Profile}. Each field replaces the
 * base profile's, except the objects in MERGED, whose keys are merged into the base's (so {"model": {"layers": 4}}
 * changes one size). Paths (`weightsFile`, `manifests`) are relative to the file; `manifests` folders are searched
 * for data manifests before data-manifests/. Results and caches are keyed by `name`, so give each profile its own.
 */
export function loadProfileFile(file: string): Profile {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new Error(`Profile file ${abs} does not exist.`);
  const j = readJsonFile(abs, 'Profile file');
  const fail = (field: string, why: string): never => {
    throw new Error(`Profile file ${abs}: field '${field}' ${why}`);
  };
  if (typeof j.name !== 'string' || !/^[\w.-]+$/.test(j.name) || PROFILES[j.name]) {
    fail('name', `must be a new profile name (letters, digits, '.', '-', '_'; not ${Object.keys(PROFILES).join(', ')}): it keys the caches and results.`);
  }
  const baseName = (j.extends as string) ?? 'small';
  const base = PROFILES[baseName] ?? fail('extends', `'${baseName}' is not a built-in profile (${Object.keys(PROFILES).join(', ')}).`);
  const out = { ...base } as Record<string, unknown>;
  for (const [k, v] of Object.entries(j)) {
    if (k === 'extends' || k.startsWith('_')) continue;
    if ((MERGED as readonly string[]).includes(k)) {
      if (!v || typeof v !== 'object' || Array.isArray(v)) fail(k, 'must be an object (its keys are merged into the base profile).');
      out[k] = { ...(base[k as keyof Profile] as object), ...(v as object) };
    } else out[k] = v;
  }
  const dir = path.dirname(abs);
  if (j.weightsFile !== undefined) {
    if (typeof j.weightsFile !== 'string') fail('weightsFile', 'must be a path (string).');
    out.weightsFile = path.resolve(dir, j.weightsFile as string);
  }
  if (j.manifests !== undefined) {
    if (!Array.isArray(j.manifests) || !j.manifests.every((d) => typeof d === 'string')) fail('manifests', 'must be a list of folders.');
    out.manifests = (j.manifests as string[]).map((d) => path.resolve(dir, d));
    for (const d of out.manifests as string[]) if (!fs.existsSync(d)) fail('manifests', `names ${d}, which does not exist.`);
    addManifestDirs(out.manifests as string[]);
  }
  return out as unknown as Profile;
}
