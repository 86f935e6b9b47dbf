// gpu.js (npm `gpu.js` 2.24.1) as a dense fp32 GEMV y (out) = W (out, in) · x (in), and the interleaved-medians
// harness that times it against the repo's WebAssembly SIMD and TypeScript GEMVs. Shared by the Deno bench
// (bench/gpujs.bench.ts, bench/gpujs/measure_deno.ts), the browser page (bench/gpujs/page_entry.ts) and
// tests/gpujs.test.ts. The gpu.js constructor is passed in: the npm import under Deno, the global `GPU` of
// dist/gpu-browser.min.js in a page.
//
// Dimension legend: out rows of W (outputs), in columns of W (inputs). W is row-major, as in the parameter table.

import { gemm } from "../../src/model/gemm.ts";

/** The part of gpu.js's `GPU` class this file uses (its own .d.ts types kernels too loosely to help). */
export interface GpuJsConstructor {
  new (settings?: { mode?: string }): GpuJs;
  readonly isWebGPUSupported?: boolean;
  isWebGPUAvailable?(): Promise<boolean>;
}

/** A gpu.js instance. */
export interface GpuJs {
  /** The backend it picked: "webgl2", "webgl", "headlessgl", "webgpu", "webasm", "cpu", or "gpu" before a kernel. */
  readonly mode: string;
  createKernel(source: string, settings: Record<string, unknown>): GpuJsKernel;
  destroy(): void;
}

/** A kernel: call it with arguments; `kernel` is the backend instance it compiled to (after the first call). */
export interface GpuJsKernel {
  (...args: unknown[]): unknown;
  kernel?: BackendKernel;
  destroy?(removeCanvasReferences?: boolean): void;
}

/** gpu.js's backend kernel instance; its class says "gpu" for every WebGL flavour, its context tells which. */
interface BackendKernel {
  constructor: { mode?: string };
  context?: unknown;
}

/** The backend a compiled kernel runs on: "webgl2", "webgl", "headlessgl", "webgpu", "webasm" or "cpu". */
export function kernelMode(k: BackendKernel): string {
  const mode = k.constructor.mode ?? "?";
  if (mode !== "gpu") return mode;
  const g = globalThis as unknown as Record<string, (abstract new () => unknown) | undefined>;
  if (g.WebGL2RenderingContext && k.context instanceof g.WebGL2RenderingContext) return "webgl2";
  if (g.WebGLRenderingContext && k.context instanceof g.WebGLRenderingContext) return "webgl";
  return "headlessgl";
}

/** What a pipeline kernel returns: a GL texture, a WebGPU buffer handle, or (webasm, cpu) a typed array. */
interface GpuJsResident {
  toArray?(): unknown;
  delete?(): void;
}

/**
 * One thread per output row: the dot product of row `this.thread.x` of W with x. W is flat (rows·in values):
 * gpu.js packs a flat array or pipeline result into a near-square texture, while a 2-D one of 8000 rows would
 * be a texture as tall as that, near WebGL's limit (8192 in Chromium here).
 */
export const GEMV_SOURCE = `function gemv(w, x) {
  let sum = 0;
  const base = this.thread.x * this.constants.n;
  for (let i = 0; i < this.constants.n; i++) {
    sum += w[base + i] * x[i];
  }
  return sum;
}`;

/**
 * Most values of W one kernel reads. gpu.js computes indices in f32 on every backend but cpu (exact below
 * 2^24 only): a 32000×2048 classifier in one kernel came back wrong (max relative error 1.16) on webgl2, webgl,
 * webgpu and webasm alike, without an error. So W is cut into row blocks of at most 2^24 values, one kernel each.
 */
export const MAX_BLOCK_VALUES = 1 << 24;

/** Copies W into a pipeline result, so later GEMVs read it where gpu.js keeps it (a texture, a GPU buffer). */
export const COPY_SOURCE = `function copy(w) {
  return w[this.thread.x];
}`;

/** How W reaches the kernel: copied in by every call ("upload"), or once, kept as a pipeline result ("resident"). */
export type WeightPlacement = "upload" | "resident";

