// The latent mix (src/quant/latent_mix.ts): its forward and backward by hand, its refusals, and the WebGPU
// lerp kernel (kernels/lerp.wgsl, WebGpuReduce.lerp) against mixLatentForward on ragged lengths, views with
// offsets (unaligned to the adapter's binding alignment) and several t, plus the scale kernel on the same
// ranges (what weighs the scales' gradients). Fails (does not skip) without a WebGPU adapter: CI has
// llvmpipe.

import assert from "node:assert/strict";
import { createStorageBuffer, readF32, requestGpu } from "../src/backend/webgpu/device.ts";
import { WebGpuReduce } from "../src/backend/webgpu/reduce.ts";
import { checkLatentMix, mixLatentBackward, mixLatentForward } from "../src/quant/latent_mix.ts";
import { Rng } from "../src/util/rng.ts";
import { record } from "./_gpu.ts";

const gpu = await requestGpu();

Deno.test("latent mix reference: (1 − α)·What + α·W forward, (1 − α) on the scale gradients", () => {
  const wHat = Float32Array.of(1, -1, 0.5, -0.25); // (2, 2)
  const w = Float32Array.of(0.2, -0.6, 1, 0);
  mixLatentForward(wHat, w, 0.25);
  assert.deepEqual(Array.from(wHat), [0.8, -0.9, 0.625, -0.1875].map(Math.fround));
  const still = Float32Array.of(3, -3);
  mixLatentForward(still, Float32Array.of(9, 9), 0); // α = 0: the binary layer alone, bit for bit
  assert.deepEqual(Array.from(still), [3, -3]);
  const dg = Float32Array.of(2, -1), dh = Float32Array.of(0.5, 4, -8);
  mixLatentBackward(dg, dh, 0.75);
  assert.deepEqual([Array.from(dg), Array.from(dh)], [[0.5, -0.25], [0.125, 1, -2]]);
  for (const bad of [-0.1, 1, 1.5, NaN, Infinity]) {
    assert.throws(() => checkLatentMix(bad), /expected a weight α in \[0, 1\) for the latent, found/);
    assert.throws(() => mixLatentForward(new Float32Array(1), new Float32Array(1), bad), RangeError);
    assert.throws(() => mixLatentBackward(new Float32Array(1), new Float32Array(1), bad), RangeError);
  }
  assert.throws(
    () => mixLatentForward(new Float32Array(4), new Float32Array(3), 0.5),
    /expected a latent of 4 values, found 3/,
  );
});

Deno.test("webgpu lerp matches mixLatentForward (ragged lengths, offset views, several t); refusals", async () => {
  if (!gpu) throw new Error("No WebGPU adapter: this test needs one (llvmpipe is enough)");
  const reduce = await WebGpuReduce.create(gpu);
  const wide = await WebGpuReduce.create(gpu, { compact: false });
  try {
    const rng = new Rng(9);
    // n: 1, under a workgroup, ragged across workgroups, a 2-D grid's worth on the compact geometry.
    for (
      const [n, xAt, yAt, t] of [[1, 0, 0, 0.5], [37, 3, 11, 0.25], [1000, 17, 5, 0.9], [70001, 1, 64, 0.01]]
    ) {
      for (const r of [reduce, wide]) {
        const x = Float32Array.from({ length: xAt + n + 5 }, () => rng.normal());
        const y = Float32Array.from({ length: yAt + n + 3 }, () => rng.normal());
        const xb = createStorageBuffer(gpu, "test:x", x), yb = createStorageBuffer(gpu, "test:y", y);
        record(gpu, (pass) => r.lerp(pass, { buffer: xb, offset: xAt }, { buffer: yb, offset: yAt }, n, t));
        const got = await readF32(gpu, xb, x.length);
        const want = x.slice();
        mixLatentForward(want.subarray(xAt, xAt + n), y.subarray(yAt, yAt + n), t);
        let worst = 0;
        for (let i = 0; i < x.length; i++) {
          worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
        }
        assert.ok(worst < 1e-6, `n ${n} at ${xAt}/${yAt}, t ${t}: worst relative error ${worst}`);
        // Outside the range nothing moved, bit for bit.
        assert.deepEqual(Array.from(got.subarray(0, xAt)), Array.from(x.subarray(0, xAt)));
        assert.deepEqual(Array.from(got.subarray(xAt + n)), Array.from(x.subarray(xAt + n)));
        // The scale kernel on the same range: what multiplies the scales' gradients by (1 − α).
        record(gpu, (pass) => r.scale(pass, { buffer: xb, offset: xAt }, n, 1 - t));
        const scaled = await readF32(gpu, xb, x.length);
        for (let i = 0; i < n; i++) {
          assert.equal(scaled[xAt + i], Math.fround(got[xAt + i] * Math.fround(1 - t)), `scale at ${i}`);
        }
        xb.destroy(), yb.destroy();
      }
    }
    const one = createStorageBuffer(gpu, "test:one", new Float32Array(8));
    assert.throws(
      () => record(gpu, (pass) => reduce.lerp(pass, { buffer: one }, { buffer: one, offset: 4 }, 4, 0.5)),
      /expected x and y in different buffers/,
    );
    const other = createStorageBuffer(gpu, "test:other", new Float32Array(8));
    assert.throws(
      () => record(gpu, (pass) => reduce.lerp(pass, { buffer: one }, { buffer: other }, 9, 0.5)),
      /needs 36 bytes of buffer/,
    );
    assert.throws(
      () => record(gpu, (pass) => reduce.lerp(pass, { buffer: one }, { buffer: other }, 4, NaN)),
      /expected a finite t/,
    );
    one.destroy(), other.destroy();
  } finally {
    reduce.dispose(), wide.dispose();
  }
});
