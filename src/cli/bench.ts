// `rabit bench`: GEMV and end-to-end decode speed of fp32, fp16-storage and packed k = 2 on this device.

import { numberOption, parseCommand, printJson, UsageError } from "./args.ts";
import { requestGpu } from "../backend/webgpu/device.ts";
import { DEFAULT_GEMV_SHAPES, type GemvShape, measureGemv } from "../bench/gemv.ts";
import { type DecodeVariant, measureDecode } from "../bench/decode.ts";
import { TINYLLAMA_CONFIG } from "../bench/random_model.ts";
import { measureTrainSteps, TRAIN_BENCH_MODELS } from "../bench/train_step.ts";

export const BENCH_HELP =
  `rabit bench — speed of packed residual-binary kernels against float storage on this WebGPU device

Usage: rabit bench [--shapes 4096x4096,...] [--iters N] [--no-tfjs] [--decode-layers N] [--decode-steps N]
                   [--no-decode] [--fp32-decode] [--json]
       rabit bench --train [--train-steps N] [--json]

Measures, in one process on one adapter:
  GEMV  ms per matrix-vector product at each shape: fp32, fp16-storage (two halves per u32), packed k = 2,
        and tfjs-webgpu's fp32 matMul as a peer
  decode tokens/s of a TinyLlama-1.1B-shaped model with random weights after 128 cached positions,
        block linears fp16-storage vs packed k = 2 (and fp32 with --fp32-decode), with a profile of a step

  train (with --train, instead of the above) ms of one RaBiT training step (teacher and student forward,
        KL + MSE, backward, optimizer) on the CPU backend and on WebGPU, same batch, for stories260K
        (batch 4 × 128 tokens) and a random model of dim 512, 8 layers, vocab 4096 (batch 1 × 64 tokens);
        train_speedup = CPU ms / WebGPU ms

Options:
  --train             measure training steps (above)
  --train-steps N     timed steps per backend and model after one warm-up; the median counts (default 3)
  --shapes LIST       comma-separated OUTxIN (default: 4096x4096,11008x4096,4096x11008,2048x2048,5632x2048)
  --iters N           GEMVs per timed submission (default 10)
  --no-tfjs           skip the tfjs peer
  --decode-layers N   layers of the decode model (default 22, TinyLlama's)
  --decode-steps N    decode steps timed per variant, interleaved; the median counts (default 5)
  --no-decode         GEMV only
  --fp32-decode       also decode with fp32 linears (4.4 GB)
  --json              one JSON object as the last line: gemv[shape][variant] ms, decode tokens/s, speedup_vs_fp16
  -h, --help          show this help`;

function parseShapes(text: string): GemvShape[] {
  return text.split(",").map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new UsageError(`--shapes: expected OUTxIN like 4096x4096, found "${s}"`);
    return { out: Number(m[1]), in: Number(m[2]) };
  });
}

