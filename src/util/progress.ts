// A progress bar on stderr with rate and ETA. Drawn only on a terminal (or with RABIT_PROGRESS=1), and
// only once the work has taken more than a second, so quick runs and logs stay clean.

import { env, stderrIsTerminal, writeStderr } from "./process.ts";

function isTerminal(): boolean {
  return env("RABIT_PROGRESS") === "1" || stderrIsTerminal();
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

/** Reports progress of `total` units of work named `label`, in units called `unit`. */
export class Progress {
  readonly #label: string;
  readonly #unit: string;
  readonly #total: number;
  readonly #enabled: boolean;
  readonly #start = performance.now();
  #lastDraw = 0;
  #drawn = false;
  done = 0;

  constructor(label: string, total: number, unit = "it", enabled = isTerminal()) {
    this.#label = label;
    this.#total = total;
    this.#unit = unit;
    this.#enabled = enabled;
  }

  /** Adds `n` finished units and redraws at most ten times a second. */
  tick(n = 1, note = ""): void {
    this.done += n;
    if (!this.#enabled) return;
    const now = performance.now();
    if (now - this.#start < 1000 || (now - this.#lastDraw < 100 && this.done < this.#total)) return;
    this.#lastDraw = now;
    writeStderr(`\r${this.line(now)}${note ? " " + note : ""}\x1b[K`);
    this.#drawn = true;
  }

  /** The bar as text: label, bar, count, rate and ETA. */
  line(now = performance.now()): string {
    const elapsed = (now - this.#start) / 1000;
    const frac = this.#total > 0 ? Math.min(1, this.done / this.#total) : 1;
    const width = 24;
    const fill = Math.round(frac * width);
    const rate = this.done / Math.max(elapsed, 1e-9);
    const eta = (this.#total - this.done) / rate;
    const rateText = rate >= 100 ? rate.toFixed(0) : rate.toFixed(2);
    return `${this.#label} [${"#".repeat(fill)}${"-".repeat(width - fill)}] ${this.done}/${this.#total} ` +
      `${rateText} ${this.#unit}/s ETA ${formatSeconds(eta)}`;
  }

  /** Clears the bar line. */
  finish(): void {
    if (this.#drawn) writeStderr("\r\x1b[K");
  }
}
