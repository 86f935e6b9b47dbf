// Launchers of the decoder's non-matmul kernels (embedding, RMSNorm, rotary, KV write, attention, SwiGLU,
// residual add, argmax): validate shapes → cache key → bind → dispatch into a caller's compute pass.
// The embedding, RMSNorm, rotary and SwiGLU launchers live in ops/ (one file per op, with the op's
// training forward and backward) and WebGpuOps delegates to them through its one Dispatcher.
//
// Dimension legend: T tokens in the chunk, D model width, H hidden width, V vocabulary, nH query heads,
// nKV key/value heads, hs head size, kvD = nKV·hs, S = pos0 + T visible positions, C cache capacity.
//
// Steady state allocates nothing: pipelines are compiled up front (create / prepare), bind groups and
// their small parameter uniforms are cached by the buffers and shapes they bind, and what changes per
// step (pos0, T) lives in a caller-owned GpuStep uniform written with queue.writeBuffer.

import { createStorageBuffer, createUniformBuffer, type GpuContext } from "./device.ts";
import {
  type BoundView,
  checkInt,
  Dispatcher,
  type GpuView,
  MAX_GRID,
  offsetOf,
  strideOf,
} from "./dispatch.ts";
import { KERNELS } from "./kernels.gen.ts";
import { compileJobs, isCpuAdapter, type KernelJob, WG } from "./ops/common.ts";
import { type EmbeddingArgs, type EmbeddingDtype, EmbeddingOps } from "./ops/embedding.ts";
import { type RmsnormArgs, RmsnormOps } from "./ops/rmsnorm.ts";
import { type RopeArgs, RopeOps } from "./ops/rope.ts";
import { type SwigluArgs, SwigluOps } from "./ops/swiglu.ts";
import { expandWgsl } from "./wgsl_template.ts";

export type { GpuView } from "./dispatch.ts";
export type { EmbeddingArgs, EmbeddingDtype } from "./ops/embedding.ts";
export type { RmsnormArgs } from "./ops/rmsnorm.ts";
export type { RopeArgs } from "./ops/rope.ts";
export type { SwigluArgs } from "./ops/swiglu.ts";
export { ropeFrequencyTable } from "./ops/rope.ts";

/**
 * The position uniform of one chunk, {pos0, T}, read by the kernels that depend on positions (embedding,
 * rope, kvWrite, ropeKvWrite, attention). The GPU sees the value written last before the submit that runs
 * the recorded dispatches, and launchers size their dispatches from the CPU copy at record time: so `set`
 * it before recording a chunk, and record at most one chunk per step object per submit (use a second
 * step object to record two chunks into one command buffer).
 */
export class GpuStep {
  /** The uniform buffer: u32 pos0, u32 T, two u32 of padding. */
  readonly buffer: GPUBuffer;
  readonly #device: GPUDevice;
  readonly #data = new Uint32Array(4);

