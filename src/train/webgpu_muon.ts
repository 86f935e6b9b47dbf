// Muon on WebGPU: records one optimizer step for a 2-D weight view into a caller's compute pass, the GPU
// twin of src/train/muon.ts (whose header states the algorithm). Products run through the training GEMM
// (kernels/gemm_train.wgsl); the rest is four small kernels (muon_momentum, muon_normalize, muon_diag,
// muon_apply). Everything is one pass: no copies, no readback.
//
// Dimension legend: rows × cols the matrix (W is (out, in)), n = rows · cols, s = min(rows, cols).
// Scratch (owned, reused by every tensor, grown to the largest seen or reserved): X0, X1 (n) the
// Newton–Schulz ping-pong, A, B (s, s) the Gram matrix and the polynomial, partial sums of ‖U‖_F².
// X stays in W's (rows, cols) layout; a tall matrix (rows > cols) runs the wide iteration on Xᵀ through the
// GEMM's transpose flags: A = Xᵀ·X and X ← X·Bᵀ, which is (B·Xᵀ)ᵀ.
// Per Newton–Schulz step: A = X·Xᵀ (GEMM), B = b·A + a·I (muon_diag), B += c·A·A (GEMM), X' = B·X (GEMM):
// the a·X term is folded into B's diagonal, (a·I + b·A + c·A²)·X = a·X + (b·A + c·A²)·X.

import { createStorageBuffer, createUniformBuffer, type GpuContext } from "../backend/webgpu/device.ts";
import {
  checkInt,
  Dispatcher,
  endOf,
  type GpuView,
  MAX_GRID,
  offsetOf,
  strideOf,
} from "../backend/webgpu/dispatch.ts";
import { WebGpuGemm } from "../backend/webgpu/gemm.ts";
import { KERNELS } from "../backend/webgpu/kernels.gen.ts";
import { muonScale, NS_COEFFICIENTS } from "./muon.ts";

/** Arguments of {@link WebGpuMuon.step}: the views and the hyperparameters other than the learning rate. */
export interface GpuMuonArgs {
  /** (rows, cols) weights, updated in place. */
  w: GpuView;
  /** (rows, cols) gradient, read. */
  g: GpuView;
  /** (rows, cols) momentum buffer, updated in place; in a buffer other than g's. */
  m: GpuView;
  rows: number;
  cols: number;
  /** Momentum μ (default 0.95). */
  momentum?: number;
  /** Nesterov momentum (default true). */
  nesterov?: boolean;
  /** Decoupled weight decay: w ← w·(1 − lr·wd) (default 0). */
  weightDecay?: number;
  /** Newton–Schulz iterations (default 5). */
  nsSteps?: number;
  /**
   * Matrices of this shape updated by this one step (default 1): matrix z of w, g and m starts
   * z · `batch` words after the views' offsets. Each matrix gets its own momentum norm and Newton–Schulz
   * iteration, exactly as `count` separate steps, in ~4 + 4·nsSteps dispatches instead of `count` times
   * as many (a model's layers of one kind share a shape: one batched step each).
   */
  count?: number;
  /** Words between the matrices of a batch (required when count > 1; at least the matrix's extent). */
  batch?: number;
}

/** Options of {@link WebGpuMuon.create}. */
export interface WebGpuMuonOptions {
  /** The GEMM to run the products with (default: a new one, disposed with this optimizer). */
  gemm?: WebGpuGemm;
  /** Small workgroups for CPU adapters (default: the GEMM's `compact`). */
  compact?: boolean;
  /** Initial learning rate (default 0; see {@link WebGpuMuon.setLearningRate}). */
  lr?: number;
}

/** Most partial sums of ‖U‖_F² (workgroups of muon_momentum), re-summed by every normalize workgroup. */
const MAX_PARTS = 256;
/** Most workgroups of the grid-stride elementwise kernels. */
const MAX_GROUPS = 1024;

interface Scratch {
  x: [GPUBuffer, GPUBuffer];
  a: GPUBuffer;
  b: GPUBuffer;
  partial: GPUBuffer;
  /** Capacity of x (elements), of a, b (elements) and of partial (elements). */
  n: number;
  gram: number;
  parts: number;
}

