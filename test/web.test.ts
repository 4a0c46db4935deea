/**
 * The browser lab (web/, `make web`), built into a temporary folder, served by scripts/serve-web.mjs and opened in
 * real headless Chromium:
 * - it loads with no console error and shows the side-by-side view within 3 s, one prediction within 100 ms;
 * - its probabilities for 20 fixed images equal Node's from the same files (1e-4 on WASM, 1e-2 on WebGL);
 * - Blended (the backdoor that took, and that RVPT cuts most in the committed Table 1): a triggered gallery image
 *   that the backdoored model sends to the target while the RVPT model keeps its class, shown so on the page;
 * - "Defend now" for a few steps lowers the loss and adds the model; bad uploads and a browser without WebGL are
 *   answered in the page.
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { Browser, Page, chromium } from 'playwright-core';
import * as tf from '@tensorflow/tfjs-core';
import { chromiumPath } from '../src/viz/render';
import { initBackend } from '../src/backend';
import { decodeSafetensors } from '../src/checkpoint/safetensors';
import { modelFromSafetensors, promptsFromSafetensors } from '../src/checkpoint/checkpoint';
import { makeTrigger } from '../src/attacks/registry';
import { PatchTrigger } from '../src/attacks/patch';
import { testTimeTrigger } from '../src/metrics/backdoor';
import { zeroShotClassifier, zeroShotProbabilities } from '../src/model/zeroShot';
import type { LabManifest } from '../src/experiments/labFormat';

jest.setTimeout(600_000);

const root = path.resolve(__dirname, '..');
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-web-'));
const assets = path.join(out, 'assets');
const IDS = ['clean', 'backdoored', 'VPT', 'RVPT'] as const;
let server: ChildProcess;
let url = '';
let browser: Browser;
let manifest: LabManifest;

beforeAll(async () => {
  execFileSync('node', [path.join(root, 'scripts', 'build-web.mjs'), '--out', out], { cwd: root, stdio: 'pipe' });
  manifest = JSON.parse(fs.readFileSync(path.join(assets, 'lab.json'), 'utf8'));
  server = spawn('node', [path.join(root, 'scripts', 'serve-web.mjs'), out], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  url = await new Promise<string>((resolve, reject) => {
    server.stdout!.on('data', (d: Buffer) => {
      const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(d.toString());
      if (m) resolve(m[0]);
    });
    server.on('exit', (c) => reject(new Error(`serve-web exited with ${c}`)));
  });
  browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--headless', '--no-sandbox'] });
  await initBackend('wasm', { quiet: true });
});

afterAll(async () => {
  await browser?.close();
  server?.kill();
  fs.rmSync(out, { recursive: true, force: true });
});

/** Open the page and wait for the side-by-side view; console errors and uncaught exceptions are collected. */
async function open(query = '', b: Browser = browser): Promise<{ page: Page; errors: string[]; ms: number }> {
  const page = await b.newPage();
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  const t0 = Date.now();
  await page.goto(url + query);
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 120_000 });
  const ms = Date.now() - t0;
  expect(await page.evaluate(() => document.body.dataset.ready)).toBe('1');
  return { page, errors, ms };
}

/** Node's probabilities for the gallery's 20 images under `attack`'s test-time trigger (offsets 0..19). */
function nodeProbabilities(attack: string): Record<string, Float32Array> {
  const read = (f: string) => new Uint8Array(fs.readFileSync(path.join(assets, f)));
  const bin = read(manifest.images.file);
  const images = new Float32Array(bin.buffer, bin.byteOffset, bin.byteLength / 4);
  const g = manifest.images.sets.gallery;
  const per = manifest.imageSize ** 2 * 3;
  const d = manifest.datasets[g.dataset];
  const a = manifest.attacks[attack];
  const clean = modelFromSafetensors(decodeSafetensors(read(manifest.clean.file)), manifest.clean.file);
  const bd = modelFromSafetensors(decodeSafetensors(read(a.model.file)), a.model.file);
  const prompts = { VPT: promptsFromSafetensors(decodeSafetensors(read(a.prompts.VPT.file)), 'VPT'), RVPT: promptsFromSafetensors(decodeSafetensors(read(a.prompts.RVPT.file)), 'RVPT') };
  const trigger = makeTrigger(attack, a.trigger);
  if (a.patch) (trigger as PatchTrigger).usePatch(JSON.parse(fs.readFileSync(path.join(assets, a.patch.file), 'utf8')).patch);
  const result: Record<string, Float32Array> = {};
  tf.tidy(() => {
    const x = testTimeTrigger(trigger)(tf.tensor4d(images.slice(g.offset * per, (g.offset + g.n) * per), [g.n, manifest.imageSize, manifest.imageSize, 3]), 0);
    for (const id of IDS) {
      const m = id === 'clean' ? clean : bd;
      const cls = zeroShotClassifier(m.model, m.tokenizer, d.classNames, d.templates);
      const emb = m.model.encodeImage(x, { prompts: id === 'VPT' || id === 'RVPT' ? prompts[id] : undefined }).embedding;
      result[id] = zeroShotProbabilities(emb, cls, m.model.logitScale()).dataSync() as Float32Array;
    }
  });
  clean.model.dispose();
  bd.model.dispose();
  Object.values(prompts).forEach((p) => p.tokens.forEach((v) => v.dispose()));
  return result;
}

