#!/usr/bin/env node
/*
 * Writes test/fixtures/paper-toy/: the `paper` profile's whole path in miniature, so that tests and CI run the
 * notebooks at paper settings without ImageNet or ViT-B/32. Image folders in ImageNet's layout (one sub-folder per
 * class, a synset-style names file, an excluded background folder, a distribution shift as its own manifest), a
 * weights file pointing at the parity fixture's small random CLIP (test/fixtures/clip-parity) as clean and
 * backdoored checkpoints, and a profile file extending `paper` with that model's sizes.
 * Usage: node scripts/paper-toy-fixture.js   (deterministic: the same files every time)
 */
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');

const root = path.join(__dirname, '..', 'test', 'fixtures', 'paper-toy');

// Plain colours with a per-image texture: enough for a random CLIP to give varied, finite outputs.
async function png(file, rgb, seed, grey = false) {
  const w = 40 + (seed % 3) * 7;
  const h = 30 + (seed % 2) * 11;
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const px = rgb.map((c) => Math.max(0, Math.min(255, c + ((i * (seed + 3)) % 40) - 20)));
    const g = Math.round((px[0] + px[1] + px[2]) / 3);
    for (let c = 0; c < 3; c++) raw[i * 3 + c] = grey ? 255 - g : px[c];
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png({ compressionLevel: 9 }).toFile(file);
}

async function folders(dir, classes, splits, perClass, grey = false) {
  for (const split of splits) {
    for (const [k, c] of classes.entries()) {
      for (let i = 0; i < perClass; i++) await png(path.join(root, dir, split, c, `${c}_${i}.png`), [60 * k, 200 - 50 * k, 40 + 60 * (k % 2)], i + perClass * k, grey);
    }
  }
}

const json = (name, v) => fs.writeFileSync(path.join(root, name), JSON.stringify(v, null, 2) + '\n');

(async () => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  const pets = ['american_pit_bull_terrier', 'beagle', 'samoyed'];
  await folders('pets', [...pets, 'BACKGROUND'], ['train', 'test'], 4);
  await folders('pets-sketch', pets, ['test'], 4, true);
  await folders('objects', ['accordion', 'banjo', 'cello'], ['train', 'test'], 4);
  fs.writeFileSync(path.join(root, 'names.txt'), 'beagle beagle, Canis familiaris\nsamoyed samoyed, Samoyede\n');
  const folder = { kind: 'image-folder', classesFrom: 'test', classes: [], imageSize: 64 };
  json('toy-pets.json', { name: 'toy-pets', ...folder, splits: { train: 'pets/train', test: 'pets/test' }, exclude: ['BACKGROUND'], classNames: 'names.txt', target: 'samoyed', templates: ['a photo of a {}, a type of pet.'], shifts: ['toy-pets-sketch', 'toy-pets-missing'] });
  json('toy-pets-sketch.json', { name: 'toy-pets-sketch', ...folder, splits: { test: 'pets-sketch/test' }, classNames: 'names.txt', target: 'samoyed', templates: ['a sketch of a {}.'] });
  json('toy-pets-missing.json', { name: 'toy-pets-missing', ...folder, description: 'A shift the user does not have: left out with a message.', splits: { test: 'nowhere/test' }, target: 'samoyed' });
  json('toy-objects.json', { name: 'toy-objects', ...folder, splits: { train: 'objects/train', test: 'objects/test' }, target: 'accordion', templates: ['a photo of a {}.'] });
  const clip = '../clip-parity';
  json('weights.json', {
    _comment: 'The parity fixture CLIP stands for every checkpoint: clean and backdoored are the same random model (OpenAI and Hugging Face namings).',
    clean: `${clip}/hf.safetensors`,
    tokenizer: clip,
    backdoored: { BadNet: `${clip}/openai.safetensors`, Blended: { 'toy-pets': `${clip}/openai.safetensors` }, WaNet: `${clip}/openai.safetensors`, BadCLIP: `${clip}/openai.safetensors` },
    heads: 2,
    textHeads: 2,
  });
  json('profile.json', {
    _comment: 'The paper profile at the parity fixture CLIP size, on toy image folders (scripts/paper-toy-fixture.js). RVPT_PROFILE=test/fixtures/paper-toy/profile.json runs any notebook on it.',
    name: 'paper-toy',
    extends: 'paper',
    model: { imageSize: 64, patch: 16, width: 64, layers: 2, heads: 2, embedDim: 24, textWidth: 64, textLayers: 2, textHeads: 2, vocabSize: 569 },
    datasets: { main: 'toy-pets', emoji: 'toy-objects', more: [] },
    weightsFile: 'weights.json',
    manifests: ['.'],
    shots: 2,
    evalLimit: 12,
    defenses: {
      RVPT: { epochs: 2, batch: 3, promptLength: 4, depth: 1, augment: null },
      VPT: { epochs: 2, batch: 3, promptLength: 4, depth: 1, augment: null },
      'Linear Probe': { epochs: 2 },
    },
    triggers: { BadNet: { patch: 8 } },
    supervised: { steps: 10, batch: 12 },
    analysis: { sample: 12, ablationEpochs: 1, ablationEvalLimit: 12, ablationAttacks: ['BadNet'], ablationGrid: { shots: [1, 2], alpha: [0, 2], promptLength: [2, 4], 'depth from output': [1], 'depth from input': [1], margin: [-1, 0] } },
  });
})();