  /** Use {@link WebGpuOps.createStep}. */
  constructor(ctx: GpuContext, label: string) {
    this.#device = ctx.device;
    this.buffer = createUniformBuffer(ctx, label, this.#data);
  }

  /** First position of the chunk. */
  get pos0(): number {
    return this.#data[0];
  }

  /** Tokens in the chunk (T). */
  get tokens(): number {
    return this.#data[1];
  }

  /** Sets the chunk to positions pos0..pos0+tokens−1 (queue.writeBuffer of 16 bytes). */
  set(pos0: number, tokens: number): void {
    if (!Number.isInteger(pos0) || pos0 < 0 || pos0 >= 1 << 24) {
      throw new RangeError(`GpuStep: expected pos0 to be an integer in [0, 2^24), found ${pos0}`);
    }
    if (!Number.isInteger(tokens) || tokens < 1 || tokens > 65535) {
      throw new RangeError(`GpuStep: expected tokens to be an integer in [1, 65535], found ${tokens}`);
    }
    this.#data[0] = pos0;
    this.#data[1] = tokens;
    this.#device.queue.writeBuffer(this.buffer, 0, this.#data);
  }
}

/** Which pipelines {@link WebGpuOps.prepare} compiles. */
export interface PrepareOptions {
  /** Head sizes to compile the attention kernels for (multiples of 4 in [4, 256]). */
  headSizes?: number[];
  /** Embedding table element types to compile (default ["f32"]). */
  embeddingDtypes?: EmbeddingDtype[];
}

/** Which kernel {@link WebGpuOps.attentionDecode} runs (see {@link WebGpuOpsOptions.decodeKernel}). */
export type DecodeKernel = "serial" | "parallel";

/** Options of {@link WebGpuOps.create}. */
export interface WebGpuOpsOptions extends PrepareOptions {
  /**
   * Small workgroups and tiles for CPU adapters (default: true for a fallback adapter, or one named
   * llvmpipe, lavapipe, SwiftShader or WARP). There, large workgroup arrays make shader compilation superlinearly slow
   * (llvmpipe/OpenGL zero-initializes them element by element: 4096 floats take ~100 s) and buy nothing.
   */
  compact?: boolean;
  /**
   * The decode attention kernel (default "serial" when compact, else "parallel"): "parallel" is
   * attention_decode, a workgroup per split with one thread per position (GPUs); "serial" is
   * attention_decode_serial, one invocation per split and set of heads sharing a KV head, walking its
   * positions alone without barriers or workgroup memory (CPU adapters: 10–15× faster on llvmpipe).
   */
  decodeKernel?: DecodeKernel;
  /**
   * Positions per decode split. Parallel kernel: its workgroup size, a power of two in [16, 256] (default
   * 256, 64 when compact), raised to the head size when smaller. Serial kernel: an integer in [1, 256]
   * (default 256).
   */
  decodeSplit?: number;
  /**
   * Serial kernel: query heads one invocation serves at most, sharing each K and V row it reads: 1, 2, 4
   * or 8 (default: see {@link WebGpuOps.decodeHeads}). At run time it serves the largest divisor of
   * nH / nKV not above this.
   */
  decodeHeads?: number;
  /**
   * Cap on one storage binding of an embedding table, in bytes (default the adapter's
   * maxStorageBufferBindingSize); lower it to exercise the split-table path on small tables.
   */
  maxTableBindingBytes?: number;
}

/** Arguments of {@link WebGpuOps.kvWrite}. */
export interface KvWriteArgs {
  step: GpuStep;
  /** (T, kvD) new keys (after rotary) and values. */
  k: GpuView;
  v: GpuView;
  /**
   * (C, kvD) caches of one layer, in buffers other than k's and v's (one buffer may hold both caches);
   * rows pos0..pos0+T−1 are written.
   */
  kCache: GpuView;
  vCache: GpuView;
  kvDim: number;
  /** Cache rows C. */
  capacity: number;
}

/**
 * Arguments of {@link WebGpuOps.ropeKvWrite}: those of rope and kvWrite together. q, k and v may be views
 * of one buffer (a fused wq|wk|wv output) or of separate buffers; q must not overlap k or v.
 */
export interface RopeKvWriteArgs {
  step: GpuStep;
  /** (T, qWidth) queries, rotated in place. */
  q: GpuView;
  qWidth: number;
  /** (T, kvD) new keys before rotary: read, not modified; the rotated keys go to kCache only. */
  k: GpuView;
  /** (T, kvD) new values, copied to vCache as they are. */
  v: GpuView;
  /**
   * (C, kvD) caches of one layer, in buffers other than q's, k's and v's (one buffer may hold both
   * caches); rows pos0..pos0+T−1 are written.
   */
  kCache: GpuView;
  vCache: GpuView;
  kvDim: number;
  headSize: number;
  /** Rotary base (10000 in llama2.c). */
  theta: number;
  /** Cache rows C. */
  capacity: number;
}

/** Arguments of the attention launchers. */
export interface AttentionArgs {
  step: GpuStep;
  /** (T, nH·hs) queries after rotary. */
  q: GpuView;
  /** (C, kvD) caches holding positions 0..pos0+T−1 (may share one buffer). */
  kCache: GpuView;
  vCache: GpuView;
  /** (T, nH·hs) output, in a buffer other than the inputs'. */
  out: GpuView;
  nHeads: number;
  nKvHeads: number;
  headSize: number;
  /** Cache rows C. */
  capacity: number;
}

/** Arguments of {@link WebGpuOps.add}. */
export interface AddArgs {
  /** (rows, cols) residual stream, x += y. */
  x: GpuView;
  /** (rows, cols) in another buffer. */
  y: GpuView;
  rows: number;
  cols: number;
}

/** Arguments of {@link WebGpuOps.argmax}. */
export interface ArgmaxArgs {
  /** (rows, n) values, e.g. logits. */
  x: GpuView;
  /** (rows) u32 indices (may be the next step's ids buffer). */
  out: GpuView;
  rows: number;
  n: number;
}

/** Workgroup geometry of the prefill attention kernel: BQ queries × BK keys, TPQ threads per query. */
export interface PrefillGeometry {
  bq: number;
  bk: number;
  tpq: number;
}

const REDUCE_WG = 64;
// attention_decode_serial on llvmpipe (2 cores; TinyLlama: 32 heads in 8 sets of 4, hs 64): half a SIMD
// batch per workgroup, so that the 8 invocations of one split still make 2 workgroups, one per core;
// and long splits, because each split costs q loads, a partial and reduce work worth ~25 positions.
const SERIAL_WG = 4;
const SERIAL_SPLIT = 256;
function checkHeadSize(op: string, hs: number): void {
  if (!Number.isInteger(hs) || hs < 4 || hs > 256 || hs % 4 !== 0) {
    throw new RangeError(`${op}: expected a head size that is a multiple of 4 in [4, 256], found ${hs}`);
  }
}

function pow2Ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * Prefill tiles for head size `hs`: the largest that fit the workgroup memory and invocation limits
 * (GPUs), or small ones when `compact` (CPU adapters).
 */
export function prefillGeometry(
  hs: number,
  limits: { maxSharedBytes: number; maxInvocations: number; compact?: boolean },
): PrefillGeometry {
  const tpq = 16;
  const tiles = limits.compact
    ? [[4, 4], [2, 4], [1, 4]]
    : [[16, 32], [16, 16], [8, 16], [8, 8], [4, 8], [4, 4], [2, 4], [1, 4]];
  for (const [bq, bk] of tiles) {
    if (bq * tpq > limits.maxInvocations) continue;
    const floats = bq * hs + bk * (hs + 4) + bk * hs + 2 * bq * bk;
    if (floats * 4 <= limits.maxSharedBytes) return { bq, bk, tpq };
  }
  throw new RangeError(
    `attention_prefill: head size ${hs} does not fit in ${limits.maxSharedBytes} bytes of workgroup memory`,
  );
}

/**
 * The decoder's non-matmul kernels on one device. Every launcher records into a caller's compute pass
 * (no submit, no readback), so a whole forward can be one pass and one submit.
 *
 * @example
 * ```ts ignore
 * const ops = await WebGpuOps.create(ctx, { headSizes: [hs] });
 * const step = ops.createStep("decode step");
 * step.set(pos0, 1);
 * const enc = ctx.device.createCommandEncoder({ label: "decode" });
 * const pass = enc.beginComputePass({ label: "decode" });
 * ops.embedding(pass, { step, ids, table, vocab: V, dim: D, out: { buffer: x } });
 * ops.rmsnorm(pass, { x: { buffer: x }, weight: { buffer: attnNorm }, out: { buffer: xn }, rows: 1, dim: D });
 * // ... q, k, v matmuls, then:
 * ops.rope(pass, { step, q: { buffer: q }, qWidth: D, k: { buffer: k }, kWidth: kvD, headSize: hs, theta });
 * ops.kvWrite(pass, { step, k: { buffer: k }, v: { buffer: v }, kCache, vCache, kvDim: kvD, capacity });
 * // (or both in one dispatch: ops.ropeKvWrite(pass, { step, q, qWidth: D, k, v, kCache, vCache, ... }))
 * ops.attention(pass, { step, q: { buffer: q }, kCache, vCache, out: { buffer: att }, nHeads, nKvHeads,
 *   headSize: hs, capacity });
 * pass.end();
 * ctx.device.queue.submit([enc.finish()]);
 * ```
 */
export class WebGpuOps {
  readonly ctx: GpuContext;
  /** Small workgroups and tiles (CPU adapters). */
  readonly compact: boolean;
  /** Threads of the row-reduction kernels (rmsnorm, argmax). */
  readonly rowThreads: number;
  /** The decode attention kernel. */
  readonly decodeKernel: DecodeKernel;
  readonly #decodeSplit: number;
  readonly #decodeHeads?: number;
  readonly #d: Dispatcher;
  readonly #rms: RmsnormOps;
  readonly #rope: RopeOps;
  readonly #swiglu: SwigluOps;
  readonly #emb: EmbeddingOps;
  readonly #scratch = new Map<string, GPUBuffer>();

