/**
 * The in-memory image dataset every reader produces: N RGB images of side `size`, NHWC, pixels in [0, 1] as float32,
 * or as bytes 0-255 (image folders: a quarter of the memory). Read pixels through imageRows / copyImageRow, which
 * give float32 in [0, 1] either way (a byte array set into a Float32Array would copy 0-255 unscaled).
 */
export interface ImageDataset {
  name: string;
  size: number;
  images: Float32Array | Uint8Array;
  labels: Int32Array;
  classNames: string[];
  /** Optional per-image descriptions (e.g. an emoji's annotation), used to build richer captions. */
  descriptions?: string[];
  /**
   * How captions use `descriptions`: 'annotation' (the default), a phrase with its own templates ("an emoji of
   * grinning face, a kind of smiley"); 'adjectives', words put before the class name ("a photo of a dark large
   * shirt"; attributes.ts); 'caption', whole captions, '|'-separated alternatives, that need not name the class
   * (the broad corpus, web.ts, and coarse captions, coarse.ts).
   */
  describe?: 'annotation' | 'adjectives' | 'caption';
  /** Optional per-image identity (e.g. an emoji hexcode), shared across renditions of the same concept. */
  ids?: string[];
  /** Zero-shot prompt templates of the dataset's manifest ('{}' = class name); absent: the project's default set. */
  templates?: string[];
}

export function numImages(d: ImageDataset): number {
  return d.labels.length;
}

export function pixelsPerImage(d: ImageDataset): number {
  return d.size * d.size * 3;
}

/** Rows [start, end) as float32 in [0, 1]: a view of float32 storage, a converted copy of bytes. */
export function imageRows(d: ImageDataset, start: number, end: number): Float32Array {
  const p = pixelsPerImage(d);
  const v = d.images.subarray(start * p, end * p);
  return v instanceof Float32Array ? v : Float32Array.from(v, (b) => b / 255);
}

/** Row r's pixels as float32 in [0, 1], written into `out` at `offset`. */
export function copyImageRow(d: ImageDataset, r: number, out: Float32Array, offset: number): void {
  const p = pixelsPerImage(d);
  const v = d.images.subarray(r * p, (r + 1) * p);
  if (v instanceof Float32Array) out.set(v, offset);
  else for (let i = 0; i < p; i++) out[offset + i] = v[i] / 255;
}

/** A new dataset holding the given rows (copies pixels, keeping their storage). */
export function subset(d: ImageDataset, idx: ArrayLike<number>, name = d.name): ImageDataset {
  const p = pixelsPerImage(d);
  const images = d.images instanceof Uint8Array ? new Uint8Array(idx.length * p) : new Float32Array(idx.length * p);
  const labels = new Int32Array(idx.length);
  const rows = Array.from(idx);
  rows.forEach((r, i) => {
    images.set(d.images.subarray(r * p, (r + 1) * p), i * p);
    labels[i] = d.labels[r];
  });
  return {
    name,
    size: d.size,
    images,
    labels,
    classNames: d.classNames,
    descriptions: d.descriptions ? rows.map((r) => d.descriptions![r]) : undefined,
    describe: d.describe,
    ids: d.ids ? rows.map((r) => d.ids![r]) : undefined,
    templates: d.templates,
  };
}

export function concatDatasets(name: string, parts: ImageDataset[]): ImageDataset {
  const size = parts[0].size;
  for (const p of parts) if (p.size !== size) throw new Error(`concatDatasets: '${p.name}' has size ${p.size}, expected ${size}.`);
  const n = parts.reduce((a, p) => a + numImages(p), 0);
  const per = size * size * 3;
  const bytes = parts.every((p) => p.images instanceof Uint8Array);
  const images = bytes ? new Uint8Array(n * per) : new Float32Array(n * per);
  const labels = new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    if (bytes || p.images instanceof Float32Array) images.set(p.images, o * per);
    else images.set(imageRows(p, 0, numImages(p)), o * per);
    labels.set(p.labels, o);
    o += numImages(p);
  }
  const desc = parts.every((p) => p.descriptions) ? parts.flatMap((p) => p.descriptions!) : undefined;
  const ids = parts.every((p) => p.ids) ? parts.flatMap((p) => p.ids!) : undefined;
  const describe = parts[0].describe;
  if (desc && parts.some((p) => p.describe !== describe)) throw new Error(`concatDatasets: '${name}' joins parts whose descriptions are of different kinds (describe: ${parts.map((p) => p.describe ?? 'annotation').join(', ')}).`);
  return { name, size, images, labels, classNames: parts[0].classNames, descriptions: desc, describe: desc ? describe : undefined, ids, templates: parts[0].templates };
}

export function classCounts(d: ImageDataset): number[] {
  const c = new Array(d.classNames.length).fill(0);
  for (const l of d.labels) c[l]++;
  return c;
}
