// Dense-matrix helpers shared by the CPU quantizers: shape and value checks, and the relative error of a
// residual-binary layer against its source weight computed row by row (no dense What is formed).
//
// Dimension legend: out = rows of W (output features), in = columns of W (input features),
// k = number of binary paths. Every matrix is a row-major Float32Array of shape (out, in).

import { packSigns, unpackSigns, wordsPerRow } from "./bitpack.ts";
import { type ResidualBinaryLinear, validateResidualBinary } from "./residual_binary.ts";

/** Shape of one weight matrix W (out, in), row-major. */
export interface LayerShape {
  /** Output features (rows). */
  readonly out: number;
  /** Input features (columns). */
  readonly in: number;
}

/** Largest side accepted: far above any Llama layer, low enough that out·in stays an exact integer. */
const MAX_SIDE = 1 << 20;

/**
 * Throws a RangeError unless `shape` has positive integer sides.
 *
 * @example
 * ```ts
 * import { checkShape } from "./matrix.ts";
 * checkShape({ out: 4, in: 3 }, "W");
 * ```
 */
export function checkShape(shape: LayerShape, name = "matrix"): void {
  for (const key of ["out", "in"] as const) {
    const v = shape?.[key];
    if (!Number.isInteger(v) || v <= 0 || v > MAX_SIDE) {
      throw new RangeError(`${name}: expected ${key} to be a positive integer, found ${v}`);
    }
  }
}

/**
 * Throws a TypeError unless `k` is an integer 1..4 paths (METHOD.md §1), as a RangeError when it is an
 * integer out of range.
 *
 * @example
 * ```ts
 * import { checkPaths } from "./matrix.ts";
 * checkPaths(2, "W");
 * ```
 */
export function checkPaths(k: number, name = "matrix"): void {
  if (typeof k !== "number" || !Number.isInteger(k)) {
    throw new TypeError(`${name}: expected k to be an integer number of paths 1..4, found ${k}`);
  }
  if (k < 1 || k > 4) throw new RangeError(`${name}: expected k in 1..4 paths, found ${k}`);
}

/**
 * Throws a TypeError unless `m` is a Float32Array, a RangeError unless it holds `length` values.
 *
 * @example
 * ```ts
 * import { checkFloat32 } from "./matrix.ts";
 * checkFloat32(new Float32Array(3), 3, "sIn");
 * ```
 */
export function checkFloat32(m: Float32Array, length: number, name: string): void {
  if (!(m instanceof Float32Array)) {
    const found = m === null ? "null" : (m as object)?.constructor?.name ?? typeof m;
    throw new TypeError(`${name}: expected a Float32Array, found ${found}`);
  }
  if (m.length !== length) throw new RangeError(`${name}: expected ${length} values, found ${m.length}`);
}

/**
 * {@linkcode checkFloat32} plus a RangeError naming the first non-finite value.
 *
 * @example
 * ```ts
 * import { checkVector } from "./matrix.ts";
 * checkVector(new Float32Array(3), 3, "h");
 * ```
 */
export function checkVector(m: Float32Array, length: number, name: string): void {
  checkFloat32(m, length, name);
  for (let i = 0; i < m.length; i++) {
    if (!Number.isFinite(m[i])) {
      throw new RangeError(`${name}: expected finite values, found ${m[i]} at index ${i}`);
    }
  }
}

/**
 * Checks a weight matrix: positive integer shape, a Float32Array of out·in finite values.
 * The error names the row and column of the first non-finite entry.
 *
 * @example
 * ```ts
 * import { checkMatrix } from "./matrix.ts";
 * checkMatrix(new Float32Array(6), { out: 2, in: 3 }, "W");
 * ```
 */
export function checkMatrix(m: Float32Array, shape: LayerShape, name = "W"): void {
  checkShape(shape, name);
  checkFloat32(m, shape.out * shape.in, `${name} (${shape.out}x${shape.in})`);
  for (let i = 0; i < m.length; i++) {
    if (!Number.isFinite(m[i])) {
      const r = Math.floor(i / shape.in);
      throw new RangeError(`${name}: expected finite values, found ${m[i]} at [${r}, ${i - r * shape.in}]`);
    }
  }
}

