/**
 * The fair setting's data: pre-training never names a downstream class, the held-out emojis stay out of it, and the
 * broad corpus is as large and as varied as its manifest says. Nothing here renders the corpus (minutes); the checks
 * read the item lists and captions, which are what decide what pre-training can learn.
 */
import { loadSplit } from '../src/data/load';
import { CLASS_WORDS, namedRows, withCoarseCaptions } from '../src/data/coarse';
import { captionFor } from '../src/data/captions';
import { emojiEntries } from '../src/data/emoji';
import { EmojiManifest, loadManifest } from '../src/data/manifest';
import { compose, drawRenditions, loadWebManifest, taskWords, webCaptions, webItems, withNameCaptions, words } from '../src/data/web';
import { makeRng } from '../src/util/rng';
import { PROFILES } from '../src/experiments/profiles';
import { testSetNames } from '../src/data/load';

const web = loadWebManifest('web');
const em = loadManifest('emoji-transfer') as EmojiManifest;
const items = webItems(web);

test("no Fashion-MNIST pre-training caption names a class or a synonym (every caption of all 55,000 images), but the profile's recorded named share", async () => {
  const share = PROFILES.transfer.pretrain.namedShare ?? 0;
  expect(share).toBeLessThanOrEqual(0.1);
  const main = withCoarseCaptions(await loadSplit('fashion-mnist', 'pretrain'), share);
  expect(main.labels.length).toBe(55000);
  const banned = new Set(CLASS_WORDS);
  for (const c of main.classNames) for (const w of words(c)) expect(banned.has(w)).toBe(true);
  const named = new Set(namedRows(55000, share));
  expect(named.size).toBe(Math.round(share * 55000));
  const offending: string[] = [];
  main.descriptions!.forEach((d, i) => {
    for (const alt of d.split('|')) if (words(alt).some((w) => banned.has(w)) !== named.has(i)) offending.push(`${i}: ${alt}`);
  });
  expect(offending.slice(0, 5)).toEqual([]);
  // What the corpus draws is one of these alternatives.
  const rng = makeRng(0);
  for (let i = 0; i < 200; i++) expect(main.descriptions![i].split('|')).toContain(captionFor(main, i, rng));
  expect(new Set(main.descriptions!.map((d) => d.split('|')[0])).size).toBeGreaterThan(5);
});

test('no web-corpus caption uses an emoji class name unless it is the drawn thing\'s own name', () => {
  const banned = taskWords(em);
  const rng = makeRng(1);
  const offending: string[] = [];
  for (const it of items) {
    const own = new Set(words(it.name));
    for (const r of drawRenditions(web, it, rng)) {
      for (const c of webCaptions(web, it, r).split('|')) if (words(c).some((w) => banned.has(w) && !own.has(w))) offending.push(`${it.source}/${it.id}: ${c}`);
    }
  }
  expect(offending.slice(0, 5)).toEqual([]);
});

test("the emoji task's pre-training images are captioned by their names, never their class", async () => {
  const d = withNameCaptions(await loadSplit('emoji-transfer', 'pretrain'), em);
  const banned = taskWords(em);
  const labels = new Map([...emojiEntries(em).train].map((e) => [e.hexcode, e.label]));
  for (let i = 0; i < d.labels.length; i++) {
    const own = new Set(words(labels.get(d.ids![i])!));
    for (const c of d.descriptions![i].split('|')) expect(words(c).filter((w) => banned.has(w) && !own.has(w))).toEqual([]);
  }
});

test('tune and test emojis are held out of pre-training in every rendition; Table 2 has at least 500 test images', async () => {
  const split = emojiEntries(em);
  const held = new Set([...split.tune, ...split.test].map((e) => e.hexcode));
  expect(items.filter((i) => i.kind === 'emoji' && held.has(i.id))).toEqual([]);
  expect(split.train.filter((e) => held.has(e.hexcode))).toEqual([]);
  const pre = await loadSplit('emoji-transfer', 'pretrain');
  expect(pre.ids!.filter((h) => held.has(h))).toEqual([]);
  const test = await loadSplit('emoji-transfer', 'test');
  expect(test.labels.length).toBeGreaterThanOrEqual(500);
  const tune = await loadSplit('emoji-transfer', 'tune');
  for (let c = 0; c < em.classes.length; c++) expect(Array.from(tune.labels).filter((l) => l === c).length).toBeGreaterThanOrEqual(16);
  // The shift artists never enter pre-training.
  expect(testSetNames('emoji-transfer').slice(1)).toEqual(['emoji-transfer/emojione', 'emoji-transfer/openmoji-black']);
  for (const s of em.shiftRenditions!) {
    expect(em.pretrainRenditions).not.toContain(s);
    expect(web.emojiRenditions).not.toContain(s);
  }
});

test('the broad corpus: at least 100,000 pairs from five emoji artists and two icon sets, each licensed', () => {
  const bySource = new Map<string, number>();
  for (const it of items) bySource.set(it.source, (bySource.get(it.source) ?? 0) + 1);
  expect(web.emojiRenditions.length).toBeGreaterThanOrEqual(5);
  for (const a of web.emojiRenditions) expect(bySource.get(a)).toBeGreaterThan(1000);
  expect(new Set(web.iconSets.map((s) => s.package)).size).toBeGreaterThanOrEqual(2);
  for (const s of web.iconSets) expect(s.license).toMatch(/\w/);
  for (const a of web.emojiRenditions) expect(em.renditions[a].license).toMatch(/\w/);
  const p = PROFILES.transfer;
  expect(p.datasets.web).toBe('web');
  expect(items.length * web.variants).toBeGreaterThanOrEqual(100000);
});

test('a rendition: ink and background as drawn, the art scaled and placed inside the image', () => {
  const size = 8;
  const rgba = new Uint8Array(size * size * 4);
  for (let i = 0; i < size * size; i++) rgba[i * 4 + 3] = 255; // an opaque square filling the frame
  const out = new Uint8Array(size * size * 3);
  compose(rgba, size, { background: 'white', ink: 'red', scale: 0.5, dx: 4, dy: 0 }, web.palette, out, 0);
  const px = (x: number, y: number) => Array.from(out.subarray((y * size + x) * 3, (y * size + x) * 3 + 3));
  expect(px(0, 0)).toEqual(web.palette.white);
  expect(px(5, 1)).toEqual(web.palette.red);
  expect(px(5, 5)).toEqual(web.palette.white);
});
