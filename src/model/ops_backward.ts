// Backward operators of the CPU reference transformer, one per forward operator of ops.ts (llm.c style):
// the oracle for the GPU training kernels. Every function ADDS into the gradient buffers it is given.
//
// Dimension legend: T tokens in a window, S visible key positions (S ≥ T), D model width, V vocabulary,
// nH query heads, nKV key/value heads, hs head size, kvD = nKV * hs, in/out features of a linear layer.

import { matmul, ropeForward } from "./ops.ts";
import type { AttentionShape } from "./ops.ts";

/** (rows, cols) row-major → (cols, rows) row-major. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = m[o + c];
  }
  return out;
}

/**
 * Backward of {@link matmul} y (T, out) = x (T, in) · Wᵀ:
 * dX (T, in) += dY · W when `dX` is given; dW (out, in) += dYᵀ · x when `dW` is given.
 * Both products run through the forward `matmul` on transposed copies, so their inner loops are
 * contiguous reductions (over `out` for dX, over T for dW) with four rows per pass.
 *
 * @example
 * ```ts
 * import { matmulBackward } from "./ops_backward.ts";
 * const dX = new Float32Array(2), dW = new Float32Array(2);
 * // y = x·Wᵀ with x (1, 2) = [3, 4], W (1, 2) = [1, 2]; dY = [1]
 * matmulBackward(new Float32Array([1]), new Float32Array([3, 4]), new Float32Array([1, 2]), 1, 2, 1, dX, dW);
 * // dX = [1, 2], dW = [3, 4]
 * ```
 */
export function matmulBackward(
  dY: Float32Array, // (T, out)
  x: Float32Array, // (T, in)
  w: Float32Array, // (out, in)
  T: number,
  inF: number,
  outF: number,
  dX?: Float32Array, // (T, in)
  dW?: Float32Array, // (out, in)
): void {
  if (dX) matmul(dY, transpose(w, outF, inF), T, outF, inF, dX, true); // Wᵀ (in, out)
  if (dW) matmul(transpose(dY, T, outF), transpose(x, T, inF), outF, T, inF, dW, true); // (out, T)·(in, T)ᵀ
}

/**
 * Backward of {@link rmsnormForward} out = w ⊙ x · r, r = 1/sqrt(mean(x²) + eps) per row:
 * dX += r·(w ⊙ dOut) − x · r³/D · Σ_i dOut_i w_i x_i;  dW += Σ_t dOut ⊙ x · r.
 * x, dOut, dX: (T, D); w, dW: (D); invRms: (T), the r the forward saved.
 *
 * @example
 * ```ts
 * import { rmsnormForward } from "./ops.ts";
 * import { rmsnormBackward } from "./ops_backward.ts";
 * const x = new Float32Array([1, 2]), w = new Float32Array([1, 1]), r = new Float32Array(1);
 * rmsnormForward(x, w, 1, 2, 1e-5, undefined, r);
 * const dX = new Float32Array(2);
 * rmsnormBackward(new Float32Array([1, 0]), x, w, r, 1, 2, dX);
 * ```
 */
export function rmsnormBackward(
  dOut: Float32Array,
  x: Float32Array,
  w: Float32Array,
  invRms: Float32Array,
  T: number,
  D: number,
  dX: Float32Array,
  dW?: Float32Array,
): void {
  for (let t = 0; t < T; t++) {
    const o = t * D;
    const r = invRms[t];
    let dot = 0; // Σ_i dOut_i w_i x_i
    for (let i = 0; i < D; i++) dot += dOut[o + i] * w[i] * x[o + i];
    const c = (dot * r * r * r) / D;
    for (let i = 0; i < D; i++) dX[o + i] += r * w[i] * dOut[o + i] - c * x[o + i];
    if (dW) { for (let i = 0; i < D; i++) dW[i] += dOut[o + i] * x[o + i] * r; }
  }
}

