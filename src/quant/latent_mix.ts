// The latent mix: a homotopy from the full-precision latent to the binarized layer, annealed away during
// training (our option, `--latent-mix`; not in the paper). The student computes with
//   W_eff = (1 − α)·What + α·W        (What: the k-path derivation of W, METHOD.md §2)
// so at α = 1 it is the latent itself (at the start of a coupled run, the teacher's weight), at α = 0 the
// 2-bit layer. A schedule takes α to 0 before training ends, so the last steps and the packed file see
// the binary layer alone. Backward, with the identity STE for the binary part:
//   dW    = α·dW_eff + (1 − α)·STE(dW_eff) = dW_eff    (unchanged: the STE is the identity)
//   dg,dh = (1 − α)·(the derivation's scale gradients of dW_eff)
// Only the coupled derivation has a latent in What's own coordinates (rabit, dbllm, onebit: W is the layer's
// weight); `standard` keeps k latents whose sum is not a weight, so the mix is refused there, as it is with
// the clipped STE (whose mask would apply to the binary part only).
//
// CPU reference of the WebGPU `lerp` kernel (kernels/lerp.wgsl) and of the dg, dh scaling.
// Dimension legend: out = rows of W, in = columns; wHat, w: (out, in).

/**
 * Checks α of a latent mix: finite, 0 ≤ α < 1 (α = 1 would leave the scales no gradient at all).
 *
 * @example
 * ```ts
 * import { checkLatentMix } from "./latent_mix.ts";
 * checkLatentMix(0.5); // 0.5
 * ```
 */
export function checkLatentMix(alpha: number): number {
  if (!(alpha >= 0 && alpha < 1)) {
    throw new RangeError(`latent mix: expected a weight α in [0, 1) for the latent, found ${alpha}`);
  }
  return alpha;
}

/**
 * In place: wHat ← wHat + α·(w − wHat), the forward of the mix (f32, as the kernel's fma computes it to
 * rounding).
 *
 * @example
 * ```ts
 * import { mixLatentForward } from "./latent_mix.ts";
 * const wHat = new Float32Array([1, -1]);
 * mixLatentForward(wHat, new Float32Array([0.5, -0.5]), 0.5);
 * wHat; // [0.75, -0.75]
 * ```
 */
export function mixLatentForward(wHat: Float32Array, w: Float32Array, alpha: number): void {
  checkLatentMix(alpha);
  if (alpha === 0) return; // the binary layer alone, whatever the latent's layout
  if (w.length !== wHat.length) {
    throw new RangeError(`mixLatentForward: expected a latent of ${wHat.length} values, found ${w.length}`);
  }
  for (let i = 0; i < wHat.length; i++) wHat[i] += alpha * (w[i] - wHat[i]);
}

/**
 * In place: the scale gradients dg, dh that the derivation's backward computed from dW_eff, times (1 − α)
 * (the binary part's share of W_eff). The latent's dW stays dW_eff.
 *
 * @example
 * ```ts
 * import { mixLatentBackward } from "./latent_mix.ts";
 * const dg = new Float32Array([2]), dh = new Float32Array([4, -4]);
 * mixLatentBackward(dg, dh, 0.25);
 * [dg, dh]; // [[1.5], [3, -3]]
 * ```
 */
export function mixLatentBackward(dg: Float32Array, dh: Float32Array, alpha: number): void {
  checkLatentMix(alpha);
  if (alpha === 0) return;
  const keep = 1 - alpha;
  for (let i = 0; i < dg.length; i++) dg[i] *= keep;
  for (let i = 0; i < dh.length; i++) dh[i] *= keep;
}
