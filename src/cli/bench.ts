// `rabit bench`: GEMV and end-to-end decode speed of fp32, fp16-storage and packed k = 2 on this device.

import { choiceOption, numberOption, parseCommand, printJson, UsageError } from "./args.ts";
import { CpuSession } from "../backend/cpu/session.ts";
import { WasmSession } from "../backend/wasm/session.ts";
import { measureSessionDecode } from "../bench/cpu_decode.ts";
import { measureWasmGemv, type WasmGemvResult } from "../bench/wasm_gemv.ts";
import { openModel } from "../io/load_model.ts";
import { resolveModelPath } from "../io/model_paths.ts";
import { quantizeModel } from "../quant/quantize_model.ts";
import type { PackedModel } from "../quant/residual_binary.ts";
import { requestGpu } from "../backend/webgpu/device.ts";
import { env } from "../util/process.ts";
import { DEFAULT_GEMV_SHAPES, type GemvShape, measureGemv, parseShapeList } from "../bench/gemv.ts";
import { type DecodeVariant, measureDecode } from "../bench/decode.ts";
import { TINYLLAMA_CONFIG } from "../bench/random_model.ts";
import { randomCpuModel } from "../bench/random_cpu_model.ts";
import { measureTrainSteps, TRAIN_BENCH_MODELS } from "../bench/train_step.ts";

/** Layers of the wasm TinyLlama-shaped decode model by default: fp32 weights 16 × 176 MB + a 262 MB classifier. */
const WASM_TINYLLAMA_LAYERS = 16;

export const BENCH_HELP =
  `rabit bench — speed of packed residual-binary kernels against float storage on this WebGPU device

Usage: rabit bench [--shapes 4096x4096,...] [--iters N] [--no-tfjs] [--decode-layers N] [--decode-steps N]
                   [--no-decode] [--fp32-decode] [--json]
       rabit bench --backend wasm [--shapes 4096x4096,...] [--model M] [--decode-layers N] [--no-decode] [--json]
       rabit bench --train [--train-steps N] [--json]
       (an option of one of these runs given to another is refused, exit 2; so is a decode option
       given with --no-decode, and a shape listed twice)

Measures, in one process on one adapter:
  GEMV  ms per matrix-vector product at each shape: fp32, fp16-storage (two halves per u32), packed k = 2,
        and tfjs-webgpu's fp32 matMul as a peer
  decode tokens/s of a TinyLlama-1.1B-shaped model with random weights after 128 cached positions,
        block linears fp16-storage vs packed k = 2 with an fp16 classifier (packed2) and with an int8 one
        (packed2-i8cls), and fp32 with --fp32-decode; with a profile of a step

  train (with --train, instead of the above) ms of one RaBiT training step (teacher and student forward,
        KL + MSE, backward, optimizer) on the CPU backend and on WebGPU, same batch, for stories260K
        (batch 4 × 128 tokens, AdamW), a random model of dim 512, 8 layers, vocab 4096 (batch 1 × 64
        tokens, AdamW), and stories260K as quantize trains it by default (batch 2 × 512, Muon, γ 0.1);
        train_speedup = CPU ms / WebGPU ms

  wasm (with --backend wasm, instead of the above) the WebAssembly SIMD CPU kernels: GEMV ms of fp32,
        fp16-storage, packed k = 2 with the default tables (packed2), and with int8, int16 and f32 tables
        (packed2_i8, packed2_i16, packed2_f32lut), at 4096x4096 unless --shapes, on one thread and (gemv_threads)
        on all; then decode tokens/s of the real model (--model, default stories260K) after a 128-token
        prompt: wasm fp32, fp16-storage, packed k = 2 (a PTQ copy; default int8 and int16 tables) and the TypeScript
        reference (cpu_f32, cpu_packed2), interleaved; then decode tokens/s of a TinyLlama-shaped model with
        random weights (--decode-layers layers, default ${WASM_TINYLLAMA_LAYERS}: the most whose fp32 weights fit one
        wasm memory of 4 GiB with room to spare) after a 32-token prompt, one thread: fp32 against packed k = 2
        with an fp32 classifier (packed2), an fp16-storage one (packed2_f16cls) and an int8 one (packed2_i8cls)

Options:
  --backend B         webgpu (default) or wasm
  --model M           the full-precision model of the wasm decode measurement, whose packed k = 2 copy bench
                      makes itself (a quantized .rabit is refused; default $RABIT_MODEL, then stories260K)
  --train             measure training steps (above)
  --train-steps N     timed steps per backend and model after one warm-up; the median counts (default 3)
  --shapes LIST       comma-separated OUTxIN, each once (default: 4096x4096,11008x4096,4096x11008,2048x2048,
                      5632x2048)
  --iters N           GEMVs per timed submission (default 10)
  --no-tfjs           skip the tfjs peer
  --decode-layers N   layers of the decode model (default 22, TinyLlama's; wasm: ${WASM_TINYLLAMA_LAYERS})
  --decode-steps N    decode steps timed per variant, interleaved; the median counts (default 5)
  --no-decode         GEMV only (so not with --model, --decode-layers, --decode-steps or --fp32-decode)
  --fp32-decode       also decode with fp32 linears (4.4 GB)
  --json              one JSON object as the last line: gemv[shape][variant] ms, decode tokens/s, speedup_vs_fp16
  -h, --help          show this help`;

