// 2-bit uniform baselines written as two-path residual-binary layers, so the same kernels and file format
// run them: `rtn2` (plain round-to-nearest) and the `dbllm` dual-binarization start (METHOD.md §5).
//
// Dimension legend: out = rows of W, in = columns. Scales are per row (g); h ≡ 1.
//
// The grid is symmetric: levels Δ·{−1.5, −0.5, +0.5, +1.5} per row (step Δ). Any such level is
//   Δ·B_1 + (Δ/2)·B_2,   B_1 = sign(w),   B_2 = sign(w − Δ·B_1)   (sign(0) = +1),
// i.e. the coupled residual forward of METHOD.md §2 with k = 2, g = (Δ, Δ/2), h = 1, and B_2 picks the nearest
// level. Thresholds are −Δ, 0, +Δ; a tie goes to the upper level.
//
// DB-LLM (arXiv 2402.11960) writes a 2-bit weight as α1·b1 + α2·b2 with b ∈ {0, 1}, α1 = 2Δ, α2 = −Δ. With
// b = (B + 1)/2 that is (α1/2)·B_1 + (α2/2)·B_2 + (α1 + α2)/2 = Δ·B_1 + (Δ/2)·(−B_2) + Δ/2.
// Our format has no per-row offset, so we drop the Δ/2 (our choice): DB-LLM's grid {−Δ, 0, Δ, 2Δ} becomes the
// symmetric grid above, and its thresholds b1 = H(w − (α1+α2)/2), b2 = H(−(w − α1·b1 − α2/2)) become exactly
// B_1 = sign(w), B_2 = −(2·b2 − 1) = sign(w − Δ·B_1). So: g_1 = α1/2 = Δ, g_2 = −α2/2 = Δ/2, B_2 = 1 − 2·b2.

import { checkMatrix, type LayerShape, packSignPlanes } from "./matrix.ts";
import type { ResidualBinaryLinear } from "./residual_binary.ts";

/**
 * The two-path layer of the symmetric 2-bit grid with per-row step Δ = `step[r]`: every weight goes to its
 * nearest level Δ·{−1.5, −0.5, 0.5, 1.5} (clamped at ±1.5Δ).
 */
function twoBitLayer(w: Float32Array, shape: LayerShape, step: Float32Array): ResidualBinaryLinear {
  const { out, in: inF } = shape;
  const n = out * inF;
  const signs = new Int8Array(2 * n); // (2, out, in)
  const g = new Float32Array(2 * out); // (2, out): Δ, Δ/2
  for (let r = 0; r < out; r++) {
    const d = step[r];
    g[r] = d;
    g[out + r] = d / 2;
    for (let c = 0; c < inF; c++) {
      const x = w[r * inF + c];
      const b1 = x >= 0 ? 1 : -1;
      signs[r * inF + c] = b1;
      signs[n + r * inF + c] = x - d * b1 >= 0 ? 1 : -1;
    }
  }
  return {
    out,
    in: inF,
    k: 2,
    planes: packSignPlanes(signs, 2, shape),
    g,
    h: new Float32Array(2 * inF).fill(1),
  };
}

/** Squared error of row r quantized on the symmetric 2-bit grid with step d. */
function rowError(w: Float32Array, base: number, inF: number, d: number): number {
  let e = 0;
  for (let c = 0; c < inF; c++) {
    const x = w[base + c];
    const b1 = x >= 0 ? 1 : -1;
    const rest = x - d * b1;
    const q = rest >= 0 ? 0.5 * d : -0.5 * d;
    e += (rest - q) * (rest - q);
  }
  return e;
}

/**
 * Plain 2-bit round-to-nearest, symmetric, per row, min-max (no search): Δ_r = max_c |W[r,c]| / 1.5, levels
 * Δ_r·{−1.5, −0.5, 0.5, 1.5}, returned as the equivalent two-path layer (g_1 = Δ, g_2 = Δ/2, h = 1).
 *
 * @example
 * ```ts
 * import { rtn2 } from "./rtn.ts";
 * import { dequantize } from "./residual_binary.ts";
 * dequantize(rtn2(new Float32Array([3, 1.2, -0.2, -2.5]), { out: 1, in: 4 })); // [3, 1, -1, -3]
 * ```
 */