/**
 * Backward of {@link ropeForward}: a rotation's gradient is the inverse rotation, applied in place
 * to dV (T, width) where row t sits at position pos0 + t.
 *
 * @example
 * ```ts
 * import { ropeBackward } from "./ops_backward.ts";
 * const dQ = new Float32Array([1, 0, 0, 1]); // (T=2, width=2), hs = 2
 * ropeBackward(dQ, 2, 2, 2, 0, 10000);
 * ```
 */
export function ropeBackward(
  dV: Float32Array,
  T: number,
  width: number,
  hs: number,
  pos0: number,
  theta: number,
): void {
  ropeForward(dV, T, width, hs, pos0, theta, -1);
}

/**
 * Backward of {@link attentionForward} from its saved softmax weights. Query t (position S − T + t)
 * saw keys 0..S−T+t; with P = probs[h, t, :] and g = dOut[t, h, :]:
 *   dP_s = g · v_s,   dScore_s = P_s (dP_s − Σ_s' P_s' dP_s') / sqrt(hs),
 *   dQ[t, h] += Σ_s dScore_s k_s,   dK[s] += dScore_s q[t, h],   dV[s] += P_s g.
 * The nH / nKV query heads of a group all add into their shared key/value head.
 * q, dOut, dQ: (T, nH·hs); k, v, dK, dV: (S, kvD); probs: (nH, T, S).
 *
 * @example
 * ```ts
 * import { attentionForward } from "./ops.ts";
 * import { attentionBackward } from "./ops_backward.ts";
 * const shape = { nHeads: 1, nKvHeads: 1, headSize: 2 };
 * const q = new Float32Array([1, 0, 0, 1]), k = q.slice(), v = new Float32Array([1, 2, 3, 4]);
 * const probs = new Float32Array(4);
 * attentionForward(q, k, v, 2, 2, shape, undefined, probs);
 * const dQ = new Float32Array(4), dK = new Float32Array(4), dV = new Float32Array(4);
 * attentionBackward(new Float32Array([1, 1, 1, 1]), q, k, v, probs, 2, 2, shape, dQ, dK, dV);
 * ```
 */
export function attentionBackward(
  dOut: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  probs: Float32Array,
  T: number,
  S: number,
  shape: AttentionShape,
  dQ: Float32Array,
  dK: Float32Array,
  dV: Float32Array,
): void {
  const { nHeads, nKvHeads, headSize: hs } = shape;
  const qDim = nHeads * hs;
  const kvD = nKvHeads * hs;
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(hs);
  // As in the forward, keys/values and their gradients live transposed, (nKV, hs, S), so every inner
  // loop runs over contiguous positions.
  const kT = transpose(k.subarray(0, S * kvD), S, kvD);
  const vT = transpose(v.subarray(0, S * kvD), S, kvD);
  const dKT = new Float32Array(kvD * S);
  const dVT = new Float32Array(kvD * S);
  const dS = new Float32Array(S); // dP, then dScore
  for (let h = 0; h < nHeads; h++) {
    const kvBase = Math.floor(h / group) * hs * S;
    for (let t = 0; t < T; t++) {
      const n = S - T + t + 1;
      const po = (h * T + t) * S;
      const qo = t * qDim + h * hs;
      dS.fill(0, 0, n);
      for (let i = 0; i < hs; i++) {
        const g = dOut[qo + i];
        const vo = kvBase + i * S;
        for (let s = 0; s < n; s++) {
          dS[s] += g * vT[vo + s];
          dVT[vo + s] += g * probs[po + s];
        }
      }
      let pd = 0; // Σ_s P_s dP_s
      for (let s = 0; s < n; s++) pd += probs[po + s] * dS[s];
      for (let s = 0; s < n; s++) dS[s] = probs[po + s] * (dS[s] - pd) * scale;
      for (let i = 0; i < hs; i++) {
        const qi = q[qo + i];
        const ko = kvBase + i * S;
        let a0 = 0, a1 = 0;
        let s = 0;
        for (; s + 1 < n; s += 2) {
          a0 += dS[s] * kT[ko + s];
          a1 += dS[s + 1] * kT[ko + s + 1];
          dKT[ko + s] += dS[s] * qi;
          dKT[ko + s + 1] += dS[s + 1] * qi;
        }
        if (s < n) {
          a0 += dS[s] * kT[ko + s];
          dKT[ko + s] += dS[s] * qi;
        }
        dQ[qo + i] += a0 + a1;
      }
    }
  }
  for (let s = 0; s < S; s++) {
    const o = s * kvD;
    for (let j = 0; j < kvD; j++) {
      dK[o + j] += dKT[j * S + s];
      dV[o + j] += dVT[j * S + s];
    }
  }
}

