// Launcher of the training GEMM: C (M, N) = alpha · op(A) · op(B) + beta · C over strided views, recorded
// into a caller's compute pass. Two kernel families: "tiled" (kernels/gemm_train.wgsl, workgroup-memory
// tiles, for GPUs) and "direct" (kernels/gemm_direct.wgsl, register tiles with vec4 loads, no workgroup
// memory or barriers, for software adapters); per-adapter default geometry and a small autotuner that keeps
// the fastest geometry per shape class in memory.
//
// Dimension legend: M rows of C, N columns of C, K the reduced dimension. A is stored (M, K), or (K, M)
// when transA; B is stored (K, N), or (N, K) when transB; a view's stride is its stored row stride.
// The training products: forward y (T, out) = x (T, in) · Wᵀ (transB); dX (T, in) += dY (T, out) · W
// (beta 1); dW (out, in) += dYᵀ · x (transA, beta 1).

import { createStorageBuffer, type GpuContext } from "./device.ts";
import { checkInt, Dispatcher, type GpuView, grid2d, MAX_GRID, offsetOf, strideOf } from "./dispatch.ts";
import { KERNELS } from "./kernels.gen.ts";
import { expandWgsl } from "./wgsl_template.ts";

/**
 * Geometry of the workgroup-memory family (kernels/gemm_train.wgsl): a BM × BN tile of C per workgroup,
 * staged BK deep, TM × TN outputs per thread.
 */
