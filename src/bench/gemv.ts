// GEMV speed of the three weight storages on one device — fp32, fp16-storage, packed k = 2 — plus
// tfjs-webgpu's fp32 matMul as a peer: the same shapes in the same process, each kernel autotuned over the
// same candidate geometries, timed in interleaved rounds (many dispatches per submission, then
// onSubmittedWorkDone) so that a busy or throttled machine slows every variant alike; medians.
// Used by bench/gemv.bench.ts and `rabit bench`. Random weights: values do not change the speed.

import { createStorageBuffer, type GpuContext } from "../backend/webgpu/device.ts";
import { type GpuLinear, MatmulEngine, type MatmulGeometry, uploadLinear } from "../backend/webgpu/matmul.ts";
import { wordsPerRow } from "../quant/bitpack.ts";
import { Rng } from "../util/rng.ts";

/** A GEMV shape: W is (out, in). */
export interface GemvShape {
  out: number;
  in: number;
}

/**
 * Shapes from a comma-separated `OUTxIN` list (what `--shapes` takes); throws a RangeError naming the first
 * item that is not two positive integers.
 *
 * @example
 * ```ts
 * import { parseShapeList } from "./gemv.ts";
 * parseShapeList("4096x4096, 32000x2048"); // [{ out: 4096, in: 4096 }, { out: 32000, in: 2048 }]
 * ```
 */
export function parseShapeList(text: string): GemvShape[] {
  return text.split(",").map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) {
      throw new RangeError(`--shapes: expected OUTxIN like 4096x4096, found "${s}"`);
    }
    return { out: Number(m[1]), in: Number(m[2]) };
  });
}

/** Llama-2-7B's and TinyLlama-1.1B's linear shapes (ENGINEERING.md §5), out x in. */
export const DEFAULT_GEMV_SHAPES: GemvShape[] = [
  { out: 4096, in: 4096 },
  { out: 11008, in: 4096 },
  { out: 4096, in: 11008 },
  { out: 2048, in: 2048 },
  { out: 5632, in: 2048 },
];

/** The storages measured. */
export type GemvVariant = "f32" | "f16" | "packed2" | "tfjs_f32";

/** One shape's measurements: ms per GEMV (medians), and what each variant allocated and ran with. */
export interface GemvResult {
  shape: string;
  ms: Partial<Record<GemvVariant, number>>;
  /** Bytes of weights (and scales) each variant allocated on the device. */
  weightBytes: Partial<Record<GemvVariant, number>>;
  /** Geometry each of our kernels ran with (autotuned unless disabled). */
  geometry: Partial<Record<GemvVariant, MatmulGeometry>>;
  /** Why tfjs has no timing at this shape, when it has none. */
  tfjsError?: string;
}

/** Options of {@link measureGemv}. */
export interface MeasureGemvOptions {
  /** Timed rounds (each times every variant once); the median counts. Default 7. */
  reps?: number;
  /** Wall time one timed batch should take, in ms (dispatches per submission follow). Default 150. */
  batchMs?: number;
  /** Include tfjs-webgpu's fp32 matMul (default true). */
  tfjs?: boolean;
  /** Autotune each kernel's geometry first (default true); false uses the engine's defaults. */
  tune?: boolean;
  /** Called after each shape. */
  onShape?: (r: GemvResult) => void;
  /** @deprecated Dispatches per batch; use batchMs. */
  iters?: number;
}

/** Random device weights of one shape for a kind (packed: k = 2, fp16-valued scales). */
export function randomLinear(
  ctx: GpuContext,
  shape: GemvShape,
  kind: "f32" | "f16" | "packed",
  seed = 1,
): GpuLinear {
  const rng = new Rng(seed);
  const n = shape.out * shape.in;
  if (kind !== "packed") {
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) w[i] = rng.next() - 0.5;
    return uploadLinear(ctx, `${kind}:${shape.out}x${shape.in}`, { kind, w, out: shape.out, in: shape.in });
  }
  const k = 2, wpr = wordsPerRow(shape.in), tail = shape.in % 32;
  const planes = new Uint32Array(k * shape.out * wpr);
  for (let i = 0; i < planes.length; i++) planes[i] = (rng.next() * 4294967296) >>> 0;
  if (tail !== 0) { for (let i = wpr - 1; i < planes.length; i += wpr) planes[i] &= (1 << tail) - 1; // padding bits 0
   }
  const g = new Float32Array(k * shape.out).map(() => rng.next());
  const h = new Float32Array(k * shape.in).map(() => rng.next());
  return uploadLinear(ctx, `packed:${shape.out}x${shape.in}`, {
    kind: "packed",
    layer: { out: shape.out, in: shape.in, k, planes, g, h },
  });
}

