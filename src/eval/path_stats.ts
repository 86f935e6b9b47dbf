// Streaming statistics of one binarized layer's paths against its teacher (METHOD.md §6): Pearson
// correlations over all T×out output elements, accumulated in float64 sums so any number of chunks adds up.
//
// Dimension legend: T tokens in a chunk, in/out features of the layer, k paths.
// Path i's output is y_i = g_i ⊙ (B_i (h_i ⊙ x)); the teacher's is y_t = W_t x; both (T, out).

import { checkInput, type LinearLayer } from "../model/linear.ts";
import {
  pathView,
  type ResidualBinaryLinear,
  residualBinaryMatmul,
  validateResidualBinary,
} from "../quant/residual_binary.ts";
import { wordsPerRow } from "../quant/bitpack.ts";

/** Running sums Σa, Σb, Σa², Σb², Σab of paired samples, for their Pearson correlation. */
export class PearsonSums {
  /** Pairs added. */
  n = 0;
  /** Σa */
  sa = 0;
  /** Σb */
  sb = 0;
  /** Σa² */
  saa = 0;
  /** Σb² */
  sbb = 0;
  /** Σab */
  sab = 0;

  /** Adds the pairs (a[e], b[e]) for every e (the arrays are of equal length). */
  addArrays(a: ArrayLike<number>, b: ArrayLike<number>): void {
    // Local sums keep the hot loop in registers; one update of the fields per call.
    let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    for (let e = 0; e < a.length; e++) {
      const x = a[e], y = b[e];
      sa += x, sb += y, saa += x * x, sbb += y * y, sab += x * y;
    }
    this.n += a.length;
    this.sa += sa, this.sb += sb, this.saa += saa, this.sbb += sbb, this.sab += sab;
  }

  /**
   * corr(a, b), or null when it is undefined (fewer than two samples, or a constant side). Clamped to
   * [-1, 1]: for exactly (anti)proportional samples rounding can land a hair outside.
   */
  value(): number | null {
    const { n } = this;
    if (n < 2) return null;
    const cov = n * this.sab - this.sa * this.sb;
    const va = n * this.saa - this.sa * this.sa;
    const vb = n * this.sbb - this.sb * this.sb;
    // Variances below float64 rounding of the sums are zero in truth: a constant side has no correlation.
    const tiny = (s2: number) => 1e-12 * n * s2;
    if (!(va > tiny(this.saa)) || !(vb > tiny(this.sbb))) return null;
    return Math.max(-1, Math.min(1, cov / Math.sqrt(va * vb)));
  }
}

/** The §6 diagnostics of one layer. Correlations are null where undefined (k = 1, or a constant output). */
export interface LayerPathDiagnostics {
  /** Parameter name, e.g. "layers.0.wq". */
  name: string;
  /** Paths k. */
  k: number;
  /** corr(y_1, y_2): negative when path 2 corrects path 1 (co-adaptation). */
  pathCorrelation: number | null;
  /** corr(y_t − y_1, y_2): positive when path 2 fits what path 1 left of the teacher. */
  residualAlignment: number | null;
  /** corr(y_t − Σ_{j<i} y_j, y_i) for i = 2..k (the first is residualAlignment); empty for k = 1. */
  pathAlignments: (number | null)[];
  /**
   * Share of the weights whose second sign equals the first (B_2 = B_1): path 2 adds to path 1's magnitude
   * there (the outer levels ±(|g_1h_1| + |g_2h_2|)) and subtracts elsewhere. With equal scales everywhere
   * the two paths' matrices would correlate 2·outerShare − 1 (a Gaussian latent cut at its least-squares
   * scale gives 0.42); {@link weightCorrelation} is that correlation with the scales, which weigh the rows and
   * columns of large scales more. Null for k = 1.
   */
  outerShare: number | null;
  /**
   * Path 2's steps against path 1's over the whole matrix, Σ|g_2[r]·h_2[c]| / Σ|g_1[r]·h_1[c]| (it factors
   * into Σ|g_2|·Σ|h_2| / (Σ|g_1|·Σ|h_1|); a ratio of sums, so one near-zero scale of path 1 cannot dominate
   * it). Null for k = 1 or an all-zero path 1.
   */
  scaleRatio: number | null;
  /**
   * tr(A_1 A_2ᵀ) / (‖A_1‖‖A_2‖) with A_i = diag(g_i) B_i diag(h_i): paths 1 and 2's matrices correlated
   * weight by weight, which is what corr(y_1, y_2) would be for inputs spread evenly over every direction.
   * Real inputs are not: a layer that reads most of its output from a few strong input directions
   * (stories260K's wq and wk) has the output correlation of those directions
   * (experiments/input_directions.ts). Null for k = 1 or an all-zero path.
   */
  weightCorrelation: number | null;
}

