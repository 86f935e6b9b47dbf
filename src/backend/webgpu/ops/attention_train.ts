// Causal grouped-query attention for training: the forward over a batch of B independent windows (each
// causal on its own, S = T) that also saves each query's log-sum-exp, and the backward in two passes
// without atomics (ENGINEERING.md §5): a pass over query blocks computes D = rowsum(dOut ⊙ out) and dQ,
// recomputing the probabilities from the log-sum-exp; a pass over key blocks computes dK and dV, summing
// over the query heads of each KV group. CPU references: attentionForward (src/model/ops.ts),
// attentionBackward (ops_backward.ts), per window. Two kernel families: "parallel" (query or key tiles
// streamed through workgroup memory: GPUs) and "serial" (*_serial.wgsl: an invocation per group of
// (head, row) slots held in registers, no barriers: software adapters).
//
// Dimension legend: B windows, T rows (positions) per window, nH query heads, nKV key/value heads,
// hs head size, qD = nH·hs, kvD = nKV·hs.

import {
  type BoundView,
  checkInt,
  type Dispatcher,
  type GpuView,
  grid2d,
  MAX_GRID,
  offsetOf,
  strideOf,
} from "../dispatch.ts";
import { KERNELS } from "../kernels.gen.ts";
import { expandWgsl } from "../wgsl_template.ts";
import { compileJobs, isCpuAdapter, type KernelJob } from "./common.ts";

/**
 * Tiles of one training attention kernel: a workgroup owns `rows` rows (queries in the forward and the
 * dQ pass, keys in the dK/dV pass) with `threads` threads each, and streams `cols` rows of the other
 * side at a time through workgroup memory (`cols` a multiple of 4).
 */
export interface AttentionTile {
  rows: number;
  cols: number;
  threads: number;
}

/** The tiles of the three training attention kernels for one head size. */
export interface AttentionTrainGeometry {
  forward: AttentionTile;
  dq: AttentionTile;
  dkv: AttentionTile;
}

/**
 * The training attention kernel family: "parallel" streams tiles of the other side through workgroup
 * memory (attention_train_forward, attention_backward_dq, attention_backward_dkv: GPUs); "serial" gives
 * each invocation a few (head, row) slots in registers and walks the other side alone, with no barriers
 * (the *_serial kernels: software adapters, where barriers and workgroup memory are per-lane loops).
 */
export type AttentionTrainKernel = "serial" | "parallel";

/**
 * Slots per invocation of the serial kernels, each a power of two in [1, 16]: (query head, query) pairs
 * of the forward and the dQ pass (heads of one KV group first, then consecutive queries), key rows of
 * the dK/dV pass. Each K and V row (forward, dQ) or q and dOut row (dK/dV) is loaded once per invocation
 * and used by all its slots.
 */
export interface AttentionSerialSlots {
  forward: number;
  dq: number;
  dkv: number;
}

/** Options of {@link AttentionTrainOps}. */
export interface AttentionTrainOptions {
  /** Small tiles (CPU adapters, where large workgroup arrays compile very slowly); default: by adapter. */
  compact?: boolean;
  /** The kernel family (default "serial" when compact, else "parallel"). */
  kernel?: AttentionTrainKernel;
  /** Tiles to use instead of the chosen ones, for every head size (an autotuner's pick, tests). */
  tiles?: Partial<AttentionTrainGeometry>;
  /** Serial kernels: slots per invocation instead of {@link attentionSerialSlots}'s, for every head size. */
  slots?: Partial<AttentionSerialSlots>;
  /** Serial kernels: invocations per workgroup, an integer in [1, 256] (default 8). */
  serialThreads?: number;
}

/** Arguments of {@link AttentionTrainOps.forward}. */
export interface AttentionTrainArgs {
  /** (B·T, qD) queries after rotary; window b is rows b·T .. b·T + T − 1. */
  q: GpuView;
  /** (B·T, kvD) keys after rotary (q, k and v may be views of one buffer). */
  k: GpuView;
  /** (B·T, kvD) values. */
  v: GpuView;
  /** (B·T, qD) output, in a buffer none of the inputs use. */
  out: GpuView;
  /** (B, nH, T) log-sum-exp of each query's scaled scores (contiguous from its offset), for the backward. */
  lse: GpuView;
  /** B, the windows. */
  windows: number;
  /** T, the rows of each window. */
  tokens: number;
  nHeads: number;
  nKvHeads: number;
  headSize: number;
}