/**
 * Backward of {@link swigluForward} out = silu(a) ⊙ b with silu(a) = a·σ(a):
 * dA += dOut ⊙ b ⊙ σ(a)(1 + a(1 − σ(a))), dB += dOut ⊙ silu(a). All arrays of one length.
 *
 * @example
 * ```ts
 * import { swigluBackward } from "./ops_backward.ts";
 * const dA = new Float32Array(1), dB = new Float32Array(1);
 * swigluBackward(new Float32Array([1]), new Float32Array([0]), new Float32Array([2]), dA, dB); // dA = [1], dB = [0]
 * ```
 */
export function swigluBackward(
  dOut: Float32Array,
  a: Float32Array,
  b: Float32Array,
  dA: Float32Array,
  dB: Float32Array,
): void {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const sig = 1 / (1 + Math.exp(-x));
    const g = dOut[i];
    dA[i] += g * b[i] * sig * (1 + x * (1 - sig));
    dB[i] += g * x * sig;
  }
}

/** Result of {@link crossEntropySoftmaxBackward}. */
export interface CrossEntropyResult {
  /** Mean of −log softmax(logits)[target] over the counted rows (NaN when none is counted). */
  loss: number;
  /** Rows whose target is ≥ 0. */
  count: number;
  /** (T, V) the gradient buffer, added into. */
  dLogits: Float32Array;
}

/**
 * Cross-entropy of softmax(logits) against hard targets and its gradient in one pass:
 * dLogits[t] += scale · (softmax(logits[t]) − onehot(target_t)). Rows with a negative target are
 * skipped. `scale` defaults to 1/count, the gradient of the returned mean loss.
 * logits, dLogits: (T, V); targets: (T).
 *
 * @example
 * ```ts
 * import { crossEntropySoftmaxBackward } from "./ops_backward.ts";
 * const r = crossEntropySoftmaxBackward(new Float32Array([0, 0]), [1], 2);
 * // r.loss = ln 2, r.dLogits = [0.5, -0.5]
 * ```
 */
export function crossEntropySoftmaxBackward(
  logits: Float32Array,
  targets: ArrayLike<number>,
  V: number,
  dLogits: Float32Array = new Float32Array(logits.length),
  scale?: number,
): CrossEntropyResult {
  const T = targets.length;
  if (logits.length !== T * V) {
    throw new RangeError(
      `crossEntropySoftmaxBackward: expected ${T}x${V}=${
        T * V
      } logits for ${T} targets, found ${logits.length}`,
    );
  }
  let count = 0;
  for (let t = 0; t < T; t++) {
    const y = targets[t];
    if (y < 0) continue;
    if (!(Number.isInteger(y) && y < V)) {
      throw new RangeError(`crossEntropySoftmaxBackward: target ${y} at row ${t} is outside 0..${V - 1}`);
    }
    count++;
  }
  const sc = scale ?? 1 / count;
  let total = 0;
  for (let t = 0; t < T; t++) {
    const y = targets[t];
    if (y < 0) continue;
    const o = t * V;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (logits[o + i] > max) max = logits[o + i];
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(logits[o + i] - max);
    total += max + Math.log(sum) - logits[o + y];
    const inv = sc / sum;
    for (let i = 0; i < V; i++) dLogits[o + i] += Math.exp(logits[o + i] - max) * inv;
    dLogits[o + y] -= sc;
  }
  return { loss: count > 0 ? total / count : NaN, count, dLogits };
}
