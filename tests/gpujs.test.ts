// gpu.js's dense GEMV (bench/gpujs/gemv.ts) against the TypeScript reference on ragged shapes, in the mode
// gpu.js picks under Deno (webasm: no WebGL here) and in its cpu mode; and the row blocks that keep its f32
// indices exact. Needs the gpu.js devDependency (`npm install`).

import assert from "node:assert/strict";
import { DenseLinear } from "../src/model/linear.ts";
import { createGpuJsGemv, gemvData, maxRelError } from "../bench/gpujs/gemv.ts";
import { loadGpuJs } from "../bench/gpujs/load.ts";

for (const mode of ["gpu", "cpu"]) {
  Deno.test(`gpu.js GEMV (mode "${mode}") matches DenseLinear on ragged shapes`, async () => {
    const GPU = await loadGpuJs();
    const gpu = new GPU({ mode });
    try {
      for (const [out, inF] of [[37, 53], [1, 7], [130, 9]]) {
        const { w, x } = gemvData(out, inF, out * 31 + inF);
        const ref = new DenseLinear(w, out, inF).forward(x, 1);
        const g = await createGpuJsGemv(gpu, w, out, inF);
        const y = await g.forward(x);
        g.destroy();
        if (mode === "gpu") assert.notEqual(g.mode, "cpu", "gpu.js fell back to its cpu mode under Deno");
        assert.equal(y.length, out);
        const err = maxRelError(y, ref);
        assert.ok(err <= 1e-5, `${g.mode} ${out}x${inF}: max relative error ${err}`);
      }
    } finally {
      gpu.destroy();
    }
  });
}

Deno.test("gpu.js GEMV: rows split into blocks of at most 2^24 values give the whole product", async () => {
  const GPU = await loadGpuJs();
  const gpu = new GPU({ mode: "cpu" });
  try {
    // 4100 rows of 4097: 2^24 values hold 4095 rows, so two blocks of 2050 rows.
    const out = 4100, inF = 4097;
    const { w, x } = gemvData(out, inF);
    const ref = new DenseLinear(w, out, inF).forward(x, 1);
    const g = await createGpuJsGemv(gpu, w, out, inF);
    const y = await g.forward(x);
    assert.throws(() => g.forward(new Float32Array(3)), RangeError);
    g.destroy();
    assert.ok(maxRelError(y, ref) <= 1e-6);
  } finally {
    gpu.destroy();
  }
});
