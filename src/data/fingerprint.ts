/**
 * What a dataset's content is, as a short hash, for the keys of results computed on it: the manifest's own bytes, and
 * for an image folder the list of its files (path, size, modification time). A result cached for a dataset is thus
 * not reused after its images or its manifest (paths, classes, templates) change. A dataset the project pins is
 * `pinned`: an IDX set (its files' sha256 are in the manifest and checked when read) or an emoji set (its renderings
 * come from package versions fixed by package-lock.json).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as crypto from 'crypto';
import { loadManifest } from './manifest';

const memo = new Map<string, { pinned: boolean; hash: string }>();

/** Every file under `dir`, in name order, as 'path size mtime' lines into `hash` (a missing folder says so). */
function listFiles(dir: string, hash: crypto.Hash, rel = ''): void {
  if (!fs.existsSync(dir)) {
    hash.update(`missing ${rel}\n`);
    return;
  }
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listFiles(p, hash, `${rel}/${e.name}`);
    else {
      const st = fs.statSync(p);
      hash.update(`${rel}/${e.name} ${st.size} ${Math.round(st.mtimeMs)}\n`);
    }
  }
}

/** The fingerprint of a dataset or test set name ('fashion-mnist', 'emoji/noto', 'imagenet-v2'). */
export function datasetFingerprint(name: string): { pinned: boolean; hash: string } {
  const m = loadManifest(name.split('/')[0]);
  const file = m.file!;
  // Within one process the full listing is made once per state of the manifest and of the folders (a folder's
  // modification time moves when an entry is added, removed or renamed): a table asks for it once per cell.
  const splits = m.kind === 'image-folder' ? Object.entries(m.splits).sort().map(([split, d]) => [split, path.resolve(path.dirname(file), d)] as const) : [];
  const stamp = (d: string): string => {
    if (!fs.existsSync(d)) return 'missing';
    const subdirs = fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(d, e.name));
    return [d, ...subdirs].map((x) => fs.statSync(x).mtimeMs).join(',');
  };
  const memoKey = `${file} ${fs.statSync(file).mtimeMs} ${splits.map(([, d]) => stamp(d)).join(';')}`;
  const known = memo.get(memoKey);
  if (known) return known;
  const hash = crypto.createHash('sha256').update(fs.readFileSync(file));
  for (const [split, dir] of splits) {
    hash.update(`split ${split}\n`);
    listFiles(dir, hash);
  }
  const out = { pinned: m.kind !== 'image-folder', hash: hash.digest('hex').slice(0, 16) };
  memo.set(memoKey, out);
  return out;
}
