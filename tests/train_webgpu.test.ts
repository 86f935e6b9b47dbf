// The WebGPU training backend against the CPU backend (the definition): the same losses, gradient norms
// and final table over 20 steps, for rabit and standard, AdamW and Muon; state round trips; GPU memory.
// Fails (does not skip) without a WebGPU adapter: CI has llvmpipe.

import assert from "node:assert/strict";
import { requestGpu } from "../src/backend/webgpu/device.ts";
import { measureTrainSteps, randomTeacher, TRAIN_BENCH_MODELS } from "../src/bench/train_step.ts";
import { CpuTrainingBackend } from "../src/train/cpu_backend.ts";
import { initializeTable } from "../src/train/init.ts";
import { type TrainFloat, trainLayout, type TrainMethod } from "../src/train/trainable.ts";
import { WebGpuTrainingBackend } from "../src/train/webgpu_backend.ts";
import type { TrainingBackend } from "../src/train/backend.ts";
import { Rng } from "../src/util/rng.ts";
import { resolvePaths } from "../src/quant/layer_paths.ts";

const ctx = await requestGpu();
// Ragged on purpose: D = 20, H = 36, kvD = 10 (GQA 4/2, head size 5 is not allowed: hs = 4 here).
const config = {
  dim: 16,
  hiddenDim: 36,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 37,
  seqLen: 16,
  sharedClassifier: false,
  normEps: 1e-5,
  ropeTheta: 10000,
};

async function pair(
  method: TrainMethod,
  optimizer: "adamw" | "muon",
  k: number | Map<string, number> = 2,
  trainFloat: TrainFloat = "norms",
  sharedClassifier = false,
  momentum?: number,
  labelWeight?: number,
) {
  if (!ctx) throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough)");
  const c = { ...config, sharedClassifier };
  const teacher = randomTeacher(c, 3);
  const layout = () => {
    const l = trainLayout(c, k, method, trainFloat);
    initializeTable(teacher, l, {
      method,
      ...(typeof k === "number" ? { k } : {}), // mixed k: each layer's is its table's
      precondition: 0,
      init: method === "freeze" ? "greedy" : "svid",
    });
    return l;
  };
  const options = {
    method,
    ...(typeof k === "number" ? { k } : {}),
    gamma: 0.5,
    optimizer,
    momentum,
    labelWeight,
    ...(method === "dbllm" ? { steClip: 4 / 3 } : {}),
  };
  return {
    cpu: new CpuTrainingBackend(teacher, layout(), options) as TrainingBackend,
    gpu: await WebGpuTrainingBackend.create(teacher, layout(), options, ctx),
  };
}

async function step(b: TrainingBackend, windows: Int32Array[], s: number, labels?: Int32Array[]) {
  await b.teacherForward(windows);
  await b.studentForward(windows);
  const l = await b.losses(labels);
  await b.backward();
  const r = await b.optimizerStep(3e-3, s, 0.5);
  return [l.loss, l.kl, l.mse, r.gradNorm];
}

