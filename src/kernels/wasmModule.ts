/** What our WASM kernels need of TF.js's WASM backend: its memory, its allocator and where each tensor lives. */
import * as tf from '@tensorflow/tfjs-core';

export interface WasmBackendLike {
  wasm: { asm: { memory: WebAssembly.Memory }; _malloc(bytes: number): number; _free(ptr: number): void };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  readSync(dataId: object): tf.backend_util.BackendValues;
  incRef(dataId: object): void;
}

/** The bytes of base64 text, in Node and in a browser (which has no Buffer). */
export function base64Bytes(base64: string): Uint8Array {
  return typeof Buffer !== 'undefined' ? Buffer.from(base64, 'base64') : Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** Instantiate a kernel module (base64 wasm built by scripts/build-kernels.sh) inside TF.js's own memory. */
export function instantiate(backend: WasmBackendLike, base64: string): WebAssembly.Exports {
  const module = new WebAssembly.Module(base64Bytes(base64));
  return new WebAssembly.Instance(module, { env: { memory: backend.wasm.asm.memory } }).exports;
}

/** Byte offset of a tensor's data in the WASM heap. */
export function heapOffset(backend: WasmBackendLike, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset;
}

/**
 * A float32 tensor's values without copying them where the backend is WASM: a view into its heap, valid until the
 * backend next allocates (read it at once). Two-core training reads its gradients this way: copying them out
 * (dataSync) allocated 2 MB per side per step, and the garbage collector's helper threads then took CPU time from
 * the two training threads. Other backends copy.
 */
export function valuesView(t: tf.Tensor): Float32Array {
  const b = tf.backend() as unknown as Partial<WasmBackendLike>;
  if (tf.getBackend() === 'wasm' && t.dtype === 'float32' && b.dataIdMap && b.wasm) {
    return new Float32Array(b.wasm.asm.memory.buffer, heapOffset(b as WasmBackendLike, t), t.size);
  }
  return t.dataSync() as Float32Array;
}

/**
 * Replace a kernel of the WASM backend, keeping TF.js's own to fall back on and to restore. `install` registers
 * ours (built once per backend); `restore` and `reinstate` swap the two registrations without rebuilding anything.
 */
export class KernelOverride {
  private original: tf.KernelConfig | null = null;
  private ours: tf.KernelFunc | null = null;
  constructor(readonly kernelName: string) {}

  get tfjs(): tf.KernelConfig {
    if (!this.original) throw new Error(`${this.kernelName}: TF.js's WASM kernel was not found`);
    return this.original;
  }

  install(kernelFunc: tf.KernelFunc): void {
    this.original = this.original ?? tf.getKernel(this.kernelName, 'wasm') ?? null;
    if (!this.original) throw new Error(`${this.kernelName}: TF.js's WASM kernel was not found`);
    this.ours = kernelFunc;
    this.reinstate();
  }

  /** Register ours again after a `restore`. */
  reinstate(): void {
    if (!this.ours) return;
    tf.unregisterKernel(this.kernelName, 'wasm');
    tf.registerKernel({ kernelName: this.kernelName, backendName: 'wasm', kernelFunc: this.ours });
  }

  restore(): void {
    if (!this.original) return;
    tf.unregisterKernel(this.kernelName, 'wasm');
    tf.registerKernel(this.original);
  }
}

type Inputs = Record<string, tf.TensorInfo>;

/** A WASM kernel of our own over float32 inputs (anything else is refused by name). */
export function float32Kernel(kernelName: string, body: (inputs: Inputs, attrs: tf.NamedAttrMap) => tf.TensorInfo | tf.TensorInfo[]): tf.KernelConfig {
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs }) => {
      for (const t of Object.values(inputs as unknown as Inputs)) if (t.dtype !== 'float32') throw new Error(`${kernelName}: float32 inputs only (got ${t.dtype}).`);
      return body(inputs as unknown as Inputs, attrs ?? {});
    },
  };
}

/**
 * Kernels of our own (new names, not replacements of TF.js's), built once per backend instance and registered as a
 * set: `register` puts the last built ones in place of any earlier instance's, `unregister` removes them.
 */
export class KernelSet {
  private configs: tf.KernelConfig[] = [];

  build(configs: tf.KernelConfig[]): void {
    this.configs = configs;
  }

  register(): void {
    this.unregister();
    for (const k of this.configs) tf.registerKernel(k);
  }

  unregister(): void {
    for (const { kernelName } of this.configs) if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
  }
}
