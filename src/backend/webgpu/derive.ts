// Launchers of the training-time weight derivation (METHOD.md §2 coupled residual forward/backward, §5 the
// `standard` baseline): latent + scales → What and packed sign planes, and dWhat → dW, dg, dh.
// CPU reference: src/quant/coupled.ts. Two kernel families: "parallel" (coupled_forward, coupled_backward
// + _dg, _dh: a thread per column, workgroup reductions; the shape for GPUs) and "serial"
// (coupled_forward_serial, coupled_backward_serial + _dh: an invocation per plane word and row block, k and
// the word's 32 columns unrolled, vec4 loads where the views allow; the shape for software adapters).
//
// Dimension legend: out = rows of W, in = columns, k = paths (1..4), wpr = ceil(in / 32) plane words per
// row, blocks = ceil(out / rowBlock) row blocks of the column reductions.
//   W: coupled (out, in), standard (k·out, in);  g: (k, out);  h: (k, in);  What, dWhat: (out, in);
//   planes: (k·out, wpr) u32, the layout of src/quant/bitpack.ts;  dW like W;  dg like g;  dh like h.

import { type GpuContext, isCpuAdapter } from "./device.ts";
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
import { expandWgsl } from "./wgsl_template.ts";

export type { GpuView } from "./dispatch.ts";

/** Which derivation: RaBiT's coupled residual (one latent) or the `standard` baseline (k latents). */
export type DeriveMethod = "coupled" | "standard";

/**
 * The derivation kernel family: "parallel" runs a thread per column with workgroup reductions (the shape
 * for GPUs); "serial" runs an invocation per (plane word, row block) with no barriers and no workgroup
 * memory, k and the word's 32 columns unrolled and vec4 loads where the views are 4-aligned (the shape for
 * software adapters, where storage accesses are per-lane loops and barriers split the shader:
 * docs/kernels.md). Both give the same What, planes and dW bit for bit; dg and dh differ in summation order.
 */
export type DeriveKernel = "serial" | "parallel";

/** Options of {@link WebGpuDerive.create}. */
export interface WebGpuDeriveOptions {
  /**
   * Small workgroups for CPU adapters (default: true for a fallback adapter or one named llvmpipe,
   * lavapipe, SwiftShader or WARP), where large workgroup arrays compile slowly and buy nothing.
   */
  compact?: boolean;
  /** The kernel family (default "serial" when compact, else "parallel"). */
  kernel?: DeriveKernel;
  /** Serial kernels: invocations (plane words) per workgroup, an integer in [1, 256] (default 8). */
  serialThreads?: number;
  /** Serial kernels: rows per invocation, an integer in [1, 60000] (default 32). */
  serialRows?: number;
  /** Threads (columns) per workgroup of the element passes: 32, 64, 128 or 256 (default 256, compact 64). */
  threads?: number;
  /** Threads per row of the dg reduction: a power of two in [32, 256] (default 256, compact 64). */
  reduceThreads?: number;
  /** Rows per block of the column reductions (dh): an integer in [1, 65535] (default 64, compact 32). */
  rowBlock?: number;
}

/** Shape and method shared by {@link DeriveForwardArgs} and {@link DeriveBackwardArgs}. */
export interface DeriveShape {
  /** Default "coupled". */
  method?: DeriveMethod;
  /** Rows of W. */
  out: number;
  /** Columns of W. */
  in: number;
  /** Paths, 1..4. */
  k: number;
}

/** Arguments of {@link WebGpuDerive.forward}. */
export interface DeriveForwardArgs extends DeriveShape {
  /** Latent: coupled (out, in); standard (k·out, in), path i's rows at i·out (stride applies to all). */
  w: GpuView;
  /** (k, out) row scales; `stride` is the distance between paths (default out). */
  g: GpuView;
  /** (k, in) column scales; `stride` is the distance between paths (default in). */
  h: GpuView;
  /** (out, in) output What = Σ_i g_i ⊙ B_i ⊙ h_i, in a buffer no other view uses. */
  wHat: GpuView;
  /** (k·out, ceil(in / 32)) u32 output sign planes (bitpack.ts layout), in a buffer no other view uses. */
  planes: GpuView;
}

