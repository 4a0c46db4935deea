/**
 * Data manifests (data-manifests/*.json): where a dataset's files are, their checksums, class names, caption
 * templates, the backdoor target class and the splits. Every reader starts here, so every error about a
 * dataset can name the manifest, the field and the fix.
 */
import { nearestKey } from '../util/nearest';
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot, readJsonFile } from '../util/fsutil';

export interface FileRef {
  path: string;
  sha256?: string;
}

interface ManifestBase {
  name: string;
  description?: string;
  /** Class names as used in captions and zero-shot prompts, in label order. */
  classes: string[];
  /** The attacker's target class (a member of `classes`). */
  target: string;
  /** Zero-shot prompt templates with `{}` for the class name; default: the project's CLIP-style set. */
  templates?: string[];
  /** Side of the square RGB images the readers produce. */
  imageSize: number;
  /** Where the manifest was read from (filled in by the loader). */
  file?: string;
}

export interface IdxManifest extends ManifestBase {
  kind: 'idx';
  root: string;
  /** How to get the files where they are missing. */
  install: string;
  upstream?: string;
  files: Record<'train' | 'test', { images: FileRef; labels: FileRef }>;
  /** Images of the original train split held out of pre-training for few-shot tuning and defenses. */
  tuneSize: number;
}

export interface EmojiRendition {
  /** npm package that holds the art. */
  package: string;
  /** Either a folder of SVG files named by `file` ({hex} lower-case, {HEX} upper-case) ... */
  dir?: string;
  file?: string;
  /** ... or one sprite sheet of <svg id="{HEX}"> elements ... */
  sprite?: string;
  /** ... or an Iconify set's icons.json (@iconify-json/*), emoji found by code point (chars.json) or name ... */
  iconify?: string;
  /** ... or a folder of PNG files listed in the package's emoji.json (emoji-datasource-*), drawn by `pngArtist`. */
  png?: string;
  pngArtist?: string;
  /** The art's license (SPDX id), recorded with every render. */
  license?: string;
  /** Human name of the artist/style. */
  label: string;
}

export interface EmojiManifest extends ManifestBase {
  kind: 'emoji';
  /** npm package with Unicode annotations (emojibase-data). */
  annotations: string;
  renditions: Record<string, EmojiRendition>;
  /** The style used for tuning and the main test (the ImageNet role); others are the domain-shift sets. */
  mainRendition: string;
  /**
   * Several styles for tuning and the main test instead of one (their images are pooled); then the domain-shift sets
   * are the renditions in neither these nor pretrainRenditions' list... unless `shiftRenditions` names them.
   */
  mainRenditions?: string[];
  /** The domain-shift test sets (default: every rendition but the main one(s)). */
  shiftRenditions?: string[];
  /**
   * Share of each class's emojis held out for few-shot tuning: with it, 'train' feeds pre-training only and the tune
   * and test emojis are never pre-training images, in any rendition.
   */
  tuneFraction?: number;
  /** Styles whose train split goes into the pre-training corpus. */
  pretrainRenditions: string[];
  /** Class name -> emojibase subgroups that make it up. */
  classSubgroups: Record<string, string[]>;
  /** Cap per class (deterministic choice), so that flags or people do not swamp the rest. */
  maxPerClass: number;
  /** Share of each class's emojis held out for testing (never seen in pre-training or tuning). */
  testFraction: number;
  background: string;
}

export interface FolderManifest extends ManifestBase {
  kind: 'image-folder';
  /**
   * Folder with one sub-folder per class (named as in `classes`, or mapped by `folders`), for each split; relative
   * paths are relative to the manifest's own folder. 'tune' (the few-shot pool; default: 'train') and 'test' are
   * the splits the experiments read.
   */
  splits: Record<string, string>;
  folders?: Record<string, string>;
  /**
   * Read the classes off this split's sub-folders instead of listing them (ImageNet's 1,000), sorted as Python's
   * sorted() sorts them (code-point order, as torchvision's ImageFolder and CoOp's readers).
   */
  classesFrom?: string;
  /** Sub-folders to leave out with classesFrom (Caltech101's BACKGROUND_Google and Faces_easy, as CoOp does). */
  exclude?: string[];
  /**
   * Class names for folders: an object {folder: name}, or a file (relative to the manifest) with one
   * 'folder name[, alias...]' line per class (ImageNet's LOC_synset_mapping.txt); unnamed folders use their folder
   * name with '_' read as a space.
   */
  classNames?: Record<string, string> | string;
  /**
   * With classesFrom and a classNames file: 'index' when the sub-folders are numbered by the class's line in that
   * file (ImageNetV2's 0..999) instead of being named by its first word (a synset).
   */
  folderNames?: 'name' | 'index';
  /**
   * Manifests of distribution-shifted test sets for this dataset (ImageNet-V2, -Sketch, -A, -R): the domain-shift
   * table tests models tuned here on each of them whose folders exist. Their classes may be a subset of this one's.
   */
  shifts?: string[];
}

