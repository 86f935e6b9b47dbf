// The residual-binary representation of one linear layer (METHOD.md §1):
//   What = sum_{i<k} g_i ⊙ B_i ⊙ h_i,  B_i ∈ {-1,+1}^(out×in) packed as in bitpack.ts.

import { unpackSigns, wordsPerRow } from "./bitpack.ts";
import { checkInput, type LinearLayer } from "../model/linear.ts";
import type { LlamaModel } from "../model/model.ts";
import { matmulBackward } from "../model/ops_backward.ts";

/** A linear layer `y = What x` stored as k packed sign planes with row and column scales. */
export interface ResidualBinaryLinear {
  /** Output features (rows of W). */
  readonly out: number;
  /** Input features (columns of W). */
  readonly in: number;
  /** Number of binary paths, 1..4. */
  readonly k: number;
  /** (k, out, wordsPerRow(in)) packed signs, layout of bitpack.ts. */
  readonly planes: Uint32Array;
  /** (k, out) per-row scales g_i. */
  readonly g: Float32Array;
  /** (k, in) per-column scales h_i. */
  readonly h: Float32Array;
}

/** Checks that the arrays of a residual-binary layer have the sizes its shape implies. */
export function validateResidualBinary(layer: ResidualBinaryLinear, name = "layer"): void {
  const { out, in: inF, k } = layer;
  if (!(k >= 1 && k <= 4)) throw new RangeError(`${name}: expected 1..4 paths, found ${k}`);
  const expect = (what: string, want: number, got: number) => {
    if (want !== got) throw new RangeError(`${name}: expected ${what} of length ${want}, found ${got}`);
  };
  expect("planes", k * out * wordsPerRow(inF), layer.planes.length);
  expect("g", k * out, layer.g.length);
  expect("h", k * inF, layer.h.length);
}

/**
 * Path p alone as a one-path layer: views into `layer`'s arrays, no copy (for per-path products and
 * statistics).
 *
 * @example
 * ```ts
 * import { pathView } from "./residual_binary.ts";
 * const layer = { out: 1, in: 2, k: 2, planes: new Uint32Array([0b01, 0b11]), g: new Float32Array([2, 0.5]),
 *   h: new Float32Array([1, 1, 1, 1]) };
 * pathView(layer, 1).g; // Float32Array [0.5]
 * ```
 */
export function pathView(layer: ResidualBinaryLinear, p: number): ResidualBinaryLinear {
  const { out, in: inF, k } = layer;
  if (!Number.isInteger(p) || p < 0 || p >= k) {
    throw new RangeError(`pathView: expected a path in 0..${k - 1}, found ${p}`);
  }
  const words = out * wordsPerRow(inF);
  return {
    out,
    in: inF,
    k: 1,
    planes: layer.planes.subarray(p * words, (p + 1) * words),
    g: layer.g.subarray(p * out, (p + 1) * out),
    h: layer.h.subarray(p * inF, (p + 1) * inF),
  };
}

/**
 * Forms the dense (out, in) matrix What (for tests and error reports; inference never does this).
 *
 * @example
 * ```ts
 * import { dequantize } from "./residual_binary.ts";
 * // k = 2 paths of a (1, 2) layer: signs [+1, −1] scaled by 2, then [+1, +1] scaled by 0.5
 * dequantize({ out: 1, in: 2, k: 2, planes: new Uint32Array([0b01, 0b11]), g: new Float32Array([2, 0.5]),
 *   h: new Float32Array([1, 1, 1, 1]) }); // [2.5, -1.5]
 * ```
 */
export function dequantize(layer: ResidualBinaryLinear): Float32Array {
  const { out, in: inF, k } = layer;
  const wpr = wordsPerRow(inF);
  const w = new Float32Array(out * inF);
  for (let p = 0; p < k; p++) {
    const b = unpackSigns(layer.planes.subarray(p * out * wpr, (p + 1) * out * wpr), out, inF);
    const g = layer.g.subarray(p * out, (p + 1) * out);
    const h = layer.h.subarray(p * inF, (p + 1) * inF);
    for (let r = 0; r < out; r++) {
      for (let c = 0; c < inF; c++) w[r * inF + c] += g[r] * b[r * inF + c] * h[c];
    }
  }
  return w;
}

/**
 * The add/subtract-only product y = sum_i g_i ⊙ (B_i (h_i ⊙ x)) straight from packed bits.
 * x: (T, in) row-major, returns y: (T, out). This is the reference every packed kernel is tested against.
 *
 * Signs are applied through lookup tables over groups of 4 columns (T-MAC style): for each group the 16
 * possible signed sums ±xs[4g]±xs[4g+1]±xs[4g+2]±xs[4g+3] are formed once per token and plane, and each
 * row then adds one table entry per nibble of its sign words: only additions in the inner loop.
 *
 * @example
 * ```ts
 * import { residualBinaryMatmul } from "./residual_binary.ts";
 * import { packSigns } from "./bitpack.ts";
 * const signs = new Float32Array([1, -1, -1, 1]); // B (2, 2)
 * const layer = { out: 2, in: 2, k: 1, planes: packSigns(signs, 2, 2), g: new Float32Array([1, 2]),
 *   h: new Float32Array([1, 1]) }; // What = [[1, -1], [-2, 2]]
 * residualBinaryMatmul(layer, new Float32Array([3, 1]), 1); // [2, -4]
 * ```
 */