export interface TiledGemmGeometry {
  kind: "tiled";
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

/**
 * Geometry of the direct family (kernels/gemm_direct.wgsl): TM × TN outputs of C per invocation, read
 * straight from the operands (vec4 loads where the views allow), WG invocations per workgroup.
 */
export interface DirectGemmGeometry {
  kind: "direct";
  TM: number;
  TN: number;
  WG: number;
}

/** Geometry of one GEMM pipeline: which kernel family and its tile sizes. */
export type GemmGeometry = TiledGemmGeometry | DirectGemmGeometry;

/** GPU default: 64 × 64 tiles, 16 deep, 4 × 4 outputs per thread (256 threads, 8.3 KB of tiles). */
export const GPU_GEMM_GEOMETRY: TiledGemmGeometry = { kind: "tiled", BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };

/**
 * Software-adapter default (llvmpipe, SwiftShader): the direct family, 8 × 16 outputs per invocation. On
 * llvmpipe a workgroup barrier splits the shader into re-entered pieces and every storage or
 * workgroup-memory load is a per-lane scalar loop that costs more than the arithmetic, so what counts is
 * loads per fma: the direct kernel has none of the tiled kernel's staging and loads (TM + TN) vec4s per
 * 4 · TM · TN fmas. Measured on llvmpipe (LLVM 15, 256-bit, 2 shared cores; the training shapes of a
 * stories260K-like and a dim-512 model, interleaved, best of 5–7): 32×32×8 / 4×4 tiled 0.5–1.5 GFLOP/s;
 * direct 8×8 3–11; 8×16 4.3–12.7 (geometric mean 11× the tiled kernel, 1.16–1.27× 8×8 over two runs);
 * 16×8 alike, 16×16 a little faster again. Cold compile per variant (first dispatch, no shader cache): 8×8 ~0.6 s, 8×16 and 16×8
 * ~2.2 s, 16×16 ~15 s, tiled 32×32×8 ~8 s; pass `geometry` {@link DIRECT_GEMM_8X8} where compile time
 * matters more than speed.
 */
export const COMPACT_GEMM_GEOMETRY: DirectGemmGeometry = { kind: "direct", TM: 8, TN: 16, WG: 16 };

/** The direct family's cheapest-to-compile fast geometry: 8 × 8 outputs per invocation. */
export const DIRECT_GEMM_8X8: DirectGemmGeometry = { kind: "direct", TM: 8, TN: 8, WG: 16 };

/** The previous software-adapter default of the tiled family (a tuner candidate there). */
export const COMPACT_TILED_GEMM_GEOMETRY: TiledGemmGeometry = {
  kind: "tiled",
  BM: 32,
  BN: 32,
  BK: 8,
  TM: 4,
  TN: 4,
};

const CPU_ADAPTER = /llvmpipe|lavapipe|softpipe|swiftshader|warp/i;

/** One product's shape and transposes (what the tuner and the geometry choice look at). */
export interface GemmShape {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
}

/** Arguments of {@link WebGpuGemm.gemm}. */
export interface GemmArgs extends GemmShape {
  /** (M, K), or (K, M) when transA; stride = lda (default its width). */
  a: GpuView;
  /** (K, N), or (N, K) when transB; stride = ldb (default its width); may share a's buffer. */
  b: GpuView;
  /** (M, N), stride = ldc (default N), in a buffer other than a's and b's. */
  c: GpuView;
  /** Default 1. */
  alpha?: number;
  /** Default 0: C's old contents are not read (they may be NaN). */
  beta?: number;
  /** Force a geometry (it must be compiled: {@link WebGpuGemm.prepare}); default: tuned, else default. */
  geometry?: GemmGeometry;
}

/** Options of {@link WebGpuGemm.create}. */
export interface WebGpuGemmOptions {
  /**
   * Software adapter: the direct family's default and tuner candidates (default: true for a fallback
   * adapter or one named llvmpipe etc.).
   */
  compact?: boolean;
  /** The default geometry (default: {@link COMPACT_GEMM_GEOMETRY} when compact, else GPU_GEMM_GEOMETRY). */
  geometry?: GemmGeometry;
}

/** Options of {@link WebGpuGemm.tune}. */
export interface GemmTuneOptions {
  /** Geometries to time (default: {@link gemmCandidates} for this adapter class). */
  candidates?: GemmGeometry[];
  /** Timed rounds over all candidates; the median counts (default 5). */
  reps?: number;
  /** Wall time one timed batch should take, in ms (default 30). */
  batchMs?: number;
}

/** What {@link WebGpuGemm.tune} chose and measured (ms per product, by geometry key). */
export interface GemmTuneResult {
  shapeClass: string;
  geometry: GemmGeometry;
  ms: Record<string, number>;
}

/** Short key of a geometry, e.g. "64x64x16:4x4" (tiled) or "d8x8w16" (direct). */
export function geometryKey(g: GemmGeometry): string {
  return g.kind === "direct" ? `d${g.TM}x${g.TN}w${g.WG}` : `${g.BM}x${g.BN}x${g.BK}:${g.TM}x${g.TN}`;
}

/** Threads per workgroup of a geometry. */
export function gemmThreads(g: GemmGeometry): number {
  return g.kind === "direct" ? g.WG : (g.BM / g.TM) * (g.BN / g.TN);
}

/** Workgroup memory (bytes) of a geometry's two tiles (0 for the direct family). */
export function gemmTileBytes(g: GemmGeometry): number {
  return g.kind === "direct" ? 0 : g.BK * (g.BM + 1 + g.BN + 1) * 4;
}

/** Throws a RangeError unless the geometry is consistent and fits the device's limits. */
export function validateGemmGeometry(ctx: GpuContext, g: GemmGeometry): void {
  const bad = (why: string) => new RangeError(`gemm geometry ${geometryKey(g)}: ${why}`);
  const fields = g.kind === "direct"
    ? (["TM", "TN", "WG"] as const).map((k) => [k, g[k]] as const)
    : g.kind === "tiled"
    ? (["BM", "BN", "BK", "TM", "TN"] as const).map((k) => [k, g[k]] as const)
    : null;
  if (!fields) {
    throw bad(`expected kind "tiled" or "direct", found ${JSON.stringify((g as { kind: unknown }).kind)}`);
  }
  for (const [k, v] of fields) {
    const max = k === "WG" ? 65536 : 256;
    if (!Number.isInteger(v) || v < 1 || v > max) throw bad(`${k} must be an integer in [1, ${max}]`);
  }
  if (g.kind === "tiled" && (g.BM % g.TM !== 0 || g.BN % g.TN !== 0)) {
    throw bad("TM must divide BM and TN divide BN");
  }
  if (g.TM * g.TN > (g.kind === "direct" ? 256 : 64)) throw bad("TM · TN registers exceed the limit");
  const wg = gemmThreads(g);
  if (wg > ctx.limits.maxComputeInvocationsPerWorkgroup || wg > ctx.limits.maxComputeWorkgroupSizeX) {
    throw bad(`${wg} threads exceed the adapter's ${ctx.limits.maxComputeInvocationsPerWorkgroup}`);
  }
  if (gemmTileBytes(g) > ctx.limits.maxComputeWorkgroupStorageSize) {
    throw bad(`${gemmTileBytes(g)} bytes of tiles exceed the adapter's workgroup memory`);
  }
}

/** Geometries the tuner tries by default on a GPU (`compact` false) or a software adapter. */
export function gemmCandidates(compact: boolean): GemmGeometry[] {
  if (compact) {
    // Each costs seconds to compile on llvmpipe (see COMPACT_GEMM_GEOMETRY), the tiled one most.
    return [
      COMPACT_GEMM_GEOMETRY,
      DIRECT_GEMM_8X8,
      { kind: "direct", TM: 16, TN: 8, WG: 16 },
      { kind: "direct", TM: 8, TN: 16, WG: 8 },
      COMPACT_TILED_GEMM_GEOMETRY,
    ];
  }
  return [
    GPU_GEMM_GEOMETRY,
    { kind: "tiled", BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 },
    { kind: "tiled", BM: 128, BN: 64, BK: 16, TM: 8, TN: 4 },
    { kind: "tiled", BM: 64, BN: 64, BK: 8, TM: 4, TN: 4 },
    { kind: "tiled", BM: 32, BN: 32, BK: 16, TM: 2, TN: 2 },
    { kind: "tiled", BM: 64, BN: 64, BK: 16, TM: 8, TN: 8 },
    { kind: "direct", TM: 4, TN: 4, WG: 64 },
  ];
}

const COMBOS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

/** Whether the direct kernel accesses A, B and C as vec4s (one pipeline variant each). */
export type Vec4Views = readonly [boolean, boolean, boolean];
const NO_VEC4: Vec4Views = [false, false, false];

/**
 * Whether the direct kernel may access a view as vec4s: its offset and row stride are multiples of 4
 * words and, when its stored rows run along M or N (`extent` > 0: A transposed, B not, C), that extent and
 * the register tile's side `tile` along it are too, so that whole vec4 groups are in or out of the view.
 * `extent` 0: the rows run along K (vec4s cover K - K % 4; the kernel takes the tail with scalars).
 */
export function directVec4(offset: number, ld: number, extent: number, tile: number): boolean {
  if (offset % 4 !== 0 || ld % 4 !== 0) return false;
  return extent === 0 || (extent % 4 === 0 && tile % 4 === 0);
}

function bucket(n: number): number {
  return 2 ** Math.round(Math.log2(Math.max(1, n)));
}

/** Shape class the tuner keys its choice by: transposes and M, N, K rounded to powers of two. */
export function gemmShapeClass(s: GemmShape): string {
  return `${s.transA ? "t" : "n"}${s.transB ? "t" : "n"}:${bucket(s.M)}x${bucket(s.N)}x${bucket(s.K)}`;
}

/**
 * The training GEMM on one device. Pipelines of the default geometry are compiled by {@link create}
 * (all four transpose combinations); {@link gemm} records one dispatch into a caller's compute pass.
 *
 * @example
 * ```ts ignore
 * const gemm = await WebGpuGemm.create(ctx);
 * const enc = ctx.device.createCommandEncoder();
 * const pass = enc.beginComputePass();
 * // y (T, out) = x (T, in) · Wᵀ, then dW (out, in) += dYᵀ · x
 * gemm.gemm(pass, { a: { buffer: x }, b: { buffer: w }, c: { buffer: y }, M: T, N: out, K: inF, transB: true });
 * gemm.gemm(pass, { a: { buffer: dY }, b: { buffer: x }, c: { buffer: dW }, M: out, N: inF, K: T,
 *   transA: true, beta: 1 });
 * pass.end();
 * ctx.device.queue.submit([enc.finish()]);
 * ```
 */
export class WebGpuGemm {
  readonly ctx: GpuContext;
  /** Software adapter: the direct family by default, and its candidates in the tuner. */
  readonly compact: boolean;
  /** Geometry used for shape classes the tuner has not chosen for. */
  readonly defaultGeometry: GemmGeometry;
  readonly #d: Dispatcher;
  readonly #chosen = new Map<string, GemmGeometry>();

