// Muon on the CPU (src/train/muon.ts): the Newton–Schulz output is near-orthogonal (singular values in
// Muon's band), the tall case is the transpose of the wide one, and hand-checked steps.

import assert from "node:assert/strict";
import { muonScale, muonStep, newtonSchulz, NS_COEFFICIENTS } from "../src/train/muon.ts";
import { Rng } from "../src/util/rng.ts";

/** Singular values of x (rows, cols): square roots of the eigenvalues of the small Gram matrix (Jacobi). */
function singularValues(x: Float32Array, rows: number, cols: number): number[] {
  const tall = rows > cols;
  const s = tall ? cols : rows, l = tall ? rows : cols;
  const at = (i: number, k: number) => (tall ? x[k * cols + i] : x[i * cols + k]);
  const g = Array.from({ length: s }, (_, i) =>
    Array.from({ length: s }, (_, j) => {
      let sum = 0;
      for (let k = 0; k < l; k++) sum += at(i, k) * at(j, k);
      return sum;
    }));
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < s; p++) for (let q = p + 1; q < s; q++) off += g[p][q] ** 2;
    if (off < 1e-26) break;
    for (let p = 0; p < s; p++) {
      for (let q = p + 1; q < s; q++) {
        if (Math.abs(g[p][q]) < 1e-300) continue;
        const theta = (g[q][q] - g[p][p]) / (2 * g[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), sn = t * c;
        for (let k = 0; k < s; k++) {
          const gkp = g[k][p], gkq = g[k][q];
          g[k][p] = c * gkp - sn * gkq;
          g[k][q] = sn * gkp + c * gkq;
        }
        for (let k = 0; k < s; k++) {
          const gpk = g[p][k], gqk = g[q][k];
          g[p][k] = c * gpk - sn * gqk;
          g[q][k] = sn * gpk + c * gqk;
        }
      }
    }
  }
  return g.map((row, i) => Math.sqrt(Math.max(0, row[i]))).sort((a, b) => a - b);
}

Deno.test("newtonSchulz output is near-orthogonal: singular values in Muon's band (~[0.68, 1.13])", () => {
  const rng = new Rng(3);
  for (const [rows, cols] of [[20, 50], [50, 20], [16, 64], [7, 13], [1, 9]]) {
    const x = rng.normals(rows * cols, 0.01);
    const sv = singularValues(newtonSchulz(x, rows, cols), rows, cols);
    const what = `${rows}×${cols}: singular values ${sv[0].toFixed(3)}..${sv[sv.length - 1].toFixed(3)}`;
    assert.ok(sv[0] > 0.65 && sv[sv.length - 1] < 1.2, what);
    // Before: a Gaussian matrix's singular values spread widely; zero steps only normalize.
    const sv0 = singularValues(newtonSchulz(x, rows, cols, 0), rows, cols);
    assert.ok(Math.abs(Math.hypot(...sv0) - 1) < 1e-5, `${rows}×${cols}: ‖x‖_F after normalization`);
  }
});

Deno.test("newtonSchulz on a tall matrix is the transpose of the wide result; zero stays zero", () => {
  const rng = new Rng(4);
  const [rows, cols] = [23, 9];
  const x = rng.normals(rows * cols);
  const xt = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) xt[c * rows + r] = x[r * cols + c];
  const tall = newtonSchulz(x, rows, cols), wide = newtonSchulz(xt, cols, rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) assert.equal(tall[r * cols + c], wide[c * rows + r]);
  }
  assert.deepEqual(newtonSchulz(new Float32Array(6), 2, 3), new Float32Array(6));
  assert.throws(() => newtonSchulz(new Float32Array(5), 2, 3), RangeError);
});

Deno.test("muonStep: two hand-checked steps on a diagonal gradient (momentum, Nesterov, weight decay)", () => {
  // g = diag(3, 4): every iterate stays diagonal, so each singular value follows p(σ) = aσ + bσ³ + cσ⁵.
  const [a, b, c] = NS_COEFFICIENTS;
  const p = (s: number) => a * s + b * s ** 3 + c * s ** 5;
  const lr = 0.01, wd = 0.1, scale = 0.2 * Math.sqrt(2);
  assert.equal(muonScale(2, 2), scale);
  const w = new Float32Array([1, 2, 3, 4]), g = new Float32Array([3, 0, 0, 4]), m = new Float32Array(4);
  // Step 1: m = g; u = g + 0.95·m = 1.95·g; X = u / ‖u‖ = diag(0.6, 0.8); one NS step.
  muonStep(w, g, m, 2, 2, { lr, weightDecay: wd, nsSteps: 1 });
  assert.deepEqual(m, g);
  let want = [1 * (1 - lr * wd) - lr * scale * p(0.6), 2 * (1 - lr * wd), 3 * (1 - lr * wd)];
  want.push(4 * (1 - lr * wd) - lr * scale * p(0.8));
  // p(0.6) = 1.193269, p(0.8) = 0.976482 (by hand): the small singular value grows, the large one shrinks.
  assert.ok(Math.abs(p(0.6) - 1.193269) < 1e-6 && Math.abs(p(0.8) - 0.976482) < 1e-6);
  for (let i = 0; i < 4; i++) {
    assert.ok(Math.abs(w[i] - want[i]) < 1e-6, `step 1 w[${i}] = ${w[i]}, want ${want[i]}`);
  }
  // Step 2: m = 0.95·g + g = 1.95·g; u = g + 0.95·m: still ∝ g, so X = diag(0.6, 0.8) again.
  const w1 = Array.from(w);
  muonStep(w, g, m, 2, 2, { lr, weightDecay: wd, nsSteps: 1 });
  assert.ok(Math.abs(m[0] - 1.95 * 3) < 1e-6 && Math.abs(m[3] - 1.95 * 4) < 1e-6);
  want = w1.map((v) => v * (1 - lr * wd));
  want[0] -= lr * scale * p(0.6);
  want[3] -= lr * scale * p(0.8);
  for (let i = 0; i < 4; i++) {
    assert.ok(Math.abs(w[i] - want[i]) < 1e-6, `step 2 w[${i}] = ${w[i]}, want ${want[i]}`);
  }
  // Plain momentum: u = m.
  const w2 = new Float32Array([0, 0]), m2 = new Float32Array([1, 0]);
  muonStep(w2, new Float32Array([0, 1]), m2, 1, 2, { lr: 1, nesterov: false, momentum: 0.5, nsSteps: 0 });
  // m = [0.5, 1]; x = m / ‖m‖; scale 0.2·sqrt(2)
  const n = Math.hypot(0.5, 1);
  assert.ok(Math.abs(w2[0] + scale * 0.5 / n) < 1e-6 && Math.abs(w2[1] + scale / n) < 1e-6);
  assert.throws(() => muonStep(w2, w2, m2, 1, 2, { lr: -1 }), RangeError);
});
