/**
 * Notebook glue for the tslab kernel: figures as live plotly HTML, tables as markdown, progress as one display
 * entry that updates in place. Loaded lazily so the library runs without tslab.
 */
import { Figure, figureDiv, plotlyScript } from './plotly';
import { setProgressSink } from '../util/progress';

interface TslabDisplay {
  html(s: string): void;
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

/** Call once at the top of a notebook: progress bars become one live line per loop. */
export function notebookSetup(): void {
  const tl = kernel();
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

export function showFigure(fig: Figure, height = 420): void {
  const tl = kernel();
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
