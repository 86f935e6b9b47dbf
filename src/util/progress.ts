// Progress of long work on stderr, with rate and ETA. On a terminal (or with RABIT_PROGRESS=1) a bar redrawn
// in place, once the work has taken more than a second; elsewhere (a log file, a pipe, CI) one line every
// 30 seconds once the work has taken that long, and a last line when it ends, so that a training run left
// in the background says how far it is while quick runs and scripts' stderr stay clean. RABIT_PROGRESS=0
// turns both off.

import { env, stderrIsTerminal, writeStderr } from "./process.ts";

/** How progress is shown: a bar redrawn in place, a line every `LINE_EVERY_MS`, or nothing. */
export type ProgressMode = "bar" | "lines" | "off";

/** Milliseconds between the lines of the "lines" mode (and before the first). */
export const LINE_EVERY_MS = 30_000;

function defaultMode(): ProgressMode {
  const setting = env("RABIT_PROGRESS");
  if (setting === "0") return "off";
  return setting === "1" || stderrIsTerminal() ? "bar" : "lines";
}

/**
 * A duration as the progress lines show it: "42s", "3m07s", "1h05m" ("?" when not finite).
 *
 * @example
 * ```ts
 * import { formatSeconds } from "./progress.ts";
 * formatSeconds(187); // "3m07s"
 * ```
 */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

/** Where a {@link Progress} writes and what time it reads (tests replace both). */
export interface ProgressIo {
  write: (text: string) => void;
  now: () => number;
}

const STDERR: ProgressIo = { write: writeStderr, now: () => performance.now() };

/** Reports progress of `total` units of work named `label`, in units called `unit`. */
export class Progress {
  readonly #label: string;
  readonly #unit: string;
  readonly #total: number;
  readonly #mode: ProgressMode;
  readonly #io: ProgressIo;
  readonly #start: number;
  #lastDraw = 0;
  #drawn = false;
  done = 0;

  /** `mode`: default by where stderr goes (and RABIT_PROGRESS). */
  constructor(label: string, total: number, unit = "it", mode = defaultMode(), io: ProgressIo = STDERR) {
    this.#label = label;
    this.#total = total;
    this.#unit = unit;
    this.#mode = mode;
    this.#io = io;
    this.#start = io.now();
  }

  /** Adds `n` finished units; redraws the bar at most ten times a second, or writes a line every 30 s. */
  tick(n = 1, note = ""): void {
    this.done += n;
    if (this.#mode === "off") return;
    const now = this.#io.now();
    const suffix = note ? " " + note : "";
    if (this.#mode === "lines") {
      if (now - this.#start < LINE_EVERY_MS || now - this.#lastDraw < LINE_EVERY_MS) return;
      this.#lastDraw = now;
      this.#io.write(`${this.line(now)}${suffix}\n`);
      this.#drawn = true;
      return;
    }
    if (now - this.#start < 1000 || (now - this.#lastDraw < 100 && this.done < this.#total)) return;
    this.#lastDraw = now;
    this.#io.write(`\r${this.line(now)}${suffix}\x1b[K`);
    this.#drawn = true;
  }

  /** The bar as text: label, bar, count, rate and ETA. */
  line(now = this.#io.now()): string {
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

  /** Clears the bar line; in the "lines" mode, writes the last line if any was written. */
  finish(): void {
    if (!this.#drawn) return;
    const now = this.#io.now();
    if (this.#mode === "lines") {
      this.#io.write(`${this.line(now)} done in ${formatSeconds((now - this.#start) / 1000)}\n`);
    } else this.#io.write("\r\x1b[K");
  }
}
