// GEMV speed of the WebAssembly SIMD kernels (src/backend/wasm/kernels.ts): fp32, fp16-storage and packed
// k = 2 (int8 tables, the default, and f32 tables), all in one process with random weights, timed in
// interleaved rounds (every variant once per round) so that a busy machine slows all of them alike; medians.
// Used by `rabit bench --backend wasm` and bench/wasm_gemv.bench.ts. Compare ratios, not absolute times.

import { type WasmDenseLinear, WasmKernels, type WasmPackedLinear } from "../backend/wasm/kernels.ts";
import { wordsPerRow } from "../quant/bitpack.ts";
import type { ResidualBinaryLinear } from "../quant/residual_binary.ts";
import { Rng } from "../util/rng.ts";
import type { GemvShape } from "./gemv.ts";

/**
 * The variants measured: the WebGPU bench's keys (packed2 is the default kernel), plus the packed kernel with
 * each kind of table: int8 (packed2_i8), int16 (packed2_i16) and f32 (packed2_f32lut).
 */
export type WasmGemvVariant = "f32" | "f16" | "packed2" | "packed2_i8" | "packed2_i16" | "packed2_f32lut";

/** One shape's medians (ms per GEMV) and the bytes each variant's weights take. */
export interface WasmGemvResult {
  shape: string;
  ms: Record<WasmGemvVariant, number>;
  weightBytes: Record<WasmGemvVariant, number>;
  /** Threads the products ran on. */
  threads: number;
}

/** Options of {@link measureWasmGemv}. */
export interface MeasureWasmGemvOptions {
  /** Timed rounds; the median counts (default 7). */
  reps?: number;
  /** Wall time one timed batch should take, in ms (default 100). */
  batchMs?: number;
  /** int8 table block size in words (default: the kernels' default). */
  blockWords?: number;
  /** Threads, the caller's included (default 1; see WasmKernels.load). */
  threads?: number;
  onShape?: (r: WasmGemvResult) => void;
}

/** A random k-plane packed layer with padding bits 0 (values do not change the speed). */
export function randomPackedLayer(shape: GemvShape, k = 2, seed = 1): ResidualBinaryLinear {
  const rng = new Rng(seed);
  const wpr = wordsPerRow(shape.in), tail = shape.in % 32;
  const planes = new Uint32Array(k * shape.out * wpr);
  for (let i = 0; i < planes.length; i++) planes[i] = (rng.next() * 4294967296) >>> 0;
  if (tail !== 0) { for (let i = wpr - 1; i < planes.length; i += wpr) planes[i] &= (1 << tail) - 1; }
  const g = new Float32Array(k * shape.out).map(() => rng.next());
  const h = new Float32Array(k * shape.in).map(() => rng.next());
  return { out: shape.out, in: shape.in, k, planes, g, h };
}

/** The layers of one shape on `kernels`, one per variant. */
export function wasmGemvLayers(
  kernels: WasmKernels,
  shape: GemvShape,
  blockWords?: number,
): Record<WasmGemvVariant, WasmDenseLinear | WasmPackedLinear> {
  const rng = new Rng(7);
  const w = new Float32Array(shape.out * shape.in);
  for (let i = 0; i < w.length; i++) w[i] = rng.next() - 0.5;
  const packed = randomPackedLayer(shape);
  return {
    f32: kernels.dense(w, shape.out, shape.in, "f32"),
    f16: kernels.dense(w, shape.out, shape.in, "f16"),
    packed2: kernels.packed(packed, { blockWords }),
    packed2_i8: kernels.packed(packed, { tables: "i8", blockWords }),
    packed2_i16: kernels.packed(packed, { tables: "i16", blockWords }),
    packed2_f32lut: kernels.packed(packed, { tables: "f32" }),
  };
}

const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];

/** Measures every variant at every shape (each shape on a fresh kernel instance, freed after). */
export async function measureWasmGemv(
  shapes: GemvShape[],
  options: MeasureWasmGemvOptions = {},
): Promise<WasmGemvResult[]> {
  const reps = options.reps ?? 7;
  const results: WasmGemvResult[] = [];
  for (const shape of shapes) {
    const threads = options.threads ?? 1;
    const kernels = await WasmKernels.load({ threads });
    const layers = wasmGemvLayers(kernels, shape, options.blockWords);
    const x = new Float32Array(shape.in).map((_, i) => Math.sin(i));
    const variants = Object.keys(layers) as WasmGemvVariant[];
    const time = (v: WasmGemvVariant, n: number) => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) layers[v].forward(x, 1);
      return (performance.now() - t0) / n;
    };
    const counts = new Map<WasmGemvVariant, number>();
    for (const v of variants) {
      time(v, 1);
      const ms = time(v, 2);
      counts.set(v, Math.max(1, Math.min(1000, Math.round((options.batchMs ?? 100) / Math.max(ms, 0.001)))));
    }
    const samples = new Map<WasmGemvVariant, number[]>(variants.map((v) => [v, []]));
    for (let rep = 0; rep < reps; rep++) {
      for (const v of variants) samples.get(v)!.push(time(v, counts.get(v)!));
    }
    const ms = Object.fromEntries(variants.map((v) => [v, median(samples.get(v)!)])) as Record<
      WasmGemvVariant,
      number
    >;
    const weightBytes = Object.fromEntries(variants.map((v) => [v, layers[v].bytes])) as Record<
      WasmGemvVariant,
      number
    >;
    const r = { shape: `${shape.out}x${shape.in}`, ms, weightBytes, threads: kernels.threads };
    kernels.dispose();
    results.push(r);
    options.onShape?.(r);
  }
  return results;
}
