// Int8 storage of a float matrix with one scale per row: the optional storage of the classifier and the
// token embedding (the float tensors a 2-bit model keeps; fp16 stays the default). W[r, c] ≈ s_r · q[r, c]
// with s_r = max_c |W[r, c]| / 127 and q = round(W / s_r) in [−127, 127] (−128 unused, so the code is
// symmetric). One scale per row keeps a row's outliers from costing other rows their resolution, and makes
// the classifier's product y_r = s_r · Σ_c q[r, c] · x_c: integer codes times activations, one multiply
// per row at the end.
//
// Dimension legend: out rows (vocabulary for the classifier and embedding), in columns (model dim).

import { checkInput, type LinearLayer } from "../model/linear.ts";
import { classifierWeight, type LlamaModel } from "../model/model.ts";

/** A (out, in) matrix as int8 codes and per-row scales. */
export interface Int8Rows {
  /** Rows. */
  readonly out: number;
  /** Columns. */
  readonly in: number;
  /** (out, in) codes in [−127, 127], row-major. */
  readonly q: Int8Array;
  /** (out) per-row scale: W[r, c] ≈ scales[r] · q[r, c]; 0 for an all-zero row. */
  readonly scales: Float32Array;
}

/**
 * Int8 codes with per-row scales of a row-major (out, in) matrix; throws a RangeError on a wrong length or
 * a non-finite value (which has no code).
 *
 * @example
 * ```ts
 * import { quantizeRowsInt8 } from "./int8_rows.ts";
 * const r = quantizeRowsInt8(new Float32Array([0.5, -1, 2, 4]), 2, 2);
 * [...r.q]; // [64, -127, 64, 127]
 * r.scales[1] * 127; // 4
 * ```
 */
export function quantizeRowsInt8(w: Float32Array, out: number, inF: number): Int8Rows {
  if (!Number.isInteger(out) || !Number.isInteger(inF) || out < 1 || inF < 1) {
    throw new RangeError(`quantizeRowsInt8: expected positive integer out and in, found ${out}, ${inF}`);
  }
  if (w.length !== out * inF) {
    throw new RangeError(`quantizeRowsInt8: expected ${out}x${inF}=${out * inF} values, found ${w.length}`);
  }
  const q = new Int8Array(out * inF);
  const scales = new Float32Array(out);
  for (let r = 0; r < out; r++) {
    const row = w.subarray(r * inF, (r + 1) * inF);
    let max = 0;
    for (let c = 0; c < inF; c++) {
      const a = Math.abs(row[c]);
      if (!(a <= Number.MAX_VALUE)) {
        throw new RangeError(
          `quantizeRowsInt8: row ${r} column ${c} is ${row[c]}; int8 codes need finite values`,
        );
      }
      if (a > max) max = a;
    }
    if (max === 0) continue; // an all-zero row: scale 0, codes 0
    const s = Math.fround(max / 127);
    scales[r] = s;
    const inv = 1 / s;
    for (let c = 0; c < inF; c++) q[r * inF + c] = Math.max(-127, Math.min(127, Math.round(row[c] * inv)));
  }
  return { out, in: inF, q, scales };
}

/** The float matrix the codes stand for: (out, in) row-major, W[r, c] = scales[r] · q[r, c]. */
export function dequantizeRowsInt8(m: Int8Rows): Float32Array {
  const w = new Float32Array(m.out * m.in);
  for (let r = 0; r < m.out; r++) {
    const s = m.scales[r];
    for (let c = 0; c < m.in; c++) w[r * m.in + c] = s * m.q[r * m.in + c];
  }
  return w;
}

/** Throws a RangeError unless `m`'s arrays match its shape and its scales are finite and non-negative. */
export function validateInt8Rows(m: Int8Rows, what: string): void {
  if (m.q.length !== m.out * m.in) {
    throw new RangeError(
      `${what}: expected ${m.out}x${m.in}=${m.out * m.in} int8 codes, found ${m.q.length}`,
    );
  }
  if (m.scales.length !== m.out) {
    throw new RangeError(`${what}: expected ${m.out} row scales, found ${m.scales.length}`);
  }
  for (let r = 0; r < m.out; r++) {
    const s = m.scales[r];
    if (!(s >= 0 && s <= Number.MAX_VALUE)) {
      throw new RangeError(`${what}: row scale ${r} is ${s}; expected a finite value >= 0`);
    }
  }
}

/**
 * The TypeScript reference of the int8 product (what the wasm and WebGPU kernels are tested against):
 * y (T, out) = x (T, in) · Wᵀ with W = s ⊙ q, summed in f64 per row, then scaled once. Inference only.
 *
 * @example
 * ```ts
 * import { Int8RowsLinear, quantizeRowsInt8 } from "./int8_rows.ts";
 * const layer = new Int8RowsLinear(quantizeRowsInt8(new Float32Array([1, 2, 3, 4]), 2, 2));
 * layer.forward(new Float32Array([1, 1]), 1); // ≈ [3, 7]
 * ```
 */
export class Int8RowsLinear implements LinearLayer {
  readonly out: number;
  readonly in: number;
  /** The codes and scales (not copied). */
  readonly rows: Int8Rows;

  /** Wraps `rows` after checking their sizes and scales. */
  constructor(rows: Int8Rows) {
    validateInt8Rows(rows, "Int8RowsLinear");
    this.rows = rows;
    this.out = rows.out;
    this.in = rows.in;
  }

  forward(x: Float32Array, T: number): Float32Array {
    checkInput("Int8RowsLinear", x, T, this.in);
    const { q, scales } = this.rows, inF = this.in, out = this.out;
    const y = new Float32Array(T * out);
    for (let t = 0; t < T; t++) {
      const xt = x.subarray(t * inF, (t + 1) * inF);
      for (let r = 0; r < out; r++) {
        let acc = 0;
        const base = r * inF;
        for (let c = 0; c < inF; c++) acc += q[base + c] * xt[c];
        y[t * out + r] = scales[r] * acc;
      }
    }
    return y;
  }

  backward(): void {
    throw new Error("Int8RowsLinear is for inference: int8 storage is applied after training, not trained");
  }
}

/**
 * The classifier of a model as int8 codes with per-row scales: what every backend's int8 classifier kernel
 * multiplies with. For a model whose file stored it as int8 (`classifierStorage` "i8") the params hold the
 * dequantized values, from which the same codes come back exactly.
 *
 * @example
 * ```ts
 * import { classifierInt8Rows } from "./int8_rows.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * classifierInt8Rows({ config, params, quantized: new Map() }).scales.length; // 512
 * ```
 */
export function classifierInt8Rows(model: LlamaModel): Int8Rows {
  const c = model.config;
  return quantizeRowsInt8(classifierWeight(model), c.vocabSize, c.dim);
}
