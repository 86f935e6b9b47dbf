// Function-aware initialization of a k-path residual-binary layer (METHOD.md §3): I/O channel-importance
// preconditioning, a greedy residual SVID start, then T Gauss–Seidel rounds of SVID refits.
//
// Dimension legend: out = rows of W (output features), in = columns (input features), k = paths.
// Memory: one (out, in) f32 residual buffer plus k (out, in) sign bytes; nothing else scales with out·in.
// Cost: per refit (k + 1 + 2·iterations)·out·in, iterations ≈ 2–4 once warm-started, so a 4096x4096 layer
// with k = 2, T = 4 is a few seconds on one CPU core.

import {
  checkFloat32,
  checkMatrix,
  checkPaths,
  layerError,
  type LayerShape,
  packSignPlanes,
} from "./matrix.ts";
import type { ResidualBinaryLinear } from "./residual_binary.ts";
import { rebalancePair } from "./scales.ts";
import { powerIterationAbs, type SvidOptions } from "./svid.ts";

/** Options of {@linkcode residualInit}. Defaults are METHOD.md §3's. */
export interface ResidualInitOptions {
  /** Number of binary paths, 1..4 (default 2). */
  k?: number;
  /** (in) RMS of each input activation channel over calibration data; missing = no input preconditioning. */
  sIn?: Float32Array;
  /** (out) RMS of the loss gradient w.r.t. each output channel; missing = no output preconditioning. */
  sOut?: Float32Array;
  /** Exponent on sIn (default 0.5; 0 disables). */
  aIn?: number;
  /** Exponent on sOut (default 0.5; 0 disables). */
  aOut?: number;
  /** Gauss–Seidel rounds T after the greedy start (default 4; 0 = greedy residual SVID only). */
  rounds?: number;
  /**
   * Floor for channel statistics, relative to the mean of their finite positive entries (default 1e-3).
   * Zero, tiny and NaN statistics (dead channels, never-reached gradients) are raised to `floor · mean`, so
   * W' keeps every entry and the map back divides by a finite number; negative or infinite ones throw.
   */
  statFloor?: number;
  /** Rescale each (g_i, h_i) to equal norms after mapping back (default true; the product is unchanged). */
  rebalance?: boolean;
  /**
   * How one path is fitted to its target M (default "svid"): "svid" = sign(M) with the leading singular
   * pair of |M|; "meanAbs" = sign(M), g[r] = mean_c |M[r,c]|, h = 1 — the ablation's "no SVID" start
   * (METHOD.md §5, `--init none`). Both run in the preconditioned space, so a = 0.5 still shapes h.
   */
  fit?: "svid" | "meanAbs";
  /** Power-iteration settings for every SVID fit. */
  svid?: Omit<SvidOptions, "init">;
}

/** What {@linkcode residualInit} measured on the way. */
export interface ResidualInitDiagnostics {
  /**
   * Relative error ||W' − What'|| / ||W'|| in the preconditioned space: index 0 after the greedy start,
   * index t after Gauss–Seidel round t. Non-increasing (each refit can only lower it).
   */
  preconditionedErrors: number[];
  /** Plain relative error ||W − What|| / ||W|| of the returned layer. */
  relError: number;
  /** Power-iteration passes summed over all SVID fits. */
  svidIterations: number;
  /** Number of sIn entries raised to the floor (see `statFloor`). */
  clampedIn: number;
  /** Number of sOut entries raised to the floor. */
  clampedOut: number;
}

/** A fitted layer and its diagnostics. */
export interface ResidualInitResult {
  /** Signs packed as in bitpack.ts, scales in the original (not preconditioned) space. */
  layer: ResidualBinaryLinear;
  /** Errors after the greedy start and each round, plus the plain error. */
  diagnostics: ResidualInitDiagnostics;
}

/**
 * Turns channel statistics into the preconditioning factors s^a (float64), guarding bad entries.
 * Missing statistics or a = 0 give all ones. NaN and values below `floor · mean(finite positive)` are
 * raised to that floor; negative or infinite values throw a RangeError. If no entry is finite and
 * positive there is nothing to measure importance by, and all factors are 1.
 *
 * @example
 * ```ts
 * import { preconditionFactors } from "./residual_init.ts";
 * preconditionFactors(new Float32Array([4, 0, NaN]), 3, { exponent: 0.5, name: "sIn" }).factors;
 * // [2, sqrt(0.004), sqrt(0.004)]: floor = 1e-3 · mean(4)
 * ```
 */
