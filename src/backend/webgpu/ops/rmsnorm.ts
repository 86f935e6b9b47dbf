// RMSNorm launchers: the inference forward (WebGpuOps.rmsnorm delegates here), the training forward that
// also saves each row's inverse RMS, and the backward (input gradient per row, weight gradient per
// column block). Two kernel families: "parallel" (a workgroup per row or column block with a reduction in
// workgroup memory: GPUs) and "serial" (an invocation per row or column, no barriers: software adapters).
// CPU references: rmsnormForward (src/model/ops.ts), rmsnormBackward (ops_backward.ts).
//
// Dimension legend: R rows (T tokens, or B·T rows of a batch of windows), D model width.

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
import { compileJobs, isCpuAdapter, type JobOptions, type KernelJob } from "./common.ts";

/** Arguments of {@link RmsnormOps.forward} (WebGpuOps.rmsnorm). */
export interface RmsnormArgs {
  /** (rows, dim) input. */
  x: GpuView;
  /** (dim) weight. */
  weight: GpuView;
  /** (rows, dim) output, in a buffer other than x's. */
  out: GpuView;
  rows: number;
  dim: number;
  /** Default 1e-5. */
  eps?: number;
}

/** Arguments of {@link RmsnormOps.forwardTrain}: those of the forward and where to save 1/RMS. */
export interface RmsnormTrainArgs extends RmsnormArgs {
  /** (rows) the inverse RMS r_t = 1 / sqrt(mean(x_t²) + eps) of every row, for the backward. */
  invRms: GpuView;
}

/** Arguments of {@link RmsnormOps.backward}. */
export interface RmsnormBackwardArgs {
  /** (rows, dim) the forward's input. */
  x: GpuView;
  /** (dim) the forward's weight. */
  weight: GpuView;
  /** (rows) the inverse RMS saved by {@link RmsnormOps.forwardTrain}. */
  invRms: GpuView;
  /** (rows, dim) gradient of the output. */
  dOut: GpuView;
  /** (rows, dim) input gradient, r·(w ⊙ dOut) − x·r³/D·Σ_i dOut_i w_i x_i; omitted: not computed. */
  dX?: GpuView;
  /** (dim) weight gradient, Σ_t dOut_t ⊙ x_t · r_t; omitted: not computed. */
  dWeight?: GpuView;
  rows: number;
  dim: number;
  /** Add into dX and dWeight (default true, as the CPU reference) rather than overwrite them. */
  accumulate?: boolean;
}

/**
 * The RMSNorm kernel family: "parallel" runs a workgroup per row (weight gradient: per block of
 * columns) and reduces in workgroup memory, the shape for GPUs; "serial" runs one invocation per row
 * (weight gradient: per column, or per 4 with vec4 loads) with no barriers, the shape for software
 * adapters, where barriers and workgroup memory are per-lane loops (docs/kernels.md).
 */
export type RmsnormKernel = "serial" | "parallel";

/** Options of {@link RmsnormOps}: the kernels and geometry (defaults by adapter: compact on CPU adapters). */
export interface RmsnormOptions {
  /** Small workgroups (CPU adapters); default: {@link isCpuAdapter}. */
  compact?: boolean;
  /** The kernel family (default "serial" when compact, else "parallel"). */
  kernel?: RmsnormKernel;
  /** Serial kernels: invocations per workgroup, an integer in [1, 256] (default 8, one SIMD batch). */
  serialThreads?: number;
  /** Threads of the per-row kernels, a power of two (default 64 when compact, else 256). */
  rowThreads?: number;
  /** Weight gradient: columns per workgroup (default 16 when compact, else 32). */
  weightCols?: number;
  /** Weight gradient: row lanes per column, a power of two (default 4 when compact, else 8). */
  weightRowLanes?: number;
}

// Serial kernels: one SIMD batch of llvmpipe (8 lanes of 256-bit AVX2) per workgroup.
const SERIAL_WG = 8;
// llvmpipe (Mesa's gallivm) silently ends every loop of a shader invocation once that invocation has run
// 65535 loop iterations in all (LP_MAX_TGSI_LOOP_ITERATIONS, shared by all its loops). A serial kernel
// whose invocation would loop more (a weight gradient over more than ~59000 rows, rows of more than ~29700
// scalars, or ~119000 when vec4-aligned) records the parallel kernel instead, whose threads split the loop.
const SERIAL_MAX_LOOPS = 60000;
// Elements (f32 or vec4) per partial sum in the serial kernels (their BLOCK): one more outer iteration each.
const SERIAL_BLOCK = 64;

