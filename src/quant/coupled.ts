// CPU reference of the training-time weight derivations that GPU kernels are tested against:
// the coupled residual forward/backward of RaBiT (METHOD.md §2) and the `standard` QAT baseline's
// k independent latents (METHOD.md §5). All arithmetic on matrices is f32 (like the kernels); reductions
// (dg, dh) accumulate in f64.
//
// Dimension legend: out = rows of W, in = columns, k = paths.
//   W, dWHat, wHat: (out, in);  g: (k, out);  h: (k, in);  signs: (k, out, in) as ±1 bytes;
//   standard latents Ws and their gradient: (k, out, in).

import {
  checkMatrix,
  checkPaths,
  checkShape,
  checkVector,
  type LayerShape,
  packSignPlanes,
} from "./matrix.ts";
import type { ResidualBinaryLinear } from "./residual_binary.ts";

/** The learnable scales of a k-path layer (the latent matrix is passed separately). */
export interface PathScales extends LayerShape {
  /** Number of paths, 1..4. */
  readonly k: number;
  /** (k, out) row scales g_i. */
  readonly g: Float32Array;
  /** (k, in) column scales h_i. */
  readonly h: Float32Array;
}

/** What a forward pass produces and its backward pass needs. */
export interface ForwardResult {
  /** (out, in) What = Σ_i g_i ⊙ B_i ⊙ h_i, summed path by path in f32 as inference would. */
  wHat: Float32Array;
  /** (k, out, in) the signs B_i as ±1. */
  signs: Int8Array;
}

/** Options of {@linkcode coupledBackward}. */
export interface CoupledBackwardOptions {
  /**
   * Clipped STE (our choice, off by default): dW[r,c] = 0 where |W[r,c]| > clip · Σ_i |g_i[r]|·|h_i[c]|,
   * i.e. where the latent lies beyond clip times the largest magnitude the k paths can give that entry
   * (clip = 1 is the hard-tanh STE of BinaryConnect generalised to k scaled paths). Needs `w`.
   */
  clip?: number;
  /** (out, in) the latent W, required with `clip`. */
  w?: Float32Array;
}

/** Gradients of one layer's latent and scales. */
export interface Gradients {
  /** Latent gradient: (out, in) for the coupled forward, (k, out, in) for `standard`. */
  dW: Float32Array;
  /** (k, out) dL/dg_i. */
  dg: Float32Array;
  /** (k, in) dL/dh_i. */
  dh: Float32Array;
}

function checkScales(scales: PathScales, name: string): void {
  checkShape(scales, name);
  checkPaths(scales.k, name);
  checkVector(scales.g, scales.k * scales.out, `${name}: g (k=${scales.k}, out=${scales.out})`);
  checkVector(scales.h, scales.k * scales.in, `${name}: h (k=${scales.k}, in=${scales.in})`);
}

function checkSigns(signs: Int8Array, scales: PathScales, name: string): void {
  const want = scales.k * scales.out * scales.in;
  if (!(signs instanceof Int8Array)) {
    throw new TypeError(
      `${name}: expected signs as an Int8Array, found ${(signs as object)?.constructor?.name}`,
    );
  }
  if (signs.length !== want) {
    throw new RangeError(
      `${name}: expected ${scales.k}x${scales.out}x${scales.in}=${want} signs, found ${signs.length}`,
    );
  }
}

/** Adds path i (signs already in `signs`) into wHat, f32. */
function addPath(wHat: Float32Array, signs: Int8Array, scales: PathScales, i: number): void {
  const { out, in: inF, g, h } = scales;
  const n = out * inF;
  for (let r = 0; r < out; r++) {
    const gr = g[i * out + r];
    for (let c = 0; c < inF; c++) wHat[r * inF + c] += gr * signs[i * n + r * inF + c] * h[i * inF + c];
  }
}

/** dg_i[r] = Σ_c dWHat[r,c]·B_i[r,c]·h_i[c] and dh_i[c] = Σ_r dWHat[r,c]·B_i[r,c]·g_i[r], f64 sums. */
function scaleGradients(
  dWHat: Float32Array,
  signs: Int8Array,
  scales: PathScales,
): { dg: Float32Array; dh: Float32Array } {
  const { out, in: inF, k, g, h } = scales;
  const n = out * inF;
  const dg = new Float32Array(k * out); // (k, out)
  const dh = new Float32Array(k * inF); // (k, in)
  const acc = new Float64Array(inF); // (in) dh_i accumulator
  for (let i = 0; i < k; i++) {
    acc.fill(0);
    for (let r = 0; r < out; r++) {
      const gr = g[i * out + r];
      let s = 0;
      for (let c = 0; c < inF; c++) {
        const t = dWHat[r * inF + c] * signs[i * n + r * inF + c];
        s += t * h[i * inF + c];
        acc[c] += t * gr;
      }
      dg[i * out + r] = s;
    }
    dh.set(acc, i * inF);
  }
  return { dg, dh };
}

