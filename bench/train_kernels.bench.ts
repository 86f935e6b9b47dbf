// Two training kernels at stories260K's default training shape, each against what it replaced, in one
// process: the serial training attention (B 2, T 512, 8 heads of 8, 4 KV heads; forward and backward)
// with the old cap of 4 slots per invocation (baseline) against the default slots; and one Muon step over
// the 35 latents of stories260K's blocks as one step per matrix (baseline) against one batched step per
// layer kind (src/train/webgpu_backend.ts). Each iteration records the work into one pass and waits.

import { createStorageBuffer, type GpuContext, requestGpu } from "../src/backend/webgpu/device.ts";
import { Dispatcher } from "../src/backend/webgpu/dispatch.ts";
import { AttentionTrainOps } from "../src/backend/webgpu/ops/attention_train.ts";
import { WebGpuMuon } from "../src/train/webgpu_muon.ts";

const ctx = await requestGpu();
if (!ctx) throw new Error("No WebGPU adapter: the training-kernel benchmark needs one");

/** A storage buffer of `n` floats with smooth values (finite softmax inputs, non-zero gradients). */
function buffer(c: GpuContext, n: number): GPUBuffer {
  const b = createStorageBuffer(c, "bench", n * 4);
  c.device.queue.writeBuffer(b, 0, Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.5));
  return b;
}

async function submit(c: GpuContext, record: (pass: GPUComputePassEncoder) => void): Promise<void> {
  const enc = c.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  record(pass);
  pass.end();
  c.device.queue.submit([enc.finish()]);
  await c.device.queue.onSubmittedWorkDone();
}

// Attention.
{
  const B = 2, T = 512, nH = 8, nKV = 4, hs = 8, qD = nH * hs, kvD = nKV * hs;
  const v = (n: number) => ({ buffer: buffer(ctx, n) });
  const args = {
    q: v(B * T * qD),
    k: v(B * T * kvD),
    v: v(B * T * kvD),
    out: v(B * T * qD),
    lse: v(B * nH * T),
    windows: B,
    tokens: T,
    nHeads: nH,
    nKvHeads: nKV,
    headSize: hs,
  };
  const back = {
    ...args,
    dOut: v(B * T * qD),
    delta: v(B * nH * T),
    dQ: v(B * T * qD),
    dK: v(B * T * kvD),
    dV: v(B * T * kvD),
  };
  const group = "training attention (serial), B 2 × T 512, 8 heads of 8, forward + backward";
  for (
    const [name, slots] of [["4 slots (the old cap)", { forward: 4, dq: 4, dkv: 4 }], [
      "default slots",
      undefined,
    ]] as const
  ) {
    const ops = new AttentionTrainOps(new Dispatcher(ctx, "bench"), { compact: true, slots });
    await ops.prepare({ headSizes: [hs] });
    Deno.bench({
      name: `${name} ${JSON.stringify(ops.slots(hs))}`,
      group,
      baseline: !!slots,
      n: 10,
      warmup: 2,
    }, () =>
      submit(ctx, (pass) => {
        ops.forward(pass, args);
        ops.backward(pass, back);
      }));
  }
}

// Muon over stories260K's latents: 5 layers of wq, wk, wv, wo (64×64, 32×64, 32×64, 64×64) and w1, w2, w3
// (172×64, 64×172, 172×64), laid out layer after layer as the training table does.
{
  const shapes: [number, number][] = [[64, 64], [32, 64], [32, 64], [64, 64], [172, 64], [64, 172], [
    172,
    64,
  ]];
  const layers = 5, perLayer = shapes.reduce((s, [r, c]) => s + r * c, 0);
  const [w, g, m] = [0, 1, 2].map(() => buffer(ctx, layers * perLayer));
  const muon = await WebGpuMuon.create(ctx, { compact: true });
  muon.setLearningRate(1e-4);
  const offsets: number[] = [];
  for (let at = 0, i = 0; i < shapes.length; at += shapes[i][0] * shapes[i][1], i++) offsets.push(at);
  const group = "Muon step, stories260K's 35 block latents";
  Deno.bench(
    { name: "one step per matrix (805 dispatches)", group, baseline: true, n: 10, warmup: 2 },
    () =>
      submit(ctx, (pass) => {
        for (let l = 0; l < layers; l++) {
          for (const [i, [rows, cols]] of shapes.entries()) {
            const at = l * perLayer + offsets[i];
            muon.step(pass, {
              w: { buffer: w, offset: at },
              g: { buffer: g, offset: at },
              m: { buffer: m, offset: at },
              rows,
              cols,
            });
          }
        }
      }),
  );
  Deno.bench(
    { name: "one batched step per layer kind (161 dispatches)", group, n: 10, warmup: 2 },
    () =>
      submit(ctx, (pass) => {
        for (const [i, [rows, cols]] of shapes.entries()) {
          const at = offsets[i];
          const views = {
            w: { buffer: w, offset: at },
            g: { buffer: g, offset: at },
            m: { buffer: m, offset: at },
          };
          muon.step(pass, { ...views, rows, cols, count: layers, batch: perLayer });
        }
      }),
  );
}
