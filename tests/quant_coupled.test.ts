// Coupled residual forward/backward (METHOD.md §2) and the `standard` QAT reference: definitions,
// finite-difference checks of dg and dh with the signs held fixed (as the STE prescribes), clipping.

import assert from "node:assert/strict";
import {
  coupledBackward,
  coupledForward,
  type PathScales,
  standardBackward,
  standardForward,
  toLayer,
} from "../src/quant/coupled.ts";
import { dequantize } from "../src/quant/residual_binary.ts";
import { svidFit } from "../src/quant/svid.ts";
import { Rng } from "../src/util/rng.ts";

function randomScales(rng: Rng, out: number, inF: number, k: number): PathScales {
  const g = Float32Array.from({ length: k * out }, (_, j) => (0.2 + rng.next()) * 0.5 ** Math.floor(j / out));
  const h = Float32Array.from({ length: k * inF }, () => 0.2 + rng.next());
  return { out, in: inF, k, g, h };
}

/** 0.5·||Σ_i g_i ⊙ B_i ⊙ h_i − target||² with the signs frozen, in float64. */
function frozenLoss(
  signs: Int8Array,
  s: { out: number; in: number; k: number; g: ArrayLike<number>; h: ArrayLike<number> },
  target: Float32Array,
): number {
  const { out, in: inF, k, g, h } = s;
  let loss = 0;
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < inF; c++) {
      let v = 0;
      for (let i = 0; i < k; i++) v += g[i * out + r] * signs[i * out * inF + r * inF + c] * h[i * inF + c];
      loss += 0.5 * (v - target[r * inF + c]) ** 2;
    }
  }
  return loss;
}

/** Central differences of frozenLoss w.r.t. every g and h entry, compared with the analytic gradients. */
function checkScaleGradients(
  signs: Int8Array,
  scales: PathScales,
  target: Float32Array,
  dg: Float32Array,
  dh: Float32Array,
  label: string,
): void {
  const g = Float64Array.from(scales.g), h = Float64Array.from(scales.h);
  const eps = 1e-4;
  for (const [name, vec, grad] of [["g", g, dg], ["h", h, dh]] as const) {
    for (let j = 0; j < vec.length; j++) {
      const x = vec[j];
      vec[j] = x + eps;
      const up = frozenLoss(signs, { ...scales, g, h }, target);
      vec[j] = x - eps;
      const down = frozenLoss(signs, { ...scales, g, h }, target);
      vec[j] = x;
      const fd = (up - down) / (2 * eps);
      assert.ok(
        Math.abs(fd - grad[j]) <= 1e-4 * (1 + Math.abs(fd)),
        `${label} d${name}[${j}]: fd ${fd} vs ${grad[j]}`,
      );
    }
  }
}

Deno.test("coupled forward, k = 1: What = g ⊙ sign(W) ⊙ h; with SVID scales it is the SVID fit", () => {
  const rng = new Rng(51);
  const out = 7, inF = 37;
  const w = rng.normals(out * inF);
  w[3] = 0; // sign(0) = +1
  const scales = randomScales(rng, out, inF, 1);
  const { wHat, signs } = coupledForward(w, scales);
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < inF; c++) {
      const b = w[r * inF + c] >= 0 ? 1 : -1;
      assert.equal(signs[r * inF + c], b);
      assert.equal(wHat[r * inF + c], Math.fround(scales.g[r] * b * scales.h[c]));
    }
  }
  assert.deepEqual(dequantize(toLayer(scales, signs)), wHat);
  const svid = svidFit(w, { out, in: inF });
  assert.deepEqual(coupledForward(w, svid).wHat, dequantize(svid));
});

Deno.test("coupled forward re-derives every sign from the running residual", () => {
  const rng = new Rng(52);
  const out = 6, inF = 40, k = 4;
  const w = rng.normals(out * inF);
  const scales = randomScales(rng, out, inF, k);
  const { wHat, signs } = coupledForward(w, scales);
  const n = out * inF;
  for (let j = 0; j < n; j++) {
    const r = Math.floor(j / inF), c = j % inF;
    let res = w[j];
    let sum = 0;
    for (let i = 0; i < k; i++) {
      const b = res >= 0 ? 1 : -1;
      assert.equal(signs[i * n + j], b, `path ${i} at ${j}`);
      const p = scales.g[i * out + r] * b * scales.h[i * inF + c];
      res = Math.fround(res - p);
      sum += p;
    }
    assert.ok(Math.abs(wHat[j] - sum) < 1e-6);
    assert.ok(Math.abs(w[j] - res - wHat[j]) < 1e-5, "What = W − R_k");
  }
});

Deno.test("coupled backward: dW = dWHat (identity STE) and dg, dh match finite differences (k = 1..4)", () => {
  const rng = new Rng(53);
  for (const [out, inF] of [[5, 9], [8, 33]] as const) {
    for (let k = 1; k <= 4; k++) {
      const w = rng.normals(out * inF);
      const scales = randomScales(rng, out, inF, k);
      const target = rng.normals(out * inF);
      const { wHat, signs } = coupledForward(w, scales);
      const dWHat = wHat.map((x, j) => x - target[j]); // d/dWhat of 0.5·||What − target||²
      const { dW, dg, dh } = coupledBackward(dWHat, { ...scales, signs });
      assert.deepEqual(dW, dWHat);
      checkScaleGradients(signs, scales, target, dg, dh, `coupled ${out}x${inF} k=${k}`);
    }
  }
});