/** Arguments of {@link WebGpuDerive.backward}. */
export interface DeriveBackwardArgs extends DeriveShape {
  /** (out, in) gradient of the loss with respect to What. */
  dWHat: GpuView;
  /** (k·out, ceil(in / 32)) the sign planes of the forward pass. */
  planes: GpuView;
  /** (k, out) row scales (stride: between paths). */
  g: GpuView;
  /** (k, in) column scales (stride: between paths). */
  h: GpuView;
  /** Latent gradient, shaped like the latent (coupled (out, in), standard (k·out, in)). */
  dW: GpuView;
  /** (k, out) row-scale gradient (stride: between paths). */
  dg: GpuView;
  /** (k, in) column-scale gradient (stride: between paths). */
  dh: GpuView;
  /**
   * Clipped STE (coupled.ts's CoupledBackwardOptions / StandardBackwardOptions): dW = 0 where the latent
   * exceeds clip times the largest magnitude its paths can give. Needs `w`. Default: identity STE.
   */
  clip?: number;
  /** The latent (shaped like dW), read with `clip` only. */
  w?: GpuView;
  /** Standard only: dW_i = dWhat ⊙ g_i h_iᵀ instead of dWhat (coupled.ts's `chainScales`). */
  chainScales?: boolean;
  /** Add into dW, dg, dh (default false: overwrite them). */
  accumulate?: boolean;
  /**
   * (blocks·k, in) words for the partial column sums, in a buffer no other view uses (default: a buffer
   * this launcher owns; size it with {@link WebGpuDerive.scratchWords}). The serial kernels' partial row
   * sums (ceil(in / 32)·k, out) always go to a buffer the launcher owns.
   */
  scratch?: GpuView;
}

const FLAG_ACCUMULATE = 1, FLAG_CLIP = 2, FLAG_CHAIN = 4, FLAG_DIRECT = 8;
// coupled_backward_serial's flags: dh, dg written directly (one row block, one plane word).
const FLAG_DIRECT_DH = 8, FLAG_DIRECT_DG = 16;
// llvmpipe (Mesa's gallivm) silently ends every loop of a shader invocation once that invocation has run
// 65535 loop iterations in all. The serial kernels loop over their row block; the finishing passes
// (coupled_backward_dh) over row blocks or plane words: shapes needing more than this record the parallel
// kernels instead.
const SERIAL_MAX_LOOPS = 60000;
// Serial kernels: one SIMD batch of llvmpipe (8 lanes of 256-bit AVX2) per workgroup; 32 rows per
// invocation (16 to 64 measured alike on the dim-512 layers; fewer rows reload h more often).
const SERIAL_WG = 8, SERIAL_ROWS = 32;

/**
 * Whether views may be read as vec4<f32> arrays: the row width, every offset within its binding and every
 * stride are multiples of 4.
 */
function aligned(width: number, views: [BoundView, number][]): boolean {
  return width % 4 === 0 && views.every(([b, stride]) => b.shift % 4 === 0 && stride % 4 === 0);
}

/**
 * The derivation kernels on one device. Launchers record into a caller's compute pass (no submit, no
 * readback). Pipelines are compiled by {@link WebGpuDerive.create}; bind groups and their parameter
 * uniforms are cached by what they bind, so steady-state steps allocate nothing.
 *
 * @example
 * ```ts ignore
 * const derive = await WebGpuDerive.create(ctx);
 * const pass = encoder.beginComputePass();
 * derive.forward(pass, { out, in: inF, k: 2, w: { buffer: latent }, g: { buffer: params, offset: gAt },
 *   h: { buffer: params, offset: hAt }, wHat: { buffer: wHat }, planes: { buffer: planes } });
 * // ... the layer's forward and backward GEMMs, giving dWHat ...
 * derive.backward(pass, { out, in: inF, k: 2, dWHat: { buffer: dWHat }, planes: { buffer: planes },
 *   g: { buffer: params, offset: gAt }, h: { buffer: params, offset: hAt }, dW: { buffer: dLatent },
 *   dg: { buffer: grads, offset: gAt }, dh: { buffer: grads, offset: hAt } });
 * pass.end();
 * ```
 */