/**
 * Frobenius norm of a vector or matrix, accumulated in float64.
 *
 * @example
 * ```ts
 * import { frobenius } from "./matrix.ts";
 * frobenius(new Float32Array([3, 4])); // 5
 * ```
 */
export function frobenius(m: Float32Array): number {
  let s = 0;
  for (let i = 0; i < m.length; i++) s += m[i] * m[i];
  return Math.sqrt(s);
}

/**
 * Squared Frobenius error ||W − What||² and ||W||² of a residual-binary layer against W (out, in), computed
 * one row at a time from the packed planes: memory beyond the inputs is O(k·in).
 *
 * @example
 * ```ts
 * import { layerError } from "./matrix.ts";
 * import { svidFit } from "./svid.ts";
 * const w = new Float32Array([1, -2, 3, -4]);
 * const { sqError, sqNorm } = layerError(w, svidFit(w, { out: 2, in: 2 }));
 * console.log(Math.sqrt(sqError / sqNorm));
 * ```
 */
export function layerError(
  w: Float32Array,
  layer: ResidualBinaryLinear,
): { sqError: number; sqNorm: number } {
  validateResidualBinary(layer);
  const { out, in: inF, k } = layer;
  checkFloat32(w, out * inF, `W (${out}x${inF})`);
  const wpr = wordsPerRow(inF);
  const row = new Float64Array(inF); // (in) What row being formed
  let sqError = 0;
  let sqNorm = 0;
  for (let r = 0; r < out; r++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const start = (p * out + r) * wpr;
      const signs = unpackSigns(layer.planes.subarray(start, start + wpr), 1, inF); // (in)
      const g = layer.g[p * out + r];
      const h = layer.h.subarray(p * inF, (p + 1) * inF);
      for (let c = 0; c < inF; c++) row[c] += g * signs[c] * h[c];
    }
    const wr = r * inF;
    for (let c = 0; c < inF; c++) {
      const d = w[wr + c] - row[c];
      sqError += d * d;
      sqNorm += w[wr + c] * w[wr + c];
    }
  }
  return { sqError, sqNorm };
}

/**
 * Relative Frobenius error ||W − What|| / ||W|| of a layer (0 when W and What are both zero).
 *
 * @example
 * ```ts
 * import { relativeError } from "./matrix.ts";
 * import { svidFit } from "./svid.ts";
 * const w = new Float32Array([1, -1, 1, -1]);
 * relativeError(w, svidFit(w, { out: 2, in: 2 })); // ≈ 0
 * ```
 */
export function relativeError(w: Float32Array, layer: ResidualBinaryLinear): number {
  const { sqError, sqNorm } = layerError(w, layer);
  if (sqNorm === 0) return sqError === 0 ? 0 : Infinity;
  return Math.sqrt(sqError / sqNorm);
}

/**
 * Packs k sign planes held as ±1 bytes (k, out, in) into the layout of bitpack.ts, (k, out, wordsPerRow(in))
 * u32 words, through packSigns row by row (so the bit order is defined in one place only).
 *
 * @example
 * ```ts
 * import { packSignPlanes } from "./matrix.ts";
 * packSignPlanes(new Int8Array([1, -1, -1, 1]), 2, { out: 1, in: 2 }); // Uint32Array [1, 2]
 * ```
 */
export function packSignPlanes(signs: Int8Array, k: number, shape: LayerShape): Uint32Array {
  const { out, in: inF } = shape;
  if (signs.length !== k * out * inF) {
    throw new RangeError(
      `packSignPlanes: expected ${k}x${out}x${inF}=${k * out * inF} signs, found ${signs.length}`,
    );
  }
  const wpr = wordsPerRow(inF);
  const planes = new Uint32Array(k * out * wpr); // (k, out, wpr)
  const row = new Float32Array(inF); // (in)
  for (let pr = 0; pr < k * out; pr++) {
    for (let c = 0; c < inF; c++) row[c] = signs[pr * inF + c];
    planes.set(packSigns(row, 1, inF), pr * wpr);
  }
  return planes;
}
