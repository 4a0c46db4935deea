/** The IDX format of (Fashion-)MNIST: big-endian magic (0x0000, dtype 0x08 = uint8, ndim), dims, raw bytes. */
import * as fs from 'fs';
import * as zlib from 'zlib';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function parseIdx(buf: Uint8Array, file: string): IdxArray {
  const fix = 'Re-install it (for Fashion-MNIST: `apt-get install --reinstall dataset-fashion-mnist`).';
  if (buf.length < 4) throw new Error(`IDX file ${file} is truncated: ${buf.length} bytes, not even a header. ${fix}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint16(0) !== 0 || buf[2] !== 0x08) {
    throw new Error(`IDX file ${file} has a bad magic number (bytes ${Array.from(buf.subarray(0, 4)).join(',')}); expected 0,0,8,ndim for uint8 data. ${fix}`);
  }
  const ndim = buf[3];
  const header = 4 + 4 * ndim;
  if (buf.length < header) throw new Error(`IDX file ${file} is truncated inside its header. ${fix}`);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i));
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length - header < count) {
    throw new Error(`IDX file ${file} is truncated: header says ${dims.join('x')} = ${count} values, file holds ${buf.length - header}. ${fix}`);
  }
  return { dims, data: buf.subarray(header, header + count) };
}

export function readIdxFile(file: string): IdxArray {
  let raw: Buffer = fs.readFileSync(file);
  if (file.endsWith('.gz')) {
    try {
      raw = zlib.gunzipSync(raw);
    } catch (e) {
      throw new Error(`IDX file ${file} is not valid gzip (${(e as Error).message}); it is probably truncated or corrupt. Re-install or re-download it.`);
    }
  }
  return parseIdx(raw, file);
}
