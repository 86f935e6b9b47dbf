// CPU AdamW (src/train/adamw.ts): against the textbook update in f64, the first-step sign property,
// decoupled weight decay, and argument checks.

import assert from "node:assert/strict";
import { adamwCoefficients, adamwStep } from "../src/train/adamw.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("adamwStep follows the f64 textbook AdamW over several steps (to f32 rounding)", () => {
  const rng = new Rng(4);
  const n = 257;
  const o = { lr: 3e-3, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 };
  const p = rng.normals(n), m = new Float32Array(n), v = new Float32Array(n);
  const P = Float64Array.from(p), M = new Float64Array(n), V = new Float64Array(n);
  for (let t = 1; t <= 6; t++) {
    const g = rng.normals(n, 0.1);
    adamwStep(p, g, m, v, t, o);
    for (let j = 0; j < n; j++) {
      P[j] -= o.lr * o.weightDecay * P[j];
      M[j] = o.beta1 * M[j] + (1 - o.beta1) * g[j];
      V[j] = o.beta2 * V[j] + (1 - o.beta2) * g[j] * g[j];
      P[j] -= (o.lr * (M[j] / (1 - o.beta1 ** t))) / (Math.sqrt(V[j] / (1 - o.beta2 ** t)) + o.eps);
    }
    for (let j = 0; j < n; j++) {
      assert.ok(Math.abs(p[j] - P[j]) <= 1e-6 * (Math.abs(P[j]) + o.lr), `t=${t} p[${j}] ${p[j]} vs ${P[j]}`);
      assert.ok(Math.abs(m[j] - M[j]) <= 1e-6 * (Math.abs(M[j]) + Math.abs(g[j])), `t=${t} m[${j}]`);
      assert.ok(Math.abs(v[j] - V[j]) <= 1e-6 * Math.abs(V[j]) + 1e-15, `t=${t} v[${j}]`);
    }
  }
});

Deno.test("adamwStep: the first step moves each entry by about lr·sign(g); zero gradient only decays", () => {
  const p = new Float32Array([1, -2, 0.5]), g = new Float32Array([0.5, -3e-4, 0]);
  const m = new Float32Array(3), v = new Float32Array(3);
  adamwStep(p, g, m, v, 1, { lr: 0.1, weightDecay: 0.5 });
  // Decay first: 1 → 0.95, −2 → −1.9; then ∓lr (g ≠ 0); the zero-gradient entry only decays.
  assert.ok(
    Math.abs(p[0] - 0.85) < 1e-6 && Math.abs(p[1] + 1.8) < 1e-5 && Math.abs(p[2] - 0.475) < 1e-7,
    `${p}`,
  );
});

Deno.test("adamw: clear errors", () => {
  const a = new Float32Array(2);
  assert.throws(() => adamwStep(a, new Float32Array(3), a.slice(), a.slice(), 1, { lr: 1 }), /g of length 2/);
  assert.throws(() => adamwStep(a, a.slice(), a.slice(), a.slice(), 0, { lr: 1 }), /t ≥ 1/);
  assert.throws(() => adamwCoefficients(1, { lr: 1, beta2: 1 }), /beta2 in \[0, 1\)/);
  assert.throws(() => adamwCoefficients(1, { lr: -1 }), /lr ≥ 0/);
});
