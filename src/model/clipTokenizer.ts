/**
 * CLIP's byte-level BPE tokenizer, for real CLIP checkpoints. The BPE itself is @huggingface/tokenizers (a
 * maintained pure-JS port of the Rust `tokenizers`); this file only turns the three file layouts users have into
 * the `tokenizer.json` that library reads:
 *   - `tokenizer.json` (Hugging Face's CLIP repositories), used as it is;
 *   - `vocab.json` + `merges.txt` (the same repositories' slow-tokenizer files);
 *   - OpenAI's `bpe_simple_vocab_16e6.txt.gz` (the merges list that clip/simple_tokenizer.py builds its vocabulary from).
 * For the last two the pipeline is what transformers' CLIPConverter writes: NFC, whitespace runs to one space,
 * lower case; CLIP's word regex; byte-level symbols; BPE with '</w>' on each word's last symbol. Before it, HTML
 * entities are decoded twice, as OpenAI's basic_clean does (ftfy's mojibake repair is not reproduced).
 * Sequences are OpenAI's `clip.tokenize(..., truncate=True)`: <|startoftext|>, tokens, <|endoftext|>, zero padding.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { Tokenizer } from '@huggingface/tokenizers';
import { decodeHTML } from 'entities';
import { readJsonFile } from '../util/fsutil';
import { TextTokenizer } from './tokenizer';
import { TokenBatch } from './text';

export const CLIP_SOT = '<|startoftext|>';
export const CLIP_EOT = '<|endoftext|>';
/** OpenAI's simple_tokenizer keeps the first 49152 - 256 - 2 merges of its file. */
const OPENAI_MERGES = 49152 - 256 - 2;
const WORD_REGEX = "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

/**
 * GPT-2/CLIP's reversible byte -> printable character table, in bytes_to_unicode()'s own order (printable bytes
 * first, then the rest): OpenAI's vocabulary lists the byte symbols in this order.
 */
export function bytesToUnicode(): [number, string][] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return bs.map((b, i) => [b, String.fromCharCode(cs[i])]);
}

/** OpenAI's vocabulary from its merges list: 256 byte symbols, the same with '</w>', each merge, SOT, EOT. */
export function openaiVocab(merges: string[][]): Record<string, number> {
  const bytes = bytesToUnicode().map(([, c]) => c);
  const list = [...bytes, ...bytes.map((b) => `${b}</w>`), ...merges.map((m) => m.join('')), CLIP_SOT, CLIP_EOT];
  return Object.fromEntries(list.map((t, i) => [t, i]));
}

/** The tokenizer.json that transformers' CLIPConverter writes, for a vocabulary and merges list. */
export function clipTokenizerJson(vocab: Record<string, number>, merges: string[][]): Record<string, unknown> {
  for (const s of [CLIP_SOT, CLIP_EOT]) if (vocab[s] === undefined) throw new Error(`CLIP vocabulary has no '${s}' token: is this a CLIP tokenizer?`);
  const special = (content: string) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    added_tokens: [special(CLIP_SOT), special(CLIP_EOT)],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: WORD_REGEX }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: CLIP_EOT, continuing_subword_prefix: '', end_of_word_suffix: '</w>', fuse_unk: false, byte_fallback: false, vocab, merges: merges.map((m) => m.join(' ')) },
  };
}

function readText(file: string): string {
  if (!fs.existsSync(file)) throw new Error(`Tokenizer file ${file} does not exist.`);
  const buf = fs.readFileSync(file);
  return (file.endsWith('.gz') ? zlib.gunzipSync(buf) : buf).toString('utf8');
}

/** A JSON file; a missing file and invalid JSON are different errors. */
function readJson<T>(file: string): T {
  if (!fs.existsSync(file)) throw new Error(`Tokenizer file ${file} does not exist.`);
  return readJsonFile<T>(file, 'Tokenizer file');
}

function parseMerges(text: string, file: string, skipHeader: boolean, limit = Infinity): string[][] {
  const lines = text.split('\n');
  const body = (skipHeader || lines[0].startsWith('#version') ? lines.slice(1) : lines).filter((l) => l.trim().length);
  return body.slice(0, limit).map((l, i) => {
    const pair = l.split(' ');
    if (pair.length !== 2) throw new Error(`Merges file ${file}, line ${i + 2}: expected two symbols separated by one space, got '${l}'.`);
    return pair;
  });
}

