// Calibration statistics for function-aware initialization (METHOD.md §3.1): run the full-precision
// model forward and backward on calibration windows and collect, for every block linear,
//   s_in[c]  = RMS over tokens of its input activation channel c,
//   s_out[r] = RMS over tokens of the loss gradient w.r.t. its output channel r.

import { backwardChunk } from "../model/backward.ts";
import { crossEntropySoftmaxBackward } from "../model/ops_backward.ts";
import { createKvCache, forwardChunk } from "../model/forward.ts";
import type { LlamaModel } from "../model/model.ts";
import { linearNames } from "../model/params.ts";
import { BOS } from "../io/tokenizer.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

/** Channel statistics of one linear layer. */
export interface ChannelStats {
  /** (in) RMS of each input channel. */
  sIn: Float32Array;
  /** (out) RMS of the loss gradient of each output channel. */
  sOut: Float32Array;
}

/** Options of {@link calibrate} (the windows come ready-made: {@link calibrationWindows} cuts them). */
export interface CalibrateOptions {
  /** Called after each window with (done, total). */
  onWindow?: (done: number, total: number) => void;
}

/**
 * Calibration windows: BOS then the text's tokens, taken from the END of the token stream: up to
 * `tokens / window` windows of `window` tokens, each with its first token replaced by BOS.
 *
 * @example
 * ```ts
 * import { calibrationWindows } from "./calibrate.ts";
 * const ids = Array.from({ length: 10 }, (_, i) => 100 + i);
 * calibrationWindows(ids, 8, 4); // [[1, 103, 104, 105], [1, 107, 108, 109]]
 * ```
 */
export function calibrationWindows(ids: number[], tokens: number, window: number): number[][] {
  const count = Math.max(1, Math.floor(tokens / window));
  if (ids.length < window) {
    throw new RangeError(
      `Calibration text has ${ids.length} tokens, fewer than one window of ${window}: give a longer --calib-text`,
    );
  }
  const available = Math.floor(ids.length / window);
  const n = Math.min(count, available);
  // The end of the text, so that evaluating on the beginning of the same file is as disjoint as it can be.
  const start = ids.length - n * window;
  const out: number[][] = [];
  for (let w = 0; w < n; w++) {
    const win = ids.slice(start + w * window, start + (w + 1) * window);
    win[0] = BOS; // each window starts like a document
    out.push(win);
  }
  return out;
}

const CALIBRATE_OPTION_KEYS = optionKeys<CalibrateOptions>({ onWindow: true });

/**
 * Collects s_in and s_out for every block linear of a full-precision model over calibration windows
 * (next-token cross-entropy; the loss scale does not matter, only relative channel importance does).
 *
 * @example
 * ```ts
 * import { calibrate, calibrationWindows } from "./calibrate.ts";
 * import { openModel } from "../io/load_model.ts";
 * const { model, tokenizer } = await openModel("../shared/data/stories260K.bin", { requireTokenizer: true });
 * const text = (await Deno.readTextFile("../shared/data/tinystories_dev.txt")).slice(0, 2000);
 * const stats = calibrate(model, calibrationWindows(tokenizer!.encode(text), 64, 32));
 * stats.size; // 35: every block linear
 * stats.get("layers.0.w1")!.sIn.length; // 64 input channels
 * ```
 */
export function calibrate(
  model: LlamaModel,
  windows: number[][],
  options: CalibrateOptions = {},
): Map<string, ChannelStats> {
  checkOptionKeys("calibrate", options, CALIBRATE_OPTION_KEYS);
  const sums = new Map<string, { x2: Float64Array; g2: Float64Array }>();
  for (const name of linearNames(model.config)) {
    const [out, inF] = model.params.shape(name);
    sums.set(name, { x2: new Float64Array(inF), g2: new Float64Array(out) });
  }
  const V = model.config.vocabSize;
  let rows = 0;
  windows.forEach((win, w) => {
    const T = win.length - 1;
    const cache = createKvCache(model, win.length);
    const { logits, activations } = forwardChunk(model, win.slice(0, T), 0, cache, { keepActivations: true });
    const { dLogits } = crossEntropySoftmaxBackward(logits, win.slice(1), V);
    backwardChunk(model, activations!, dLogits, {
      paramGrads: false,
      onLinear: (name, x, dY) => {
        const s = sums.get(name);
        if (!s) return;
        const inF = s.x2.length, out = s.g2.length;
        for (let t = 0; t < T; t++) {
          for (let c = 0; c < inF; c++) s.x2[c] += x[t * inF + c] ** 2;
          for (let r = 0; r < out; r++) s.g2[r] += dY[t * out + r] ** 2;
        }
      },
    });
    rows += T;
    options.onWindow?.(w + 1, windows.length);
  });
  const stats = new Map<string, ChannelStats>();
  for (const [name, s] of sums) {
    stats.set(name, {
      sIn: Float32Array.from(s.x2, (v) => Math.sqrt(v / rows)),
      sOut: Float32Array.from(s.g2, (v) => Math.sqrt(v / rows)),
    });
  }
  return stats;
}