export type DataManifest = IdxManifest | EmojiManifest | FolderManifest;

export function manifestsDir(): string {
  return path.join(projectRoot(), 'data-manifests');
}

function fail(file: string, field: string, why: string): never {
  throw new Error(`Manifest ${file}: field '${field}' ${why}`);
}

/** The keys each kind of manifest may hold ('_' keys are notes); anything else is a misspelling, not ignored. */
const MANIFEST_KEYS: Record<string, string[]> = {
  base: ['name', 'description', 'kind', 'classes', 'target', 'templates', 'imageSize', 'license'],
  idx: ['root', 'install', 'upstream', 'files', 'tuneSize'],
  emoji: ['annotations', 'renditions', 'mainRendition', 'mainRenditions', 'shiftRenditions', 'tuneFraction', 'pretrainRenditions', 'classSubgroups', 'maxPerClass', 'testFraction', 'background'],
  'image-folder': ['splits', 'folders', 'classesFrom', 'exclude', 'classNames', 'folderNames', 'shifts'],
};

export function validateManifest(m: DataManifest, file: string): DataManifest {
  const kinds = ['idx', 'emoji', 'image-folder'];
  if (!kinds.includes(m.kind)) {
    const near = nearestKey(String(m.kind), kinds);
    fail(file, 'kind', `'${(m as { kind: string }).kind}' is unknown${near ? `; did you mean '${near}'?` : ''} (use 'idx', 'emoji' or 'image-folder').`);
  }
  const known = [...MANIFEST_KEYS.base, ...MANIFEST_KEYS[m.kind]];
  for (const k of Object.keys(m)) {
    if (known.includes(k) || k.startsWith('_') || k === 'file') continue;
    const near = nearestKey(k, known);
    fail(file, k, `is not a field of a '${m.kind}' manifest${near ? `; did you mean '${near}'?` : ''} (known: ${known.join(', ')}).`);
  }
  if (typeof m.name !== 'string' || !m.name) fail(file, 'name', 'must be a non-empty string.');
  if (!Array.isArray(m.classes) || m.classes.length < 2) fail(file, 'classes', 'must list at least two class names.');
  if (!m.classes.includes(m.target)) fail(file, 'target', `'${m.target}' is not one of the classes (${m.classes.join(', ')}).`);
  if (!Number.isInteger(m.imageSize) || m.imageSize < 8) fail(file, 'imageSize', 'must be an integer >= 8.');
  if (m.templates && !m.templates.every((t) => t.includes('{}'))) fail(file, 'templates', "entries must contain '{}' where the class name goes.");
  if (m.kind === 'idx') {
    for (const s of ['train', 'test'] as const) {
      if (!m.files?.[s]?.images?.path || !m.files?.[s]?.labels?.path) fail(file, `files.${s}`, 'must give images.path and labels.path.');
    }
  } else if (m.kind === 'emoji') {
    if (!m.renditions?.[m.mainRendition]) fail(file, 'mainRendition', `'${m.mainRendition}' is not a key of renditions.`);
    for (const f of ['pretrainRenditions', 'mainRenditions', 'shiftRenditions'] as const) {
      for (const r of m[f] ?? []) if (!m.renditions[r]) fail(file, f, `'${r}' is not a key of renditions (${Object.keys(m.renditions).join(', ')}).`);
    }
    for (const [name, r] of Object.entries(m.renditions)) {
      const sources = [r.dir !== undefined || r.file !== undefined, !!r.sprite, !!r.iconify, !!r.png].filter(Boolean).length;
      if (sources !== 1) fail(file, `renditions.${name}`, 'must give exactly one source: dir and file, sprite, iconify or png (with pngArtist).');
      if (r.png && !r.pngArtist) fail(file, `renditions.${name}.pngArtist`, "is needed with png (the artist of emoji.json's has_img_ARTIST flags, e.g. 'facebook').");
    }
    if (m.tuneFraction !== undefined && !(m.tuneFraction > 0 && m.tuneFraction + m.testFraction < 1)) fail(file, 'tuneFraction', `must be above 0 and leave some emojis for pre-training (tuneFraction + testFraction < 1; got ${m.tuneFraction} + ${m.testFraction}).`);
    for (const c of m.classes) if (!m.classSubgroups?.[c]?.length) fail(file, `classSubgroups.${c}`, 'must list the emojibase subgroups of this class.');
    if (!(m.testFraction > 0 && m.testFraction < 1)) fail(file, 'testFraction', 'must be between 0 and 1.');
  } else if (m.kind === 'image-folder') {
    if (!m.splits || !Object.keys(m.splits).length) fail(file, 'splits', 'must map split names (train, test, ...) to folders.');
  } else {
    fail(file, 'kind', `'${(m as { kind: string }).kind}' is unknown; use 'idx', 'emoji' or 'image-folder'.`);
  }
  return m;
}