/** Runs `bench` with argv (after the command name). */
export async function runBench(argv: string[]): Promise<void> {
  const { values } = parseCommand("bench", argv, {
    shapes: { type: "string" },
    iters: { type: "string" },
    "no-tfjs": { type: "boolean" },
    "decode-layers": { type: "string" },
    "decode-steps": { type: "string" },
    "no-decode": { type: "boolean" },
    "fp32-decode": { type: "boolean" },
    train: { type: "boolean" },
    "train-steps": { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) return console.log(BENCH_HELP);
  if (values.train) {
    return await runTrainBench(
      values.json === true,
      numberOption(values, "train-steps", {
        integer: true,
        min: 1,
      }) ?? 3,
    );
  }
  const shapes = values.shapes ? parseShapes(values.shapes) : DEFAULT_GEMV_SHAPES;
  const iters = numberOption(values, "iters", { integer: true, min: 1 }) ?? 10;
  const layers = numberOption(values, "decode-layers", { integer: true, min: 1 }) ?? TINYLLAMA_CONFIG.nLayers;
  const steps = numberOption(values, "decode-steps", { integer: true, min: 1 }) ?? 5;
  const ctx = await requestGpu();
  if (!ctx) throw new Error("No WebGPU adapter answered: bench measures WebGPU kernels and needs one");
  const log = (line: string) => values.json ? console.error(line) : console.log(line);
  log(`adapter: ${ctx.adapterDescription}${ctx.isFallback ? " (software)" : ""}`);
  log("GEMV ms          fp32    fp16  packed2    tfjs   packed vs fp32 / fp16 / tfjs");
  const gemv = await measureGemv(ctx, shapes, {
    iters,
    tfjs: !values["no-tfjs"],
    // tfjs_f32 is absent for shapes where tfjs-webgpu gave wrong results (weights past one binding)
    onShape: (r) => {
      const f = (v?: number) => (v === undefined ? "-" : v.toFixed(2)).padStart(7);
      const ratio = (v?: number) => (v === undefined ? "-" : (v / r.ms.packed2!).toFixed(2) + "x");
      log(
        `${r.shape.padEnd(12)} ${f(r.ms.f32)} ${f(r.ms.f16)} ${f(r.ms.packed2)} ${f(r.ms.tfjs_f32)}   ` +
          `${ratio(r.ms.f32)} / ${ratio(r.ms.f16)} / ${ratio(r.ms.tfjs_f32)}`,
      );
    },
  });
  const out: Record<string, unknown> = {
    adapter: ctx.adapterDescription,
    gemv: Object.fromEntries(gemv.map((r) => [r.shape, { ...r.ms, weightBytes: r.weightBytes }])),
  };
  if (!values["no-decode"]) {
    const variants: DecodeVariant[] = values["fp32-decode"] ? ["f32", "f16", "packed2"] : ["f16", "packed2"];
    const config = { ...TINYLLAMA_CONFIG, nLayers: layers };
    log(`decode: TinyLlama-shaped, ${layers} layers, random weights, after 128 cached positions`);
    const decode = await measureDecode(ctx, config, {
      steps,
      variants,
      onResult: (r) =>
        log(
          `  ${r.variant.padEnd(8)} ${r.tokensPerSecond.toFixed(3)} tokens/s  ${
            r.bitsPerWeight.toFixed(3)
          } bits/weight  ` +
            `step ${r.profile.allMs.toFixed(0)} ms = matmuls ${
              r.profile.linearsMs.toFixed(0)
            } ms + other kernels ` +
            `${r.profile.othersMs.toFixed(0)} ms (measured apart); of the step, ${r.profile.dispatches} ` +
            `dispatches cost ${r.profile.dispatchOverheadMs.toFixed(1)} ms of fixed overhead`,
        ),
    });
    const tps = Object.fromEntries(decode.map((r) => [r.variant, r.tokensPerSecond]));
    out.decode = {
      layers,
      tokensPerSecond: tps,
      speedup_vs_fp16: tps.packed2 / tps.f16,
      bitsPerWeight: Object.fromEntries(decode.map((r) => [r.variant, r.bitsPerWeight])),
      profile: Object.fromEntries(decode.map((r) => [r.variant, r.profile])),
    };
    log(`  packed k=2 vs fp16-storage: ${(tps.packed2 / tps.f16).toFixed(2)}x`);
  }
  if (values.json) printJson(out);
}

/** `bench --train`: CPU vs WebGPU training steps on both benchmark models. */
async function runTrainBench(json: boolean, steps: number): Promise<void> {
  const log = (line: string) => json ? console.error(line) : console.log(line);
  const ctx = await requestGpu();
  if (!ctx) {
    throw new Error("No WebGPU adapter answered: bench --train compares the CPU with WebGPU and needs one");
  }
  log(`adapter: ${ctx.adapterDescription}${ctx.isFallback ? " (software)" : ""}`);
  const models: Record<string, unknown> = {};
  for (const spec of TRAIN_BENCH_MODELS) {
    const r = await measureTrainSteps(spec, { steps, ctx, model: await spec.load() });
    log(
      `${spec.name.padEnd(28)} batch ${spec.batch}×${spec.seq}: cpu ${r.cpuMs.toFixed(0)} ms, webgpu ${
        r.webgpuMs.toFixed(0)
      } ms per step: ${r.train_speedup.toFixed(2)}× (peak GPU buffers ${
        (r.gpuBytes / 2 ** 20).toFixed(1)
      } MiB)`,
    );
    models[spec.name] = r;
  }
  if (json) printJson({ adapter: ctx.adapterDescription, train: models });
}
