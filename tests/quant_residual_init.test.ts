// Function-aware initialization (METHOD.md §3): Gauss–Seidel monotonicity, more paths, preconditioning,
// statistic guards, rebalancing and fp16 rounding of scales.

import assert from "node:assert/strict";
import { greedyResidualSvid, preconditionFactors, residualInit } from "../src/quant/residual_init.ts";
import { frobenius, layerError, relativeError } from "../src/quant/matrix.ts";
import { dequantize, validateResidualBinary } from "../src/quant/residual_binary.ts";
import { rebalanceLayer, rebalancePair, roundScalesF16 } from "../src/quant/scales.ts";
import { unpackSigns, wordsPerRow } from "../src/quant/bitpack.ts";
import { coupledForward } from "../src/quant/coupled.ts";
import { svidFit } from "../src/quant/svid.ts";
import { Rng } from "../src/util/rng.ts";

function randomMatrix(rng: Rng, out: number, inF: number, spread = 0): Float32Array {
  const a = Array.from({ length: out }, () => Math.exp(spread * rng.normal()));
  const b = Array.from({ length: inF }, () => Math.exp(spread * rng.normal()));
  const m = new Float32Array(out * inF);
  for (let r = 0; r < out; r++) for (let c = 0; c < inF; c++) m[r * inF + c] = rng.normal() * a[r] * b[c];
  return m;
}

/** Positive channel statistics with a wide spread, like activation RMS. */
function randomStats(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => Math.exp(1.5 * rng.normal()));
}

/** ||D_o (W − What) D_i|| / ||D_o W D_i|| with D = s^a: the preconditioned error recomputed from scratch. */
function preconditionedError(
  w: Float32Array,
  wHat: Float32Array,
  out: number,
  inF: number,
  po: Float64Array,
  pi: Float64Array,
): number {
  let e = 0, n = 0;
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < inF; c++) {
      const s = po[r] * pi[c];
      e += ((w[r * inF + c] - wHat[r * inF + c]) * s) ** 2;
      n += (w[r * inF + c] * s) ** 2;
    }
  }
  return Math.sqrt(e / n);
}

Deno.test("each Gauss–Seidel round never increases the preconditioned error (k = 2, 3; with and without stats)", () => {
  const rng = new Rng(31);
  const shapes: [number, number][] = [[64, 64], [172, 64], [48, 100]];
  for (const [out, inF] of shapes) {
    for (const k of [2, 3]) {
      for (const withStats of [false, true]) {
        const w = randomMatrix(rng, out, inF, 0.7);
        const opts = withStats ? { sIn: randomStats(rng, inF), sOut: randomStats(rng, out) } : {};
        const { diagnostics } = residualInit(w, { out, in: inF }, { k, rounds: 6, ...opts });
        const e = diagnostics.preconditionedErrors;
        assert.equal(e.length, 7);
        for (let t = 1; t < e.length; t++) {
          assert.ok(
            e[t] <= e[t - 1] * (1 + 1e-6),
            `${out}x${inF} k=${k} stats=${withStats} round ${t}: ${e}`,
          );
        }
        assert.ok(e[e.length - 1] < e[0], `rounds should improve on the greedy start: ${e}`);
      }
    }
  }
});

Deno.test("reported errors match errors recomputed from the returned layer", () => {
  const rng = new Rng(32);
  const out = 40, inF = 72;
  const w = randomMatrix(rng, out, inF, 0.5);
  const sIn = randomStats(rng, inF), sOut = randomStats(rng, out);
  const { layer, diagnostics } = residualInit(w, { out, in: inF }, { k: 3, sIn, sOut, aIn: 0.5, aOut: 0.3 });
  validateResidualBinary(layer);
  const wHat = dequantize(layer);
  const po = Float64Array.from(sOut, (s) => s ** 0.3);
  const pi = Float64Array.from(sIn, (s) => s ** 0.5);
  const last = diagnostics.preconditionedErrors.at(-1)!;
  assert.ok(Math.abs(preconditionedError(w, wHat, out, inF, po, pi) - last) < 1e-5);
  let e = 0;
  for (let i = 0; i < w.length; i++) e += (w[i] - wHat[i]) ** 2;
  assert.ok(Math.abs(Math.sqrt(e) / frobenius(w) - diagnostics.relError) < 1e-6);
  assert.ok(Math.abs(relativeError(w, layer) - diagnostics.relError) < 1e-12);
});

Deno.test("more paths give lower error (greedy: guaranteed; T = 4: by a clear margin)", () => {
  const rng = new Rng(33);
  for (const spread of [0, 1]) {
    const w = randomMatrix(rng, 64, 96, spread);
    const shape = { out: 64, in: 96 };
    let prevGreedy = Infinity, prevT = Infinity;
    for (let k = 1; k <= 4; k++) {
      const greedy = greedyResidualSvid(w, shape, { k }).diagnostics.relError;
      const tuned = residualInit(w, shape, { k, rounds: 4 }).diagnostics.relError;
      assert.ok(greedy < prevGreedy, `greedy k=${k}: ${greedy} >= ${prevGreedy}`);
      assert.ok(tuned < prevT * 0.95, `T=4 k=${k}: ${tuned} vs ${prevT}`);
      assert.ok(tuned <= greedy * (1 + 1e-6), `T=4 k=${k} worse than greedy: ${tuned} vs ${greedy}`);
      prevGreedy = greedy;
      prevT = tuned;
    }
  }
});