/** The page's probabilities for the same 20 images and trigger. */
async function pageProbabilities(page: Page, attack: string): Promise<Record<string, number[]>> {
  return page.evaluate(async ({ attack, ids }) => {
    const lab = (window as any).rvptLab;
    const n = lab.set('gallery').n;
    const px = new Float32Array(n * lab.pixelsPerImage);
    for (let i = 0; i < n; i++) px.set(lab.image('gallery', i), i * lab.pixelsPerImage);
    const x = await lab.triggered(attack, px, 0);
    const r: Record<string, number[]> = {};
    for (const id of ids) r[id] = Array.from(await lab.probabilities(id, attack, lab.set('gallery').dataset, x));
    return r;
  }, { attack, ids: [...IDS] });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('the page loads with no console error, within 3 s, on WebAssembly here (WebGL is software-drawn), and leaks no tensor', async () => {
  const { page, errors } = await open();
  expect(errors).toEqual([]);
  const t = await page.evaluate(() => (window as any).rvptTimings);
  // From the script's start to the side-by-side view, and one prediction (the budgets the README states).
  expect(t.readyMs).toBeLessThanOrEqual(3000);
  expect(t.lastPredictionMs).toBeLessThanOrEqual(100);
  expect(await page.textContent('#backend')).toBe('WebAssembly');
  expect(await page.textContent('#backend-note')).toMatch(/drawn by the CPU/);
  expect(await page.locator('.card').count()).toBe(4);
  await page.selectOption('#attack', 'BadNet');
  await page.waitForFunction(() => document.querySelector('[data-model="backdoored"] .sub')?.textContent?.startsWith('BadNet'));
  // Once an attack's model is loaded and its classifiers made, showing another image leaves no tensor behind.
  const before = await page.evaluate(() => (window as any).rvptLab.numTensors());
  await page.click('.thumb[data-index="5"]');
  await page.waitForFunction(() => document.querySelector('.thumb.chosen')?.getAttribute('data-index') === '5' && (window as any).rvptTimings.lastRefreshMs);
  await page.waitForFunction(() => document.querySelectorAll('.card').length === 4);
  expect(await page.evaluate(() => (window as any).rvptLab.numTensors())).toBe(before);
  // Clicks faster than the page computes: only the last image is drawn, with one set of cards.
  const row = manifest.images.sets.gallery.rows[7];
  for (const i of [1, 2, 7]) await page.click(`.thumb[data-index="${i}"]`);
  await page.waitForFunction((r) => document.querySelector('#img-name')?.textContent?.includes(`test image ${r})`), row);
  await page.waitForTimeout(1000);
  expect(await page.textContent('#img-name')).toContain(`test image ${row})`);
  expect(await page.locator('.card').count()).toBe(4);
  await page.evaluate(async () => {
    const lab = (window as any).rvptLab;
    const n0 = lab.numTensors();
    const x = lab.image('gallery', 3);
    for (const id of ['clean', 'backdoored', 'VPT', 'RVPT']) {
      await lab.probabilities(id, 'Blended', 'fashion-mnist', await lab.triggered('Blended', x, 3));
      await lab.attention(id, 'Blended', x);
      await lab.pr(id, 'Blended', x, 3);
    }
    if (lab.numTensors() !== n0) throw new Error(`tensors: ${n0} -> ${lab.numTensors()}`);
  });
  expect(errors).toEqual([]);
  await page.close();
});

test.each(['Blended', 'BadCLIP'])('%s: the page\'s probabilities for 20 images equal Node\'s, within 1e-4 on WASM and 1e-2 on WebGL', async (attack) => {
  const node = nodeProbabilities(attack);
  for (const [backend, tol] of [['wasm', 1e-4], ['webgl', 1e-2]] as const) {
    const { page, errors } = await open(`?backend=${backend}`);
    expect(await page.textContent('#backend')).toBe(backend === 'wasm' ? 'WebAssembly' : 'WebGL');
    const web = await pageProbabilities(page, attack);
    for (const id of IDS) {
      const d = maxDiff(web[id], node[id]);
      expect({ backend, id, ok: d <= tol, d }).toEqual({ backend, id, ok: true, d });
    }
    expect(errors).toEqual([]);
    await page.close();
  }
});

test('Blended: a triggered image sends the backdoored model to the target and the RVPT model to its own class, on the page', async () => {
  const { page } = await open();
  const node = nodeProbabilities('Blended');
  const g = manifest.images.sets.gallery;
  const target = manifest.datasets[g.dataset].target;
  const C = manifest.datasets[g.dataset].classNames.length;
  const argmax = (p: Float32Array, i: number) => {
    let k = 0;
    for (let c = 1; c < C; c++) if (p[i * C + c] > p[i * C + k]) k = c;
    return k;
  };
  const flipped = Array.from({ length: g.n }, (_, i) => i).filter((i) => g.labels[i] !== target && argmax(node.backdoored, i) === target && argmax(node.RVPT, i) === g.labels[i]);
  expect(flipped.length).toBeGreaterThan(0);
  await page.click(`.thumb[data-index="${flipped[0]}"]`);
  await page.waitForFunction((i) => document.querySelector('#img-name')?.textContent?.includes(`test image ${i}`), g.rows[flipped[0]]);
  const first = (id: string) => page.locator(`[data-model="${id}"] .pred`).first();
  expect(await first('backdoored').getAttribute('class')).toContain('target');
  expect(await first('RVPT').getAttribute('class')).toContain('true');
  await page.close();
});

test('"Defend now" for a few steps lowers the loss, plots it, and adds the defended model', async () => {
  const { page, errors } = await open();
  // Ten epochs of five steps: the first is CoOp's warm-up at lr 1e-5, so the loss moves only after it.
  await page.fill('#epochs', '10');
  await page.click('#defend');
  await page.waitForFunction(() => (window as any).rvptTimings.defendSeconds, null, { timeout: 300_000 });
  const y = await page.evaluate(() => (window as any).rvptLab.yours);
  expect(y.steps).toBe(50);
  expect(y.history.loss).toHaveLength(50);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  // Lower by a tenth at least: the last five steps' mean loss against the first five's (batch-to-batch noise is smaller).
  expect(mean(y.history.loss.slice(-5))).toBeLessThan(0.9 * mean(y.history.loss.slice(0, 5)));
  expect(y.history.points.length).toBeGreaterThanOrEqual(2);
  await page.waitForSelector('[data-model="yours"]');
  expect(await page.locator('#defend-plot .scatterlayer .trace').count()).toBe(3);
  expect(await page.textContent('#defend-status')).toMatch(/RVPT on Blended: 50 steps/);
  // Stop ends a run early; the prompts of the steps done become "your" model.
  await page.selectOption('#method', 'VPT');
  await page.fill('#epochs', '40');
  await page.click('#defend');
  await page.waitForFunction(() => Number((document.querySelector('#progress') as HTMLProgressElement).value) >= 3);
  await page.click('#stop');
  await page.waitForFunction(() => /stopped after/.test(document.querySelector('#defend-status')?.textContent ?? ''), null, { timeout: 120_000 });
  const stopped = await page.evaluate(() => (window as any).rvptLab.yours);
  expect(stopped.method).toBe('VPT');
  expect(stopped.steps).toBeLessThan(200);
  expect(stopped.history.points[stopped.history.points.length - 1].step).toBe(stopped.steps);
  expect(await page.textContent('#defend-status')).toMatch(new RegExp(`VPT on Blended: stopped after ${stopped.steps} of 200 steps`));
  expect(await page.isHidden('#stop')).toBe(true);
  expect(errors).toEqual([]);
  await page.close();
});

test('bad uploads are answered in the page; a huge image is resized, not frozen on', async () => {
  const { page } = await open();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvpt-upload-'));
  const broken = path.join(dir, 'broken.png');
  fs.writeFileSync(broken, Buffer.from('this is not a PNG'));
  await page.setInputFiles('#upload', broken);
  await page.waitForSelector('#error:not([hidden])');
  expect(await page.textContent('#error')).toMatch(/broken\.png .*could not be read as an image/);
  const text = path.join(dir, 'notes.txt');
  fs.writeFileSync(text, 'hello');
  await page.setInputFiles('#upload', text);
  await page.waitForFunction(() => document.querySelector('#error')?.textContent?.includes('notes.txt'));
  expect(await page.textContent('#error')).toMatch(/notes\.txt is not an image/);
  const huge = path.join(dir, 'huge.png');
  await sharp({ create: { width: 8000, height: 6000, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toFile(huge);
  const t0 = Date.now();
  await page.setInputFiles('#upload', huge);
  await page.waitForFunction(() => document.querySelector('#img-name')?.textContent?.includes('huge.png'), null, { timeout: 60_000 });
  const ms = Date.now() - t0;
  expect(await page.textContent('#img-name')).toMatch(/resized to 32x32/);
  expect(await page.locator('.card').count()).toBe(4);
  expect(ms).toBeLessThan(15_000);
  fs.rmSync(dir, { recursive: true, force: true });
  await page.close();
});

test('a browser without WebGL falls back to WebAssembly and says so', async () => {
  const b = await chromium.launch({ executablePath: chromiumPath(), args: ['--headless', '--no-sandbox', '--disable-webgl', '--disable-3d-apis'] });
  try {
    const { page, errors } = await open('', b);
    expect(await page.textContent('#backend')).toBe('WebAssembly');
    expect(await page.textContent('#backend-note')).toMatch(/has no WebGL/);
    expect(await page.locator('.card').count()).toBe(4);
    expect(errors).toEqual([]);
  } finally {
    await b.close();
  }
});
