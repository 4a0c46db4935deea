/**
 * The page: pick an image and an attack, see the four models side by side, where their class token looks and how
 * stable each layer is under the trigger, then defend the model yourself. Everything numeric comes from Lab (lab.ts).
 */
import { chooseBackend, BackendChoice } from './backend';
import { DefendProgress, Lab, MODEL_IDS, ModelId } from './lab';
import { viridis } from '../../src/viz/colormap';
import { median } from '../../src/util/stats';

declare const Plotly: { react(el: HTMLElement, data: unknown[], layout: unknown, config?: unknown): Promise<void> } | undefined;

const ATTACKS = ['None', 'BadNet', 'Blended', 'WaNet', 'BadCLIP'];
const TITLES: Record<ModelId, string> = { clean: 'Clean MiniCLIP', backdoored: 'Backdoored', VPT: '+ VPT prompts', RVPT: '+ RVPT prompts', yours: '+ your prompts' };
const COLOURS: Record<ModelId, string> = { clean: '#2ca02c', backdoored: '#d62728', VPT: '#ff7f0e', RVPT: '#1f77b4', yours: '#9467bd' };
/** Uploads over this many bytes are refused before decoding (a photo is a few MB). */
const MAX_UPLOAD_BYTES = 50e6;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

interface Selection {
  dataset: string;
  /** Gallery set and index, or an upload. */
  set: string | null;
  index: number;
  pixels: Float32Array;
  label: number | null;
  name: string;
}

const state = { attack: 'Blended', view: 'triggered' as 'triggered' | 'clean', busy: false };
let lab: Lab;
let sel: Selection;
let backend: BackendChoice;
const timings: Record<string, number> = {};
(window as unknown as { rvptTimings: typeof timings }).rvptTimings = timings;

function showError(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  const box = $('error');
  box.textContent = msg;
  box.hidden = false;
  console.warn(`[lab] ${msg}`);
}

function clearError(): void {
  $('error').hidden = true;
}

function draw(canvas: HTMLCanvasElement, pixels: Float32Array, size: number, overlay?: Float32Array): void {
  const small = document.createElement('canvas');
  small.width = small.height = size;
  const ctx = small.getContext('2d')!;
  const img = ctx.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    for (let c = 0; c < 3; c++) img.data[i * 4 + c] = Math.round(255 * Math.min(1, Math.max(0, pixels[i * 3 + c])));
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const out = canvas.getContext('2d')!;
  out.imageSmoothingEnabled = false;
  out.drawImage(small, 0, 0, canvas.width, canvas.height);
  if (overlay) {
    // The attention grid, colour-mapped (viridis, min to max of this map) and laid over the image at 55% opacity.
    const g = Math.round(Math.sqrt(overlay.length));
    const lo = Math.min(...overlay);
    const hi = Math.max(...overlay);
    const heat = document.createElement('canvas');
    heat.width = heat.height = g;
    const h = heat.getContext('2d')!;
    const hd = h.createImageData(g, g);
    overlay.forEach((v, i) => {
      const [r, gr, b] = viridis((v - lo) / (hi - lo || 1));
      hd.data.set([r, gr, b, 255], i * 4);
    });
    h.putImageData(hd, 0, 0);
    out.globalAlpha = 0.55;
    out.imageSmoothingEnabled = true;
    out.drawImage(heat, 0, 0, canvas.width, canvas.height);
    out.globalAlpha = 1;
  }
}

function canvas(size: number, cls = ''): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = c.height = size;
  if (cls) c.className = cls;
  return c;
}

function buildGallery(): void {
  const box = $('gallery');
  box.innerHTML = '';
  const set = $<HTMLSelectElement>('dataset').value === 'emoji' ? 'emoji' : 'gallery';
  const s = lab.set(set);
  const names = lab.manifest.datasets[s.dataset].classNames;
  for (let i = 0; i < s.n; i++) {
    const c = canvas(48, 'thumb');
    c.title = `${names[s.labels[i]]} (test image ${s.rows[i]})`;
    c.dataset.index = String(i);
    draw(c, lab.image(set, i), lab.size);
    c.onclick = () => select(set, i).catch(showError);
    box.appendChild(c);
  }
}

async function select(set: string, index: number): Promise<void> {
  const s = lab.set(set);
  sel = { dataset: s.dataset, set, index, pixels: lab.image(set, index), label: s.labels[index], name: `${lab.manifest.datasets[s.dataset].classNames[s.labels[index]]} (test image ${s.rows[index]})` };
  document.querySelectorAll('.thumb').forEach((t) => t.classList.toggle('chosen', Number((t as HTMLElement).dataset.index) === index));
  await refresh();
}