/** Loop iterations of one serial invocation: `passes` walks over n elements, `sums` of them blocked. */
function serialLoops(n: number, passes: number, sums: number): number {
  return passes * n + sums * Math.ceil(n / SERIAL_BLOCK);
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/**
 * RMSNorm forward (inference and training) and backward launchers on one Dispatcher. Each records into
 * a caller's compute pass.
 *
 * @example
 * ```ts ignore
 * const rms = new RmsnormOps(new Dispatcher(ctx, "train"));
 * await rms.prepare();
 * rms.forwardTrain(pass, { x, weight, out, invRms, rows: B * T, dim: D });
 * // ... later, with dOut:
 * rms.backward(pass, { x, weight, invRms, dOut, dX, dWeight, rows: B * T, dim: D });
 * ```
 */
export class RmsnormOps {
  readonly d: Dispatcher;
  /** The kernel family of the launchers (serial: the parallel kernel past llvmpipe's loop limit). */
  readonly kernel: RmsnormKernel;
  /** Serial kernels: invocations per workgroup. */
  readonly serialThreads: number;
  /** Threads of the per-row kernels (forward, training forward, input gradient). */
  readonly rowThreads: number;
  /** Weight gradient geometry: columns per workgroup and row lanes per column. */
  readonly weightCols: number;
  readonly weightRowLanes: number;

  /** Launchers recording through `d`; compile them with {@link prepare}. */
  constructor(d: Dispatcher, options: RmsnormOptions = {}) {
    this.d = d;
    const compact = options.compact ?? isCpuAdapter(d.ctx);
    const kernel = options.kernel ?? (compact ? "serial" : "parallel");
    if (kernel !== "serial" && kernel !== "parallel") {
      throw new TypeError(`RmsnormOps: expected kernel "serial" or "parallel", found ${String(kernel)}`);
    }
    this.kernel = kernel;
    this.serialThreads = options.serialThreads ?? SERIAL_WG;
    this.rowThreads = options.rowThreads ?? (compact ? 64 : 256);
    this.weightCols = options.weightCols ?? (compact ? 16 : 32);
    this.weightRowLanes = options.weightRowLanes ?? (compact ? 4 : 8);
    const max = d.ctx.limits.maxComputeInvocationsPerWorkgroup;
    checkInt("RmsnormOps", "serialThreads", this.serialThreads, 1, Math.min(256, max));
    if (!isPow2(this.rowThreads) || this.rowThreads > max) {
      throw new RangeError(
        `RmsnormOps: expected rowThreads a power of two ≤ ${max}, found ${this.rowThreads}`,
      );
    }
    checkInt("RmsnormOps", "weightCols", this.weightCols, 1, max);
    if (!isPow2(this.weightRowLanes) || this.weightCols * this.weightRowLanes > max) {
      throw new RangeError(
        `RmsnormOps: expected weightRowLanes a power of two with weightCols · weightRowLanes ≤ ${max}, ` +
          `found ${this.weightRowLanes}`,
      );
    }
  }

  /**
   * The pipelines `options` names; serial family: scalar and vec4 variants of each kernel, and the
   * parallel kernels for the shapes the serial ones cannot take (llvmpipe's loop limit; JIT-compiled by
   * llvmpipe only when first dispatched).
   */
  jobs(options: JobOptions = {}): KernelJob[] {
    const jobs: KernelJob[] = [];
    if (this.kernel === "serial") {
      const wg = { WG: this.serialThreads };
      const kernels: [string, Record<string, number>][] = [];
      if (options.inference ?? true) kernels.push(["rmsnorm_serial", { SAVE: 0 }]);
      if (options.training ?? true) {
        kernels.push(
          ["rmsnorm_serial", { SAVE: 1 }],
          ["rmsnorm_backward_serial", {}],
          ["rmsnorm_backward_weight_serial", {}],
        );
      }
      for (const [name, values] of kernels) {
        for (const vec4 of [false, true]) {
          const code = expandWgsl((KERNELS as Record<string, string>)[name], {
            name,
            values: { ...values, VEC4: vec4 ? 1 : 0 },
          });
          jobs.push([this.#serialKey(name, values.SAVE ?? 0, vec4), code, wg]);
        }
      }
    }
    const rt = { WG: this.rowThreads };
    if (options.inference ?? true) jobs.push([this.#key("rmsnorm"), KERNELS.rmsnorm, rt]);
    if (options.training ?? true) {
      jobs.push(
        [this.#key("rmsnorm_train"), KERNELS.rmsnorm_train, rt],
        [this.#key("rmsnorm_backward"), KERNELS.rmsnorm_backward, rt],
        [this.#key("rmsnorm_backward_weight"), KERNELS.rmsnorm_backward_weight, {
          COLS: this.weightCols,
          RL: this.weightRowLanes,
        }],
      );
    }
    return jobs;
  }

  /** Compiles the pipelines `options` names (default: all). */
  async prepare(options: JobOptions = {}): Promise<void> {
    await compileJobs(this.d, this.jobs(options));
  }

  /**
   * out (rows, dim) = RMSNorm of x with weight. Dispatch: one workgroup per row (parallel), or one
   * invocation per row in workgroups of serialThreads over a 2-D grid (serial).
   */
  forward(pass: GPUComputePassEncoder, args: RmsnormArgs): void {
    const op = "rmsnorm";
    const { x, weight, out, rows, dim: D } = args;
    const eps = args.eps ?? 1e-5;
    checkInt(op, "rows", rows); // the parallel kernel: ≤ MAX_GRID, below
    checkInt(op, "dim", D);
    if (!(eps > 0)) throw new RangeError(`${op}: expected eps > 0, found ${eps}`);
    const d = this.d;
    d.distinct(op, [out], [x, weight]);
    const xs = strideOf(x, D), os = strideOf(out, D);
    const xB = d.bind(op, "x", x, offsetOf(x) + (rows - 1) * xs + D);
    const wB = d.bind(op, "weight", weight, offsetOf(weight) + D);
    const oB = d.bind(op, "out", out, offsetOf(out) + (rows - 1) * os + D);
    const resources = [xB.binding, wB.binding, oB.binding];
    const vec4 = aligned(D, [xB, wB, oB], [xs, os]);
    if (this.kernel === "serial" && serialLoops(vec4 ? D / 4 : D, 2, 1) <= SERIAL_MAX_LOOPS) {
      const params = trainParams(D, rows, xB, xs, wB, oB, os, 0, eps);
      this.#serial(pass, this.#serialKey("rmsnorm_serial", 0, vec4), params, resources, rows);
      return;
    }
    checkInt(op, "rows", rows, 1, MAX_GRID);
    const params = new Uint32Array([D, xB.shift, xs, wB.shift, oB.shift, os, 0, 0]);
    new Float32Array(params.buffer)[6] = eps;
    this.#launch(pass, this.#key("rmsnorm"), params, resources, rows);
  }

  /**
   * The training forward: out (rows, dim) as {@link forward}, and invRms (rows) = each row's inverse
   * RMS. Dispatch: one workgroup per row over a 2-D grid (rows may exceed 65535; parallel), or one
   * invocation per row (serial).
   */
  forwardTrain(pass: GPUComputePassEncoder, args: RmsnormTrainArgs): void {
    const op = "rmsnormTrain";
    const { x, weight, out, invRms, rows, dim: D } = args;
    const eps = args.eps ?? 1e-5;
    checkInt(op, "rows", rows);
    checkInt(op, "dim", D);
    if (!(eps > 0)) throw new RangeError(`${op}: expected eps > 0, found ${eps}`);
    const d = this.d;
    d.distinct(op, [out, invRms], [x, weight]);
    const xB = d.bindRows(op, "x", x, rows, D);
    const wB = d.bindRows(op, "weight", weight, 1, D);
    const oB = d.bindRows(op, "out", out, rows, D);
    const rB = d.bind(op, "invRms", invRms, offsetOf(invRms) + rows);
    const xs = strideOf(x, D), os = strideOf(out, D);
    const params = trainParams(D, rows, xB, xs, wB, oB, os, rB.shift, eps);
    const resources = [xB.binding, wB.binding, oB.binding, rB.binding];
    const vec4 = aligned(D, [xB, wB, oB], [xs, os]);
    if (this.kernel === "serial" && serialLoops(vec4 ? D / 4 : D, 2, 1) <= SERIAL_MAX_LOOPS) {
      this.#serial(pass, this.#serialKey("rmsnorm_serial", 1, vec4), params, resources, rows);
      return;
    }
    this.#launch(pass, this.#key("rmsnorm_train"), params, resources, ...grid2d(rows));
  }

  /**
   * Gradients of out = w ⊙ x · r: dX (rows, dim) with one workgroup per row (2-D grid; serial: one
   * invocation per row), and dWeight (dim) with one workgroup per block of weightCols columns walking
   * all rows (serial: one invocation per column, or per 4 columns when the views allow vec4 loads), in a
   * fixed order (deterministic, no atomics). At least one of dX, dWeight must be given; each is added
   * into unless `accumulate` is false.
   */
  backward(pass: GPUComputePassEncoder, args: RmsnormBackwardArgs): void {
    const op = "rmsnormBackward";
    const { x, weight, invRms, dOut, dX, dWeight, rows, dim: D } = args;
    const acc = (args.accumulate ?? true) ? 1 : 0;
    checkInt(op, "rows", rows);
    checkInt(op, "dim", D);
    if (!dX && !dWeight) throw new TypeError(`${op}: expected dX or dWeight (or both), found neither`);
    const d = this.d;
    const serial = this.kernel === "serial";
    if (dX) {
      d.distinct(op, [dX], [x, weight, invRms, dOut]);
      const xB = d.bindRows(op, "x", x, rows, D);
      const wB = d.bindRows(op, "weight", weight, 1, D);
      const gB = d.bindRows(op, "dOut", dOut, rows, D);
      const rB = d.bind(op, "invRms", invRms, offsetOf(invRms) + rows);
      const dB = d.bindRows(op, "dX", dX, rows, D);
      const xs = strideOf(x, D), gs = strideOf(dOut, D), ds = strideOf(dX, D);
      const params = new Uint32Array([
        D,
        rows,
        xB.shift,
        xs,
        wB.shift,
        gB.shift,
        gs,
        rB.shift,
        dB.shift,
        ds,
        acc,
        0,
      ]);
      const resources = [xB.binding, wB.binding, gB.binding, rB.binding, dB.binding];
      const vec4 = aligned(D, [xB, wB, gB, dB], [xs, gs, ds]);
      if (serial && serialLoops(vec4 ? D / 4 : D, 2, 1) <= SERIAL_MAX_LOOPS) {
        this.#serial(pass, this.#serialKey("rmsnorm_backward_serial", 0, vec4), params, resources, rows);
      } else {
        this.#launch(pass, this.#key("rmsnorm_backward"), params, resources, ...grid2d(rows));
      }
    }
    if (dWeight) {
      d.distinct(op, [dWeight], [x, invRms, dOut]);
      const xB = d.bindRows(op, "x", x, rows, D);
      const gB = d.bindRows(op, "dOut", dOut, rows, D);
      const rB = d.bind(op, "invRms", invRms, offsetOf(invRms) + rows);
      const wB = d.bindRows(op, "dWeight", dWeight, 1, D);
      const xs = strideOf(x, D), gs = strideOf(dOut, D);
      const params = new Uint32Array([
        D,
        rows,
        xB.shift,
        xs,
        gB.shift,
        gs,
        rB.shift,
        wB.shift,
        acc,
        0,
        0,
        0,
      ]);
      const resources = [xB.binding, gB.binding, rB.binding, wB.binding];
      if (serial && serialLoops(rows, 1, 1) <= SERIAL_MAX_LOOPS) {
        const vec4 = aligned(D, [xB, gB, wB], [xs, gs]);
        const key = this.#serialKey("rmsnorm_backward_weight_serial", 0, vec4);
        const groups = Math.ceil(D / (vec4 ? 4 : 1) / this.serialThreads);
        checkInt(op, "dim / serialThreads", groups, 1, MAX_GRID);
        this.#launch(pass, key, params, resources, groups);
        return;
      }
      const groups = Math.ceil(D / this.weightCols);
      checkInt(op, "dim / weightCols", groups, 1, MAX_GRID);
      this.#launch(pass, this.#key("rmsnorm_backward_weight"), params, resources, groups);
    }
  }

  #key(kernel: string): string {
    if (kernel === "rmsnorm_backward_weight") return `${kernel}:c${this.weightCols}:l${this.weightRowLanes}`;
    return `${kernel}:wg${this.rowThreads}`;
  }

  #serialKey(kernel: string, save: number, vec4: boolean): string {
    return `${kernel}:${save ? "save:" : ""}${vec4 ? "vec4" : "f32"}:wg${this.serialThreads}`;
  }

  /** Launches a per-row serial kernel: ceil(rows / serialThreads) workgroups over a 2-D grid. */
  #serial(
    pass: GPUComputePassEncoder,
    key: string,
    params: Uint32Array,
    resources: GPUBufferBinding[],
    rows: number,
  ): void {
    this.#launch(pass, key, params, resources, ...grid2d(Math.ceil(rows / this.serialThreads)));
  }

  #launch(
    pass: GPUComputePassEncoder,
    key: string,
    params: Uint32Array,
    resources: GPUBufferBinding[],
    x: number,
    y = 1,
  ): void {
    this.d.pipeline(key, "compile it first: await prepare()");
    this.d.launch(pass, key, params, resources, x, y);
  }
}

/** RmsnormTrainParams (rmsnorm_train.wgsl, rmsnorm_serial.wgsl): 12 words. */
function trainParams(
  D: number,
  rows: number,
  xB: BoundView,
  xs: number,
  wB: BoundView,
  oB: BoundView,
  os: number,
  rShift: number,
  eps: number,
): Uint32Array {
  const params = new Uint32Array([D, rows, xB.shift, xs, wB.shift, oB.shift, os, rShift, 0, 0, 0, 0]);
  new Float32Array(params.buffer)[8] = eps;
  return params;
}

/**
 * Whether the serial kernels may read these views as vec4<f32> arrays: D, every view's offset within its
 * binding and every row stride multiples of 4 words (bindings start at 256-byte boundaries).
 */
function aligned(D: number, views: BoundView[], strides: number[]): boolean {
  return D % 4 === 0 && views.every((v) => v.shift % 4 === 0) && strides.every((s) => s % 4 === 0);
}
