/**
 * Profiles: one named bundle of sizes for everything, so that a test, a notebook and `make reproduce` agree. They are
 * data (profiles/tiny.json, small.json, paper.json): `tiny` for tests and CI (each step seconds, not minutes), `small`
 * the reproduction default, `paper` the paper's own scale. A profile file of one's own extends one of them.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CLIPConfig, CLIP_MEAN, CLIP_STD } from '../model/config';
import { addManifestDirs } from '../data/manifest';
import { projectRoot, readJsonFile } from '../util/fsutil';
import { PretrainConfig } from '../train/pretrain';
import { DEFENSES } from '../defenses/registry';
import { ATTACKS, makeTrigger } from '../attacks/registry';
import { nearestKey, profileProblems } from './profileSchema';

export interface Profile {
  name: string;
  model: CLIPConfig;
  /** Data manifests: the main dataset (Table 1's role) and the emoji dataset (Table 2/3's role). */
  datasets: {
    main: string;
    emoji: string;
    /** Further Table 2 datasets (the paper: OxfordPets beside Caltech101). */
    more?: string[];
    /** A broad pre-training corpus (a web-corpus manifest, src/data/web.ts): the fair setting's CC3M. */
    web?: string;
  };
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
    /**
     * 'coarse': the main dataset's pre-training captions never name its classes, only coarse groups and looks
     * (src/data/coarse.ts), so that zero-shot on it is transfer, not recall. Default 'class'.
     */
    mainCaptions?: 'class' | 'coarse';
    /**
     * With coarse captions, the share of the main dataset's images (a seeded random draw, at most 0.1) whose captions
     * name their class, as some web captions do. Default 0.
     */
    namedShare?: number;
    /** 'names': the emoji task's pre-training images are captioned by their own names, never their class. Default 'class'. */
    emojiCaptions?: 'class' | 'names';
    /** Repeats of the web corpus per epoch (default 1). */
    webRepeat?: number;
  };
  /** Backdoor injection: fine-tune the clean model on the poisoned corpus (docs/PAPER-NOTES.md §3). */
  backdoor: PretrainConfig & {
    /** Share of each dataset's pre-training pairs replaced by poisoned pairs (the paper: 1,500 / 500K = 0.3%). */
    rate: number;
    /** The emoji dataset's rate, when it differs (its pre-training set is small: 5% is a few dozen pairs). */
    emojiRate?: number;
    /** Repeats of the emoji set in the poisoned corpus (default: the pre-training's emojiRepeat). */
    emojiRepeat?: number;
    /** Poison each repeat of a repeated set afresh (other rows, fresh trigger randomness) rather than once. */
    poisonPerRepeat?: boolean;
    /**
     * Which pairs carry the trigger: 'task' (default) the poisoned dataset's own pre-training images; 'web' random
     * images of the broad corpus (datasets.web), as the paper poisons random CC3M pairs; their captions name the target.
     * With 'web' the rate is a share of the web corpus's pairs.
     */
    poisonSource?: 'task' | 'web';
  };
  /** Clean shots per class for the few-shot defenses (the paper: 16). */
  shots: number;
  /**
   * Seeds of the tables' defense runs (shots, initialisation, order): each cell is their median, with the range.
   * Default: the one seed backdoor.seed.
   */
  seeds?: number[];
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

/** OpenAI CLIP ViT-B/32 (docs/PAPER-NOTES.md): what the `paper` profile expects its checkpoints to be. */
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

/** The built-in profiles, each a file in profiles/ (why each size was chosen, with measurements: docs/PROFILES.md). */
export const BUILT_IN_PROFILES = ['tiny', 'small', 'transfer', 'paper'] as const;

/**
 * Every problem of a profile, one line each, before any work starts: the schema's (types, ranges, unknown keys; see
 * profileSchema.ts), then the defenses' and triggers' parameters, which their own registries know.
 */
export function profileErrors(p: unknown): string[] {
  const out = profileProblems(p);
  const q = p as Partial<Profile>;
  for (const [method, config] of Object.entries(q.defenses ?? {})) {
    const d = DEFENSES[method];
    if (!d) {
      const near = nearestKey(method, Object.keys(DEFENSES));
      out.push(`field 'defenses.${method}' names no defense${near ? `; did you mean '${near}'?` : ''} (registered: ${Object.keys(DEFENSES).join(', ')})`);
      continue;
    }
    const known = [...d.params, 'seed', 'shotsSeed'];
    for (const k of Object.keys(config ?? {})) {
      if (known.includes(k)) continue;
      const near = nearestKey(k, known);
      out.push(`field 'defenses.${method}.${k}' is not a ${method} parameter${near ? `; did you mean '${near}'?` : ''} (known: ${known.join(', ')})`);
    }
    for (const [k, v] of Object.entries(config ?? {})) {
      if (typeof v === 'number' && !Number.isFinite(v)) out.push(`field 'defenses.${method}.${k}' is ${v}; it must be a finite number`);
      if (['epochs', 'steps', 'batch'].includes(k) && !(Number.isInteger(v) && (v as number) >= 1)) out.push(`field 'defenses.${method}.${k}' is ${JSON.stringify(v)}; it must be a whole number of at least 1`);
      if (k === 'lr' && !(typeof v === 'number' && v > 0)) out.push(`field 'defenses.${method}.lr' is ${JSON.stringify(v)}; it must be a positive number`);
    }
  }
  for (const [attack, config] of Object.entries(q.triggers ?? {})) {
    if (!ATTACKS[attack]) {
      const near = nearestKey(attack, Object.keys(ATTACKS));
      out.push(`field 'triggers.${attack}' names no attack${near ? `; did you mean '${near}'?` : ''} (registered: ${Object.keys(ATTACKS).join(', ')})`);
      continue;
    }
    try {
      makeTrigger(attack, config);
    } catch (e) {
      out.push(`field 'triggers.${attack}': ${(e as Error).message}`);
    }
  }
  return out;
}

/** Throws one error listing every problem of profile `p`, read from `file`. */
function checkProfile(p: unknown, file: string): void {
  const errors = profileErrors(p);
  if (errors.length) throw new Error(`Profile file ${file}:\n  - ${errors.join('\n  - ')}\nFix the file (docs/PROFILES.md says what each field does).`);
}

/** A built-in profile's file, as written: keys starting with '_' are notes for readers and are dropped. */
function readBuiltIn(name: string): Profile {
  const file = path.join(projectRoot(), 'profiles', `${name}.json`);
  const j = readJsonFile(file, 'Profile file');
  if (j.name !== name) throw new Error(`Profile file ${file}: field 'name' is '${String(j.name)}'; a built-in profile's file must carry its own name, '${name}'.`);
  const p = Object.fromEntries(Object.entries(j).filter(([k]) => !k.startsWith('_')));
  checkProfile(p, file);
  return p as unknown as Profile;
}

export const PROFILES: Record<string, Profile> = Object.fromEntries(BUILT_IN_PROFILES.map((n) => [n, readBuiltIn(n)]));

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
  checkProfile(out, abs);
  return out as unknown as Profile;
}