/** A GEMV of one shape on one gpu.js instance. */
export interface GpuJsGemv {
  /** The backend the GEMV kernel runs on (gpu.js may fall back from the one asked for). */
  readonly mode: string;
  readonly placement: WeightPlacement;
  /** y = W · x; a Promise where gpu.js runs the kernel asynchronously (webgpu, asyncMode). */
  forward(x: Float32Array): Float32Array | Promise<Float32Array>;
  destroy(): void;
}

/** Options of {@link createGpuJsGemv}. */
export interface GpuJsGemvOptions {
  /** Where W lives between calls (default "upload"). */
  placement?: WeightPlacement;
  /** Every call returns a Promise; on webasm this is what lets gpu.js split rows over worker threads. */
  asyncMode?: boolean;
  /** Worker threads of gpu.js's webasm pool under asyncMode (default: its own choice). */
  poolSize?: number;
}

const toF32 = (v: unknown): Float32Array => {
  if (v instanceof Float32Array) return v;
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return Float32Array.from(v as ArrayLike<number>);
  throw new TypeError(
    `gpu.js GEMV: expected a Float32Array result, found ${Object.prototype.toString.call(v)}`,
  );
};

/** One row block of W and the kernel(s) that multiply it. */
interface Block {
  /** First row and number of rows. */
  row: number;
  rows: number;
  gemv: GpuJsKernel;
  copy?: GpuJsKernel;
  /** What the GEMV kernel gets as W: the block's values, or the copy's pipeline result once it is there. */
  weights: unknown;
}

/**
 * A gpu.js GEMV of W (out, in) on `gpu`, in row blocks of at most {@link MAX_BLOCK_VALUES} values. "resident"
 * runs a pipeline copy of each block once and passes its result (a texture on WebGL, a storage buffer on WebGPU)
 * to every GEMV, so a call uploads only x; on webasm and cpu a pipeline result is a plain array that each call
 * copies in again, as "upload" does.
 */
export async function createGpuJsGemv(
  gpu: GpuJs,
  w: Float32Array,
  out: number,
  inF: number,
  options: GpuJsGemvOptions = {},
): Promise<GpuJsGemv> {
  if (w.length !== out * inF) {
    throw new RangeError(`gpu.js GEMV: expected W of ${out}x${inF}=${out * inF} values, found ${w.length}`);
  }
  if (inF > MAX_BLOCK_VALUES) throw new RangeError(`gpu.js GEMV: rows of ${inF} values exceed 2^24`);
  const placement = options.placement ?? "upload";
  const common = { precision: "single", tactic: "precision" };
  const nBlocks = Math.ceil(out / Math.floor(MAX_BLOCK_VALUES / inF));
  const perBlock = Math.ceil(out / nBlocks);
  const blocks: Block[] = [];
  try {
    for (let row = 0; row < out; row += perBlock) {
      const rows = Math.min(perBlock, out - row);
      const values = w.subarray(row * inF, (row + rows) * inF); // (rows, in)
      const settings: Record<string, unknown> = { ...common, output: [rows], constants: { n: inF } };
      if (options.asyncMode) settings.asyncMode = true;
      if (options.poolSize) settings.poolSize = options.poolSize;
      const block: Block = { row, rows, gemv: gpu.createKernel(GEMV_SOURCE, settings), weights: values };
      blocks.push(block);
      if (placement === "resident") {
        const copy = gpu.createKernel(COPY_SOURCE, {
          ...common,
          output: [rows * inF],
          pipeline: true,
          immutable: true,
        });
        block.copy = copy;
        block.weights = await copy(values);
      }
    }
  } catch (e) {
    destroyBlocks(blocks);
    throw e;
  }
  const y = new Float32Array(out); // (out)
  return {
    get mode() {
      const k = blocks[0].gemv.kernel;
      return k ? kernelMode(k) : gpu.mode;
    },
    placement,
    forward(x: Float32Array) {
      if (x.length !== inF) {
        throw new RangeError(`gpu.js GEMV: expected x of ${inF} values, found ${x.length}`);
      }
      const parts = blocks.map((b) => b.gemv(b.weights, x));
      if (parts.some((p) => p instanceof Promise)) {
        return Promise.all(parts).then((done) => gather(y, blocks, done));
      }
      return gather(y, blocks, parts);
    },
    destroy: () => destroyBlocks(blocks),
  };
}

