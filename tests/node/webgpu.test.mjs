// WebGPU under Node through the built npm package: requestGpu finds Dawn through the optional `webgpu`
// package (on a headless machine its OpenGL backend on Mesa llvmpipe), and a WebGpuSession of the real
// model decodes the golden greedy tokens. No skipping: a missing package or adapter fails.

import assert from "node:assert/strict";
import { access, readFile } from "node:fs/promises";
import test from "node:test";
import { DEV_TEXT_PATH, GOLDEN_GREEDY, GOLDEN_TEXT, MODEL_PATH, rabit } from "./_package.mjs";

test("WebGpuSession through the `webgpu` package: golden greedy text, packed 2-bit as on the CPU", async (t) => {
  await access(new URL("../../node_modules/webgpu/package.json", import.meta.url)).catch(() => {
    throw new Error("node_modules/webgpu is missing: run `npm install` (an optionalDependency)");
  });
  const ctx = await rabit.requestGpu();
  assert.ok(ctx, "requestGpu() returned null under Node: Dawn found no adapter");
  t.diagnostic(`adapter: ${ctx.adapterDescription}${ctx.isFallback ? " (software)" : ""}`);
  try {
    const { model, tokenizer } = await rabit.openModel(MODEL_PATH, { requireTokenizer: true });
    const session = await rabit.WebGpuSession.create(model, { ctx });
    try {
      assert.equal(session.backend, "webgpu");
      const r = await rabit.generate(session, tokenizer, { steps: GOLDEN_GREEDY.length });
      assert.deepEqual(r.generated, GOLDEN_GREEDY);
      assert.equal(r.text, GOLDEN_TEXT);
    } finally {
      session.dispose();
    }
    // The packed residual-binary kernels: 2-bit round-to-nearest (no calibration) decodes as on the CPU.
    const text = (await readFile(DEV_TEXT_PATH, "utf8")).slice(0, 2000);
    const q = await rabit.quantize(model, { method: "rtn2", tokenizer, data: [{ name: "dev", text }] });
    const packed = await rabit.WebGpuSession.create(q.model, { ctx });
    try {
      const want = await rabit.generate(new rabit.CpuSession(q.model), tokenizer, { steps: 16 });
      const got = await rabit.generate(packed, tokenizer, { steps: 16 });
      assert.deepEqual(got.generated, want.generated);
    } finally {
      packed.dispose();
    }
  } finally {
    ctx.device.destroy();
  }
});
