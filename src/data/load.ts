/**
 * One entry point for every dataset: `loadSplit(manifest, split)`. Split names:
 * - Fashion-MNIST (idx): 'pretrain' (train minus the tune hold-out), 'tune', 'test'.
 * - emoji: 'pretrain' (train split of the pre-training renditions), 'tune' (main rendition, train),
 *   'test' (main rendition, test), 'test:RENDITION' and 'train:RENDITION'.
 * - image folders: the manifest's own split names; 'tune' falls back to 'train'. Options choose images per class
 *   before any is decoded (ImageNet-sized folders).
 */
import * as fs from 'fs';
import * as path from 'path';
import { ImageDataset, concatDatasets, subset } from './dataset';
import { loadEmoji } from './emoji';
import { loadIdxSplit } from './fashionMnist';
import { FolderReadOptions, loadImageFolder } from './imageFolder';
import { DataManifest, loadManifest } from './manifest';
import { kShot, sample, splitOff } from './splits';

const memo = new Map<string, ImageDataset>();

export async function loadSplit(manifest: DataManifest | string, split: string, log?: (s: string) => void, folderOpts: FolderReadOptions = {}): Promise<ImageDataset> {
  const m = typeof manifest === 'string' ? loadManifest(manifest) : manifest;
  const keyOf = (sp: string) => `${m.file}:${m.name}:${sp}:${folderOpts.perClass ?? ''}:${folderOpts.seed ?? ''}:${folderOpts.classLimit ?? ''}`;
  const key = keyOf(split);
  const hit = memo.get(key);
  if (hit) return hit;
  let d: ImageDataset;
  if (m.kind === 'idx') {
    if (split === 'test') d = loadIdxSplit(m, 'test');
    else if (split === 'pretrain' || split === 'tune') {
      const [tune, pre] = splitOff(loadIdxSplit(m, 'train'), m.tuneSize, `${m.name}-tune`);
      memo.set(keyOf('tune'), { ...tune, name: `${m.name}/tune`, templates: m.templates });
      memo.set(keyOf('pretrain'), { ...pre, name: `${m.name}/pretrain`, templates: m.templates });
      return memo.get(key)!;
    } else throw new Error(`Dataset '${m.name}' has no split '${split}'. Use pretrain, tune or test.`);
  } else if (m.kind === 'emoji') {
    const [kind, rend] = split.split(':');
    if (split === 'pretrain') {
      const parts = [];
      for (const r of m.pretrainRenditions) parts.push(await loadEmoji(m, r, 'train', log));
      d = concatDatasets(`${m.name}/pretrain`, parts);
    } else if (split === 'tune' || split === 'test') {
      // With tuneFraction the tune emojis are their own split, held out of pre-training like the test ones.
      const which = split === 'test' ? 'test' : m.tuneFraction ? 'tune' : 'train';
      const parts = [];
      for (const r of m.mainRenditions ?? [m.mainRendition]) parts.push(await loadEmoji(m, r, which, log));
      d = parts.length === 1 ? parts[0] : concatDatasets(`${m.name}/${split}`, parts);
    }
    else if ((kind === 'test' || kind === 'train') && rend) {
      if (!m.renditions[rend]) throw new Error(`Dataset '${m.name}' has no rendition '${rend}' (have ${Object.keys(m.renditions).join(', ')}).`);
      d = await loadEmoji(m, rend, kind, log);
    } else throw new Error(`Dataset '${m.name}' has no split '${split}'. Use pretrain, tune, test, test:RENDITION or train:RENDITION.`);
  } else {
    d = await loadImageFolder(m, split === 'tune' && !m.splits.tune ? 'train' : split, folderOpts);
  }
  if (m.templates) d = { ...d, templates: m.templates };
  memo.set(key, d);
  return d;
}

/**
 * k clean shots per class of a dataset's tune split (the few-shot defenses' data). From an image folder the shots are
 * chosen before decoding; elsewhere kShot picks them from the loaded split. Deterministic for the seed.
 */
export async function loadShots(manifest: string, k: number, seed: number, log?: (s: string) => void): Promise<ImageDataset> {
  const m = loadManifest(manifest);
  if (m.kind === 'image-folder') return loadSplit(m, 'tune', log, { perClass: k, seed: `shots-${seed}` });
  return kShot(await loadSplit(m, 'tune', log), k, seed);
}

/** A few images to look at: the first test image of each of the first `n` classes (a folder decodes only those). */
export async function exampleImages(manifest: string, n: number, split = 'test'): Promise<ImageDataset> {
  const m = loadManifest(manifest);
  if (m.kind === 'image-folder') return loadSplit(m, split, undefined, { perClass: 1, classLimit: n });
  const d = await loadSplit(m, split);
  const rows = m.classes.slice(0, n).map((_, c) => d.labels.indexOf(c)).filter((r) => r >= 0);
  return subset(d, rows);
}

/**
 * A split as every evaluation reads it: at most `evalLimit` images (null: all), a seeded sample of the loaded split,
 * or, for an image folder, a seeded choice spread over the classes and made before decoding (ImageNet has 50,000).
 */
export async function loadEvalSplit(manifest: DataManifest | string, split: string, evalLimit: number | null, log?: (s: string) => void): Promise<ImageDataset> {
  const m = typeof manifest === 'string' ? loadManifest(manifest) : manifest;
  if (m.kind === 'image-folder') {
    const perClass = evalLimit ? Math.ceil(evalLimit / m.classes.length) : undefined;
    return loadSplit(m, split, log, { perClass, seed: perClass ? 'eval' : undefined });
  }
  const d = await loadSplit(m, split, log);
  return evalLimit ? sample(d, evalLimit, 'eval') : d;
}

const missingShifts = new Set<string>();

/**
 * A dataset's test sets: its own, then its distribution shifts (Table 3): every other artist's rendition for the
 * emoji dataset, and for an image-folder dataset the `shifts` manifests whose test folder is on disk (a missing one
 * is reported once and left out, since few users have all of ImageNet-V2, -Sketch, -A and -R).
 */
export function testSetNames(dataset: string): string[] {
  const m = loadManifest(dataset);
  if (m.kind === 'emoji') {
    const main = m.mainRenditions ?? [m.mainRendition];
    return [dataset, ...(m.shiftRenditions ?? Object.keys(m.renditions).filter((r) => !main.includes(r))).map((r) => `${dataset}/${r}`)];
  }
  if (m.kind !== 'image-folder' || !m.shifts) return [dataset];
  return [
    dataset,
    ...m.shifts.filter((s) => {
      try {
        const sm = loadManifest(s);
        if (sm.kind !== 'image-folder' || !sm.splits.test) throw new Error(`${sm.file} is not an image-folder manifest with a 'test' split`);
        const dir = path.resolve(path.dirname(sm.file!), sm.splits.test);
        if (!fs.existsSync(dir)) throw new Error(`${dir} does not exist`);
        return true;
      } catch (e) {
        if (!missingShifts.has(s)) console.warn(`[data] ${dataset}: distribution shift '${s}' left out: ${(e as Error).message.split('\n')[0]}`);
        missingShifts.add(s);
        return false;
      }
    }),
  ];
}
