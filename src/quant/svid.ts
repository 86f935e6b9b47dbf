// SVID: fit one binary path g ⊙ sign(M) ⊙ h to a matrix M (METHOD.md §3), and the mean-absolute fit it is
// compared with. The scales are the leading singular pair of |M|, found by power iteration (no full SVD).
//
// Why it is the right fit: with B = sign(M) fixed, B ⊙ M = |M| and B ⊙ B = 1, so
// ||M − g⊙B⊙h||² = || |M| − g hᵀ ||², minimised over (g, h) by the best rank-1 approximation of |M|.
// |M| is non-negative, so its leading singular vectors are non-negative (Perron–Frobenius) and power
// iteration started from a non-negative vector keeps them so: g, h come out ≥ 0 without sign fixing.
//
// Dimension legend: out = rows of M, in = columns of M.

import { packSigns } from "./bitpack.ts";
import { checkMatrix, type LayerShape } from "./matrix.ts";
import type { ResidualBinaryLinear } from "./residual_binary.ts";

/** Options of the power iteration that finds the leading singular pair of |M|. */
export interface SvidOptions {
  /** Stop after this many passes over M even if not converged (default 100). */
  maxIterations?: number;
  /**
   * Stop when the singular value grows by at most `tolerance · σ` in one pass (default 1e-7). The fit's
   * squared error is ||M||² − σ², so σ, not the vectors, is what has to converge.
   */
  tolerance?: number;
  /**
   * (in) warm start for the right vector (e.g. the previous h of the path being refitted); absolute values
   * are used. Without it the iteration starts from the all-ones vector.
   */
  init?: ArrayLike<number>;
}

/** The leading singular pair of |M| as path scales: g = sqrt(σ)·u, h = sqrt(σ)·v. */
export interface RankOneFit {
  /** (out) row scales, ≥ 0. */
  g: Float32Array;
  /** (in) column scales, ≥ 0. */
  h: Float32Array;
  /** Leading singular value σ of |M| (so ||M − g⊙sign(M)⊙h||² = ||M||² − σ²). */
  sigma: number;
  /** Passes over M used. */
  iterations: number;
  /** False when maxIterations stopped the iteration first. */
  converged: boolean;
}

/** Result of {@linkcode powerIterationAbs}; the vectors are written into the caller's buffers. */
export interface PowerIterationResult {
  /** ||A v|| for the final unit v; u holds A v (not normalised). */
  sigma: number;
  /** Passes over the matrix. */
  iterations: number;
  /** False when maxIterations stopped the iteration first. */
  converged: boolean;
}

/**
 * Low-level power iteration for the leading singular pair of A = |M| without forming |M|.
 * `v` (in) holds a non-negative start vector on entry (normalised here; all-zero falls back to ones) and the
 * unit right vector on return; `u` (out) receives A·v, so the left unit vector is u/σ. Each iteration is a
 * single pass over M: row r gives u[r] = Σ_c |M[r,c]| v[c] and immediately adds |M[r,·]|·u[r] into A ᵀu.
 * σ_t = ||A v_t|| never decreases from one iteration to the next, and the first one is already ≥ the score
 * ûᵀ A v_0 of any unit û, which is what makes warm-started Gauss–Seidel refits monotone.
 *
 * @example
 * ```ts
 * import { powerIterationAbs } from "./svid.ts";
 * const m = new Float32Array([1, -2, 2, -4]); // |M| = [1 2; 2 4] has rank 1, σ = 5
 * const u = new Float64Array(2), v = new Float64Array(2).fill(1);
 * const { sigma } = powerIterationAbs(m, { out: 2, in: 2 }, { u, v });
 * console.log(sigma); // ≈ 5
 * ```
 */
export function powerIterationAbs(
  m: Float32Array,
  shape: LayerShape,
  work: { u: Float64Array; v: Float64Array; vNext?: Float64Array } & Omit<SvidOptions, "init">,
): PowerIterationResult {
  const { out, in: inF } = shape;
  const { u, v } = work;
  const maxIterations = work.maxIterations ?? 100;
  const tolerance = work.tolerance ?? 1e-7;
  if (!(Number.isInteger(maxIterations) && maxIterations >= 1)) {
    throw new RangeError(
      `powerIterationAbs: expected maxIterations to be an integer >= 1, found ${maxIterations}`,
    );
  }
  if (!(tolerance >= 0)) {
    throw new RangeError(`powerIterationAbs: expected tolerance >= 0, found ${tolerance}`);
  }
  if (u.length !== out || v.length !== inF) {
    throw new RangeError(
      `powerIterationAbs: expected u of ${out} and v of ${inF} values, found ${u.length}, ${v.length}`,
    );
  }
  const vNext = work.vNext ?? new Float64Array(inF); // (in) Aᵀ A v, unnormalised
  if (!normalizeAbs(v)) {
    v.fill(1 / Math.sqrt(inF));
  }
  let sigma = 0;
  let prev = -1;
  let iterations = 0;
  let converged = false;
  for (;;) {
    iterations++;
    vNext.fill(0);
    let su = 0;
    for (let r = 0; r < out; r++) {
      const base = r * inF;
      let acc = 0;
      for (let c = 0; c < inF; c++) acc += Math.abs(m[base + c]) * v[c];
      u[r] = acc;
      su += acc * acc;
      if (acc !== 0) { for (let c = 0; c < inF; c++) vNext[c] += Math.abs(m[base + c]) * acc; }
    }
    sigma = Math.sqrt(su);
    if (sigma === 0) { // |M| v = 0 with v > 0 somewhere: only a zero matrix (or zero support) gets here
      converged = true;
      break;
    }
    if (sigma - prev <= tolerance * sigma) {
      converged = true;
      break;
    }
    if (iterations >= maxIterations) break;
    prev = sigma;
    v.set(vNext);
    if (!normalizeAbs(v)) break; // cannot happen for sigma > 0, kept as a guard against NaN loops
  }
  return { sigma, iterations, converged };
}

