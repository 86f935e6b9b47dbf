// Finite-difference checks of every backward operator and of the whole-model backward, against float64
// re-implementations of the forward (central differences, eps 1e-3), plus the hooks on stories260K.

import assert from "node:assert/strict";
import { loadLlama2c } from "../src/io/llama2c.ts";
import { backwardChunk, lossAndGrad } from "../src/model/backward.ts";
import type { LlamaConfig } from "../src/model/config.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import { type LlamaModel, withoutQuantized } from "../src/model/model.ts";
import { attentionForward, rmsnormForward } from "../src/model/ops.ts";
import {
  attentionBackward,
  crossEntropySoftmaxBackward,
  matmulBackward,
  rmsnormBackward,
  ropeBackward,
  swigluBackward,
} from "../src/model/ops_backward.ts";
import { linearNames } from "../src/model/params.ts";
import { dequantize, PackedLinear } from "../src/quant/residual_binary.ts";
import { greedyResidualSvid } from "../src/quant/residual_init.ts";
import { Rng } from "../src/util/rng.ts";
import { GOLDEN_GREEDY, MODEL_PATH, randomModel, tinyConfig } from "./_data.ts";

const EPS = 1e-3;

// ---------------------------------------------------------------------------------------------------
// Float64 forward references (naive loops, independent of ops.ts).

type F64 = Float64Array;

function matmul64(x: F64, w: F64, T: number, inF: number, outF: number): F64 {
  const y = new Float64Array(T * outF);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < outF; r++) {
      let s = 0;
      for (let c = 0; c < inF; c++) s += x[t * inF + c] * w[r * inF + c];
      y[t * outF + r] = s;
    }
  }
  return y;
}

function rmsnorm64(x: F64, w: F64, T: number, D: number, eps: number): F64 {
  const out = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[t * D + i] ** 2;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) out[t * D + i] = w[i] * x[t * D + i] * r;
  }
  return out;
}

function rope64(v: F64, T: number, width: number, hs: number, pos0: number, theta: number): F64 {
  const out = v.slice();
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < width; i += 2) {
      const angle = (pos0 + t) * Math.pow(theta, -(i % hs) / hs);
      const [a, b] = [v[t * width + i], v[t * width + i + 1]];
      out[t * width + i] = a * Math.cos(angle) - b * Math.sin(angle);
      out[t * width + i + 1] = a * Math.sin(angle) + b * Math.cos(angle);
    }
  }
  return out;
}

interface Shape {
  nHeads: number;
  nKvHeads: number;
  headSize: number;
}

function attention64(q: F64, k: F64, v: F64, T: number, S: number, sh: Shape): F64 {
  const { nHeads, nKvHeads, headSize: hs } = sh;
  const kvD = nKvHeads * hs, qDim = nHeads * hs;
  const out = new Float64Array(T * qDim);
  for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / (nHeads / nKvHeads));
    for (let t = 0; t < T; t++) {
      const n = S - T + t + 1;
      const sc = new Float64Array(n);
      for (let s = 0; s < n; s++) {
        let d = 0;
        for (let i = 0; i < hs; i++) d += q[t * qDim + h * hs + i] * k[s * kvD + kh * hs + i];
        sc[s] = d / Math.sqrt(hs);
      }
      const max = Math.max(...sc);
      let sum = 0;
      for (let s = 0; s < n; s++) sum += sc[s] = Math.exp(sc[s] - max);
      for (let s = 0; s < n; s++) {
        for (let i = 0; i < hs; i++) out[t * qDim + h * hs + i] += (sc[s] / sum) * v[s * kvD + kh * hs + i];
      }
    }
  }
  return out;
}

function swiglu64(a: F64, b: F64): F64 {
  return a.map((x, i) => (x / (1 + Math.exp(-x))) * b[i]);
}

function crossEntropy64(logits: F64, targets: ArrayLike<number>, V: number): number {
  let total = 0, count = 0;
  for (let t = 0; t < targets.length; t++) {
    if (targets[t] < 0) continue;
    const row = logits.subarray(t * V, (t + 1) * V);
    const max = Math.max(...row);
    let sum = 0;
    for (const z of row) sum += Math.exp(z - max);
    total += max + Math.log(sum) - row[targets[t]];
    count++;
  }
  return total / count;
}

