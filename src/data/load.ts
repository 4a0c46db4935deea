/**
 * One entry point for every dataset: `loadSplit(manifest, split)`. Split names:
 * - Fashion-MNIST (idx): 'pretrain' (train minus the tune hold-out), 'tune', 'test'.
 * - emoji: 'pretrain' (train split of the pre-training renditions), 'tune' (main rendition, train),
 *   'test' (main rendition, test), 'test:RENDITION' and 'train:RENDITION'.
 * - image folders: the manifest's own split names.
 */
import { ImageDataset, concatDatasets } from './dataset';
import { loadEmoji } from './emoji';
import { loadIdxSplit } from './fashionMnist';
import { loadImageFolder } from './imageFolder';
import { DataManifest, loadManifest } from './manifest';
import { splitOff } from './splits';

const memo = new Map<string, ImageDataset>();

export async function loadSplit(manifest: DataManifest | string, split: string, log?: (s: string) => void): Promise<ImageDataset> {
  const m = typeof manifest === 'string' ? loadManifest(manifest) : manifest;
  const key = `${m.file}:${m.name}:${split}`;
  const hit = memo.get(key);
  if (hit) return hit;
  let d: ImageDataset;
  if (m.kind === 'idx') {
    if (split === 'test') d = loadIdxSplit(m, 'test');
    else if (split === 'pretrain' || split === 'tune') {
      const [tune, pre] = splitOff(loadIdxSplit(m, 'train'), m.tuneSize, `${m.name}-tune`);
      memo.set(`${m.file}:${m.name}:tune`, { ...tune, name: `${m.name}/tune` });
      memo.set(`${m.file}:${m.name}:pretrain`, { ...pre, name: `${m.name}/pretrain` });
      return memo.get(key)!;
    } else throw new Error(`Dataset '${m.name}' has no split '${split}'. Use pretrain, tune or test.`);
  } else if (m.kind === 'emoji') {
    const [kind, rend] = split.split(':');
    if (split === 'pretrain') {
      const parts = [];
      for (const r of m.pretrainRenditions) parts.push(await loadEmoji(m, r, 'train', log));
      d = concatDatasets(`${m.name}/pretrain`, parts);
    } else if (split === 'tune') d = await loadEmoji(m, m.mainRendition, 'train', log);
    else if (split === 'test') d = await loadEmoji(m, m.mainRendition, 'test', log);
    else if ((kind === 'test' || kind === 'train') && rend) {
      if (!m.renditions[rend]) throw new Error(`Dataset '${m.name}' has no rendition '${rend}' (have ${Object.keys(m.renditions).join(', ')}).`);
      d = await loadEmoji(m, rend, kind, log);
    } else throw new Error(`Dataset '${m.name}' has no split '${split}'. Use pretrain, tune, test, test:RENDITION or train:RENDITION.`);
  } else {
    d = await loadImageFolder(m, split);
  }
  memo.set(key, d);
  return d;
}
