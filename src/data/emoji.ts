/**
 * Emoji images with real text: several artists' SVGs from npm, Unicode annotations from emojibase-data,
 * rasterised to small RGB images with sharp. Renders are cached under .cache/data, keyed by the manifest.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { ImageDataset } from './dataset';
import { EmojiManifest, EmojiRendition } from './manifest';
import { cacheDir, readCached, sha256, writeCached, writeJsonAtomic } from '../util/fsutil';
import { makeRng, permutation } from '../util/rng';

export interface EmojiEntry {
  hexcode: string;
  label: string;
  tags: string[];
  cls: number;
}

const RENDER_VERSION = 2;

/** An emoji split: 'train' (pre-training; also tuning where the manifest has no tuneFraction), 'tune', 'test'. */
export type EmojiSplit = 'train' | 'tune' | 'test';

export function resolvePackageDir(pkg: string, manifestFile?: string): string {
  try {
    return path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(`Emoji manifest ${manifestFile ?? ''}: npm package '${pkg}' is not installed. Run \`npm install\` in the project root.`);
  }
}

/**
 * The manifest's emojis, class by class, capped and split deterministically into train and test, and, with a
 * tuneFraction, a tune split too (then 'train' is what pre-training sees and 'tune' and 'test' are held out of it).
 */
export function emojiEntries(m: EmojiManifest): Record<EmojiSplit, EmojiEntry[]> {
  const dir = resolvePackageDir(m.annotations, m.file);
  const data: { hexcode: string; label: string; tags?: string[]; subgroup?: number }[] = JSON.parse(fs.readFileSync(path.join(dir, 'en', 'data.json'), 'utf8'));
  const meta: { subgroups: Record<string, string> } = JSON.parse(fs.readFileSync(path.join(dir, 'meta', 'groups.json'), 'utf8'));
  // Every emoji of the task is drawn by every artist that tunes or pre-trains; a shift artist (shiftRenditions) is
  // tested on the test emojis it drew (an older set lacks the newer emojis).
  const required = Object.keys(m.renditions).filter((r) => !(m.shiftRenditions ?? []).includes(r));
  const train: EmojiEntry[] = [];
  const tune: EmojiEntry[] = [];
  const test: EmojiEntry[] = [];
  m.classes.forEach((cls, ci) => {
    const subs = new Set(m.classSubgroups[cls]);
    const members = data
      .filter((e) => e.subgroup !== undefined && subs.has(meta.subgroups[e.subgroup]))
      .filter((e) => required.every((r) => renditionHas(m, r, e.hexcode)))
      .sort((a, b) => (a.hexcode < b.hexcode ? -1 : 1));
    const order = permutation(members.length, makeRng(`emoji-split-${cls}`));
    const chosen = Array.from(order.slice(0, m.maxPerClass)).map((i) => members[i]);
    const nTest = Math.round(chosen.length * m.testFraction);
    const nTune = Math.round(chosen.length * (m.tuneFraction ?? 0));
    chosen.forEach((e, i) => (i < nTest ? test : i < nTest + nTune ? tune : train).push({ hexcode: e.hexcode, label: e.label, tags: e.tags ?? [], cls: ci }));
  });
  return { train, tune: m.tuneFraction ? tune : train, test };
}

const spriteCache = new Map<string, { text: string; at: Map<string, number> }>();
const fileListCache = new Map<string, Set<string>>();

/** The sprite sheet and the offset of each `<svg ... id="HEX"` in it (one scan, not one per look-up). */
function sprite(r: EmojiRendition): { text: string; at: Map<string, number> } {
  const file = path.join(resolvePackageDir(r.package), r.sprite!);
  if (!spriteCache.has(file)) {
    const text = fs.readFileSync(file, 'utf8');
    const at = new Map<string, number>();
    for (const m of text.matchAll(/<svg[^>]*\sid="([0-9A-Fa-f-]+)"/g)) at.set(m[1].toUpperCase(), m.index!);
    spriteCache.set(file, { text, at });
  }
  return spriteCache.get(file)!;
}

