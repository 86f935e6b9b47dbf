// Launchers of the loss kernels (kernels/kl_div.wgsl, cross_entropy.wgsl, mse.wgsl, and their *_serial
// variants for software adapters): per-row losses, summed later by the caller, and the gradient with a
// caller-chosen scale (normalization and weight).
// CPU references: klDivergence, meanSquaredError (src/train/losses.ts), crossEntropySoftmaxBackward
// (src/model/ops_backward.ts).
//
// Dimension legend: rows = positions (tokens of a batch), V = vocabulary, D = hidden width.

import { type GpuContext, isCpuAdapter } from "./device.ts";
import {
  type BoundView,
  checkInt,
  Dispatcher,
  type GpuView,
  grid2d,
  offsetOf,
  strideOf,
} from "./dispatch.ts";
import { KERNELS } from "./kernels.gen.ts";
import { expandWgsl } from "./wgsl_template.ts";

export type { GpuView } from "./dispatch.ts";

/**
 * The loss kernel family: "parallel" runs a workgroup per row with reductions in workgroup memory (GPUs);
 * "serial" runs one invocation per row with no barriers (software adapters, where barriers and workgroup
 * memory are per-lane loops; docs/kernels.md), reading vec4s when the views are 4-word aligned.
 */
export type LossKernel = "serial" | "parallel";

/** Options of {@link WebGpuLosses.create}. */
export interface WebGpuLossesOptions {
  /** Small workgroups for CPU adapters (default: true for a fallback adapter or one named llvmpipe, …). */
  compact?: boolean;
  /** The kernel family (default "serial" when compact, else "parallel"). */
  kernel?: LossKernel;
  /** Parallel kernels: threads per row, 32, 64, 128 or 256 (default 256, compact 64). */
  threads?: number;
  /** Serial kernels: rows (invocations) per workgroup, an integer in [1, 256] (default 8). */
  serialThreads?: number;
}

/** Where a loss writes its gradient (what is common to every loss's arguments). */
export interface LossGradientArgs {
  /** (rows) f32 output: each row's loss, unscaled (words loss.offset … loss.offset + rows − 1). */
  loss: GpuView;
  /** Gradient output shaped like the input; omit for the loss only (or with `inPlace`). */
  grad?: GpuView;
  /** Add into `grad` instead of overwriting it (default false). */
  accumulate?: boolean;
}

/** Arguments of {@link WebGpuLosses.klDivergence}. */
export interface KlDivergenceArgs extends LossGradientArgs {
  /** (rows, V) student logits. */
  student: GpuView;
  /** (rows, V) teacher logits. */
  teacher: GpuView;
  rows: number;
  vocab: number;
  /** Write the gradient over the student logits (no `grad`; saves a (rows, V) buffer). */
  inPlace?: boolean;
  /** Gradient factor: grad = scale · (softmax(s) − softmax(t)) (default 1 / rows: the mean's gradient). */
  scale?: number;
}

/** Arguments of {@link WebGpuLosses.crossEntropy}. */
export interface CrossEntropyArgs extends LossGradientArgs {
  /** (rows, V) logits. */
  logits: GpuView;
  /** (rows) i32 targets; negative = unscored (loss 0, gradient 0); ≥ V gives loss NaN. */
  targets: GpuView;
  rows: number;
  vocab: number;
  /** Write the gradient over the logits (no `grad`). */
  inPlace?: boolean;
  /**
   * Gradient factor: grad = scale · (softmax(x) − onehot(y)) (default 1 / rows; the mean over the scored
   * rows needs 1 / their count).
   */
  scale?: number;
}

/** Arguments of {@link WebGpuLosses.meanSquaredError}. */
export interface MeanSquaredErrorArgs extends LossGradientArgs {
  /** (rows, D) student hidden states. */
  student: GpuView;
  /** (rows, D) teacher hidden states. */
  teacher: GpuView;
  rows: number;
  dim: number;
  /** Gradient factor: grad = scale · 2 (s − t) (default 1 / (rows·D): the mean's gradient; times γ). */
  scale?: number;
}

