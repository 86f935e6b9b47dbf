// Operations on the scale vectors of a residual-binary layer that leave its signs alone: equal-norm
// rebalancing of each (g_i, h_i) pair (METHOD.md §3) and rounding through fp16 (what a .rabit file stores).
//
// Dimension legend: out = rows, in = columns, k = paths; g is (k, out), h is (k, in).

import { roundThroughF16 } from "../util/fp16.ts";
import { type ResidualBinaryLinear, validateResidualBinary } from "./residual_binary.ts";

/**
 * Rescales one pair in place to g·c, h/c with c = sqrt(||h||/||g||), so both get the norm
 * sqrt(||g||·||h||) and every product g[r]·h[c] is unchanged (up to rounding). A pair with a zero vector
 * contributes nothing, so both vectors are set to zero. Returns c (0 for a zeroed pair).
 *
 * @example
 * ```ts
 * import { rebalancePair } from "./scales.ts";
 * const g = new Float32Array([100, 0]), h = new Float32Array([0.01, 0.01]);
 * rebalancePair(g, h); // g ≈ [1.19, 0], h ≈ [0.84, 0.84]: both norms ≈ 1.19
 * ```
 */
export function rebalancePair(g: Float32Array | Float64Array, h: Float32Array | Float64Array): number {
  let gg = 0;
  let hh = 0;
  for (let i = 0; i < g.length; i++) gg += g[i] * g[i];
  for (let i = 0; i < h.length; i++) hh += h[i] * h[i];
  if (!(gg > 0 && hh > 0)) {
    g.fill(0);
    h.fill(0);
    return 0;
  }
  const c = Math.sqrt(Math.sqrt(hh) / Math.sqrt(gg));
  for (let i = 0; i < g.length; i++) g[i] *= c;
  for (let i = 0; i < h.length; i++) h[i] /= c;
  return c;
}

/**
 * A copy of the layer with every (g_i, h_i) pair rebalanced to equal norms (signs shared, not copied).
 *
 * @example
 * ```ts
 * import { rebalanceLayer } from "./scales.ts";
 * import { svidFit } from "./svid.ts";
 * const layer = rebalanceLayer(svidFit(new Float32Array([1, -2, 3, -4]), { out: 2, in: 2 }));
 * ```
 */
export function rebalanceLayer(layer: ResidualBinaryLinear): ResidualBinaryLinear {
  validateResidualBinary(layer);
  const { out, in: inF, k } = layer;
  const g = layer.g.slice();
  const h = layer.h.slice();
  for (let p = 0; p < k; p++) {
    rebalancePair(g.subarray(p * out, (p + 1) * out), h.subarray(p * inF, (p + 1) * inF));
  }
  return { ...layer, g, h };
}

/**
 * A copy of the layer whose g and h are what survives storage as fp16 (round to nearest even), so
 * in-memory results match a saved-and-loaded .rabit file. Throws a RangeError when a scale overflows fp16
 * (|x| > 65504); values below fp16's range become subnormal or zero.
 *
 * @example
 * ```ts
 * import { roundScalesF16 } from "./scales.ts";
 * import { svidFit } from "./svid.ts";
 * const layer = roundScalesF16(svidFit(new Float32Array([1, -2, 3, -4]), { out: 2, in: 2 }));
 * ```
 */
export function roundScalesF16(layer: ResidualBinaryLinear): ResidualBinaryLinear {
  validateResidualBinary(layer);
  const g = roundThroughF16(layer.g);
  const h = roundThroughF16(layer.h);
  for (const [name, src, dst] of [["g", layer.g, g], ["h", layer.h, h]] as const) {
    for (let i = 0; i < dst.length; i++) {
      if (!Number.isFinite(dst[i])) {
        throw new RangeError(
          `roundScalesF16: expected ${name} values within fp16 range (|x| <= 65504), found ${
            src[i]
          } at index ${i}`,
        );
      }
    }
  }
  return { ...layer, g, h };
}
