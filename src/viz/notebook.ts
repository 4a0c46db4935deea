/**
 * Notebook glue for the tslab kernel: figures as static PNG (so a committed notebook shows them on GitHub and
 * nbviewer) plus live plotly HTML in an interactive session, tables as markdown, progress as one display entry that
 * updates in place. Loaded lazily so the library runs without tslab.
 */
import { Figure, figureDiv, plotlyScript } from './plotly';
import { figurePng } from './render';
import { setProgressSink } from '../util/progress';

interface TslabDisplay {
  html(s: string): void;
  png(b: Uint8Array): void;
  markdown(s: string): void;
  text(s: string): void;
}
interface Tslab {
  display: TslabDisplay;
  newDisplay(): TslabDisplay;
}

let tslab: Tslab | null = null;
let plotlySent = false;

function kernel(): Tslab {
  if (!tslab) {
    try {
      tslab = require('tslab') as Tslab;
    } catch {
      throw new Error('The notebook helpers need the tslab kernel (npm install; `make kernel` registers it with Jupyter).');
    }
  }
  return tslab;
}

/**
 * A notebook executed headless (scripts/run-notebooks.sh sets RVPT_BATCH=1): its outputs are committed and compared
 * with a fresh run, so it shows no progress lines (their timings differ run to run) and no plotly bundle (3.5 MB).
 */
export function batchMode(): boolean {
  return process.env.RVPT_BATCH === '1';
}

/** Call once at the top of a notebook: progress bars become one live line per loop (none in batch mode). */
export function notebookSetup(): void {
  const tl = kernel();
  if (batchMode()) {
    setProgressSink(() => undefined);
    return;
  }
  const displays = new Map<string, TslabDisplay>();
  setProgressSink((label, value, total, text) => {
    let d = displays.get(label);
    if (!d || value === 0) {
      d = tl.newDisplay();
      displays.set(label, d);
    }
    d.text(text);
    if (value >= total) displays.delete(label);
  });
}

/**
 * A figure as a PNG (rendered by headless Chromium, 900 px wide): what GitHub and nbviewer show. In an interactive
 * session the live plotly figure follows it (zoom, hover); batch runs leave it out.
 */
export async function showFigure(fig: Figure, height = 420): Promise<void> {
  const tl = kernel();
  tl.display.png(await figurePng(fig, 900, height));
  if (batchMode()) return;
  // The plotly bundle is sent with the first figure of a kernel session only.
  tl.display.html((plotlySent ? '' : plotlyScript()) + figureDiv(fig, height));
  plotlySent = true;
}

export function showMarkdown(md: string): void {
  kernel().display.markdown(md);
}

/** A markdown table from rows of cells. */
export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const fmt = (c: string | number) => (typeof c === 'number' ? c.toFixed(2) : c);
  return [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(fmt).join(' | ')} |`)].join('\n');
}