/** Runs `n` GEMVs of `lin` in one compute pass and submission; returns ms per GEMV (wall clock). */
export async function timeGemvBatch(
  ctx: GpuContext,
  engine: MatmulEngine,
  lin: GpuLinear,
  x: GPUBuffer,
  y: GPUBuffer,
  n: number,
): Promise<number> {
  const enc = ctx.device.createCommandEncoder({ label: "bench" });
  const pass = enc.beginComputePass({ label: "bench" });
  for (let i = 0; i < n; i++) engine.encode(pass, lin, { buffer: x }, { buffer: y }, 1);
  pass.end();
  const t0 = performance.now();
  ctx.device.queue.submit([enc.finish()]);
  await ctx.device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / n;
}

/** Times one GEMV of `lin` (warm-up, then the median of three batches of `iters`), in ms. */
export async function timeGemv(
  ctx: GpuContext,
  engine: MatmulEngine,
  lin: GpuLinear,
  iters: number,
): Promise<number> {
  const x = createStorageBuffer(ctx, "bench.x", new Float32Array(lin.in).fill(0.5), GPUBufferUsage.UNIFORM);
  const y = createStorageBuffer(ctx, "bench.y", lin.out * 4);
  try {
    await timeGemvBatch(ctx, engine, lin, x, y, 2);
    const s = [];
    for (let i = 0; i < 3; i++) s.push(await timeGemvBatch(ctx, engine, lin, x, y, iters));
    return s.sort((a, b) => a - b)[1];
  } finally {
    x.destroy();
    y.destroy();
  }
}

type Tf = typeof import("@tensorflow/tfjs-core");

/**
 * tfjs-webgpu's fp32 GEMV y = x Wᵀ on its own device, checked against a CPU dot product on a few rows
 * before it is timed (tfjs-webgpu returns wrong values without an error when W exceeds one storage
 * binding). Returns a batch timer, or the reason it cannot run here.
 */
export async function tfjsGemv(
  shape: GemvShape,
): Promise<{ run: (n: number) => Promise<number>; dispose: () => void } | string> {
  let tf: Tf;
  try {
    tf = await import("@tensorflow/tfjs-core");
    await import("@tensorflow/tfjs-backend-webgpu");
    if (tf.getBackend() !== "webgpu" && !(await tf.setBackend("webgpu"))) return "tfjs: no webgpu backend";
  } catch (e) {
    return `tfjs: ${(e as Error).message}`;
  }
  const w = tf.randomUniform([shape.out, shape.in], -0.5, 0.5, "float32", 7);
  const x = tf.randomUniform([1, shape.in], -0.5, 0.5, "float32", 8);
  const dispose = () => {
    w.dispose();
    x.dispose();
  };
  try {
    const yt = tf.matMul(x, w, false, true);
    const y = await yt.data();
    yt.dispose();
    const xv = await x.data();
    for (const r of [0, shape.out >> 1, shape.out - 1]) {
      const rt = tf.slice(w, [r, 0], [1, shape.in]);
      const row = await rt.data();
      rt.dispose();
      let dot = 0, mag = 0;
      for (let c = 0; c < shape.in; c++) {
        dot += row[c] * xv[c];
        mag += Math.abs(row[c] * xv[c]);
      }
      if (!(Math.abs(y[r] - dot) <= 1e-4 * (1 + mag))) {
        dispose();
        const bytes = shape.out * shape.in * 4;
        return `tfjs-webgpu gives wrong results (row ${r}: ${y[r]} vs ${dot}); W is ${bytes} bytes`;
      }
    }
  } catch (e) {
    dispose();
    return `tfjs: ${(e as Error).message}`;
  }
  const run = async (n: number) => {
    const t0 = performance.now();
    const ys = [];
    for (let i = 0; i < n; i++) ys.push(tf.matMul(x, w, false, true));
    await ys[ys.length - 1].data();
    const ms = (performance.now() - t0) / n;
    ys.forEach((t) => t.dispose());
    return ms;
  };
  return { run, dispose };
}

const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];

/**
 * Measures fp32, fp16-storage, packed k = 2 and (optionally) tfjs fp32 GEMVs at every shape on `ctx`.
 * Returns plain objects (JSON-ready) with ms per GEMV; compare them as ratios within one run.
 */
