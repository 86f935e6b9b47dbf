// The inter-path diagnostics of METHOD.md §6 over a text: run the packed (student) model's reference
// forward, and at every binarized layer compare its paths' outputs with the full-precision teacher layer
// applied to the same input — the input that reaches the layer in the student, not the teacher's own.
//
// Dimension legend: T tokens in a window, L binarized layers.

import type { LlamaConfig } from "../model/config.ts";
import { createKvCache, forwardChunk } from "../model/forward.ts";
import type { LinearLayer } from "../model/linear.ts";
import { linearLayer, linearShape, type LlamaModel } from "../model/model.ts";
import { linearNames } from "../model/params.ts";
import type { PackedLinear, PackedModel } from "../quant/residual_binary.ts";
import { type LayerPathDiagnostics, LayerPathStats } from "./path_stats.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

export type { LayerPathDiagnostics } from "./path_stats.ts";

/** Default cap on the tokens the diagnostics run over. */
export const DIAGNOSTICS_TOKENS = 4096;

/** Options of {@link pathDiagnostics}. */
export interface PathDiagnosticsOptions {
  /** Window length in tokens (each window starts from an empty cache); defaults to the model's seqLen. */
  context?: number;
  /** Use at most this many tokens from the start of `ids` (default {@link DIAGNOSTICS_TOKENS}). */
  maxTokens?: number;
  /** Called after each window with (windows done, windows total). */
  onWindow?: (done: number, total: number) => void;
}

const PATH_DIAGNOSTICS_OPTION_KEYS = optionKeys<PathDiagnosticsOptions>({
  context: true,
  maxTokens: true,
  onWindow: true,
});

/** The student and its full-precision teacher (same config). */
export interface DiagnosticsModels {
  /** The packed model whose paths are examined. */
  student: PackedModel;
  /** The original float model: its linears give y_t. */
  teacher: LlamaModel;
}

/** What {@link pathDiagnostics} measured. Means skip layers whose value is null (k = 1). */
export interface PathDiagnostics {
  /** Per binarized layer, in the model's order (layers.0.wq, …). */
  layers: LayerPathDiagnostics[];
  /** Mean of corr(y_1, y_2) over layers. */
  meanPathCorrelation: number | null;
  /** Mean of corr(y_t − y_1, y_2) over layers. */
  meanResidualAlignment: number | null;
  /** Fraction of layers with residual alignment > 0.4 and path correlation < 0 (co-adapted paths). */
  coAdaptedFraction: number | null;
  /** Mean over layers of the share of weights with B_2 = B_1 (see {@link LayerPathDiagnostics.outerShare}). */
  meanOuterShare: number | null;
  /** Mean over layers of path 2's step against path 1's ({@link LayerPathDiagnostics.scaleRatio}). */
  meanScaleRatio: number | null;
  /** Mean over layers of the paths' weight-level correlation ({@link LayerPathDiagnostics.weightCorrelation}). */
  meanWeightCorrelation: number | null;
  /** Tokens run: windows × context. */
  tokens: number;
  /** Windows run, each from an empty cache. */
  windows: number;
  /** Tokens per window. */
  context: number;
  /** Wall time of the forward passes and statistics. */
  seconds: number;
}

/** "field: a vs b" for every config field where `a` and `b` differ (empty when they agree). */
export function configDifferences(a: LlamaConfig, b: LlamaConfig): string[] {
  const keys = Object.keys(a) as (keyof LlamaConfig)[];
  return keys.filter((key) => a[key] !== b[key]).map((key) => `${key} ${a[key]} vs ${b[key]}`);
}

/** A layer that records path statistics on its input, then computes exactly what the packed layer does. */
class RecordingLinear implements LinearLayer {
  readonly out: number;
  readonly in: number;
  constructor(readonly inner: PackedLinear, readonly stats: LayerPathStats) {
    this.out = inner.out;
    this.in = inner.in;
  }
  forward(x: Float32Array, T: number): Float32Array {
    this.stats.add(x, T);
    return this.inner.forward(x, T);
  }
  backward(): void {
    throw new TypeError("RecordingLinear: diagnostics run the forward only, found a backward call");
  }
}

