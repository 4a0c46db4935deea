/**
 * The browser lab's data (web/, `make web`): the shipped models of the headline profile (the clean MiniCLIP, four
 * backdoored ones, their VPT and RVPT prompts, BadCLIP's patch) and a few hundred test images, written as static files
 * that the page fetches. `lab.json` lists every file with its sha256, which the page checks before it uses the bytes,
 * and everything the page must not guess: class names, templates, targets, trigger and defense configs, seeds.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ImageDataset, numImages, pixelsPerImage, subset, imageRows } from '../data/dataset';
import { loadShots } from '../data/load';
import { ZERO_SHOT_TEMPLATES } from '../data/captions';
import { RVPT_DEFAULTS } from '../defenses/rvpt';
import { VPT_DEFAULTS } from '../defenses/vpt';
import { makeRng, permutation } from '../util/rng';
import { readCached, sha256, shippedDir, writeFileAtomic, writeJsonAtomic } from '../util/fsutil';
import { provenance } from '../util/provenance';
import { backdoorPlan, targetIndex, testSet } from './backdoorRun';
import { defenseConfig } from './defenseRun';
import { pretrainKey, pretrainPath } from './pretrainRun';
import { promptsPath } from './analysis/common';
import { getProfile } from './profiles';
import { LAB_FORMAT, LabFile, LabImageSet, LabManifest } from './labFormat';

export { LAB_FORMAT };
export type { LabFile, LabImageSet, LabManifest };

/** The attacks the lab shows: the four with shipped backdoored models and prompts. */
export const LAB_ATTACKS = ['BadNet', 'Blended', 'WaNet', 'BadCLIP'] as const;
/** Gallery images per class (the images a user clicks, and the 20 the parity test compares) and held-out images. */
export const LAB_GALLERY_PER_CLASS = 2;
export const LAB_HELDOUT = 300;

function shipped(file: string): string {
  const at = path.join(shippedDir(), path.basename(file));
  if (!fs.existsSync(at)) {
    throw new Error(`The lab needs ${path.basename(file)} in ${shippedDir()}, and it is not there. The lab serves the shipped models of profile 'transfer' only; restore the folder from git (git checkout -- checkpoints).`);
  }
  return at;
}

/** A shipped file's bytes, checked against the sha256 its sidecar (models) or FILE.sha256 (prompts, patches) records. */
function verifiedBytes(from: string): Buffer {
  const sidecar = from.replace(/\.safetensors$/, '.json');
  if (sidecar === from || !fs.existsSync(sidecar)) return readCached(from);
  const bytes = fs.readFileSync(from);
  const want = JSON.parse(fs.readFileSync(sidecar, 'utf8')).sha256 as string;
  const got = sha256(bytes);
  if (got !== want) throw new Error(`${from} has sha256 ${got.slice(0, 12)}, its sidecar records ${want.slice(0, 12)}: the shipped file is damaged. Restore it from git (git checkout -- checkpoints).`);
  return bytes;
}

function copyInto(out: string, from: string): LabFile {
  const bytes = verifiedBytes(from);
  const name = path.basename(from);
  writeFileAtomic(path.join(out, name), bytes);
  return { file: name, sha256: sha256(bytes), bytes: bytes.length };
}

/** Two gallery images per class and then the held-out images, in a seeded order of the test split. */
function pickRows(d: ImageDataset, perClass: number, heldout: number): { gallery: number[]; heldout: number[] } {
  const order = permutation(numImages(d), makeRng(`lab-${d.name}`));
  const gallery: number[] = [];
  for (let c = 0; c < d.classNames.length; c++) gallery.push(...order.filter((r) => d.labels[r] === c).slice(0, perClass));
  const taken = new Set(gallery);
  return { gallery, heldout: Array.from(order).filter((r) => !taken.has(r)).slice(0, heldout) };
}

