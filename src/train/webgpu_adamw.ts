// Launcher of the AdamW kernels over views (offset, length) of flat parameter, gradient and moment buffers:
// kernels/adamw_vec4.wgsl four parameters per vec4 over the 4-aligned body of a range, kernels/adamw.wgsl
// one per thread over its unaligned head and ragged tail (or all of it). CPU reference: adamwStep in
// src/train/adamw.ts, equal bit for bit where the adapter rounds division and sqrt correctly (llvmpipe).
//
// Dimension legend: n = parameters in the updated range; p, g, m, v views are all (n).

import { adamwCoefficients, type AdamWOptions } from "./adamw.ts";
import { createUniformBuffer, type GpuContext, isCpuAdapter } from "../backend/webgpu/device.ts";
import {
  type BoundView,
  checkInt,
  Dispatcher,
  type GpuView,
  grid2d,
  offsetOf,
} from "../backend/webgpu/dispatch.ts";
import { KERNELS } from "../backend/webgpu/kernels.gen.ts";
import { expandWgsl } from "../backend/webgpu/wgsl_template.ts";

export type { GpuView } from "../backend/webgpu/dispatch.ts";

/**
 * The scalars of one optimizer step (learning rate, betas, bias corrections, …) in a caller-owned uniform,
 * so that a schedule changes them with one queue.writeBuffer and no new bind group. The GPU sees the
 * values written last before the submit that runs the recorded updates: `set` it before recording a step,
 * and use one object per group of parameters with its own hyperparameters (e.g. latents and scales).
 */
export class AdamWStep {
  /** The uniform buffer: the f32 fields of {@link adamwCoefficients}, padded to 48 bytes. */
  readonly buffer: GPUBuffer;
  readonly #device: GPUDevice;
  readonly #data = new Float32Array(12);
  #t = 0;

  /** Use {@link WebGpuAdamW.createStep}. */
  constructor(ctx: GpuContext, label: string) {
    this.#device = ctx.device;
    this.buffer = createUniformBuffer(ctx, label, this.#data);
  }

  /** The step number last set (0 before the first {@link set}). */
  get t(): number {
    return this.#t;
  }

  /** Sets step t ≥ 1 with hyperparameters `o` (one queue.writeBuffer of 48 bytes). */
  set(t: number, o: AdamWOptions): void {
    const c = adamwCoefficients(t, o);
    this.#data.set([
      c.lr,
      c.lrWd,
      c.beta1,
      c.oneMinusBeta1,
      c.beta2,
      c.oneMinusBeta2,
      c.correction1,
      c.correction2,
      c.eps,
    ]);
    this.#t = t;
    this.#device.queue.writeBuffer(this.buffer, 0, this.#data);
  }
}

/**
 * The AdamW kernel family: "vec4" updates four parameters per vec4 access wherever the four views share
 * their alignment (the scalar kernel takes the few parameters before and after); "scalar" one per thread.
 */
export type AdamWKernel = "vec4" | "scalar";

/** Options of {@link WebGpuAdamW.create}. */
export interface WebGpuAdamWOptions {
  /** Small workgroups for CPU adapters (default: true for a fallback adapter or one named llvmpipe, …). */
  compact?: boolean;
  /** Threads per workgroup: 32, 64, 128 or 256 (default 256, compact 64). */
  threads?: number;
  /** The kernel family (default "vec4"). */
  kernel?: AdamWKernel;
  /** vec4 kernel: vec4s per thread, 1..8 (default 4 when compact, else 1). */
  vec4PerThread?: number;
}

/** Arguments of {@link WebGpuAdamW.update}. */
export interface AdamWArgs {
  /** The step's scalars; {@link AdamWStep.set} must have been called. */
  step: AdamWStep;
  /** (n) parameters, updated in place. `stride` is ignored (a view is one contiguous range). */
  p: GpuView;
  /** (n) gradient. */
  g: GpuView;
  /** (n) first moment, updated in place (zero before step 1). */
  m: GpuView;
  /** (n) second moment, updated in place (zero before step 1). */
  v: GpuView;
  /** n, the parameters updated. */
  length: number;
}

/**
 * AdamW on one device: records updates into a caller's compute pass. p, g, m and v must be four different
 * buffers (WebGPU forbids a writable binding aliasing another); ranges of one buffer per role (a flat
 * parameter buffer, a flat gradient buffer, …) are the intended layout.
 *
 * @example
 * ```ts ignore
 * const adamw = await WebGpuAdamW.create(ctx);
 * const scalesStep = adamw.createStep("scales");
 * scalesStep.set(t, { lr: 1e-4 });
 * adamw.update(pass, { step: scalesStep, p: { buffer: params, offset: at }, g: { buffer: grads, offset: at },
 *   m: { buffer: m, offset: at }, v: { buffer: v, offset: at }, length: n });
 * ```
 */
export class WebGpuAdamW {
  readonly ctx: GpuContext;
  /** Small workgroups (CPU adapters). */
  readonly compact: boolean;
  /** Threads per workgroup. */
  readonly threads: number;
  /** The kernel family. */
  readonly kernel: AdamWKernel;
  /** vec4 kernel: vec4s per thread. */
  readonly vec4PerThread: number;
  readonly #d: Dispatcher;