/** Arguments of {@link AttentionTrainOps.backward}: the forward's, its results, and the gradients. */
export interface AttentionBackwardArgs extends AttentionTrainArgs {
  /** (B·T, qD) gradient of `out`. */
  dOut: GpuView;
  /** (B, nH, T) scratch for D = rowsum(dOut ⊙ out), contiguous; a buffer other than lse's. */
  delta: GpuView;
  /** (B·T, qD) query gradient. */
  dQ: GpuView;
  /** (B·T, kvD) key gradient. */
  dK: GpuView;
  /** (B·T, kvD) value gradient; may be other elements of dK's buffer (e.g. a fused k|v gradient). */
  dV: GpuView;
  /** Add into dQ, dK, dV (default true, as the CPU reference) rather than overwrite them. */
  accumulate?: boolean;
}

const MAX_DPT4 = 4; // output vec4s per thread at most (the kernels' private accumulator arrays)
const COMPACT_SHARED_BYTES = 8192; // workgroup memory of compact tiles at most (compile time on llvmpipe)

/** Workgroup-memory floats of each kernel for tile `t` and head size `hs` (as in the kernels' headers). */
function sharedFloats(kernel: keyof AttentionTrainGeometry, t: AttentionTile, hs: number): number {
  const { rows: r, cols: c, threads: p } = t;
  if (kernel === "forward") return r * hs + c * (hs + 4) + c * hs + 2 * r * c;
  if (kernel === "dq") return 2 * r * hs + 2 * c * (hs + 4) + r * c + r * p;
  return 2 * r * hs + 2 * c * (hs + 4) + 2 * r * c + 2 * c;
}

/**
 * The tiles of the training attention kernels for head size `hs`: the largest that fit the workgroup
 * memory and invocation limits, with 4..16 threads per row (GPUs); or, when `compact` (CPU adapters),
 * tiles up to 8 × 8 with the fewest threads per row that keep ≤ 4 output vec4s per thread: on llvmpipe
 * every invocation is a SIMD lane, and idle lanes past hs / 4 made 16 threads per row 2–3× slower
 * (stories260K-like shapes, hs 8, 16 and 64). Compact tiles also stay within 8 KiB of workgroup
 * memory: llvmpipe (OpenGL) compiles a kernel in time roughly proportional to its workgroup arrays,
 * ~30 s for the hs 64 backward at 9 KiB (once; Mesa caches it on disk).
 *
 * @example
 * ```ts
 * import { attentionTrainGeometry } from "./attention_train.ts";
 * const g = attentionTrainGeometry(64, { maxSharedBytes: 32768, maxInvocations: 256 });
 * console.log(g.dq.rows * g.dq.threads <= 256); // true
 * ```
 */
export function attentionTrainGeometry(
  hs: number,
  limits: { maxSharedBytes: number; maxInvocations: number; compact?: boolean },
): AttentionTrainGeometry {
  checkHeadSize("attentionTrainGeometry", hs);
  const h4 = hs / 4;
  const threads = limits.compact ? Math.ceil(h4 / MAX_DPT4) : Math.min(16, Math.max(4, h4));
  const tiles = limits.compact
    ? [[8, 8], [4, 8], [4, 4], [2, 4], [1, 4]]
    : [[16, 32], [16, 16], [8, 16], [8, 8], [4, 8], [4, 4], [2, 4], [1, 4]];
  // Compact: within COMPACT_SHARED_BYTES when some tile fits there, else the smallest tile that fits.
  const budgets = limits.compact
    ? [Math.min(limits.maxSharedBytes, COMPACT_SHARED_BYTES), limits.maxSharedBytes]
    : [limits.maxSharedBytes];
  const pick = (kernel: keyof AttentionTrainGeometry): AttentionTile => {
    for (const [i, budget] of budgets.entries()) {
      for (const [rows, cols] of i === 0 ? tiles : [...tiles].reverse()) {
        const t = { rows, cols, threads };
        if (rows * threads > limits.maxInvocations) continue;
        if (sharedFloats(kernel, t, hs) * 4 <= budget) return t;
      }
    }
    throw new RangeError(
      `attentionTrainGeometry: head size ${hs} does not fit in ${limits.maxSharedBytes} bytes of workgroup memory`,
    );
  };
  return { forward: pick("forward"), dq: pick("dq"), dkv: pick("dkv") };
}

