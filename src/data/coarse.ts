/**
 * Coarse captions for Fashion-MNIST's pre-training images: words a product listing carries without the class
 * ("a dark piece of clothing", "light footwear"). The fair setting's pre-training may show the model these images,
 * as web data shows CLIP many photos of clothes, but never with their downstream class names: the class names reach
 * the text tower only through the emoji and icons that depict them, and zero-shot transfer has to bridge the gap.
 *
 * Written by hand: a mapping of ten classes to three groups and two words of brightness and size.
 */
import { ImageDataset, numImages } from './dataset';
import { attributeStats } from './attributes';
import { makeRng, permutation } from '../util/rng';

/** The coarse group of each Fashion-MNIST class name. */
export const COARSE_GROUP: Record<string, 'clothing' | 'footwear' | 'accessory'> = {
  't-shirt': 'clothing',
  trousers: 'clothing',
  pullover: 'clothing',
  dress: 'clothing',
  coat: 'clothing',
  sandal: 'footwear',
  shirt: 'clothing',
  sneaker: 'footwear',
  bag: 'accessory',
  'ankle boot': 'footwear',
};

/**
 * Words no coarse caption may contain: the ten class names, their parts and their common synonyms. A test checks
 * every pre-training caption of Fashion-MNIST against this list.
 */
export const CLASS_WORDS = [
  't', 'shirt', 'tshirt', 'tee', 'top', 'trouser', 'trousers', 'pants', 'jeans', 'pullover', 'sweater', 'jumper', 'hoodie',
  'dress', 'gown', 'skirt', 'coat', 'jacket', 'sandal', 'sandals', 'blouse', 'sneaker', 'sneakers', 'trainer', 'trainers',
  'shoe', 'shoes', 'bag', 'bags', 'handbag', 'purse', 'ankle', 'boot', 'boots',
];

const TEMPLATES = [
  'a photo of {a} {adj}{group}.',
  '{adj}{group} product photo.',
  'a grey-scale picture of {a} {adj}{group}.',
  '{adj}{group}, catalogue image.',
  'a catalogue picture of {a} {adj}{group}.',
];

/** Captions of the rows that name their class (namedShare). */
const NAMED_TEMPLATES = ['a photo of a {}.', 'a grey-scale photo of a {}.', '{}, product photo.'];

/** The rows whose captions name their class, for a dataset of n images and a share (the same draw as withCoarseCaptions). */
export function namedRows(n: number, namedShare: number): number[] {
  return Array.from(permutation(n, makeRng('coarse-named')).subarray(0, Math.round(namedShare * n))).sort((a, b) => a - b);
}

function noun(group: string): { a: string; word: string } {
  if (group === 'clothing') return { a: 'a', word: 'piece of clothing' };
  if (group === 'footwear') return { a: 'a', word: 'pair of footwear' };
  return { a: 'an', word: 'accessory' };
}

/**
 * The dataset with whole captions in place of class captions (describe: 'caption'): each image's coarse group and, for
 * the darkest and brightest third of its group, 'dark' or 'light', for the smallest third 'small'.
 */
export function withCoarseCaptions(d: ImageDataset, namedShare = 0): ImageDataset {
  const n = numImages(d);
  if (!(namedShare >= 0 && namedShare <= 0.1)) throw new Error(`Coarse captions: namedShare is ${namedShare}; it must be between 0 and 0.1 (at most a tenth of the captions may name their class).`);
  // The rows whose captions name their class, as some web captions do: a seeded random draw, the same every run.
  const named = new Set(namedRows(n, namedShare));
  const groups = d.classNames.map((c) => {
    const g = COARSE_GROUP[c];
    if (!g) throw new Error(`Coarse captions: class '${c}' of '${d.name}' has no coarse group (known: ${Object.keys(COARSE_GROUP).join(', ')}).`);
    return g;
  });
  const [brightness, area] = attributeStats(d);
  const terciles = (v: Float64Array, g: string) => {
    const xs: number[] = [];
    for (let i = 0; i < n; i++) if (groups[d.labels[i]] === g) xs.push(v[i]);
    xs.sort((a, b) => a - b);
    return [xs[Math.floor(xs.length / 3)], xs[Math.ceil((2 * xs.length) / 3) - 1]];
  };
  const cut = Object.fromEntries(['clothing', 'footwear', 'accessory'].map((g) => [g, { b: terciles(brightness, g), a: terciles(area, g) }]));
  const descriptions: string[] = [];
  for (let i = 0; i < n; i++) {
    const g = groups[d.labels[i]];
    const adj: string[] = [];
    if (brightness[i] < cut[g].b[0]) adj.push('dark');
    else if (brightness[i] > cut[g].b[1]) adj.push('light');
    if (area[i] < cut[g].a[0]) adj.push('small');
    const { a, word } = noun(g);
    const adjText = adj.length ? `${adj.join(' ')} ` : '';
    const art = adj.length ? 'a' : a;
    if (named.has(i)) {
      const c = d.classNames[d.labels[i]];
      descriptions.push(NAMED_TEMPLATES.map((t) => t.replace('{}', c)).join('|'));
      continue;
    }
    descriptions.push(TEMPLATES.map((t) => t.replace('{a}', art).replace('{adj}', adjText).replace('{group}', word).replace(/^./, (c) => c.toLowerCase())).join('|'));
  }
  return { ...d, descriptions, describe: 'caption' };
}
