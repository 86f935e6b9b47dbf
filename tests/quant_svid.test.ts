// SVID (sign + leading singular pair of |M|) against the mean-absolute scale and against exact answers.

import assert from "node:assert/strict";
import { meanAbsFit, powerIterationAbs, svidFit, svidScales } from "../src/quant/svid.ts";
import { frobenius, relativeError } from "../src/quant/matrix.ts";
import { dequantize } from "../src/quant/residual_binary.ts";
import { Rng } from "../src/util/rng.ts";

/** (out, in) Gaussian matrix, optionally times log-normal row and column scales (spread = log-sd). */
function randomMatrix(rng: Rng, out: number, inF: number, spread = 0): Float32Array {
  const a = Array.from({ length: out }, () => Math.exp(spread * rng.normal()));
  const b = Array.from({ length: inF }, () => Math.exp(spread * rng.normal()));
  const m = new Float32Array(out * inF);
  for (let r = 0; r < out; r++) for (let c = 0; c < inF; c++) m[r * inF + c] = rng.normal() * a[r] * b[c];
  return m;
}

Deno.test("SVID fit has lower error than the mean-absolute scale (homogeneous and heterogeneous scales)", () => {
  const rng = new Rng(21);
  const cases: [number, number, number][] = [[64, 64, 0], [172, 64, 0], [64, 172, 0.5], [48, 80, 1], [
    33,
    70,
    1.5,
  ]];
  for (const [out, inF, spread] of cases) {
    const m = randomMatrix(rng, out, inF, spread);
    const shape = { out, in: inF };
    const eSvid = relativeError(m, svidFit(m, shape));
    const eMean = relativeError(m, meanAbsFit(m, shape));
    assert.ok(eSvid <= eMean + 1e-9, `${out}x${inF} spread ${spread}: svid ${eSvid} vs mean-abs ${eMean}`);
    if (spread >= 1) {
      assert.ok(eSvid < eMean - 0.02, `heterogeneous scales should separate them: ${eSvid} vs ${eMean}`);
    }
  }
});

Deno.test("SVID error identity ||M − path||² = ||M||² − σ², positive scales, equal norms", () => {
  const rng = new Rng(22);
  const m = randomMatrix(rng, 40, 56, 1);
  const shape = { out: 40, in: 56 };
  const fit = svidScales(m, shape);
  assert.ok(fit.converged);
  assert.ok(fit.g.every((x) => x >= 0) && fit.h.every((x) => x >= 0));
  assert.ok(Math.abs(frobenius(fit.g) - frobenius(fit.h)) < 1e-4 * frobenius(fit.g));
  const layer = svidFit(m, shape);
  const wHat = dequantize(layer);
  let err = 0;
  for (let i = 0; i < m.length; i++) err += (m[i] - wHat[i]) ** 2;
  const norm2 = frobenius(m) ** 2;
  assert.ok(Math.abs(err - (norm2 - fit.sigma ** 2)) < 1e-4 * norm2, `${err} vs ${norm2 - fit.sigma ** 2}`);
});

Deno.test("SVID recovers an exact rank-1 |M| and its leading singular value", () => {
  const rng = new Rng(23);
  const out = 12, inF = 37;
  const a = Float32Array.from({ length: out }, () => 0.1 + rng.next());
  const b = Float32Array.from({ length: inF }, () => 0.1 + rng.next());
  const m = new Float32Array(out * inF);
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < inF; c++) m[r * inF + c] = (rng.next() < 0.5 ? -1 : 1) * a[r] * b[c];
  }
  const fit = svidScales(m, { out, in: inF });
  assert.ok(Math.abs(fit.sigma - frobenius(a) * frobenius(b)) < 1e-5 * fit.sigma);
  assert.ok(relativeError(m, svidFit(m, { out, in: inF })) < 1e-5);
});

Deno.test("power iteration: σ never decreases with more passes and a warm start needs few passes", () => {
  const rng = new Rng(24);
  const out = 50, inF = 70;
  const m = randomMatrix(rng, out, inF, 1);
  const shape = { out, in: inF };
  let prev = 0;
  for (let it = 1; it <= 8; it++) {
    const u = new Float64Array(out), v = new Float64Array(inF).fill(1);
    const { sigma } = powerIterationAbs(m, shape, { u, v, maxIterations: it, tolerance: 0 });
    assert.ok(sigma >= prev * (1 - 1e-12), `pass ${it}: ${sigma} < ${prev}`);
    prev = sigma;
  }
  const cold = svidScales(m, shape);
  const warm = svidScales(m, shape, { init: cold.h });
  assert.ok(warm.iterations <= 3, `warm start took ${warm.iterations} passes`);
  assert.ok(Math.abs(warm.sigma - cold.sigma) < 1e-6 * cold.sigma);
});

Deno.test("SVID of a zero matrix is a zero path, not NaN", () => {
  const m = new Float32Array(6);
  const layer = svidFit(m, { out: 2, in: 3 });
  assert.ok([...layer.g, ...layer.h].every((x) => x === 0));
  assert.ok(dequantize(layer).every((x) => x === 0));
});

Deno.test("mean-absolute fit: g_r = mean |M_r|, h = 1", () => {
  const layer = meanAbsFit(new Float32Array([1, -3, 2, 2, 0, -4]), { out: 2, in: 3 });
  assert.deepEqual([...layer.g], [2, 2]);
  assert.deepEqual([...layer.h], [1, 1, 1]);
});