// Serial kernels: one SIMD batch of llvmpipe (8 lanes of 256-bit AVX2) per workgroup.
const SERIAL_WG = 8;
// llvmpipe (Mesa's gallivm) silently ends every loop of a shader invocation once that invocation has run
// 65535 loop iterations in all (LP_MAX_TGSI_LOOP_ITERATIONS). A serial kernel whose invocation would
// loop more (windows of more than 60000 rows; in the dK/dV pass, group · T above 60000) records the
// parallel kernel instead, whose threads split the walk into tiles.
const SERIAL_MAX_LOOPS = 60000;

/**
 * Default slots per invocation of the serial kernels for head size `hs`. Each slot holds hs / 4 vec4
 * registers of unrolled code per vector it keeps (q and the output in the forward; q, dOut and dQ in the
 * dQ pass; k, v, dK and dV in the dK/dV pass). More slots load each shared row for more outputs, but
 * LLVM's compile time on llvmpipe grows steeply with the unrolled code while the gain flattens. Measured
 * on llvmpipe (cold compile; stories260K's shapes at hs 8, B 1 T 64 nH 8 nKV 4 at hs 64): the forward
 * ran ~1.8× faster with 2 slots than with 1, 1.5× faster with 4 than with 2 at hs 64 (2.9 s to compile
 * instead of 0.8 s); the dQ pass at hs 64 compiled in 3.4 s with 2 slots, 20 s with 4 and 83 s with 8 for
 * ~2% gain; the dK/dV pass at hs 64 in 13 s with 2 slots for no measurable gain. Hence slots · hs ≤ 256
 * in the forward, ≤ 128 in the dQ pass, ≤ 64 in the dK/dV pass. The cap was 4 slots until a measurement
 * at the shape training runs (stories260K at B 2, T 512: 2,048 (head, query) pairs per window, where
 * T 64 had too few invocations to show it) found more slots faster where the budget allows them: at
 * hs 8, 16 / 16 / 8 slots (forward / dQ / dK-dV) against 4 / 4 / 4 ran the forward 1.5–1.9× and the
 * backward 1.2–1.5× faster (interleaved rounds, medians; cold compile 1.5 s), at hs 16 16 / 8 / 4 the
 * forward 1.9× (the backward unchanged). Hence at most 16.
 *
 * @example
 * ```ts
 * import { attentionSerialSlots } from "./attention_train.ts";
 * console.log(attentionSerialSlots(64)); // { forward: 4, dq: 2, dkv: 1 }
 * ```
 */
export function attentionSerialSlots(hs: number): AttentionSerialSlots {
  checkHeadSize("attentionSerialSlots", hs);
  const slots = (budget: number) => Math.min(16, 2 ** Math.max(0, Math.floor(Math.log2(budget / hs))));
  return { forward: slots(256), dq: slots(128), dkv: slots(64) };
}

function checkHeadSize(op: string, hs: number): void {
  if (!Number.isInteger(hs) || hs < 4 || hs > 256 || hs % 4 !== 0) {
    throw new RangeError(`${op}: expected a head size that is a multiple of 4 in [4, 256], found ${hs}`);
  }
}

/** Sizes of one call, checked. */
interface Shape {
  B: number;
  T: number;
  nH: number;
  nKV: number;
  hs: number;
  qD: number;
  kvD: number;
  /** B·T rows of q, k, v, out. */
  rows: number;
  /** B·nH·T entries of lse and delta. */
  vec: number;
}

/** (shift, stride) words or shifts of the views a kernel binds besides q, k, v. */
interface ParamViews {
  o?: [number, number];
  dOut?: [number, number];
  lse?: number;
  delta?: number;
  g?: [number, number];
  g2?: [number, number];
  flags?: number;
}

const SOURCES = {
  forward: "attention_train_forward",
  dq: "attention_backward_dq",
  dkv: "attention_backward_dkv",
} as const;

/** The largest power of two that divides `group` and is at most `slots` (query heads per invocation). */
function headsPerInvocation(group: number, slots: number): number {
  let h = 1;
  while (h * 2 <= slots && group % (h * 2) === 0) h *= 2;
  return h;
}

/** Whether the serial kernels may read these input views as vec4<f32> arrays (4-word aligned). */
function aligned(views: BoundView[], strides: number[]): boolean {
  return views.every((v) => v.shift % 4 === 0) && strides.every((st) => st % 4 === 0);
}