function gather(y: Float32Array, blocks: Block[], parts: unknown[]): Float32Array {
  if (blocks.length === 1) return toF32(parts[0]).slice();
  blocks.forEach((b, i) => y.set(toF32(parts[i]).subarray(0, b.rows), b.row));
  return y.slice();
}

function destroyBlocks(blocks: Block[]): void {
  for (const b of blocks) {
    if (b.copy) (b.weights as GpuJsResident)?.delete?.();
    b.copy?.destroy?.();
    b.gemv.destroy?.();
  }
}

/** max |y − ref| / max |ref|: the error relative to the output's scale (elementwise ratios blow up near 0). */
export function maxRelError(y: Float32Array, ref: Float32Array): number {
  if (y.length !== ref.length) return Infinity;
  let err = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(y[i] - ref[i]);
    err = d > err || Number.isNaN(d) ? d : err;
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return err / (scale || 1);
}

/** Weights and input of a shape: uniform in [−0.5, 0.5) from a small LCG (same values in Deno and the page). */
export function gemvData(out: number, inF: number, seed = 7): { w: Float32Array; x: Float32Array } {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
  const w = new Float32Array(out * inF);
  for (let i = 0; i < w.length; i++) w[i] = next();
  const x = new Float32Array(inF);
  for (let i = 0; i < inF; i++) x[i] = next();
  return { w, x };
}

/** A contender in {@link timeInterleaved}: a name and one GEMV. */
export interface Timed {
  name: string;
  run: () => unknown;
}

/** Options of {@link timeInterleaved}. */
export interface TimeOptions {
  /** Timed rounds; the median counts (default 7). */
  reps?: number;
  /** Wall time one timed batch should take, in ms (default 100). */
  batchMs?: number;
  /** At most this many calls per batch (default 200). */
  maxCalls?: number;
}

const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];

/**
 * ms per call of each contender, median over rounds that run every contender once (a batch of calls each),
 * so that a machine busy with other work slows all of them alike. Promises are awaited call by call.
 */
