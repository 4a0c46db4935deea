/** Fashion-MNIST from its IDX files (Debian's dataset-fashion-mnist), checked against the manifest's sha256. */
import * as fs from 'fs';
import * as path from 'path';
import { ImageDataset } from './dataset';
import { readIdxFile } from './idx';
import { FileRef, IdxManifest } from './manifest';
import { sha256File } from '../util/fsutil';

export function idxRoot(m: IdxManifest): string {
  return process.env.RVPT_FASHION_MNIST_DIR ?? m.root;
}

function checkedPath(m: IdxManifest, ref: FileRef, field: string): string {
  const file = path.resolve(idxRoot(m), ref.path);
  if (!fs.existsSync(file)) {
    throw new Error(`Dataset '${m.name}': file ${file} (manifest field files.${field}) is missing. To fix: ${m.install}.`);
  }
  if (ref.sha256) {
    const got = sha256File(file);
    if (got !== ref.sha256) {
      throw new Error(
        `Dataset '${m.name}': checksum mismatch for ${file} (files.${field}): sha256 ${got}, manifest expects ${ref.sha256}. ` +
          `The file is corrupt or a different version. To fix: ${m.install}.`,
      );
    }
  }
  return file;
}

/**
 * One split as 32x32 RGB: the 28x28 grey image is centred with a 2-pixel black border (padding keeps strokes
 * crisp where resizing would blur them; the background is already black) and copied to three channels.
 */
export function loadIdxSplit(m: IdxManifest, split: 'train' | 'test'): ImageDataset {
  const imgs = readIdxFile(checkedPath(m, m.files[split].images, `${split}.images`));
  const labs = readIdxFile(checkedPath(m, m.files[split].labels, `${split}.labels`));
  const [n, h, w] = imgs.dims;
  if (imgs.dims.length !== 3 || labs.dims.length !== 1 || labs.dims[0] !== n) {
    throw new Error(`Dataset '${m.name}' ${split}: images are ${imgs.dims.join('x')} and labels ${labs.dims.join('x')}; expected Nx28x28 and N.`);
  }
  const size = m.imageSize;
  if (h > size || w > size) throw new Error(`Dataset '${m.name}': images are ${h}x${w}, larger than imageSize ${size}.`);
  const top = Math.floor((size - h) / 2);
  const left = Math.floor((size - w) / 2);
  const per = size * size * 3;
  const images = new Float32Array(n * per);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = imgs.data[i * h * w + y * w + x] / 255;
        const o = i * per + ((y + top) * size + (x + left)) * 3;
        images[o] = v;
        images[o + 1] = v;
        images[o + 2] = v;
      }
    }
  }
  const labels = Int32Array.from(labs.data);
  for (const l of labels) if (l >= m.classes.length) throw new Error(`Dataset '${m.name}' ${split}: label ${l} but only ${m.classes.length} classes in the manifest.`);
  return { name: `${m.name}/${split}`, size, images, labels, classNames: m.classes };
}
