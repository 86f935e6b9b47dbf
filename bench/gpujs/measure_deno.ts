// Dense fp32 GEMV y = W · x in this process: the repo's WebAssembly SIMD kernel (the baseline of the no-WebGPU
// path), the TypeScript reference, and gpu.js in every mode it runs here (its own pick, webasm with worker
// threads, cpu, webgpu with W uploaded per call or kept resident). Each result is checked against the float64
// TypeScript reference (src/model/gemm.ts) before timing; then interleaved rounds, medians (gemv.ts).
// Run: deno run -A bench/gpujs/measure_deno.ts [--shapes 512x512,4096x4096] [--only wasm,gpujs] [--reps 7]
//      [--json]   (prints a markdown table; with --json the last line is one JSON object)

import { parseArgs } from "node:util";
import { parseShapeList } from "../../src/bench/gemv.ts";
import { WasmKernels } from "../../src/backend/wasm/kernels.ts";
import { DenseLinear } from "../../src/model/linear.ts";
import {
  type Contender,
  type GpuJsConstructor,
  gpuJsContender,
  markdownTable,
  measureShape,
  type ShapeResult,
  type TimeOptions,
} from "./gemv.ts";
import { loadGpuJs } from "./load.ts";

/** The shapes measured by default, out x in: small, TinyLlama's and Llama-2-7B's square ones, a 32000-row classifier. */
export const DENO_SHAPES = [
  { out: 512, in: 512 },
  { out: 2048, in: 2048 },
  { out: 4096, in: 4096 },
  { out: 32000, in: 2048 },
];

/** Contenders, in table order; "wasm" is the baseline. */
export const CONTENDERS = {
  wasm: "WASM SIMD fp32 (repo, 1 thread)",
  wasm2: "WASM SIMD fp32 (repo, 2 threads)",
  ts: "TypeScript DenseLinear",
  gpujs: "gpu.js, its own pick (W copied in per call)",
  gpujs_threads: "gpu.js webasm, asyncMode (worker threads)",
  gpujs_cpu: "gpu.js cpu mode",
  gpujs_webgpu: "gpu.js webgpu, W uploaded per call",
  gpujs_webgpu_resident: "gpu.js webgpu, W resident",
} as const;
export type ContenderKey = keyof typeof CONTENDERS;

/** Builds one contender for W (out, in); gpu.js instances are made by `GPU`. */
export async function createContender(
  key: ContenderKey,
  GPU: GpuJsConstructor,
  w: Float32Array,
  out: number,
  inF: number,
  x: Float32Array,
): Promise<Contender<ContenderKey>> {
  if (key === "wasm" || key === "wasm2") {
    const kernels = key === "wasm" ? WasmKernels.create() : await WasmKernels.load({ threads: 2 });
    const layer = kernels.dense(w, out, inF, "f32");
    return {
      key,
      mode: `wasm simd, ${kernels.threads} thread${kernels.threads > 1 ? "s" : ""}`,
      forward: () => layer.forward(x, 1),
      destroy: () => kernels.dispose(),
    };
  }
  if (key === "ts") {
    const layer = new DenseLinear(w, out, inF);
    return { key, mode: "typescript", forward: () => layer.forward(x, 1), destroy() {} };
  }
  const mode = key === "gpujs"
    ? "gpu"
    : key === "gpujs_cpu"
    ? "cpu"
    : key === "gpujs_threads"
    ? "webasm"
    : "webgpu";
  return await gpuJsContender(key, new GPU({ mode }), w, x, out, inF, {
    placement: key === "gpujs_webgpu_resident" ? "resident" : "upload",
    asyncMode: key === "gpujs_threads",
    poolSize: key === "gpujs_threads" ? 2 : undefined,
  });
}

/** Measures `keys` at each shape (contenders of one shape alive together, freed before the next shape). */
export async function measureDeno(
  shapes: { out: number; in: number }[],
  keys: ContenderKey[],
  options: TimeOptions & { onShape?: (r: ShapeResult<ContenderKey>) => void } = {},
): Promise<ShapeResult<ContenderKey>[]> {
  const GPU = await loadGpuJs();
  const results: ShapeResult<ContenderKey>[] = [];
  for (const { out, in: inF } of shapes) {
    const factories = keys.map((key) => ({
      key,
      create: (w: Float32Array, x: Float32Array) => createContender(key, GPU, w, out, inF, x),
    }));
    const r = await measureShape(out, inF, factories, options);
    results.push(r);
    options.onShape?.(r);
  }
  return results;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      shapes: { type: "string" },
      only: { type: "string" },
      reps: { type: "string", default: "7" },
      "batch-ms": { type: "string", default: "100" },
      json: { type: "boolean", default: false },
    },
  });
  const shapes = values.shapes ? parseShapeList(values.shapes) : DENO_SHAPES;
  const keys = (values.only ? values.only.split(",") : Object.keys(CONTENDERS)) as ContenderKey[];
  for (const k of keys) {
    if (!(k in CONTENDERS)) {
      throw new RangeError(`--only: unknown contender "${k}" (${Object.keys(CONTENDERS)})`);
    }
  }
  const results = await measureDeno(shapes, keys, {
    reps: Number(values.reps),
    batchMs: Number(values["batch-ms"]),
    onShape: (r) => console.error(`measured ${r.shape}`),
  });
  console.log(
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} threads; medians of ${values.reps} rounds\n`,
  );
  console.log(markdownTable(results, keys.map((k) => [k, CONTENDERS[k]]), "wasm"));
  if (values.json) console.log(JSON.stringify({ runtime: `deno ${Deno.version.deno}`, results }));
}
