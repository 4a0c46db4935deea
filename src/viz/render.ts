/**
 * Figures to files: a standalone HTML page (interactive plotly) and a PNG rendered by real headless Chromium
 * (Debian's `chromium`, driven by playwright-core), plus a JSON sidecar with the figure's data and provenance.
 * Chromium is found at $CHROMIUM_PATH, /usr/bin/chromium or /usr/bin/chromium-browser; `scripts/setup.sh` installs it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Figure, standaloneHtml } from './plotly';
import { writeFileAtomic, writeJsonAtomic } from '../util/fsutil';
import { gitCommit, provenance } from '../util/provenance';

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean) as string[];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(`No Chromium found (looked at ${candidates.join(', ')}). Install it (Debian: apt-get install chromium, which scripts/setup.sh does) or set CHROMIUM_PATH.`);
  }
  return found;
}

type Browser = Awaited<ReturnType<(typeof import('playwright-core'))['chromium']['launch']>>;
let shared: Promise<Browser> | null = null;

/**
 * One figure to PNG bytes, in a browser kept open for the process (a notebook draws several figures; launching
 * Chromium for each would cost a second apiece). playwright closes it when the process exits.
 */
export async function figurePng(fig: Figure, width: number, height: number): Promise<Uint8Array> {
  const { chromium } = await import('playwright-core');
  shared ??= chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_FLAGS });
  return screenshotFigure(await shared, fig, width, height, 'figure');
}

/** One figure drawn by plotly in a fresh page of `browser`, as PNG bytes of exactly width x height. */
async function screenshotFigure(browser: Browser, fig: Figure, width: number, height: number, title: string): Promise<Uint8Array> {
  const page = await browser.newPage({ viewport: { width, height }, deviceScaleFactor: 1 });
  try {
    await page.setContent(standaloneHtml({ data: fig.data, layout: { ...fig.layout, width, height } }, title), { waitUntil: 'load' });
    // plotly draws asynchronously; its main SVG (and any image traces) exist once it has finished.
    await page.waitForFunction(() => document.querySelectorAll('.main-svg').length > 0 && (window as unknown as { Plotly?: unknown }).Plotly !== undefined, undefined, { timeout: 30000 });
    await page.waitForTimeout(200);
    return new Uint8Array(await page.screenshot({ type: 'png', clip: { x: 0, y: 0, width, height } }));
  } finally {
    await page.close();
  }
}

/** Render figures to PNG in one browser session: [figure, file, width, height][]. */
export async function renderPngs(jobs: { fig: Figure; file: string; width: number; height: number }[]): Promise<void> {
  // Loaded lazily: only figure writing needs a browser.
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_FLAGS });
  try {
    for (const j of jobs) writeFileAtomic(j.file, await screenshotFigure(browser, j.fig, j.width, j.height, path.basename(j.file)));
  } finally {
    await browser.close();
  }
}

export interface SavedFigure {
  html: string;
  png: string;
  json: string;
}

/**
 * Write figure NAME into `dir`: NAME.html (standalone, interactive), NAME.png (Chromium) and NAME.json (the spec,
 * with provenance: commit, profile, date, config, seconds). Each file is written atomically.
 */
export async function saveFigure(
  dir: string,
  name: string,
  fig: Figure,
  meta: { title: string; profile: string; config?: unknown; seconds?: number; notes?: string; claims?: unknown },
  size = { width: 1100, height: 600 },
): Promise<SavedFigure> {
  fs.mkdirSync(dir, { recursive: true });
  const out = { html: path.join(dir, `${name}.html`), png: path.join(dir, `${name}.png`), json: path.join(dir, `${name}.json`) };
  writeFileAtomic(out.html, standaloneHtml(fig, meta.title));
  await renderPngs([{ fig, file: out.png, ...size }]);
  const p = provenance();
  writeJsonAtomic(out.json, {
    figure: name,
    title: meta.title,
    notes: meta.notes,
    claims: meta.claims,
    spec: fig,
    provenance: { commit: gitCommit(), profile: meta.profile, date: p.date, backend: p.backend, versions: p.versions, config: meta.config ?? null, seconds: meta.seconds ?? null },
  });
  return out;
}
