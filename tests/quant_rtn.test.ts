// 2-bit baselines as two-path layers: rtn2 equals the RTN grid, dbllm's mapping of DB-LLM's α1 = 2Δ, α2 = −Δ.

import assert from "node:assert/strict";
import { dbllmInit, rtn2 } from "../src/quant/rtn.ts";
import { relativeError } from "../src/quant/matrix.ts";
import { dequantize, residualBinaryMatmul } from "../src/quant/residual_binary.ts";
import { coupledForward } from "../src/quant/coupled.ts";
import { Rng } from "../src/util/rng.ts";

/** Reference RTN: per row Δ = max|w|/1.5, nearest of Δ·{−1.5, −0.5, 0.5, 1.5} by brute force. */
function rtnReference(w: Float32Array, out: number, inF: number, step?: Float32Array): Float32Array {
  const q = new Float32Array(out * inF);
  for (let r = 0; r < out; r++) {
    let m = 0;
    for (let c = 0; c < inF; c++) m = Math.max(m, Math.abs(w[r * inF + c]));
    const d = step ? step[r] : m / 1.5;
    for (let c = 0; c < inF; c++) {
      const x = w[r * inF + c];
      let best = Infinity;
      for (const l of [-1.5, -0.5, 0.5, 1.5]) {
        if (Math.abs(x - l * d) < Math.abs(x - best)) best = l * d;
      }
      q[r * inF + c] = best;
    }
  }
  return q;
}

const SHAPES: [number, number][] = [[1, 4], [5, 33], [64, 64], [17, 100]];

Deno.test("rtn2 is a k = 2 residual-binary layer whose dequantized values are the RTN grid values", () => {
  const rng = new Rng(41);
  for (const [out, inF] of SHAPES) {
    const w = rng.normals(out * inF);
    const layer = rtn2(w, { out, in: inF });
    assert.equal(layer.k, 2);
    assert.ok(layer.h.every((x) => x === 1));
    for (let r = 0; r < out; r++) assert.equal(layer.g[out + r], layer.g[r] / 2);
    const got = dequantize(layer), ref = rtnReference(w, out, inF);
    for (let j = 0; j < ref.length; j++) {
      assert.ok(
        Math.abs(got[j] - ref[j]) <= 1e-6 * Math.abs(ref[j]),
        `${out}x${inF} at ${j}: ${got[j]} vs ${ref[j]}`,
      );
    }
    // The row maximum sits exactly on the outer level.
    for (let r = 0; r < out; r++) {
      let m = 0;
      for (let c = 0; c < inF; c++) m = Math.max(m, Math.abs(ref[r * inF + c]));
      assert.ok(Math.abs(m - 1.5 * layer.g[r]) <= 1e-6 * m);
    }
    // The packed product runs it like any other layer.
    const x = rng.normals(inF);
    const y = residualBinaryMatmul(layer, x);
    for (let r = 0; r < out; r++) {
      let ref2 = 0;
      for (let c = 0; c < inF; c++) ref2 += ref[r * inF + c] * x[c];
      assert.ok(Math.abs(y[r] - ref2) < 1e-4 * (1 + Math.abs(ref2)));
    }
  }
});

Deno.test("rtn2 is the coupled forward with g = (Δ, Δ/2), h = 1", () => {
  const rng = new Rng(42);
  const out = 9, inF = 45;
  const w = rng.normals(out * inF);
  const layer = rtn2(w, { out, in: inF });
  const fwd = coupledForward(w, layer);
  const deq = dequantize(layer);
  for (let j = 0; j < deq.length; j++) assert.ok(Math.abs(deq[j] - fwd.wHat[j]) <= 1e-6 * Math.abs(deq[j]));
});

Deno.test("rtn2 ties go to the upper level and zero rows stay zero", () => {
  const w = new Float32Array([3, 2, 0, -2, 0, 0, 0, 0]); // Δ = 2: 2 and -2 are the ±Δ thresholds
  const got = dequantize(rtn2(w, { out: 2, in: 4 }));
  assert.deepEqual([...got], [3, 3, 1, -1, 0, 0, 0, 0]);
});

Deno.test("dbllm: minmax is exactly rtn2; mse search is no worse and maps α1 = 2Δ, α2 = −Δ to g = (Δ, Δ/2)", () => {
  const rng = new Rng(43);
  for (const [out, inF] of SHAPES) {
    const w = rng.normals(out * inF);
    const shape = { out, in: inF };
    const mm = dbllmInit(w, shape, { scale: "minmax" });
    const plain = rtn2(w, shape);
    assert.deepEqual(mm.layer.planes, plain.planes);
    assert.deepEqual(mm.layer.g, plain.g);
    const ms = dbllmInit(w, shape);
    assert.ok(relativeError(w, ms.layer) <= relativeError(w, plain) + 1e-7);
    for (let r = 0; r < out; r++) {
      assert.equal(ms.layer.g[r], ms.step[r]);
      assert.equal(ms.layer.g[out + r], ms.step[r] / 2);
    }
    // DB-LLM's own formula with {0,1} planes and α1 = 2Δ, α2 = −Δ, minus the per-row offset Δ/2:
    // b1 = H(w − (α1+α2)/2 + Δ/2), b2 = H(−(w + Δ/2 − α1·b1 − α2/2)) in the shifted coordinates.
    const deq = dequantize(ms.layer);
    for (let r = 0; r < out; r++) {
      const d = ms.step[r], a1 = 2 * d, a2 = -d;
      for (let c = 0; c < inF; c++) {
        const x = w[r * inF + c] + d / 2; // DB-LLM's grid {−Δ, 0, Δ, 2Δ} is ours shifted by +Δ/2
        const b1 = x - (a1 + a2) / 2 >= 0 ? 1 : 0;
        const b2 = -(x - a1 * b1 - a2 / 2) > 0 ? 1 : 0;
        const db = a1 * b1 + a2 * b2 - d / 2;
        assert.ok(
          Math.abs(deq[r * inF + c] - db) <= 1e-5 * (Math.abs(db) + d),
          `[${r}, ${c}] ${deq[r * inF + c]} vs ${db}`,
        );
      }
    }
    // And it is the RTN grid for the searched step.
    const ref = rtnReference(w, out, inF, ms.step);
    for (let j = 0; j < ref.length; j++) {
      assert.ok(Math.abs(deq[j] - ref[j]) <= 1e-6 * Math.abs(ref[j]) + 1e-7);
    }
  }
});

Deno.test("dbllm mse search clips Gaussian rows (step below min-max) and cuts the error clearly", () => {
  const rng = new Rng(44);
  const w = rng.normals(32 * 512);
  const shape = { out: 32, in: 512 };
  const ms = dbllmInit(w, shape);
  const plain = rtn2(w, shape);
  for (let r = 0; r < 32; r++) assert.ok(ms.step[r] < plain.g[r]);
  assert.ok(relativeError(w, ms.layer) < 0.8 * relativeError(w, plain));
});
