/**
 * The page's TF.js backend: WebGL where the browser has it on a GPU, else WASM (and the page says why). `?backend=wasm` or
 * `?backend=webgl` asks for one. Node's backend code (src/backend.ts) loads packages with require; a page bundles
 * both backends instead. Our own WASM kernels (src/kernels) are not installed here: Chromium compiles a WASM module
 * over 4 KB only asynchronously on the page's thread, and they change no number (they give TF.js's bits or agree
 * with its kernels to float rounding), only Node's speed.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; prompt tuning needs them.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-webgl';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export interface BackendChoice {
  name: 'webgl' | 'wasm';
  /** Why the page is not on WebGL, when it is not; empty otherwise. */
  note: string;
}

/** The WebGL renderer's name, where the browser tells it ('' otherwise). */
function webglRenderer(): string {
  try {
    const gl = document.createElement('canvas').getContext('webgl');
    const ext = gl?.getExtension('WEBGL_debug_renderer_info');
    return gl && ext ? String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)) : '';
  } catch {
    return '';
  }
}

/**
 * WebGL drawn by the CPU (SwiftShader, llvmpipe: a machine or browser without a usable GPU) runs MiniCLIP 20-40x
 * slower than WebAssembly does (measured: one prediction 455 ms against 11 ms), so the lab takes WASM there.
 */
export function softwareWebGL(renderer: string): boolean {
  return /swiftshader|llvmpipe|softpipe|software/i.test(renderer);
}

function webglAvailable(): boolean {
  try {
    const c = document.createElement('canvas');
    return !!(c.getContext('webgl2') || c.getContext('webgl'));
  } catch {
    return false;
  }
}

export async function chooseBackend(want: string | null, wasmDir: string): Promise<BackendChoice> {
  if (want !== null && want !== 'webgl' && want !== 'wasm') throw new Error(`?backend=${want} is not a backend of the lab; use webgl or wasm (or leave it out).`);
  let note = '';
  if (want !== 'wasm') {
    const renderer = webglAvailable() ? webglRenderer() : '';
    if (!webglAvailable()) note = 'This browser has no WebGL, so the lab runs on WebAssembly (the same numbers).';
    else if (want === null && softwareWebGL(renderer)) note = `WebGL here is drawn by the CPU (${renderer.match(/swiftshader|llvmpipe|softpipe|software/i)![0]}), which is slower than WebAssembly, so the lab runs on WebAssembly (the same numbers; ?backend=webgl forces WebGL).`;
    else {
      try {
        if (await tf.setBackend('webgl')) {
          await tf.ready();
          return { name: 'webgl', note: '' };
        }
        note = 'WebGL did not start here, so the lab runs on WebAssembly (the same numbers).';
      } catch (e) {
        note = `WebGL failed (${(e as Error).message}), so the lab runs on WebAssembly (the same numbers).`;
      }
    }
  }
  setWasmPaths(wasmDir);
  if (!(await tf.setBackend('wasm'))) throw new Error('Neither WebGL nor WebAssembly could start in this browser; the lab needs one of them (any current Chrome, Firefox, Safari or Edge has both).');
  await tf.ready();
  return { name: 'wasm', note: want === 'wasm' ? 'WebAssembly, as asked (?backend=wasm).' : note };
}