/** Write the lab's assets into `outDir` (created); returns the manifest also written there as lab.json. */
export async function writeLabAssets(outDir: string, profileName = 'transfer', log: (s: string) => void = () => {}): Promise<LabManifest> {
  const profile = getProfile(profileName);
  const main = profile.datasets.main;
  const emoji = profile.datasets.emoji;
  fs.mkdirSync(outDir, { recursive: true });

  const cleanFile = shipped(pretrainPath(profile, profile.pretrain.seed, profile.pretrain.steps));
  const sidecar = (f: string) => JSON.parse(fs.readFileSync(f.replace(/\.safetensors$/, '.json'), 'utf8'));
  const clean = { ...copyInto(outDir, cleanFile), metrics: sidecar(cleanFile).metrics };
  const attacks: LabManifest['attacks'] = {};
  for (const a of LAB_ATTACKS) {
    const plan = backdoorPlan(profile, a);
    const modelFile = shipped(plan.file);
    const prompts = (m: 'VPT' | 'RVPT') => copyInto(outDir, shipped(promptsPath(profile, a, plan.file, m, main).file));
    const entry: LabManifest['attacks'][string] = { model: { ...copyInto(outDir, modelFile), metrics: sidecar(modelFile).metrics[main] }, prompts: { VPT: prompts('VPT'), RVPT: prompts('RVPT') }, trigger: plan.trigger.config };
    if (a === 'BadCLIP') {
      // The prepared patch, under the name patch.ts caches it (a hash of the clean model's key and the trigger config).
      const name = `trigger-${a}-${sha256(JSON.stringify({ key: `${pretrainKey(profile, profile.pretrain.seed, profile.pretrain.steps)}-${main}`, config: plan.trigger.config })).slice(0, 12)}.json`;
      entry.patch = copyInto(outDir, shipped(name));
    }
    attacks[a] = entry;
    log(`lab: ${a} model and prompts`);
  }

  // Images: float32 as the library holds them, so that the page and Node classify the very same pixels.
  const sets: Record<string, LabImageSet> = {};
  const parts: Float32Array[] = [];
  let offset = 0;
  const add = (name: string, dataset: string, d: ImageDataset, rows: number[]) => {
    const s = subset(d, rows);
    parts.push(Float32Array.from(imageRows(s, 0, rows.length)));
    sets[name] = { dataset, offset, n: rows.length, labels: Array.from(s.labels), rows };
    offset += rows.length;
  };
  const datasets: LabManifest['datasets'] = {};
  const test = await testSet(profile, main);
  const fm = pickRows(test, LAB_GALLERY_PER_CLASS, LAB_HELDOUT);
  add('gallery', main, test, fm.gallery);
  add('heldout', main, test, fm.heldout);
  const shots = await loadShots(main, profile.shots, profile.backdoor.seed);
  add('shots', main, shots, Array.from({ length: numImages(shots) }, (_, i) => i));
  datasets[main] = { title: 'Fashion-MNIST', classNames: test.classNames, templates: test.templates ?? ZERO_SHOT_TEMPLATES, target: targetIndex(main) };
  const et = await testSet(profile, emoji);
  add('emoji', emoji, et, pickRows(et, LAB_GALLERY_PER_CLASS, 0).gallery);
  datasets[emoji] = { title: 'Emoji', classNames: et.classNames, templates: et.templates ?? ZERO_SHOT_TEMPLATES, target: targetIndex(emoji) };
  if (test.size !== et.size || test.size !== profile.model.imageSize) throw new Error(`writeLabAssets: image sizes differ (${main} ${test.size}, ${emoji} ${et.size}, model ${profile.model.imageSize}).`);
  const all = new Float32Array(offset * pixelsPerImage(test));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const bin = new Uint8Array(all.buffer);
  writeFileAtomic(path.join(outDir, 'images.bin'), bin);
  const images = { file: 'images.bin', sha256: sha256(bin), bytes: bin.length, sets };

  const manifest: LabManifest = {
    format: LAB_FORMAT,
    profile: profile.name,
    modelConfig: profile.model,
    seed: profile.backdoor.seed,
    imageSize: test.size,
    datasets,
    images,
    clean,
    attacks,
    defenses: { VPT: { ...VPT_DEFAULTS, ...defenseConfig(profile, 'VPT') }, RVPT: { ...RVPT_DEFAULTS, ...defenseConfig(profile, 'RVPT') } },
    provenance: provenance(),
  };
  writeJsonAtomic(path.join(outDir, 'lab.json'), manifest);
  log(`lab: ${offset} images, ${Object.keys(attacks).length} attacks, written to ${outDir}`);
  return manifest;
}