function mean(values: (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length ? known.reduce((a, v) => a + v, 0) / known.length : null;
}

/** Consecutive windows from the start of `ids`, within `maxTokens`; one shorter window for a short text. */
function diagnosticWindows(ids: number[], context: number, maxTokens: number): number[][] {
  const usable = Math.min(ids.length, maxTokens);
  const len = Math.min(context, usable);
  const out: number[][] = [];
  for (let s = 0; s + len <= usable; s += len) out.push(ids.slice(s, s + len));
  return out;
}

/**
 * Path correlation corr(y_1, y_2), residual alignment corr(y_t − y_1, y_2) and, for k ≥ 3, every later
 * path's alignment corr(y_t − Σ_{j<i} y_j, y_i), per binarized layer of `student` over the tokens `ids`
 * (BOS first, as `perplexityTokens` gives them), cut into windows of `context` tokens.
 * Each correlation pools all T×out output elements of all windows (METHOD.md §6).
 *
 * @example
 * ```ts
 * import { pathDiagnostics } from "./diagnostics.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * import { quantizeModel } from "../quant/quantize_model.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const teacher = { config, params, quantized: new Map() };
 * const student = quantizeModel(teacher, { method: "ptq", paths: 2, precondition: 0, svidRounds: 0 }).model;
 * const ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338];
 * const d = pathDiagnostics({ student, teacher }, ids, { context: 16 });
 * d.layers.length; // 35
 * d.layers[0].pathCorrelation; // a number in [-1, 1]
 * ```
 */
export function pathDiagnostics(
  models: DiagnosticsModels,
  ids: number[],
  options: PathDiagnosticsOptions = {},
): PathDiagnostics {
  checkOptionKeys("pathDiagnostics", options, PATH_DIAGNOSTICS_OPTION_KEYS);
  const { student, teacher } = models;
  const c = student.config;
  const diff = configDifferences(c, teacher.config);
  if (diff.length) {
    throw new RangeError(
      `pathDiagnostics: expected a teacher with the student's config, found (student vs teacher) ${
        diff.join(", ")
      }`,
    );
  }
  if (student.quantized.size === 0) {
    throw new TypeError("pathDiagnostics: expected a packed student with binarized layers, found none");
  }
  const context = options.context ?? c.seqLen;
  if (!Number.isInteger(context) || context < 1 || context > c.seqLen) {
    throw new RangeError(
      `Context must be an integer in 1..${c.seqLen} (the model's seq_len), found ${context}`,
    );
  }
  const maxTokens = options.maxTokens ?? DIAGNOSTICS_TOKENS;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new RangeError(`maxTokens must be a positive integer, found ${maxTokens}`);
  }
  const windows = diagnosticWindows(ids, context, maxTokens);
  if (windows.length === 0) throw new RangeError("pathDiagnostics: expected some tokens to run, found none");

  const stats: LayerPathStats[] = [];
  const recording = new Map<string, LinearLayer>();
  // Model order (layers.0.wq, layers.0.wk, …) whatever order the file stored them in.
  const order = linearNames(c).filter((n) => student.quantized.has(n));
  const names = [...order, ...[...student.quantized.keys()].filter((n) => !order.includes(n))];
  for (const name of names) {
    const layer = student.quantized.get(name)!;
    const [out, inF] = linearShape(teacher, name);
    if (out !== layer.out || inF !== layer.in) {
      throw new RangeError(
        `pathDiagnostics: ${name} is ${layer.out}x${layer.in} in the student, found ${out}x${inF} in the teacher`,
      );
    }
    const s = new LayerPathStats(layer, linearLayer(teacher, name), name);
    stats.push(s);
    recording.set(name, new RecordingLinear(layer, s));
  }
  // The student as forwardChunk sees it: same tensors, each packed layer wrapped in its recorder.
  const probe: LlamaModel = { config: c, params: student.params, quantized: recording };
  const start = performance.now();
  windows.forEach((win, w) => {
    forwardChunk(probe, win, 0, createKvCache(probe, win.length), { lastLogitsOnly: true });
    options.onWindow?.(w + 1, windows.length);
  });
  const layers = stats.map((s) => s.result());
  const bothKnown = layers.filter((l) => l.pathCorrelation !== null && l.residualAlignment !== null);
  return {
    layers,
    meanPathCorrelation: mean(layers.map((l) => l.pathCorrelation)),
    meanResidualAlignment: mean(layers.map((l) => l.residualAlignment)),
    coAdaptedFraction: bothKnown.length
      ? bothKnown.filter((l) => l.residualAlignment! > 0.4 && l.pathCorrelation! < 0).length /
        bothKnown.length
      : null,
    meanOuterShare: mean(layers.map((l) => l.outerShare)),
    meanScaleRatio: mean(layers.map((l) => l.scaleRatio)),
    meanWeightCorrelation: mean(layers.map((l) => l.weightCorrelation)),
    tokens: windows.length * windows[0].length,
    windows: windows.length,
    context: windows[0].length,
    seconds: (performance.now() - start) / 1000,
  };
}