export function preconditionFactors(
  s: Float32Array | undefined,
  length: number,
  options: { exponent: number; name: string; floor?: number },
): { factors: Float64Array; clamped: number } {
  const { exponent, name } = options;
  const floorRel = options.floor ?? 1e-3;
  if (!(Number.isFinite(exponent) && exponent >= 0)) {
    throw new RangeError(
      `residualInit: expected the exponent on ${name} to be finite and >= 0, found ${exponent}`,
    );
  }
  if (!(floorRel > 0 && floorRel <= 1)) {
    throw new RangeError(`residualInit: expected statFloor in (0, 1], found ${floorRel}`);
  }
  const factors = new Float64Array(length).fill(1);
  if (s === undefined || exponent === 0) return { factors, clamped: 0 };
  checkFloat32(s, length, `residualInit: ${name}`);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < length; i++) {
    const x = s[i];
    if (x < 0 || x === Infinity) {
      throw new RangeError(
        `residualInit: expected ${name} to hold RMS values (finite, >= 0), found ${x} at index ${i}`,
      );
    }
    if (x > 0) {
      sum += x;
      count++;
    }
  }
  if (count === 0) return { factors, clamped: length };
  const floor = floorRel * (sum / count);
  let clamped = 0;
  for (let i = 0; i < length; i++) {
    let x = s[i];
    if (!(x >= floor)) { // also true for NaN
      x = floor;
      clamped++;
    }
    factors[i] = Math.pow(x, exponent);
  }
  return { factors, clamped };
}

/**
 * Function-aware initialization of one layer (METHOD.md §3).
 *
 * 1. W' = diag(sOut^aOut) · W · diag(sIn^aIn).
 * 2. Greedy start: path i is the SVID fit of what paths 1..i−1 left of W'.
 * 3. T rounds; in each, every path i in turn is refitted by SVID to W' − Σ_{j≠i} path_j. The power
 *    iteration is warm-started from the path's previous h, which makes every refit lower (or keep) the
 *    error: sign(E) is the best sign choice for the old positive scales, and the first power-iteration
 *    step already scores at least as well as the old scales on |E|.
 * 4. g_i /= sOut^aOut, h_i /= sIn^aIn, then each pair is rebalanced to equal norms.
 *
 * With rounds = 0 and aIn = aOut = 0 (or no statistics) this is plain greedy residual SVID, the `ptq`
 * baseline with those settings and the `freeze` baseline's start. Scales are f32; round them through
 * fp16 with roundScalesF16 (scales.ts) before comparing with a stored file.
 *
 * @example
 * ```ts
 * import { residualInit } from "./residual_init.ts";
 * import { Rng } from "../util/rng.ts";
 * const w = new Rng(1).normals(8 * 16); // (8, 16)
 * const { layer, diagnostics } = residualInit(w, { out: 8, in: 16 }, { k: 2, rounds: 4 });
 * console.log(layer.k, diagnostics.preconditionedErrors, diagnostics.relError);
 * ```
 */