// Mixed k (a k per layer, quant/layer_paths.ts): every kernel launch takes its layer's k, and standard's
// stacked latents differ in height between layers, so Muon's batches of same-shaped matrices split.
const mixed = resolvePaths(config, 2, { wq: 3, w2: 1, "layers.1.w1": 4, "layers.0.wv": 1 });
const mixedAtLeast2 = resolvePaths(config, 2, { wq: 3, "layers.1.w1": 4 });
const cases: [
  TrainMethod,
  "adamw" | "muon",
  number | Map<string, number>,
  number,
  TrainFloat?,
  boolean?,
  number?,
][] = [
  ["rabit", "adamw", 2, 20],
  ["rabit", "muon", 2, 20],
  ["standard", "muon", 2, 20],
  ["freeze", "muon", 3, 8],
  ["dbllm", "adamw", 2, 8],
  ["onebit", "muon", 1, 8],
  // The embedding and classifier trained too: separate, then shared (both gradients in one tensor).
  ["rabit", "muon", 2, 8, "all", false],
  ["rabit", "adamw", 2, 8, "all", true],
  // Muon's momentum reaches both backends (0.95 is the default above).
  ["rabit", "muon", 2, 8, "norms", false, 0.6],
  ["rabit", "muon", mixed, 8],
  ["rabit", "adamw", mixed, 4],
  ["standard", "muon", mixed, 8],
  ["freeze", "muon", mixedAtLeast2, 6],
];
for (const [method, optimizer, k, steps, trainFloat = "norms", shared = false, momentum] of cases) {
  const what =
    (trainFloat === "norms" ? "" : `, train ${trainFloat}${shared ? " (shared classifier)" : ""}`) +
    (momentum === undefined ? "" : `, momentum ${momentum}`);
  const kText = typeof k === "number" ? `k = ${k}` : `mixed k ${[...new Set(k.values())].sort().join("/")}`;
  Deno.test(`webgpu training equals the CPU for ${steps} steps: ${method}, ${optimizer}, ${kText}${what}`, async () => {
    const { cpu, gpu } = await pair(method, optimizer, k, trainFloat, shared, momentum);
    try {
      const rng = new Rng(4);
      let worst = 0;
      for (let s = 1; s <= steps; s++) {
        const windows = Array.from({ length: 3 }, () => Int32Array.from({ length: 11 }, () => rng.int(37)));
        const a = await step(cpu, windows, s), b = await step(gpu, windows, s);
        for (let i = 0; i < 4; i++) {
          const rel = Math.abs(b[i] / a[i] - 1);
          worst = Math.max(worst, rel);
          assert.ok(rel < 1e-3, `step ${s} value ${i}: cpu ${a[i]}, webgpu ${b[i]}`);
        }
      }
      const [x, y] = [await cpu.readState(), await gpu.readState()];
      let err = 0, scale = 0;
      for (let i = 0; i < x.params.length; i++) {
        err = Math.max(err, Math.abs(x.params[i] - y.params[i]));
        scale = Math.max(scale, Math.abs(x.params[i]));
      }
      assert.ok(err < 1e-3 * scale, `final table differs by ${err} (scale ${scale})`);
      assert.ok(worst < 1e-3);
    } finally {
      gpu.dispose();
    }
  });
}

Deno.test("webgpu training equals the CPU with a label weight: the CE scores the labels, not the inputs", async () => {
  const { cpu, gpu } = await pair("rabit", "muon", 2, "norms", false, undefined, 0.4);
  try {
    const rng = new Rng(8);
    for (let s = 1; s <= 8; s++) {
      // Labels unlike the inputs (as token noise makes them): a backend scoring its inputs would differ.
      const windows = Array.from({ length: 3 }, () => Int32Array.from({ length: 11 }, () => rng.int(37)));
      const labels = windows.map((w) => w.map((id, t) => t % 3 === 1 ? rng.int(37) : id));
      const a = await step(cpu, windows, s, labels), b = await step(gpu, windows, s, labels);
      for (let i = 0; i < 4; i++) {
        assert.ok(Math.abs(b[i] / a[i] - 1) < 1e-3, `step ${s} value ${i}: cpu ${a[i]}, webgpu ${b[i]}`);
      }
    }
    await assert.rejects(
      () => step(gpu, [Int32Array.of(1, 2, 3)], 9),
      /label weight 0.4 needs the batch's 1 windows/,
    );
  } finally {
    gpu.dispose();
  }
});

Deno.test("webgpu training equals the CPU when γ changes every step (a γ schedule), down to 0", async () => {
  const { cpu, gpu } = await pair("rabit", "muon");
  try {
    const rng = new Rng(6);
    for (let s = 1; s <= 5; s++) {
      const windows = Array.from({ length: 2 }, () => Int32Array.from({ length: 11 }, () => rng.int(37)));
      const gamma = 0.5 * (5 - s) / 4; // 0.5 … 0: the last step has no MSE gradient at all
      cpu.setGamma(gamma), gpu.setGamma(gamma);
      const a = await step(cpu, windows, s), b = await step(gpu, windows, s);
      for (let i = 0; i < 4; i++) {
        assert.ok(Math.abs(b[i] / a[i] - 1) < 1e-3, `step ${s} value ${i}: cpu ${a[i]}, webgpu ${b[i]}`);
      }
      assert.ok(Math.abs(a[0] - (a[1] + gamma * a[2])) < 1e-6 * a[0], `step ${s}: loss = KL + γ·MSE`);
    }
    assert.throws(() => gpu.setGamma(NaN), /expected an MSE weight gamma ≥ 0/);
  } finally {
    gpu.dispose();
  }
});