const dot64 = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** Mean CE of a Llama model in float64 plus Σ_l ⟨proj[l], hidden_l⟩ when projections are given. */
function modelLoss64(
  c: LlamaConfig,
  P: Map<string, F64>,
  tokens: number[],
  targets: number[],
  proj?: Float32Array[],
): number {
  const T = tokens.length, D = c.dim, H = c.hiddenDim, hs = D / c.nHeads, kvD = c.nKvHeads * hs;
  const g = (n: string) => P.get(n)!;
  let x = new Float64Array(T * D);
  tokens.forEach((id, t) => x.set(g("tok_embeddings").subarray(id * D, (id + 1) * D), t * D));
  let extra = 0;
  for (let l = 0; l < c.nLayers; l++) {
    const p = `layers.${l}.`;
    const xn = rmsnorm64(x, g(p + "attention_norm"), T, D, c.normEps);
    const q = rope64(matmul64(xn, g(p + "wq"), T, D, D), T, D, hs, 0, c.ropeTheta);
    const k = rope64(matmul64(xn, g(p + "wk"), T, D, kvD), T, kvD, hs, 0, c.ropeTheta);
    const v = matmul64(xn, g(p + "wv"), T, D, kvD);
    const att = attention64(q, k, v, T, T, { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs });
    const o = matmul64(att, g(p + "wo"), T, D, D);
    x = x.map((xi, i) => xi + o[i]);
    const xn2 = rmsnorm64(x, g(p + "ffn_norm"), T, D, c.normEps);
    const act = swiglu64(matmul64(xn2, g(p + "w1"), T, D, H), matmul64(xn2, g(p + "w3"), T, D, H));
    const f = matmul64(act, g(p + "w2"), T, H, D);
    x = x.map((xi, i) => xi + f[i]);
    if (proj) extra += dot64(proj[l], x);
  }
  const xn = rmsnorm64(x, g("norm"), T, D, c.normEps);
  const logits = matmul64(xn, g(c.sharedClassifier ? "tok_embeddings" : "output"), T, D, c.vocabSize);
  return crossEntropy64(logits, targets, c.vocabSize) + extra;
}

// ---------------------------------------------------------------------------------------------------
// Comparison helpers.

/** Central difference of f with respect to arr[i]. */
function fd(f: () => number, arr: F64, i: number, eps = EPS): number {
  const v = arr[i];
  arr[i] = v + eps;
  const up = f();
  arr[i] = v - eps;
  const down = f();
  arr[i] = v;
  return (up - down) / (2 * eps);
}

/**
 * Max over `indices` of |analytic − fd| / max(|fd|, floor), floor = 1e-3 · max |analytic| (entries far
 * below the tensor's scale are compared absolutely at that scale).
 */
function maxRelError(
  analytic: Float32Array,
  numeric: (i: number) => number,
  indices: Iterable<number>,
): number {
  let scale = 0;
  for (const a of analytic) scale = Math.max(scale, Math.abs(a));
  const floor = Math.max(1e-3 * scale, 1e-12);
  let worst = 0;
  for (const i of indices) {
    const f = numeric(i);
    worst = Math.max(worst, Math.abs(analytic[i] - f) / Math.max(Math.abs(f), floor));
  }
  return worst;
}

const all = (n: number) => Array.from({ length: n }, (_, i) => i);
const f64 = (a: Float32Array) => Float64Array.from(a);
function expectClose(label: string, err: number, tol: number) {
  assert.ok(err <= tol, `${label}: max relative error ${err.toExponential(3)} > ${tol}`);
}

// ---------------------------------------------------------------------------------------------------
// Operator checks.

