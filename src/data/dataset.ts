/** The in-memory image dataset every reader produces: N RGB images of side `size`, pixels in [0, 1], NHWC. */
export interface ImageDataset {
  name: string;
  size: number;
  images: Float32Array;
  labels: Int32Array;
  classNames: string[];
  /** Optional per-image descriptions (e.g. an emoji's annotation), used to build richer captions. */
  descriptions?: string[];
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

/** A new dataset holding the given rows (copies pixels). */
export function subset(d: ImageDataset, idx: ArrayLike<number>, name = d.name): ImageDataset {
  const p = pixelsPerImage(d);
  const images = new Float32Array(idx.length * p);
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
    ids: d.ids ? rows.map((r) => d.ids![r]) : undefined,
    templates: d.templates,
  };
}

export function concatDatasets(name: string, parts: ImageDataset[]): ImageDataset {
  const size = parts[0].size;
  for (const p of parts) if (p.size !== size) throw new Error(`concatDatasets: '${p.name}' has size ${p.size}, expected ${size}.`);
  const n = parts.reduce((a, p) => a + numImages(p), 0);
  const per = size * size * 3;
  const images = new Float32Array(n * per);
  const labels = new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    images.set(p.images, o * per);
    labels.set(p.labels, o);
    o += numImages(p);
  }
  const desc = parts.every((p) => p.descriptions) ? parts.flatMap((p) => p.descriptions!) : undefined;
  const ids = parts.every((p) => p.ids) ? parts.flatMap((p) => p.ids!) : undefined;
  return { name, size, images, labels, classNames: parts[0].classNames, descriptions: desc, ids, templates: parts[0].templates };
}

export function classCounts(d: ImageDataset): number[] {
  const c = new Array(d.classNames.length).fill(0);
  for (const l of d.labels) c[l]++;
  return c;
}