export class ClipTokenizer implements TextTokenizer {
  readonly sot: number;
  readonly eot: number;
  readonly size: number;

  constructor(
    private readonly bpe: Tokenizer,
    readonly source: string,
  ) {
    const sot = bpe.token_to_id(CLIP_SOT);
    const eot = bpe.token_to_id(CLIP_EOT);
    if (sot === undefined || eot === undefined) throw new Error(`Tokenizer ${source} has no ${CLIP_SOT} / ${CLIP_EOT} tokens: is it a CLIP tokenizer?`);
    this.sot = sot;
    this.eot = eot;
    this.size = Math.max(...bpe.get_vocab(true).values()) + 1;
  }

  /**
   * From a file or a folder: tokenizer.json; vocab.json + merges.txt; or OpenAI's bpe_simple_vocab_16e6.txt(.gz).
   * A folder is searched for those names in that order.
   */
  static load(fileOrDir: string): ClipTokenizer {
    let file = fileOrDir;
    if (fs.existsSync(fileOrDir) && fs.statSync(fileOrDir).isDirectory()) {
      const names = ['tokenizer.json', 'vocab.json', 'bpe_simple_vocab_16e6.txt.gz', 'bpe_simple_vocab_16e6.txt'];
      const found = names.find((n) => fs.existsSync(path.join(fileOrDir, n)));
      if (!found) throw new Error(`No CLIP tokenizer in ${fileOrDir}: expected one of ${names.join(', ')} (vocab.json with merges.txt).`);
      file = path.join(fileOrDir, found);
    }
    const base = path.basename(file);
    if (base.endsWith('.json') && base !== 'vocab.json') {
      const json = readJson<Record<string, unknown>>(file);
      const model = json.model as { type?: string } | undefined;
      if (model?.type !== 'BPE') throw new Error(`Tokenizer file ${file}: field 'model.type' is ${JSON.stringify(model?.type)}; a CLIP tokenizer.json has a 'BPE' model.`);
      return new ClipTokenizer(new Tokenizer(json, {}), file);
    }
    if (base === 'vocab.json') {
      const mergesFile = path.join(path.dirname(file), 'merges.txt');
      if (!fs.existsSync(mergesFile)) throw new Error(`Tokenizer ${file} needs merges.txt beside it (${mergesFile} is missing).`);
      const vocab = readJson<Record<string, number>>(file);
      const merges = parseMerges(readText(mergesFile), mergesFile, false);
      return new ClipTokenizer(new Tokenizer(clipTokenizerJson(vocab, merges), {}), file);
    }
    if (/\.txt(\.gz)?$/.test(base)) {
      // OpenAI's file: a header line, then merges; simple_tokenizer keeps the first 48,894.
      const merges = parseMerges(readText(file), file, true, OPENAI_MERGES);
      return new ClipTokenizer(new Tokenizer(clipTokenizerJson(openaiVocab(merges), merges), {}), file);
    }
    throw new Error(`Unknown tokenizer file ${file}: use tokenizer.json, vocab.json (with merges.txt) or bpe_simple_vocab_16e6.txt.gz.`);
  }

  /** BPE ids of a text, without start/end tokens. */
  encodeText(text: string): number[] {
    return this.bpe.encode(decodeHTML(decodeHTML(text)).trim(), { add_special_tokens: false }).ids;
  }

  /** `clip.tokenize(texts, context_length, truncate=True)`: SOT, ids, EOT (kept last when truncating), zeros. */
  encodeBatch(texts: string[], contextLength: number): TokenBatch {
    const ids = new Int32Array(texts.length * contextLength);
    const eot = new Int32Array(texts.length);
    texts.forEach((t, i) => {
      const row = [this.sot, ...this.encodeText(t)].slice(0, contextLength - 1);
      row.push(this.eot);
      ids.set(row, i * contextLength);
      eot[i] = row.length - 1;
    });
    return { ids, eot, batch: texts.length, contextLength };
  }

  decode(ids: ArrayLike<number>): string {
    const body = Array.from(ids).filter((id) => id !== this.sot);
    const end = body.indexOf(this.eot);
    return this.bpe.decode(end >= 0 ? body.slice(0, end) : body, { skip_special_tokens: true }).replace(/<\/w>/g, ' ').trim();
  }
}