/** popcount of a 32-bit word. */
function popcount(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Share of entries where planes 0 and 1 hold the same sign, padding bits excluded. */
function samePlaneShare(layer: ResidualBinaryLinear): number {
  const { out, in: inF } = layer;
  const wpr = wordsPerRow(inF);
  const words = out * wpr;
  const tail = inF % 32; // columns in the last word of a row (0: a full word)
  const lastMask = tail === 0 ? 0xffffffff : ((1 << tail) >>> 0) - 1;
  let differ = 0;
  for (let r = 0; r < out; r++) {
    for (let w = 0; w < wpr; w++) {
      const x = (layer.planes[r * wpr + w] ^ layer.planes[words + r * wpr + w]) >>> 0;
      differ += popcount(w === wpr - 1 ? (x & lastMask) >>> 0 : x);
    }
  }
  return (out * inF - differ) / (out * inF);
}

/** Σ|g_2|·Σ|h_2| / (Σ|g_1|·Σ|h_1|), or null when path 1 is all zero (or a sum is not finite). */
function pathScaleRatio(layer: ResidualBinaryLinear): number | null {
  const { out, in: inF, g, h } = layer;
  const absSum = (a: Float32Array, from: number, n: number) => {
    let t = 0;
    for (let i = from; i < from + n; i++) t += Math.abs(a[i]);
    return t;
  };
  const ratio = (absSum(g, out, out) * absSum(h, inF, inF)) / (absSum(g, 0, out) * absSum(h, 0, inF));
  return Number.isFinite(ratio) ? ratio : null;
}

/** tr(A_1 A_2ᵀ) / (‖A_1‖‖A_2‖) of paths 1 and 2 from their bits (±1 squares to 1, so ‖A_i‖² factors). */
function pathMatrixCorrelation(layer: ResidualBinaryLinear): number | null {
  const { out, in: inF, g, h } = layer;
  const wpr = wordsPerRow(inF);
  const words = out * wpr;
  // h_1[c]·h_2[c] per column, and Σ_c of it: Σ_c h1h2·s1s2 = 2·Σ_{c: s1 = s2} h1h2 − Σ_c h1h2.
  const hh = new Float64Array(inF);
  let hhSum = 0;
  for (let c = 0; c < inF; c++) hhSum += hh[c] = h[c] * h[inF + c];
  let cross = 0;
  for (let r = 0; r < out; r++) {
    let same = 0;
    for (let w = 0; w < wpr; w++) {
      const agree = ~(layer.planes[r * wpr + w] ^ layer.planes[words + r * wpr + w]);
      const end = Math.min(32, inF - w * 32);
      for (let b = 0; b < end; b++) if ((agree >>> b) & 1) same += hh[w * 32 + b];
    }
    cross += g[r] * g[out + r] * (2 * same - hhSum);
  }
  const sq = (a: Float32Array, from: number, n: number) => {
    let t = 0;
    for (let i = from; i < from + n; i++) t += a[i] * a[i];
    return t;
  };
  const norms = sq(g, 0, out) * sq(h, 0, inF) * sq(g, out, out) * sq(h, inF, inF);
  if (!(norms > 0) || !Number.isFinite(norms)) return null;
  return Math.max(-1, Math.min(1, cross / Math.sqrt(norms)));
}

/**
 * Accumulates the §6 statistics of one packed layer on the inputs it is given. Each path's output comes
 * straight from its packed bits (the add/subtract product of residual_binary.ts on a one-plane view),
 * so no dense What is ever formed.
 *
 * @example
 * ```ts
 * import { LayerPathStats } from "./path_stats.ts";
 * import { DenseLinear } from "../model/linear.ts";
 * // Two paths with B_1 = [+1 +1], B_2 = [-1 -1] and unit scales: y_2 = -y_1 exactly.
 * const layer = { out: 1, in: 2, k: 2, planes: new Uint32Array([3, 0]), g: new Float32Array([1, 1]),
 *   h: new Float32Array([1, 1, 1, 1]) };
 * const stats = new LayerPathStats(layer, new DenseLinear(new Float32Array([1, 0]), 1, 2), "demo");
 * stats.add(new Float32Array([1, 2, 3, 5, -1, 0]), 3);
 * stats.result().pathCorrelation; // -1
 * ```
 */
export class LayerPathStats {
  /** The layer's name in results and errors. */
  readonly name: string;
  readonly #layer: ResidualBinaryLinear;
  readonly #teacher: LinearLayer;
  /** corr(y_1, y_2). */
  readonly #pair = new PearsonSums();
  /** [i − 1] = corr(y_t − Σ_{j<i} y_j, y_i) for i = 1..k−1 (0-based path i). */
  readonly #align: PearsonSums[];
  /** One-plane views of the layer, for per-path products. */
  readonly #planes: ResidualBinaryLinear[];

  /** `teacher` computes y_t for the same x; its shape must be the layer's. */
  constructor(layer: ResidualBinaryLinear, teacher: LinearLayer, name = "layer") {
    validateResidualBinary(layer, name);
    if (teacher.out !== layer.out || teacher.in !== layer.in) {
      throw new RangeError(
        `${name}: expected a teacher layer of shape ${layer.out}x${layer.in}, found ${teacher.out}x${teacher.in}`,
      );
    }
    this.name = name;
    this.#layer = layer;
    this.#teacher = teacher;
    this.#align = Array.from({ length: layer.k - 1 }, () => new PearsonSums());
    this.#planes = Array.from({ length: layer.k }, (_, p) => pathView(layer, p));
  }

  /** Adds the outputs of every path and of the teacher on x (T, in). */
  add(x: Float32Array, T: number): void {
    checkInput(`LayerPathStats ${this.name}`, x, T, this.#layer.in);
    const k = this.#layer.k;
    if (k < 2) return; // one path has no partner: nothing to correlate
    const ys = this.#planes.map((plane) => residualBinaryMatmul(plane, x, T)); // k × (T, out)
    const yt = this.#teacher.forward(x, T); // (T, out)
    this.#pair.addArrays(ys[0], ys[1]);
    // What the teacher output still lacks after paths 0..i−1, in float64 so long sums do not drift.
    const rest = Float64Array.from(yt);
    for (let i = 1; i < k; i++) {
      const prev = ys[i - 1];
      for (let e = 0; e < rest.length; e++) rest[e] -= prev[e];
      this.#align[i - 1].addArrays(rest, ys[i]);
    }
  }

  /** The correlations over everything added so far. */
  result(): LayerPathDiagnostics {
    const pathAlignments = this.#align.map((s) => s.value());
    return {
      name: this.name,
      k: this.#layer.k,
      pathCorrelation: this.#layer.k >= 2 ? this.#pair.value() : null,
      residualAlignment: pathAlignments[0] ?? null,
      pathAlignments,
      outerShare: this.#layer.k >= 2 ? samePlaneShare(this.#layer) : null,
      scaleRatio: this.#layer.k >= 2 ? pathScaleRatio(this.#layer) : null,
      weightCorrelation: this.#layer.k >= 2 ? pathMatrixCorrelation(this.#layer) : null,
    };
  }
}