const extraDirs: string[] = [];

/**
 * Search these folders too (a profile file's `manifests`), after RVPT_MANIFESTS and before data-manifests/. The folders
 * of the profile loaded last come first, so that in one process (a notebook) a profile's own manifests are the ones
 * it gets, not a same-named one of a profile loaded before.
 */
export function addManifestDirs(dirs: string[]): void {
  const mine = dirs.map((d) => path.resolve(d));
  const rest = extraDirs.filter((d) => !mine.includes(d));
  extraDirs.splice(0, extraDirs.length, ...mine, ...rest);
}

/**
 * Folders searched for NAME.json: those in RVPT_MANIFESTS (':'-separated; one's own data), a profile file's
 * `manifests`, then data-manifests/.
 */
export function manifestDirs(): string[] {
  return [...(process.env.RVPT_MANIFESTS ?? '').split(':').filter(Boolean).map((d) => path.resolve(d)), ...extraDirs, manifestsDir()];
}

/** Load a manifest by path or by name (NAME.json in RVPT_MANIFESTS or data-manifests/). */
export function loadManifest(nameOrPath: string): DataManifest {
  const candidates = nameOrPath.endsWith('.json') ? [path.resolve(nameOrPath)] : manifestDirs().map((d) => path.join(d, `${nameOrPath}.json`));
  const file = candidates.find((f) => fs.existsSync(f)) ?? candidates[candidates.length - 1];
  if (!fs.existsSync(file)) {
    const known = manifestDirs()
      .filter((d) => fs.existsSync(d))
      .flatMap((d) => fs.readdirSync(d))
      .filter((f) => f.endsWith('.json') && !f.startsWith('paper-weights'))
      .map((f) => f.replace(/\.json$/, ''));
    throw new Error(`Data manifest '${nameOrPath}' not found (looked for ${file}). Known manifests: ${known.join(', ') || 'none'}.`);
  }
  const m = readJsonFile<DataManifest>(file, 'Manifest');
  m.file = file;
  if (m.kind === 'image-folder' && m.classesFrom) resolveFolderClasses(m, file);
  return validateManifest(m, file);
}

/** Fill `classes` and `folders` of an image-folder manifest from its sub-folders (`classesFrom`). */
export function resolveFolderClasses(m: FolderManifest, file: string): void {
  const split = m.classesFrom!;
  if (!m.splits?.[split]) fail(file, 'classesFrom', `names split '${split}', which is not a key of splits (${Object.keys(m.splits ?? {}).join(', ')}).`);
  const root = path.resolve(path.dirname(file), m.splits[split]);
  if (!fs.existsSync(root)) {
    fail(file, `splits.${split}`, `points at ${root}, which does not exist. Put the dataset there (one sub-folder per class) or edit the path.`);
  }
  const exclude = new Set(m.exclude ?? []);
  const byIndex = m.folderNames === 'index';
  if (byIndex && typeof m.classNames !== 'string') fail(file, 'folderNames', "'index' needs 'classNames' to be a file with one line per class, in index order.");
  const dirs = fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !exclude.has(e.name))
    .map((e) => e.name)
    .sort(byIndex ? (a, b) => Number(a) - Number(b) : (a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (byIndex && dirs.some((d) => !/^\d+$/.test(d))) fail(file, 'folderNames', `is 'index' but ${root} has sub-folders that are not numbers (${dirs.filter((d) => !/^\d+$/.test(d)).slice(0, 3).join(', ')}).`);
  if (dirs.length < 2) fail(file, `splits.${split}`, `(${root}) has ${dirs.length} class sub-folders; it needs one per class.`);
  let names: Record<string, string> = {};
  if (typeof m.classNames === 'string') {
    const f = path.resolve(path.dirname(file), m.classNames);
    if (!fs.existsSync(f)) fail(file, 'classNames', `points at ${f}, which does not exist (for ImageNet: LOC_synset_mapping.txt, lines 'n01440764 tench, Tinca tinca').`);
    const text = fs.readFileSync(f, 'utf8');
    if (f.endsWith('.json')) names = JSON.parse(text);
    else {
      let i = 0;
      for (const line of text.split('\n')) {
        const m2 = /^(\S+)\s+([^,]+)/.exec(line.trim());
        if (m2) names[byIndex ? String(i++) : m2[1]] = m2[2].trim();
      }
    }
  } else if (m.classNames) names = m.classNames;
  m.classes = dirs.map((d) => names[d] ?? d.replace(/_/g, ' '));
  // ImageNet's synset file names two classes 'crane' (and two 'maillot'): a name used twice gets its folder added.
  const seen = new Map<string, number>();
  for (const c of m.classes) seen.set(c, (seen.get(c) ?? 0) + 1);
  m.classes = m.classes.map((c, i) => (seen.get(c)! > 1 ? `${c} (${dirs[i]})` : c));
  m.folders = Object.fromEntries(dirs.map((d, i) => [m.classes[i], d]));
}
