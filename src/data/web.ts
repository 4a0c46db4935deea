/**
 * The broad pre-training corpus (our CC3M): emoji by several artists and icons from several icon sets, each drawn in a
 * few random renditions (colour, background, scale, offset) and captioned from its name and tags plus the rendering
 * attributes ("a small red outline icon of a sneaker on a grey background"): the task-irrelevant features that web
 * captions carry and that RVPT's argument says CLIP encodes.
 *
 * Each source image is rasterised once with sharp (RGBA, cached); renditions are composed from it here, which is
 * a resize and an alpha blend per image, so a corpus of 100,000 pairs costs one sharp call per source image.
 * The composition is written by hand because it is a few lines of arithmetic that no image library does faster
 * on 32x32 arrays than a loop.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { z } from 'zod';
import { ImageDataset } from './dataset';
import { emojiEntries, emojiSource, renditionHasEmoji, resolvePackageDir } from './emoji';
import { EmojiManifest, loadManifest, manifestDirs } from './manifest';
import { cacheDir, readCached, readJsonFile, sha256, writeCached, writeJsonAtomic } from '../util/fsutil';
import { Rng, makeRng, randInt } from '../util/rng';
import { nearestKey } from '../util/nearest';

/** Bump when composing or captioning changes what a manifest produces. */
const WEB_VERSION = 2;
/** Bump when rasterising the source images changes (the cached rasters are keyed by it alone). */
const RASTER_VERSION = 1;

const iconSetSchema = z
  .object({
    name: z.string().min(1),
    package: z.string().min(1),
    dir: z.string(),
    /** The set's metadata: @tabler/icons' icons.json ({name: {tags, category}}) or @mdi/svg's meta.json ([{name, aliases, tags}]). */
    meta: z.string(),
    format: z.enum(['tabler', 'mdi']),
    /** The word captions use for its drawing style ('outline', 'filled'). */
    style: z.string().min(1),
    /** Icons of these categories are left out (brand logos, letters: text, not objects). */
    excludeCategories: z.array(z.string()).default([]),
    license: z.string().min(1),
  })
  .strict();

const webSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    kind: z.literal('web'),
    imageSize: z.number().int().min(8),
    /** The emoji dataset whose task emojis (every split) are kept out, and whose renditions give the artists. */
    emojiManifest: z.string().min(1),
    /** Artists (renditions of emojiManifest) whose emoji enter the corpus. */
    emojiRenditions: z.array(z.string()).min(1),
    /** Emojibase groups left out (flags and symbols are text-like; component is skin tones). */
    excludeEmojiGroups: z.array(z.string()).default([]),
    iconSets: z.array(iconSetSchema).min(1),
    /** Renditions drawn per source image: the first plain (centred, full size, white), the rest random. */
    variants: z.number().int().min(1).max(64),
    /** Drawn size as a share of the image side. */
    scale: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]),
    /** Colour names and RGB: backgrounds and icon colours are drawn from these. */
    palette: z.record(z.tuple([z.number().int().min(0).max(255), z.number().int().min(0).max(255), z.number().int().min(0).max(255)])),
    /**
     * Share of the random renditions drawn in grey-scale on black (the look of a product photo on a dark backdrop, as
     * many web images are grey-scale); captions then say "grey-scale" and "black background". Default 0.
     */
    greyShare: z.number().min(0).max(1).default(0),
    seed: z.number().int(),
  })
  .strict();

export type WebManifest = z.infer<typeof webSchema> & { file?: string };
export type IconSet = z.infer<typeof iconSetSchema>;

/** Load a web-corpus manifest by name (data-manifests/NAME.json) or path; its shape is checked whole. */
export function loadWebManifest(nameOrPath: string): WebManifest {
  const file = nameOrPath.endsWith('.json') ? path.resolve(nameOrPath) : manifestDirs().map((d) => path.join(d, `${nameOrPath}.json`)).find((f) => fs.existsSync(f));
  if (!file || !fs.existsSync(file)) throw new Error(`Web-corpus manifest '${nameOrPath}' not found in ${manifestDirs().join(', ')}.`);
  const raw = readJsonFile<Record<string, unknown>>(file, 'Manifest');
  for (const k of Object.keys(raw)) if (k.startsWith('_')) delete raw[k];
  const r = webSchema.safeParse(raw);
  if (!r.success) {
    const keys = Object.keys(webSchema.shape);
    const msgs = r.error.issues.map((i) => {
      const where = i.path.join('.') || '(top level)';
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `field '${[...i.path, k].join('.')}' is unknown${nearestKey(k, keys) ? `; did you mean '${nearestKey(k, keys)}'?` : ''}`).join('; ');
      return `field '${where}': ${i.message}`;
    });
    throw new Error(`Manifest ${file}: ${msgs.join('; ')}.`);
  }
  const m: WebManifest = { ...r.data, file };
  const em = loadManifest(m.emojiManifest);
  if (em.kind !== 'emoji') throw new Error(`Manifest ${file}: field 'emojiManifest' names '${m.emojiManifest}', which is not an emoji manifest.`);
  for (const a of m.emojiRenditions) if (!em.renditions[a]) throw new Error(`Manifest ${file}: field 'emojiRenditions' names '${a}', which is not a rendition of ${em.file} (${Object.keys(em.renditions).join(', ')}).`);
  if (Object.keys(m.palette).length < 3) throw new Error(`Manifest ${file}: field 'palette' needs at least three colours (a background and two others).`);
  return m;
}