Deno.test("k = 1 greedy equals the plain SVID fit; rounds do not change a one-path fit", () => {
  const rng = new Rng(34);
  const w = randomMatrix(rng, 30, 50, 1);
  const shape = { out: 30, in: 50 };
  const a = greedyResidualSvid(w, shape, { k: 1 });
  const b = residualInit(w, shape, { k: 1, rounds: 3, aIn: 0, aOut: 0 });
  const ref = relativeError(w, svidFit(w, shape));
  assert.ok(Math.abs(a.diagnostics.relError - ref) < 1e-6);
  assert.ok(Math.abs(b.diagnostics.relError - ref) < 1e-6);
  assert.deepEqual(a.layer.planes, svidFit(w, shape).planes);
});

Deno.test("greedy residual SVID's signs are the coupled forward's signs for its scales", () => {
  const rng = new Rng(35);
  const out = 48, inF = 70, k = 3;
  const w = randomMatrix(rng, out, inF, 0.5);
  const { layer } = greedyResidualSvid(w, { out, in: inF }, { k });
  const fwd = coupledForward(w, layer);
  const wpr = wordsPerRow(inF);
  let mismatches = 0;
  for (let p = 0; p < k; p++) {
    const b = unpackSigns(layer.planes.subarray(p * out * wpr, (p + 1) * out * wpr), out, inF);
    for (let j = 0; j < out * inF; j++) if (b[j] !== fwd.signs[p * out * inF + j]) mismatches++;
  }
  assert.ok(mismatches <= 2, `${mismatches} sign mismatches`); // only where a residual rounds across 0
  const wHat = dequantize(layer);
  for (let j = 0; j < w.length; j++) if (mismatches === 0) assert.ok(Math.abs(wHat[j] - fwd.wHat[j]) < 1e-5);
});

Deno.test("preconditioning lowers the weighted error it optimizes", () => {
  const rng = new Rng(36);
  const out = 64, inF = 64;
  const w = randomMatrix(rng, out, inF, 0.3);
  const sIn = randomStats(rng, inF), sOut = randomStats(rng, out);
  const plain = residualInit(w, { out, in: inF }, { k: 2 }).layer;
  const pre = residualInit(w, { out, in: inF }, { k: 2, sIn, sOut }).layer;
  const po = Float64Array.from(sOut, Math.sqrt), pi = Float64Array.from(sIn, Math.sqrt);
  const ePlain = preconditionedError(w, dequantize(plain), out, inF, po, pi);
  const ePre = preconditionedError(w, dequantize(pre), out, inF, po, pi);
  assert.ok(ePre < ePlain, `weighted error ${ePre} should beat ${ePlain}`);
});

Deno.test("zero/NaN statistics are raised to 1e-3 · mean, a = 0 or missing stats disable, bad stats throw", () => {
  const f = preconditionFactors(new Float32Array([4, 0, NaN, 2]), 4, { exponent: 0.5, name: "sIn" });
  assert.equal(f.clamped, 2);
  const floor = 1e-3 * 3;
  assert.deepEqual(
    [...f.factors].map((x) => +x.toFixed(9)),
    [2, Math.sqrt(floor), Math.sqrt(floor), Math.sqrt(2)].map((x) => +x.toFixed(9)),
  );
  assert.deepEqual(
    [...preconditionFactors(new Float32Array([4, 0]), 2, { exponent: 0, name: "s" }).factors],
    [1, 1],
  );
  assert.deepEqual([...preconditionFactors(undefined, 2, { exponent: 0.5, name: "s" }).factors], [1, 1]);
  assert.deepEqual([
    ...preconditionFactors(new Float32Array([0, NaN]), 2, { exponent: 0.5, name: "s" }).factors,
  ], [1, 1]);
  assert.throws(() => preconditionFactors(new Float32Array([1, -1]), 2, { exponent: 0.5, name: "sIn" }), {
    name: "RangeError",
    message: /expected sIn .*found -1 at index 1/,
  });
  assert.throws(
    () => preconditionFactors(new Float32Array([1, Infinity]), 2, { exponent: 0.5, name: "sIn" }),
    RangeError,
  );
  // A layer with a dead input channel still gets finite scales and a usable fit.
  const rng = new Rng(37);
  const w = randomMatrix(rng, 16, 24);
  const sIn = randomStats(rng, 24);
  sIn[3] = 0;
  sIn[5] = NaN;
  const { layer, diagnostics } = residualInit(w, { out: 16, in: 24 }, { k: 2, sIn });
  assert.equal(diagnostics.clampedIn, 2);
  assert.ok([...layer.g, ...layer.h].every(Number.isFinite));
  assert.ok(diagnostics.relError < 0.6);
});