type GradMode = "none" | "separate" | "inPlace";
type LossName = "kl_div" | "cross_entropy" | "mse";

// Serial kernels: one SIMD batch of llvmpipe (8 lanes of 256-bit AVX2) per workgroup.
const SERIAL_WG = 8;
// llvmpipe (Mesa's gallivm) silently ends every loop of a shader invocation once that invocation has run
// 65535 loop iterations in all (LP_MAX_TGSI_LOOP_ITERATIONS). A serial kernel whose invocation would
// loop more (KL over rows of more than ~29500 scalars, or ~118000 when vec4-aligned) records the parallel
// kernel instead, whose threads split the row.
const SERIAL_MAX_LOOPS = 60000;
// Elements (f32 or vec4) per partial sum in the serial kernels (their BLOCK): one more outer iteration each.
const SERIAL_BLOCK = 64;
// Per serial kernel: walks over the row, and blocked sums among them (each adds ceil(n / BLOCK) loops).
const SERIAL_PASSES: Record<LossName, [passes: number, sums: number]> = {
  kl_div: [2, 2],
  cross_entropy: [2, 1],
  mse: [1, 1],
};

/**
 * The loss kernels on one device; launchers record into a caller's compute pass. Each writes one loss per
 * row (read back and summed in f64, or reduced by a later kernel). `scale` is part of the cached binding
 * parameters: keep it fixed across steps (each distinct value caches one more small uniform).
 *
 * @example
 * ```ts ignore
 * const losses = await WebGpuLosses.create(ctx);
 * losses.klDivergence(pass, { student: { buffer: logits }, teacher: { buffer: teacherLogits }, rows, vocab,
 *   loss: { buffer: rowLosses }, inPlace: true });
 * losses.meanSquaredError(pass, { student: { buffer: h }, teacher: { buffer: hT }, rows, dim,
 *   loss: { buffer: rowLosses, offset: rows }, grad: { buffer: dH }, accumulate: true,
 *   scale: gamma / (rows * dim) });
 * ```
 */
export class WebGpuLosses {
  readonly ctx: GpuContext;
  /** Small workgroups (CPU adapters). */
  readonly compact: boolean;
  /** The kernel family (serial: the parallel kernel past llvmpipe's loop limit). */
  readonly kernel: LossKernel;
  /** Parallel kernels: threads per row. */
  readonly threads: number;
  /** Serial kernels: rows per workgroup. */
  readonly serialThreads: number;
  readonly #d: Dispatcher;

  private constructor(ctx: GpuContext, options: WebGpuLossesOptions) {
    this.ctx = ctx;
    this.#d = new Dispatcher(ctx, "WebGpuLosses");
    this.compact = options.compact ?? isCpuAdapter(ctx);
    const kernel = options.kernel ?? (this.compact ? "serial" : "parallel");
    if (kernel !== "serial" && kernel !== "parallel") {
      throw new TypeError(`WebGpuLosses: expected kernel "serial" or "parallel", found ${String(kernel)}`);
    }
    this.kernel = kernel;
    this.threads = options.threads ?? (this.compact ? 64 : 256);
    if (![32, 64, 128, 256].includes(this.threads)) {
      throw new RangeError(`WebGpuLosses: expected threads 32, 64, 128 or 256, found ${this.threads}`);
    }
    this.serialThreads = options.serialThreads ?? SERIAL_WG;
    const max = Math.min(256, ctx.limits.maxComputeInvocationsPerWorkgroup);
    checkInt("WebGpuLosses", "serialThreads", this.serialThreads, 1, max);
  }