Deno.test("matmulBackward matches finite differences (ragged shapes) and accumulates", () => {
  const rng = new Rng(11);
  for (const [T, inF, outF] of [[5, 7, 9], [3, 16, 8], [1, 5, 3]]) {
    const x = rng.normals(T * inF), w = rng.normals(outF * inF), r = rng.normals(T * outF);
    const base = rng.normals(T * inF), baseW = rng.normals(outF * inF);
    const dX = base.slice(), dW = baseW.slice();
    matmulBackward(r, x, w, T, inF, outF, dX, dW);
    for (let i = 0; i < dX.length; i++) dX[i] -= base[i];
    for (let i = 0; i < dW.length; i++) dW[i] -= baseW[i];
    const X = f64(x), W = f64(w);
    const L = () => dot64(r, matmul64(X, W, T, inF, outF));
    expectClose(`matmul ${T}x${inF}->${outF} dX`, maxRelError(dX, (i) => fd(L, X, i), all(dX.length)), 1e-4);
    expectClose(`matmul ${T}x${inF}->${outF} dW`, maxRelError(dW, (i) => fd(L, W, i), all(dW.length)), 1e-4);
    // Each output is optional.
    const onlyX = new Float32Array(T * inF);
    matmulBackward(r, x, w, T, inF, outF, onlyX);
    for (let i = 0; i < onlyX.length; i++) assert.ok(Math.abs(onlyX[i] - dX[i]) < 1e-5);
  }
});

Deno.test("rmsnormBackward matches finite differences", () => {
  const rng = new Rng(12);
  for (const [T, D] of [[4, 11], [3, 16]]) {
    const x = rng.normals(T * D), w = rng.normals(D, 0.5).map((v) => 1 + v), r = rng.normals(T * D);
    const inv = new Float32Array(T);
    rmsnormForward(x, w, T, D, 1e-5, undefined, inv);
    const dX = new Float32Array(T * D), dW = new Float32Array(D);
    rmsnormBackward(r, x, w, inv, T, D, dX, dW);
    const X = f64(x), W = f64(w);
    const L = () => dot64(r, rmsnorm64(X, W, T, D, 1e-5));
    expectClose(`rmsnorm ${T}x${D} dX`, maxRelError(dX, (i) => fd(L, X, i), all(dX.length)), 2e-4);
    expectClose(`rmsnorm ${T}x${D} dW`, maxRelError(dW, (i) => fd(L, W, i), all(D)), 2e-4);
  }
});

Deno.test("ropeBackward matches finite differences (hs 4 and 8, pos0 0 and 3)", () => {
  const rng = new Rng(13);
  for (const [T, width, hs, pos0] of [[5, 24, 8, 0], [4, 12, 4, 3], [6, 8, 8, 0]]) {
    const v = rng.normals(T * width), r = rng.normals(T * width);
    const dV = r.slice();
    ropeBackward(dV, T, width, hs, pos0, 10000);
    const V = f64(v);
    const L = () => dot64(r, rope64(V, T, width, hs, pos0, 10000));
    expectClose(
      `rope T${T} w${width} hs${hs} pos0 ${pos0}`,
      maxRelError(dV, (i) => fd(L, V, i), all(dV.length)),
      1e-4,
    );
  }
});

Deno.test("attentionBackward matches finite differences (GQA, causal, S ≥ T)", () => {
  const rng = new Rng(14);
  const cases: [number, number, Shape][] = [
    [5, 5, { nHeads: 4, nKvHeads: 2, headSize: 4 }],
    [7, 7, { nHeads: 3, nKvHeads: 1, headSize: 8 }],
    [3, 7, { nHeads: 6, nKvHeads: 2, headSize: 8 }], // pos0 = 4: keys before the chunk
    [1, 1, { nHeads: 2, nKvHeads: 2, headSize: 4 }],
    [6, 6, { nHeads: 2, nKvHeads: 2, headSize: 4 }],
  ];
  for (const [T, S, sh] of cases) {
    const qDim = sh.nHeads * sh.headSize, kvD = sh.nKvHeads * sh.headSize;
    const q = rng.normals(T * qDim),
      k = rng.normals(S * kvD),
      v = rng.normals(S * kvD),
      r = rng.normals(T * qDim);
    const probs = new Float32Array(sh.nHeads * T * S);
    const out = attentionForward(q, k, v, T, S, sh, undefined, probs);
    const Q = f64(q), K = f64(k), Vv = f64(v);
    const ref = attention64(Q, K, Vv, T, S, sh);
    for (let i = 0; i < out.length; i++) assert.ok(Math.abs(out[i] - ref[i]) < 1e-5, "forward disagrees");
    const dQ = new Float32Array(T * qDim), dK = new Float32Array(S * kvD), dV = new Float32Array(S * kvD);
    attentionBackward(r, q, k, v, probs, T, S, sh, dQ, dK, dV);
    const L = () => dot64(r, attention64(Q, K, Vv, T, S, sh));
    const label = `attention T${T} S${S} nH${sh.nHeads} nKV${sh.nKvHeads} hs${sh.headSize}`;
    expectClose(`${label} dQ`, maxRelError(dQ, (i) => fd(L, Q, i), all(dQ.length)), 2e-4);
    expectClose(`${label} dK`, maxRelError(dK, (i) => fd(L, K, i), all(dK.length)), 2e-4);
    expectClose(`${label} dV`, maxRelError(dV, (i) => fd(L, Vv, i), all(dV.length)), 2e-4);
  }
});

