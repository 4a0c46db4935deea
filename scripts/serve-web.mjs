#!/usr/bin/env node
// Serves a built lab folder (default web/dist) on localhost: `make serve`, and the Chromium tests. A static server is
// a dozen lines on node:http; what matters is that .wasm goes out as application/wasm (TF.js's WASM backend compiles
// it while streaming only then) and that nothing outside the folder is served.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.map': 'application/json', '.bin': 'application/octet-stream', '.safetensors': 'application/octet-stream', '.png': 'image/png' };

export function serveFolder(dir, port = 0) {
  const root = path.resolve(dir);
  if (!fs.existsSync(path.join(root, 'index.html'))) throw new Error(`${root} holds no built lab (index.html is missing): run \`make web\` first.`);
  const server = http.createServer((req, res) => {
    let url;
    try {
      url = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('bad request path');
      return;
    }
    const file = path.join(root, url.endsWith('/') ? `${url}index.html` : url);
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found: ${url}`);
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(e.code === 'EADDRINUSE' ? new Error(`port ${port} is in use; choose another, e.g. PORT=${port + 1} make serve`) : e));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const port = Number(process.env.PORT ?? 8000);
  const dir = args[0] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'web', 'dist');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`serve-web: PORT=${process.env.PORT} is not a port number (0-65535).`);
    process.exit(2);
  }
  try {
    const server = await serveFolder(dir, port);
    console.log(`The lab: http://127.0.0.1:${server.address().port}/ (Ctrl-C stops it)`);
  } catch (e) {
    console.error(`serve-web: ${e.message}`);
    process.exit(1);
  }
}
