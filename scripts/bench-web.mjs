#!/usr/bin/env node
// The lab's timings in headless Chromium on this machine (`make bench-web`): for each backend, the side-by-side view's
// time from navigation and from the script's start, one prediction (one image, one model: encode, classify, read
// back), and 100 steps of "Defend now" (RVPT, 20 epochs) on WebAssembly. Medians over RUNS page loads; written to
// .cache/bench-web.json with the commit and the browser's version.
import { chromium } from 'playwright-core';
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { serveFolder } from './serve-web.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const shotAt = args.indexOf('--screenshot');
const screenshot = shotAt >= 0 ? path.resolve(args.splice(shotAt, 2)[1] ?? '') : null;
const dir = args[0] ?? path.join(root, 'web', 'dist');
const RUNS = Number(process.env.RUNS ?? 5);
// The library's Chromium lookup (CHROMIUM_PATH, then Debian's paths), with its error when there is none.
const lib = createRequire(import.meta.url);
const { chromiumPath } = lib(path.join(root, 'dist', 'viz', 'render.js'));
const { median } = lib(path.join(root, 'dist', 'util', 'stats.js'));
const server = await serveFolder(dir);
const url = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--headless', '--no-sandbox'] });
const result = { runs: RUNS, chromium: browser.version(), commit: execSync('git rev-parse --short HEAD', { cwd: root }).toString().trim(), dirty: execSync('git status --porcelain', { cwd: root }).toString().trim() !== '', date: new Date().toISOString(), backends: {} };
for (const backend of ['wasm', 'webgl']) {
  const view = [];
  const script = [];
  const predict = [];
  for (let r = 0; r < RUNS; r++) {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const t0 = Date.now();
    await page.goto(`${url}?backend=${backend}`);
    await page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 120000 });
    view.push(Date.now() - t0);
    script.push(await page.evaluate(() => window.rvptTimings.readyMs));
    predict.push(...(await page.evaluate(async () => {
      const lab = window.rvptLab;
      const ms = [];
      for (let i = 0; i < 5; i++) {
        for (const id of ['clean', 'backdoored', 'VPT', 'RVPT']) {
          await lab.probabilities(id, 'Blended', 'fashion-mnist', await lab.triggered('Blended', lab.image('gallery', i), i));
          ms.push(lab.lastPredictionMs);
        }
      }
      return ms;
    })));
    await page.close();
    process.stderr.write(`[bench-web] ${backend} run ${r + 1}/${RUNS}: view ${view[r]} ms\n`);
  }
  result.backends[backend] = { viewMs: median(view), scriptToViewMs: Math.round(median(script)), predictionMs: Number(median(predict).toFixed(1)), viewRangeMs: [Math.min(...view), Math.max(...view)] };
}
// 100 steps of "Defend now" on the page as a user opens it (no ?backend: WebAssembly here), then the README's picture.
{
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 120000 });
  result.defaultBackend = await page.textContent('#backend');
  await page.fill('#epochs', '20');
  await page.click('#defend');
  await page.waitForFunction(() => window.rvptTimings.defendSeconds, null, { timeout: 600000 });
  result.defend100 = await page.evaluate(() => ({ seconds: window.rvptTimings.defendSeconds, steps: window.rvptTimings.defendSteps, status: document.querySelector('#defend-status').textContent }));
  if (screenshot) {
    // The README's picture: the first gallery image that the trigger flips to the target and RVPT brings back.
    const i = await page.evaluate(async () => {
      const lab = window.rvptLab;
      const g = lab.set('gallery');
      const target = lab.manifest.datasets[g.dataset].target;
      const top = (p) => p.indexOf(Math.max(...p));
      for (let i = 0; i < g.n; i++) {
        const x = await lab.triggered('Blended', lab.image('gallery', i), i);
        if (g.labels[i] !== target && top(await lab.probabilities('backdoored', 'Blended', g.dataset, x)) === target && top(await lab.probabilities('RVPT', 'Blended', g.dataset, x)) === g.labels[i]) return i;
      }
      return 0;
    });
    await page.click(`.thumb[data-index="${i}"]`);
    await page.waitForFunction((i) => document.querySelector('.thumb.chosen')?.getAttribute('data-index') === String(i) && document.querySelectorAll('.card').length === 5, i);
    await page.waitForTimeout(500);
    await page.screenshot({ path: screenshot, fullPage: true });
    process.stderr.write(`[bench-web] screenshot of gallery image ${i}: ${screenshot}\n`);
  }
  await page.close();
}
await browser.close();
server.close();
fs.mkdirSync(path.join(root, '.cache'), { recursive: true });
fs.writeFileSync(path.join(root, '.cache', 'bench-web.json'), JSON.stringify(result, null, 2) + '\n');
console.log(JSON.stringify(result, null, 2));
