// One entry point that turns a dense weight into a residual-binary layer by method name (METHOD.md §5):
// "ptq" (function-aware init, §3), "rtn2" (plain 2-bit round-to-nearest) and "dbllm" (DB-LLM's start).

import { checkMatrix, type LayerShape, relativeError } from "./matrix.ts";
import type { ResidualBinaryLinear } from "./residual_binary.ts";
import { residualInit, type ResidualInitDiagnostics, type ResidualInitOptions } from "./residual_init.ts";
import { dbllmInit, type DbllmInitOptions, rtn2 } from "./rtn.ts";
import { roundScalesF16 } from "./scales.ts";

/** Options every method takes. */
export interface CommonQuantizeOptions {
  /**
   * Round g and h through fp16 before returning (default true), so the layer and its reported error are
   * what a saved .rabit file holds.
   */
  fp16Scales?: boolean;
}

/** `ptq`: {@linkcode residualInit} (channel statistics, k, rounds T, exponents). */
export interface PtqOptions extends ResidualInitOptions, CommonQuantizeOptions {
  /** Method name. */
  method: "ptq";
}

/** `rtn2`: plain symmetric per-row min-max 2-bit round-to-nearest (always k = 2). */
export interface Rtn2Options extends CommonQuantizeOptions {
  /** Method name. */
  method: "rtn2";
}

/** `dbllm`: the DB-LLM dual-binarization start only (training is elsewhere; always k = 2). */
export interface DbllmOptions extends DbllmInitOptions, CommonQuantizeOptions {
  /** Method name. */
  method: "dbllm";
}

/** Options of {@linkcode quantizeLayer}, discriminated by `method`. */
export type QuantizeOptions = PtqOptions | Rtn2Options | DbllmOptions;

/** Names accepted by {@linkcode quantizeLayer}: the `method` of each of its option types. */
export type QuantizeMethod = "ptq" | "rtn2" | "dbllm";

/** What {@linkcode quantizeLayer} reports about the layer it returns. */
export interface QuantizeStats {
  /** The method used. */
  method: QuantizeMethod;
  /** Number of paths of the layer. */
  k: number;
  /** ||W − What|| / ||W|| of the returned layer (after fp16 rounding when on). */
  relError: number;
  /** Storage cost: k sign bits per weight plus k·(out + in) fp16 scales spread over out·in weights. */
  bitsPerWeight: number;
  /** `ptq` only: the diagnostics of residualInit (its relError is before fp16 rounding). */
  init?: ResidualInitDiagnostics;
  /** `dbllm` only: (out) per-row step Δ (DB-LLM's α1 = 2Δ, α2 = −Δ). */
  step?: Float32Array;
}

/**
 * Quantizes one (out, in) weight with the named method and reports its error.
 *
 * @example
 * ```ts
 * import { quantizeLayer } from "./quantize.ts";
 * import { Rng } from "../util/rng.ts";
 * const w = new Rng(7).normals(16 * 32); // (16, 32)
 * const { layer, stats } = quantizeLayer(w, { out: 16, in: 32 }, { method: "ptq", k: 2 });
 * console.log(layer.k, stats.relError, stats.bitsPerWeight);
 * ```
 */
export function quantizeLayer(
  w: Float32Array,
  shape: LayerShape,
  options: QuantizeOptions,
): { layer: ResidualBinaryLinear; stats: QuantizeStats } {
  checkMatrix(w, shape, "quantizeLayer: W");
  const method = options?.method;
  let layer: ResidualBinaryLinear;
  let init: ResidualInitDiagnostics | undefined;
  let step: Float32Array | undefined;
  switch (method) {
    case "ptq": {
      const res = residualInit(w, shape, options as PtqOptions);
      layer = res.layer;
      init = res.diagnostics;
      break;
    }
    case "rtn2":
      layer = rtn2(w, shape);
      break;
    case "dbllm": {
      const res = dbllmInit(w, shape, options as DbllmOptions);
      layer = res.layer;
      step = res.step;
      break;
    }
    default:
      throw new TypeError(
        `quantizeLayer: expected method "ptq", "rtn2" or "dbllm", found ${JSON.stringify(method)}`,
      );
  }
  if (options.fp16Scales ?? true) layer = roundScalesF16(layer);
  const stats: QuantizeStats = {
    method,
    k: layer.k,
    relError: relativeError(w, layer),
    bitsPerWeight: layer.k + (16 * layer.k * (shape.out + shape.in)) / (shape.out * shape.in),
  };
  if (init) stats.init = init;
  if (step) stats.step = step;
  return { layer, stats };
}