/** An uploaded file as pixels: refused when it is not an image or too large, decoded and resized off the page's thread. */
async function readUpload(file: File): Promise<Float32Array> {
  if (file.size > MAX_UPLOAD_BYTES) throw new Error(`${file.name} is ${(file.size / 1e6).toFixed(0)} MB; the lab takes images up to ${MAX_UPLOAD_BYTES / 1e6} MB. Choose a smaller file.`);
  if (file.type && !file.type.startsWith('image/')) throw new Error(`${file.name} is not an image (its type is ${file.type}). Choose a PNG, JPEG, GIF, WebP or BMP file.`);
  let bmp: ImageBitmap;
  try {
    // createImageBitmap decodes and scales in the browser's image pipeline, not in this script: a 50-megapixel photo
    // does not freeze the page, and only the 32x32 result reaches it.
    bmp = await createImageBitmap(file, { resizeWidth: lab.size, resizeHeight: lab.size, resizeQuality: 'high' });
  } catch {
    throw new Error(`${file.name} (${file.size} bytes) could not be read as an image: it is damaged or in a format this browser cannot decode. Choose a PNG, JPEG, GIF, WebP or BMP file.`);
  }
  const c = canvas(lab.size);
  const ctx = c.getContext('2d')!;
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  const d = ctx.getImageData(0, 0, lab.size, lab.size).data;
  const px = new Float32Array(lab.size * lab.size * 3);
  for (let i = 0; i < lab.size * lab.size; i++) for (let c3 = 0; c3 < 3; c3++) px[i * 3 + c3] = d[i * 4 + c3] / 255;
  return px;
}

async function onUpload(file: File): Promise<void> {
  clearError();
  const px = await readUpload(file);
  const dataset = $<HTMLSelectElement>('dataset').value === 'emoji' ? lab.set('emoji').dataset : lab.set('gallery').dataset;
  sel = { dataset, set: null, index: 0, pixels: px, label: null, name: `${file.name} (resized to ${lab.size}x${lab.size})` };
  document.querySelectorAll('.thumb').forEach((t) => t.classList.remove('chosen'));
  await refresh();
}

function topK(p: Float32Array, k: number): number[] {
  return Array.from(p.keys()).sort((a, b) => p[b] - p[a]).slice(0, k);
}

let generation = 0;

/**
 * Everything that depends on the image and the attack: the two images, the five cards, attention, PR. A newer call
 * (another click while this one computes) supersedes it: it draws nothing once it is out of date.
 */
async function refresh(): Promise<void> {
  const gen = ++generation;
  const t0 = performance.now();
  const image = sel;
  const attack = state.attack;
  const d = lab.manifest.datasets[image.dataset];
  const trig = await lab.triggered(attack, image.pixels, image.index);
  const shown = state.view === 'triggered' ? trig : image.pixels;
  const cards = document.createDocumentFragment();
  const ids = MODEL_IDS.filter((id) => lab.has(id, attack));
  const times: number[] = [];
  for (const id of ids) {
    const p = await lab.probabilities(id, attack, image.dataset, shown);
    times.push(lab.lastPredictionMs);
    const card = document.createElement('div');
    card.className = 'card';
    card.dataset.model = id;
    const y = lab.yours;
    const sub =
      id === 'clean' ? `zero-shot CA ${fmt(lab.manifest.clean.metrics as { ca: Record<string, number> }, image.dataset)}` :
      id === 'backdoored' ? `${attack}, on ${lab.manifest.datasets[lab.set('gallery').dataset].title}: ASR ${(lab.manifest.attacks[attack].model.metrics as { asr: number }).asr.toFixed(1)}%, CA ${(lab.manifest.attacks[attack].model.metrics as { ca: number }).ca.toFixed(1)}% (10,000 test images)` :
      id === 'yours' && y ? `${y.method}, ${y.steps} steps in this page` : 'shipped prompts, seed 0';
    const att = await lab.attention(id, attack, shown);
    const c = canvas(96, 'att');
    draw(c, shown, lab.size, att);
    card.innerHTML = `<h3 style="border-color:${COLOURS[id]}">${TITLES[id]}</h3><div class="sub">${sub}</div>`;
    const rows = document.createElement('div');
    for (const k of topK(p, 3)) {
      const isTarget = image.dataset === lab.set('gallery').dataset && attack !== 'None' && k === d.target;
      const isTrue = k === image.label;
      const r = document.createElement('div');
      r.className = `pred${isTarget ? ' target' : ''}${isTrue ? ' true' : ''}`;
      r.innerHTML = `<span class="name">${d.classNames[k]}${isTrue ? ' ✓' : ''}${isTarget ? ' ◎ target' : ''}</span><span class="bar"><span style="width:${(100 * p[k]).toFixed(1)}%"></span></span><span class="pct">${(100 * p[k]).toFixed(1)}%</span>`;
      rows.appendChild(r);
    }
    card.appendChild(rows);
    const a = document.createElement('div');
    a.className = 'attbox';
    a.appendChild(c);
    a.insertAdjacentHTML('beforeend', '<span>class-token attention, last block</span>');
    card.appendChild(a);
    cards.appendChild(card);
  }
  if (gen !== generation) return;
  draw($<HTMLCanvasElement>('img-clean'), image.pixels, lab.size);
  draw($<HTMLCanvasElement>('img-trig'), trig, lab.size);
  $('img-name').textContent = image.name;
  $('img-trig-caption').textContent = attack === 'None' ? 'no trigger' : `with the ${attack} trigger`;
  $('cards').replaceChildren(cards);
  timings.lastPredictionMs = Math.max(...times);
  $('pred-time').textContent = `one prediction: ${median(times).toFixed(0)} ms (median of ${times.length}), ${backend.name}`;
  await drawPR(ids, attack, image, gen);
  if (gen === generation) timings.lastRefreshMs = performance.now() - t0;
}

