// The training-step benchmark: milliseconds of one full RaBiT step (teacher forward, student forward,
// KL + γ·MSE, backward, optimizer) on a backend, for the real stories260K and a random model of dim 512,
// 8 layers, vocab 4096 — the models `bench --train` and bench/train.bench.ts compare CPU and WebGPU on.

import type { LlamaConfig } from "../model/config.ts";
import type { LlamaModel } from "../model/model.ts";
import { llamaParamSpecs, ParamTable } from "../model/params.ts";
import type { TrainingBackend } from "../train/backend.ts";
import { type BackendOptions, CpuTrainingBackend } from "../train/cpu_backend.ts";
import { initializeTable } from "../train/init.ts";
import { trainLayout } from "../train/trainable.ts";
import { WebGpuTrainingBackend } from "../train/webgpu_backend.ts";
import { Rng } from "../util/rng.ts";
import { openModel } from "../io/load_model.ts";
import type { GpuContext } from "../backend/webgpu/device.ts";
import { fileURLToPath } from "node:url";

/** The random benchmark model: dim 512, 8 layers, vocab 4096 (hidden 1376, 8 heads, 4 KV heads). */
export const TRAIN_BENCH_CONFIG: LlamaConfig = {
  dim: 512,
  hiddenDim: 1376,
  nLayers: 8,
  nHeads: 8,
  nKvHeads: 4,
  vocabSize: 4096,
  seqLen: 256,
  sharedClassifier: true,
  normEps: 1e-5,
  ropeTheta: 10000,
};

/** A random full-precision model of `config` (scaled like a trained one, so losses stay finite). */
export function randomTeacher(config: LlamaConfig, seed = 1): LlamaModel {
  const params = ParamTable.fromSpecs(llamaParamSpecs(config));
  const rng = new Rng(seed);
  for (const name of params.names()) {
    const t = params.get(name);
    const shape = params.shape(name);
    if (name.endsWith("norm")) t.fill(1);
    else {
      const scale = 1 / Math.sqrt(shape[shape.length - 1]);
      for (let i = 0; i < t.length; i++) t[i] = (rng.next() * 2 - 1) * scale;
    }
  }
  return { config, params, quantized: new Map() };
}

/** A training backend by name over `teacher`, its table initialized cheaply (greedy SVID, no stats). */
export type BackendFactory = (
  teacher: LlamaModel,
  layout: ReturnType<typeof trainLayout>,
  options: BackendOptions,
) => Promise<TrainingBackend>;

/** The CPU backend factory. */
export const cpuFactory: BackendFactory = (teacher, layout, options) =>
  Promise.resolve(new CpuTrainingBackend(teacher, layout, options));

/** A prepared benchmark step and the backend it runs on. */
export interface PreparedTrainStep {
  /** Runs one full training step. */
  step: () => Promise<void>;
  backend: TrainingBackend;
}

/** A prepared benchmark: call `step()` to run one full training step. */
export async function prepareTrainStep(
  teacher: LlamaModel,
  factory: BackendFactory,
  shape: { batch: number; seq: number },
  options: Partial<BackendOptions> = {},
): Promise<PreparedTrainStep> {
  const o: BackendOptions = { method: "rabit", k: 2, gamma: 1, optimizer: "adamw", ...options };
  const layout = trainLayout(teacher.config, o.k ?? 2, o.method, "norms");
  initializeTable(teacher, layout, { method: o.method, k: o.k, svidRounds: 0, precondition: 0 });
  const backend = await factory(teacher, layout, o);
  const rng = new Rng(7);
  const windows = Array.from(
    { length: shape.batch },
    () => Int32Array.from({ length: shape.seq }, () => rng.int(teacher.config.vocabSize)),
  );
  let s = 0;
  const step = async () => {
    await backend.teacherForward(windows);
    await backend.studentForward(windows);
    await backend.losses();
    await backend.backward();
    await backend.optimizerStep(1e-4, ++s, 1);
  };
  return { step, backend };
}

/** Median milliseconds of `iters` calls of `fn` after one warm-up call. */
export async function medianMs(fn: () => Promise<void>, iters: number): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

