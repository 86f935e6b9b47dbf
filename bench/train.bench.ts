// One RaBiT training step (teacher and student forward, KL + γ·MSE, backward, optimizer), CPU backend
// (baseline) vs WebGPU, same batch, for stories260K and a random model of dim 512, 8 layers, vocab 4096, and
// for stories260K at quantize's default training shape (2 × 512, Muon).

import { requestGpu } from "../src/backend/webgpu/device.ts";
import { prepareTrainStepPair, TRAIN_BENCH_MODELS } from "../src/bench/train_step.ts";

const ctx = await requestGpu();
if (!ctx) throw new Error("No WebGPU adapter: the training benchmark needs one");

for (const spec of TRAIN_BENCH_MODELS) {
  const model = await spec.load();
  const group = `training step, ${spec.name}, batch ${spec.batch}×${spec.seq}`;
  const { cpu, gpu } = await prepareTrainStepPair(spec, model, ctx);
  Deno.bench({ name: "cpu", group, baseline: true, n: 3, warmup: 1 }, cpu.step);
  Deno.bench({ name: "webgpu", group, n: 3, warmup: 1 }, gpu.step);
}