/** Replaces v by |v|/||v||; returns false (leaving v alone) when ||v|| is 0 or not finite. */
function normalizeAbs(v: Float64Array): boolean {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  if (!(s > 0 && Number.isFinite(s))) return false;
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < v.length; i++) v[i] = Math.abs(v[i]) * inv;
  return true;
}

/**
 * The SVID scales of M: the leading singular pair of |M| as g = sqrt(σ)·u, h = sqrt(σ)·v (both ≥ 0, equal
 * norms). The path they form with B = sign(M) is the best rank-1-scaled sign fit of M.
 *
 * @example
 * ```ts
 * import { svidScales } from "./svid.ts";
 * const { g, h, sigma } = svidScales(new Float32Array([1, -2, 2, -4]), { out: 2, in: 2 });
 * console.log(sigma, g[0] * h[1]); // ≈ 5, ≈ 2
 * ```
 */
export function svidScales(m: Float32Array, shape: LayerShape, options: SvidOptions = {}): RankOneFit {
  checkMatrix(m, shape, "svid: M");
  const { out, in: inF } = shape;
  const u = new Float64Array(out);
  const v = new Float64Array(inF);
  if (options.init !== undefined) {
    if (options.init.length !== inF) {
      throw new RangeError(`svid: expected init of ${inF} values, found ${options.init.length}`);
    }
    for (let c = 0; c < inF; c++) v[c] = options.init[c];
  }
  const res = powerIterationAbs(m, shape, { u, v, ...options });
  const g = new Float32Array(out);
  const h = new Float32Array(inF);
  if (res.sigma > 0) {
    const root = Math.sqrt(res.sigma);
    for (let r = 0; r < out; r++) g[r] = u[r] / root; // sqrt(σ) · (u/σ)
    for (let c = 0; c < inF; c++) h[c] = v[c] * root;
  }
  return { g, h, ...res };
}

/**
 * SVID fit of one binary path to M: B = sign(M) (sign(0) = +1), (g, h) from {@linkcode svidScales}.
 * Returns a one-path layer.
 *
 * @example
 * ```ts
 * import { svidFit } from "./svid.ts";
 * import { dequantize } from "./residual_binary.ts";
 * const layer = svidFit(new Float32Array([1, -2, 2, -4]), { out: 2, in: 2 });
 * console.log(dequantize(layer)); // ≈ [1, -2, 2, -4]: |M| is rank 1
 * ```
 */
export function svidFit(m: Float32Array, shape: LayerShape, options: SvidOptions = {}): ResidualBinaryLinear {
  const { g, h } = svidScales(m, shape, options);
  return { out: shape.out, in: shape.in, k: 1, planes: packSigns(m, shape.out, shape.in), g, h };
}

/**
 * The comparison point for SVID: B = sign(M), g_r = mean_c |M[r,c]| (the least-squares row scale when
 * h = 1), h = 1. Returns a one-path layer.
 *
 * @example
 * ```ts
 * import { meanAbsFit } from "./svid.ts";
 * meanAbsFit(new Float32Array([1, -3, 2, 2]), { out: 2, in: 2 }).g; // [2, 2]
 * ```
 */
export function meanAbsFit(m: Float32Array, shape: LayerShape): ResidualBinaryLinear {
  checkMatrix(m, shape, "meanAbsFit: M");
  const { out, in: inF } = shape;
  const g = new Float32Array(out);
  for (let r = 0; r < out; r++) {
    let s = 0;
    for (let c = 0; c < inF; c++) s += Math.abs(m[r * inF + c]);
    g[r] = s / inF;
  }
  return { out, in: inF, k: 1, planes: packSigns(m, out, inF), g, h: new Float32Array(inF).fill(1) };
}
