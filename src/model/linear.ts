// The linear-layer interface the reference forward and backward call for every block linear: dense
// weights (here), packed residual-binary layers (quant/) and trainable binarized layers (train/) implement it.
//
// Dimension legend: T tokens, in/out features of the layer; W is (out, in) and y = x · Wᵀ.

import { matmul } from "./ops.ts";
import { matmulBackward } from "./ops_backward.ts";

/** One linear layer y (T, out) = x (T, in) · Wᵀ as forwardChunk and backwardChunk see it. */
export interface LinearLayer {
  /** Output features (rows of W). */
  readonly out: number;
  /** Input features (columns of W). */
  readonly in: number;
  /** y (T, out) = x (T, in) · Wᵀ, a new array. */
  forward(x: Float32Array, T: number): Float32Array;
  /**
   * dX (T, in) += dY (T, out) · W, and, when `dW` is given, dW (out, in) += dYᵀ · x: the gradient of the
   * matrix the layer computes with (for a binarized layer its What; train/ maps it onto latents and scales).
   * Nothing is kept between calls beyond what the layer itself owns, so calls may interleave freely.
   */
  backward(x: Float32Array, dY: Float32Array, T: number, dX: Float32Array, dW?: Float32Array): void;
}

/**
 * A float (out, in) weight as a {@link LinearLayer}; `w` is a live view (e.g. of a ParamTable).
 *
 * @example
 * ```ts
 * import { DenseLinear } from "./linear.ts";
 * const layer = new DenseLinear(new Float32Array([1, 2, 3, 4]), 2, 2); // W = [[1, 2], [3, 4]]
 * layer.forward(new Float32Array([1, 1]), 1); // [3, 7]
 * ```
 */
export class DenseLinear implements LinearLayer {
  /** (out, in) */
  readonly w: Float32Array;
  readonly out: number;
  readonly in: number;

  /** Wraps (does not copy) `w`, which must hold out × inF values. */
  constructor(w: Float32Array, out: number, inF: number) {
    if (w.length !== out * inF) {
      throw new RangeError(`DenseLinear: expected W of ${out}x${inF}=${out * inF} values, found ${w.length}`);
    }
    this.w = w;
    this.out = out;
    this.in = inF;
  }

  forward(x: Float32Array, T: number): Float32Array {
    checkInput("DenseLinear", x, T, this.in);
    return matmul(x, this.w, T, this.in, this.out);
  }

  backward(x: Float32Array, dY: Float32Array, T: number, dX: Float32Array, dW?: Float32Array): void {
    matmulBackward(dY, x, this.w, T, this.in, this.out, dX, dW);
  }
}

/** Throws a RangeError unless x holds T rows of `inF` values. */
export function checkInput(who: string, x: Float32Array, T: number, inF: number): void {
  if (x.length !== T * inF) {
    throw new RangeError(`${who}: expected x of ${T}x${inF}=${T * inF} values, found ${x.length}`);
  }
}