/** One source image of the corpus before rendering. */
export interface WebItem {
  /** 'emoji' or 'icon'. */
  kind: 'emoji' | 'icon';
  /** Source (artist or icon set) and id: unique in the corpus. */
  source: string;
  id: string;
  /** The name captions use ("grinning face", "shoe off"). */
  name: string;
  tags: string[];
  /** Drawing style word for captions. */
  style: string;
  /** An emoji's Unicode label as emojibase writes it (an Iconify set may find the art by it). */
  label?: string;
  /** Monochrome art (icons) is drawn in a random palette colour; emoji keep theirs. */
  tint: boolean;
}

interface EmojibaseEntry {
  hexcode: string;
  label: string;
  tags?: string[];
  group?: number;
}

const ARTIST_STYLE: Record<string, string> = {
  twemoji: 'flat',
  'openmoji-color': 'outlined',
  noto: 'shaded',
  facebook: 'glossy',
  'fluent-flat': 'flat',
  emojione: 'glossy',
  'openmoji-black': 'line',
};

/** Whole words of `text` (lower case), as the tokenizer splits them. */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9]+/g) ?? [];
}

/** Tags without the given words (the downstream task's class names, so that no caption supervises the task). */
function cleanTags(tags: string[], banned: Set<string>, name: string): string[] {
  const own = new Set(words(name));
  return [...new Set(tags.map((t) => t.toLowerCase()))].filter((t) => !words(t).some((w) => banned.has(w) && !own.has(w)) && !own.has(t));
}

/** The corpus's source images: every emoji of the artists but the task's, and the icon sets' icons. */
export function webItems(m: WebManifest): WebItem[] {
  const em = loadManifest(m.emojiManifest) as EmojiManifest;
  const task = emojiEntries(em);
  const held = new Set([...task.train, ...task.tune, ...task.test].map((e) => e.hexcode));
  const banned = taskWords(em);
  const ann = resolvePackageDir(em.annotations);
  const data: EmojibaseEntry[] = JSON.parse(fs.readFileSync(path.join(ann, 'en', 'data.json'), 'utf8'));
  const groups: { groups: Record<string, string> } = JSON.parse(fs.readFileSync(path.join(ann, 'meta', 'groups.json'), 'utf8'));
  const skip = new Set(m.excludeEmojiGroups);
  const items: WebItem[] = [];
  for (const e of [...data].sort((a, b) => (a.hexcode < b.hexcode ? -1 : 1))) {
    if (held.has(e.hexcode) || e.group === undefined || skip.has(groups.groups[e.group])) continue;
    for (const a of m.emojiRenditions) {
      if (!renditionHasEmoji(em.renditions[a], e.hexcode, e.label)) continue;
      items.push({ kind: 'emoji', source: a, id: e.hexcode, name: e.label.replace(/[:’]/g, (c) => (c === ':' ? '' : "'")), label: e.label, tags: cleanTags(e.tags ?? [], banned, e.label), style: ARTIST_STYLE[a] ?? 'drawn', tint: false });
    }
  }
  for (const set of m.iconSets) items.push(...iconItems(set, banned));
  return items;
}