async function loadStories260K(): Promise<LlamaModel> {
  return (await openModel(fileURLToPath(new URL("../../../shared/data/stories260K.bin", import.meta.url))))
    .model;
}

/** The WebGPU backend factory (opens the default adapter). */
export const webgpuFactory: BackendFactory = (teacher, layout, options) =>
  WebGpuTrainingBackend.create(teacher, layout, options);

/** A model the training benchmark measures, with the batch both backends get. */
export interface TrainBenchModel {
  name: string;
  batch: number;
  seq: number;
  load: () => Promise<LlamaModel>;
  /** Backend options other than prepareTrainStep's (rabit, k 2, γ 1, AdamW). */
  options?: Partial<BackendOptions>;
}

/**
 * stories260K (batch 4 × 128), the random dim-512 model (batch 1 × 64), and stories260K as `quantize`
 * trains it by default (batch 2 × 512, Muon, γ 0.1: the step a user's default run repeats 1,200 times).
 */
export const TRAIN_BENCH_MODELS: TrainBenchModel[] = [
  {
    name: "stories260K",
    batch: 4,
    seq: 128,
    load: loadStories260K,
  },
  {
    name: "random dim512 8L vocab4096",
    batch: 1,
    seq: 64,
    load: () => Promise.resolve(randomTeacher(TRAIN_BENCH_CONFIG)),
  },
  {
    name: "stories260K, default training",
    batch: 2,
    seq: 512,
    load: loadStories260K,
    options: { optimizer: "muon", gamma: 0.1 },
  },
];

/** One model's result: median ms per step on each backend and their ratio. */
export interface TrainBenchResult {
  batch: number;
  seq: number;
  cpuMs: number;
  webgpuMs: number;
  /** cpuMs / webgpuMs. */
  train_speedup: number;
  /** Bytes of GPU buffers the WebGPU backend held (table, moments, derived weights, activations). */
  gpuBytes: number;
  /** Optimizer state bytes (AdamW m and v), the same on both. */
  optimizerStateBytes: number;
}

/** The CPU and the WebGPU step of `spec` on `model` (its batch and options), the two a benchmark compares. */
export async function prepareTrainStepPair(
  spec: TrainBenchModel,
  model: LlamaModel,
  ctx: GpuContext,
): Promise<{ cpu: PreparedTrainStep; gpu: PreparedTrainStep }> {
  const shape = { batch: spec.batch, seq: spec.seq };
  const cpu = await prepareTrainStep(model, cpuFactory, shape, spec.options);
  const gpu = await prepareTrainStep(
    model,
    (t, l, opts) => WebGpuTrainingBackend.create(t, l, opts, ctx),
    shape,
    spec.options,
  );
  return { cpu, gpu };
}

/** Times `steps` steps (after one warm-up) of each backend on `model`, the CPU and WebGPU alternately. */
export async function measureTrainSteps(
  spec: TrainBenchModel,
  o: { steps: number; ctx: GpuContext; model: LlamaModel },
): Promise<TrainBenchResult> {
  const { cpu, gpu } = await prepareTrainStepPair(spec, o.model, o.ctx);
  try {
    await cpu.step();
    await gpu.step();
    const times = { cpu: [] as number[], gpu: [] as number[] };
    for (let i = 0; i < o.steps; i++) {
      for (const [key, b] of [["cpu", cpu], ["gpu", gpu]] as const) {
        const t0 = performance.now();
        await b.step();
        times[key].push(performance.now() - t0);
      }
    }
    const median = (a: number[]) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const cpuMs = median(times.cpu), webgpuMs = median(times.gpu);
    return {
      batch: spec.batch,
      seq: spec.seq,
      cpuMs,
      webgpuMs,
      train_speedup: cpuMs / webgpuMs,
      gpuBytes: (gpu.backend as WebGpuTrainingBackend).deviceBytes,
      optimizerStateBytes: cpu.backend.optimizerStateBytes,
    };
  } finally {
    cpu.backend.dispose();
    gpu.backend.dispose();
  }
}