function fmt(m: { ca: Record<string, number> }, dataset: string): string {
  const v = m.ca[dataset];
  return v === undefined ? '–' : `${v.toFixed(1)}%`;
}

async function drawPR(ids: ModelId[], attack: string, image: Selection, gen: number): Promise<void> {
  const traces = [];
  for (const id of ids) {
    const pr = await lab.pr(id, attack, image.pixels, image.index);
    traces.push({ x: pr.map((_, i) => i + 1), y: pr, name: TITLES[id], mode: 'lines+markers', line: { color: COLOURS[id] } });
  }
  if (gen !== generation) return;
  const el = $('pr');
  el.dataset.traces = String(traces.length);
  if (typeof Plotly === 'undefined') return;
  await Plotly.react(el, traces, {
    title: { text: `PR per block: cos(class token of x, of x + δ), δ = ${attack === 'None' ? 'Gaussian noise σ=0.1' : `the ${attack} trigger`}`, font: { size: 13 } },
    xaxis: { title: 'block', dtick: 1 },
    yaxis: { title: 'PR', range: [-0.1, 1.05] },
    margin: { t: 40, r: 10, b: 40, l: 50 },
    height: 300,
    legend: { orientation: 'h', y: -0.25 },
  }, { displayModeBar: false, responsive: true });
}