  private constructor(ctx: GpuContext, options: WebGpuOpsOptions) {
    this.ctx = ctx;
    this.#d = new Dispatcher(ctx, "WebGpuOps");
    this.compact = options.compact ?? isCpuAdapter(ctx);
    this.rowThreads = this.compact ? 64 : 256;
    const kernel = options.decodeKernel ?? (this.compact ? "serial" : "parallel");
    if (kernel !== "serial" && kernel !== "parallel") {
      throw new TypeError(`WebGpuOps: expected decodeKernel "serial" or "parallel", found ${String(kernel)}`);
    }
    this.decodeKernel = kernel;
    if (kernel === "serial") {
      const split = options.decodeSplit ?? SERIAL_SPLIT;
      checkInt("WebGpuOps", "decodeSplit", split, 1, 256);
      this.#decodeSplit = split;
      const heads = options.decodeHeads;
      if (heads !== undefined && ![1, 2, 4, 8].includes(heads)) {
        throw new RangeError(`WebGpuOps: expected decodeHeads to be 1, 2, 4 or 8, found ${heads}`);
      }
      this.#decodeHeads = heads;
    } else {
      const split = options.decodeSplit ?? (this.compact ? 64 : 256);
      if (![16, 32, 64, 128, 256].includes(split)) {
        throw new RangeError(
          `WebGpuOps: expected decodeSplit to be a power of two in [16, 256], found ${split}`,
        );
      }
      this.#decodeSplit = split;
    }
    const limit = ctx.limits.maxStorageBufferBindingSize;
    const maxTableBinding = Math.min(options.maxTableBindingBytes ?? limit, limit);
    if (maxTableBinding < 256) {
      throw new RangeError(`WebGpuOps: expected maxTableBindingBytes ≥ 256, found ${maxTableBinding}`);
    }
    // The per-op launchers (ops/) share this object's dispatcher: one pipeline table and bind-group cache.
    this.#rms = new RmsnormOps(this.#d, { compact: this.compact, rowThreads: this.rowThreads });
    this.#rope = new RopeOps(this.#d);
    this.#swiglu = new SwigluOps(this.#d);
    this.#emb = new EmbeddingOps(this.#d, { maxTableBindingBytes: maxTableBinding });
  }