Deno.test("webgpu training equals the CPU under a latent mix that falls every step to 0; refusals", async () => {
  for (const [method, k] of [["rabit", 2], ["onebit", 1]] as const) {
    const { cpu, gpu } = await pair(method, "muon", k);
    try {
      const rng = new Rng(12);
      for (let s = 1; s <= 6; s++) {
        const windows = Array.from({ length: 2 }, () => Int32Array.from({ length: 11 }, () => rng.int(37)));
        const alpha = 0.6 * Math.max(0, 5 - s) / 4; // 0.6 … 0
        cpu.setLatentMix(alpha), gpu.setLatentMix(alpha);
        const a = await step(cpu, windows, s), b = await step(gpu, windows, s);
        for (let i = 0; i < 4; i++) {
          assert.ok(
            Math.abs(b[i] / a[i] - 1) < 1e-3,
            `${method} step ${s} value ${i}: cpu ${a[i]}, webgpu ${b[i]}`,
          );
        }
      }
      const [x, y] = [await cpu.readState(), await gpu.readState()];
      let err = 0, scale = 0;
      for (let i = 0; i < x.params.length; i++) {
        err = Math.max(err, Math.abs(x.params[i] - y.params[i]));
        scale = Math.max(scale, Math.abs(x.params[i]));
      }
      assert.ok(err < 1e-3 * scale, `${method}: final table differs by ${err} (scale ${scale})`);
      assert.throws(() => gpu.setLatentMix(1), /expected a weight α in \[0, 1\)/);
    } finally {
      gpu.dispose();
    }
  }
  const { gpu } = await pair("standard", "muon");
  try {
    assert.throws(() => gpu.setLatentMix(0.3), /needs the coupled derivation .*found standard/);
  } finally {
    gpu.dispose();
  }
  const dbllm = await pair("dbllm", "adamw");
  try {
    assert.throws(() => dbllm.gpu.setLatentMix(0.3), /needs the identity STE, found a clip of 1.3/);
  } finally {
    dbllm.gpu.dispose();
  }
});

Deno.test("webgpu backend: state round trip, optimizer state half of standard's, device bytes", async () => {
  const { gpu } = await pair("rabit", "adamw");
  const { gpu: std } = await pair("standard", "adamw");
  try {
    const s = await gpu.readState();
    s.params[3] += 1;
    await gpu.writeState(s);
    assert.deepEqual((await gpu.readState()).params, s.params);
    const ratio = gpu.optimizerStateBytes / std.optimizerStateBytes;
    assert.ok(ratio > 0.5 && ratio < 0.65, `ratio ${ratio}`);
    assert.ok(gpu.deviceBytes > gpu.table.count * 4 * 4, `${gpu.deviceBytes}`);
    await assert.rejects(() => gpu.writeState({ ...s, m: new Float32Array(2) }), /expected m of/);
  } finally {
    gpu.dispose();
    std.dispose();
  }
});

Deno.test("the training-step benchmark times both backends on the batch and options of its spec", async () => {
  assert.ok(ctx, "no WebGPU adapter");
  const model = randomTeacher(config);
  const spec = (optimizer: "adamw" | "muon") => ({
    name: optimizer,
    batch: 2,
    seq: 8,
    load: () => Promise.resolve(model),
    options: { optimizer, gamma: 0.1 },
  });
  const adamw = await measureTrainSteps(spec("adamw"), { steps: 1, ctx: ctx!, model });
  const muon = await measureTrainSteps(spec("muon"), { steps: 1, ctx: ctx!, model });
  for (const r of [adamw, muon]) {
    assert.equal(r.batch, 2);
    assert.equal(r.seq, 8);
    assert.ok(r.cpuMs > 0 && r.webgpuMs > 0 && r.gpuBytes > 0);
    assert.equal(r.train_speedup, r.cpuMs / r.webgpuMs);
  }
  // Muon keeps one moment for the latents where AdamW keeps two: the spec's optimizer was used.
  assert.ok(muon.optimizerStateBytes < adamw.optimizerStateBytes);
  assert.deepEqual(
    TRAIN_BENCH_MODELS.map((m) => [m.batch, m.seq, m.options?.optimizer ?? "adamw"]),
    [[4, 128, "adamw"], [1, 64, "adamw"], [2, 512, "muon"]],
  );
});
