#!/usr/bin/env node
// Builds the browser lab into web/dist (or --out DIR): the page bundled by esbuild from web/src and the library's own
// src/ modules (no copy), TF.js's WASM binaries, plotly, and the assets (models, prompts, images, lab.json) written
// by the library's writeLabAssets from checkpoints/. The folder works from any static server with no network.
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const outIdx = args.indexOf('--out');
const out = path.resolve(outIdx >= 0 ? args[outIdx + 1] : path.join(root, 'web', 'dist'));
const known = new Set(['--out']);
for (let i = 0; i < args.length; i++) {
  if (!known.has(args[i])) {
    console.error(`build-web: unknown argument '${args[i]}'. Usage: node scripts/build-web.mjs [--out DIR]`);
    process.exit(2);
  }
  i++;
}

// What modules of the page's graph import for Node only: the library's file work (fsutil, safetensors' file readers,
// the cached patches), its terminal progress bar, and the Node branches of TF.js and seedrandom. The page never calls
// them; each is an empty module in the bundle, so a call that did reach one would fail at once rather than half-work.
// Anything else Node-only that a new import pulls in stops the build with esbuild's "could not resolve".
const NODE_ONLY = ['fs', 'path', 'crypto', 'os', 'worker_threads', 'util', 'cli-progress'];
const nodeOnly = {
  name: 'node-only',
  setup(build) {
    const filter = new RegExp(`^(node:)?(${NODE_ONLY.map((m) => m.replace(/[/@.-]/g, (c) => `\\${c}`)).join('|')})$`);
    build.onResolve({ filter }, (a) => ({ path: a.path, namespace: 'node-only' }));
    build.onLoad({ filter: /.*/, namespace: 'node-only' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

const t0 = Date.now();
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, 'tfjs'), { recursive: true });
const result = await esbuild.build({
  entryPoints: [path.join(root, 'web', 'src', 'main.ts')],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  outfile: path.join(out, 'lab.js'),
  plugins: [nodeOnly],
  define: { 'process.env': '{}', global: 'globalThis' },
  logLevel: 'warning',
  metafile: true,
});
for (const f of ['index.html', 'style.css']) fs.copyFileSync(path.join(root, 'web', f), path.join(out, f));
fs.copyFileSync(require.resolve('plotly.js-dist-min'), path.join(out, 'plotly.min.js'));
const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
for (const f of fs.readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'))) fs.copyFileSync(path.join(wasmDir, f), path.join(out, 'tfjs', f));

// The assets, by the library (dist/, built by `make setup`).
const lib = require(path.join(root, 'dist', 'index.js'));
await lib.initBackend(undefined, { quiet: true });
await lib.writeLabAssets(path.join(out, 'assets'), 'transfer', (s) => console.error(`[web] ${s}`));
const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
console.error(`[web] built ${out} in ${((Date.now() - t0) / 1000).toFixed(1)} s (lab.js ${(fs.statSync(path.join(out, 'lab.js')).size / 1e6).toFixed(2)} MB; bundle outputs ${(bytes / 1e6).toFixed(2)} MB)`);