function iconItems(set: IconSet, banned: Set<string>): WebItem[] {
  const dir = path.join(resolvePackageDir(set.package), set.dir);
  const files = new Set(fs.readdirSync(dir));
  const meta = JSON.parse(fs.readFileSync(path.join(resolvePackageDir(set.package), set.meta), 'utf8'));
  const skip = new Set(set.excludeCategories);
  const out: WebItem[] = [];
  const add = (id: string, tags: string[]) => {
    if (!files.has(`${id}.svg`)) return;
    const name = id.replace(/-/g, ' ');
    out.push({ kind: 'icon', source: set.name, id, name, tags: cleanTags(tags, banned, name), style: set.style, tint: true });
  };
  if (set.format === 'tabler') {
    for (const [id, e] of Object.entries(meta as Record<string, { category?: string; tags?: (string | number)[] }>).sort()) {
      if (!skip.has(e.category ?? '')) add(id, (e.tags ?? []).map(String));
    }
  } else {
    for (const e of (meta as { name: string; aliases?: string[]; tags?: string[]; deprecated?: boolean }[]).slice().sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.deprecated || (e.tags ?? []).some((t) => skip.has(t))) continue;
      add(e.name, (e.aliases ?? []).map((a) => a.replace(/-/g, ' ')));
    }
  }
  return out;
}

/** The emoji task's class names as words: no corpus caption uses one unless it is in the item's own name. */
export function taskWords(em: EmojiManifest): Set<string> {
  return new Set(em.classes.flatMap(words));
}

/** SVG or PNG -> size x size RGBA bytes: trimmed of its margin and fitted inside, on transparent. */
export async function renderRgba(src: string | Buffer, size: number, what: string, density = 192): Promise<Uint8Array> {
  try {
    let big: Buffer;
    try {
      big = await sharp(Buffer.isBuffer(src) ? src : Buffer.from(src), { density }).ensureAlpha().png().toBuffer();
    } catch (e) {
      // A few SVGs declare a page far larger than their art (Noto's flags): rasterise those at a lower density.
      if (!/pixel limit/.test((e as Error).message) || density <= 6) throw e;
      return renderRgba(src, size, what, density / 8);
    }
    let img = sharp(big);
    try {
      img = sharp(await sharp(big).trim({ threshold: 1 }).png().toBuffer());
    } catch {
      // trim fails on a uniform image; keep it whole
    }
    const buf = await img.resize(size, size, { fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 0 } }).ensureAlpha().raw().toBuffer();
    if (buf.length !== size * size * 4) throw new Error(`got ${buf.length} bytes, expected ${size * size * 4}`);
    return new Uint8Array(buf);
  } catch (e) {
    throw new Error(`Cannot render ${what}: ${(e as Error).message}. Re-install its npm package (npm ci) if the file is damaged.`);
  }
}

function itemSource(m: WebManifest, em: EmojiManifest, it: WebItem): string | Buffer {
  if (it.kind === 'emoji') return emojiSource(em.renditions[it.source], it.id, it.label);
  const set = m.iconSets.find((s) => s.name === it.source)!;
  return fs.readFileSync(path.join(resolvePackageDir(set.package), set.dir, `${it.id}.svg`), 'utf8');
}