Deno.test("attentionForward: one query (the decoding path) equals the windowed path bit for bit", () => {
  const rng = new Rng(3);
  for (const [nH, nKv, hs, S] of [[8, 4, 8, 1], [8, 4, 8, 37], [6, 2, 5, 100], [4, 4, 16, 511]]) {
    const q = Float32Array.from({ length: nH * hs }, () => rng.next() * 2 - 1); // (1, nH·hs)
    const k = Float32Array.from({ length: S * nKv * hs }, () => rng.next() * 4 - 2); // (S, kvD)
    const v = Float32Array.from({ length: S * nKv * hs }, () => rng.next() * 2 - 1); // (S, kvD)
    const shape = { nHeads: nH, nKvHeads: nKv, headSize: hs };
    const decoded = attentionForward(q, k, v, 1, S, shape);
    // Asking for the probabilities takes the windowed (transposed) path.
    const windowed = attentionForward(q, k, v, 1, S, shape, undefined, new Float32Array(nH * S));
    assert.deepEqual(Array.from(decoded), Array.from(windowed), `nH ${nH} nKv ${nKv} hs ${hs} S ${S}`);
  }
});

Deno.test("swigluBackward matches finite differences", () => {
  const rng = new Rng(15);
  const n = 37;
  const a = rng.normals(n, 3), b = rng.normals(n), r = rng.normals(n);
  const dA = new Float32Array(n), dB = new Float32Array(n);
  swigluBackward(r, a, b, dA, dB);
  const A = f64(a), B = f64(b);
  const L = () => dot64(r, swiglu64(A, B));
  expectClose("swiglu dA", maxRelError(dA, (i) => fd(L, A, i), all(n)), 1e-4);
  expectClose("swiglu dB", maxRelError(dB, (i) => fd(L, B, i), all(n)), 1e-4);
});

Deno.test("crossEntropySoftmaxBackward matches finite differences and skips negative targets", () => {
  const rng = new Rng(16);
  const T = 4, V = 13;
  const logits = rng.normals(T * V, 3);
  const targets = [3, -1, 12, 0];
  const { loss, count, dLogits } = crossEntropySoftmaxBackward(logits, targets, V);
  const Z = f64(logits);
  const L = () => crossEntropy64(Z, targets, V);
  assert.equal(count, 3);
  assert.ok(Math.abs(loss - L()) < 1e-6);
  for (let i = V; i < 2 * V; i++) assert.equal(dLogits[i], 0);
  expectClose("cross-entropy dLogits", maxRelError(dLogits, (i) => fd(L, Z, i), all(T * V)), 1e-4);
  const scaled = crossEntropySoftmaxBackward(logits, targets, V, undefined, 2).dLogits;
  for (let i = 0; i < T * V; i++) assert.ok(Math.abs(scaled[i] - 6 * dLogits[i]) < 1e-6);
});

// ---------------------------------------------------------------------------------------------------
// Whole-model checks on tiny random models.

function float64Params(model: LlamaModel): Map<string, F64> {
  return new Map(model.params.names().map((n) => [n, f64(model.params.get(n))]));
}

/** Random entries of every tensor, plus whole embedding rows of the tokens the window uses. */
function sampleIndices(model: LlamaModel, name: string, tokens: number[], rng: Rng, n = 20): number[] {
  const size = model.params.entry(name).size;
  const set = new Set<number>();
  if (size <= 2 * n) return all(size);
  while (set.size < n) set.add(rng.int(size));
  if (name === "tok_embeddings") {
    const D = model.config.dim;
    for (const id of tokens.slice(0, 3)) for (let i = 0; i < D; i += 3) set.add(id * D + i);
  }
  return [...set];
}