  /**
   * Compiles the pipelines of the kernel family: each loss with and without its gradient variants (eight;
   * serial: each also with scalar and vec4 loads, sixteen, and the eight parallel ones for rows the serial
   * kernels cannot take, JIT-compiled by llvmpipe only when first dispatched).
   */
  static async create(ctx: GpuContext, options: WebGpuLossesOptions = {}): Promise<WebGpuLosses> {
    const l = new WebGpuLosses(ctx, options);
    const serial = l.kernel === "serial";
    const jobs: [string, string, number][] = [];
    const add = (name: LossName, mode: GradMode, values: Record<string, number>) => {
      jobs.push([l.#key(name, mode, false, false), expandWgsl(KERNELS[name], { name, values }), l.threads]);
      if (!serial) return;
      for (const vec4 of [false, true]) {
        const source = `${name}_serial` as const;
        const code = expandWgsl(KERNELS[source], { name: source, values: { ...values, VEC4: vec4 ? 1 : 0 } });
        jobs.push([l.#key(name, mode, true, vec4), code, l.serialThreads]);
      }
    };
    for (const mode of ["none", "separate", "inPlace"] as const) {
      const values = { SEPARATE: mode === "separate" ? 1 : 0, IN_PLACE: mode === "inPlace" ? 1 : 0 };
      for (const name of ["kl_div", "cross_entropy"] as const) add(name, mode, values);
      if (mode !== "inPlace") add("mse", mode, { GRAD: mode === "separate" ? 1 : 0 });
    }
    // One at a time: device error scopes are a stack, so concurrent compiles could misattribute errors.
    for (const [key, code, WG] of jobs) await l.#d.compile(key, code, { WG });
    return l;
  }

  /**
   * Per-row KL(softmax(teacher) ‖ softmax(student)) (nats) and, with `grad` or `inPlace`,
   * scale · (softmax(s) − softmax(t)). Dispatch: one workgroup per row (serial: one invocation per row).
   */
  klDivergence(pass: GPUComputePassEncoder, args: KlDivergenceArgs): void {
    const op = "WebGpuLosses.klDivergence";
    const { student, teacher, rows, vocab: V } = args;
    this.#record(op, pass, "kl_div", {
      a: student,
      b: teacher,
      bWidth: V,
      rows,
      cols: V,
      inPlace: args.inPlace ?? false,
      scale: args.scale ?? 1 / rows,
      names: ["student", "teacher"],
    }, args);
  }

  /**
   * Per-row cross-entropy −log softmax(x)[y] and, with `grad` or `inPlace`, scale · (softmax(x) − onehot(y)).
   * Dispatch: one workgroup per row (serial: one invocation per row).
   */
  crossEntropy(pass: GPUComputePassEncoder, args: CrossEntropyArgs): void {
    const op = "WebGpuLosses.crossEntropy";
    const { logits, targets, rows, vocab: V } = args;
    if (targets.stride !== undefined && targets.stride !== 1) {
      throw new RangeError(`${op}: expected contiguous targets (stride 1), found stride ${targets.stride}`);
    }
    this.#record(op, pass, "cross_entropy", {
      a: logits,
      b: { buffer: targets.buffer, offset: targets.offset, stride: 1 },
      bWidth: 1,
      rows,
      cols: V,
      inPlace: args.inPlace ?? false,
      scale: args.scale ?? 1 / rows,
      names: ["logits", "targets"],
    }, args);
  }