  private constructor(ctx: GpuContext, options: WebGpuAdamWOptions) {
    this.ctx = ctx;
    this.#d = new Dispatcher(ctx, "WebGpuAdamW");
    this.compact = options.compact ?? isCpuAdapter(ctx);
    this.threads = options.threads ?? (this.compact ? 64 : 256);
    if (![32, 64, 128, 256].includes(this.threads)) {
      throw new RangeError(`WebGpuAdamW: expected threads 32, 64, 128 or 256, found ${this.threads}`);
    }
    const kernel = options.kernel ?? "vec4";
    if (kernel !== "vec4" && kernel !== "scalar") {
      throw new TypeError(`WebGpuAdamW: expected kernel "vec4" or "scalar", found ${String(kernel)}`);
    }
    this.kernel = kernel;
    this.vec4PerThread = options.vec4PerThread ?? (this.compact ? 4 : 1);
    checkInt("WebGpuAdamW", "vec4PerThread", this.vec4PerThread, 1, 8);
  }

  /** Compiles the kernels and returns the launcher. */
  static async create(ctx: GpuContext, options: WebGpuAdamWOptions = {}): Promise<WebGpuAdamW> {
    const a = new WebGpuAdamW(ctx, options);
    await a.#d.compile(a.#key(), KERNELS.adamw, { WG: a.threads });
    if (a.kernel === "vec4") {
      const code = expandWgsl(KERNELS.adamw_vec4, { name: "adamw_vec4", values: { VPT: a.vec4PerThread } });
      await a.#d.compile(a.#vec4Key(), code, { WG: a.threads });
    }
    return a;
  }

  /** A new step uniform (owned by this launcher, freed by {@link dispose}); `set` it before use. */
  createStep(label = "adamw step"): AdamWStep {
    const step = new AdamWStep(this.ctx, label);
    this.#d.own(step.buffer);
    return step;
  }

  /**
   * One AdamW step over n parameters. Dispatch ≈ (ceil(n / (4 · vec4PerThread · threads))) workgroups of the
   * vec4 kernel (vec4 family, views sharing their offset modulo 4) plus ≤ 2 small scalar dispatches for the
   * unaligned head and ragged tail; or ceil(n / threads) of the scalar kernel; split over x and y.
   */
  update(pass: GPUComputePassEncoder, args: AdamWArgs): void {
    const op = "WebGpuAdamW.update";
    const { step, p, g, m, v, length: n } = args;
    if (!(step instanceof AdamWStep)) throw new TypeError(`${op}: expected args.step from createStep()`);
    if (step.t < 1) {
      throw new RangeError(`${op}: the step uniform is not set; call step.set(t, options) first`);
    }
    checkInt(op, "length", n, 1, 2 ** 32 - 1);
    this.#d.distinct(op, [p, m, v], [g]);
    const bound = ([["p", p], ["g", g], ["m", m], ["v", v]] as const).map(([name, view]) =>
      this.#d.bind(op, name, view, offsetOf(view) + n)
    );
    const misalign = bound[0].shift % 4;
    if (this.kernel === "scalar" || bound.some((b) => b.shift % 4 !== misalign)) {
      this.#scalar(pass, step, bound, 0, n);
      return;
    }
    const head = Math.min(n, (4 - misalign) % 4);
    const n4 = Math.floor((n - head) / 4);
    if (head > 0) this.#scalar(pass, step, bound, 0, head);
    if (n4 > 0) {
      const groups = Math.ceil(n4 / (this.threads * this.vec4PerThread));
      const [x, y] = grid2d(groups);
      const params = new Uint32Array([n4, x, ...bound.map((b) => (b.shift + head) / 4), 0, 0]);
      const resources = [{ buffer: step.buffer }, ...bound.map((b) => b.binding)];
      this.#d.launch(pass, this.#vec4Key(), params, resources, x, y);
    }
    const done = head + 4 * n4;
    if (done < n) this.#scalar(pass, step, bound, done, n - done);
  }

  /** The scalar kernel over parameters from .. from + count of the bound views. */
  #scalar(
    pass: GPUComputePassEncoder,
    step: AdamWStep,
    bound: BoundView[],
    from: number,
    count: number,
  ): void {
    const groups = Math.ceil(count / this.threads);
    const [x, y] = grid2d(groups);
    const params = new Uint32Array([count, x, ...bound.map((b) => b.shift + from), 0, 0]);
    this.#d.launch(
      pass,
      this.#key(),
      params,
      [{ buffer: step.buffer }, ...bound.map((b) => b.binding)],
      x,
      y,
    );
  }

  /** Bind groups cached so far; constant in steady state. */
  get cachedBindGroups(): number {
    return this.#d.cachedBindGroups;
  }

  /** Frees the parameter uniforms and the step uniforms this launcher created (never the caller's buffers). */
  dispose(): void {
    this.#d.dispose();
  }

  #key(): string {
    return `adamw:wg${this.threads}`;
  }

  #vec4Key(): string {
    return `adamw_vec4:vpt${this.vec4PerThread}:wg${this.threads}`;
  }
}
