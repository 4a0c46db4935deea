/**
 * Figures are plotly specs ({data, layout}): shown live in notebooks and written as standalone HTML (and, by the
 * figures, PNG via headless Chromium). This module only builds and serialises specs.
 */
import * as fs from 'fs';
import { writeFileAtomic } from '../util/fsutil';

export interface Figure {
  data: Record<string, unknown>[];
  layout: Record<string, unknown>;
}

export function plotlyBundle(): string {
  return fs.readFileSync(require.resolve('plotly.js-dist-min'), 'utf8');
}

let divCounter = 0;

/** A <div> plus the script that draws the figure into it (expects window.Plotly). */
export function figureDiv(fig: Figure, height = 420): string {
  const id = `rvpt-fig-${Date.now().toString(36)}-${divCounter++}`;
  const layout = { height, margin: { t: 50, l: 60, r: 20, b: 50 }, ...fig.layout };
  return `<div id="${id}" style="width:100%;height:${height}px"></div>
<script>(function(){var draw=function(){window.Plotly.newPlot(${JSON.stringify(id)}, ${JSON.stringify(fig.data)}, ${JSON.stringify(layout)}, {responsive:true});};
if (window.Plotly) draw(); else (window.__rvptPlotlyQueue = window.__rvptPlotlyQueue || []).push(draw);})();</script>`;
}

/**
 * The plotly bundle as a script that defines window.Plotly even where require.js is present (classic Jupyter),
 * then draws any figures queued before it arrived.
 */
export function plotlyScript(): string {
  return `<script>(function(){var define=undefined,module=undefined,exports=undefined;\n${plotlyBundle()}\n})();
(window.__rvptPlotlyQueue||[]).forEach(function(f){f();});window.__rvptPlotlyQueue=[];</script>`;
}

export function standaloneHtml(fig: Figure, title: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>${plotlyScript()}</head><body style="margin:0">${figureDiv(fig, 600)}</body></html>`;
}

export function writeFigureHtml(file: string, fig: Figure, title: string): void {
  writeFileAtomic(file, standaloneHtml(fig, title));
}

export function lineFigure(title: string, series: { name: string; x?: number[]; y: number[] }[], xTitle: string, yTitle: string): Figure {
  return {
    data: series.map((s) => ({ type: 'scatter', mode: 'lines', name: s.name, x: s.x ?? s.y.map((_, i) => i), y: s.y })),
    layout: { title: { text: title }, xaxis: { title: { text: xTitle } }, yaxis: { title: { text: yTitle } } },
  };
}

export function barFigure(title: string, labels: string[], series: { name: string; y: number[] }[], yTitle: string): Figure {
  return {
    data: series.map((s) => ({ type: 'bar', name: s.name, x: labels, y: s.y, text: s.y.map((v) => v.toFixed(1)), textposition: 'auto' })),
    layout: { title: { text: title }, barmode: 'group', yaxis: { title: { text: yTitle } } },
  };
}

/** Moving average, for readable loss curves. */
export function smooth(xs: number[], window: number): number[] {
  const out: number[] = [];
  let acc = 0;
  for (let i = 0; i < xs.length; i++) {
    acc += xs[i];
    if (i >= window) acc -= xs[i - window];
    out.push(acc / Math.min(i + 1, window));
  }
  return out;
}