/**
 * Training attention launchers on one Dispatcher; {@link prepare} compiles them per head size.
 *
 * @example
 * ```ts ignore
 * const att = new AttentionTrainOps(new Dispatcher(ctx, "train"));
 * await att.prepare({ headSizes: [hs] });
 * const shape = { windows: B, tokens: T, nHeads: nH, nKvHeads: nKV, headSize: hs };
 * att.forward(pass, { q, k, v, out, lse, ...shape });
 * // ... later, with dOut:
 * att.backward(pass, { q, k, v, out, lse, dOut, delta, dQ, dK, dV, ...shape });
 * ```
 */
export class AttentionTrainOps {
  readonly d: Dispatcher;
  /** Small tiles (CPU adapters). */
  readonly compact: boolean;
  /** The kernel family of the launchers (serial: the parallel kernel past llvmpipe's loop limit). */
  readonly kernel: AttentionTrainKernel;
  /** Serial kernels: invocations per workgroup. */
  readonly serialThreads: number;
  readonly #tiles: Partial<AttentionTrainGeometry>;
  readonly #slots: Partial<AttentionSerialSlots>;

  /** Launchers recording through `d`; compile them with {@link prepare}. */
  constructor(d: Dispatcher, options: AttentionTrainOptions = {}) {
    this.d = d;
    this.compact = options.compact ?? isCpuAdapter(d.ctx);
    const kernel = options.kernel ?? (this.compact ? "serial" : "parallel");
    if (kernel !== "serial" && kernel !== "parallel") {
      throw new TypeError(
        `AttentionTrainOps: expected kernel "serial" or "parallel", found ${String(kernel)}`,
      );
    }
    this.kernel = kernel;
    this.serialThreads = options.serialThreads ?? SERIAL_WG;
    const max = Math.min(256, d.ctx.limits.maxComputeInvocationsPerWorkgroup);
    checkInt("AttentionTrainOps", "serialThreads", this.serialThreads, 1, max);
    this.#slots = options.slots ?? {};
    for (const [name, n] of Object.entries(this.#slots)) {
      if (n !== undefined && ![1, 2, 4, 8, 16].includes(n)) {
        throw new RangeError(`AttentionTrainOps: expected ${name} slots 1, 2, 4, 8 or 16, found ${n}`);
      }
    }
    this.#tiles = options.tiles ?? {};
    for (const [kernel, t] of Object.entries(this.#tiles)) {
      const ok = t && [t.rows, t.cols, t.threads].every((n) => Number.isInteger(n) && n >= 1) &&
        t.cols % 4 === 0 && t.rows * t.threads <= d.ctx.limits.maxComputeInvocationsPerWorkgroup;
      if (!ok) {
        throw new RangeError(
          `AttentionTrainOps: expected ${kernel} tiles of positive integers with cols a multiple of 4 and ` +
            `rows · threads ≤ ${d.ctx.limits.maxComputeInvocationsPerWorkgroup}, found ${JSON.stringify(t)}`,
        );
      }
    }
  }

  /** The tiles used for head size `hs`. */
  geometry(hs: number): AttentionTrainGeometry {
    const l = this.d.ctx.limits;
    const g = attentionTrainGeometry(hs, {
      maxSharedBytes: l.maxComputeWorkgroupStorageSize,
      maxInvocations: l.maxComputeInvocationsPerWorkgroup,
      compact: this.compact,
    });
    return { ...g, ...this.#tiles };
  }

  /** Serial kernels: the slots per invocation used for head size `hs`. */
  slots(hs: number): AttentionSerialSlots {
    return { ...attentionSerialSlots(hs), ...this.#slots };
  }

  /**
   * The pipelines of the given head sizes (multiples of 4 in [4, 256]); serial family: each kernel with
   * scalar and vec4 loads, and the parallel kernels for the shapes the serial ones cannot take
   * (llvmpipe's loop limit; JIT-compiled by llvmpipe only when first dispatched).
   */
  jobs(options: { headSizes?: number[] } = {}): KernelJob[] {
    const jobs: KernelJob[] = [];
    for (const hs of options.headSizes ?? []) {
      checkHeadSize("AttentionTrainOps.prepare", hs);
      if (this.kernel === "serial") {
        const slots = this.slots(hs);
        for (const kernel of ["forward", "dq", "dkv"] as const) {
          for (const vec4 of [false, true]) {
            const name = `${SOURCES[kernel]}_serial` as const;
            const code = expandWgsl(KERNELS[name], {
              name,
              values: { HS: hs, HS4: hs / 4, N: slots[kernel], VEC4: vec4 ? 1 : 0 },
              include: (f) => (KERNELS as Record<string, string>)[f],
            });
            jobs.push([this.#serialKey(kernel, hs, vec4), code, { WG: this.serialThreads }]);
          }
        }
      }
      const g = this.geometry(hs);
      for (const kernel of ["forward", "dq", "dkv"] as const) {
        const t = g[kernel];
        if (Math.ceil(hs / 4 / t.threads) > MAX_DPT4) {
          throw new RangeError(
            `AttentionTrainOps: head size ${hs} needs ≥ ${Math.ceil(hs / 4 / MAX_DPT4)} threads per row in ` +
              `the ${kernel} kernel, found ${t.threads}`,
          );
        }
        const name = SOURCES[kernel];
        const code = expandWgsl(KERNELS[name], {
          name,
          include: (f) => (KERNELS as Record<string, string>)[f],
        });
        const tp = kernel === "dkv" ? "TPK" : "TPQ";
        const [own, stream] = kernel === "dkv" ? ["BK", "BQ"] : ["BQ", "BK"];
        jobs.push([this.#key(kernel, hs), code, {
          HS: hs,
          [own]: t.rows,
          [stream]: t.cols,
          [tp]: t.threads,
          DPT4: Math.ceil(hs / 4 / t.threads),
        }]);
      }
    }
    return jobs;
  }

  /** Compiles the kernels for the given head sizes. */
  async prepare(options: { headSizes?: number[] } = {}): Promise<void> {
    await compileJobs(this.d, this.jobs(options));
  }

  /**
   * out (B·T, qD) = causal softmax(q kᵀ / sqrt(hs)) v per window and head, and lse (B, nH, T) = the
   * log-sum-exp of each query's scaled scores. Dispatch (ceil(T / rows), nH, B); serial: one invocation
   * per slots.forward (head, query) slots, ceil(B·nH·T / slots / serialThreads) workgroups (about).
   */
  forward(pass: GPUComputePassEncoder, args: AttentionTrainArgs): void {
    const op = "attentionTrainForward";
    const s = this.#shape(op, args);
    const d = this.d;
    d.distinct(op, [args.out, args.lse], [args.q, args.k, args.v]);
    const b = this.#bindInputs(op, args, s);
    const oB = d.bindRows(op, "out", args.out, s.rows, s.qD);
    const lB = d.bind(op, "lse", args.lse, offsetOf(args.lse) + s.vec);
    const params = this.#params(s, b.at, {
      o: [oB.shift, strideOf(args.out, s.qD)],
      lse: lB.shift,
    });
    const resources = [b.q, b.k, b.v, oB.binding, lB.binding];
    if (this.#serial("forward", s)) {
      this.#launchSerial(pass, "forward", s, params, resources, b.vec4);
      return;
    }
    const t = this.geometry(s.hs).forward;
    this.#launch(pass, "forward", s.hs, params, resources, [
      Math.ceil(s.T / t.rows),
      s.nH,
      s.B,
    ]);
  }

  /**
   * Gradients of {@link forward}: dQ (B·T, qD), dK, dV (B·T, kvD), added into unless `accumulate` is
   * false. Two dispatches: over query blocks (D into `delta`, then dQ; (ceil(T / rows), nH, B)) and over
   * key blocks (dK and dV, each KV head summing its group's query heads; (ceil(T / rows), nKV, B)).
   * Serial: one invocation per slots.dq (head, query) slots, then one per slots.dkv key rows.
   */
  backward(pass: GPUComputePassEncoder, args: AttentionBackwardArgs): void {
    const op = "attentionBackward";
    const s = this.#shape(op, args);
    const d = this.d;
    const { out, lse, dOut, delta, dQ, dK, dV } = args;
    const accumulate = (args.accumulate ?? true) ? 1 : 0;

    d.distinct(op, [delta, dQ], [args.q, args.k, args.v, out, dOut, lse]);
    const b = this.#bindInputs(op, args, s);
    const oB = d.bindRows(op, "out", out, s.rows, s.qD);
    const gB = d.bindRows(op, "dOut", dOut, s.rows, s.qD);
    const lB = d.bind(op, "lse", lse, offsetOf(lse) + s.vec);
    const eB = d.bind(op, "delta", delta, offsetOf(delta) + s.vec);
    const qgB = d.bindRows(op, "dQ", dQ, s.rows, s.qD);
    const dgOut: [number, number] = [gB.shift, strideOf(dOut, s.qD)];
    const dqParams = this.#params(s, b.at, {
      o: [oB.shift, strideOf(out, s.qD)],
      dOut: dgOut,
      lse: lB.shift,
      delta: eB.shift,
      g: [qgB.shift, strideOf(dQ, s.qD)],
      flags: accumulate,
    });
    const dqResources = [b.q, b.k, b.v, oB.binding, gB.binding, lB.binding, eB.binding, qgB.binding];
    const oS = strideOf(out, s.qD);
    if (this.#serial("dq", s)) {
      const vec4 = b.vec4 && aligned([oB, gB], [oS, dgOut[1]]);
      this.#launchSerial(pass, "dq", s, dqParams, dqResources, vec4);
    } else {
      const grid: [number, number, number] = [Math.ceil(s.T / this.geometry(s.hs).dq.rows), s.nH, s.B];
      this.#launch(pass, "dq", s.hs, dqParams, dqResources, grid);
    }