/** `--shapes` as shapes; a bad item, or a shape listed twice (--json keys results by shape), is a usage
 * error (exit 2). */
function parseShapes(text: string): GemvShape[] {
  let shapes: GemvShape[];
  try {
    shapes = parseShapeList(text);
  } catch (e) {
    throw new UsageError(`bench: ${(e as Error).message}`);
  }
  const keys = shapes.map((s) => `${s.out}x${s.in}`); // as the results name them: "064x64" is 64x64
  const repeated = keys.find((k, i) => keys.indexOf(k) !== i);
  if (repeated !== undefined) {
    const n = keys.filter((k) => k === repeated).length;
    throw new UsageError(
      `bench: --shapes lists ${repeated} ${n === 2 ? "twice" : `${n} times`}; list each shape once`,
    );
  }
  return shapes;
}

/** The options each kind of bench run reads (besides --backend, --train, --json): any other one given is
 * refused, so a measurement never runs with an option the user thought applied to it. */
const OPTIONS_BY_RUN = {
  webgpu: ["shapes", "iters", "no-tfjs", "decode-layers", "decode-steps", "no-decode", "fp32-decode"],
  wasm: ["shapes", "model", "decode-layers", "no-decode"],
  train: ["train-steps"],
} as const;
const RUN_NAMES = { webgpu: "the WebGPU bench", wasm: "--backend wasm", train: "--train" } as const;

/** Throws a usage error for an option given to a kind of run that does not read it. */
function refuseForeignOptions(run: keyof typeof OPTIONS_BY_RUN, given: Record<string, unknown>): void {
  const own: readonly string[] = OPTIONS_BY_RUN[run];
  for (const name of new Set(Object.values(OPTIONS_BY_RUN).flat())) {
    if (given[name] === undefined || own.includes(name)) continue;
    const owners = (Object.keys(OPTIONS_BY_RUN) as (keyof typeof OPTIONS_BY_RUN)[])
      .filter((r) => (OPTIONS_BY_RUN[r] as readonly string[]).includes(name)).map((r) => RUN_NAMES[r]);
    throw new UsageError(`bench: --${name} applies to ${owners.join(" and ")}, not to ${RUN_NAMES[run]}`);
  }
}

/** The options only the decode measurement reads, in whichever run takes them: --no-decode skips it. */
const DECODE_OPTIONS = ["model", "decode-layers", "decode-steps", "fp32-decode"] as const;

/** Throws a usage error for a decode option given with --no-decode, which would change nothing. */
function refuseSkippedDecodeOptions(given: Record<string, unknown>): void {
  if (!given["no-decode"]) return;
  const name = DECODE_OPTIONS.find((n) => given[n] !== undefined);
  if (name === undefined) return;
  throw new UsageError(
    `bench: --${name} applies to the decode measurement, which --no-decode skips; drop one of them`,
  );
}

/**
 * Opens the model of the wasm decode measurement (`explicit`, else $RABIT_MODEL, else stories260K) before
 * anything is measured. It must be full precision: bench packs its own PTQ k = 2 copy to compare against.
 */