  private constructor(ctx: GpuContext, options: WebGpuGemmOptions) {
    this.ctx = ctx;
    this.#d = new Dispatcher(ctx, "WebGpuGemm");
    this.compact = options.compact ?? (ctx.isFallback || CPU_ADAPTER.test(ctx.adapterDescription));
    this.defaultGeometry = options.geometry ?? (this.compact ? COMPACT_GEMM_GEOMETRY : GPU_GEMM_GEOMETRY);
    validateGemmGeometry(ctx, this.defaultGeometry);
  }

  /** Compiles the default geometry's variants (all four transpose combinations) and returns the launcher. */
  static async create(ctx: GpuContext, options: WebGpuGemmOptions = {}): Promise<WebGpuGemm> {
    const g = new WebGpuGemm(ctx, options);
    await g.prepare(g.defaultGeometry);
    return g;
  }

  /**
   * Compiles `geometry` for the given transpose combinations (default all four). For the direct family,
   * each combination's all-scalar variant and its widest vec4 one (see {@link vec4Views}); the others
   * (vec4 access to some of the views only) compile on first use.
   */
  async prepare(geometry: GemmGeometry, combos: [boolean, boolean][] = COMBOS): Promise<void> {
    validateGemmGeometry(this.ctx, geometry);
    // One at a time: device error scopes are a stack, so concurrent compiles could misattribute errors.
    for (const [ta, tb] of combos) {
      const variants: Vec4Views[] = [NO_VEC4];
      if (geometry.kind === "direct") {
        // vec4s along M or N need TM or TN a multiple of 4.
        const alongN = geometry.TN % 4 === 0;
        variants.push([!ta || geometry.TM % 4 === 0, tb || alongN, alongN]);
      }
      for (const vec of variants) {
        await this.#d.compile(this.#key(geometry, ta, tb, vec), this.kernelSource(geometry, ta, tb, vec));
      }
    }
  }