export function rtn2(w: Float32Array, shape: LayerShape): ResidualBinaryLinear {
  checkMatrix(w, shape, "rtn2: W");
  const { out, in: inF } = shape;
  const step = new Float32Array(out); // (out)
  for (let r = 0; r < out; r++) {
    let m = 0;
    for (let c = 0; c < inF; c++) m = Math.max(m, Math.abs(w[r * inF + c]));
    step[r] = m / 1.5;
  }
  return twoBitLayer(w, shape, step);
}

/** Options of {@linkcode dbllmInit}. */
export interface DbllmInitOptions {
  /**
   * How the per-row step Δ is chosen. "mse" (default, our choice): search Δ = ratio · max|w_r| / 1.5 over
   * `searchSteps` ratios evenly spaced from 1 down to `minRatio`, keeping the smallest squared row error
   * (clipping outliers pays off on bell-shaped rows). "minmax": ratio 1, the layer is then exactly `rtn2`.
   */
  scale?: "mse" | "minmax";
  /** Number of ratios tried by "mse" (default 40). */
  searchSteps?: number;
  /** Smallest ratio tried by "mse" (default 0.2). */
  minRatio?: number;
}

/** The DB-LLM start: the two-path layer and the per-row step it came from. */
export interface DbllmInit {
  /** Two paths, g = (Δ, Δ/2), h = 1 (see the mapping at the top of rtn.ts). */
  layer: ResidualBinaryLinear;
  /** (out) per-row step Δ; DB-LLM's scales are α1 = 2Δ, α2 = −Δ. */
  step: Float32Array;
}

/**
 * DB-LLM-style dual-binarization initialization (METHOD.md §5 `dbllm`): a symmetric 2-bit uniform code per
 * row split into two binary planes, mapped to our ±1 format as described at the top of rtn.ts.
 *
 * @example
 * ```ts
 * import { dbllmInit } from "./rtn.ts";
 * import { Rng } from "../util/rng.ts";
 * const { layer, step } = dbllmInit(new Rng(3).normals(4 * 64), { out: 4, in: 64 });
 * console.log(layer.g[0] === step[0], layer.g[4] === step[0] / 2); // true true
 * ```
 */
export function dbllmInit(w: Float32Array, shape: LayerShape, options: DbllmInitOptions = {}): DbllmInit {
  checkMatrix(w, shape, "dbllmInit: W");
  const scale = options.scale ?? "mse";
  const steps = options.searchSteps ?? 40;
  const minRatio = options.minRatio ?? 0.2;
  if (scale !== "mse" && scale !== "minmax") {
    throw new TypeError(`dbllmInit: expected scale "mse" or "minmax", found ${JSON.stringify(scale)}`);
  }
  if (!(Number.isInteger(steps) && steps >= 1)) {
    throw new RangeError(`dbllmInit: expected searchSteps to be an integer >= 1, found ${steps}`);
  }
  if (!(minRatio > 0 && minRatio <= 1)) {
    throw new RangeError(`dbllmInit: expected minRatio in (0, 1], found ${minRatio}`);
  }
  const { out, in: inF } = shape;
  const step = new Float32Array(out); // (out)
  for (let r = 0; r < out; r++) {
    let m = 0;
    for (let c = 0; c < inF; c++) m = Math.max(m, Math.abs(w[r * inF + c]));
    const full = m / 1.5;
    if (scale === "minmax" || steps === 1 || m === 0) {
      step[r] = full;
      continue;
    }
    let best = Infinity;
    for (let s = 0; s < steps; s++) {
      const d = Math.fround(full * (1 - ((1 - minRatio) * s) / (steps - 1)));
      const e = rowError(w, r * inF, inF, d);
      if (e < best) {
        best = e;
        step[r] = d;
      }
    }
  }
  return { layer: twoBitLayer(w, shape, step), step };
}