    const shared = dK.buffer === dV.buffer;
    d.distinct(op, shared ? [dK] : [dK, dV], [args.q, args.k, args.v, dOut, lse, delta]);
    let kBinding: GPUBufferBinding, vBinding: GPUBufferBinding, kOff: number, vOff: number;
    if (shared) {
      const first = Math.min(offsetOf(dK), offsetOf(dV));
      const end = Math.max(
        offsetOf(dK) + (s.rows - 1) * strideOf(dK, s.kvD) + s.kvD,
        offsetOf(dV) + (s.rows - 1) * strideOf(dV, s.kvD) + s.kvD,
      );
      const both = d.bind(op, "dK/dV", { buffer: dK.buffer, offset: first }, end);
      kBinding = both.binding;
      vBinding = { buffer: d.unused() };
      kOff = both.shift - first + offsetOf(dK);
      vOff = both.shift - first + offsetOf(dV);
    } else {
      const kB = d.bindRows(op, "dK", dK, s.rows, s.kvD), vB = d.bindRows(op, "dV", dV, s.rows, s.kvD);
      [kBinding, vBinding, kOff, vOff] = [kB.binding, vB.binding, kB.shift, vB.shift];
    }
    const dkvParams = this.#params(s, b.at, {
      dOut: dgOut,
      lse: lB.shift,
      delta: eB.shift,
      g: [kOff, strideOf(dK, s.kvD)],
      g2: [vOff, strideOf(dV, s.kvD)],
      flags: accumulate | (shared ? 2 : 0),
    });
    const dkvResources = [b.q, b.k, b.v, gB.binding, lB.binding, eB.binding, kBinding, vBinding];
    if (this.#serial("dkv", s)) {
      this.#launchSerial(pass, "dkv", s, dkvParams, dkvResources, b.vec4 && aligned([gB], [dgOut[1]]));
    } else {
      const grid: [number, number, number] = [Math.ceil(s.T / this.geometry(s.hs).dkv.rows), s.nKV, s.B];
      this.#launch(pass, "dkv", s.hs, dkvParams, dkvResources, grid);
    }
  }

  #key(kernel: keyof AttentionTrainGeometry, hs: number): string {
    const t = this.geometry(hs)[kernel];
    return `${SOURCES[kernel]}:hs${hs}:r${t.rows}:c${t.cols}:t${t.threads}`;
  }

  #serialKey(kernel: keyof AttentionTrainGeometry, hs: number, vec4: boolean): string {
    const n = this.slots(hs)[kernel];
    return `${SOURCES[kernel]}_serial:hs${hs}:n${n}:${vec4 ? "vec4" : "f32"}:wg${this.serialThreads}`;
  }

  #shape(op: string, a: AttentionTrainArgs): Shape {
    const { windows: B, tokens: T, nHeads: nH, nKvHeads: nKV, headSize: hs } = a;
    checkInt(op, "windows", B, 1, MAX_GRID);
    checkInt(op, "tokens", T);
    checkInt(op, "nHeads", nH, 1, MAX_GRID);
    checkInt(op, "nKvHeads", nKV, 1, MAX_GRID);
    checkHeadSize(op, hs);
    if (nH % nKV !== 0) throw new RangeError(`${op}: nHeads ${nH} is not divisible by nKvHeads ${nKV}`);
    checkInt(op, "windows · tokens", B * T, 1, 2 ** 31);
    return { B, T, nH, nKV, hs, qD: nH * hs, kvD: nKV * hs, rows: B * T, vec: B * nH * T };
  }

  /**
   * Binds q, k, v; `at` holds their (shift, stride) words of TrainAttentionParams, `vec4` whether the
   * serial kernels may read them as vec4s.
   */
  #bindInputs(op: string, a: AttentionTrainArgs, s: Shape) {
    const d = this.d;
    const q = d.bindRows(op, "q", a.q, s.rows, s.qD);
    const k = d.bindRows(op, "k", a.k, s.rows, s.kvD);
    const v = d.bindRows(op, "v", a.v, s.rows, s.kvD);
    const at = [q.shift, strideOf(a.q, s.qD), k.shift, strideOf(a.k, s.kvD), v.shift, strideOf(a.v, s.kvD)];
    return { q: q.binding, k: k.binding, v: v.binding, at, vec4: aligned([q, k, v], [at[1], at[3], at[5]]) };
  }

  /** TrainAttentionParams (_attention_train.wgsl): 24 words. */
  #params(s: Shape, at: number[], p: ParamViews): Uint32Array {
    const words = new Uint32Array([
      s.T,
      s.nH,
      s.nH / s.nKV,
      0, // scale, below
      ...at,
      ...(p.o ?? [0, 0]),
      ...(p.dOut ?? [0, 0]),
      p.lse ?? 0,
      p.delta ?? 0,
      ...(p.g ?? [0, 0]),
      ...(p.g2 ?? [0, 0]),
      p.flags ?? 0,
      0, // heads per invocation (serial kernels), set by #launchSerial
      s.B,
      0,
    ]);
    new Float32Array(words.buffer)[3] = Math.fround(1 / Math.sqrt(s.hs));
    return words;
  }

  /** Whether `kernel` runs serial for shape `s` (the family, and llvmpipe's loop limit). */
  #serial(kernel: keyof AttentionTrainGeometry, s: Shape): boolean {
    const loops = kernel === "dkv" ? (s.nH / s.nKV) * (s.T + 1) : s.T;
    return this.kernel === "serial" && loops <= SERIAL_MAX_LOOPS;
  }

  /**
   * Records a serial kernel: invocations over (head set or KV head, window) fastest, then row blocks, so
   * that the lanes of a SIMD batch walk as many rows; workgroups of serialThreads over a 2-D grid.
   */
  #launchSerial(
    pass: GPUComputePassEncoder,
    kernel: keyof AttentionTrainGeometry,
    s: Shape,
    params: Uint32Array,
    resources: GPUBufferBinding[],
    vec4: boolean,
  ): void {
    const n = this.slots(s.hs)[kernel];
    let invocations: number;
    if (kernel === "dkv") {
      invocations = s.B * s.nKV * Math.ceil(s.T / n);
    } else {
      const heads = headsPerInvocation(s.nH / s.nKV, n);
      params[21] = heads;
      invocations = s.B * (s.nH / heads) * Math.ceil(s.T / (n / heads));
    }
    const groups = Math.ceil(invocations / this.serialThreads);
    checkInt(`attention ${kernel}`, "serial workgroups", groups, 1, MAX_GRID * MAX_GRID);
    const key = this.#serialKey(kernel, s.hs, vec4);
    this.d.pipeline(key, `compile it first: await prepare({ headSizes: [${s.hs}] })`);
    this.d.launch(pass, key, params, resources, ...grid2d(groups));
  }

  #launch(
    pass: GPUComputePassEncoder,
    kernel: keyof AttentionTrainGeometry,
    hs: number,
    params: Uint32Array,
    resources: GPUBufferBinding[],
    grid: [number, number, number],
  ): void {
    const key = this.#key(kernel, hs);
    checkInt(`attention ${kernel}`, "row blocks", grid[0], 1, MAX_GRID);
    this.d.pipeline(key, `compile it first: await prepare({ headSizes: [${hs}] })`);
    this.d.launch(pass, key, params, resources, ...grid);
  }
}