function checkModelGrads(label: string, model: LlamaModel, tokens: number[], proj?: Float32Array[]) {
  const targets = [...tokens.slice(1), -1];
  const res = lossAndGrad(model, tokens, { dHidden: proj });
  const P = float64Params(model);
  const L = () => modelLoss64(model.config, P, tokens, targets, proj);
  const ce64 = modelLoss64(model.config, P, tokens, targets);
  assert.ok(Math.abs(res.loss - ce64) < 1e-5, `${label}: loss ${res.loss} vs float64 ${ce64}`);
  assert.equal(res.count, tokens.length - 1);
  const rng = new Rng(99);
  const kinds = new Map<string, number>(); // tensor kind → worst error over layers
  for (const name of model.params.names()) {
    const g = res.grads!.get(name);
    const err = maxRelError(g, (i) => fd(L, P.get(name)!, i), sampleIndices(model, name, tokens, rng));
    const kind = name.replace(/^layers\.\d+\./, "");
    kinds.set(kind, Math.max(kinds.get(kind) ?? 0, err));
  }
  for (const [kind, err] of kinds) expectClose(`${label} ${kind}`, err, 2e-3);
}

const windowTokens = (V: number, T: number, seed: number) => {
  const rng = new Rng(seed);
  return Array.from({ length: T }, () => rng.int(V));
};

Deno.test("lossAndGrad matches float64 finite differences on a tiny model (shared classifier)", () => {
  const model = randomModel(tinyConfig(), 21);
  checkModelGrads("model shared", model, windowTokens(32, 12, 1));
});

Deno.test("lossAndGrad matches float64 finite differences on a tiny model (separate classifier)", () => {
  const model = randomModel(tinyConfig({ sharedClassifier: false, nKvHeads: 1, hiddenDim: 20 }), 22);
  checkModelGrads("model separate", model, windowTokens(32, 16, 2));
});

Deno.test("dHidden injection equals the gradient of an added Σ⟨r_l, hidden_l⟩ term", () => {
  const c = tinyConfig();
  const model = randomModel(c, 23);
  const tokens = windowTokens(32, 10, 3);
  const rng = new Rng(5);
  const proj = Array.from({ length: c.nLayers }, () => rng.normals(tokens.length * c.dim, 0.1));
  checkModelGrads("model +hidden term", model, tokens, proj);
  // The reported per-block gradient includes the injected term, and the block-0 output gradient
  // differs from the plain one by exactly the injection plus what flows back through block 1.
  const { activations, logits } = forwardChunk(model, tokens, 0, createKvCache(model, tokens.length), {
    keepActivations: true,
  });
  const dLogits = crossEntropySoftmaxBackward(logits, [...tokens.slice(1), -1], c.vocabSize).dLogits;
  const withTop = backwardChunk(model, activations!, dLogits, {
    dHidden: [undefined, proj[1]],
    keepDHidden: true,
  });
  const plain = backwardChunk(model, activations!, dLogits, { keepDHidden: true, paramGrads: false });
  for (let i = 0; i < proj[1].length; i++) {
    assert.ok(Math.abs(withTop.dHidden![1][i] - plain.dHidden![1][i] - proj[1][i]) < 1e-6);
  }
  assert.equal(plain.grads, undefined);
  assert.equal(plain.linearGrads, undefined);
});

Deno.test("backward of binarized linears uses the dequantized weight and reports dWhat", () => {
  const c = tinyConfig();
  const dense = randomModel(c, 24);
  const names = ["layers.0.wq", "layers.0.wk", "layers.1.w2", "layers.1.w1"];
  const quantized = new Map<string, PackedLinear>();
  for (const name of names) {
    const [out, inF] = dense.params.shape(name);
    const { layer } = greedyResidualSvid(dense.params.get(name), { out, in: inF }, { k: 2 });
    quantized.set(name, new PackedLinear(layer));
    dense.params.get(name).set(dequantize(layer)); // the dense twin holds What exactly
  }
  const qModel: LlamaModel = { config: c, params: withoutQuantized(dense.params, names), quantized };
  const tokens = windowTokens(32, 12, 4);
  const seen = new Set<string>();
  const q = lossAndGrad(qModel, tokens, { onLinear: (name) => seen.add(name) });
  const d = lossAndGrad(dense, tokens);
  assert.equal(seen.size, linearNames(c).length);
  assert.ok(Math.abs(q.loss - d.loss) < 1e-5);
  const close = (a: Float32Array, b: Float32Array, what: string) => {
    let scale = 0, worst = 0;
    for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
    for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(worst <= 1e-4 * scale + 1e-7, `${what}: ${worst} vs scale ${scale}`);
  };
  for (const name of qModel.params.names()) close(q.grads!.get(name), d.grads!.get(name), name);
  assert.deepEqual([...q.linearGrads!.keys()].sort(), [...names].sort());
  for (const name of names) close(q.linearGrads!.get(name)!, d.grads!.get(name), `dWhat ${name}`);
  assert.equal(d.linearGrads!.size, 0);
});