export async function measureGemv(
  ctx: GpuContext,
  shapes: GemvShape[] = DEFAULT_GEMV_SHAPES,
  options: MeasureGemvOptions = {},
): Promise<GemvResult[]> {
  const engine = await MatmulEngine.create(ctx);
  const reps = options.reps ?? 7;
  const results: GemvResult[] = [];
  for (const shape of shapes) {
    const r: GemvResult = { shape: `${shape.out}x${shape.in}`, ms: {}, weightBytes: {}, geometry: {} };
    const x = createStorageBuffer(
      ctx,
      "bench.x",
      new Float32Array(shape.in).fill(0.5),
      GPUBufferUsage.UNIFORM,
    );
    const y = createStorageBuffer(ctx, "bench.y", shape.out * 4);
    const runners: { variant: GemvVariant; run: (n: number) => Promise<number>; done: () => void }[] = [];
    try {
      for (const [variant, kind] of [["f32", "f32"], ["f16", "f16"], ["packed2", "packed"]] as const) {
        const lin = randomLinear(ctx, shape, kind);
        if (options.tune !== false) await engine.tune(lin, { reps: 3 });
        else await engine.prepare(lin);
        r.geometry[variant] = engine.geometryFor("gemv", kind, lin);
        r.weightBytes[variant] = lin.bytes;
        runners.push({
          variant,
          run: (n) => timeGemvBatch(ctx, engine, lin, x, y, n),
          done: () => lin.destroy(),
        });
      }
      if (options.tfjs !== false) {
        const tf = await tfjsGemv(shape);
        if (typeof tf === "string") r.tfjsError = tf;
        else {
          r.weightBytes.tfjs_f32 = shape.out * shape.in * 4;
          runners.push({ variant: "tfjs_f32", run: tf.run, done: tf.dispose });
        }
      }
      // Warm up, then size each variant's batch to about batchMs.
      const counts = new Map<GemvVariant, number>();
      for (const v of runners) {
        await v.run(1);
        const ms = await v.run(2);
        const n = options.iters ?? Math.round((options.batchMs ?? 150) / Math.max(ms, 0.01));
        counts.set(v.variant, Math.max(2, Math.min(256, n)));
      }
      const samples = new Map<GemvVariant, number[]>(runners.map((v) => [v.variant, []]));
      for (let rep = 0; rep < reps; rep++) {
        for (const v of runners) samples.get(v.variant)!.push(await v.run(counts.get(v.variant)!));
      }
      for (const v of runners) r.ms[v.variant] = median(samples.get(v.variant)!);
    } finally {
      runners.forEach((v) => v.done());
      x.destroy();
      y.destroy();
    }
    results.push(r);
    options.onShape?.(r);
  }
  engine.dispose();
  return results;
}

/** Ratios of a result: how many times faster packed k = 2 is than each other variant. */
export function packedSpeedups(r: GemvResult): Partial<Record<Exclude<GemvVariant, "packed2">, number>> {
  const p = r.ms.packed2;
  const out: Partial<Record<Exclude<GemvVariant, "packed2">, number>> = {};
  if (p === undefined) return out;
  for (const v of ["f32", "f16", "tfjs_f32"] as const) if (r.ms[v] !== undefined) out[v] = r.ms[v]! / p;
  return out;
}

if (import.meta.main) {
  // deno run -A src/bench/gemv.ts [--json] [--no-tune] [--no-tfjs] [--reps N] [--shapes 4096x4096,...]
  const { parseArgs } = await import("node:util");
  const { requestGpu } = await import("../backend/webgpu/device.ts");
  const { args } = await import("../util/process.ts");
  const { values } = parseArgs({
    args: args(),
    options: {
      json: { type: "boolean" },
      "no-tune": { type: "boolean" },
      "no-tfjs": { type: "boolean" },
      reps: { type: "string" },
      shapes: { type: "string" },
    },
  });
  const ctx = await requestGpu();
  if (!ctx) throw new Error("No WebGPU adapter: the GEMV benchmark needs one");
  const shapes = values.shapes ? parseShapeList(values.shapes) : DEFAULT_GEMV_SHAPES;
  const log = values.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
  log(`adapter: ${ctx.adapterDescription}`);
  log("shape (out x in)   fp32 ms  fp16 ms  packed2 ms  tfjs ms   packed speedup vs fp32 / fp16 / tfjs");
  const results = await measureGemv(ctx, shapes, {
    reps: values.reps ? Number(values.reps) : undefined,
    tune: !values["no-tune"],
    tfjs: !values["no-tfjs"],
    onShape: (r) => {
      const f = (v?: number) => (v === undefined ? "-" : v.toFixed(2)).padStart(8);
      const s = packedSpeedups(r);
      const x = (v?: number) => (v === undefined ? "-" : `${v.toFixed(2)}x`);
      log(
        `${r.shape.padEnd(16)} ${f(r.ms.f32)} ${f(r.ms.f16)} ${f(r.ms.packed2).padStart(11)} ${
          f(r.ms.tfjs_f32)
        }` +
          `   ${x(s.f32)} / ${x(s.f16)} / ${x(s.tfjs_f32)}${r.tfjsError ? `  (${r.tfjsError})` : ""}`,
      );
    },
  });
  if (values.json) {
    console.log(JSON.stringify({
      adapter: ctx.adapterDescription,
      results: results.map((r) => ({ ...r, speedup: packedSpeedups(r) })),
    }));
  }
}
