/**
 * AdamW's update in WASM (adamw.c), on float32 arrays that lie in one WebAssembly memory of its own. The memory is
 * shared, so two-core training's threads each run the kernel on the same parameters, gradients and optimiser state;
 * a one-thread optimiser keeps its state and two staging buffers there. It needs no TF.js backend.
 */
import { ADAMW_WASM_BASE64 } from './adamwWasm';
import { base64Bytes } from './wasmModule';

type AdamWFn = (p: number, g: number, g2: number, m: number, v: number, n: number, b1: number, omb1: number, b2: number, omb2: number, c1: number, c2: number, eps: number, lr: number, wd: number) => void;

export interface AdamWHyper {
  beta1: number;
  beta2: number;
  eps: number;
  lr: number;
  weightDecay: number;
  /** The bias corrections 1 - beta^step. */
  c1: number;
  c2: number;
}

let compiled: WebAssembly.Module | null = null;

const PAGE = 65536;
/** Allocations are 16-byte aligned (one SIMD vector). */
const ALIGN = 16;
/** The module's own first KiB (its global base; it has no data and no stack), and no array at 0, which is null. */
const START = 1024;

export class AdamWKernel {
  /** The memory's buffer, taken once (the memory never grows), so that views made from it can be recognised. */
  readonly buffer: SharedArrayBuffer;
  private readonly fn: AdamWFn;
  private next = START;

  private constructor(readonly memory: WebAssembly.Memory) {
    compiled = compiled ?? new WebAssembly.Module(base64Bytes(ADAMW_WASM_BASE64));
    this.fn = new WebAssembly.Instance(compiled, { env: { memory } }).exports.adamw as AdamWFn;
    this.buffer = memory.buffer as unknown as SharedArrayBuffer;
  }

  /** A kernel with a new memory of room for `floats` float32 values (in arrays of `arrays` at most, for alignment). */
  static create(floats: number, arrays = 1): AdamWKernel {
    const pages = Math.max(1, Math.ceil((START + 4 * floats + ALIGN * arrays) / PAGE));
    if (pages > 65536) throw new Error(`AdamWKernel: ${floats} values need ${pages} pages of WASM memory; 65536 (4 GiB) is the most.`);
    return new AdamWKernel(new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }));
  }

  /** A kernel on a memory another thread made (passed through workerData). */
  static attach(memory: WebAssembly.Memory): AdamWKernel {
    return new AdamWKernel(memory);
  }

  /** `n` zeroed float32 values from the memory (a view; allocations are never freed). */
  alloc(n: number): Float32Array {
    const bytes = 4 * n;
    if (this.next + bytes > this.buffer.byteLength) throw new Error(`AdamWKernel: out of room for ${n} values (${this.buffer.byteLength} bytes in all).`);
    const a = new Float32Array(this.buffer, this.next, n);
    this.next += Math.ceil(bytes / ALIGN) * ALIGN;
    return a;
  }

  holds(...arrays: (Float32Array | undefined)[]): boolean {
    return arrays.every((a) => a === undefined || a.buffer === this.buffer);
  }

  run(p: Float32Array, g: Float32Array, g2: Float32Array | undefined, m: Float32Array, v: Float32Array, h: AdamWHyper): void {
    const n = p.length;
    if (g.length !== n || m.length !== n || v.length !== n || (g2 && g2.length !== n)) throw new Error(`AdamWKernel: arrays of different lengths (${n} values).`);
    this.fn(p.byteOffset, g.byteOffset, g2 ? g2.byteOffset : 0, m.byteOffset, v.byteOffset, n, h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2, h.c1, h.c2, h.eps, h.lr, h.weightDecay);
  }
}
