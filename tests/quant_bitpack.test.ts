// Packed sign layout and the add/subtract-only product against their dense definitions.

import assert from "node:assert/strict";
import { packSigns, unpackSigns, wordsPerRow } from "../src/quant/bitpack.ts";
import {
  dequantize,
  pathView,
  type ResidualBinaryLinear,
  residualBinaryMatmul,
} from "../src/quant/residual_binary.ts";
import { packSignPlanes } from "../src/quant/matrix.ts";
import { Rng } from "../src/util/rng.ts";

const SHAPES: [number, number][] = [[1, 1], [3, 5], [7, 33], [16, 64], [5, 95], [2, 31], [4, 32], [9, 100]];

Deno.test("packSigns/unpackSigns round trip on ragged shapes, sign(0) = +1, zero padding", () => {
  const rng = new Rng(11);
  for (const [rows, cols] of SHAPES) {
    const m = rng.normals(rows * cols);
    for (let i = 0; i < m.length; i += 7) m[i] = 0; // zeros must read back as +1
    const bits = packSigns(m, rows, cols);
    assert.equal(bits.length, rows * wordsPerRow(cols));
    const back = unpackSigns(bits, rows, cols);
    for (let i = 0; i < m.length; i++) assert.equal(back[i], m[i] >= 0 ? 1 : -1, `${rows}x${cols} at ${i}`);
    const tail = cols % 32;
    if (tail !== 0) { // padding bits of the last word of each row are 0
      for (let r = 0; r < rows; r++) {
        assert.equal(bits[r * wordsPerRow(cols) + wordsPerRow(cols) - 1] >>> tail, 0);
      }
    }
    // Packing ±1 signs again is the identity on the words.
    assert.deepEqual(packSigns(back, rows, cols), bits);
  }
});

Deno.test("packSignPlanes equals packSigns plane by plane", () => {
  const rng = new Rng(12);
  for (const [out, inF] of SHAPES) {
    for (let k = 1; k <= 4; k++) {
      const signs = new Int8Array(k * out * inF).map(() => (rng.next() < 0.5 ? -1 : 1));
      const planes = packSignPlanes(signs, k, { out, in: inF });
      const wpr = wordsPerRow(inF);
      for (let p = 0; p < k; p++) {
        const dense = Float32Array.from(signs.subarray(p * out * inF, (p + 1) * out * inF));
        assert.deepEqual(planes.subarray(p * out * wpr, (p + 1) * out * wpr), packSigns(dense, out, inF));
      }
    }
  }
});

function randomLayer(rng: Rng, out: number, inF: number, k: number): ResidualBinaryLinear {
  const wpr = wordsPerRow(inF);
  const planes = new Uint32Array(k * out * wpr);
  for (let p = 0; p < k; p++) planes.set(packSigns(rng.normals(out * inF), out, inF), p * out * wpr);
  const g = rng.normals(k * out).map((x) => Math.abs(x) + 0.1);
  const h = rng.normals(k * inF).map((x) => Math.abs(x) + 0.1);
  return { out, in: inF, k, planes, g, h };
}

Deno.test("residualBinaryMatmul equals dequantize-then-multiply (k = 1..4, ragged shapes, T = 1 and 3)", () => {
  const rng = new Rng(13);
  for (const [out, inF] of SHAPES) {
    for (let k = 1; k <= 4; k++) {
      for (const T of [1, 3]) {
        const layer = randomLayer(rng, out, inF, k);
        const x = rng.normals(T * inF);
        const y = residualBinaryMatmul(layer, x, T);
        const w = dequantize(layer); // (out, in)
        for (let t = 0; t < T; t++) {
          for (let r = 0; r < out; r++) {
            let ref = 0;
            let mag = 0;
            for (let c = 0; c < inF; c++) {
              ref += w[r * inF + c] * x[t * inF + c];
              mag += Math.abs(w[r * inF + c] * x[t * inF + c]);
            }
            const got = y[t * out + r];
            assert.ok(
              Math.abs(got - ref) <= 1e-5 * (mag + 1),
              `${out}x${inF} k=${k} t=${t} r=${r}: ${got} vs ${ref}`,
            );
          }
        }
      }
    }
  }
});

Deno.test("pathView: the paths' dense matrices add up to the layer's, views share memory, bad paths refused", () => {
  const rng = new Rng(17);
  for (const [out, inF] of SHAPES) {
    const layer = randomLayer(rng, out, inF, 3);
    const whole = dequantize(layer);
    const parts = [0, 1, 2].map((p) => dequantize(pathView(layer, p)));
    for (let e = 0; e < whole.length; e++) {
      assert.ok(Math.abs(parts[0][e] + parts[1][e] + parts[2][e] - whole[e]) < 1e-5, `${out}x${inF} ${e}`);
    }
    const view = pathView(layer, 2);
    assert.equal(view.k, 1);
    assert.equal(view.g.buffer, layer.g.buffer); // a view, not a copy
    assert.equal(view.planes.length, out * wordsPerRow(inF));
  }
  const layer = randomLayer(rng, 2, 5, 2);
  assert.throws(() => pathView(layer, 2), /pathView: expected a path in 0\.\.1, found 2/);
  assert.throws(() => pathView(layer, -1), /found -1/);
});
