// CPU distillation losses (src/train/losses.ts): definitions on small cases, invariances, and
// finite-difference checks of both gradients (the losses accumulate in f64, so central differences on
// the f32 inputs are accurate to O(step²)).

import assert from "node:assert/strict";
import { klDivergence, meanSquaredError } from "../src/train/losses.ts";
import { Rng } from "../src/util/rng.ts";

/** Central differences of f at x[j] (using the f32 steps actually taken) against grad[j] for every j. */
function checkGradient(
  f: (x: Float32Array) => number,
  x: Float32Array,
  grad: Float32Array,
  step: number,
  what: string,
): void {
  let worst = 0;
  for (let j = 0; j < x.length; j++) {
    const x0 = x[j];
    x[j] = x0 + step;
    const hiX = x[j];
    const hi = f(x);
    x[j] = x0 - step;
    const loX = x[j];
    const lo = f(x);
    x[j] = x0;
    const fd = (hi - lo) / (hiX - loX);
    const err = Math.abs(fd - grad[j]);
    worst = Math.max(worst, err);
    assert.ok(err <= 1e-4 * Math.abs(grad[j]) + 1e-7, `${what}[${j}]: analytic ${grad[j]}, numeric ${fd}`);
  }
}

Deno.test("klDivergence: the documented example, zero for equal distributions, non-negative", () => {
  const { loss, dLogits } = klDivergence(new Float32Array([0, 0]), new Float32Array([0, Math.log(3)]), 1, 2);
  const want = 0.25 * Math.log(0.5) + 0.75 * Math.log(1.5);
  assert.ok(Math.abs(loss - want) < 1e-7, `${loss} vs ${want}`);
  assert.ok(Math.abs(dLogits[0] - 0.25) < 1e-7 && Math.abs(dLogits[1] + 0.25) < 1e-7);
  const rng = new Rng(1);
  const t = rng.normals(3 * 9, 2);
  const shifted = t.map((v, i) => v + (Math.floor(i / 9) - 1) * 4); // + a constant per row
  const same = klDivergence(shifted, t, 3, 9);
  assert.ok(Math.abs(same.loss) < 1e-12, `${same.loss}`);
  for (const d of same.dLogits) assert.ok(Math.abs(d) < 1e-7);
  for (let trial = 0; trial < 5; trial++) {
    assert.ok(klDivergence(rng.normals(4 * 6, 3), rng.normals(4 * 6, 3), 4, 6).loss > 0);
  }
  // Huge logits: max subtraction keeps everything finite; V = 1 has nothing to compare.
  const big = klDivergence(new Float32Array([1e4, -1e4, 0]), new Float32Array([-1e4, 1e4, 0]), 1, 3);
  assert.ok(Number.isFinite(big.loss) && big.loss > 1e4 && big.dLogits.every(Number.isFinite));
  assert.equal(klDivergence(new Float32Array([5, -2]), new Float32Array([1, 3]), 2, 1).loss, 0);
});

Deno.test("klDivergence gradient matches central differences (rows 1..3, V 1..17)", () => {
  const rng = new Rng(2);
  for (const [rows, V] of [[1, 1], [1, 5], [3, 17], [2, 2]]) {
    const s = rng.normals(rows * V, 2), t = rng.normals(rows * V, 2);
    const { dLogits } = klDivergence(s, t, rows, V);
    checkGradient((x) => klDivergence(x, t, rows, V).loss, s, dLogits, 1e-2, `KL ${rows}x${V}`);
  }
});

Deno.test("meanSquaredError: definition and central differences", () => {
  const { loss, dStudent } = meanSquaredError(new Float32Array([1, 2]), new Float32Array([0, 2]));
  assert.equal(loss, 0.5);
  assert.deepEqual(dStudent, new Float32Array([1, 0]));
  const rng = new Rng(3);
  for (const n of [1, 7, 40]) {
    const s = rng.normals(n), t = rng.normals(n);
    const r = meanSquaredError(s, t);
    checkGradient((x) => meanSquaredError(x, t).loss, s, r.dStudent, 1e-2, `MSE n=${n}`);
  }
});

Deno.test("losses: clear errors for mismatched shapes", () => {
  assert.throws(
    () => klDivergence(new Float32Array(6), new Float32Array(6), 2, 4),
    /expected student of 2 × 4 = 8/,
  );
  assert.throws(() => klDivergence(new Float32Array(6), new Float32Array(6), 0, 6), RangeError);
  assert.throws(
    () => klDivergence(new Float32Array(6), [0, 0, 0, 0, 0, 0] as unknown as Float32Array, 2, 3),
    TypeError,
  );
  assert.throws(
    () => meanSquaredError(new Float32Array(3), new Float32Array(4)),
    /teacher of student's length = 3/,
  );
  assert.throws(() => meanSquaredError(new Float32Array(0), new Float32Array(0)), RangeError);
});