/**
 * Coupled residual forward (METHOD.md §2): R_0 = W; B_i = sign(R_{i−1}) (sign(0) = +1);
 * R_i = R_{i−1} − g_i ⊙ B_i ⊙ h_i (f32); What = Σ_i g_i ⊙ B_i ⊙ h_i (= W − R_k up to rounding; summed path by
 * path so training sees exactly the matrix the packed layer will compute with).
 *
 * @example
 * ```ts
 * import { coupledForward } from "./coupled.ts";
 * const w = new Float32Array([0.9, -0.2, 0.4, -1.1]); // (2, 2)
 * const scales = { out: 2, in: 2, k: 2, g: new Float32Array([1, 1, 0.5, 0.5]), h: new Float32Array([0.6, 0.6, 0.6, 0.6]) };
 * const { wHat, signs } = coupledForward(w, scales);
 * console.log(wHat); // [0.9, -0.3, 0.3, -0.9]
 * ```
 */
export function coupledForward(w: Float32Array, scales: PathScales): ForwardResult {
  checkScales(scales, "coupledForward");
  checkMatrix(w, scales, "coupledForward: W");
  const { out, in: inF, k, g, h } = scales;
  const n = out * inF;
  const res = w.slice(); // (out, in) R_{i−1}
  const signs = new Int8Array(k * n); // (k, out, in)
  const wHat = new Float32Array(n); // (out, in)
  for (let i = 0; i < k; i++) {
    for (let r = 0; r < out; r++) {
      const gr = g[i * out + r];
      for (let c = 0; c < inF; c++) {
        const idx = r * inF + c;
        const b = res[idx] >= 0 ? 1 : -1;
        signs[i * n + idx] = b;
        res[idx] -= gr * b * h[i * inF + c];
      }
    }
    addPath(wHat, signs, scales, i);
  }
  return { wHat, signs };
}

/**
 * Coupled backward (METHOD.md §2): one identity STE for the whole stack, dW = dWHat (optionally clipped,
 * see {@linkcode CoupledBackwardOptions}); dg_i, dh_i by the chain rule with every B_i held constant.
 *
 * @example
 * ```ts
 * import { coupledBackward, coupledForward } from "./coupled.ts";
 * const w = new Float32Array([0.9, -0.2, 0.4, -1.1]);
 * const scales = { out: 2, in: 2, k: 1, g: new Float32Array([1, 1]), h: new Float32Array([0.5, 0.5]) };
 * const fwd = coupledForward(w, scales);
 * const { dW, dg, dh } = coupledBackward(new Float32Array([1, 0, 0, 1]), { ...scales, signs: fwd.signs });
 * console.log(dW, dg, dh); // [1, 0, 0, 1], [0.5, -0.5], [1, -1]
 * ```
 */
export function coupledBackward(
  dWHat: Float32Array,
  saved: PathScales & { signs: Int8Array },
  options: CoupledBackwardOptions = {},
): Gradients {
  checkScales(saved, "coupledBackward");
  checkSigns(saved.signs, saved, "coupledBackward");
  checkMatrix(dWHat, saved, "coupledBackward: dWHat");
  const { out, in: inF, k, g, h } = saved;
  const dW = dWHat.slice(); // (out, in)
  if (options.clip !== undefined) {
    const { clip, w } = options;
    if (!(clip > 0)) throw new RangeError(`coupledBackward: expected clip > 0, found ${clip}`);
    if (w === undefined) {
      throw new TypeError("coupledBackward: expected options.w (the latent W) with clip, found none");
    }
    checkMatrix(w, saved, "coupledBackward: W");
    const bound = new Float32Array(inF); // (in) Σ_i |g_i[r]|·|h_i[c]| for the current row
    for (let r = 0; r < out; r++) {
      bound.fill(0);
      for (let i = 0; i < k; i++) {
        const gr = Math.abs(g[i * out + r]);
        for (let c = 0; c < inF; c++) bound[c] += gr * Math.abs(h[i * inF + c]);
      }
      for (let c = 0; c < inF; c++) if (Math.abs(w[r * inF + c]) > clip * bound[c]) dW[r * inF + c] = 0;
    }
  }
  return { dW, ...scaleGradients(dWHat, saved.signs, saved) };
}

