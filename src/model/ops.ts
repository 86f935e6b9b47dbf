// Forward operators of the CPU reference transformer: the living definition every kernel is tested
// against. Plain loops over row-major Float32Arrays; backward counterparts live in ops_backward.ts.
//
// Dimension legend: T tokens in a window, D model width, H hidden width, V vocabulary,
// nH query heads, nKV key/value heads, hs head size, kvD = nKV * hs.

/** y (T, out) = x (T, in) · Wᵀ with W (out, in) row-major; adds into y when `accumulate`. */
export function matmul(
  x: Float32Array,
  w: Float32Array,
  T: number,
  inF: number,
  outF: number,
  y: Float32Array = new Float32Array(T * outF),
  accumulate = false,
): Float32Array {
  for (let t = 0; t < T; t++) {
    const xo = t * inF;
    const yo = t * outF;
    let r = 0;
    // Four rows at a time share each load of x; separate sums let the JIT overlap the multiply-adds.
    for (; r + 3 < outF; r += 4) {
      const w0 = r * inF, w1 = w0 + inF, w2 = w1 + inF, w3 = w2 + inF;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let c = 0; c < inF; c++) {
        const xv = x[xo + c];
        s0 += w[w0 + c] * xv;
        s1 += w[w1 + c] * xv;
        s2 += w[w2 + c] * xv;
        s3 += w[w3 + c] * xv;
      }
      if (accumulate) {
        y[yo + r] += s0, y[yo + r + 1] += s1, y[yo + r + 2] += s2, y[yo + r + 3] += s3;
      } else {
        y[yo + r] = s0, y[yo + r + 1] = s1, y[yo + r + 2] = s2, y[yo + r + 3] = s3;
      }
    }
    for (; r < outF; r++) {
      const wo = r * inF;
      let s0 = 0;
      for (let c = 0; c < inF; c++) s0 += w[wo + c] * x[xo + c];
      y[yo + r] = accumulate ? y[yo + r] + s0 : s0;
    }
  }
  return y;
}

/**
 * RMSNorm per row: out = w ⊙ x / sqrt(mean(x²) + eps). x, out: (T, D); w: (D).
 * Writes the per-row inverse RMS into `invRms` (T) when given (the backward needs it).
 */
export function rmsnormForward(
  x: Float32Array,
  w: Float32Array,
  T: number,
  D: number,
  eps: number,
  out: Float32Array = new Float32Array(T * D),
  invRms?: Float32Array,
): Float32Array {
  for (let t = 0; t < T; t++) {
    const o = t * D;
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[o + i] * x[o + i];
    const inv = 1 / Math.sqrt(ss / D + eps);
    if (invRms) invRms[t] = inv;
    for (let i = 0; i < D; i++) out[o + i] = w[i] * (inv * x[o + i]);
  }
  return out;
}

/**
 * Rotary embedding as llama2.c pairs it: adjacent elements (2j, 2j+1) of each head rotate by
 * pos · theta^(−2j/hs). In place on v (T, width) where row t sits at position pos0 + t.
 * `sign` −1 applies the inverse rotation (used by the backward).
 */
export function ropeForward(
  v: Float32Array,
  T: number,
  width: number,
  hs: number,
  pos0: number,
  theta: number,
  sign: 1 | -1 = 1,
): void {
  for (let t = 0; t < T; t++) {
    const pos = pos0 + t;
    const o = t * width;
    for (let i = 0; i < width; i += 2) {
      const headDim = i % hs;
      const freq = 1 / Math.pow(theta, headDim / hs);
      const angle = pos * freq;
      const fcr = Math.cos(angle);
      const fci = sign * Math.sin(angle);
      const a = v[o + i];
      const b = v[o + i + 1];
      v[o + i] = a * fcr - b * fci;
      v[o + i + 1] = a * fci + b * fcr;
    }
  }
}

/** Shapes of one attention call. */
export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  headSize: number;
}

/**
 * Causal grouped-query attention over a window. q (T, nH·hs); k, v (S, kvD) hold positions
 * 0..S−1 where query t sits at position (S − T + t) and sees keys 0..S−T+t.
 * out (T, nH·hs); probs (nH, T, S) receives the softmax weights when given (for the backward).
 */