function candidates(hex: string): string[] {
  const noFe0f = hex.replace(/-FE0F/gi, '');
  return [...new Set([hex, noFe0f])];
}

function svgPath(r: EmojiRendition, hex: string): string | null {
  const dir = path.join(resolvePackageDir(r.package), r.dir ?? '.');
  if (!fileListCache.has(dir)) fileListCache.set(dir, new Set(fs.readdirSync(dir)));
  const files = fileListCache.get(dir)!;
  for (const h of candidates(hex)) {
    const f = r.file!.replace('{hex}', h.toLowerCase()).replace('{HEX}', h.toUpperCase());
    if (files.has(f)) return path.join(dir, f);
  }
  return null;
}

const iconifyCache = new Map<string, { icons: Record<string, { body: string; width?: number; height?: number }>; aliases: Record<string, { parent: string }>; chars: Record<string, string>; width: number; height: number }>();

/** An Iconify set (@iconify-json/*): SVG bodies by name; emoji are found by code point (chars.json) or by their name. */
function iconify(r: EmojiRendition) {
  const file = path.join(resolvePackageDir(r.package), r.iconify!);
  let set = iconifyCache.get(file);
  if (!set) {
    const j = JSON.parse(fs.readFileSync(file, 'utf8'));
    const charsFile = path.join(path.dirname(file), 'chars.json');
    const chars = fs.existsSync(charsFile) ? JSON.parse(fs.readFileSync(charsFile, 'utf8')) : {};
    set = { icons: j.icons, aliases: j.aliases ?? {}, chars, width: j.width ?? 16, height: j.height ?? 16 };
    iconifyCache.set(file, set);
  }
  return set;
}

