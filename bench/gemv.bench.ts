// GEMV speed per weight storage at Llama-2-7B and TinyLlama shapes: fp32 (baseline), fp16-storage,
// packed k = 2, and tfjs-webgpu's fp32 matMul, each shape one group in one process.
// Run: npx deno task bench (or `deno bench -A bench/gemv.bench.ts`).

import { requestGpu } from "../src/backend/webgpu/device.ts";
import { MatmulEngine } from "../src/backend/webgpu/matmul.ts";
import { DEFAULT_GEMV_SHAPES, randomLinear } from "../src/bench/gemv.ts";
import { createStorageBuffer } from "../src/backend/webgpu/device.ts";

const ctx = await requestGpu();
if (!ctx) throw new Error("No WebGPU adapter: the GEMV benchmark needs one");
const engine = await MatmulEngine.create(ctx);
const tf = await import("@tensorflow/tfjs-core");
await import("@tensorflow/tfjs-backend-webgpu");
const tfReady = await tf.setBackend("webgpu").catch(() => false);

for (const shape of DEFAULT_GEMV_SHAPES) {
  const group = `gemv ${shape.out}x${shape.in}`;
  const x = createStorageBuffer(ctx, "x", new Float32Array(shape.in).fill(0.5));
  const y = createStorageBuffer(ctx, "y", shape.out * 4);
  for (
    const [name, kind, baseline] of [["fp32", "f32", true], ["fp16-storage", "f16", false], [
      "packed k=2",
      "packed",
      false,
    ]] as const
  ) {
    const lin = randomLinear(ctx, shape, kind);
    Deno.bench({ name, group, baseline, n: 5, warmup: 1 }, async () => {
      const enc = ctx.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      engine.encode(pass, lin, { buffer: x }, { buffer: y }, 1);
      pass.end();
      ctx.device.queue.submit([enc.finish()]);
      await ctx.device.queue.onSubmittedWorkDone();
    });
  }
  if (tfReady) {
    const w = tf.randomUniform([shape.out, shape.in]);
    const xt = tf.randomUniform([1, shape.in]);
    Deno.bench({ name: "tfjs-webgpu fp32 matMul", group, n: 5, warmup: 1 }, async () => {
      const r = tf.matMul(xt, w, false, true);
      await r.data();
      r.dispose();
    });
  }
}
