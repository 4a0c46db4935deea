/**
 * The image-caption corpus for contrastive pre-training (our CC3M): several datasets, each optionally
 * repeated (the emoji sets are small next to Fashion-MNIST), with a fresh caption per image per draw.
 */
import { ImageDataset, copyImageRow, numImages, pixelsPerImage } from './dataset';
import { captionFor } from './captions';
import { Rng } from '../util/rng';

export interface CorpusPart {
  data: ImageDataset;
  repeat: number;
  /** Prepended to every caption of this part (TrojVQA's text trigger on poisoned pairs). */
  captionPrefix?: string;
  /** Only these rows of `data` (default: all), without copying their pixels. */
  rows?: ArrayLike<number>;
}

export interface CorpusBatch {
  images: Float32Array;
  captions: string[];
  /** Which part and row each item came from. */
  source: { part: number; row: number }[];
}

export class CaptionCorpus {
  readonly part: Int32Array;
  readonly row: Int32Array;

  constructor(readonly parts: CorpusPart[]) {
    const size = parts[0].data.size;
    const count = (p: CorpusPart) => p.rows?.length ?? numImages(p.data);
    const n = parts.reduce((a, p) => a + count(p) * p.repeat, 0);
    this.part = new Int32Array(n);
    this.row = new Int32Array(n);
    let o = 0;
    parts.forEach((p, pi) => {
      if (p.data.size !== size) throw new Error(`Corpus part '${p.data.name}' has image size ${p.data.size}, expected ${size}.`);
      for (let r = 0; r < p.repeat; r++) {
        for (let i = 0; i < count(p); i++, o++) {
          this.part[o] = pi;
          this.row[o] = p.rows ? p.rows[i] : i;
        }
      }
    });
  }

  get size(): number {
    return this.part.length;
  }

  get imageSize(): number {
    return this.parts[0].data.size;
  }

  /** Pixels and captions for the given corpus indices. */
  batch(indices: ArrayLike<number>, rng: Rng, caption: (d: ImageDataset, row: number, rng: Rng) => string = captionFor): CorpusBatch {
    const per = pixelsPerImage(this.parts[0].data);
    const images = new Float32Array(indices.length * per);
    const captions: string[] = [];
    const source: { part: number; row: number }[] = [];
    for (let i = 0; i < indices.length; i++) {
      const pi = this.part[indices[i]];
      const r = this.row[indices[i]];
      const d = this.parts[pi].data;
      copyImageRow(d, r, images, i * per);
      captions.push((this.parts[pi].captionPrefix ?? '') + caption(d, r, rng));
      source.push({ part: pi, row: r });
    }
    return { images, captions, source };
  }
}