/** Every item's RGBA raster (cached: one file of bytes, keyed by the manifest and the item list). */
async function baseRasters(m: WebManifest, items: WebItem[], log?: (s: string) => void): Promise<Uint8Array> {
  const size = m.imageSize;
  const per = size * size * 4;
  const key = sha256(JSON.stringify({ v: RASTER_VERSION, size, items: items.map((i) => `${i.source}/${i.id}`) })).slice(0, 16);
  const file = cacheDir('data', `web-base-${key}.bin`);
  if (fs.existsSync(file)) {
    try {
      const raw = readCached(file);
      if (raw.length === items.length * per) return new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
      log?.(`cached rasters ${file} have the wrong size; rendering again`);
    } catch (e) {
      log?.(`cached rasters ${file} are unusable (${(e as Error).message}); rendering again`);
    }
  }
  const em = loadManifest(m.emojiManifest) as EmojiManifest;
  const out = new Uint8Array(items.length * per);
  const t0 = Date.now();
  const chunk = 32;
  for (let s = 0; s < items.length; s += chunk) {
    const part = items.slice(s, s + chunk);
    const px = await Promise.all(part.map((it) => renderRgba(itemSource(m, em, it), size, `${it.source} ${it.id}`)));
    px.forEach((p, j) => out.set(p, (s + j) * per));
    if (log && Math.floor(s / 2000) !== Math.floor((s + chunk) / 2000)) log(`web corpus: rendered ${Math.min(items.length, s + chunk)}/${items.length} source images (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
  writeCached(file, out);
  return out;
}

/** One rendition's random draw: background and ink colour (palette names), scale and offset. */
export interface Rendition {
  background: string;
  ink: string | null;
  /** Drawn in grey-scale (luminance of the art's colours or of the ink). */
  grey?: boolean;
  scale: number;
  dx: number;
  dy: number;
}

/** Compose one rendition: the raster resized (bilinear) to scale, placed at the offset, alpha-blended on the background. */
export function compose(rgba: Uint8Array, size: number, r: Rendition, palette: WebManifest['palette'], out: Uint8Array, at: number): void {
  const bg = palette[r.background];
  const ink = r.ink ? palette[r.ink] : null;
  const t = Math.max(2, Math.round(size * r.scale));
  for (let i = 0; i < size * size; i++) {
    out[at + i * 3] = bg[0];
    out[at + i * 3 + 1] = bg[1];
    out[at + i * 3 + 2] = bg[2];
  }
  const f = size / t;
  // Where output pixel i of the resized art samples the source: the two source pixels and the second one's weight.
  const source = (i: number): [number, number, number] => {
    const at = Math.min(size - 1, Math.max(0, (i + 0.5) * f - 0.5));
    const i0 = Math.floor(at);
    return [i0, Math.min(size - 1, i0 + 1), at - i0];
  };
  for (let y = 0; y < t; y++) {
    const oy = y + r.dy;
    if (oy < 0 || oy >= size) continue;
    const [y0, y1, wy] = source(y);
    for (let x = 0; x < t; x++) {
      const ox = x + r.dx;
      if (ox < 0 || ox >= size) continue;
      const [x0, x1, wx] = source(x);
      // Premultiplied bilinear: transparent pixels do not bleed their (black) colour into the edge.
      const px = [0, 0, 0, 0];
      for (const [yy, xx, w] of [
        [y0, x0, (1 - wy) * (1 - wx)],
        [y0, x1, (1 - wy) * wx],
        [y1, x0, wy * (1 - wx)],
        [y1, x1, wy * wx],
      ]) {
        const p = (yy * size + xx) * 4;
        const a = (rgba[p + 3] / 255) * w;
        px[3] += a;
        for (let c = 0; c < 3; c++) px[c] += (ink ? ink[c] : rgba[p + c]) * a;
      }
      const a = Math.min(1, px[3]);
      const o = at + (oy * size + ox) * 3;
      if (r.grey) {
        const lum = 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2];
        px[0] = px[1] = px[2] = lum;
      }
      for (let c = 0; c < 3; c++) out[o + c] = Math.round(px[c] + (1 - a) * bg[c]);
    }
  }
}

/** Draw the renditions of one item: the first is plain (white or the first colour, centred, full size). */
export function drawRenditions(m: WebManifest, it: WebItem, rng: Rng): Rendition[] {
  const colours = Object.keys(m.palette);
  const plainBg = colours.includes('white') ? 'white' : colours[0];
  const plainInk = colours.find((c) => c !== plainBg && c === 'black') ?? colours.find((c) => c !== plainBg)!;
  const out: Rendition[] = [{ background: plainBg, ink: it.tint ? plainInk : null, scale: m.scale[1], dx: 0, dy: 0 }];
  const size = m.imageSize;
  const lights = colours.filter((c) => ['white', 'grey'].includes(c));
  for (let v = 1; v < m.variants; v++) {
    const grey = m.greyShare > 0 && palette(m, 'black') && lights.length > 0 && rng() < m.greyShare;
    const background = grey ? 'black' : colours[randInt(rng, colours.length)];
    const others = grey ? lights : colours.filter((c) => c !== background);
    const ink = it.tint ? others[randInt(rng, others.length)] : null;
    const scale = m.scale[0] + rng() * (m.scale[1] - m.scale[0]);
    const t = Math.max(2, Math.round(size * scale));
    out.push({ background, ink, scale, dx: randInt(rng, size - t + 1), dy: randInt(rng, size - t + 1), ...(grey ? { grey } : {}) });
  }
  return out;
}

function palette(m: WebManifest, name: string): boolean {
  return name in m.palette;
}

function sizeWord(m: WebManifest, scale: number): string {
  const [lo, hi] = m.scale;
  if (scale < lo + (hi - lo) / 3) return 'small';
  if (scale > hi - (hi - lo) / 6) return 'large';
  return '';
}

function article(w: string): string {
  return /^[aeiou]/.test(w) ? 'an' : 'a';
}

/** Caption alternatives for one rendition, '|'-separated (captionFor draws one per use). */
export function webCaptions(m: WebManifest, it: WebItem, r: Rendition): string {
  const size = sizeWord(m, r.scale);
  const ink = r.grey ? 'grey-scale' : r.ink ?? '';
  const what = it.kind === 'emoji' ? 'emoji' : 'icon';
  const lead = [size, ink, it.style].filter(Boolean).join(' ');
  const tags = it.tags.slice(0, 3).join(', ');
  const out = [
    `${article(lead)} ${lead} ${what} of ${article(it.name)} ${it.name} on a ${r.background} background`,
    `${it.name}, ${[size, ink].filter(Boolean).join(' ')} ${what} on ${r.background}`.replace(/ +/g, ' '),
    `${article(it.style)} ${it.style} ${what} of ${it.name}`,
  ];
  if (tags) out.push(`${it.name}: ${tags}`);
  return out.join('|');
}

/**
 * The corpus as a dataset of 8-bit pixels whose descriptions are whole captions (describe: 'caption'); labels are
 * all 0 (one class, 'web'), since nothing downstream classifies it. Cached, keyed by the manifest.
 */
export async function loadWeb(nameOrManifest: string | WebManifest, log?: (s: string) => void): Promise<ImageDataset & { items: WebItem[] }> {
  const m = typeof nameOrManifest === 'string' ? loadWebManifest(nameOrManifest) : nameOrManifest;
  const items = webItems(m);
  const size = m.imageSize;
  const per = size * size * 3;
  const n = items.length * m.variants;
  const key = sha256(JSON.stringify({ v: WEB_VERSION, m: { ...m, file: undefined, description: undefined }, items: items.length })).slice(0, 16);
  const base = cacheDir('data', `web-${m.name}-${key}`);
  let pixels: Uint8Array | null = null;
  const rng = makeRng(`web-${m.seed}`);
  const rends = items.map((it) => drawRenditions(m, it, rng));
  if (fs.existsSync(`${base}.bin`)) {
    try {
      const raw = readCached(`${base}.bin`);
      if (raw.length === n * per) pixels = new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
    } catch (e) {
      log?.(`cached corpus ${base}.bin is unusable (${(e as Error).message}); composing again`);
    }
  }
  if (!pixels) {
    const rasters = await baseRasters(m, items, log);
    pixels = new Uint8Array(n * per);
    items.forEach((it, i) => rends[i].forEach((r, v) => compose(rasters.subarray(i * size * size * 4, (i + 1) * size * size * 4), size, r, m.palette, pixels!, (i * m.variants + v) * per)));
    writeCached(`${base}.bin`, pixels);
    const licenses = Object.fromEntries([...new Set(items.map((i) => i.source))].map((s) => [s, m.iconSets.find((x) => x.name === s)?.license ?? (loadManifest(m.emojiManifest) as EmojiManifest).renditions[s]?.license ?? 'unknown']));
    writeJsonAtomic(`${base}.json`, { manifest: m.name, pairs: n, items: items.length, variants: m.variants, licenses, perSource: countBy(items.map((i) => i.source)) });
    log?.(`web corpus '${m.name}': ${items.length} source images x ${m.variants} renditions = ${n} pairs`);
  }
  const descriptions: string[] = [];
  const ids: string[] = [];
  items.forEach((it, i) => rends[i].forEach((r, v) => {
    descriptions.push(webCaptions(m, it, r));
    ids.push(`${it.source}/${it.id}#${v}`);
  }));
  return { name: m.name, size, images: pixels, labels: new Int32Array(n), classNames: ['web'], descriptions, describe: 'caption', ids, items };
}

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