Deno.test("coupled backward, k = 1: finite differences through the real forward (signs cannot move)", () => {
  const rng = new Rng(54);
  const out = 6, inF = 11;
  const w = rng.normals(out * inF);
  const scales = randomScales(rng, out, inF, 1);
  const target = rng.normals(out * inF);
  const loss = (s: PathScales) => {
    const { wHat } = coupledForward(w, s);
    let l = 0;
    for (let j = 0; j < wHat.length; j++) l += 0.5 * (wHat[j] - target[j]) ** 2;
    return l;
  };
  const { wHat, signs } = coupledForward(w, scales);
  const { dg, dh } = coupledBackward(wHat.map((x, j) => x - target[j]), { ...scales, signs });
  const eps = 1e-2; // f32 forward: a larger step, the loss is quadratic in each scale so it stays exact
  for (let j = 0; j < out; j++) {
    const up = scales.g.slice(), down = scales.g.slice();
    up[j] += eps;
    down[j] -= eps;
    const fd = (loss({ ...scales, g: up }) - loss({ ...scales, g: down })) / (2 * eps);
    assert.ok(Math.abs(fd - dg[j]) < 1e-3 * (1 + Math.abs(fd)), `dg[${j}]: ${fd} vs ${dg[j]}`);
  }
  for (let j = 0; j < inF; j++) {
    const up = scales.h.slice(), down = scales.h.slice();
    up[j] += eps;
    down[j] -= eps;
    const fd = (loss({ ...scales, h: up }) - loss({ ...scales, h: down })) / (2 * eps);
    assert.ok(Math.abs(fd - dh[j]) < 1e-3 * (1 + Math.abs(fd)), `dh[${j}]: ${fd} vs ${dh[j]}`);
  }
});

Deno.test("coupled backward, clipped STE zeroes dW where |W| > clip · Σ_i g_i[r]·h_i[c]", () => {
  const rng = new Rng(55);
  const out = 4, inF = 10, k = 2;
  const w = rng.normals(out * inF, 2);
  const scales = randomScales(rng, out, inF, k);
  const { signs } = coupledForward(w, scales);
  const dWHat = rng.normals(out * inF);
  const { dW, dg } = coupledBackward(dWHat, { ...scales, signs }, { clip: 1, w });
  let zeroed = 0;
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < inF; c++) {
      const bound = scales.g[r] * scales.h[c] + scales.g[out + r] * scales.h[inF + c];
      const j = r * inF + c;
      if (Math.abs(w[j]) > bound) {
        assert.equal(dW[j], 0);
        zeroed++;
      } else assert.equal(dW[j], dWHat[j]);
    }
  }
  assert.ok(zeroed > 0 && zeroed < out * inF, `test data should exercise both cases, zeroed ${zeroed}`);
  assert.deepEqual(dg, coupledBackward(dWHat, { ...scales, signs }).dg); // clipping touches dW only
  assert.throws(() => coupledBackward(dWHat, { ...scales, signs }, { clip: 1 }), {
    name: "TypeError",
    message: /options\.w/,
  });
});

Deno.test("standard QAT: B_i = sign(W_i), same dW for every latent, dg/dh match finite differences", () => {
  const rng = new Rng(56);
  const out = 6, inF = 35;
  for (let k = 1; k <= 3; k++) {
    const ws = rng.normals(k * out * inF);
    const scales = randomScales(rng, out, inF, k);
    const target = rng.normals(out * inF);
    const { wHat, signs } = standardForward(ws, scales);
    for (let j = 0; j < ws.length; j++) assert.equal(signs[j], ws[j] >= 0 ? 1 : -1);
    const dWHat = wHat.map((x, j) => x - target[j]);
    const { dW, dg, dh } = standardBackward(dWHat, { ...scales, signs });
    for (let i = 0; i < k; i++) assert.deepEqual(dW.subarray(i * out * inF, (i + 1) * out * inF), dWHat);
    checkScaleGradients(signs, scales, target, dg, dh, `standard k=${k}`);
    const chained = standardBackward(dWHat, { ...scales, signs }, { chainScales: true }).dW;
    for (let i = 0; i < k; i++) {
      for (let r = 0; r < out; r++) {
        for (let c = 0; c < inF; c++) {
          const want = dWHat[r * inF + c] * scales.g[i * out + r] * scales.h[i * inF + c];
          assert.ok(Math.abs(chained[i * out * inF + r * inF + c] - want) < 1e-6);
        }
      }
    }
    const clipped = standardBackward(dWHat, { ...scales, signs }, { clip: 1, ws }).dW;
    for (let i = 0; i < k; i++) {
      for (let r = 0; r < out; r++) {
        for (let c = 0; c < inF; c++) {
          const j = i * out * inF + r * inF + c;
          const outside = Math.abs(ws[j]) > scales.g[i * out + r] * scales.h[i * inF + c];
          assert.equal(clipped[j], outside ? 0 : dWHat[r * inF + c]);
        }
      }
    }
  }
});

Deno.test("standard forward with latents equal to the coupled residuals reproduces the coupled forward", () => {
  const rng = new Rng(57);
  const out = 5, inF = 21, k = 3;
  const w = rng.normals(out * inF);
  const scales = randomScales(rng, out, inF, k);
  const ws = new Float32Array(k * out * inF); // W_i := R_{i−1}
  const res = w.slice();
  for (let i = 0; i < k; i++) {
    ws.set(res, i * out * inF);
    for (let r = 0; r < out; r++) {
      for (let c = 0; c < inF; c++) {
        const b = res[r * inF + c] >= 0 ? 1 : -1;
        res[r * inF + c] -= scales.g[i * out + r] * b * scales.h[i * inF + c];
      }
    }
  }
  assert.deepEqual(standardForward(ws, scales), coupledForward(w, scales));
});