/**
 * `standard` QAT forward (METHOD.md §5): k independent latents Ws (k, out, in), B_i = sign(W_i),
 * What = Σ_i g_i ⊙ B_i ⊙ h_i.
 *
 * @example
 * ```ts
 * import { standardForward } from "./coupled.ts";
 * const ws = new Float32Array([1, -1, -1, -1]); // (k=2, out=1, in=2)
 * const scales = { out: 1, in: 2, k: 2, g: new Float32Array([1, 0.5]), h: new Float32Array([1, 1, 1, 1]) };
 * standardForward(ws, scales).wHat; // [0.5, -1.5]
 * ```
 */
export function standardForward(ws: Float32Array, scales: PathScales): ForwardResult {
  checkScales(scales, "standardForward");
  const { out, in: inF, k } = scales;
  const n = out * inF;
  checkMatrix(ws, { out: k * out, in: inF }, "standardForward: Ws (k*out rows)");
  const signs = new Int8Array(k * n); // (k, out, in)
  for (let j = 0; j < k * n; j++) signs[j] = ws[j] >= 0 ? 1 : -1;
  const wHat = new Float32Array(n); // (out, in)
  for (let i = 0; i < k; i++) addPath(wHat, signs, scales, i);
  return { wHat, signs };
}

/** Options of {@linkcode standardBackward}. */
export interface StandardBackwardOptions {
  /**
   * Clipped STE (our choice, off by default): dW_i[r,c] = 0 where |W_i[r,c]| > clip · |g_i[r]|·|h_i[c]|.
   * Needs `ws`.
   */
  clip?: number;
  /** (k, out, in) the latents, required with `clip`. */
  ws?: Float32Array;
  /**
   * false (default): every latent gets the same identity-STE gradient dW_i = dWHat (METHOD.md §5).
   * true (our alternative): chain rule through the path with sign treated as identity,
   * dW_i = dWHat ⊙ g_i h_iᵀ.
   */
  chainScales?: boolean;
}

/**
 * `standard` QAT backward: dW (k, out, in) per {@linkcode StandardBackwardOptions}; dg_i, dh_i as in the
 * coupled case with B_i = sign(W_i) held constant.
 *
 * @example
 * ```ts
 * import { standardBackward, standardForward } from "./coupled.ts";
 * const ws = new Float32Array([1, -1, -1, -1]);
 * const scales = { out: 1, in: 2, k: 2, g: new Float32Array([1, 0.5]), h: new Float32Array([1, 1, 1, 1]) };
 * const { signs } = standardForward(ws, scales);
 * standardBackward(new Float32Array([1, 1]), { ...scales, signs }).dW; // [1, 1, 1, 1]
 * ```
 */
export function standardBackward(
  dWHat: Float32Array,
  saved: PathScales & { signs: Int8Array },
  options: StandardBackwardOptions = {},
): Gradients {
  checkScales(saved, "standardBackward");
  checkSigns(saved.signs, saved, "standardBackward");
  checkMatrix(dWHat, saved, "standardBackward: dWHat");
  const { out, in: inF, k, g, h } = saved;
  const n = out * inF;
  const { clip, ws, chainScales = false } = options;
  if (clip !== undefined) {
    if (!(clip > 0)) throw new RangeError(`standardBackward: expected clip > 0, found ${clip}`);
    if (ws === undefined) {
      throw new TypeError("standardBackward: expected options.ws (the latents) with clip, found none");
    }
    checkMatrix(ws, { out: k * out, in: inF }, "standardBackward: Ws (k*out rows)");
  }
  const dW = new Float32Array(k * n); // (k, out, in)
  for (let i = 0; i < k; i++) {
    for (let r = 0; r < out; r++) {
      const gr = g[i * out + r];
      for (let c = 0; c < inF; c++) {
        const idx = i * n + r * inF + c;
        const hc = h[i * inF + c];
        let d = dWHat[r * inF + c];
        if (chainScales) d *= gr * hc;
        if (clip !== undefined && Math.abs(ws![idx]) > clip * Math.abs(gr * hc)) d = 0;
        dW[idx] = d;
      }
    }
  }
  return { dW, ...scaleGradients(dWHat, saved.signs, saved) };
}

/**
 * Freezes a forward pass's signs and the scales into a packed layer (what training hands to inference).
 *
 * @example
 * ```ts
 * import { coupledForward, toLayer } from "./coupled.ts";
 * const scales = { out: 1, in: 2, k: 1, g: new Float32Array([2]), h: new Float32Array([1, 1]) };
 * const layer = toLayer(scales, coupledForward(new Float32Array([3, -1]), scales).signs);
 * ```
 */
export function toLayer(scales: PathScales, signs: Int8Array): ResidualBinaryLinear {
  checkScales(scales, "toLayer");
  checkSigns(signs, scales, "toLayer");
  const { out, in: inF, k } = scales;
  return {
    out,
    in: inF,
    k,
    planes: packSignPlanes(signs, k, scales),
    g: scales.g.slice(),
    h: scales.h.slice(),
  };
}