async function defendNow(): Promise<void> {
  if (state.attack === 'None') throw new Error('Pick an attack first: "Defend now" tunes prompts on that attack\'s backdoored model.');
  const method = $<HTMLSelectElement>('method').value as 'VPT' | 'RVPT';
  const epochs = Number($<HTMLInputElement>('epochs').value);
  const attack = state.attack;
  state.busy = true;
  $<HTMLButtonElement>('defend').disabled = true;
  let stop = false;
  const stopButton = $<HTMLButtonElement>('stop');
  stopButton.hidden = false;
  stopButton.onclick = () => (stop = true);
  const bar = $<HTMLProgressElement>('progress');
  const loss: { x: number[]; y: number[] } = { x: [], y: [] };
  const asr: { x: number[]; y: number[] } = { x: [], y: [] };
  const ca: { x: number[]; y: number[] } = { x: [], y: [] };
  let lastDraw = 0;
  let revision = 0;
  // Plotly redraws only what it sees change: the arrays grow in place, so each draw bumps datarevision.
  const plot = () =>
    typeof Plotly !== 'undefined' &&
    Plotly.react($('defend-plot'), [
      { ...loss, name: 'loss', mode: 'lines', line: { color: '#555' } },
      { ...asr, name: 'ASR % (held-out)', yaxis: 'y2', mode: 'lines+markers', line: { color: '#d62728' } },
      { ...ca, name: 'CA % (held-out)', yaxis: 'y2', mode: 'lines+markers', line: { color: '#2ca02c' } },
    ], {
      datarevision: ++revision, xaxis: { title: 'step' }, yaxis: { title: 'loss' }, yaxis2: { title: '%', overlaying: 'y', side: 'right', range: [0, 100], tickmode: 'linear', tick0: 0, dtick: 20, showgrid: false },
      margin: { t: 10, r: 50, b: 40, l: 50 }, height: 260, legend: { orientation: 'h', y: -0.3 },
    }, { displayModeBar: false, responsive: true });
  const t0 = performance.now();
  try {
    const y = await lab.defend(attack, method, epochs, (p: DefendProgress) => {
      bar.max = p.steps;
      bar.value = p.step;
      if (!Number.isNaN(p.loss)) {
        loss.x.push(p.step);
        loss.y.push(p.loss);
      }
      if (p.eval) {
        asr.x.push(p.eval.step);
        asr.y.push(p.eval.asr);
        ca.x.push(p.eval.step);
        ca.y.push(p.eval.ca);
      }
      $('defend-status').textContent = `${method} on ${attack}: step ${p.step}/${p.steps}, ${p.seconds.toFixed(1)} s${Number.isNaN(p.loss) ? '' : `, loss ${p.loss.toFixed(3)}`}${asr.y.length ? `, held-out ASR ${asr.y[asr.y.length - 1].toFixed(1)}%, CA ${ca.y[ca.y.length - 1].toFixed(1)}%` : ''}`;
      if (p.eval || performance.now() - lastDraw > 500) {
        lastDraw = performance.now();
        plot();
      }
    }, { shouldStop: () => stop });
    plot();
    timings.defendSeconds = (performance.now() - t0) / 1000;
    timings.defendSteps = y.steps;
    const first = y.history.points[0];
    const last = y.history.points[y.history.points.length - 1];
    const planned = lab.defendSteps(method, epochs);
    $('defend-status').textContent = `${method} on ${attack}: ${y.steps < planned ? `stopped after ${y.steps} of ${planned}` : y.steps} steps in ${timings.defendSeconds.toFixed(1)} s. Held-out (${lab.set('heldout').n} images): ASR ${first.asr.toFixed(1)}% → ${last.asr.toFixed(1)}%, CA ${first.ca.toFixed(1)}% → ${last.ca.toFixed(1)}%. Added as "+ your prompts" above.`;
    await refresh();
  } finally {
    state.busy = false;
    $<HTMLButtonElement>('defend').disabled = false;
    stopButton.hidden = true;
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const params = new URLSearchParams(location.search);
  backend = await chooseBackend(params.get('backend'), './tfjs/');
  $('backend').textContent = backend.name === 'webgl' ? 'WebGL' : 'WebAssembly';
  if (backend.note) {
    $('backend-note').textContent = backend.note;
    $('backend-note').hidden = false;
  }
  lab = await Lab.open('./assets/');
  (window as unknown as { rvptLab: Lab }).rvptLab = lab;
  const attackSel = $<HTMLSelectElement>('attack');
  attackSel.innerHTML = ATTACKS.map((a) => `<option${a === state.attack ? ' selected' : ''}>${a}</option>`).join('');
  attackSel.onchange = () => {
    state.attack = attackSel.value;
    clearError();
    refresh().catch(showError);
  };
  $<HTMLSelectElement>('view').onchange = () => {
    state.view = $<HTMLSelectElement>('view').value as 'triggered' | 'clean';
    refresh().catch(showError);
  };
  $<HTMLSelectElement>('dataset').onchange = () => {
    buildGallery();
    select($<HTMLSelectElement>('dataset').value === 'emoji' ? 'emoji' : 'gallery', 0).catch(showError);
  };
  $<HTMLInputElement>('upload').onchange = () => {
    const f = $<HTMLInputElement>('upload').files?.[0];
    if (f) onUpload(f).catch(showError);
  };
  const epochs = $<HTMLInputElement>('epochs');
  const method = $<HTMLSelectElement>('method');
  const stepsNote = () => ($('steps').textContent = `= ${lab.defendSteps(method.value as 'VPT' | 'RVPT', Number(epochs.value))} steps on ${lab.set('shots').n} shots (${lab.set('shots').n / lab.manifest.datasets[lab.set('shots').dataset].classNames.length} per class)`);
  epochs.oninput = stepsNote;
  method.onchange = stepsNote;
  stepsNote();
  $('defend').onclick = () => {
    clearError();
    defendNow().catch(showError);
  };
  buildGallery();
  await select('gallery', 0);
  timings.readyMs = performance.now() - t0;
  document.body.dataset.ready = '1';
  $('status').textContent = `ready in ${(timings.readyMs / 1000).toFixed(1)} s`;
}

window.addEventListener('unhandledrejection', (e) => showError(e.reason));
main().catch((e) => {
  showError(e);
  document.body.dataset.ready = 'error';
});