export class WebGpuDerive {
  readonly ctx: GpuContext;
  /** Small workgroups (CPU adapters). */
  readonly compact: boolean;
  /** Threads (columns) per workgroup of the forward, backward column and dh passes. */
  readonly threads: number;
  /** Threads per row of the dg pass. */
  readonly reduceThreads: number;
  /** Rows per block of the column reductions (parallel kernels). */
  readonly rowBlock: number;
  /**
   * The kernel family (serial: the parallel kernels for views that are not 4-aligned and for shapes past
   * llvmpipe's loop limit).
   */
  readonly kernel: DeriveKernel;
  /** Serial kernels: invocations per workgroup. */
  readonly serialThreads: number;
  /** Serial kernels: rows per invocation. */
  readonly serialRows: number;
  readonly #d: Dispatcher;
  #scratch?: GPUBuffer;
  #rowScratch?: GPUBuffer;
  #recorded = { serial: 0, parallel: 0 };

  private constructor(ctx: GpuContext, options: WebGpuDeriveOptions) {
    this.ctx = ctx;
    this.#d = new Dispatcher(ctx, "WebGpuDerive");
    this.compact = options.compact ?? isCpuAdapter(ctx);
    this.threads = options.threads ?? (this.compact ? 64 : 256);
    if (![32, 64, 128, 256].includes(this.threads)) {
      throw new RangeError(`WebGpuDerive: expected threads 32, 64, 128 or 256, found ${this.threads}`);
    }
    this.reduceThreads = options.reduceThreads ?? (this.compact ? 64 : 256);
    if (![32, 64, 128, 256].includes(this.reduceThreads)) {
      throw new RangeError(
        `WebGpuDerive: expected reduceThreads 32, 64, 128 or 256, found ${this.reduceThreads}`,
      );
    }
    this.rowBlock = options.rowBlock ?? (this.compact ? 32 : 64);
    checkInt("WebGpuDerive", "rowBlock", this.rowBlock, 1, MAX_GRID);
    const kernel = options.kernel ?? (this.compact ? "serial" : "parallel");
    if (kernel !== "serial" && kernel !== "parallel") {
      throw new TypeError(`WebGpuDerive: expected kernel "serial" or "parallel", found ${String(kernel)}`);
    }
    this.kernel = kernel;
    this.serialThreads = options.serialThreads ?? SERIAL_WG;
    checkInt(
      "WebGpuDerive",
      "serialThreads",
      this.serialThreads,
      1,
      Math.min(256, ctx.limits.maxComputeInvocationsPerWorkgroup),
    );
    this.serialRows = options.serialRows ?? SERIAL_ROWS;
    checkInt("WebGpuDerive", "serialRows", this.serialRows, 1, SERIAL_MAX_LOOPS);
  }