export function residualInit(
  w: Float32Array,
  shape: LayerShape,
  options: ResidualInitOptions = {},
): ResidualInitResult {
  checkMatrix(w, shape, "residualInit: W");
  const k = options.k ?? 2;
  checkPaths(k, "residualInit");
  const rounds = options.rounds ?? 4;
  if (!(Number.isInteger(rounds) && rounds >= 0)) {
    throw new RangeError(`residualInit: expected rounds to be an integer >= 0, found ${rounds}`);
  }
  const { out, in: inF } = shape;
  const n = out * inF;
  const po = preconditionFactors(options.sOut, out, {
    exponent: options.aOut ?? 0.5,
    name: "sOut",
    floor: options.statFloor,
  });
  const pi = preconditionFactors(options.sIn, inF, {
    exponent: options.aIn ?? 0.5,
    name: "sIn",
    floor: options.statFloor,
  });
  const rowF = po.factors; // (out) sOut^aOut
  const colF = pi.factors; // (in) sIn^aIn

  const res = new Float32Array(n); // (out, in) W' − paths: the target E of a refit, then the residual
  const signs = new Int8Array(k * n); // (k, out, in) ±1
  const g = new Float64Array(k * out); // (k, out) scales in the preconditioned space
  const h = new Float64Array(k * inF); // (k, in)
  const u = new Float64Array(out); // (out) power-iteration work
  const v = new Float64Array(inF); // (in)
  const vNext = new Float64Array(inF); // (in)
  const svid = options.svid ?? {};
  const fit = options.fit ?? "svid";
  if (fit !== "svid" && fit !== "meanAbs") {
    throw new TypeError(`residualInit: expected fit "svid" or "meanAbs", found ${JSON.stringify(fit)}`);
  }
  let svidIterations = 0;

  let normW2 = 0; // ||W'||²
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < inF; c++) {
      const x = w[r * inF + c] * rowF[r] * colF[c];
      res[r * inF + c] = x;
      normW2 += x * x;
    }
  }
  if (!Number.isFinite(normW2)) {
    throw new RangeError(
      `residualInit: expected ||W'||² to be finite, found ${normW2} (W or statistics too large)`,
    );
  }

  // Fits path i to the target held in `res` (signs, then power iteration on |res|, warm-started from v),
  // and leaves res = target − path_i. Returns the squared norm of what is left.
  const fitPath = (i: number): number => {
    const gi = g.subarray(i * out, (i + 1) * out);
    const hi = h.subarray(i * inF, (i + 1) * inF);
    if (fit === "svid") {
      const it = powerIterationAbs(res, shape, { u, v, vNext, ...svid });
      svidIterations += it.iterations;
      const root = Math.sqrt(it.sigma);
      for (let r = 0; r < out; r++) gi[r] = it.sigma > 0 ? u[r] / root : 0;
      for (let c = 0; c < inF; c++) hi[c] = v[c] * root;
    } else {
      for (let r = 0; r < out; r++) {
        let sum = 0;
        for (let c = 0; c < inF; c++) sum += Math.abs(res[r * inF + c]);
        gi[r] = sum / inF;
      }
      hi.fill(1);
    }
    let left = 0;
    for (let r = 0; r < out; r++) {
      const base = r * inF;
      const sb = i * n + base;
      for (let c = 0; c < inF; c++) {
        const e = res[base + c];
        const s = e >= 0 ? 1 : -1; // sign(0) = +1
        signs[sb + c] = s;
        const left1 = e - gi[r] * s * hi[c];
        res[base + c] = left1;
        left += left1 * left1;
      }
    }
    return left;
  };

  const errors: number[] = [];
  const relative = (sq: number) => (normW2 > 0 ? Math.sqrt(sq / normW2) : 0);
  let left = normW2;
  for (let i = 0; i < k; i++) {
    v.fill(1); // cold start: all ones
    left = fitPath(i);
  }
  errors.push(relative(left));

  for (let t = 0; t < rounds; t++) {
    for (let i = 0; i < k; i++) {
      // Rebuild the target W' − Σ_{j≠i} path_j from W, so no rounding drift accumulates across refits.
      for (let r = 0; r < out; r++) {
        const base = r * inF;
        for (let c = 0; c < inF; c++) res[base + c] = w[base + c] * rowF[r] * colF[c];
        for (let j = 0; j < k; j++) {
          if (j === i) continue;
          const gj = g[j * out + r];
          const hj = j * inF;
          const sb = j * n + base;
          for (let c = 0; c < inF; c++) res[base + c] -= gj * signs[sb + c] * h[hj + c];
        }
      }
      for (let c = 0; c < inF; c++) v[c] = h[i * inF + c]; // warm start from the path's previous h
      left = fitPath(i);
    }
    errors.push(relative(left));
  }

  // Map back to the original space and rebalance each pair.
  const gOut = new Float32Array(k * out); // (k, out)
  const hOut = new Float32Array(k * inF); // (k, in)
  const rebalance = options.rebalance ?? true;
  for (let i = 0; i < k; i++) {
    const gi = g.subarray(i * out, (i + 1) * out);
    const hi = h.subarray(i * inF, (i + 1) * inF);
    for (let r = 0; r < out; r++) gi[r] /= rowF[r];
    for (let c = 0; c < inF; c++) hi[c] /= colF[c];
    if (rebalance) rebalancePair(gi, hi);
    gOut.set(gi, i * out);
    hOut.set(hi, i * inF);
  }
  const layer: ResidualBinaryLinear = {
    out,
    in: inF,
    k,
    planes: packSignPlanes(signs, k, shape),
    g: gOut,
    h: hOut,
  };
  const { sqError, sqNorm } = layerError(w, layer);
  return {
    layer,
    diagnostics: {
      preconditionedErrors: errors,
      relError: sqNorm > 0 ? Math.sqrt(sqError / sqNorm) : 0,
      svidIterations,
      clampedIn: pi.clamped,
      clampedOut: po.clamped,
    },
  };
}

/**
 * Plain greedy residual SVID (rounds = 0, no preconditioning): the `ptq` baseline with T = 0, a = 0 and the
 * start of the `freeze` baseline. Path i is the SVID fit of W − Σ_{j<i} path_j, so its signs are those the
 * coupled forward (coupled.ts) derives from W with these scales (up to rounding where a residual is ≈ 0).
 *
 * @example
 * ```ts
 * import { greedyResidualSvid } from "./residual_init.ts";
 * const { layer } = greedyResidualSvid(new Float32Array([1, -2, 3, -4]), { out: 2, in: 2 }, { k: 2 });
 * ```
 */
export function greedyResidualSvid(
  w: Float32Array,
  shape: LayerShape,
  options: Pick<ResidualInitOptions, "k" | "rebalance" | "svid"> = {},
): ResidualInitResult {
  return residualInit(w, shape, { ...options, rounds: 0, aIn: 0, aOut: 0 });
}