export function residualBinaryMatmul(layer: ResidualBinaryLinear, x: Float32Array, T = 1): Float32Array {
  const { out, in: inF, k } = layer;
  if (x.length !== T * inF) {
    throw new RangeError(
      `residualBinaryMatmul: expected x of ${T}x${inF}=${T * inF} values, found ${x.length}`,
    );
  }
  const wpr = wordsPerRow(inF);
  const groups = wpr * 8; // nibbles per row
  const y = new Float32Array(T * out);
  const xs = new Float32Array(wpr * 32); // h_i ⊙ x, zero-padded to whole words
  const lut = new Float32Array(groups * 16); // (groups, 16) signed sums
  const planes = layer.planes;
  for (let t = 0; t < T; t++) {
    const xt = x.subarray(t * inF, (t + 1) * inF);
    for (let p = 0; p < k; p++) {
      const h = layer.h.subarray(p * inF, (p + 1) * inF);
      for (let c = 0; c < inF; c++) xs[c] = h[c] * xt[c];
      for (let gi = 0; gi < groups; gi++) {
        const c = gi * 4, o = gi * 16;
        const x0 = xs[c], x1 = xs[c + 1], x2 = xs[c + 2], x3 = xs[c + 3];
        lut[o] = -x0 - x1 - x2 - x3; // all bits clear: every sign −1 (padding bits are 0 and xs is 0 there)
        for (let m = 1; m < 16; m++) {
          const low = m & -m; // lowest set bit: entry m = entry without it, with that sign flipped to +
          const xj = low === 1 ? x0 : low === 2 ? x1 : low === 4 ? x2 : x3;
          lut[o + m] = lut[o + (m ^ low)] + 2 * xj;
        }
      }
      const planeBase = p * out * wpr;
      const yo = t * out;
      for (let r = 0; r < out; r++) {
        let acc = 0;
        const rowBase = planeBase + r * wpr;
        for (let w = 0; w < wpr; w++) {
          const word = planes[rowBase + w];
          const o = w * 128;
          acc += lut[o + (word & 15)] + lut[o + 16 + ((word >>> 4) & 15)] +
            lut[o + 32 + ((word >>> 8) & 15)] + lut[o + 48 + ((word >>> 12) & 15)] +
            lut[o + 64 + ((word >>> 16) & 15)] + lut[o + 80 + ((word >>> 20) & 15)] +
            lut[o + 96 + ((word >>> 24) & 15)] + lut[o + 112 + (word >>> 28)];
        }
        y[yo + r] += layer.g[p * out + r] * acc;
      }
    }
  }
  return y;
}

/**
 * A packed layer as the reference forward and backward use it: the add/subtract product of
 * {@link residualBinaryMatmul} forward, and the dequantized What (formed once, on first use) backward.
 *
 * @example
 * ```ts
 * import { PackedLinear } from "./residual_binary.ts";
 * const layer = new PackedLinear({ out: 1, in: 2, k: 1, planes: new Uint32Array([1]), g: new Float32Array([2]),
 *   h: new Float32Array([1, 1]) }); // What = [[2, -2]]
 * layer.forward(new Float32Array([3, 1]), 1); // [4]
 * ```
 */
export class PackedLinear implements LinearLayer, ResidualBinaryLinear {
  readonly out: number;
  readonly in: number;
  readonly k: number;
  readonly planes: Uint32Array;
  readonly g: Float32Array;
  readonly h: Float32Array;
  #dense?: Float32Array;

  /** Wraps (does not copy) the arrays of `layer` after checking their sizes. */
  constructor(layer: ResidualBinaryLinear, name = "PackedLinear") {
    validateResidualBinary(layer, name);
    this.out = layer.out;
    this.in = layer.in;
    this.k = layer.k;
    this.planes = layer.planes;
    this.g = layer.g;
    this.h = layer.h;
  }

  forward(x: Float32Array, T: number): Float32Array {
    checkInput("PackedLinear", x, T, this.in);
    return residualBinaryMatmul(this, x, T);
  }

  backward(x: Float32Array, dY: Float32Array, T: number, dX: Float32Array, dW?: Float32Array): void {
    this.#dense ??= dequantize(this);
    matmulBackward(dY, x, this.#dense, T, this.in, this.out, dX, dW);
  }
}

/** A model whose replaced linears are all packed: what a .rabit file holds and the GPU engine runs. */
export type PackedModel = LlamaModel<PackedLinear>;