/**
 * Muon steps on one device. {@link step} records the ~3 + 4·nsSteps dispatches of one tensor's update;
 * record every 2-D tensor of a training step into one pass and submit once.
 *
 * The learning rate is a uniform shared by all steps this object records: {@link setLearningRate} writes
 * it with queue.writeBuffer, so the GPU sees the value set last before the submit (set it before
 * submitting a step; a schedule changes it between submits without new bind groups).
 *
 * @example
 * ```ts ignore
 * const muon = await WebGpuMuon.create(ctx);
 * muon.setLearningRate(0.02);
 * const enc = ctx.device.createCommandEncoder();
 * const pass = enc.beginComputePass();
 * muon.step(pass, { w: { buffer: w }, g: { buffer: grad }, m: { buffer: mom }, rows: 172, cols: 64 });
 * pass.end();
 * ctx.device.queue.submit([enc.finish()]);
 * ```
 */
export class WebGpuMuon {
  readonly ctx: GpuContext;
  /** The GEMM the products run through. */
  readonly gemm: WebGpuGemm;
  /** Threads of the elementwise kernels. */
  readonly threads: number;
  readonly #d: Dispatcher;
  readonly #ownsGemm: boolean;
  readonly #hyper: GPUBuffer;
  readonly #hyperData = new Float32Array(4);
  #scratch?: Scratch;

  private constructor(ctx: GpuContext, gemm: WebGpuGemm, ownsGemm: boolean, compact: boolean) {
    this.ctx = ctx;
    this.gemm = gemm;
    this.#ownsGemm = ownsGemm;
    this.threads = compact ? 64 : 256;
    this.#d = new Dispatcher(ctx, "WebGpuMuon");
    this.#hyper = this.#d.own(createUniformBuffer(ctx, "muon:hyper", this.#hyperData));
  }

  /** Compiles the kernels (and a GEMM unless one is given). */
  static async create(ctx: GpuContext, options: WebGpuMuonOptions = {}): Promise<WebGpuMuon> {
    const gemm = options.gemm ?? await WebGpuGemm.create(ctx, { compact: options.compact });
    const muon = new WebGpuMuon(ctx, gemm, !options.gemm, options.compact ?? gemm.compact);
    const WG = muon.threads;
    for (const name of ["muon_momentum", "muon_normalize", "muon_diag", "muon_apply"] as const) {
      await muon.#d.compile(`${name}:wg${WG}`, KERNELS[name], { WG });
    }
    if (options.lr !== undefined) muon.setLearningRate(options.lr);
    return muon;
  }

  /** The learning rate the next submitted steps use (queue.writeBuffer of 16 bytes). */
  setLearningRate(lr: number): void {
    if (!Number.isFinite(lr) || lr < 0) {
      throw new RangeError(`WebGpuMuon: expected a finite learning rate ≥ 0, found ${lr}`);
    }
    this.#hyperData[0] = lr;
    this.ctx.device.queue.writeBuffer(this.#hyper, 0, this.#hyperData);
  }

  /** The learning rate set last. */
  get learningRate(): number {
    return this.#hyperData[0];
  }

  /**
   * Sizes the scratch for `count` matrices (a batched step) up to rows × cols (either orientation) now,
   * so that later steps allocate nothing; steps grow it on demand otherwise (the old scratch is kept until
   * dispose, since recorded commands may still use it).
   */
  reserve(rows: number, cols: number, count = 1): void {
    checkInt("WebGpuMuon.reserve", "rows", rows);
    checkInt("WebGpuMuon.reserve", "cols", cols);
    checkInt("WebGpuMuon.reserve", "count", count, 1, MAX_GRID);
    const n = count * rows * cols, gram = count * Math.min(rows, cols) ** 2, parts = count * MAX_PARTS;
    const s = this.#scratch;
    if (s && s.n >= n && s.gram >= gram && s.parts >= parts) return;
    const N = Math.max(n, s?.n ?? 0), G = Math.max(gram, s?.gram ?? 0), P = Math.max(parts, s?.parts ?? 0);
    const make = (label: string, words: number) =>
      this.#d.own(createStorageBuffer(this.ctx, `muon:${label}`, words * 4));
    this.#scratch = {
      x: [make("x0", N), make("x1", N)],
      a: make("gram", G),
      b: make("poly", G),
      partial: make("partial", P),
      n: N,
      gram: G,
      parts: P,
    };
  }

