// End-to-end decode of a TinyLlama-1.1B-shaped model with random weights, block linears stored fp16
// (baseline) vs packed k = 2, after 128 cached positions. One group, one process.
// The models are large: building each takes tens of seconds before timing starts.

import { requestGpu } from "../src/backend/webgpu/device.ts";
import { WebGpuSession } from "../src/backend/webgpu/session.ts";
import { randomGpuWeights, TINYLLAMA_CONFIG } from "../src/bench/random_model.ts";

const ctx = await requestGpu();
if (!ctx) throw new Error("No WebGPU adapter: the decode benchmark needs one");
const layers = Number(Deno.env.get("RABIT_BENCH_LAYERS") ?? TINYLLAMA_CONFIG.nLayers);
const config = { ...TINYLLAMA_CONFIG, nLayers: layers };

for (
  const [name, kind, baseline] of [["fp16-storage", "f16", true], ["packed k=2", "packed", false]] as const
) {
  const session = await WebGpuSession.fromWeights(ctx, randomGpuWeights(ctx, config, kind), {
    maxChunk: 1,
    tune: true, // both variants autotuned the same way (choices cached per adapter)
  });
  let pos = 128;
  Deno.bench(
    { name, group: `decode TinyLlama-shaped (${layers} layers)`, baseline, n: 3, warmup: 1 },
    async () => {
      await session.run([1], pos, { lastOnly: true });
      pos = pos >= 1000 ? 128 : pos + 1;
    },
  );
}