  /** Compiles the pipelines the options name (and the shape-independent ones) and returns the launchers. */
  static async create(ctx: GpuContext, options: WebGpuOpsOptions = {}): Promise<WebGpuOps> {
    const ops = new WebGpuOps(ctx, options);
    await ops.prepare(options);
    return ops;
  }

  /** Compiles more pipelines (another head size or embedding dtype); launchers need them compiled. */
  async prepare(options: PrepareOptions = {}): Promise<void> {
    const inference = { inference: true, training: false };
    const jobs: KernelJob[] = [
      ...this.#rms.jobs(inference),
      ...this.#rope.jobs(inference),
      ["kv_write", KERNELS.kv_write, { WG, V_IN_K: 0 }],
      ["kv_write:shared", KERNELS.kv_write, { WG, V_IN_K: 1 }],
      ["rope_kv_write", KERNELS.rope_kv_write, { WG }],
      ...this.#swiglu.jobs(inference),
      ["add", KERNELS.add, { WG }],
      [`argmax:wg${this.rowThreads}`, KERNELS.argmax, { WG: this.rowThreads }],
      ...this.#emb.jobs({ ...inference, embeddingDtypes: options.embeddingDtypes }),
    ];
    for (const hs of options.headSizes ?? []) {
      checkHeadSize("WebGpuOps.prepare", hs);
      const split = this.decodeSplit(hs);
      if (this.decodeKernel === "serial") {
        const code = expandWgsl(KERNELS.attention_decode_serial, {
          name: "attention_decode_serial",
          values: { HS: hs, HS4: hs / 4, G: this.decodeHeads(hs) },
        });
        jobs.push([this.#decodeKey(hs), code, { WG: SERIAL_WG }]);
      } else {
        const sg = Math.floor(split / hs);
        jobs.push([this.#decodeKey(hs), KERNELS.attention_decode, {
          WG: split,
          HS: hs,
          SG_POW2: pow2Ceil(sg),
        }]);
      }
      jobs.push([
        this.#reduceKey(hs),
        KERNELS.attention_decode_reduce,
        { WG: REDUCE_WG, HS: hs, SPLIT: split },
      ]);
      const g = this.#prefillGeometry(hs);
      jobs.push([
        this.#prefillKey(hs),
        KERNELS.attention_prefill,
        { HS: hs, BQ: g.bq, BK: g.bk, TPQ: g.tpq, DPT4: Math.ceil(hs / 4 / g.tpq) },
      ]);
    }
    await compileJobs(this.#d, jobs); // one at a time (error scopes)
  }

  /** A new position uniform, set to pos0 = 0, T = 1. */
  createStep(label = "step"): GpuStep {
    const step = new GpuStep(this.ctx, label);
    step.set(0, 1);
    this.#d.own(step.buffer);
    return step;
  }

  /** x (T, D) = rows ids[t] of the table (V, D). Dispatch (ceil(D / 256), T). */
  embedding(pass: GPUComputePassEncoder, args: EmbeddingArgs): void {
    this.#emb.forward(pass, args);
  }

  /** out (rows, dim) = RMSNorm of x with weight. Dispatch (rows): one workgroup per row. */
  rmsnorm(pass: GPUComputePassEncoder, args: RmsnormArgs): void {
    this.#rms.forward(pass, args);
  }

  /** Rotary embedding in place on q (T, qWidth) and k (T, kWidth) at positions pos0 + t. */
  rope(pass: GPUComputePassEncoder, args: RopeArgs): void {
    this.#rope.forward(pass, args);
  }

  /**
   * Writes k, v (T, kvD) into cache rows pos0..pos0+T−1; the two caches may share one buffer.
   * Dispatch (ceil(kvD / 256), T).
   */
  kvWrite(pass: GPUComputePassEncoder, args: KvWriteArgs): void {
    const op = "kvWrite";
    const { step, k, v, kCache, vCache, kvDim, capacity } = args;
    const T = step.tokens;
    checkInt(op, "kvDim", kvDim);
    checkInt(op, "capacity", capacity);
    if (step.pos0 + T > capacity) {
      throw new RangeError(
        `${op}: positions up to ${step.pos0 + T - 1} exceed the cache capacity ${capacity}`,
      );
    }
    const shared = kCache.buffer === vCache.buffer; // one buffer holds both caches: one rw binding
    this.#distinct(op, shared ? [kCache] : [kCache, vCache], [k, v]);
    const ks = strideOf(k, kvDim), vs = strideOf(v, kvDim);
    const kcs = strideOf(kCache, kvDim), vcs = strideOf(vCache, kvDim);
    const kB = this.#bind(op, "k", k, offsetOf(k) + (T - 1) * ks + kvDim);
    const vB = this.#bind(op, "v", v, offsetOf(v) + (T - 1) * vs + kvDim);
    const { kcB, vcB } = this.#bindCaches(op, kCache, vCache, kcs, vcs, kvDim, capacity);
    const params = new Uint32Array([
      kvDim,
      kB.shift,
      ks,
      vB.shift,
      vs,
      kcB.shift,
      kcs,
      vcB.shift,
      vcs,
      0,
      0,
      0,
    ]);
    checkInt(op, "T", T, 1, MAX_GRID);
    const resources = [{ buffer: step.buffer }, kB.binding, vB.binding, kcB.binding, vcB.binding];
    const key = shared ? "kv_write:shared" : "kv_write";
    this.#launch(pass, key, params, resources, Math.ceil(kvDim / WG), T);
  }

  /**
   * rope then kvWrite in one dispatch: rotates q (T, qWidth) in place, writes k (T, kvD) rotated and
   * v (T, kvD) as is into cache rows pos0..pos0+T−1. k is left unrotated (unlike rope). Dispatch
   * ceil(T · (qWidth + kvD) / 2 / 256) workgroups, one thread per pair.
   */
  ropeKvWrite(pass: GPUComputePassEncoder, args: RopeKvWriteArgs): void {
    const op = "ropeKvWrite";
    const { step, q, qWidth, k, v, kCache, vCache, kvDim, headSize: hs, theta, capacity } = args;
    const T = step.tokens;
    checkInt(op, "headSize", hs, 2);
    if (hs % 2 !== 0) throw new RangeError(`${op}: expected an even headSize, found ${hs}`);
    if (!(theta > 1)) throw new RangeError(`${op}: expected theta > 1, found ${theta}`);
    for (const [name, width] of [["qWidth", qWidth], ["kvDim", kvDim]] as const) {
      checkInt(op, name, width);
      if (width % hs !== 0) {
        throw new RangeError(`${op}: expected ${name} divisible by headSize ${hs}, found ${width}`);
      }
    }
    checkInt(op, "capacity", capacity);
    if (step.pos0 + T > capacity) {
      throw new RangeError(
        `${op}: positions up to ${step.pos0 + T - 1} exceed the cache capacity ${capacity}`,
      );
    }
    checkInt(op, "T", T, 1, MAX_GRID);
    const shared = kCache.buffer === vCache.buffer; // one buffer holds both caches: one rw binding
    this.#distinct(op, shared ? [kCache] : [kCache, vCache], [q, k, v]);
    // q, k, v: each distinct buffer bound once (slot 0 = q's, read-write), spanning the views it holds.
    const views = [
      { view: q, width: qWidth },
      { view: k, width: kvDim },
      { view: v, width: kvDim },
    ];
    const buffers = [...new Set(views.map((s) => s.view.buffer))];
    const slots = buffers.map((buffer, slot) => {
      const held = views.filter((s) => s.view.buffer === buffer);
      const first = Math.min(...held.map((s) => offsetOf(s.view)));
      const end = Math.max(
        ...held.map((s) => offsetOf(s.view) + (T - 1) * strideOf(s.view, s.width) + s.width),
      );
      const name = held.length > 1 ? "q/k/v" : ["q", "k", "v"][views.indexOf(held[0])];
      const b = this.#bind(op, name, { buffer, offset: first }, end);
      return { slot, binding: b.binding, shift: b.shift - first };
    });
    const at = (s: { view: GpuView; width: number }) => {
      const b = slots[buffers.indexOf(s.view.buffer)];
      return [b.shift + offsetOf(s.view), strideOf(s.view, s.width), b.slot];
    };
    const [qOff, qs] = at(views[0]);
    const kcs = strideOf(kCache, kvDim), vcs = strideOf(vCache, kvDim);
    const { kcB, vcB } = this.#bindCaches(op, kCache, vCache, kcs, vcs, kvDim, capacity);
    const params = new Uint32Array([
      hs / 2,
      qWidth / 2,
      kvDim / 2,
      qOff,
      qs,
      ...at(views[1]),
      ...at(views[2]),
      kcB.shift,
      kcs,
      vcB.shift,
      vcs,
      shared ? 0 : 1,
    ]);
    const freqs = this.#rope.frequencies(hs, theta);
    // Unused activation slots bind the frequency table: a read-only placeholder must not be the
    // read-write #unused() buffer vc may already bind (WebGPU rejects read and write usage of one buffer).
    const act = [0, 1, 2].map((i) => slots[i]?.binding ?? { buffer: freqs });
    const resources = [{ buffer: step.buffer }, { buffer: freqs }, ...act, kcB.binding, vcB.binding];
    const groups = Math.ceil((T * (qWidth + kvDim)) / 2 / WG);
    const gx = Math.min(groups, MAX_GRID);
    this.#launch(pass, "rope_kv_write", params, resources, gx, Math.ceil(groups / gx));
  }

  /**
   * Serial decode kernel: head slots per invocation for head size `hs`, i.e. the most query heads of one
   * GQA group that share each K and V row it loads. The default caps slots · hs at 256 because llvmpipe's
   * compile time (LLVM) grows steeply with the unrolled code: at hs 64, cold, ~1.5 s for 1 slot, ~3 s
   * for 2, ~6 s for 4, ~30 s for 8 (Mesa then caches the compiled shader on disk). 4 heads at hs 64 cost
   * ~1.3 ms of CPU per TinyLlama layer at 129 positions; 8 would save about half of that.
   */
  decodeHeads(hs: number): number {
    return this.#decodeHeads ?? Math.min(8, 2 ** Math.floor(Math.log2(256 / hs)));
  }

  /** Positions per decode split for head size `hs` (the parallel kernel's workgroup size). */
  decodeSplit(hs: number): number {
    return this.decodeKernel === "serial" ? this.#decodeSplit : Math.max(this.#decodeSplit, pow2Ceil(hs));
  }

  /** Causal attention of the step's T queries: the decode kernels when T = 1, else the prefill kernel. */
  attention(pass: GPUComputePassEncoder, args: AttentionArgs): void {
    if (args.step.tokens === 1) this.attentionDecode(pass, args);
    else this.attentionPrefill(pass, args);
  }

  /**
   * One query (T = 1) against cache positions 0..pos0 in ceil(S / split) splits per head: a workgroup
   * per (split, head) (parallel kernel) or an invocation per (split, set of heads sharing a KV head),
   * SERIAL_WG per workgroup (serial kernel); a second small dispatch combines the splits when there are
   * several.
   */
  attentionDecode(pass: GPUComputePassEncoder, args: AttentionArgs): void {
    const op = "attentionDecode";
    const { step, nHeads, headSize: hs, capacity } = args;
    if (step.tokens !== 1) throw new RangeError(`${op}: expected a step of 1 token, found ${step.tokens}`);
    const a = this.#attentionBindings(op, args);
    const split = this.decodeSplit(hs);
    const maxSplits = Math.ceil(capacity / split);
    const params = a.params(maxSplits);
    const part = this.#partials(nHeads, hs, maxSplits);
    const S = step.pos0 + 1;
    const splits = Math.ceil(S / split);
    const resources = [{ buffer: step.buffer }, a.q, a.k, a.v, a.out, { buffer: part }];
    if (this.decodeKernel === "serial") {
      // Heads per invocation: the largest divisor of the GQA group that fits the kernel's head slots.
      const group = nHeads / args.nKvHeads;
      let heads = Math.min(this.decodeHeads(hs), group);
      while (group % heads !== 0) heads--;
      const serialParams = new Uint32Array(16); // AttentionParams, heads, split, padding
      serialParams.set(params);
      serialParams[12] = heads;
      serialParams[13] = split;
      const groups = Math.ceil(((nHeads / heads) * splits) / SERIAL_WG);
      const gx = Math.min(groups, MAX_GRID);
      this.#launch(pass, this.#decodeKey(hs), serialParams, resources, gx, Math.ceil(groups / gx));
    } else {
      this.#launch(pass, this.#decodeKey(hs), params, resources, splits, nHeads);
    }
    if (splits > 1) {
      this.#launch(
        pass,
        this.#reduceKey(hs),
        params,
        [{ buffer: step.buffer }, { buffer: part }, a.out],
        nHeads,
      );
    }
  }

  /** T queries at positions pos0..pos0+T−1 against cache positions 0..pos0+T−1 (causal). */
  attentionPrefill(pass: GPUComputePassEncoder, args: AttentionArgs): void {
    const op = "attentionPrefill";
    const a = this.#attentionBindings(op, args);
    const g = this.#prefillGeometry(args.headSize);
    const key = this.#prefillKey(args.headSize);
    const resources = [{ buffer: args.step.buffer }, a.q, a.k, a.v, a.out];
    this.#launch(pass, key, a.params(0), resources, Math.ceil(args.step.tokens / g.bq), args.nHeads);
  }

  /**
   * a = silu(a) ⊙ b over (rows, cols). a and b may share a buffer (a fused w1|w3 output), not elements.
   * Dispatch (ceil(cols / 256), rows).
   */
  swiglu(pass: GPUComputePassEncoder, args: SwigluArgs): void {
    this.#swiglu.forward(pass, args);
  }

  /** x += y over (rows, cols). Dispatch (ceil(cols / 256), rows). */
  add(pass: GPUComputePassEncoder, args: AddArgs): void {
    const op = "add";
    const { x, y, rows, cols } = args;
    checkInt(op, "rows", rows, 1, MAX_GRID);
    checkInt(op, "cols", cols);
    this.#distinct(op, [x], [y]);
    const xs = strideOf(x, cols), ys = strideOf(y, cols);
    const xB = this.#bind(op, "x", x, offsetOf(x) + (rows - 1) * xs + cols);
    const yB = this.#bind(op, "y", y, offsetOf(y) + (rows - 1) * ys + cols);
    const params = new Uint32Array([cols, xB.shift, xs, yB.shift, ys, 0, 0, 0]);
    this.#launch(pass, op, params, [xB.binding, yB.binding], Math.ceil(cols / WG), rows);
  }

  /** out[r] = index of the first maximum of row r of x (rows, n), as u32. Dispatch (rows). */
  argmax(pass: GPUComputePassEncoder, args: ArgmaxArgs): void {
    const op = "argmax";
    const { x, out, rows, n } = args;
    checkInt(op, "rows", rows, 1, MAX_GRID);
    checkInt(op, "n", n);
    this.#distinct(op, [out], [x]);
    const xs = strideOf(x, n);
    const xB = this.#bind(op, "x", x, offsetOf(x) + (rows - 1) * xs + n);
    const oB = this.#bind(op, "out", out, offsetOf(out) + rows);
    this.#launch(
      pass,
      `argmax:wg${this.rowThreads}`,
      new Uint32Array([n, xB.shift, xs, oB.shift]),
      [xB.binding, oB.binding],
      rows,
    );
  }