  /**
   * Compiles the six parallel pipelines (forward and column pass per method, dg, dh; the serial family's
   * fallback and finishing pass) and returns the launchers. The serial kernels, one pipeline per
   * method and k (and for the backward clip, chainScales and accumulate), compile on first use.
   */
  static async create(ctx: GpuContext, options: WebGpuDeriveOptions = {}): Promise<WebGpuDerive> {
    const d = new WebGpuDerive(ctx, options);
    const WG = d.threads;
    const jobs: [string, string, Record<string, number>][] = [];
    for (const method of ["coupled", "standard"] as const) {
      const STANDARD = method === "standard" ? 1 : 0;
      jobs.push([d.#key("coupled_forward", method), KERNELS.coupled_forward, { WG, STANDARD }]);
      jobs.push([d.#key("coupled_backward", method), KERNELS.coupled_backward, { WG, STANDARD }]);
    }
    jobs.push([`coupled_backward_dg:wg${d.reduceThreads}`, KERNELS.coupled_backward_dg, {
      WG: d.reduceThreads,
    }]);
    jobs.push([`coupled_backward_dh:wg${WG}`, KERNELS.coupled_backward_dh, { WG }]);
    // One at a time: device error scopes are a stack, so concurrent compiles could misattribute errors.
    for (const [key, code, constants] of jobs) await d.#d.compile(key, code, constants);
    return d;
  }

  /** Words of scratch {@link backward} needs for the partial column sums of an (out, in) layer of k paths. */
  scratchWords(out: number, inF: number, k: number): number {
    return Math.max(Math.ceil(out / this.rowBlock), Math.ceil(out / this.serialRows)) * k * inF;
  }

  /**
   * What (out, in) and the sign planes (k·out, wpr) from the latent and scales (see
   * coupledForward / standardForward). Dispatch: parallel (ceil(in / threads), out); serial
   * (ceil(wpr / serialThreads), ceil(out / serialRows)).
   */
  forward(pass: GPUComputePassEncoder, args: DeriveForwardArgs): void {
    const op = "WebGpuDerive.forward";
    const { method, out, in: inF, k, wpr, latentRows } = this.#shape(op, args);
    const { w, g, h, wHat, planes } = args;
    this.#d.distinct(op, [wHat, planes], [w, g, h]);
    const wB = this.#rows(op, "w", w, latentRows, inF);
    const gB = this.#rows(op, "g", g, k, out);
    const hB = this.#rows(op, "h", h, k, inF);
    const whB = this.#rows(op, "wHat", wHat, out, inF);
    const pB = this.#rows(op, "planes", planes, k * out, wpr);
    // The serial kernel reads w, h and What as vec4s; other views take the parallel kernel.
    const serial = this.kernel === "serial" &&
      aligned(inF, [[wB, strideOf(w, inF)], [hB, strideOf(h, inF)], [whB, strideOf(wHat, inF)]]);
    const params = new Uint32Array([
      out,
      inF,
      k,
      serial ? this.serialRows : 0,
      wB.shift,
      strideOf(w, inF),
      gB.shift,
      strideOf(g, out),
      hB.shift,
      strideOf(h, inF),
      whB.shift,
      strideOf(wHat, inF),
      pB.shift,
      strideOf(planes, wpr),
      0,
      0,
    ]);
    const resources = [wB.binding, gB.binding, hB.binding, whB.binding, pB.binding];
    if (serial) {
      const key = this.#serialPipeline("coupled_forward_serial", { K: k, STANDARD: method === "standard" });
      const x = Math.ceil(wpr / this.serialThreads);
      checkInt(op, "ceil(in / 32) / serialThreads", x, 1, MAX_GRID);
      this.#d.launch(pass, key, params, resources, x, Math.ceil(out / this.serialRows));
      this.#recorded.serial++;
      return;
    }
    this.#recorded.parallel++;
    this.#d.launch(
      pass,
      this.#key("coupled_forward", method),
      params,
      resources,
      Math.ceil(inF / this.threads),
      out,
    );
  }

  /**
   * dW (identity or clipped STE), dg and dh from dWhat (see coupledBackward / standardBackward).
   * Parallel: the row pass (dg), the column pass (dW and per-block column sums) and, unless one block
   * covers every row and dh may be bound next to dW, a pass adding up the blocks (dh). Serial: one pass
   * (dW, per-block column sums, per-word row sums) and up to two passes adding up the partial sums.
   */
  backward(pass: GPUComputePassEncoder, args: DeriveBackwardArgs): void {
    const op = "WebGpuDerive.backward";
    const { method, out, in: inF, k, wpr, latentRows } = this.#shape(op, args);
    const { dWHat, planes, g, h, dW, dg, dh, clip, w } = args;
    const accumulate = args.accumulate ?? false;
    const chain = args.chainScales ?? false;
    if (chain && method !== "standard") {
      throw new TypeError(`${op}: chainScales applies to method "standard" only, found method "${method}"`);
    }
    if (clip !== undefined) {
      if (!(clip > 0)) throw new RangeError(`${op}: expected clip > 0, found ${clip}`);
      if (!w) throw new TypeError(`${op}: expected args.w (the latent) with clip, found none`);
    }
    // The serial kernels unless a loop would pass llvmpipe's limit or a view is not 4-aligned.
    if (
      this.kernel === "serial" && wpr <= SERIAL_MAX_LOOPS &&
      Math.ceil(out / this.serialRows) <= SERIAL_MAX_LOOPS &&
      this.#backwardSerial(pass, op, { method, out, in: inF, k, wpr, latentRows }, args)
    ) {
      this.#recorded.serial++;
      return;
    }
    // Every check before the first dispatch, so a failing call records nothing.
    const blocks = Math.ceil(out / this.rowBlock);
    checkInt(op, "row blocks", blocks, 1, MAX_GRID);
    const read = [dWHat, planes, g, h, ...(clip !== undefined ? [w!] : [])];
    // dh is written by the column pass itself when one block covers every row and no view there shares
    // its buffer (a flat gradient buffer holding dW and dh takes the two-pass route).
    const direct = blocks === 1 && [dW, ...read].every((v) => v.buffer !== dh.buffer);
    const sums: GpuView = direct ? dh : (args.scratch ?? this.#scratchView(blocks * k * inF));
    this.#d.distinct(op, [dg], [dWHat, planes, h]);
    this.#d.distinct(op, [dW, sums], read);
    if (!direct) this.#d.distinct(op, [dh], [sums]);
    const dWHatB = this.#rows(op, "dWHat", dWHat, out, inF);
    const pB = this.#rows(op, "planes", planes, k * out, wpr);
    const gB = this.#rows(op, "g", g, k, out);
    const hB = this.#rows(op, "h", h, k, inF);
    const dgB = this.#rows(op, "dg", dg, k, out);
    const dhB = this.#rows(op, "dh", dh, k, inF);
    const dWB = this.#rows(op, "dW", dW, latentRows, inF);
    const wB = clip !== undefined ? this.#rows(op, "w", w!, latentRows, inF) : undefined;
    const sB = direct ? dhB : this.#rows(op, "scratch", sums, blocks * k, inF);

    this.#recorded.parallel++;
    // Row pass: dg.
    const dgParams = new Uint32Array([
      out,
      inF,
      k,
      accumulate ? 1 : 0,
      dWHatB.shift,
      strideOf(dWHat, inF),
      pB.shift,
      strideOf(planes, wpr),
      hB.shift,
      strideOf(h, inF),
      dgB.shift,
      strideOf(dg, out),
    ]);
    this.#d.launch(
      pass,
      `coupled_backward_dg:wg${this.reduceThreads}`,
      dgParams,
      [dWHatB.binding, pB.binding, hB.binding, dgB.binding],
      out,
    );

    // Column pass: dW, and dh directly or its per-block partial sums.
    const flags = (accumulate ? FLAG_ACCUMULATE : 0) | (clip !== undefined ? FLAG_CLIP : 0) |
      (chain ? FLAG_CHAIN : 0) | (direct ? FLAG_DIRECT : 0);
    const colParams = new Uint32Array([
      out,
      inF,
      k,
      flags,
      this.rowBlock,
      0,
      dWHatB.shift,
      strideOf(dWHat, inF),
      pB.shift,
      strideOf(planes, wpr),
      gB.shift,
      strideOf(g, out),
      hB.shift,
      strideOf(h, inF),
      wB?.shift ?? 0,
      wB ? strideOf(w!, inF) : 0,
      dWB.shift,
      strideOf(dW, inF),
      sB.shift,
      strideOf(sums, inF),
    ]);
    new Float32Array(colParams.buffer)[5] = clip ?? 0;
    const wBinding = wB?.binding ?? { buffer: this.#d.unused() };
    this.#d.launch(
      pass,
      this.#key("coupled_backward", method),
      colParams,
      [dWHatB.binding, pB.binding, gB.binding, hB.binding, wBinding, dWB.binding, sB.binding],
      Math.ceil(inF / this.threads),
      blocks,
    );
    if (direct) return;

    // Second pass of the column sums: dh.
    const dhParams = new Uint32Array([
      inF,
      k,
      blocks,
      accumulate ? 1 : 0,
      sB.shift,
      strideOf(sums, inF),
      dhB.shift,
      strideOf(dh, inF),
    ]);
    this.#d.launch(
      pass,
      `coupled_backward_dh:wg${this.threads}`,
      dhParams,
      [sB.binding, dhB.binding],
      Math.ceil(inF / this.threads),
      k,
    );
  }

  /**
   * The serial backward: coupled_backward_serial, then coupled_backward_dh for dh and dg unless direct.
   * Records nothing and returns false when a view the kernel reads as vec4s is not 4-aligned.
   */
  #backwardSerial(
    pass: GPUComputePassEncoder,
    op: string,
    shape: { method: DeriveMethod; out: number; in: number; k: number; wpr: number; latentRows: number },
    args: DeriveBackwardArgs,
  ): boolean {
    const { method, out, in: inF, k, wpr, latentRows } = shape;
    const { dWHat, planes, g, h, dW, dg, dh, clip, w } = args;
    const accumulate = args.accumulate ?? false;
    const chain = args.chainScales ?? false;
    // Every check before the first dispatch, so a failing call records nothing.
    const blocks = Math.ceil(out / this.serialRows);
    const x = Math.ceil(wpr / this.serialThreads);
    checkInt(op, "ceil(in / 32) / serialThreads", x, 1, MAX_GRID);
    const read = [dWHat, planes, g, h, ...(clip !== undefined ? [w!] : [])];
    // dh (dg) is written by the pass itself when one row block (plane word) covers the whole sum and no
    // other view of the pass shares its buffer (a flat gradient buffer takes the route through scratch).
    const directDh = blocks === 1 && [dW, dg, ...read].every((v) => v.buffer !== dh.buffer);
    const hSums: GpuView = directDh ? dh : (args.scratch ?? this.#scratchView(blocks * k * inF));
    const directDg = wpr === 1 && [dW, hSums, ...read].every((v) => v.buffer !== dg.buffer);
    const gSums: GpuView = directDg ? dg : this.#rowScratchView(wpr * k * out);
    this.#d.distinct(op, [dW, hSums, gSums], read);
    if (!directDh) this.#d.distinct(op, [dh], [hSums]);
    if (!directDg) this.#d.distinct(op, [dg], [gSums]);
    const dWHatB = this.#rows(op, "dWHat", dWHat, out, inF);
    const pB = this.#rows(op, "planes", planes, k * out, wpr);
    const gB = this.#rows(op, "g", g, k, out);
    const hB = this.#rows(op, "h", h, k, inF);
    const dWB = this.#rows(op, "dW", dW, latentRows, inF);
    const wB = clip !== undefined ? this.#rows(op, "w", w!, latentRows, inF) : undefined;
    const dhB = this.#rows(op, "dh", dh, k, inF);
    const dgB = this.#rows(op, "dg", dg, k, out);
    const hsB = directDh ? dhB : this.#rows(op, "scratch", hSums, blocks * k, inF);
    const gsB = directDg ? dgB : this.#rows(op, "row scratch", gSums, wpr * k, out);
    const hsStride = strideOf(hSums, inF), gsStride = strideOf(gSums, out);
    const vec4 = aligned(inF, [
      [dWHatB, strideOf(dWHat, inF)],
      [hB, strideOf(h, inF)],
      [dWB, strideOf(dW, inF)],
      [hsB, hsStride],
      ...(wB ? [[wB, strideOf(w!, inF)] as [BoundView, number]] : []),
    ]);
    if (!vec4) return false;
    const key = this.#serialPipeline("coupled_backward_serial", {
      K: k,
      STANDARD: method === "standard",
      CLIP: clip !== undefined,
      CHAIN: chain,
      ACCUMULATE: accumulate,
    });
    const params = new Uint32Array([
      out,
      inF,
      k,
      (directDh ? FLAG_DIRECT_DH : 0) | (directDg ? FLAG_DIRECT_DG : 0),
      this.serialRows,
      0,
      dWHatB.shift,
      strideOf(dWHat, inF),
      pB.shift,
      strideOf(planes, wpr),
      gB.shift,
      strideOf(g, out),
      hB.shift,
      strideOf(h, inF),
      wB?.shift ?? 0,
      wB ? strideOf(w!, inF) : 0,
      dWB.shift,
      strideOf(dW, inF),
      hsB.shift,
      hsStride,
      gsB.shift,
      gsStride,
      0,
      0,
    ]);
    new Float32Array(params.buffer)[5] = clip ?? 0;
    // The unused latent binding: 16 bytes, one vec4.
    const wBinding = wB?.binding ?? { buffer: this.#d.unused() };
    this.#d.launch(
      pass,
      key,
      params,
      [dWHatB.binding, pB.binding, gB.binding, hB.binding, wBinding, dWB.binding, hsB.binding, gsB.binding],
      x,
      blocks,
    );
    // Finishing passes: dh = Σ over row blocks, dg = Σ over plane words (coupled_backward_dh both).
    const finish = (
      sB: BoundView,
      sStride: number,
      cols: number,
      parts: number,
      dB: BoundView,
      dStride: number,
    ) => {
      const dhParams = new Uint32Array([
        cols,
        k,
        parts,
        accumulate ? 1 : 0,
        sB.shift,
        sStride,
        dB.shift,
        dStride,
      ]);
      this.#d.launch(
        pass,
        `coupled_backward_dh:wg${this.threads}`,
        dhParams,
        [sB.binding, dB.binding],
        Math.ceil(cols / this.threads),
        k,
      );
    };
    if (!directDh) finish(hsB, hsStride, inF, blocks, dhB, strideOf(dh, inF));
    if (!directDg) finish(gsB, gsStride, out, wpr, dgB, strideOf(dg, out));
    return true;
  }

  /** The key of a serial kernel's pipeline with template `values`, compiled here on first use. */
  #serialPipeline(kernel: string, values: Record<string, number | boolean>): string {
    const v: Record<string, number> = {};
    for (const [name, value] of Object.entries(values)) v[name] = Number(value);
    const key = `${kernel}:${
      Object.entries(v).map(([n, x]) => `${n}${x}`).join(":")
    }:wg${this.serialThreads}`;
    this.#d.pipelineOrCompile(
      key,
      () => expandWgsl((KERNELS as Record<string, string>)[kernel], { name: kernel, values: v }),
      { WG: this.serialThreads },
    );
    return key;
  }

  /**
   * Calls of {@link forward} and {@link backward} so far by the kernel family they recorded (the serial
   * family falls back to the parallel kernels for unaligned views): for tests and benchmarks.
   */
  get recorded(): { serial: number; parallel: number } {
    return { ...this.#recorded };
  }

  /** Bind groups cached so far; constant in steady state. */
  get cachedBindGroups(): number {
    return this.#d.cachedBindGroups;
  }

  /** Frees the parameter uniforms and the scratch buffers this launcher owns (never the caller's). */
  dispose(): void {
    this.#d.dispose();
    this.#scratch = undefined;
    this.#rowScratch = undefined;
  }

  #key(kernel: string, method: DeriveMethod): string {
    return `${kernel}:${method}:wg${this.threads}`;
  }

  #shape(op: string, args: DeriveShape): {
    method: DeriveMethod;
    out: number;
    in: number;
    k: number;
    wpr: number;
    latentRows: number;
  } {
    const method = args.method ?? "coupled";
    if (method !== "coupled" && method !== "standard") {
      throw new TypeError(`${op}: expected method "coupled" or "standard", found ${String(method)}`);
    }
    checkInt(op, "out", args.out, 1, MAX_GRID);
    checkInt(op, "in", args.in, 1, MAX_GRID * 32);
    checkInt(op, "k", args.k, 1, 4);
    const { out, in: inF, k } = args;
    return {
      method,
      out,
      in: inF,
      k,
      wpr: Math.ceil(inF / 32),
      latentRows: method === "standard" ? k * out : out,
    };
  }

  /** Binds a (rows, width) view after checking its stride is at least its width. */
  #rows(op: string, name: string, view: GpuView, rows: number, width: number): BoundView {
    const stride = strideOf(view, width);
    if (rows > 1 && stride < width) {
      throw new RangeError(`${op}: expected ${name}.stride ≥ ${width} (its row width), found ${stride}`);
    }
    checkInt(op, `${name}.offset`, offsetOf(view), 0, 2 ** 32);
    return this.#d.bindRows(op, name, view, rows, width);
  }

  /** A view of `words` words of the launcher-owned scratch buffer of column sums (grown, never shrunk). */
  #scratchView(words: number): GpuView {
    if (!this.#scratch || this.#scratch.size < words * 4) this.#scratch = this.#newScratch("scratch", words);
    return { buffer: this.#scratch };
  }

  /** A view of `words` words of the launcher-owned scratch buffer of the serial row sums. */
  #rowScratchView(words: number): GpuView {
    if (!this.#rowScratch || this.#rowScratch.size < words * 4) {
      this.#rowScratch = this.#newScratch("row scratch", words);
    }
    return { buffer: this.#rowScratch };
  }

  #newScratch(label: string, words: number): GPUBuffer {
    // The old buffer stays owned (freed by dispose): recorded passes may still bind it.
    return this.#d.own(
      this.ctx.device.createBuffer({
        label: `WebGpuDerive:${label}`,
        size: Math.max(16, words * 4),
        usage: GPUBufferUsage.STORAGE,
      }),
    );
  }
}
