import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { MiniCLIP } from '../src/model/clip';
import { WordTokenizer } from '../src/model/tokenizer';
import { loadCached, loadCheckpoint, modelFromSafetensors, promptsFromSafetensors, saveCheckpoint, sidecarPath } from '../src/checkpoint/checkpoint';
import { decodeSafetensors, encodeSafetensors, readSafetensors } from '../src/checkpoint/safetensors';
import { maxAbsDiff, setup, TEST_CONFIG as C } from './helpers';
import { readCachedJson, writeCachedJson, writeFileAtomic } from '../src/util/fsutil';

beforeAll(setup);
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-ck-'));

test('safetensors: byte layout (8-byte LE header length, aligned JSON header) and round trip', () => {
  const bytes = encodeSafetensors({ b: { dtype: 'F32', shape: [2], data: Float32Array.from([1.5, -2]) }, a: { dtype: 'I32', shape: [1, 1], data: Int32Array.from([7]) } }, { note: 'x' });
  const hlen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  expect((8 + hlen) % 8).toBe(0);
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + hlen)).toString());
  expect(header.a).toEqual({ dtype: 'I32', shape: [1, 1], data_offsets: [0, 4] });
  expect(header.b.data_offsets).toEqual([4, 12]);
  const back = decodeSafetensors(bytes);
  expect(Array.from(back.tensors.b.data)).toEqual([1.5, -2]);
  expect(back.metadata.note).toBe('x');
  expect(() => decodeSafetensors(bytes.subarray(0, bytes.length - 2), 'cut.safetensors')).toThrow(/cut\.safetensors is invalid.*past the end/);
});

