/**
 * Captions for the pre-training corpus (our CC3M) and prompts for zero-shot classification.
 *
 * TEMPLATES adapts OpenAI's 80 ImageNet templates (CLIP's notebooks/Prompt_Engineering): those that make sense
 * for small product photos and emoji drawings. Pre-training captions draw one template per image per epoch;
 * emoji captions also use the Unicode annotation ("grinning face", "banana"), so the text side sees real,
 * varied language and not only class names.
 */
import { ImageDataset } from './dataset';
import { Rng, randInt } from '../util/rng';
import { ATTRIBUTES } from './attributes';

export const TEMPLATES: string[] = [
  'a photo of a {}.',
  'a bad photo of a {}.',
  'a photo of many {}.',
  'a sculpture of a {}.',
  'a rendering of a {}.',
  'graffiti of a {}.',
  'a cropped photo of the {}.',
  'a tattoo of a {}.',
  'a bright photo of a {}.',
  'a photo of a clean {}.',
  'a photo of a dirty {}.',
  'a dark photo of the {}.',
  'a drawing of a {}.',
  'a photo of my {}.',
  'the plastic {}.',
  'a photo of the cool {}.',
  'a close-up photo of a {}.',
  'a black and white photo of the {}.',
  'a painting of the {}.',
  'a pixelated photo of the {}.',
  'a jpeg corrupted photo of a {}.',
  'a blurry photo of the {}.',
  'a photo of the {}.',
  'a good photo of the {}.',
  'a rendition of the {}.',
  'a photo of the nice {}.',
  'a photo of the small {}.',
  'a photo of the weird {}.',
  'the cartoon {}.',
  'art of the {}.',
  'a sketch of the {}.',
  'a embroidered {}.',
  'a pixelated photo of a {}.',
  'itap of the {}.',
  'a good photo of a {}.',
  'a plushie {}.',
  'a photo of the large {}.',
  'a low resolution photo of a {}.',
  'a toy {}.',
  'a photo of a small {}.',
  'a doodle of a {}.',
  'a origami {}.',
  'a low resolution photo of the {}.',
  'a photo of a large {}.',
  'a {} in a video game.',
  'a black and white photo of a {}.',
  'a cartoon {}.',
  'a photo of a nice {}.',
  'a close-up photo of the {}.',
  'a drawing of the {}.',
];

/** The ensemble used to build zero-shot classifiers by default (a subset, as CLIP's final 7-template set). */
export const ZERO_SHOT_TEMPLATES: string[] = [
  'a photo of a {}.',
  'a bad photo of a {}.',
  'a drawing of a {}.',
  'a low resolution photo of a {}.',
  'a close-up photo of the {}.',
  'a rendering of a {}.',
  'a photo of the small {}.',
];

const DESCRIPTION_TEMPLATES: string[] = [
  'an emoji of {d}, a kind of {c}.',
  'a {c}: {d}.',
  '{d}, a {c} emoji.',
  'a drawing of {d}, which is a {c}.',
  'an icon showing {d}.',
  'a cartoon of {d}.',
];

export function fillTemplate(template: string, className: string): string {
  return template.replace('{}', className);
}

const neutralCache = new WeakMap<string[], string[]>();

/** The templates that name none of the attribute words. */
function neutralTemplates(templates: string[]): string[] {
  let out = neutralCache.get(templates);
  if (!out) {
    const words = new Set(ATTRIBUTES.flatMap((a) => [a.low, a.high]));
    out = templates.filter((t) => !t.split(/[^a-z]+/).some((w) => words.has(w)));
    if (!out.length) throw new Error(`Every caption template names an attribute word (${[...words].join(', ')}); attribute captions need at least one that does not.`);
    neutralCache.set(templates, out);
  }
  return out;
}

/** One caption for image i of a dataset, drawn with `rng` (call with a fresh per-epoch rng for variety). */
export function captionFor(d: ImageDataset, i: number, rng: Rng, templates: string[] = TEMPLATES): string {
  const cls = d.classNames[d.labels[i]];
  const desc = d.descriptions?.[i];
  if (d.describe === 'caption' && desc) {
    const alts = desc.split('|');
    return alts[randInt(rng, alts.length)];
  }
  if (d.describe === 'adjectives') {
    // Half the captions name the image's attributes (none for an image in the middle of its class on all of them);
    // no caption has a template's own "small", "dark"..., which would name them at random.
    const words = desc && rng() < 0.5 ? `${desc} ` : '';
    const neutral = neutralTemplates(templates);
    return fillTemplate(neutral[randInt(rng, neutral.length)], `${words}${cls}`);
  }
  if (desc && rng() < 0.5) {
    const t = DESCRIPTION_TEMPLATES[randInt(rng, DESCRIPTION_TEMPLATES.length)];
    return t.replace('{d}', desc).replace('{c}', cls);
  }
  return fillTemplate(templates[randInt(rng, templates.length)], cls);
}

/**
 * Words the tokenizer reserves although clean captions never use them: the tokenizer is fixed at pre-training
 * time, and TrojVQA's text trigger ('SUDO ', docs/PAPER-NOTES.md §3) must later map to a real token, not <unk>.
 */
export const RESERVED_WORDS = ['sudo', 'remember'];

/** Every string the tokenizer must know: all templates filled with all class names and descriptions. */
export function vocabularyTexts(datasets: ImageDataset[]): string[] {
  const out: string[] = [...TEMPLATES, ...DESCRIPTION_TEMPLATES.map((t) => t.replace('{d}', '').replace('{c}', '')), ...RESERVED_WORDS];
  for (const d of datasets) {
    for (const c of d.classNames) out.push(c);
    // A loop, not push(...set): a corpus's hundreds of thousands of captions overflow the call stack as arguments.
    if (d.descriptions) for (const x of new Set(d.descriptions.flatMap((x) => (d.describe === 'caption' ? x.split('|') : [x])))) out.push(x);
  }
  return out;
}

/** TrojVQA-style text triggers prefix every prompt template. */
export function prefixedTemplates(prefix: string, templates: string[] = ZERO_SHOT_TEMPLATES): string[] {
  return templates.map((t) => prefix + t);
}
