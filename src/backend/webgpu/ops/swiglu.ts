// SwiGLU launchers: the in-place inference gate (WebGpuOps.swiglu delegates here), the out-of-place
// training forward (the backward needs both inputs) and the backward. CPU references: swigluForward
// (src/model/ops.ts), swigluBackward (ops_backward.ts).
//
// Dimension legend: R rows (T tokens, or B·T rows of a batch of windows), H hidden width (cols).

import { checkInt, type Dispatcher, type GpuView, MAX_GRID, offsetOf, strideOf } from "../dispatch.ts";
import { KERNELS } from "../kernels.gen.ts";
import { compileJobs, type JobOptions, type KernelJob, WG } from "./common.ts";

/** Arguments of {@link SwigluOps.forward} (WebGpuOps.swiglu). */
export interface SwigluArgs {
  /** (rows, cols) w1 output, replaced by silu(a) ⊙ b. */
  a: GpuView;
  /** (rows, cols) w3 output: another buffer, or other elements of a's (a fused w1|w3 output). */
  b: GpuView;
  rows: number;
  cols: number;
}

/** Arguments of {@link SwigluOps.forwardTrain}. */
export interface SwigluTrainArgs {
  /** (rows, cols) w1 output, read. */
  a: GpuView;
  /** (rows, cols) w3 output, read (may share a's buffer). */
  b: GpuView;
  /** (rows, cols) silu(a) ⊙ b, in a buffer other than a's and b's. */
  out: GpuView;
  rows: number;
  cols: number;
}

/** Arguments of {@link SwigluOps.backward}. */
export interface SwigluBackwardArgs {
  /** (rows, cols) gradient of the gate's output. */
  dOut: GpuView;
  /** (rows, cols) the forward's w1 output. */
  a: GpuView;
  /** (rows, cols) the forward's w3 output (may share a's buffer). */
  b: GpuView;
  /** (rows, cols) gradient of a: dOut ⊙ b ⊙ σ(a)(1 + a(1 − σ(a))). */
  dA: GpuView;
  /** (rows, cols) gradient of b: dOut ⊙ silu(a); may be other elements of dA's buffer (fused w1|w3). */
  dB: GpuView;
  rows: number;
  cols: number;
  /** Add into dA and dB (default true, as the CPU reference) rather than overwrite them. */
  accumulate?: boolean;
}

/**
 * SwiGLU launchers on one Dispatcher. Elementwise: one thread per element, 256 per workgroup along a
 * row; dispatch (ceil(cols / 256), rows).
 *
 * @example
 * ```ts ignore
 * const swiglu = new SwigluOps(new Dispatcher(ctx, "train"));
 * await swiglu.prepare();
 * swiglu.forwardTrain(pass, { a: h1, b: h3, out: hAct, rows: B * T, cols: H });
 * swiglu.backward(pass, { dOut: dHAct, a: h1, b: h3, dA: dH1, dB: dH3, rows: B * T, cols: H });
 * ```
 */
export class SwigluOps {
  readonly d: Dispatcher;

  /** Launchers recording through `d`; compile them with {@link prepare}. */
  constructor(d: Dispatcher) {
    this.d = d;
  }

  /** The pipelines `options` names. */
  jobs(options: JobOptions = {}): KernelJob[] {
    const jobs: KernelJob[] = [];
    if (options.inference ?? true) {
      jobs.push(["swiglu", KERNELS.swiglu, { WG, B_IN_A: 0 }], ["swiglu:fused", KERNELS.swiglu, {
        WG,
        B_IN_A: 1,
      }]);
    }
    if (options.training ?? true) {
      jobs.push(
        ["swiglu_train", KERNELS.swiglu_train, { WG }],
        ["swiglu_backward", KERNELS.swiglu_backward, { WG }],
      );
    }
    return jobs;
  }

  /** Compiles the pipelines `options` names (default: all). */
  async prepare(options: JobOptions = {}): Promise<void> {
    await compileJobs(this.d, this.jobs(options));
  }