test('checkpoint round trip keeps weights, config and vocabulary; writes a sidecar; leaves no temp files', () => {
  const dir = tmp();
  const file = path.join(dir, 'm.safetensors');
  const m = MiniCLIP.init(C, 3);
  const tok = WordTokenizer.fromCorpus(['a photo of a bag']);
  saveCheckpoint(file, m, tok, { kind: 'test', config: C, seed: 3, metrics: { ca: 1 } });
  expect(fs.readdirSync(dir).sort()).toEqual(['m.json', 'm.safetensors']);
  const side = JSON.parse(fs.readFileSync(sidecarPath(file), 'utf8'));
  expect(side.seed).toBe(3);
  expect(side.provenance.backend).toBe('wasm');
  expect(side.provenance.versions['tfjs-core']).toBeDefined();
  const ck = loadCheckpoint(file);
  expect(ck.tokenizer.vocab).toEqual(tok.vocab);
  const x = tf.randomUniform([2, C.imageSize, C.imageSize, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  expect(maxAbsDiff(m.encodeImage(x).embedding, ck.model.encodeImage(x).embedding)).toBe(0);
  m.dispose();
  ck.model.dispose();
});

test('loading into a model of another shape is a clear error; so is a truncated or foreign file', () => {
  const dir = tmp();
  const file = path.join(dir, 'm.safetensors');
  const m = MiniCLIP.init(C, 3);
  saveCheckpoint(file, m, WordTokenizer.fromCorpus(['x']), { kind: 'test', config: C, seed: 3 });
  m.dispose();
  expect(() => loadCheckpoint(file, { ...C, width: 32 })).toThrow(/does not fit the model: 'visual\.conv1\.weight' is \[48,16\] but the model needs \[48,32\]/);
  expect(() => loadCheckpoint(file, { ...C, layers: 4 })).toThrow(/missing 'visual\.transformer\.resblocks\.3/);
  const cut = path.join(dir, 'cut.safetensors');
  fs.writeFileSync(cut, fs.readFileSync(file).subarray(0, 1000));
  expect(() => loadCheckpoint(cut)).toThrow(/cut\.safetensors is invalid/);
  const foreign = path.join(dir, 'f.safetensors');
  fs.writeFileSync(foreign, encodeSafetensors({ w: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }));
  expect(() => loadCheckpoint(foreign)).toThrow(/not an rvpt MiniCLIP checkpoint/);
  expect(() => readSafetensors(path.join(dir, 'none.safetensors'))).toThrow(/does not exist/);
});

test('a truncated cached artifact is detected, reported and treated as absent', () => {
  const dir = tmp();
  const file = path.join(dir, 'cached.safetensors');
  const m = MiniCLIP.init(C, 3);
  saveCheckpoint(file, m, WordTokenizer.fromCorpus(['x']), { kind: 'pretrain', config: C, seed: 3 });
  m.dispose();
  const logs: string[] = [];
  const ok = loadCached(file, C, (s) => logs.push(s));
  expect(ok).not.toBeNull();
  ok!.model.dispose();
  expect(logs[0]).toMatch(/using cached pretrain model/);
  fs.truncateSync(file, 500);
  expect(loadCached(file, C, (s) => logs.push(s))).toBeNull();
  expect(logs[1]).toMatch(/cached\.safetensors is unusable .*invalid.*training again/);
  expect(loadCached(path.join(dir, 'absent.safetensors'), C, (s) => logs.push(s))).toBeNull();
  expect(logs).toHaveLength(2);
});

test('a byte flipped inside a cached checkpoint is caught on load (its sidecar records the sha256) and the model rebuilt', () => {
  const dir = tmp();
  const file = path.join(dir, 'm.safetensors');
  const model = MiniCLIP.init(C, 3);
  saveCheckpoint(file, model, WordTokenizer.fromCorpus(['a photo of a cat']), { kind: 'test', config: C, seed: 0 });
  const side = JSON.parse(fs.readFileSync(sidecarPath(file), 'utf8'));
  expect(side.sha256).toMatch(/^[0-9a-f]{64}$/);
  const logs: string[] = [];
  const ok = loadCached(file, C, (s) => logs.push(s));
  expect(ok).not.toBeNull();
  ok!.model.dispose();
  // Flip one byte well inside the weights (past the header): the file still decodes and has the right shapes.
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 100] ^= 0x40;
  fs.writeFileSync(file, bytes);
  expect(() => loadCheckpoint(file, C).model.dispose()).not.toThrow();
  expect(loadCached(file, C, (s) => logs.push(s))).toBeNull();
  expect(logs.at(-1)).toMatch(/cached checkpoint .*m\.safetensors is unusable \(its bytes changed since it was written \(sha256 [0-9a-f]{12}, recorded [0-9a-f]{12}\)\); training again/);
  model.dispose();
});

test('a write that cannot complete names the file and the cause, and leaves no temp file', () => {
  const dir = tmp();
  const blocker = path.join(dir, 'not-a-folder');
  fs.writeFileSync(blocker, 'x');
  expect(() => writeFileAtomic(path.join(blocker, 'out.json'), '{}')).toThrow(/Could not write .*not-a-folder[/\\]out\.json: (ENOTDIR|EEXIST), .*Check the free space and the permissions/);
  expect(fs.readdirSync(dir)).toEqual(['not-a-folder']);
  // A successful write leaves the file alone, no temp beside it.
  writeFileAtomic(path.join(dir, 'a.txt'), 'hello');
  expect(fs.readdirSync(dir).sort()).toEqual(['a.txt', 'not-a-folder']);
  expect(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8')).toBe('hello');
});

test('a cached artifact is read back only while its bytes are the ones written (FILE.sha256 beside it)', () => {
  const dir = tmp();
  const file = path.join(dir, 'cell.json');
  writeCachedJson(file, { asr: 12.5, ca: 80 });
  expect(fs.readFileSync(`${file}.sha256`, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
  expect(readCachedJson(file)).toEqual({ asr: 12.5, ca: 80 });
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('12.5', '19.5'));
  expect(() => readCachedJson(file)).toThrow(/cell\.json changed since it was written \(sha256 [0-9a-f]{12}, recorded [0-9a-f]{12}\)/);
  // Written before hashes were recorded: read as it is.
  fs.rmSync(`${file}.sha256`);
  expect(readCachedJson(file)).toEqual({ asr: 19.5, ca: 80 });
});

test('deep prompts decode from a prompts file; a tensor that is not a prompt is an error naming it', () => {
  const t = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape[0] * shape[1]).fill(0.5) });
  const ok = decodeSafetensors(encodeSafetensors({ 'prompt.visual.2': t([3, 8]), 'prompt.visual.4': t([3, 8]) }, { length: '3' }));
  const p = promptsFromSafetensors(ok, 'p.safetensors');
  expect(p.length).toBe(3);
  expect([...p.tokens.keys()].sort()).toEqual([2, 4]);
  expect(p.tokens.get(4)!.shape).toEqual([3, 8]);
  p.tokens.forEach((v) => v.dispose());
  const n0 = tf.memory().numTensors;
  const bad = decodeSafetensors(encodeSafetensors({ 'prompt.visual.2': t([3, 8]), 'visual.proj': t([8, 8]) }, { length: '3' }));
  expect(() => promptsFromSafetensors(bad, 'bad.safetensors')).toThrow(/Prompts file bad\.safetensors holds 'visual\.proj' \[8,8\], which is not a deep prompt/);
  expect(tf.memory().numTensors).toBe(n0);
});

test('a model decodes from bytes alone (the browser lab) as loadCheckpoint reads it from disk', () => {
  const dir = tmp();
  const m = MiniCLIP.init(C, 3);
  const tok = WordTokenizer.fromCorpus(['a photo of']);
  const file = path.join(dir, 'm.safetensors');
  saveCheckpoint(file, m, tok, { kind: 'test', config: C, seed: 3 });
  const fromBytes = modelFromSafetensors(decodeSafetensors(new Uint8Array(fs.readFileSync(file))), file);
  const fromDisk = loadCheckpoint(file);
  for (const [k, v] of Object.entries(fromDisk.model.params)) expect(maxAbsDiff(v, fromBytes.model.params[k])).toBe(0);
  expect(fromBytes.tokenizer.vocab).toEqual(tok.vocab);
  expect(() => modelFromSafetensors(decodeSafetensors(encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } })), 'x.safetensors')).toThrow(/x\.safetensors is not an rvpt MiniCLIP checkpoint/);
  [m, fromBytes.model, fromDisk.model].forEach((x) => x.dispose());
});
