import { EOT, PAD, SOT, UNK, WordTokenizer } from '../src/model/tokenizer';

test('word tokenizer: frequency-ordered vocabulary, SOT/EOT framing, padding, truncation, unknown words', () => {
  const tok = WordTokenizer.fromCorpus(['a photo of a bag.', 'a drawing of a coat.']);
  expect(tok.vocab.slice(0, 5)).toEqual(['<pad>', '<start_of_text>', '<end_of_text>', '<unk>', 'a']);
  const e = tok.encode('A photo of a zebra.', 10);
  expect(e.ids[0]).toBe(SOT);
  expect(e.ids[e.eot]).toBe(EOT);
  expect(e.ids).toHaveLength(10);
  expect(e.ids.slice(e.eot + 1).every((i) => i === PAD)).toBe(true);
  expect(e.ids).toContain(UNK);
  expect(tok.decode(tok.encode('a photo of a bag.', 10).ids)).toBe('a photo of a bag .');
  const long = tok.encode('a a a a a a a a a a a a', 6);
  expect(long.ids).toHaveLength(6);
  expect(long.ids[5]).toBe(EOT);
  const b = tok.encodeBatch(['a bag', 'a coat'], 6);
  expect(Array.from(b.eot)).toEqual([3, 3]);
  expect(() => new WordTokenizer(['x'])).toThrow(/must start with/);
});