  /** a = silu(a) ⊙ b over (rows, cols). a and b may share a buffer (a fused w1|w3 output), not elements. */
  forward(pass: GPUComputePassEncoder, args: SwigluArgs): void {
    const op = "swiglu";
    const { a, b, rows, cols } = args;
    checkInt(op, "rows", rows, 1, MAX_GRID);
    checkInt(op, "cols", cols);
    const d = this.d;
    const as = strideOf(a, cols), bs = strideOf(b, cols);
    if (a.buffer !== b.buffer) {
      d.distinct(op, [a], [b]);
      const aB = d.bind(op, "a", a, offsetOf(a) + (rows - 1) * as + cols);
      const bB = d.bind(op, "b", b, offsetOf(b) + (rows - 1) * bs + cols);
      const params = new Uint32Array([cols, aB.shift, as, bB.shift, bs, 0, 0, 0]);
      this.#launch(pass, "swiglu", params, [aB.binding, bB.binding], rows, cols);
      return;
    }
    const first = Math.min(offsetOf(a), offsetOf(b));
    const end = Math.max(offsetOf(a) + (rows - 1) * as + cols, offsetOf(b) + (rows - 1) * bs + cols);
    const abB = d.bind(op, "a/b", { buffer: a.buffer, offset: first }, end);
    const shift = abB.shift - first;
    const params = new Uint32Array([cols, shift + offsetOf(a), as, shift + offsetOf(b), bs, 0, 0, 0]);
    this.#launch(pass, "swiglu:fused", params, [abB.binding, { buffer: d.unused() }], rows, cols);
  }

  /** out = silu(a) ⊙ b over (rows ≤ 65535, cols), out of place. */
  forwardTrain(pass: GPUComputePassEncoder, args: SwigluTrainArgs): void {
    const op = "swigluTrain";
    const { a, b, out, rows, cols } = args;
    checkInt(op, "rows", rows, 1, MAX_GRID);
    checkInt(op, "cols", cols);
    const d = this.d;
    d.distinct(op, [out], [a, b]);
    const aB = d.bindRows(op, "a", a, rows, cols);
    const bB = d.bindRows(op, "b", b, rows, cols);
    const oB = d.bindRows(op, "out", out, rows, cols);
    const params = new Uint32Array([
      cols,
      aB.shift,
      strideOf(a, cols),
      bB.shift,
      strideOf(b, cols),
      oB.shift,
      strideOf(out, cols),
      0,
    ]);
    this.#launch(pass, "swiglu_train", params, [aB.binding, bB.binding, oB.binding], rows, cols);
  }

  /**
   * dA, dB of out = silu(a) ⊙ b given dOut, over (rows, cols). dA and dB may be views of one buffer (the
   * gradient of a fused w1|w3 output), bound once; they must not overlap.
   */
  backward(pass: GPUComputePassEncoder, args: SwigluBackwardArgs): void {
    const op = "swigluBackward";
    const { dOut, a, b, dA, dB, rows, cols } = args;
    checkInt(op, "rows", rows, 1, MAX_GRID);
    checkInt(op, "cols", cols);
    const d = this.d;
    const fused = dA.buffer === dB.buffer;
    d.distinct(op, fused ? [dA] : [dA, dB], [dOut, a, b]);
    const gB = d.bindRows(op, "dOut", dOut, rows, cols);
    const aB = d.bindRows(op, "a", a, rows, cols);
    const bB = d.bindRows(op, "b", b, rows, cols);
    let daBinding: GPUBufferBinding, dbBinding: GPUBufferBinding, daOff: number, dbOff: number;
    if (fused) {
      const first = Math.min(offsetOf(dA), offsetOf(dB));
      const end = Math.max(
        offsetOf(dA) + (rows - 1) * strideOf(dA, cols) + cols,
        offsetOf(dB) + (rows - 1) * strideOf(dB, cols) + cols,
      );
      const both = d.bind(op, "dA/dB", { buffer: dA.buffer, offset: first }, end);
      daBinding = both.binding;
      dbBinding = { buffer: d.unused() };
      daOff = both.shift - first + offsetOf(dA);
      dbOff = both.shift - first + offsetOf(dB);
    } else {
      const daB = d.bindRows(op, "dA", dA, rows, cols), dbB = d.bindRows(op, "dB", dB, rows, cols);
      [daBinding, dbBinding, daOff, dbOff] = [daB.binding, dbB.binding, daB.shift, dbB.shift];
    }
    const flags = ((args.accumulate ?? true) ? 1 : 0) | (fused ? 2 : 0);
    const params = new Uint32Array([
      cols,
      gB.shift,
      strideOf(dOut, cols),
      aB.shift,
      strideOf(a, cols),
      bB.shift,
      strideOf(b, cols),
      daOff,
      strideOf(dA, cols),
      dbOff,
      strideOf(dB, cols),
      flags,
    ]);
    const resources = [gB.binding, aB.binding, bB.binding, daBinding, dbBinding];
    this.#launch(pass, "swiglu_backward", params, resources, rows, cols);
  }

  #launch(
    pass: GPUComputePassEncoder,
    key: string,
    params: Uint32Array,
    resources: GPUBufferBinding[],
    rows: number,
    cols: number,
  ): void {
    this.d.pipeline(key, "compile it first: await prepare()");
    this.d.launch(pass, key, params, resources, Math.ceil(cols / WG), rows);
  }
}