  /** Bytes of scratch held now (the latest set; earlier, smaller sets stay until dispose). */
  get scratchBytes(): number {
    const s = this.#scratch;
    return (s ? 2 * s.n + 2 * s.gram + s.parts : 0) * 4;
  }

  /** Records one Muon step on w with gradient g and momentum m (see src/train/muon.ts). */
  step(pass: GPUComputePassEncoder, args: GpuMuonArgs): void {
    const op = "muon";
    const { w, g, m, rows, cols } = args;
    checkInt(op, "rows", rows);
    checkInt(op, "cols", cols);
    const mu = args.momentum ?? 0.95, nesterov = args.nesterov ?? true, wd = args.weightDecay ?? 0;
    const steps = args.nsSteps ?? 5;
    if (!(mu >= 0 && mu < 1)) throw new RangeError(`${op}: expected momentum in [0, 1), found ${mu}`);
    if (!Number.isFinite(wd) || wd < 0) {
      throw new RangeError(`${op}: expected a finite weightDecay ≥ 0, found ${wd}`);
    }
    checkInt(op, "nsSteps", steps, 0, 100);
    const count = args.count ?? 1;
    checkInt(op, "count", count, 1, MAX_GRID);
    const batch = count > 1 ? args.batch : 0;
    if (batch === undefined) throw new RangeError(`${op}: a batch of ${count} matrices needs batch (words)`);
    this.reserve(rows, cols, count);
    const s = this.#scratch!;
    const WG = this.threads, n = rows * cols;
    if (n >= 2 ** 31) throw new RangeError(`${op}: expected rows · cols < 2^31, found ${n}`);
    const groups = (limit: number) => Math.max(1, Math.min(limit, Math.ceil(n / WG)));
    const f32 = (p: Uint32Array, i: number, v: number) => (new Float32Array(p.buffer)[i] = v);

    // m ← μ·m + g; X0 = U; partial sums of U².
    this.#stride(op, "g", g, cols);
    this.#stride(op, "m", m, cols);
    this.#stride(op, "w", w, cols);
    this.#d.distinct(op, [m], [g]);
    this.#d.distinct(op, [w], []);
    if (count > 1) {
      // Matrices of a batch must not overlap in any of the three views.
      const extent = (v: GpuView) => endOf(v, rows, cols) - offsetOf(v);
      checkInt(op, "batch", batch, Math.max(extent(w), extent(g), extent(m)), 2 ** 31);
    }
    // A view of a whole batch: the first matrix's rows through the last one's.
    const span = (name: string, v: GpuView) =>
      this.#d.bind(op, name, v, endOf(v, rows, cols) + (count - 1) * batch);
    const parts = groups(MAX_PARTS);
    const gB = span("g", g);
    const mB = span("m", m);
    const x0 = this.#d.bind(op, "x0", { buffer: s.x[0] }, count * n);
    const pB = this.#d.bind(op, "partial", { buffer: s.partial }, count * parts);
    const momentumParams = new Uint32Array([
      rows,
      cols,
      gB.shift,
      strideOf(g, cols),
      mB.shift,
      strideOf(m, cols),
      parts,
      nesterov ? 1 : 0,
      0, // mu
      batch,
      0,
      0,
    ]);
    f32(momentumParams, 8, mu);
    const momentumB = [gB.binding, mB.binding, x0.binding, pB.binding];
    this.#launch(pass, "muon_momentum", momentumParams, momentumB, parts, count);

    // X0 /= ‖X0‖_F + 1e-7.
    const ng = groups(MAX_GROUPS);
    const normalizeParams = new Uint32Array([n, parts, ng, 0]);
    this.#launch(pass, "muon_normalize", normalizeParams, [pB.binding, x0.binding], ng, count);

    // Newton–Schulz on the wide orientation.
    const [ca, cb, cc] = NS_COEFFICIENTS;
    const tall = rows > cols, side = Math.min(rows, cols), long = Math.max(rows, cols);
    const gram = { buffer: s.a }, poly = { buffer: s.b };
    const diagParams = new Uint32Array([
      side,
      Math.max(1, Math.min(MAX_GROUPS, Math.ceil(side * side / WG))),
      0,
      0,
    ]);
    f32(diagParams, 2, ca);
    f32(diagParams, 3, cb);
    const g2 = side * side;
    const diagB = [this.#d.bind(op, "gram", gram, count * g2).binding];
    diagB.push(this.#d.bind(op, "poly", poly, count * g2).binding);
    // The products of a batch: matrix z of X at z·n, of A and B at z·side².
    const xx = { count, a: n, b: n, c: g2 }, aa = { count, a: g2, b: g2, c: g2 };
    const bx = { count, a: g2, b: n, c: n }, xb = { count, a: n, b: g2, c: n };
    let cur = 0;
    for (let it = 0; it < steps; it++) {
      const x = { buffer: s.x[cur] }, next = { buffer: s.x[1 - cur] };
      // A (side, side) = X·Xᵀ (wide) or Xᵀ·X (tall).
      this.gemm.gemm(pass, {
        a: x,
        b: x,
        c: gram,
        M: side,
        N: side,
        K: long,
        transA: tall,
        transB: !tall,
        batch: xx,
      });
      this.#launch(pass, "muon_diag", diagParams, diagB, diagParams[1], count);
      // B += c·A·A.
      this.gemm.gemm(pass, {
        a: gram,
        b: gram,
        c: poly,
        M: side,
        N: side,
        K: side,
        alpha: cc,
        beta: 1,
        batch: aa,
      });
      // X' = B·X (wide) or X·Bᵀ (tall), both (rows, cols).
      if (tall) {
        this.gemm.gemm(pass, { a: x, b: poly, c: next, M: rows, N: cols, K: cols, transB: true, batch: xb });
      } else this.gemm.gemm(pass, { a: poly, b: x, c: next, M: rows, N: cols, K: rows, batch: bx });
      cur = 1 - cur;
    }

    // w ← w·(1 − lr·wd) − lr·0.2·sqrt(max(rows, cols))·X.
    const wB = span("w", w);
    const xB = this.#d.bind(op, "x", { buffer: s.x[cur] }, count * n);
    const applyParams = new Uint32Array([rows, cols, wB.shift, strideOf(w, cols), ng, 0, 0, batch]);
    f32(applyParams, 5, wd);
    f32(applyParams, 6, muonScale(rows, cols));
    this.#launch(
      pass,
      "muon_apply",
      applyParams,
      [{ buffer: this.#hyper }, xB.binding, wB.binding],
      ng,
      count,
    );
  }

  /** Bind groups cached so far by this optimizer's own kernels (the GEMM has its own). */
  get cachedBindGroups(): number {
    return this.#d.cachedBindGroups;
  }

  /** Forgets cached bind groups (after the caller frees buffers they reference). */
  clearCache(): void {
    this.#d.clearCache();
    this.gemm.clearCache();
  }

  /** Frees the scratch, the uniforms, and the GEMM when this optimizer created it. */
  dispose(): void {
    this.#scratch = undefined;
    this.#d.dispose();
    if (this.#ownsGemm) this.gemm.dispose();
  }

  #stride(op: string, name: string, v: GpuView, cols: number): void {
    const st = strideOf(v, cols);
    if (!Number.isInteger(st) || st < cols) {
      throw new RangeError(`${op}: expected ${name}.stride to be an integer ≥ ${cols}, found ${st}`);
    }
  }

  #launch(
    pass: GPUComputePassEncoder,
    kernel: string,
    params: Uint32Array,
    resources: GPUBufferBinding[],
    groups: number,
    count: number,
  ): void {
    this.#d.launch(pass, `${kernel}:wg${this.threads}`, params, resources, groups, 1, count);
  }
}
