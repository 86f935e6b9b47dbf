// GEMV speed per weight storage at Llama-2-7B and TinyLlama shapes, one group per shape: fp32 (baseline),
// fp16-storage, packed k = 2, and tfjs-webgpu's fp32 matMul, all in this process on one adapter. Each of our
// kernels is autotuned over the same candidate geometries first. One iteration = 4 GEMVs recorded into one
// submission (amortizing the per-submit cost as a decoder does). Compare ratios, not absolute times.
// Run: deno bench -A bench/gemv.bench.ts   (src/bench/gemv.ts gives interleaved medians and --json)

import { createStorageBuffer, requestGpu } from "../src/backend/webgpu/device.ts";
import { MatmulEngine } from "../src/backend/webgpu/matmul.ts";
import { DEFAULT_GEMV_SHAPES, randomLinear, tfjsGemv, timeGemvBatch } from "../src/bench/gemv.ts";

const ctx = await requestGpu();
if (!ctx) throw new Error("No WebGPU adapter: the GEMV benchmark needs one (llvmpipe is enough)");
const engine = await MatmulEngine.create(ctx);
const PER_ITER = 4;

for (const shape of DEFAULT_GEMV_SHAPES) {
  const group = `gemv ${shape.out}x${shape.in}`;
  // UNIFORM usage as the session's activations: decode GEMVs read x through a uniform binding.
  const x = createStorageBuffer(ctx, "x", new Float32Array(shape.in).fill(0.5), GPUBufferUsage.UNIFORM);
  const y = createStorageBuffer(ctx, "y", shape.out * 4);
  for (
    const [name, kind, baseline] of [["fp32", "f32", true], ["fp16-storage", "f16", false], [
      "packed k=2",
      "packed",
      false,
    ]] as const
  ) {
    const lin = randomLinear(ctx, shape, kind);
    await engine.tune(lin, { reps: 2 });
    const geo = engine.geometryFor("gemv", kind, lin);
    Deno.bench(
      {
        name: `${name} (${lin.bytes} B, WG ${geo.WG} TPR ${geo.TPR} RPT ${geo.RPT})`,
        group,
        baseline,
        n: 8,
        warmup: 2,
      },
      async () => {
        await timeGemvBatch(ctx, engine, lin, x, y, PER_ITER);
      },
    );
  }
  const tf = await tfjsGemv(shape);
  if (typeof tf === "string") console.error(`${group}: tfjs-webgpu not benchmarked: ${tf}`);
  else {
    Deno.bench({ name: "tfjs-webgpu fp32 matMul", group, n: 8, warmup: 2 }, async () => {
      await tf.run(PER_ITER);
    });
  }
}