async function openDecodeModel(explicit?: string): Promise<{ path: string; model: PackedModel }> {
  const path = resolveModelPath(explicit);
  const { model, format } = await openModel(path);
  if (model.quantized.size > 0) {
    // resolveModelPath's order: --model, then $RABIT_MODEL, then the default (a full-precision .bin).
    const named = explicit
      ? "--model"
      : env("RABIT_MODEL")
      ? `$RABIT_MODEL (${path})`
      : `the default model ${path}`;
    const found = format === "rabit" ? "a quantized .rabit file" : "a packed .safetensors export";
    throw new UsageError(
      `bench: ${named} must be a full-precision model (bench packs its own copy); found ${found}: ` +
        "pass the .bin/GGUF/HF model it came from",
    );
  }
  return { path, model };
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
    backend: { type: "string" },
    model: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) return console.log(BENCH_HELP);
  const backend = choiceOption(values, "backend", ["webgpu", "wasm"] as const, "webgpu");
  if (backend === "wasm" && values.train) {
    throw new UsageError("bench: --train measures WebGPU training; drop --backend wasm");
  }
  refuseForeignOptions(values.train ? "train" : backend, values);
  refuseSkippedDecodeOptions(values);
  if (backend === "wasm") {
    const shapes = values.shapes ? parseShapes(values.shapes) : [{ out: 4096, in: 4096 }];
    const tinyLlamaLayers = numberOption(values, "decode-layers", { integer: true, min: 1, max: 22 }) ??
      WASM_TINYLLAMA_LAYERS;
    return await runWasmBench({
      shapes,
      decodeModel: values["no-decode"] ? undefined : await openDecodeModel(values.model),
      tinyLlamaLayers,
      json: values.json === true,
    });
  }
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
    const variants: DecodeVariant[] = [
      ...(values["fp32-decode"] ? ["f32" as const] : []),
      "f16",
      "packed2",
      "packed2-i8cls",
    ];
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

/** `bench --train`: CPU vs WebGPU training steps on the benchmark models (TRAIN_BENCH_MODELS). */
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
      `${spec.name.padEnd(30)} batch ${spec.batch}×${spec.seq}: cpu ${r.cpuMs.toFixed(0)} ms, webgpu ${
        r.webgpuMs.toFixed(0)
      } ms per step: ${r.train_speedup.toFixed(2)}× (peak GPU buffers ${
        (r.gpuBytes / 2 ** 20).toFixed(1)
      } MiB)`,
    );
    models[spec.name] = r;
  }
  if (json) printJson({ adapter: ctx.adapterDescription, train: models });
}

/**
 * End-to-end decode on the wasm backend (one thread) of a TinyLlama-shaped random model with `layers`
 * layers: fp32 block linears against packed k = 2 with the classifier in fp32, fp16 storage and int8.
 */
async function measureWasmTinyLlamaDecode(
  layers: number,
  log: (line: string) => void,
): Promise<Record<string, unknown>> {
  const config = { ...TINYLLAMA_CONFIG, nLayers: layers };
  log(`decode: TinyLlama-shaped random model, ${layers} layers, one thread, after a 32-token prompt`);
  const sessions: Record<string, WasmSession> = {};
  // The fp32 session keeps its host arrays too (its layers' backward source): about twice its weights.
  sessions.f32 = new WasmSession(randomCpuModel(config, "f32"));
  const packed = randomCpuModel(config, "packed");
  sessions.packed2 = new WasmSession(packed);
  sessions.packed2_f16cls = new WasmSession(packed, { classifier: "f16" });
  sessions.packed2_i8cls = new WasmSession(packed, { classifier: "i8" });
  try {
    const tps = await measureSessionDecode(sessions, { context: 32, rounds: 5, stepsPerRound: 4 });
    for (const [k, v] of Object.entries(tps)) log(`  ${k.padEnd(15)} ${v.toFixed(2)} tokens/s`);
    const ratio = (k: string) => tps[k] / tps.f32;
    log(
      `  vs fp32: packed2 ${ratio("packed2").toFixed(2)}x, packed2_f16cls ${
        ratio("packed2_f16cls").toFixed(2)
      }x, packed2_i8cls ${ratio("packed2_i8cls").toFixed(2)}x`,
    );
    return {
      layers,
      threads: 1,
      context: 32,
      tokensPerSecond: tps,
      speedup_vs_f32: Object.fromEntries(Object.keys(tps).map((k) => [k, ratio(k)])),
      weightBytes: Object.fromEntries(Object.entries(sessions).map(([k, s]) => [k, s.memoryBytes])),
    };
  } finally {
    for (const s of Object.values(sessions)) s.dispose();
  }
}