/** 'woman’s boot' -> 'womans-boot', 'flag: Japan' -> 'flag-japan': the names Iconify's emoji sets use. */
export function kebabName(label: string): string {
  return label
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[’'.]/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

function iconifyName(r: EmojiRendition, hex: string, label?: string): string | null {
  const set = iconify(r);
  for (const h of candidates(hex)) {
    const n = set.chars[h.toLowerCase()];
    if (n && (set.icons[n] || set.aliases[n])) return n;
  }
  if (label) {
    const n = kebabName(label);
    if (set.icons[n] || set.aliases[n]) return n;
  }
  return null;
}

function iconifySvg(r: EmojiRendition, name: string): string {
  const set = iconify(r);
  let n = name;
  for (let i = 0; i < 4 && !set.icons[n] && set.aliases[n]; i++) n = set.aliases[n].parent;
  const icon = set.icons[n];
  if (!icon) throw new Error(`Icon '${name}' is missing from ${r.package}/${r.iconify}.`);
  return `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 ${icon.width ?? set.width} ${icon.height ?? set.height}">${icon.body}</svg>`;
}

const pngIndexCache = new Map<string, Map<string, string>>();

/** emoji-datasource-*: PNG files named in its emoji.json, for the code points its artist drew. */
function pngFile(r: EmojiRendition, hex: string): string | null {
  const dir = resolvePackageDir(r.package);
  const key = `${dir}:${r.png}`;
  let index = pngIndexCache.get(key);
  if (!index) {
    index = new Map();
    const flag = `has_img_${r.pngArtist}`;
    const list: Record<string, unknown>[] = JSON.parse(fs.readFileSync(path.join(dir, 'emoji.json'), 'utf8'));
    for (const e of list) {
      if (!e[flag]) continue;
      for (const u of [e.unified, e.non_qualified]) if (typeof u === 'string') index.set(u.toUpperCase(), e.image as string);
    }
    pngIndexCache.set(key, index);
  }
  for (const h of candidates(hex)) {
    const f = index.get(h.toUpperCase());
    if (f) return path.join(dir, r.png!, f);
  }
  return null;
}

const labelCache = new Map<string, Map<string, string>>();

function labelOf(m: EmojiManifest, hex: string): string | undefined {
  let labels = labelCache.get(m.annotations);
  if (!labels) {
    const data: { hexcode: string; label: string }[] = JSON.parse(fs.readFileSync(path.join(resolvePackageDir(m.annotations), 'en', 'data.json'), 'utf8'));
    labels = new Map(data.map((e) => [e.hexcode.toUpperCase(), e.label]));
    labelCache.set(m.annotations, labels);
  }
  return labels.get(hex.toUpperCase());
}

/** Whether an artist drew this emoji (a rendition of any of the four kinds of source). */
export function renditionHasEmoji(r: EmojiRendition, hex: string, label?: string): boolean {
  if (r.sprite) return candidates(hex).some((h) => sprite(r).at.has(h.toUpperCase()));
  if (r.iconify) return iconifyName(r, hex, label) !== null;
  if (r.png) return pngFile(r, hex) !== null;
  return svgPath(r, hex) !== null;
}

function renditionHas(m: EmojiManifest, name: string, hex: string): boolean {
  return renditionHasEmoji(m.renditions[name], hex, labelOf(m, hex));
}

/** The image source of one emoji by one artist (SVG text, or a PNG file's bytes), given its rendition. */
export function emojiSource(r: EmojiRendition, hex: string, label?: string): string | Buffer {
  if (r.iconify) {
    const n = iconifyName(r, hex, label);
    if (!n) throw new Error(`Emoji ${hex} has no icon in ${r.package}/${r.iconify}.`);
    return iconifySvg(r, n);
  }
  if (r.png) {
    const f = pngFile(r, hex);
    if (!f) throw new Error(`Emoji ${hex} has no PNG in ${r.package}/${r.png}.`);
    return fs.readFileSync(f);
  }
  return spriteOrFileSvg(r, hex);
}

/** The image source (SVG text or PNG bytes) of one emoji in one rendition. */
export function emojiSvg(m: EmojiManifest, rendition: string, hex: string): string | Buffer {
  const r = m.renditions[rendition];
  if (!r) throw new Error(`Emoji manifest ${m.file}: no rendition '${rendition}' (have ${Object.keys(m.renditions).join(', ')}).`);
  return emojiSource(r, hex, labelOf(m, hex));
}

function spriteOrFileSvg(r: EmojiRendition, hex: string): string {
  if (r.sprite) {
    const { text, at } = sprite(r);
    for (const h of candidates(hex)) {
      const start = at.get(h.toUpperCase());
      if (start === undefined) continue;
      // Some sprite entries hold nested <svg> elements (Noto's flags): the entry ends at its own closing tag.
      let end = -1;
      for (let depth = 0, at = start; ; ) {
        const open = text.indexOf('<svg', at + 1);
        const close = text.indexOf('</svg>', at + 1);
        if (close < 0) break;
        if (open >= 0 && open < close) {
          depth++;
          at = open;
        } else if (depth === 0) {
          end = close;
          break;
        } else {
          depth--;
          at = close;
        }
      }
      if (end < 0) throw new Error(`Emoji ${hex}: sprite ${r.sprite} of ${r.package} has no closing </svg> for it.`);
      // Inner sprite elements lack the namespace that a standalone SVG needs.
      let svg = text.slice(start, end + 6);
      if (!svg.includes('xmlns=')) svg = svg.replace('<svg', '<svg xmlns="http://www.w3.org/2000/svg"');
      if (svg.includes('xlink:') && !svg.includes('xmlns:xlink')) svg = svg.replace('<svg', '<svg xmlns:xlink="http://www.w3.org/1999/xlink"');
      return svg;
    }
    throw new Error(`Emoji ${hex} is missing from sprite ${r.sprite} of ${r.package}.`);
  }
  const p = svgPath(r, hex);
  if (!p) throw new Error(`Emoji ${hex} has no SVG in ${r.package}/${r.dir}.`);
  return fs.readFileSync(p, 'utf8');
}

/**
 * SVG -> size x size RGB floats in [0, 1]: rasterise at 4x, flatten on the background, trim the margin
 * (artists pad differently), fit into size-4 pixels and pad 2 pixels, so every artist's emoji has one scale.
 */
export async function renderSvg(svg: string | Buffer, size: number, background = '#ffffff', what = 'SVG'): Promise<Float32Array> {
  let buf: Buffer;
  try {
    const big = await sharp(Buffer.isBuffer(svg) ? svg : Buffer.from(svg), { density: 288 })
      .flatten({ background })
      .png()
      .toBuffer();
    let img = sharp(big);
    try {
      img = sharp(await sharp(big).trim({ threshold: 8 }).png().toBuffer());
    } catch {
      // trim fails on a uniform image; keep it whole
    }
    buf = await img
      .resize(size - 4, size - 4, { fit: 'contain', background })
      .extend({ top: 2, bottom: 2, left: 2, right: 2, background })
      .removeAlpha()
      .raw()
      .toBuffer();
  } catch (e) {
    throw new Error(`Cannot render ${what}: ${(e as Error).message}. Check that the file is a valid SVG (re-install its npm package if it came from one).`);
  }
  if (buf.length !== size * size * 3) throw new Error(`Rendering ${what} gave ${buf.length} bytes, expected ${size * size * 3}.`);
  const out = new Float32Array(buf.length);
  for (let i = 0; i < buf.length; i++) out[i] = buf[i] / 255;
  return out;
}

/** One rendition's split as a dataset (cached). */
export async function loadEmoji(m: EmojiManifest, rendition: string, split: EmojiSplit, log?: (s: string) => void): Promise<ImageDataset> {
  const entries = emojiEntries(m)[split].filter((e) => !(m.shiftRenditions ?? []).includes(rendition) || renditionHas(m, rendition, e.hexcode));
  const key = sha256(JSON.stringify({ v: RENDER_VERSION, m: { ...m, file: undefined, description: undefined }, rendition, split })).slice(0, 16);
  const base = cacheDir('data', `emoji-${rendition}-${split}-${key}`);
  const size = m.imageSize;
  const per = size * size * 3;
  // Pixels are kept as 8-bit in the cache and always read back from bytes, so a fresh render and a cached
  // one give identical datasets.
  let bytes: Uint8Array | null = null;
  if (fs.existsSync(`${base}.bin`)) {
    try {
      const raw = readCached(`${base}.bin`);
      if (raw.length === entries.length * per) bytes = raw;
      else log?.(`cached render ${base}.bin has the wrong size (${raw.length} bytes); rendering again`);
    } catch (e) {
      log?.(`cached render ${base}.bin is unusable (${(e as Error).message}); rendering again`);
    }
  }
  if (!bytes) {
    bytes = new Uint8Array(entries.length * per);
    for (let i = 0; i < entries.length; i++) {
      const px = await renderSvg(emojiSvg(m, rendition, entries[i].hexcode), size, m.background, `emoji ${entries[i].hexcode} (${rendition})`);
      for (let j = 0; j < per; j++) bytes[i * per + j] = Math.round(px[j] * 255);
    }
    writeCached(`${base}.bin`, bytes);
    writeJsonAtomic(`${base}.json`, { rendition, split, count: entries.length, hexcodes: entries.map((e) => e.hexcode) });
    log?.(`rendered ${entries.length} ${rendition} emoji (${split})`);
  }
  const images = Float32Array.from(bytes, (v) => v / 255);
  return {
    name: `${m.name}/${rendition}/${split}`,
    size,
    images,
    labels: Int32Array.from(entries.map((e) => e.cls)),
    classNames: m.classes,
    descriptions: entries.map((e) => e.label),
    ids: entries.map((e) => e.hexcode),
  };
}