export function attentionForward(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  T: number,
  S: number,
  shape: AttentionShape,
  out: Float32Array = new Float32Array(T * shape.nHeads * shape.headSize),
  probs?: Float32Array,
): Float32Array {
  const { nHeads, nKvHeads, headSize: hs } = shape;
  const qDim = nHeads * hs;
  const kvD = nKvHeads * hs;
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(hs);
  const scores = new Float32Array(S);
  if (T === 1 && !probs) {
    decodeAttention(q, k, v, S, shape, scale, scores, out);
    return out;
  }
  // Keys and values transposed to (nKV, hs, S): the inner loops then run over contiguous positions,
  // which is several times faster in JS than dots of length hs.
  const kT = new Float32Array(nKvHeads * hs * S);
  const vT = new Float32Array(nKvHeads * hs * S);
  for (let s = 0; s < S; s++) {
    for (let j = 0; j < kvD; j++) {
      kT[j * S + s] = k[s * kvD + j];
      vT[j * S + s] = v[s * kvD + j];
    }
  }
  for (let h = 0; h < nHeads; h++) {
    const kvBase = Math.floor(h / group) * hs * S;
    for (let t = 0; t < T; t++) {
      const n = S - T + t + 1; // visible key positions 0..n−1
      const qo = t * qDim + h * hs;
      scores.fill(0, 0, n);
      for (let i = 0; i < hs; i++) {
        const qi = q[qo + i] * scale;
        const ko = kvBase + i * S;
        for (let s = 0; s < n; s++) scores[s] += qi * kT[ko + s];
      }
      softmaxPrefixInPlace(scores, n);
      const oo = t * qDim + h * hs;
      for (let i = 0; i < hs; i++) {
        const vo = kvBase + i * S;
        let a0 = 0, a1 = 0;
        let s = 0;
        for (; s + 1 < n; s += 2) {
          a0 += scores[s] * vT[vo + s];
          a1 += scores[s + 1] * vT[vo + s + 1];
        }
        if (s < n) a0 += scores[s] * vT[vo + s];
        out[oo + i] = a0 + a1;
      }
      if (probs) {
        const po = (h * T + t) * S;
        probs.set(scores.subarray(0, n), po);
        probs.fill(0, po + n, po + S);
      }
    }
  }
  return out;
}

/** scores[0, n) ← softmax(scores[0, n)), the sum in f64 (one definition for both attention paths). */
function softmaxPrefixInPlace(scores: Float32Array, n: number): void {
  let max = -Infinity;
  for (let s = 0; s < n; s++) if (scores[s] > max) max = scores[s];
  let sum = 0;
  for (let s = 0; s < n; s++) {
    const e = Math.exp(scores[s] - max);
    scores[s] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let s = 0; s < n; s++) scores[s] *= inv;
}

/**
 * One query (decoding) against keys and values in their (S, kvD) layout: transposing the whole cache for
 * one query would cost as much as the attention itself. The same sums in the same order as the windowed
 * path of {@link attentionForward} (scores over i = 0..hs−1; values in even and odd positions, then
 * added), so decoding a token gives bit for bit the logits the window gives it.
 */
function decodeAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  S: number,
  shape: AttentionShape,
  scale: number,
  scores: Float32Array,
  out: Float32Array,
): void {
  const { nHeads, nKvHeads, headSize: hs } = shape;
  const kvD = nKvHeads * hs;
  const group = nHeads / nKvHeads;
  for (let h = 0; h < nHeads; h++) {
    const kvBase = Math.floor(h / group) * hs;
    const qo = h * hs;
    for (let s = 0; s < S; s++) {
      const ko = s * kvD + kvBase;
      // Rounded to f32 after every term, as the windowed path's Float32Array accumulator is.
      let acc = 0;
      for (let i = 0; i < hs; i++) acc = Math.fround(acc + q[qo + i] * scale * k[ko + i]);
      scores[s] = acc;
    }
    softmaxPrefixInPlace(scores, S);
    for (let i = 0; i < hs; i++) {
      let a0 = 0, a1 = 0;
      let s = 0;
      for (; s + 1 < S; s += 2) {
        a0 += scores[s] * v[s * kvD + kvBase + i];
        a1 += scores[s + 1] * v[(s + 1) * kvD + kvBase + i];
      }
      if (s < S) a0 += scores[s] * v[s * kvD + kvBase + i];
      out[qo + i] = a0 + a1;
    }
  }
}

/** SwiGLU gate: out = silu(a) ⊙ b elementwise, silu(a) = a / (1 + e^−a). */
export function swigluForward(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array = new Float32Array(a.length),
) {
  for (let i = 0; i < a.length; i++) out[i] = (a[i] / (1 + Math.exp(-a[i]))) * b[i];
  return out;
}

/** x += y elementwise. */
export function addInPlace(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] += y[i];
}

/** Log-softmax of one row of logits at index `target`: −NLL of that token. */
export function logProb(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return logits[target] - max - Math.log(sum);
}
