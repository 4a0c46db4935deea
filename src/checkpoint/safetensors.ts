/**
 * The safetensors format (what the CLIP ecosystem ships weights in): an 8-byte little-endian header length,
 * a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}, then raw bytes.
 * Written by hand because the format is 30 lines and no maintained npm package both reads and writes it.
 */
import * as fs from 'fs';
import { writeFileAtomic } from '../util/fsutil';

export type DType = 'F32' | 'I32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'U8';
const BYTES: Record<DType, number> = { F32: 4, I32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, U8: 1 };

export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

export interface SafetensorsFile {
  tensors: Record<string, RawTensor>;
  metadata: Record<string, string>;
}

export function encodeSafetensors(tensors: Record<string, { dtype: 'F32' | 'I32'; shape: number[]; data: Float32Array | Int32Array }>, metadata: Record<string, string> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const n of names) {
    const t = tensors[n];
    const len = t.data.length * 4;
    header[n] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces to an 8-byte boundary (as the reference implementation does).
  while ((json.length + 8) % 8 !== 0) json += ' ';
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const n of names) {
    const d = tensors[n].data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}

export function writeSafetensors(file: string, tensors: Parameters<typeof encodeSafetensors>[0], metadata: Record<string, string> = {}): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

export function decodeSafetensors(buf: Uint8Array, file = '<buffer>'): SafetensorsFile {
  const bad = (why: string): never => {
    throw new Error(`Safetensors file ${file} is invalid: ${why}. It is probably truncated or not a safetensors file; re-create or re-copy it.`);
  };
  if (buf.length < 8) bad(`only ${buf.length} bytes`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = Number(view.getBigUint64(0, true));
  if (hlen <= 0 || 8 + hlen > buf.length) bad(`header length ${hlen} exceeds the file size ${buf.length}`);
  let header: Record<string, { dtype: DType; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + hlen)));
  } catch {
    return bad('the header is not JSON');
  }
  const metadata = ((header as Record<string, unknown>).__metadata__ ?? {}) as Record<string, string>;
  const base = 8 + hlen;
  const tensors: Record<string, RawTensor> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = info.data_offsets;
    const count = info.shape.reduce((x, y) => x * y, 1);
    const width = BYTES[info.dtype];
    if (!width) bad(`tensor '${name}' has unsupported dtype ${info.dtype}`);
    if (b - a !== count * width) bad(`tensor '${name}' has ${b - a} bytes for shape [${info.shape}] of ${info.dtype}`);
    if (base + b > buf.length) bad(`tensor '${name}' ends at byte ${base + b}, past the end of the file (${buf.length} bytes)`);
    // A copy (Buffer#slice would return a view into a shared pool): aligned, independent of the file buffer.
    const bytes = Uint8Array.prototype.slice.call(buf, base + a, base + b);
    let data: Float32Array | Int32Array | Uint8Array;
    if (info.dtype === 'F32') data = new Float32Array(bytes.buffer);
    else if (info.dtype === 'I32') data = new Int32Array(bytes.buffer);
    else if (info.dtype === 'F16' || info.dtype === 'BF16') {
      const u16 = new Uint16Array(bytes.buffer);
      data = new Float32Array(count);
      const f32 = new Float32Array(1);
      const u32 = new Uint32Array(f32.buffer);
      for (let i = 0; i < count; i++) {
        if (info.dtype === 'F16') data[i] = halfToFloat(u16[i]);
        else {
          u32[0] = u16[i] << 16;
          data[i] = f32[0];
        }
      }
    } else if (info.dtype === 'F64') data = Float32Array.from(new Float64Array(bytes.buffer));
    else if (info.dtype === 'I64') data = Int32Array.from(new BigInt64Array(bytes.buffer), (v) => Number(v));
    else data = bytes;
    tensors[name] = { dtype: info.dtype, shape: info.shape, data };
  }
  return { tensors, metadata };
}

export function readSafetensors(file: string): SafetensorsFile {
  if (!fs.existsSync(file)) throw new Error(`Checkpoint ${file} does not exist. Give the path of a .safetensors file (rvpt pretrain and rvpt backdoor print the ones they write).`);
  return decodeSafetensors(fs.readFileSync(file), file);
}
