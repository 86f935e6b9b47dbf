// GEMV speed of the three weight storages on one device, plus tfjs-webgpu's fp32 matMul as a peer:
// the same shapes, the same process, medians of repeated timings. Used by bench/gemv.bench.ts and
// `rabit bench`. Random weights: values do not change the speed.

import { createStorageBuffer, type GpuContext } from "../backend/webgpu/device.ts";
import { type GpuLinear, MatmulEngine, uploadLinear } from "../backend/webgpu/matmul.ts";
import { wordsPerRow } from "../quant/bitpack.ts";
import { Rng } from "../util/rng.ts";

/** A GEMV shape: W is (out, in). */
export interface GemvShape {
  out: number;
  in: number;
}

/** Llama-2-7B's and TinyLlama-1.1B's linear shapes (ENGINEERING.md §5). */
export const DEFAULT_GEMV_SHAPES: GemvShape[] = [
  { out: 4096, in: 4096 },
  { out: 11008, in: 4096 },
  { out: 4096, in: 11008 },
  { out: 2048, in: 2048 },
  { out: 5632, in: 2048 },
];

/** The storages measured. */
export type GemvVariant = "f32" | "f16" | "packed2" | "tfjs_f32";

/** Milliseconds per GEMV by variant, and the bytes of weights each reads. */
export interface GemvResult {
  shape: string;
  ms: Partial<Record<GemvVariant, number>>;
  weightBytes: Partial<Record<GemvVariant, number>>;
}

/** Random device weights of one shape for a variant. */
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
  const k = 2;
  const planes = new Uint32Array(k * shape.out * wordsPerRow(shape.in));
  for (let i = 0; i < planes.length; i++) planes[i] = (rng.next() * 4294967296) >>> 0;
  const wpr = wordsPerRow(shape.in), tail = shape.in % 32;
  if (tail !== 0) { for (let r = wpr - 1; r < planes.length; r += wpr) planes[r] &= (1 << tail) - 1; // padding bits 0
   }
  const g = new Float32Array(k * shape.out).map(() => rng.next());
  const h = new Float32Array(k * shape.in).map(() => rng.next());
  return uploadLinear(ctx, `packed:${shape.out}x${shape.in}`, {
    kind: "packed",
    layer: { out: shape.out, in: shape.in, k, planes, g, h },
  });
}

/**
 * Times `iters` back-to-back GEMVs recorded in one compute pass (so per-submit overhead is amortized, as
 * in a decoder that records a whole token's work at once) and returns milliseconds per GEMV.
 */
export async function timeGemv(
  ctx: GpuContext,
  engine: MatmulEngine,
  lin: GpuLinear,
  iters: number,
): Promise<number> {
  const x = createStorageBuffer(ctx, "bench.x", new Float32Array(lin.in).fill(0.5));
  const y = createStorageBuffer(ctx, "bench.y", lin.out * 4);
  const run = async (n: number) => {
    const enc = ctx.device.createCommandEncoder({ label: "bench" });
    const pass = enc.beginComputePass();
    for (let i = 0; i < n; i++) engine.encode(pass, lin, { buffer: x }, { buffer: y }, 1);
    pass.end();
    const t0 = performance.now();
    ctx.device.queue.submit([enc.finish()]);
    await ctx.device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / n;
  };
  await run(2); // warm up: pipeline and bind group creation
  const samples = [await run(iters), await run(iters), await run(iters)].sort((a, b) => a - b);
  x.destroy();
  y.destroy();
  return samples[1];
}

/** tfjs-webgpu's fp32 matMul of x (1, in) by Wᵀ, ms per call; undefined when tfjs cannot run here. */
export async function timeTfjsGemv(shape: GemvShape, iters: number): Promise<number | undefined> {
  try {
    const tf = await import("@tensorflow/tfjs-core");
    await import("@tensorflow/tfjs-backend-webgpu");
    if (tf.getBackend() !== "webgpu" && !(await tf.setBackend("webgpu"))) return undefined;
    const w = tf.randomUniform([shape.out, shape.in]);
    const x = tf.randomUniform([1, shape.in]);
    const run = async (n: number) => {
      const t0 = performance.now();
      const ys = [];
      for (let i = 0; i < n; i++) ys.push(tf.matMul(x, w, false, true));
      await ys[ys.length - 1].data();
      const ms = (performance.now() - t0) / n;
      ys.forEach((t) => t.dispose());
      return ms;
    };
    // tfjs fails silently past the adapter's binding limit (e.g. an 11008×4096 fp32 weight): check a few
    // outputs against the CPU before trusting its timings, and report the shape as unsupported otherwise.
    const y = await tf.matMul(x, w, false, true).data();
    const xv = await x.data();
    for (const r of [0, shape.out >> 1, shape.out - 1]) { // first, middle and last rows
      const row = await tf.slice(w, [r, 0], [1, shape.in]).data();
      let dot = 0;
      for (let c = 0; c < shape.in; c++) dot += row[c] * xv[c];
      if (!(Math.abs(y[r] - dot) <= 1e-3 * (1 + Math.abs(dot)))) return undefined;
    }
    await run(2);
    const samples = [await run(iters), await run(iters), await run(iters)].sort((a, b) => a - b);
    w.dispose();
    x.dispose();
    return samples[1];
  } catch {
    return undefined;
  }
}

/** Measures every variant at every shape. */
export async function measureGemv(
  ctx: GpuContext,
  shapes: GemvShape[] = DEFAULT_GEMV_SHAPES,
  options: { iters?: number; tfjs?: boolean; onShape?: (r: GemvResult) => void } = {},
): Promise<GemvResult[]> {
  const engine = await MatmulEngine.create(ctx);
  const iters = options.iters ?? 10;
  const results: GemvResult[] = [];
  for (const shape of shapes) {
    const r: GemvResult = { shape: `${shape.out}x${shape.in}`, ms: {}, weightBytes: {} };
    for (const [variant, kind] of [["f32", "f32"], ["f16", "f16"], ["packed2", "packed"]] as const) {
      const lin = randomLinear(ctx, shape, kind);
      r.ms[variant] = await timeGemv(ctx, engine, lin, iters);
      r.weightBytes[variant] = lin.bytes;
      lin.destroy();
    }
    if (options.tfjs !== false) {
      const ms = await timeTfjsGemv(shape, iters);
      if (ms !== undefined) r.ms.tfjs_f32 = ms;
    }
    results.push(r);
    options.onShape?.(r);
  }
  engine.dispose();
  return results;
}