  /**
   * Per-row Σ (s − t)² and, with `grad`, scale · 2 (s − t). Dispatch: one workgroup per row (serial: one
   * invocation per row).
   */
  meanSquaredError(pass: GPUComputePassEncoder, args: MeanSquaredErrorArgs): void {
    const op = "WebGpuLosses.meanSquaredError";
    const { student, teacher, rows, dim: D } = args;
    this.#record(op, pass, "mse", {
      a: student,
      b: teacher,
      bWidth: D,
      rows,
      cols: D,
      inPlace: false,
      scale: args.scale ?? 1 / (rows * D),
      names: ["student", "teacher"],
    }, args);
  }

  /** Bind groups cached so far; constant in steady state. */
  get cachedBindGroups(): number {
    return this.#d.cachedBindGroups;
  }

  /** Frees the parameter uniforms (never the caller's buffers). */
  dispose(): void {
    this.#d.dispose();
  }

  #key(kernel: LossName, mode: GradMode, serial: boolean, vec4: boolean): string {
    if (serial) return `${kernel}_serial:${mode}:${vec4 ? "vec4" : "f32"}:wg${this.serialThreads}`;
    return `${kernel}:${mode}:wg${this.threads}`;
  }

  /** Validates, binds and launches one loss kernel: a (rows, cols) input a, b (rows, bWidth), loss, grad. */
  #record(
    op: string,
    pass: GPUComputePassEncoder,
    kernel: LossName,
    k: {
      a: GpuView;
      b: GpuView;
      bWidth: number;
      rows: number;
      cols: number;
      inPlace: boolean;
      scale: number;
      names: [string, string];
    },
    out: LossGradientArgs,
  ): void {
    const { a, b, bWidth, rows, cols, inPlace, scale, names } = k;
    checkInt(op, "rows", rows, 1, 2 ** 31);
    checkInt(op, kernel === "mse" ? "dim" : "vocab", cols, 1, 2 ** 31);
    if (!Number.isFinite(scale)) throw new RangeError(`${op}: expected a finite scale, found ${scale}`);
    const { loss, grad } = out;
    const accumulate = out.accumulate ?? false;
    if (inPlace && grad) throw new TypeError(`${op}: expected either grad or inPlace, found both`);
    if (accumulate && !grad) {
      throw new TypeError(`${op}: accumulate needs a grad view (it adds into grad; in place it cannot)`);
    }
    const mode: GradMode = grad ? "separate" : inPlace ? "inPlace" : "none";
    const written = [loss, ...(grad ? [grad] : []), ...(inPlace ? [a] : [])];
    this.#d.distinct(op, written, inPlace ? [b] : [a, b]);
    const aB = this.#rows(op, names[0], a, rows, cols);
    const bB = this.#rows(op, names[1], b, rows, bWidth);
    const lB = this.#d.bind(op, "loss", loss, offsetOf(loss) + rows);
    const dB: BoundView | undefined = grad ? this.#rows(op, "grad", grad, rows, cols) : undefined;
    const aS = strideOf(a, cols), bS = strideOf(b, bWidth), dS = grad ? strideOf(grad, cols) : 0;
    // The serial kernels read E = vec4<f32> when every float view's offset and stride allow it (bindings
    // start at 256-byte boundaries; cross_entropy's targets stay i32), and run when their loops fit.
    const floats: [BoundView, number][] = [[aB, aS], ...(dB ? [[dB, dS] as [BoundView, number]] : [])];
    if (kernel !== "cross_entropy") floats.push([bB, bS]);
    const vec4 = cols % 4 === 0 && floats.every(([v, st]) => v.shift % 4 === 0 && st % 4 === 0);
    const [passes, sums] = SERIAL_PASSES[kernel];
    const n = vec4 ? cols / 4 : cols;
    const loops = passes * n + sums * Math.ceil(n / SERIAL_BLOCK);
    const serial = this.kernel === "serial" && loops <= SERIAL_MAX_LOOPS;
    const [gx, gy] = grid2d(serial ? Math.ceil(rows / this.serialThreads) : rows);
    const params = new Uint32Array([
      rows,
      cols,
      gx,
      accumulate ? 1 : 0,
      aB.shift,
      aS,
      bB.shift,
      bS,
      dB?.shift ?? 0,
      dS,
      lB.shift,
      0,
    ]);
    new Float32Array(params.buffer)[11] = scale;
    const resources = [aB.binding, bB.binding, lB.binding, ...(dB ? [dB.binding] : [])];
    this.#d.launch(pass, this.#key(kernel, mode, serial, vec4), params, resources, gx, gy);
  }

  /** Binds a (rows, width) view after checking its stride is at least its width. */
  #rows(op: string, name: string, view: GpuView, rows: number, width: number): BoundView {
    const stride = strideOf(view, width);
    if (rows > 1 && stride < width) {
      throw new RangeError(`${op}: expected ${name}.stride ≥ ${width} (its row width), found ${stride}`);
    }
    return this.#d.bindRows(op, name, view, rows, width);
  }
}
