import { ATTRIBUTES, attributeStats, describeAttributes, withAttributeCaptions } from '../src/data/attributes';
import { captionFor, fillTemplate, TEMPLATES } from '../src/data/captions';
import { CaptionCorpus } from '../src/data/corpus';
import { ImageDataset, subset } from '../src/data/dataset';
import { makeRng } from '../src/util/rng';

/** Two classes of 9 images of side 8: a w x h rectangle at brightness v on black, one image per (v, size). */
function rects(): ImageDataset {
  const s = 8;
  const cases: [number, number, number][] = [];
  for (const v of [0.3, 0.6, 0.9]) for (const [w, h] of [[2, 6], [4, 4], [6, 3]]) cases.push([v, w, h]);
  const n = cases.length * 2;
  const images = new Float32Array(n * s * s * 3);
  cases.concat(cases).forEach(([v, w, h], i) => {
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) images[((i * s + y) * s + x) * 3 + c] = v;
  });
  return { name: 'rects', size: s, images, labels: Int32Array.from({ length: n }, (_, i) => (i < cases.length ? 0 : 1)), classNames: ['bag', 'coat'] };
}

test('attribute statistics read the object: brightness, area share, texture, width over height', () => {
  const d = rects();
  const [bright, area, texture, aspect] = attributeStats(d);
  expect(bright[0]).toBeCloseTo(0.3, 6);
  expect(area[0]).toBeCloseTo(12 / 64, 9);
  expect(texture[0]).toBeCloseTo(0, 6); // one flat grey
  expect(aspect[0]).toBeCloseTo(2 / 6, 9);
  expect(aspect[2]).toBeCloseTo(2, 9);
  expect(bright[8]).toBeCloseTo(0.9, 6);
});

test("each class's lowest third gets the low word, its highest the high word, the middle none; captions name them before the class", () => {
  const d = rects();
  const words = describeAttributes(d);
  // Image 0: the darkest third (0.3), the tall 2x6 rectangle; area 12 is its class's lowest, with the 6x3 (18) of 16's middle.
  expect(words[0].split(' ')).toEqual(expect.arrayContaining(['dark', 'tall']));
  expect(words[0]).not.toMatch(/bright|wide/);
  expect(words[8].split(' ')).toEqual(expect.arrayContaining(['bright', 'wide']));
  // Per class: the second class, a copy of the first, gets the same words.
  expect(words.slice(9)).toEqual(words.slice(0, 9));
  // Brightness: a third of each class dark, a third bright.
  for (const c of [0, 1]) {
    const w = words.filter((_, i) => d.labels[i] === c);
    expect(w.filter((x) => x.includes('dark')).length).toBe(3);
    expect(w.filter((x) => x.includes('bright')).length).toBe(3);
  }
  const a = withAttributeCaptions(d);
  expect(a.describe).toBe('adjectives');
  expect(subset(a, [0, 8]).describe).toBe('adjectives');
  const rng = makeRng('captions');
  const caps = Array.from({ length: 200 }, () => captionFor(a, 0, rng));
  const named = caps.filter((c) => c.includes(`${words[0]} bag`));
  // About half name the attributes; none has a template's own attribute word elsewhere.
  expect(named.length).toBeGreaterThan(70);
  expect(named.length).toBeLessThan(130);
  const attrWords = ATTRIBUTES.flatMap((x) => [x.low, x.high]);
  for (const c of caps.filter((c) => !named.includes(c))) expect(c.split(/[^a-z]+/).some((w) => attrWords.includes(w))).toBe(false);
  // A dataset without them captions as before: a template filled with the class name.
  const plain = captionFor(d, 0, makeRng('plain'));
  expect(TEMPLATES.map((t) => fillTemplate(t, 'bag'))).toContain(plain);
  // The pre-training corpus captions with them.
  const corpus = new CaptionCorpus([{ data: a, repeat: 1 }]);
  const r1 = makeRng('corpus');
  const r2 = makeRng('corpus');
  expect(corpus.batch([0, 8, 3], r1).captions).toEqual([0, 8, 3].map((i) => captionFor(a, i, r2)));
});