Deno.test("rebalancing leaves every product g_i[r]·h_i[c] unchanged and equalizes the norms", () => {
  const rng = new Rng(38);
  const w = randomMatrix(rng, 20, 30, 1);
  const sIn = randomStats(rng, 30).map((x) => x * 1e3);
  const sOut = randomStats(rng, 20).map((x) => x * 1e-3);
  const raw = residualInit(w, { out: 20, in: 30 }, { k: 3, sIn, sOut, rebalance: false }).layer;
  const bal = rebalanceLayer(raw);
  assert.deepEqual(bal.planes, raw.planes);
  for (let p = 0; p < 3; p++) {
    for (let r = 0; r < 20; r++) {
      for (let c = 0; c < 30; c++) {
        const before = raw.g[p * 20 + r] * raw.h[p * 30 + c], after = bal.g[p * 20 + r] * bal.h[p * 30 + c];
        assert.ok(
          Math.abs(before - after) <= 1e-6 * Math.abs(before),
          `path ${p} [${r}, ${c}]: ${before} vs ${after}`,
        );
      }
    }
  }
  const before = dequantize(raw), after = dequantize(bal);
  const scale = frobenius(before) / Math.sqrt(before.length);
  for (let j = 0; j < before.length; j++) assert.ok(Math.abs(before[j] - after[j]) <= 1e-5 * scale);
  for (let p = 0; p < 3; p++) {
    const ng = frobenius(bal.g.subarray(p * 20, (p + 1) * 20)),
      nh = frobenius(bal.h.subarray(p * 30, (p + 1) * 30));
    assert.ok(Math.abs(ng - nh) <= 1e-5 * ng, `path ${p}: ${ng} vs ${nh}`);
  }
  // residualInit's default output is already balanced.
  const def = residualInit(w, { out: 20, in: 30 }, { k: 3, sIn, sOut }).layer;
  for (let p = 0; p < 3; p++) {
    const ng = frobenius(def.g.subarray(p * 20, (p + 1) * 20)),
      nh = frobenius(def.h.subarray(p * 30, (p + 1) * 30));
    assert.ok(Math.abs(ng - nh) <= 1e-5 * ng);
  }
  // A pair with a zero vector becomes all zeros instead of NaN.
  const g = new Float32Array([0, 0]), h = new Float32Array([1, 2]);
  assert.equal(rebalancePair(g, h), 0);
  assert.deepEqual([...h], [0, 0]);
});

Deno.test("fp16 rounding of scales: values are fp16-representable, error barely moves, overflow throws", () => {
  const rng = new Rng(39);
  const w = randomMatrix(rng, 32, 48, 0.5);
  const { layer, diagnostics } = residualInit(w, { out: 32, in: 48 }, { k: 2 });
  const r = roundScalesF16(layer);
  assert.deepEqual(roundScalesF16(r).g, r.g); // idempotent
  const { sqError, sqNorm } = layerError(w, r);
  assert.ok(Math.abs(Math.sqrt(sqError / sqNorm) - diagnostics.relError) < 2e-3);
  assert.throws(() => roundScalesF16({ ...layer, g: layer.g.map((x) => x * 1e6) }), {
    name: "RangeError",
    message: /fp16 range/,
  });
});

Deno.test("residualInit fit meanAbs (init none): greedy sign + mean-absolute row scales, h = 1 up to balance", () => {
  // W = [[1, -3], [2, 2]]: path 1 = sign(W) ⊙ rowmean|W| = [[2, -2], [2, 2]]; residual [[-1, -1], [0, 0]];
  // path 2 = sign(res) ⊙ rowmean|res| = [[-1, -1], [0, 0]] (row 2: sign(0) = +1 with scale 0).
  const w = new Float32Array([1, -3, 2, 2]);
  const { layer } = residualInit(w, { out: 2, in: 2 }, { k: 2, rounds: 0, fit: "meanAbs", rebalance: false });
  assert.deepEqual([...layer.g], [2, 2, 1, 0]);
  assert.deepEqual([...layer.h], [1, 1, 1, 1]);
  assert.deepEqual([...dequantize(layer)], [1, -3, 2, 2]);
  // Preconditioned: scales are fitted on W' and mapped back, so h carries 1 / sIn^a.
  const pre = residualInit(w, { out: 2, in: 2 }, {
    k: 1,
    fit: "meanAbs",
    rebalance: false,
    sIn: new Float32Array([4, 1]),
    aIn: 0.5,
    aOut: 0,
  });
  assert.deepEqual([...pre.layer.h], [0.5, 1]);
  assert.throws(() => residualInit(w, { out: 2, in: 2 }, { fit: "magic" as "svid" }), /expected fit/);
});
