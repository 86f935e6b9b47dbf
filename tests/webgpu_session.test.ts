// Whole-model inference on WebGPU against the CPU reference on the real model: float and packed.
// Fails (does not skip) without a WebGPU adapter: CI has llvmpipe.

import assert from "node:assert/strict";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { requestGpu } from "../src/backend/webgpu/device.ts";
import { WebGpuSession } from "../src/backend/webgpu/session.ts";
import { generate } from "../src/eval/generate.ts";
import { perplexity } from "../src/eval/perplexity.ts";
import { openModel } from "../src/io/load_model.ts";
import { quantizeModel } from "../src/quant/quantize_model.ts";
import { DEV_TEXT_PATH, MODEL_PATH } from "./_data.ts";

const ctx = await requestGpu();
const opened = await openModel(MODEL_PATH, { requireTokenizer: true });
const tokenizer = opened.tokenizer!;
const ids = [1, ...tokenizer.encode((await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 12000))];

function gpu() {
  if (!ctx) {
    throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; ENGINEERING.md §1)");
  }
  return ctx;
}

Deno.test("webgpu greedy decoding equals the CPU backend for 256 steps", async () => {
  const session = await WebGpuSession.create(opened.model, { ctx: gpu() });
  try {
    const a = await generate(session, tokenizer, { steps: 256 });
    const b = await generate(new CpuSession(opened.model), tokenizer, { steps: 256 });
    assert.equal(a.generated.length, 256);
    assert.deepEqual(a.generated, b.generated);
  } finally {
    session.dispose();
  }
});

Deno.test("webgpu perplexity agrees with the CPU backend to 0.1 % (float and packed k = 2)", async () => {
  const packed = quantizeModel(opened.model, { method: "ptq", paths: 2, precondition: 0 }).model;
  for (const model of [opened.model, packed]) {
    const session = await WebGpuSession.create(model, { ctx: gpu(), maxChunk: 100 }); // 128-token windows: 2 chunks
    try {
      const g = await perplexity(session, ids, { context: 128, maxWindows: 3 });
      const c = await perplexity(new CpuSession(model), ids, { context: 128, maxWindows: 3 });
      assert.ok(Math.abs(g.ppl / c.ppl - 1) < 1e-3, `gpu ${g.ppl} vs cpu ${c.ppl}`);
    } finally {
      session.dispose();
    }
  }
});

Deno.test("webgpu session refuses bad tokens and positions", async () => {
  const session = await WebGpuSession.create(opened.model, { ctx: gpu() });
  try {
    await assert.rejects(
      session.run([600], 0),
      /Token id 600 at position 0 is outside the vocabulary 0..511/,
    );
    await assert.rejects(session.run([1, 2], 511), /exceed the model's seq_len 512/);
    await assert.rejects(session.run([], 0), /at least one token/);
  } finally {
    session.dispose();
  }
  await assert.rejects(session.run([1], 0), /used after dispose/);
});

Deno.test("packed weights on the GPU: sign bits plus fp16 scales plus the f32 copy of h, from the allocated buffers", async () => {
  const { uploadLinear } = await import("../src/backend/webgpu/matmul.ts");
  const out = 512, inF = 4096, k = 2;
  const lin = uploadLinear(gpu(), "bpw", {
    kind: "packed",
    layer: {
      out,
      in: inF,
      k,
      planes: new Uint32Array(k * out * (inF / 32)),
      g: new Float32Array(k * out).fill(1),
      h: new Float32Array(k * inF).fill(1),
    },
  });
  const bits = (8 * lin.bytes) / (out * inF);
  lin.destroy();
  // k sign bits, g and h as fp16, and h's f32 copy for the GEMV: 2 + (2·512·16 + 2·4096·(16 + 32)) /
  // (512·4096) ≈ 2.195 for this 512-row slice; at 4096 × 4096 the same layout is 2.031.
  const want = 2 + (k * out * 16 + k * inF * 48) / (out * inF);
  assert.ok(Math.abs(bits - want) < 1e-9, `${bits} bits/weight, expected ${want}`);
});

Deno.test("profileStep reports the step, its parts, its dispatch count and their fixed cost", async () => {
  const session = await WebGpuSession.create(opened.model, { ctx: gpu(), maxChunk: 1 });
  try {
    await session.run([1, 2, 3], 0);
    const p = await session.profileStep(3, 1);
    const c = opened.model.config;
    // embedding; per layer q, k, v (norm fused), rotary+KV write, attention (1 or 2), wo, w1, w3 (norm
    // fused), swiglu, w2; the classifier (norm fused).
    assert.ok(
      p.dispatches >= 1 + 10 * c.nLayers + 1 && p.dispatches <= 1 + 11 * c.nLayers + 1,
      `${p.dispatches}`,
    );
    for (const [k, v] of Object.entries(p)) assert.ok(Number.isFinite(v) && v > 0, `${k} = ${v}`);
    assert.ok(p.dispatchOverheadMs < p.allMs * 3, "a 1-element dispatch cannot cost more than real ones");
  } finally {
    session.dispose();
  }
});
