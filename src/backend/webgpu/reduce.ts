// Flat-range kernels of training: the sum of squares of a range (partial sums per workgroup, added on the
// host in f64) and an in-place scale, which together give global gradient-norm clipping (the scale also
// weighs the scales' gradients under a latent mix), and the lerp x ← x + t·(y − x) of the latent mix
// (CPU reference: src/quant/latent_mix.ts).
//
// Dimension legend: n elements of the range.

import {
  createStorageBuffer,
  createUniformBuffer,
  type GpuContext,
  isCpuAdapter,
  readF32,
} from "./device.ts";
import { checkInt, Dispatcher, type GpuView, grid2d, offsetOf } from "./dispatch.ts";
import { KERNELS } from "./kernels.gen.ts";

/** Sum of squares and scaling of flat f32 ranges. */
export class WebGpuReduce {
  readonly ctx: GpuContext;
  /** Threads per workgroup (64 on CPU adapters, else 256). */
  readonly threads: number;
  /** Elements each thread sums. */
  readonly items = 16;
  readonly #d: Dispatcher;
  #partials?: GPUBuffer;
  readonly #factor: GPUBuffer;
  readonly #factorData = new Float32Array(4);
  readonly #lerpT: GPUBuffer;
  readonly #lerpTData = new Float32Array(4);

  private constructor(ctx: GpuContext, compact: boolean) {
    this.ctx = ctx;
    this.#d = new Dispatcher(ctx, "WebGpuReduce");
    this.threads = compact ? 64 : 256;
    this.#factor = this.#d.own(createUniformBuffer(ctx, "scale:factor", this.#factorData));
    this.#lerpT = this.#d.own(createUniformBuffer(ctx, "lerp:t", this.#lerpTData));
  }

  /** Compiles the three kernels. */
  static async create(ctx: GpuContext, options: { compact?: boolean } = {}): Promise<WebGpuReduce> {
    const r = new WebGpuReduce(
      ctx,
      options.compact ?? isCpuAdapter(ctx),
    );
    // Keys name the geometry: the context caches pipelines by key, and instances may differ in threads.
    await r.#d.compile(r.#key("sum_squares"), KERNELS.sum_squares, { WG: r.threads });
    await r.#d.compile(r.#key("scale"), KERNELS.scale, { WG: r.threads });
    await r.#d.compile(r.#key("lerp"), KERNELS.lerp, { WG: r.threads });
    return r;
  }

  #key(kernel: string): string {
    return `${kernel}:wg${this.threads}`;
  }

  /** Workgroups (= partial sums) of a sum of squares over n elements. */
  partialCount(n: number): number {
    return Math.ceil(n / (this.threads * this.items));
  }

  /**
   * Records the partial sums of x² over x (n elements) into this object's partials buffer; read them with
   * {@link readSumSquares} after the submit.
   */
  sumSquares(pass: GPUComputePassEncoder, x: GpuView, n: number): void {
    const op = "sumSquares";
    checkInt(op, "n", n, 1, 2 ** 31);
    const groups = this.partialCount(n);
    if (!this.#partials || this.#partials.size < groups * 4) {
      this.#partials = this.#d.own(createStorageBuffer(this.ctx, "sum_squares:partials", groups * 4));
    }
    const xb = this.#d.bind(op, "x", x, offsetOf(x) + n);
    const [gx, gy] = grid2d(groups);
    const params = new Uint32Array([n, xb.shift, gx, this.items]);
    this.#d.launch(pass, this.#key("sum_squares"), params, [xb.binding, { buffer: this.#partials }], gx, gy);
  }

  /** Σ x² (f64) from the partials of the last submitted {@link sumSquares} over n elements. */
  async readSumSquares(n: number): Promise<number> {
    const parts = await readF32(this.ctx, this.#partials!, this.partialCount(n));
    let s = 0;
    for (const p of parts) s += p;
    return s;
  }

  /**
   * x[i] *= factor for i < n. The factor goes to one uniform (queue.writeBuffer now), so every scale
   * recorded into one submit uses the factor set last before it.
   */
  scale(pass: GPUComputePassEncoder, x: GpuView, n: number, factor: number): void {
    const op = "scale";
    checkInt(op, "n", n, 1, 2 ** 31);
    if (!Number.isFinite(factor)) throw new RangeError(`${op}: expected a finite factor, found ${factor}`);
    this.#factorData[0] = factor;
    this.ctx.device.queue.writeBuffer(this.#factor, 0, this.#factorData);
    const xb = this.#d.bind(op, "x", x, offsetOf(x) + n);
    const [gx, gy] = grid2d(Math.ceil(n / this.threads));
    const params = new Uint32Array([n, xb.shift, gx, 0]);
    this.#d.launch(pass, this.#key("scale"), params, [xb.binding, { buffer: this.#factor }], gx, gy);
  }

  /**
   * x[i] ← x[i] + t·(y[i] − x[i]) for i < n (x and y in different buffers). Like {@link scale}'s factor, t
   * goes to one uniform, so every lerp recorded into one submit uses the t set last before it.
   */
  lerp(pass: GPUComputePassEncoder, x: GpuView, y: GpuView, n: number, t: number): void {
    const op = "lerp";
    checkInt(op, "n", n, 1, 2 ** 31);
    if (!Number.isFinite(t)) throw new RangeError(`${op}: expected a finite t, found ${t}`);
    if (x.buffer === y.buffer) {
      throw new RangeError(`${op}: expected x and y in different buffers, found both in "${x.buffer.label}"`);
    }
    this.#lerpTData[0] = t;
    this.ctx.device.queue.writeBuffer(this.#lerpT, 0, this.#lerpTData);
    const xb = this.#d.bind(op, "x", x, offsetOf(x) + n);
    const yb = this.#d.bind(op, "y", y, offsetOf(y) + n);
    const [gx, gy] = grid2d(Math.ceil(n / this.threads));
    const params = new Uint32Array([n, xb.shift, yb.shift, gx]);
    this.#d.launch(
      pass,
      this.#key("lerp"),
      params,
      [xb.binding, yb.binding, { buffer: this.#lerpT }],
      gx,
      gy,
    );
  }

  /** Frees the partials and uniforms. */
  dispose(): void {
    this.#d.dispose();
  }
}