  /**
   * The expanded WGSL of one variant; `vec` (direct family only) selects vec4 access to A, B, C, which
   * need the view conditions {@link gemm} checks (offsets, strides and the contiguous extent multiples of 4).
   */
  kernelSource(g: GemmGeometry, transA: boolean, transB: boolean, vec: Vec4Views = NO_VEC4): string {
    if (g.kind === "direct") {
      const [vecA, vecB, vecC] = vec;
      const TMS = g.TM % 4 === 0 ? 4 : g.TM, TNS = g.TN % 4 === 0 ? 4 : g.TN;
      if ((vecA && transA && TMS !== 4) || ((vecB && !transB) || vecC) && TNS !== 4) {
        throw new RangeError(
          `gemm geometry ${geometryKey(g)}: vec4 loads along M or N need TM or TN a multiple of 4`,
        );
      }
      return expandWgsl(KERNELS.gemm_direct, {
        name: "gemm_direct",
        values: {
          TM: g.TM,
          TN: g.TN,
          WG: g.WG,
          TMS,
          TNS,
          TMG: g.TM / TMS,
          TNG: g.TN / TNS,
          TRANS_A: transA ? 1 : 0,
          TRANS_B: transB ? 1 : 0,
          VEC_A: vecA ? 1 : 0,
          VEC_B: vecB ? 1 : 0,
          VEC_C: vecC ? 1 : 0,
          B4_BINDING: vecA ? 5 : 4,
        },
      });
    }
    const WG = gemmThreads(g);
    return expandWgsl(KERNELS.gemm_train, {
      name: "gemm_train",
      values: {
        BM: g.BM,
        BN: g.BN,
        BK: g.BK,
        TM: g.TM,
        TN: g.TN,
        TX: g.BN / g.TN,
        TY: g.BM / g.TM,
        WG,
        TA_WORDS: g.BK * (g.BM + 1),
        TB_WORDS: g.BK * (g.BN + 1),
        LOADS_A: Math.ceil((g.BM * g.BK) / WG),
        LOADS_B: Math.ceil((g.BN * g.BK) / WG),
        TRANS_A: transA ? 1 : 0,
        TRANS_B: transB ? 1 : 0,
      },
    });
  }

