/**
 * Progress for long loops: a cli-progress bar on a terminal; elsewhere (notebooks, CI logs) one plain line
 * every few seconds, so a captured log stays readable.
 */
import * as cliProgress from 'cli-progress';

/** Where progress goes when not on a terminal; notebooks install a live-updating display (viz/notebook.ts). */
export type ProgressSink = (label: string, value: number, total: number, text: string) => void;
let sink: ProgressSink | null = null;

export function setProgressSink(s: ProgressSink | null): void {
  sink = s;
}

export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private value = 0;
  private lastLine = 0;
  private readonly t0 = Date.now();

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly opts: { quiet?: boolean; intervalMs?: number } = {},
  ) {
    if (opts.quiet || process.env.RVPT_QUIET) return;
    if (process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar(
        { format: `${label} [{bar}] {percentage}% {value}/{total} | eta {eta_formatted} | {info}`, stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, { info: '' });
    }
  }

  tick(n = 1, info = ''): void {
    this.value += n;
    if (this.opts.quiet || process.env.RVPT_QUIET) return;
    if (this.bar) {
      this.bar.update(this.value, { info });
      return;
    }
    const now = Date.now();
    if (sink) {
      if (now - this.lastLine >= 500 || this.value >= this.total) {
        this.lastLine = now;
        sink(this.label, this.value, this.total, this.status(now, info));
      }
      return;
    }
    if (now - this.lastLine >= (this.opts.intervalMs ?? 5000) || this.value >= this.total) {
      this.lastLine = now;
      process.stderr.write(this.status(now, info) + '\n');
    }
  }

  private status(now: number, info: string): string {
    const el = (now - this.t0) / 1000;
    const eta = this.value > 0 ? (el * (this.total - this.value)) / this.value : 0;
    return `${this.label}: ${this.value}/${this.total} (${((100 * this.value) / this.total).toFixed(0)}%) ${el.toFixed(0)}s elapsed, ~${eta.toFixed(0)}s left ${info}`;
  }

  done(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