/**
 * `bench --backend wasm`: the WebAssembly SIMD kernels' GEMVs, then (given `decodeModel`, opened and checked
 * up front) decode on that real model vs the reference and on a TinyLlama-shaped random one.
 */
async function runWasmBench(
  opts: {
    shapes: GemvShape[];
    decodeModel?: { path: string; model: PackedModel };
    tinyLlamaLayers: number;
    json: boolean;
  },
): Promise<void> {
  const log = (line: string) => opts.json ? console.error(line) : console.log(line);
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  const device = `CPU (WebAssembly SIMD, ${cores} hardware threads)`;
  log(`device: ${device}`);
  log("GEMV ms             fp32    fp16  packed2  (i8      i16   f32lut)   fp32 / packed2, fp16 / packed2");
  const onShape = (r: WasmGemvResult) => {
    const f = (v: number) => v.toFixed(3).padStart(7);
    const m = r.ms;
    const cells = [m.f32, m.f16, m.packed2, m.packed2_i8, m.packed2_i16, m.packed2_f32lut].map(f).join(" ");
    log(
      `${`${r.shape} ×${r.threads}`.padEnd(15)} ${cells}   ${(m.f32 / m.packed2).toFixed(2)}x, ${
        (m.f16 / m.packed2).toFixed(2)
      }x`,
    );
  };
  const byShape = (rs: WasmGemvResult[]) =>
    Object.fromEntries(rs.map((r) => [r.shape, { ...r.ms, weightBytes: r.weightBytes }]));
  // gemv: one thread (the kernels themselves); gemv_threads: the same with worker threads over rows.
  const gemv = await measureWasmGemv(opts.shapes, { onShape });
  const out: Record<string, unknown> = { backend: "wasm", device, gemv: byShape(gemv) };
  if (cores > 1) {
    const threaded = await measureWasmGemv(opts.shapes, { onShape, threads: cores });
    out.gemv_threads = { threads: threaded[0]?.threads ?? 1, ...byShape(threaded) };
  }
  if (opts.decodeModel) {
    const { path, model } = opts.decodeModel;
    const packed = quantizeModel(model, { method: "ptq", paths: 2, precondition: 0 }).model;
    log(`decode: ${path}, after a 128-token prompt (packed2: a PTQ k = 2 copy)`);
    const tps = await measureSessionDecode({
      f32: new WasmSession(model),
      f16: new WasmSession(model, { denseStorage: "f16" }),
      packed2: new WasmSession(packed),
      packed2_i16: new WasmSession(packed, { packedTables: "i16" }),
      cpu_f32: new CpuSession(model),
      cpu_packed2: new CpuSession(packed),
    }, { rounds: 15, stepsPerRound: 32 });
    for (const [k, v] of Object.entries(tps)) log(`  ${k.padEnd(15)} ${v.toFixed(1)} tokens/s`);
    log(
      `  packed k=2 vs fp16-storage: ${(tps.packed2 / tps.f16).toFixed(2)}x; wasm vs cpu: fp32 ${
        (tps.f32 / tps.cpu_f32).toFixed(2)
      }x, packed k=2 ${(tps.packed2 / tps.cpu_packed2).toFixed(2)}x`,
    );
    out.decode = {
      model: path,
      layers: model.config.nLayers,
      tokensPerSecond: tps,
      speedup_vs_fp16: tps.packed2 / tps.f16,
      speedup_vs_cpu: { f32: tps.f32 / tps.cpu_f32, packed2: tps.packed2 / tps.cpu_packed2 },
    };
    out.decode_tinyllama = await measureWasmTinyLlamaDecode(opts.tinyLlamaLayers, log);
  }
  if (opts.json) printJson(out);
}