  /** The geometry {@link gemm} uses for a shape: the tuner's choice for its class, else the default. */
  geometryFor(shape: GemmShape): GemmGeometry {
    return this.#chosen.get(gemmShapeClass(shape)) ?? this.defaultGeometry;
  }

  /** Sets the geometry of a shape's class (compile it first with {@link prepare}). */
  setGeometry(shape: GemmShape, geometry: GemmGeometry): void {
    const combo: [boolean, boolean] = [!!shape.transA, !!shape.transB];
    this.#d.pipeline(this.#key(geometry, ...combo, NO_VEC4), "call prepare(geometry) first");
    this.#chosen.set(gemmShapeClass(shape), geometry);
  }

  /**
   * Records C = alpha · op(A) · op(B) + beta · C. Tiled geometry: (ceil(N / BN), ceil(M / BM))
   * workgroups; direct: ceil(ceil(M / TM) · ceil(N / TN) / WG) workgroups over x and y, with vec4 access
   * to the views that allow it (see {@link vec4Views}).
   * A and B may be views of one buffer (both are read-only); C must be in another buffer.
   */
  gemm(pass: GPUComputePassEncoder, args: GemmArgs): void {
    this.#encode(this.#d, pass, args);
  }

  #encode(d: Dispatcher, pass: GPUComputePassEncoder, args: GemmArgs): void {
    const op = "gemm";
    const { a, b, c, M, N, K } = args;
    const transA = !!args.transA, transB = !!args.transB;
    const alpha = args.alpha ?? 1, beta = args.beta ?? 0;
    checkInt(op, "M", M);
    checkInt(op, "N", N);
    checkInt(op, "K", K);
    if (!Number.isFinite(alpha) || !Number.isFinite(beta)) {
      throw new RangeError(`${op}: expected finite alpha and beta, found ${alpha} and ${beta}`);
    }
    const g = args.geometry ?? this.geometryFor(args);
    let gx: number, gy: number;
    if (g.kind === "direct") {
      const tiles = Math.ceil(M / g.TM) * Math.ceil(N / g.TN);
      [gx, gy] = grid2d(Math.ceil(tiles / g.WG));
    } else {
      gx = Math.ceil(N / g.BN);
      gy = Math.ceil(M / g.BM);
    }
    if (gx > MAX_GRID || gy > MAX_GRID) {
      throw new RangeError(
        `${op}: ${M} × ${N} needs ${gy} × ${gx} workgroups of geometry ${geometryKey(g)}, more than ` +
          `${MAX_GRID} per dimension; split the product`,
      );
    }
    d.distinct(op, [c], [a, b]);
    const [aRows, aWidth] = transA ? [K, M] : [M, K];
    const [bRows, bWidth] = transB ? [N, K] : [K, N];
    const lda = strideOf(a, aWidth), ldb = strideOf(b, bWidth), ldc = strideOf(c, N);
    for (const [name, ld, width] of [["lda", lda, aWidth], ["ldb", ldb, bWidth], ["ldc", ldc, N]] as const) {
      if (!Number.isInteger(ld) || ld < width) {
        throw new RangeError(`${op}: expected ${name} to be an integer ≥ ${width}, found ${ld}`);
      }
    }
    const aB = d.bindRows(op, "a", a, aRows, aWidth);
    const bB = d.bindRows(op, "b", b, bRows, bWidth);
    const cB = d.bindRows(op, "c", c, M, N);
    const params = new Uint32Array([M, N, K, aB.shift, lda, bB.shift, ldb, cB.shift, ldc, 0, 0, 0]);
    const f = new Float32Array(params.buffer);
    f[9] = alpha;
    f[10] = beta;
    const resources = [aB.binding, bB.binding, cB.binding];
    // The vec4 views are bound like the scalar ones: a binding's base is storage-aligned (a multiple of 16
    // bytes), so the shift of a view whose offset is a multiple of 4 words is one too.
    const vec = this.vec4Views(args, g);
    if (vec[0]) resources.push(aB.binding);
    if (vec[1]) resources.push(bB.binding);
    // Direct family: consecutive invocations (and workgroups, which a software adapter runs in order)
    // walk down M when B is the larger operand, so that each slice of B is read by all of M's tiles while
    // it is in cache and only the smaller A is read again per slice; else along N (measured: 1.2–2× on
    // the large-K products of a dim-512 model either way round).
    params[11] = g.kind === "direct" && N > M ? 1 : 0;
    const key = this.#key(g, transA, transB, vec);
    if (!d.has(key)) {
      this.#d.pipeline(
        this.#key(g, transA, transB, NO_VEC4),
        `await gemm.prepare(${JSON.stringify(g)}) first`,
      );
      // Another vec4 variant of a prepared direct geometry: compiled here, once (the template is the
      // prepared variants' own, so a WGSL error is not expected).
      d.pipelineOrCompile(key, () => this.kernelSource(g, transA, transB, vec));
    }
    d.launch(pass, key, params, resources, gx, gy);
  }

  /**
   * Which views the direct kernel accesses as vec4s for these arguments ([A, B, C]; all false for the
   * tiled family): see {@link directVec4}; A and B also need K ≥ 4. The vec4 bindings are the scalar
   * ones: a binding's base is storage-aligned (a multiple of 16 bytes), so the word shift of a view whose
   * offset is a multiple of 4 is one too.
   */
  vec4Views(args: GemmArgs, geometry: GemmGeometry = args.geometry ?? this.geometryFor(args)): Vec4Views {
    if (geometry.kind !== "direct") return NO_VEC4;
    const { a, b, c, M, N, K } = args;
    const transA = !!args.transA, transB = !!args.transB;
    const lda = strideOf(a, transA ? M : K), ldb = strideOf(b, transB ? K : N), ldc = strideOf(c, N);
    return [
      K >= 4 && directVec4(offsetOf(a), lda, transA ? M : 0, geometry.TM),
      K >= 4 && directVec4(offsetOf(b), ldb, transB ? 0 : N, geometry.TN),
      directVec4(offsetOf(c), ldc, N, geometry.TN),
    ];
  }

  /**
   * Times each candidate geometry on `shape` (random operands in scratch buffers, interleaved rounds,
   * medians), keeps the fastest for the shape's class ({@link geometryFor}) and returns the timings.
   * Candidates that do not fit the device are skipped.
   */
  async tune(shape: GemmShape, options: GemmTuneOptions = {}): Promise<GemmTuneResult> {
    const { ctx } = this;
    const { M, N, K } = shape;
    const transA = !!shape.transA, transB = !!shape.transB;
    const candidates = (options.candidates ?? gemmCandidates(this.compact)).filter((g) => {
      try {
        validateGemmGeometry(ctx, g);
        return true;
      } catch {
        return false;
      }
    });
    if (candidates.length === 0) throw new RangeError("gemm tune: no valid candidate geometry");
    const fill = (n: number) => Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 97) / 97 - 0.5);
    const a = createStorageBuffer(ctx, "gemm-tune.a", fill(M * K));
    const b = createStorageBuffer(ctx, "gemm-tune.b", fill(K * N));
    const c = createStorageBuffer(ctx, "gemm-tune.c", M * N * 4);
    const views = { a: { buffer: a }, b: { buffer: b }, c: { buffer: c } };
    // A dispatcher of its own: its bind groups and uniforms go with the scratch buffers at the end
    // (the compiled pipelines are shared through the context's pipeline cache).
    const d = new Dispatcher(ctx, "WebGpuGemm:tune");
    try {
      for (const g of candidates) {
        await this.prepare(g, [[transA, transB]]);
        // The contiguous operands may need a mixed load variant: compile it up front, in both dispatchers.
        const vec = this.vec4Views({ ...shape, ...views }, g);
        const key = this.#key(g, transA, transB, vec), code = this.kernelSource(g, transA, transB, vec);
        await this.#d.compile(key, code);
        await d.compile(key, code);
      }
      const run = async (g: GemmGeometry, n: number) => {
        const enc = ctx.device.createCommandEncoder({ label: "gemm-tune" });
        const pass = enc.beginComputePass({ label: "gemm-tune" });
        for (let i = 0; i < n; i++) {
          this.#encode(d, pass, { ...views, M, N, K, transA, transB, geometry: g });
        }
        pass.end();
        const t0 = performance.now();
        ctx.device.queue.submit([enc.finish()]);
        await ctx.device.queue.onSubmittedWorkDone();
        return (performance.now() - t0) / n;
      };
      // Warm every candidate once (the driver may compile on first use: seconds on llvmpipe), then double
      // the batch until the slowest candidate's batch takes batchMs: a submit has a fixed latency (~12 ms
      // on llvmpipe) that must not swamp the differences (it adds the same to every candidate's batch).
      for (const g of candidates) await run(g, 1);
      let n = 1;
      for (; n < 1024; n *= 2) {
        let slowest = 0;
        for (const g of candidates) slowest = Math.max(slowest, (await run(g, n)) * n);
        if (slowest >= (options.batchMs ?? 30)) break;
      }
      const samples = candidates.map(() => [] as number[]);
      for (let rep = 0; rep < (options.reps ?? 5); rep++) {
        for (let i = 0; i < candidates.length; i++) samples[i].push(await run(candidates[i], n));
      }
      const med = samples.map((s) => s.sort((x, y) => x - y)[s.length >> 1]);
      const ms: Record<string, number> = {};
      let best = 0;
      candidates.forEach((g, i) => {
        ms[geometryKey(g)] = med[i];
        if (med[i] < med[best]) best = i;
      });
      this.#chosen.set(gemmShapeClass(shape), candidates[best]);
      return { shapeClass: gemmShapeClass(shape), geometry: candidates[best], ms };
    } finally {
      d.dispose();
      a.destroy();
      b.destroy();
      c.destroy();
    }
  }

  /** Bind groups cached so far (each with its params uniform). */
  get cachedBindGroups(): number {
    return this.#d.cachedBindGroups;
  }

  /** Forgets cached bind groups (after the caller frees buffers they reference). */
  clearCache(): void {
    this.#d.clearCache();
  }

  /** Frees the parameter uniforms this launcher created (never the caller's buffers). */
  dispose(): void {
    this.#d.dispose();
  }

  #key(g: GemmGeometry, transA: boolean, transB: boolean, vec: Vec4Views): string {
    const t = `${transA ? "t" : "n"}${transB ? "t" : "n"}`;
    if (g.kind === "direct") {
      return `gemm_direct:${t}:${geometryKey(g)}:${vec.map((v) => (v ? "v" : "s")).join("")}`;
    }
    return `gemm_train:${t}:${geometryKey(g)}`;
  }
}