// ---------------------------------------------------------------------------------------------------
// The real model.

Deno.test("onLinear sees every linear of stories260K with (T, in) inputs and (T, out) gradients", async () => {
  const { config, params } = await loadLlama2c(MODEL_PATH);
  const model: LlamaModel = { config, params, quantized: new Map() };
  const tokens = [1, ...GOLDEN_GREEDY]; // 25 tokens of real text
  const T = tokens.length;
  const calls = new Map<string, { x: Float32Array; dY: Float32Array }>();
  const res = lossAndGrad(model, tokens, {
    onLinear: (name, x, dY) => {
      assert.ok(!calls.has(name), `${name} seen twice`);
      calls.set(name, { x, dY });
    },
  });
  assert.ok(res.loss > 0 && res.loss < 3, `loss ${res.loss}`); // greedy text is likely under the model
  assert.deepEqual([...calls.keys()].sort(), linearNames(config).sort());
  for (const [name, { x, dY }] of calls) {
    const [out, inF] = params.shape(name);
    assert.equal(x.length, T * inF, name);
    assert.equal(dY.length, T * out, name);
    assert.ok(dY.every(Number.isFinite) && dY.some((v) => v !== 0), name);
    // The hook's arrays are the layer's: dW = dYᵀ · x.
    const dW = res.grads!.get(name);
    let worst = 0, scale = 0;
    for (let r = 0; r < out; r++) {
      for (let ci = 0; ci < inF; ci++) {
        let s = 0;
        for (let t = 0; t < T; t++) s += dY[t * out + r] * x[t * inF + ci];
        worst = Math.max(worst, Math.abs(s - dW[r * inF + ci]));
        scale = Math.max(scale, Math.abs(s));
      }
    }
    assert.ok(worst <= 1e-5 * scale, `${name}: dW differs from dYᵀx by ${worst}`);
  }
  // Activation gradients alone: same hook inputs, no parameter gradients.
  const again = new Map<string, Float32Array>();
  const lite = lossAndGrad(model, tokens, { paramGrads: false, onLinear: (n, _x, dY) => again.set(n, dY) });
  assert.equal(lite.grads, undefined);
  for (const [name, { dY }] of calls) assert.deepEqual(again.get(name), dY);
  assert.deepEqual(lite.dEmbedded, res.dEmbedded);
});

Deno.test("options.grads accumulates across calls; explicit targets equal next-token ones", () => {
  const model = randomModel(tinyConfig(), 26);
  const tokens = windowTokens(32, 8, 6);
  const once = lossAndGrad(model, tokens);
  const acc = model.params.zerosLike();
  lossAndGrad(model, tokens, { grads: acc, targets: [...tokens.slice(1), -1] });
  const twice = lossAndGrad(model, tokens, { grads: acc });
  assert.equal(twice.grads, acc);
  for (let i = 0; i < acc.count; i++) {
    assert.ok(Math.abs(acc.data[i] - 2 * once.grads!.data[i]) <= 1e-6 * (1 + Math.abs(acc.data[i])));
  }
});

Deno.test("backward error messages name what was expected", () => {
  const model = randomModel(tinyConfig(), 25);
  const { activations } = forwardChunk(model, [1, 2, 3], 0, createKvCache(model, 3), {
    keepActivations: true,
  });
  assert.throws(() => backwardChunk(model, activations!, new Float32Array(5)), /expected dLogits of 3x32=96/);
  assert.throws(
    () => backwardChunk(model, activations!, new Float32Array(96), { dHidden: [new Float32Array(1)] }),
    /expected dHidden for 2 blocks/,
  );
  assert.throws(() => lossAndGrad(model, [1, 2], { targets: [1] }), /expected 2 targets/);
});
