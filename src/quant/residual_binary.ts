// The residual-binary representation of one linear layer (METHOD.md §1):
//   What = sum_{i<k} g_i ⊙ B_i ⊙ h_i,  B_i ∈ {-1,+1}^(out×in) packed as in bitpack.ts.

import { unpackSigns, wordsPerRow } from "./bitpack.ts";

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

/** Forms the dense (out, in) matrix What (for tests and error reports; inference never does this). */
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
 */
export function residualBinaryMatmul(layer: ResidualBinaryLinear, x: Float32Array, T = 1): Float32Array {
  const { out, in: inF, k } = layer;
  if (x.length !== T * inF) {
    throw new RangeError(
      `residualBinaryMatmul: expected x of ${T}x${inF}=${T * inF} values, found ${x.length}`,
    );
  }
  const wpr = wordsPerRow(inF);
  const y = new Float32Array(T * out);
  const xs = new Float32Array(wpr * 32); // h_i ⊙ x, zero-padded to whole words
  for (let t = 0; t < T; t++) {
    const xt = x.subarray(t * inF, (t + 1) * inF);
    const yt = y.subarray(t * out, (t + 1) * out);
    for (let p = 0; p < k; p++) {
      const h = layer.h.subarray(p * inF, (p + 1) * inF);
      let total = 0; // sum of xs: a set bit adds xs[c], a clear bit subtracts it, so acc = 2*sum(set) - total
      for (let c = 0; c < inF; c++) {
        xs[c] = h[c] * xt[c];
        total += xs[c];
      }
      const planeBase = p * out * wpr;
      for (let r = 0; r < out; r++) {
        let pos = 0;
        const rowBase = planeBase + r * wpr;
        for (let w = 0; w < wpr; w++) {
          let word = layer.planes[rowBase + w];
          const base = w << 5;
          while (word !== 0) {
            const j = 31 - Math.clz32(word & -word); // index of the lowest set bit
            pos += xs[base + j];
            word &= word - 1;
          }
        }
        yt[r] += layer.g[p * out + r] * (2 * pos - total);
      }
    }
  }
  return y;
}
