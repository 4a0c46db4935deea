/**
 * A word-level tokenizer built from the caption corpus. CLIP uses byte-level BPE over 49,408 tokens; our corpus
 * is a few hundred distinct words, so whole words are the right unit (and exact: no word is split or merged).
 * Ids: 0 = padding, 1 = start of text, 2 = end of text, 3 = unknown, then words by decreasing frequency.
 */
import { TokenBatch } from './text';

export const PAD = 0;
export const SOT = 1;
export const EOT = 2;
export const UNK = 3;
const SPECIAL = ['<pad>', '<start_of_text>', '<end_of_text>', '<unk>'];

export function splitWords(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? [];
}

/** What the model code needs from a tokenizer: ours (word-level) and CLIP's byte-level BPE both provide it. */
export interface TextTokenizer {
  /** Number of ids (the text tower's token-embedding rows must be at least this many). */
  readonly size: number;
  encodeBatch(texts: string[], contextLength: number): TokenBatch;
}

export class WordTokenizer implements TextTokenizer {
  private readonly index: Map<string, number>;

  constructor(readonly vocab: string[]) {
    for (let i = 0; i < SPECIAL.length; i++) {
      if (vocab[i] !== SPECIAL[i]) throw new Error(`Tokenizer vocabulary must start with ${SPECIAL.join(', ')}; entry ${i} is '${vocab[i]}'.`);
    }
    this.index = new Map(vocab.map((w, i) => [w, i]));
  }

  /** Vocabulary: every word seen at least `minCount` times, most frequent first (ties alphabetical). */
  static fromCorpus(texts: Iterable<string>, minCount = 1): WordTokenizer {
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of splitWords(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const words = [...counts.entries()]
      .filter(([, n]) => n >= minCount)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([w]) => w);
    return new WordTokenizer([...SPECIAL, ...words]);
  }

  get size(): number {
    return this.vocab.length;
  }

  /** SOT, words (truncated to fit), EOT, padding; like `clip.tokenize(..., truncate=True)`. */
  encode(text: string, contextLength: number): { ids: number[]; eot: number } {
    const words = splitWords(text).map((w) => this.index.get(w) ?? UNK);
    const body = words.slice(0, contextLength - 2);
    const ids = [SOT, ...body, EOT];
    const eot = ids.length - 1;
    while (ids.length < contextLength) ids.push(PAD);
    return { ids, eot };
  }

  encodeBatch(texts: string[], contextLength: number): TokenBatch {
    const ids = new Int32Array(texts.length * contextLength);
    const eot = new Int32Array(texts.length);
    texts.forEach((t, i) => {
      const e = this.encode(t, contextLength);
      ids.set(e.ids, i * contextLength);
      eot[i] = e.eot;
    });
    return { ids, eot, batch: texts.length, contextLength };
  }

  decode(ids: ArrayLike<number>): string {
    const out: string[] = [];
    for (const id of Array.from(ids)) {
      if (id === EOT) break;
      if (id === SOT || id === PAD) continue;
      out.push(this.vocab[id] ?? '<unk>');
    }
    return out.join(' ');
  }
}