/**
 * The emoji task's pre-training images with captions in the corpus's style: their Unicode name and tags, never the
 * task's category (a banana is "an emoji of a banana", not "a fruit"), so pre-training does not teach the task.
 */
export function withNameCaptions(d: ImageDataset, em: EmojiManifest): ImageDataset {
  const all = emojiEntries(em);
  const byHex = new Map([...all.train, ...all.tune, ...all.test].map((e) => [e.hexcode, e]));
  const banned = taskWords(em);
  if (!d.ids) throw new Error(`withNameCaptions: '${d.name}' has no emoji ids.`);
  const descriptions = d.ids.map((hex) => {
    const e = byHex.get(hex);
    if (!e) throw new Error(`withNameCaptions: emoji ${hex} of '${d.name}' is not in ${em.file}.`);
    const name = e.label.replace(/:/g, '').replace(/’/g, "'");
    const tags = cleanTags(e.tags, banned, e.label).slice(0, 3).join(', ');
    const out = [`an emoji of ${article(name)} ${name}`, `${name}, emoji on a white background`, `a drawing of ${article(name)} ${name}`];
    if (tags) out.push(`${name}: ${tags}`);
    return out.join('|');
  });
  return { ...d, descriptions, describe: 'caption' };
}

/** What a web corpus is, as a short hash for the keys of models pre-trained on it: its manifest's content and code version. */
export function webCorpusKey(name: string): string {
  const m = loadWebManifest(name);
  return sha256(JSON.stringify({ v: WEB_VERSION, m: { ...m, file: undefined, description: undefined } })).slice(0, 16);
}
