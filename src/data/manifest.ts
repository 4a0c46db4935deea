/**
 * Data manifests (data-manifests/*.json): where a dataset's files are, their checksums, class names, caption
 * templates, the backdoor target class and the splits. Every reader starts here, so every error about a
 * dataset can name the manifest, the field and the fix.
 */
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot } from '../util/fsutil';

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
  /** ... or one sprite sheet of <svg id="{HEX}"> elements. */
  sprite?: string;
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
  /** Folder with one sub-folder per class (named as in `classes`, or mapped by `folders`), for each split. */
  splits: Record<string, string>;
  folders?: Record<string, string>;
}

export type DataManifest = IdxManifest | EmojiManifest | FolderManifest;

export function manifestsDir(): string {
  return path.join(projectRoot(), 'data-manifests');
}

function fail(file: string, field: string, why: string): never {
  throw new Error(`Manifest ${file}: field '${field}' ${why}`);
}

export function validateManifest(m: DataManifest, file: string): DataManifest {
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
    for (const r of m.pretrainRenditions ?? []) if (!m.renditions[r]) fail(file, 'pretrainRenditions', `'${r}' is not a key of renditions.`);
    for (const c of m.classes) if (!m.classSubgroups?.[c]?.length) fail(file, `classSubgroups.${c}`, 'must list the emojibase subgroups of this class.');
    if (!(m.testFraction > 0 && m.testFraction < 1)) fail(file, 'testFraction', 'must be between 0 and 1.');
  } else if (m.kind === 'image-folder') {
    if (!m.splits || !Object.keys(m.splits).length) fail(file, 'splits', 'must map split names (train, test, ...) to folders.');
  } else {
    fail(file, 'kind', `'${(m as { kind: string }).kind}' is unknown; use 'idx', 'emoji' or 'image-folder'.`);
  }
  return m;
}

/** Load a manifest by path or by name (data-manifests/NAME.json). */
export function loadManifest(nameOrPath: string): DataManifest {
  const file = nameOrPath.endsWith('.json') ? path.resolve(nameOrPath) : path.join(manifestsDir(), `${nameOrPath}.json`);
  if (!fs.existsSync(file)) {
    const known = fs.existsSync(manifestsDir()) ? fs.readdirSync(manifestsDir()).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, '')) : [];
    throw new Error(`Data manifest '${nameOrPath}' not found (looked for ${file}). Known manifests: ${known.join(', ') || 'none'}.`);
  }
  let m: DataManifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`Manifest ${file} is not valid JSON: ${(e as Error).message}`);
  }
  m.file = file;
  return validateManifest(m, file);
}