  /** Bind groups cached so far (each with its params uniform); constant in steady state. */
  get cachedBindGroups(): number {
    return this.#d.cachedBindGroups;
  }

  /** Forgets cached bind groups (after the caller frees buffers they reference). */
  clearCache(): void {
    this.#d.clearCache();
  }

  /** Frees the uniforms, rotary tables and scratch this object created (not the caller's buffers). */
  dispose(): void {
    this.#rope.dispose();
    this.#scratch.clear();
    this.#d.dispose();
  }

  #decodeKey(hs: number): string {
    if (this.decodeKernel === "serial") {
      return `attention_decode_serial:hs${hs}:g${this.decodeHeads(hs)}:wg${SERIAL_WG}`; // split: a uniform
    }
    return `attention_decode:hs${hs}:split${this.decodeSplit(hs)}`;
  }

  #reduceKey(hs: number): string {
    return `attention_decode_reduce:hs${hs}:split${this.decodeSplit(hs)}`;
  }

  #prefillGeometry(hs: number): PrefillGeometry {
    const l = this.ctx.limits;
    return prefillGeometry(hs, {
      maxSharedBytes: l.maxComputeWorkgroupStorageSize,
      maxInvocations: l.maxComputeInvocationsPerWorkgroup,
      compact: this.compact,
    });
  }

  #prefillKey(hs: number): string {
    const g = this.#prefillGeometry(hs);
    return `attention_prefill:hs${hs}:bq${g.bq}:bk${g.bk}:tpq${g.tpq}`;
  }

  #pipeline(key: string): GPUComputePipeline {
    const hs = /:hs(\d+)/.exec(key)?.[1];
    const hint = hs ? `headSizes: [${hs}]` : "";
    return this.#d.pipeline(key, `await ops.prepare({ ${hint} }) first`);
  }

  #distinct(op: string, written: GpuView[], read: GpuView[]): void {
    this.#d.distinct(op, written, read);
  }

  #bind(op: string, name: string, view: GpuView, endWord: number, exact = false): BoundView {
    return this.#d.bind(op, name, view, endWord, exact);
  }

  #unused(): GPUBuffer {
    return this.#d.unused();
  }

  /**
   * Writable bindings of the K and V caches (C rows of stride kcs / vcs): one binding when both live in
   * one buffer (WebGPU refuses a buffer bound writable twice in a dispatch), with the V slot unused.
   */
  #bindCaches(
    op: string,
    kCache: GpuView,
    vCache: GpuView,
    kcs: number,
    vcs: number,
    kvDim: number,
    capacity: number,
  ) {
    const kcEnd = offsetOf(kCache) + (capacity - 1) * kcs + kvDim;
    const vcEnd = offsetOf(vCache) + (capacity - 1) * vcs + kvDim;
    if (kCache.buffer !== vCache.buffer) {
      return {
        kcB: this.#bind(op, "kCache", kCache, kcEnd, true),
        vcB: this.#bind(op, "vCache", vCache, vcEnd, true),
      };
    }
    const first = Math.min(offsetOf(kCache), offsetOf(vCache));
    const both = this.#bind(
      op,
      "kCache/vCache",
      { buffer: kCache.buffer, offset: first },
      Math.max(kcEnd, vcEnd),
      true,
    );
    return {
      kcB: { binding: both.binding, shift: both.shift + offsetOf(kCache) - first },
      vcB: { binding: { buffer: this.#unused() }, shift: both.shift + offsetOf(vCache) - first },
    };
  }

  #launch(
    pass: GPUComputePassEncoder,
    key: string,
    params: Uint32Array,
    resources: GPUBufferBinding[],
    x: number,
    y = 1,
  ): void {
    this.#pipeline(key); // the hint names what to prepare
    this.#d.launch(pass, key, params, resources, x, y);
  }

  #attentionBindings(op: string, args: AttentionArgs) {
    const { step, q, kCache, vCache, out, nHeads, nKvHeads, headSize: hs, capacity } = args;
    const T = step.tokens;
    checkInt(op, "nHeads", nHeads, 1, MAX_GRID);
    checkInt(op, "nKvHeads", nKvHeads);
    checkHeadSize(op, hs);
    checkInt(op, "capacity", capacity);
    if (nHeads % nKvHeads !== 0) {
      throw new RangeError(`${op}: nHeads ${nHeads} is not divisible by nKvHeads ${nKvHeads}`);
    }
    if (step.pos0 + T > capacity) {
      throw new RangeError(
        `${op}: positions up to ${step.pos0 + T - 1} exceed the cache capacity ${capacity}`,
      );
    }
    checkInt(op, "T", T, 1, MAX_GRID);
    this.#distinct(op, [out], [q, kCache, vCache]);
    const qD = nHeads * hs, kvD = nKvHeads * hs;
    const qs = strideOf(q, qD), os = strideOf(out, qD);
    const ks = strideOf(kCache, kvD), vs = strideOf(vCache, kvD);
    const qB = this.#bind(op, "q", q, offsetOf(q) + (T - 1) * qs + qD);
    const oB = this.#bind(op, "out", out, offsetOf(out) + (T - 1) * os + qD);
    const kB = this.#bind(op, "kCache", kCache, offsetOf(kCache) + (capacity - 1) * ks + kvD, true);
    const vB = this.#bind(op, "vCache", vCache, offsetOf(vCache) + (capacity - 1) * vs + kvD, true);
    const scale = Math.fround(1 / Math.sqrt(hs));
    return {
      q: qB.binding,
      k: kB.binding,
      v: vB.binding,
      out: oB.binding,
      params: (maxSplits: number) => {
        const p = new Uint32Array([
          nHeads,
          nHeads / nKvHeads,
          qB.shift,
          qs,
          kB.shift,
          ks,
          vB.shift,
          vs,
          oB.shift,
          os,
          maxSplits,
          0,
        ]);
        new Float32Array(p.buffer)[11] = scale;
        return p;
      },
    };
  }

  #partials(nHeads: number, hs: number, maxSplits: number): GPUBuffer {
    const key = `${nHeads}|${hs}|${maxSplits}`;
    let b = this.#scratch.get(key);
    if (!b) {
      b = createStorageBuffer(
        this.ctx,
        `attention_decode:partials:${key}`,
        nHeads * maxSplits * (hs + 2) * 4,
      );
      this.#d.own(b);
      this.#scratch.set(key, b);
    }
    return b;
  }
}