export async function timeInterleaved(
  items: Timed[],
  options: TimeOptions = {},
): Promise<Map<string, number>> {
  const reps = options.reps ?? 7, batchMs = options.batchMs ?? 100, maxCalls = options.maxCalls ?? 200;
  const time = async (run: () => unknown, n: number) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const r = run();
      if (r instanceof Promise) await r;
    }
    return (performance.now() - t0) / n;
  };
  const counts = new Map<string, number>();
  for (const it of items) {
    await time(it.run, 1);
    const ms = await time(it.run, 1);
    counts.set(it.name, Math.max(1, Math.min(maxCalls, Math.round(batchMs / Math.max(ms, 0.001)))));
  }
  const samples = new Map<string, number[]>(items.map((it) => [it.name, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (const it of items) samples.get(it.name)!.push(await time(it.run, counts.get(it.name)!));
  }
  return new Map([...samples].map(([name, s]) => [name, median(s)]));
}

/** What one shape gave: ms (medians), error against the float64 reference, mode, or why a contender failed. */
export interface ShapeResult<K extends string = string> {
  shape: string;
  ms: Partial<Record<K, number>>;
  maxRelError: Partial<Record<K, number>>;
  mode: Partial<Record<K, string>>;
  errors: Partial<Record<K, string>>;
}

/** ms with three significant digits (0.0213, 1.47, 163). */
export const fmtMs = (ms: number): string => ms >= 100 ? ms.toFixed(0) : ms.toPrecision(3);

/**
 * A markdown table of `rows` ([key, label] in order): ms per GEMV and, in parentheses, the time ratio to the
 * `baseline` contender (> 1: slower than it); then the mode each ran on and its largest error.
 */
export function markdownTable(results: ShapeResult[], rows: [string, string][], baseline: string): string {
  const lines = [
    `| contender | ${
      results.map((r) => `${r.shape} ms (× ${baseline})`).join(" | ")
    } | mode | max rel. error |`,
    `| --- | ${results.map(() => "---:").join(" | ")} | --- | --- |`,
  ];
  for (const [key, label] of rows) {
    const cells = results.map((r) => {
      const ms = r.ms[key], base = r.ms[baseline];
      if (ms === undefined) return r.errors[key] ? "failed¹" : "—";
      return base === undefined ? fmtMs(ms) : `${fmtMs(ms)} (${(ms / base).toFixed(2)}×)`;
    });
    const modes = [...new Set(results.map((r) => r.mode[key]).filter(Boolean))].join(", ");
    const errs = results.map((r) => r.maxRelError[key]).filter((e) => e !== undefined) as number[];
    const err = errs.length ? Math.max(...errs).toExponential(1) : "—";
    lines.push(`| ${label} | ${cells.join(" | ")} | ${modes || "—"} | ${err} |`);
  }
  const labels = new Map(rows);
  const failures = results.flatMap((r) =>
    Object.entries(r.errors).map(([k, e]) => `- ${labels.get(k) ?? k} at ${r.shape}: ${e}`)
  );
  if (failures.length) lines.push("", "¹ failed:", ...failures);
  return lines.join("\n");
}

/** One contender of one shape, ready to run. */
export interface Contender<K extends string = string> {
  key: K;
  /** The backend it ran on (gpu.js: the mode of the compiled kernel). */
  mode: string;
  forward: () => Float32Array | Promise<Float32Array>;
  destroy: () => void;
}

/**
 * A gpu.js contender: the GEMV compiled on `gpu` and run once (so its mode is known), owning `gpu` from here
 * on — destroyed with the contender, or at once when building it fails.
 */
export async function gpuJsContender<K extends string>(
  key: K,
  gpu: GpuJs,
  w: Float32Array,
  x: Float32Array,
  out: number,
  inF: number,
  options: GpuJsGemvOptions,
): Promise<Contender<K>> {
  try {
    const g = await createGpuJsGemv(gpu, w, out, inF, options);
    await g.forward(x); // compiles; the kernel's mode is known after the first call
    return {
      key,
      mode: g.mode,
      forward: () => g.forward(x),
      destroy: () => {
        g.destroy();
        gpu.destroy();
      },
    };
  } catch (e) {
    gpu.destroy();
    throw e;
  }
}

/** Largest accepted max |y − ref| / max |ref| (fp32 sums of up to 4096 terms stay near 1e-6). */
export const TOLERANCE = 1e-4;

/**
 * One shape: W and x from {@link gemvData}, the float64 reference (src/model/gemm.ts), then every contender
 * built, checked against it (a failure or a wrong result is recorded, not timed) and timed together.
 */
export async function measureShape<K extends string>(
  out: number,
  inF: number,
  factories: { key: K; create: (w: Float32Array, x: Float32Array) => Promise<Contender<K>> }[],
  options: TimeOptions = {},
): Promise<ShapeResult<K>> {
  const { w, x } = gemvData(out, inF);
  const ref = new Float32Array(out); // (out)
  gemm(x, w, ref, { M: 1, N: out, K: inF, transB: true });
  const r: ShapeResult<K> = { shape: `${out}x${inF}`, ms: {}, maxRelError: {}, mode: {}, errors: {} };
  const ready: Contender<K>[] = [];
  for (const { key, create } of factories) {
    try {
      const c = await create(w, x);
      r.mode[key] = c.mode;
      const err = maxRelError(await c.forward(), ref);
      r.maxRelError[key] = err;
      if (err <= TOLERANCE) ready.push(c);
      else {
        r.errors[key] = `wrong result: max relative error ${err.toExponential(2)}`;
        c.destroy();
      }
    } catch (e) {
      r.errors[key] = String((e as Error)?.message ?? e).split("\n")[0].slice(0, 200);
    }
  }
  try {
    const ms = await timeInterleaved(ready.map((c) => ({ name: c.key, run: c.forward })), options);
    for (const c of ready) r.ms[c.key] = ms.get(c.key);
  } finally {
    for (const c of ready) c.destroy();
  }
  return r;
}
