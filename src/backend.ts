/**
 * Picks the TF.js backend once per process.
 *
 * Order: tfjs-node-gpu, tfjs-node (only when a user has installed them: they cannot install on a machine without
 * internet access to libtensorflow, so they are never hard dependencies), then WASM, then the plain CPU backend.
 * `RVPT_BACKEND=wasm|cpu|tensorflow` (or `--backend`) forces one.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's CommonJS bundle registers no gradients; the union package's bundle does (as a side effect).
import '@tensorflow/tfjs';
import { installWasmKernels } from './kernels';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export const BACKENDS: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  name: BackendName;
  /** Which package provided it, e.g. '@tensorflow/tfjs-node-gpu'. */
  package: string;
  tfjsVersion: string;
}

let chosen: BackendInfo | null = null;

function tryRequire(name: string): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    require(name);
    return true;
  } catch {
    return false;
  }
}

async function activate(name: BackendName): Promise<string | null> {
  if (name === 'tensorflow') {
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      if (tryRequire(pkg) && (await tf.setBackend('tensorflow'))) return pkg;
    }
    return null;
  }
  if (name === 'wasm') {
    if (!tryRequire('@tensorflow/tfjs-backend-wasm')) return null;
    return (await tf.setBackend('wasm')) ? '@tensorflow/tfjs-backend-wasm' : null;
  }
  if (!tryRequire('@tensorflow/tfjs-backend-cpu')) return null;
  return (await tf.setBackend('cpu')) ? '@tensorflow/tfjs-backend-cpu' : null;
}

/** Initialise the backend (idempotent). `forced` beats `RVPT_BACKEND`, which beats the default order. */
export async function initBackend(forced?: string, opts: { quiet?: boolean } = {}): Promise<BackendInfo> {
  const want = forced ?? process.env.RVPT_BACKEND;
  if (chosen && (!want || want === chosen.name)) return chosen;
  let order: BackendName[] = BACKENDS;
  if (want) {
    if (!BACKENDS.includes(want as BackendName)) {
      throw new Error(`Unknown backend '${want}' (from ${forced ? '--backend' : 'RVPT_BACKEND'}). Use one of: ${BACKENDS.join(', ')}.`);
    }
    order = [want as BackendName];
  }
  for (const name of order) {
    const pkg = await activate(name);
    if (pkg) {
      await tf.ready();
      // Some of TF.js's WASM kernels run scalar loops or JS row copies; ours give the same bits, faster.
      if (name === 'wasm' && process.env.RVPT_WASM_KERNELS !== '0') installWasmKernels();
      chosen = { name, package: pkg, tfjsVersion: tf.version_core };
      if (!opts.quiet && !process.env.RVPT_QUIET) console.error(`[rvpt] TF.js backend: ${name} (${pkg}, tfjs-core ${tf.version_core})`);
      return chosen;
    }
  }
  const hint =
    want === 'tensorflow'
      ? 'Install @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node with npm; they download libtensorflow at install time.'
      : 'Run `npm install` in the project root.';
  throw new Error(`Backend '${want ?? order.join('/')}' is not available. ${hint}`);
}

export function backendInfo(): BackendInfo {
  if (!chosen) throw new Error('Backend not initialised: call initBackend() first.');
  return chosen;
}
