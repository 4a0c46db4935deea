/**
 * A generic reader for a user's own images: one sub-folder per class (ImageNet, Caltech101, OxfordPets laid
 * out as folders), any format sharp decodes. Images get CLIP's preprocessing shape: resize the short side,
 * centre-crop to a square.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { ImageDataset } from './dataset';
import { FolderManifest } from './manifest';

const EXT = /\.(jpe?g|png|webp|gif|tiff?|avif|svg)$/i;

export async function decodeImage(file: string, size: number): Promise<Float32Array> {
  let buf: Buffer;
  try {
    buf = await sharp(file).flatten({ background: '#ffffff' }).resize(size, size, { fit: 'cover', position: 'centre', kernel: 'cubic' }).removeAlpha().raw().toBuffer();
  } catch (e) {
    throw new Error(`Cannot decode image ${file}: ${(e as Error).message}. Remove the file or replace it with a valid JPEG/PNG.`);
  }
  return Float32Array.from(buf, (v) => v / 255);
}

export async function loadImageFolder(m: FolderManifest, split: string, opts: { limitPerClass?: number } = {}): Promise<ImageDataset> {
  const dir = m.splits[split];
  if (!dir) throw new Error(`Manifest ${m.file}: no split '${split}' (splits: ${Object.keys(m.splits).join(', ')}).`);
  const root = path.resolve(m.file ? path.dirname(m.file) : '.', dir);
  if (!fs.existsSync(root)) throw new Error(`Manifest ${m.file}: split '${split}' folder ${root} does not exist. Point splits.${split} at a folder with one sub-folder per class.`);
  const files: { file: string; label: number }[] = [];
  m.classes.forEach((cls, i) => {
    const sub = path.join(root, m.folders?.[cls] ?? cls);
    if (!fs.existsSync(sub)) throw new Error(`Manifest ${m.file}: class '${cls}' has no folder ${sub}. Create it or map the class with 'folders'.`);
    const list = fs.readdirSync(sub).filter((f) => EXT.test(f)).sort();
    for (const f of list.slice(0, opts.limitPerClass ?? list.length)) files.push({ file: path.join(sub, f), label: i });
  });
  const size = m.imageSize;
  const per = size * size * 3;
  const images = new Float32Array(files.length * per);
  for (let i = 0; i < files.length; i++) images.set(await decodeImage(files[i].file, size), i * per);
  return { name: `${m.name}/${split}`, size, images, labels: Int32Array.from(files.map((f) => f.label)), classNames: m.classes, ids: files.map((f) => f.file) };
}
