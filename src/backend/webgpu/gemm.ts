// Launcher of the training GEMM: C (M, N) = alpha · op(A) · op(B) + beta · C over strided views, recorded
// into a caller's compute pass. Three kernel families: "tiled" (kernels/gemm_train.wgsl, workgroup-memory
// tiles, for GPUs); "texel" (kernels/gemm_pack.wgsl copies op(A) and op(B)ᵀ into rgba32float storage
// textures, kernels/gemm_texel.wgsl multiplies them with register tiles: for software adapters, where a
// texel load costs a fraction of a storage-buffer load); "direct" (kernels/gemm_direct.wgsl, register
// tiles reading the buffers with vec4 loads: software adapters without read-only storage textures).
// Per-adapter default geometry and a small autotuner that keeps the fastest geometry per shape class.
//
// Dimension legend: M rows of C, N columns of C, K the reduced dimension. A is stored (M, K), or (K, M)
// when transA; B is stored (K, N), or (N, K) when transB; a view's stride is its stored row stride.
// The training products: forward y (T, out) = x (T, in) · Wᵀ (transB); dX (T, in) += dY (T, out) · W
// (beta 1); dW (out, in) += dYᵀ · x (transA, beta 1).

import {
  createStorageBuffer,
  createUniformBuffer,
  getPipeline,
  type GpuContext,
  isCpuAdapter,
} from "./device.ts";
import {
  type BoundView,
  checkInt,
  Dispatcher,
  endOf,
  type GpuView,
  grid2d,
  MAX_GRID,
  offsetOf,
  strideOf,
} from "./dispatch.ts";
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

/**
 * Geometry of the texel family (kernels/gemm_texel.wgsl): TM × TN outputs of C per invocation, WG
 * invocations per workgroup, reading op(A) and op(B)ᵀ from textures that kernels/gemm_pack.wgsl fills
 * (two small dispatches before each product).
 */
export interface TexelGemmGeometry {
  kind: "texel";
  TM: number;
  TN: number;
  WG: number;
}

/** Geometry of one GEMM pipeline: which kernel family and its tile sizes. */
export type GemmGeometry = TiledGemmGeometry | DirectGemmGeometry | TexelGemmGeometry;

/** GPU default: 64 × 64 tiles, 16 deep, 4 × 4 outputs per thread (256 threads, 8.3 KB of tiles). */
export const GPU_GEMM_GEOMETRY: TiledGemmGeometry = { kind: "tiled", BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };

/**
 * Software-adapter default where read-only storage textures are missing (see
 * {@link COMPACT_TEXEL_GEMM_GEOMETRY}): the direct family, 8 × 16 outputs per invocation. On
 * llvmpipe a workgroup barrier splits the shader into re-entered pieces and every storage or
 * workgroup-memory load is a per-lane scalar loop that costs more than the arithmetic, so what counts is
 * loads per fma: the direct kernel has none of the tiled kernel's staging and loads (TM + TN) vec4s per
 * 4 · TM · TN fmas. Measured on llvmpipe (LLVM 15, 256-bit, 2 shared cores; the training shapes of a
 * stories260K-like and a dim-512 model, interleaved, best of 5–7): 32×32×8 / 4×4 tiled 0.5–1.5
 * GFLOP/s; direct 8×8 3–11; 8×16 4.3–12.7 (geometric mean 11× the tiled kernel, 1.16–1.27× 8×8
 * over two runs); 16×8 alike, 16×16 a little faster again. Cold compile per variant (first dispatch, no
 * shader cache): 8×8 ~0.6 s, 8×16 and 16×8 ~2.2 s, 16×16 ~15 s, tiled 32×32×8 ~8 s; pass `geometry`
 * {@link DIRECT_GEMM_8X8} where compile time matters more than speed.
 */
export const COMPACT_GEMM_GEOMETRY: DirectGemmGeometry = { kind: "direct", TM: 8, TN: 16, WG: 16 };

/**
 * Software-adapter default where read-only storage textures exist (WGSL language feature
 * readonly_and_readwrite_storage_textures; llvmpipe has it through GL): the texel family, 8 × 16 outputs
 * per invocation. On llvmpipe (Mesa 22.3) a storage-buffer vec4 load is a per-lane loop of ~45
 * instructions per lane with a bounds branch per component, and a uniform-buffer load a per-lane gather
 * (~3 per lane and float; windows of 64 KiB), while a storage-texture texel is one masked 16-byte load per
 * lane and a 4 × 4 transpose (~1.3 per lane and float): the direct kernel spent ~3/4 of its time loading,
 * the texel kernel reaches ~80% of its no-load speed. The price is the packing, ~2.5 ns per float on one
 * core (a per-lane loop to read, one to write the texels), paid per product: it wins by the reuse of each
 * packed float (N / TN for op(A), M / TM for op(B)); smaller products keep a direct kernel
 * ({@link texelPays}). Measured against direct 8 × 16, packing included (LLVM 15, 256-bit lanes, 2
 * cores; the training shapes of stories260K at 512 and 1024 tokens and of a dim-512 model at 64, all
 * three transposes, interleaved rounds): 1.05–1.97×, geometric mean 1.42× over the 23 products the
 * texel family takes (e.g. 512×512×64 12.9 → 22.5 GFLOP/s, 64×4096×512 17.1 → 28.8, 4096×512×64 tn
 * 13.7 → 24.7); one core alike (1.21–1.80×, 1.43×). Loads through a uniform buffer at addresses that
 * do not vary across lanes are no cheaper: Mesa 22.3 only broadcasts compile-time-constant addresses,
 * and unrolling K to get them spills everything.
 * 8 × 16, 16 × 8, 16 × 16 and 8 × 8 are within ~10% of each other; 8 × 16 compiles in ~0.7 s cold (the
 * multiply kernel and two packing kernels; 16 × 16 ~1.8 s; direct 8 × 16 ~4.5 s for its four transposes).
 */
export const COMPACT_TEXEL_GEMM_GEOMETRY: TexelGemmGeometry = { kind: "texel", TM: 8, TN: 16, WG: 16 };

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
  /**
   * `count` products of the same shape in one call: product z reads A and B and writes C `z · a`, `z · b`
   * and `z · c` words after the views' offsets (strides ≥ 0; C's products must not overlap). The direct
   * family runs them as one dispatch (workgroups along z), which saves the per-dispatch cost of many
   * small products (Muon's Newton–Schulz over every layer); the other families record one product each.
   */
  batch?: GemmBatch;
}

/** Several same-shaped products of one {@link WebGpuGemm.gemm} call: their count and word strides. */
export interface GemmBatch {
  count: number;
  a: number;
  b: number;
  c: number;
}

/** Options of {@link WebGpuGemm.create}. */
export interface WebGpuGemmOptions {
  /**
   * Software adapter: the texel (else direct) family's default and tuner candidates (default: true for a
   * fallback adapter or one named llvmpipe etc.).
   */
  compact?: boolean;
  /**
   * The default geometry (default when compact: {@link COMPACT_TEXEL_GEMM_GEOMETRY} where the adapter
   * has read-only storage textures, else {@link COMPACT_GEMM_GEOMETRY}; on a GPU GPU_GEMM_GEOMETRY).
   */
  geometry?: GemmGeometry;
  /**
   * Texels (4 floats each) one operand texture of the texel family may hold (default: the adapter's
   * limit, 2048 × maxTextureDimension2D); a product whose packed op(A) or op(B)ᵀ needs more is split
   * along M or N. Smaller values exercise the split (tests).
   */
  maxTexels?: number;
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

/** Short key of a geometry, e.g. "64x64x16:4x4" (tiled), "d8x8w16" (direct) or "x16x16w16" (texel). */
export function geometryKey(g: GemmGeometry): string {
  if (g.kind === "tiled") return `${g.BM}x${g.BN}x${g.BK}:${g.TM}x${g.TN}`;
  return `${g.kind === "direct" ? "d" : "x"}${g.TM}x${g.TN}w${g.WG}`;
}

/** Threads per workgroup of a geometry. */
export function gemmThreads(g: GemmGeometry): number {
  return g.kind === "tiled" ? (g.BM / g.TM) * (g.BN / g.TN) : g.WG;
}

/** Workgroup memory (bytes) of a geometry's two tiles (0 for the direct and texel families). */
export function gemmTileBytes(g: GemmGeometry): number {
  return g.kind === "tiled" ? g.BK * (g.BM + 1 + g.BN + 1) * 4 : 0;
}

/** Throws a RangeError unless the geometry is consistent and fits the device's limits. */
export function validateGemmGeometry(ctx: GpuContext, g: GemmGeometry): void {
  const bad = (why: string) => new RangeError(`gemm geometry ${geometryKey(g)}: ${why}`);
  const fields = g.kind === "direct" || g.kind === "texel"
    ? (["TM", "TN", "WG"] as const).map((k) => [k, g[k]] as const)
    : g.kind === "tiled"
    ? (["BM", "BN", "BK", "TM", "TN"] as const).map((k) => [k, g[k]] as const)
    : null;
  if (!fields) {
    throw bad(
      `expected kind "tiled", "direct" or "texel", found ${JSON.stringify((g as { kind: unknown }).kind)}`,
    );
  }
  for (const [k, v] of fields) {
    const max = k === "WG" ? 65536 : 256;
    if (!Number.isInteger(v) || v < 1 || v > max) throw bad(`${k} must be an integer in [1, ${max}]`);
  }
  if (g.kind === "tiled" && (g.BM % g.TM !== 0 || g.BN % g.TN !== 0)) {
    throw bad("TM must divide BM and TN divide BN");
  }
  if (g.TM * g.TN > (g.kind === "tiled" ? 64 : 256)) throw bad("TM · TN registers exceed the limit");
  const wg = gemmThreads(g);
  if (wg > ctx.limits.maxComputeInvocationsPerWorkgroup || wg > ctx.limits.maxComputeWorkgroupSizeX) {
    throw bad(`${wg} threads exceed the adapter's ${ctx.limits.maxComputeInvocationsPerWorkgroup}`);
  }
  if (gemmTileBytes(g) > ctx.limits.maxComputeWorkgroupStorageSize) {
    throw bad(`${gemmTileBytes(g)} bytes of tiles exceed the adapter's workgroup memory`);
  }
}

/**
 * Geometries the tuner tries by default on a GPU (`compact` false) or a software adapter (the texel ones
 * are skipped where the adapter lacks read-only storage textures).
 */
export function gemmCandidates(compact: boolean): GemmGeometry[] {
  if (compact) {
    // Each costs seconds to compile on llvmpipe (see COMPACT_GEMM_GEOMETRY), the tiled one most.
    return [
      COMPACT_TEXEL_GEMM_GEOMETRY,
      { kind: "texel", TM: 16, TN: 8, WG: 16 },
      { kind: "texel", TM: 16, TN: 16, WG: 16 },
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

/**
 * Whether the kernel accesses A, B and C as vec4s: direct family, one pipeline variant each; texel family,
 * the packing of A and B ({@link texelPackVec4}) and the stores of C.
 */
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

/**
 * Whether kernels/gemm_pack.wgsl may read a view as vec4s: its offset and row stride are multiples of 4
 * words, and so is the extent along its stored rows (K when the packed matrix is stored k-contiguous,
 * else its row count).
 */
export function texelPackVec4(offset: number, ld: number, extent: number): boolean {
  return offset % 4 === 0 && ld % 4 === 0 && extent % 4 === 0;
}

/** Invocations per workgroup of kernels/gemm_pack.wgsl. */
const PACK_WG = 64;
/** Texture width (texels) of the texel family's operand textures, at most; a power of two. */
const TEXEL_WIDTH = 2048;

/** A shader that compiles only where read-only storage textures of rgba32float exist. */
const TEXEL_PROBE = "@group(0) @binding(0) var t: texture_storage_2d<rgba32float, read>;\n" +
  "@group(0) @binding(1) var<storage, read_write> o: array<vec4<f32>>;\n" +
  "@compute @workgroup_size(1) fn main() { o[0] = textureLoad(t, vec2<u32>(0u, 0u)); }";

/** Whether the adapter runs the texel family (read-only rgba32float storage textures in WGSL). */
export async function texelGemmSupported(ctx: GpuContext): Promise<boolean> {
  if (ctx.limits.maxStorageTexturesPerShaderStage < 2) return false;
  try {
    await getPipeline(ctx, "gemm_texel:probe", TEXEL_PROBE);
    return true;
  } catch {
    return false;
  }
}

/**
 * Bind groups of the texel family's dispatches, which bind textures (the shared Dispatcher binds buffers
 * only), cached by what they bind, each with its params uniform.
 */
class TexelBinder {
  readonly #ctx: GpuContext;
  readonly #groups = new Map<string, { bindGroup: GPUBindGroup; uniform: GPUBuffer }>();
  readonly #ids = new WeakMap<object, number>();
  #nextId = 1;

  constructor(ctx: GpuContext) {
    this.#ctx = ctx;
  }

  /** Records one dispatch: params uniform at binding 0, then `resources` at bindings 1, 2, …. */
  launch(
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    key: string,
    params: Uint32Array,
    resources: (GPUBufferBinding | GPUTextureView)[],
    x: number,
    y: number,
  ): void {
    const res = resources.map((r) =>
      "buffer" in r ? `${this.#id(r.buffer)}@${r.offset ?? 0}+${r.size ?? "all"}` : `t${this.#id(r)}`
    );
    const id = `${key}|${params.join(",")}|${res.join(";")}`;
    let group = this.#groups.get(id);
    if (!group) {
      // Dropped groups' uniforms are not destroyed: an encoder being recorded may still use them.
      if (this.#groups.size >= 4096) this.#groups.clear();
      const kernel = key.split(":")[0];
      const uniform = createUniformBuffer(this.#ctx, `${kernel}:params`, params);
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform } }];
      resources.forEach((r, i) => entries.push({ binding: i + 1, resource: r }));
      const bindGroup = this.#ctx.device.createBindGroup({
        label: `${kernel}:bind#${this.#groups.size}`,
        layout: pipeline.getBindGroupLayout(0),
        entries,
      });
      this.#groups.set(id, group = { bindGroup, uniform });
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group.bindGroup);
    pass.dispatchWorkgroups(x, y);
  }

  get size(): number {
    return this.#groups.size;
  }

  clear(): void {
    this.#groups.clear();
  }

  dispose(): void {
    for (const g of this.#groups.values()) g.uniform.destroy();
    this.#groups.clear();
  }

  #id(o: object): number {
    let id = this.#ids.get(o);
    if (id === undefined) this.#ids.set(o, id = this.#nextId++);
    return id;
  }
}

/** One operand texture of the texel family: rgba32float, TEXEL_WIDTH (or less) wide, grown on demand. */
interface OperandTexture {
  texture: GPUTexture;
  view: GPUTextureView;
  texels: number;
}

function bucket(n: number): number {
  return 2 ** Math.round(Math.log2(Math.max(1, n)));
}

/**
 * Whether the texel family beats the direct one on a product of this shape on a software adapter: its
 * packing (~1.3 ns per float of op(A) and op(B)ᵀ on 2 cores) and two more dispatches (~35 µs each on
 * llvmpipe, mostly waking its threads) must be paid back by the faster multiply (~0.04 ns per
 * multiply-add), which needs M · N · K ≥ 1.5 · 2^20 + 32 · (M + N) · K. Measured on llvmpipe: 64×64×64
 * and 32×32×32 products (Muon's) take 2–3× longer as texel; 512×64×64 and 64×64×512 break even;
 * 128×128×128 and 1024×64×64 and up are faster as texel.
 */
export function texelPays(s: GemmShape): boolean {
  return s.M * s.N * s.K >= 1.5 * 2 ** 20 + 32 * (s.M + s.N) * s.K;
}

/** Shape class the tuner keys its choice by: transposes and M, N, K rounded to powers of two. */
export function gemmShapeClass(s: GemmShape): string {
  return `${s.transA ? "t" : "n"}${s.transB ? "t" : "n"}:${bucket(s.M)}x${bucket(s.N)}x${bucket(s.K)}`;
}

/**
 * The training GEMM on one device. Pipelines of the default geometry are compiled by {@link create}
 * (all four transpose combinations); {@link gemm} records one product into a caller's compute pass (three
 * dispatches for the texel family: pack op(A), pack op(B)ᵀ, multiply).
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
  /** Software adapter: the texel (else direct) family by default, and its candidates in the tuner. */
  readonly compact: boolean;
  /** Whether the adapter runs the texel family (read-only rgba32float storage textures). */
  readonly texels: boolean;
  /** Geometry used for shape classes the tuner has not chosen for. */
  readonly defaultGeometry: GemmGeometry;
  readonly #d: Dispatcher;
  readonly #binder: TexelBinder;
  readonly #chosen = new Map<string, GemmGeometry>();
  /** log2 of the operand textures' width; texels one operand texture may hold. */
  readonly #wlog: number;
  readonly #maxTexels: number;
  /** Operand textures of the texel family (op(A), op(B)ᵀ), grown on demand; outgrown ones until dispose. */
  readonly #textures: { a?: OperandTexture; b?: OperandTexture } = {};
  readonly #retired: GPUTexture[] = [];

  private constructor(ctx: GpuContext, options: WebGpuGemmOptions, texels: boolean) {
    this.ctx = ctx;
    this.#d = new Dispatcher(ctx, "WebGpuGemm");
    this.#binder = new TexelBinder(ctx);
    this.compact = options.compact ?? isCpuAdapter(ctx);
    this.texels = texels;
    const compactDefault = texels ? COMPACT_TEXEL_GEMM_GEOMETRY : COMPACT_GEMM_GEOMETRY;
    this.defaultGeometry = options.geometry ?? (this.compact ? compactDefault : GPU_GEMM_GEOMETRY);
    validateGemmGeometry(ctx, this.defaultGeometry);
    const maxDim = ctx.limits.maxTextureDimension2D;
    this.#wlog = Math.floor(Math.log2(Math.min(TEXEL_WIDTH, maxDim)));
    this.#maxTexels = options.maxTexels ?? (2 ** this.#wlog) * maxDim;
    checkInt("WebGpuGemm", "maxTexels", this.#maxTexels, 1, (2 ** this.#wlog) * maxDim);
  }

  /** Compiles the default geometry's variants (all four transpose combinations) and returns the launcher. */
  static async create(ctx: GpuContext, options: WebGpuGemmOptions = {}): Promise<WebGpuGemm> {
    const g = new WebGpuGemm(ctx, options, await texelGemmSupported(ctx));
    await g.prepare(g.defaultGeometry);
    return g;
  }

  /**
   * Compiles `geometry` for the given transpose combinations (default all four). For the direct family,
   * each combination's all-scalar variant and its widest vec4 one (see {@link vec4Views}); the others
   * (vec4 access to some of the views only) compile on first use. The texel family has one multiply
   * kernel for every combination (the packing takes the transposes): its scalar and vec4 stores of C, and
   * the four packing kernels.
   */
  async prepare(geometry: GemmGeometry, combos: [boolean, boolean][] = COMBOS): Promise<void> {
    validateGemmGeometry(this.ctx, geometry);
    if (geometry.kind === "texel") {
      if (!this.texels) {
        throw new RangeError(
          `gemm geometry ${geometryKey(geometry)}: this adapter lacks read-only rgba32float storage ` +
            `textures (WGSL readonly_and_readwrite_storage_textures); use the direct family`,
        );
      }
      for (const vecC of geometry.TN % 4 === 0 ? [false, true] : [false]) {
        const vec: Vec4Views = [false, false, vecC];
        await this.#d.compile(
          this.#key(geometry, false, false, vec),
          this.kernelSource(geometry, false, false, vec),
        );
      }
      for (const trans of [false, true]) {
        for (const vec of [false, true]) await this.#d.compile(packKey(trans, vec), packSource(trans, vec));
      }
      return;
    }
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
   * The expanded WGSL of one variant; `vec` (direct family) selects vec4 access to A, B, C, which need the
   * view conditions {@link gemm} checks (offsets, strides and the contiguous extent multiples of 4). For
   * the texel family (the multiply kernel; transposes do not apply) only `vec[2]`, vec4 stores of C.
   */
  kernelSource(g: GemmGeometry, transA: boolean, transB: boolean, vec: Vec4Views = NO_VEC4): string {
    if (g.kind === "texel") {
      const TNS = g.TN % 4 === 0 ? 4 : g.TN;
      if (vec[2] && TNS !== 4) {
        throw new RangeError(`gemm geometry ${geometryKey(g)}: vec4 stores of C need TN a multiple of 4`);
      }
      return expandWgsl(KERNELS.gemm_texel, {
        name: "gemm_texel",
        values: { TM: g.TM, TN: g.TN, WG: g.WG, TNS, TNG: g.TN / TNS, VEC_C: vec[2] ? 1 : 0 },
      });
    }
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

  /**
   * The geometry {@link gemm} uses for a shape: the tuner's choice for its class, else the default; where
   * the default is a texel geometry, products too small to pay for the packing ({@link texelPays}) take
   * {@link DIRECT_GEMM_8X8} (compiled on first use, ~0.4 s per transpose combination and load variant
   * cold on llvmpipe; 8 × 16 runs these ~10% faster but compiles in twice the time, which CI pays).
   */
  geometryFor(shape: GemmShape): GemmGeometry {
    const chosen = this.#chosen.get(gemmShapeClass(shape));
    if (chosen) return chosen;
    const small = this.defaultGeometry.kind === "texel" && !texelPays(shape);
    return small ? DIRECT_GEMM_8X8 : this.defaultGeometry;
  }

  /** Sets the geometry of a shape's class (compile it first with {@link prepare}). */
  setGeometry(shape: GemmShape, geometry: GemmGeometry): void {
    const combo: [boolean, boolean] = [!!shape.transA, !!shape.transB];
    this.#d.pipeline(this.#key(geometry, ...combo, NO_VEC4), "call prepare(geometry) first");
    this.#chosen.set(gemmShapeClass(shape), geometry);
  }

  /**
   * Records C = alpha · op(A) · op(B) + beta · C. Tiled geometry: (ceil(N / BN), ceil(M / BM))
   * workgroups; direct and texel: ceil(ceil(M / TM) · ceil(N / TN) / WG) workgroups over x and y, with
   * vec4 access to the views that allow it (see {@link vec4Views}); texel: after packing op(A) and op(B)ᵀ
   * into the launcher's textures (which later products in the pass reuse: dispatches run in order).
   * A and B may be views of one buffer (both are read-only); C must be in another buffer.
   */
  gemm(pass: GPUComputePassEncoder, args: GemmArgs): void {
    this.#encode(this.#d, this.#binder, pass, args);
  }

  #encode(d: Dispatcher, binder: TexelBinder, pass: GPUComputePassEncoder, args: GemmArgs): void {
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
    const batch = args.batch;
    if (batch && batch.count !== 1) {
      this.#checkBatch(op, args, batch);
      if (g.kind !== "direct") {
        // One product per recorded call, each through the single-product path.
        for (let z = 0; z < batch.count; z++) {
          const at = (v: GpuView, stride: number): GpuView => ({ ...v, offset: offsetOf(v) + z * stride });
          this.#encode(d, binder, pass, {
            ...args,
            a: at(a, batch.a),
            b: at(b, batch.b),
            c: at(c, batch.c),
            batch: undefined,
          });
        }
        return;
      }
    }
    const count = batch?.count ?? 1;
    let gx: number, gy: number;
    if (g.kind === "tiled") {
      gx = Math.ceil(N / g.BN);
      gy = Math.ceil(M / g.BM);
    } else {
      const tiles = Math.ceil(M / g.TM) * Math.ceil(N / g.TN);
      [gx, gy] = grid2d(Math.ceil(tiles / g.WG));
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
    // A batch binds from the first product's start to the last one's end.
    const extra = (stride: number | undefined) => (count - 1) * (stride ?? 0);
    const aB = d.bind(op, "a", a, endOf(a, aRows, aWidth) + extra(batch?.a));
    const bB = d.bind(op, "b", b, endOf(b, bRows, bWidth) + extra(batch?.b));
    const cB = d.bind(op, "c", c, endOf(c, M, N) + extra(batch?.c));
    if (g.kind === "texel") {
      this.#encodeTexel(d, binder, pass, args, g, [aB, bB, cB], [lda, ldb, ldc]);
      return;
    }
    // Words 12..14: the batch strides of the direct kernel (the tiled kernel's struct ends before them).
    const params = new Uint32Array([
      M,
      N,
      K,
      aB.shift,
      lda,
      bB.shift,
      ldb,
      cB.shift,
      ldc,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
    ]);
    const f = new Float32Array(params.buffer);
    f[9] = alpha;
    f[10] = beta;
    if (batch && count > 1) params.set([batch.a, batch.b, batch.c], 12);
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
      // The small-product fallback of a texel default (geometryFor) compiles on first use; another
      // geometry must be prepared.
      if (args.geometry || g !== DIRECT_GEMM_8X8) {
        this.#d.pipeline(
          this.#key(g, transA, transB, NO_VEC4),
          `await gemm.prepare(${JSON.stringify(g)}) first`,
        );
      }
      // Another vec4 variant of a prepared direct geometry: compiled here, once (the template is the
      // prepared variants' own, so a WGSL error is not expected).
      d.pipelineOrCompile(key, () => this.kernelSource(g, transA, transB, vec));
    }
    d.launch(pass, key, params, resources, gx, gy, count);
  }

  #checkBatch(op: string, args: GemmArgs, batch: GemmBatch): void {
    checkInt(op, "batch.count", batch.count, 1, MAX_GRID);
    for (const name of ["a", "b", "c"] as const) checkInt(op, `batch.${name}`, batch[name], 0, 2 ** 31);
    const span = endOf(args.c, args.M, args.N) - offsetOf(args.c);
    if (batch.c < span) {
      throw new RangeError(
        `${op}: expected batch.c ≥ ${span} words (one C, so that the products do not overlap), found ${batch.c}`,
      );
    }
  }

  /**
   * The texel family: packs op(A) (M, K) and op(B)ᵀ (N, K) into the operand textures, then multiplies.
   * A packed operand larger than a texture splits the product along M or N (sub-views of A, B and C).
   */
  #encodeTexel(
    d: Dispatcher,
    binder: TexelBinder,
    pass: GPUComputePassEncoder,
    args: GemmArgs,
    g: TexelGemmGeometry,
    [aB, bB, cB]: BoundView[],
    [lda, ldb, ldc]: number[],
  ): void {
    const { a, b, c, M, N, K } = args;
    const transA = !!args.transA, transB = !!args.transB;
    const k4 = Math.ceil(K / 4);
    const fit = Math.floor(this.#maxTexels / k4);
    if (fit < 1) {
      throw new RangeError(
        `gemm: K = ${K} needs ${k4} texels per packed row, more than the ${this.#maxTexels} of an operand ` +
          `texture; split the product along K`,
      );
    }
    if (M > fit || N > fit) {
      // Rows s.. of op(A) and C, or columns s.. of op(B) and C: views with the original strides.
      const alongM = M > fit;
      for (let s = 0; s < (alongM ? M : N); s += fit) {
        const part = Math.min(fit, (alongM ? M : N) - s);
        const aOff = offsetOf(a) + (alongM ? (transA ? s : s * lda) : 0);
        const bOff = offsetOf(b) + (alongM ? 0 : (transB ? s * ldb : s));
        this.#encode(d, binder, pass, {
          ...args,
          M: alongM ? part : M,
          N: alongM ? N : part,
          a: { buffer: a.buffer, offset: aOff, stride: lda },
          b: { buffer: b.buffer, offset: bOff, stride: ldb },
          c: { buffer: c.buffer, offset: offsetOf(c) + (alongM ? s * ldc : s), stride: ldc },
          geometry: g,
        });
      }
      return;
    }
    const key = this.#key(g, false, false, NO_VEC4);
    this.#d.pipeline(key, `await gemm.prepare(${JSON.stringify(g)}) first`);
    // op(A) = A (M, K), or Aᵀ with A stored (K, M); op(B)ᵀ = Bᵀ (N, K) of B stored (K, N), or B (N, K).
    // When both are the same packing of the same view (a Gram matrix X·Xᵀ), one texture serves both.
    const texA = this.#texture("a", M * k4);
    this.#pack(binder, pass, aB, transA, M, K, lda, texA);
    const same = a.buffer === b.buffer && offsetOf(a) === offsetOf(b) && lda === ldb && M === N &&
      transA === !transB;
    const texB = same ? texA : this.#texture("b", N * k4);
    if (!same) this.#pack(binder, pass, bB, !transB, N, K, ldb, texB);
    const vecC = directVec4(offsetOf(c), ldc, N, g.TN);
    const params = new Uint32Array([M, N, k4, this.#wlog, cB.shift, ldc, 0, 0, N > M ? 1 : 0, 0, 0, 0]);
    const f = new Float32Array(params.buffer);
    f[6] = args.alpha ?? 1;
    f[7] = args.beta ?? 0;
    const tiles = Math.ceil(M / g.TM) * Math.ceil(N / g.TN);
    const [gx, gy] = grid2d(Math.ceil(tiles / g.WG));
    const mkey = this.#key(g, false, false, [false, false, vecC]);
    binder.launch(pass, this.#d.pipeline(mkey), mkey, params, [texA.view, texB.view, cB.binding], gx, gy);
  }

  /** Records the packing of P (rows, K) from a bound view (stored transposed when `trans`) into `tex`. */
  #pack(
    binder: TexelBinder,
    pass: GPUComputePassEncoder,
    view: BoundView,
    trans: boolean,
    rows: number,
    K: number,
    ld: number,
    tex: OperandTexture,
  ): void {
    const k4 = Math.ceil(K / 4);
    const vec = texelPackVec4(view.shift, ld, trans ? rows : K);
    // Work items: see kernels/gemm_pack.wgsl (four texels per invocation where the loads are vec4s).
    const items = vec ? (trans ? (rows / 4) * k4 : rows * Math.ceil(k4 / 4)) : rows * k4;
    const params = new Uint32Array([rows, K, k4, this.#wlog, view.shift, ld, items, 0]);
    const [gx, gy] = grid2d(Math.ceil(items / PACK_WG));
    const key = packKey(trans, vec);
    binder.launch(pass, this.#d.pipeline(key), key, params, [view.binding, tex.view], gx, gy);
  }

  /** The operand texture `role`, grown (to the next power-of-two row count) to hold `texels`. */
  #texture(role: "a" | "b", texels: number): OperandTexture {
    let t = this.#textures[role];
    if (!t || t.texels < texels) {
      if (t) this.#retired.push(t.texture);
      const width = 2 ** this.#wlog;
      const rows = Math.min(
        2 ** Math.ceil(Math.log2(Math.ceil(texels / width))),
        this.ctx.limits.maxTextureDimension2D,
      );
      const texture = this.ctx.device.createTexture({
        label: `WebGpuGemm:${role}-texels`,
        size: [width, rows],
        format: "rgba32float",
        usage: GPUTextureUsage.STORAGE_BINDING,
      });
      t = this.#textures[role] = { texture, view: texture.createView(), texels: width * rows };
    }
    return t;
  }

  /**
   * Which views a kernel accesses as vec4s for these arguments ([A, B, C]; all false for the tiled
   * family). Direct family: see {@link directVec4}; A and B also need K ≥ 4. The vec4 bindings are the
   * scalar ones: a binding's base is storage-aligned (a multiple of 16 bytes), so the word shift of a view
   * whose offset is a multiple of 4 is one too. Texel family: the packing's loads of A and B
   * ({@link texelPackVec4}) and the stores of C ({@link directVec4}).
   */
  vec4Views(args: GemmArgs, geometry: GemmGeometry = args.geometry ?? this.geometryFor(args)): Vec4Views {
    if (geometry.kind === "tiled") return NO_VEC4;
    const { a, b, c, M, N, K } = args;
    const transA = !!args.transA, transB = !!args.transB;
    const lda = strideOf(a, transA ? M : K), ldb = strideOf(b, transB ? K : N), ldc = strideOf(c, N);
    if (geometry.kind === "texel") {
      return [
        texelPackVec4(offsetOf(a), lda, transA ? M : K),
        texelPackVec4(offsetOf(b), ldb, transB ? K : N),
        directVec4(offsetOf(c), ldc, N, geometry.TN),
      ];
    }
    // A batch's later products start batch.a (b, c) words on: vec4 access needs those multiples of 4 too.
    const batch = args.batch && args.batch.count > 1 ? args.batch : { a: 0, b: 0, c: 0 };
    return [
      K >= 4 && batch.a % 4 === 0 && directVec4(offsetOf(a), lda, transA ? M : 0, geometry.TM),
      K >= 4 && batch.b % 4 === 0 && directVec4(offsetOf(b), ldb, transB ? 0 : N, geometry.TN),
      batch.c % 4 === 0 && directVec4(offsetOf(c), ldc, N, geometry.TN),
    ];
  }

  /**
   * Times each candidate geometry on `shape` (random operands in scratch buffers, interleaved rounds,
   * medians), keeps the fastest for the shape's class ({@link geometryFor}) and returns the timings.
   * Candidates that do not fit the device (or texel ones where the adapter lacks them) are skipped.
   */
  async tune(shape: GemmShape, options: GemmTuneOptions = {}): Promise<GemmTuneResult> {
    const { ctx } = this;
    const { M, N, K } = shape;
    const transA = !!shape.transA, transB = !!shape.transB;
    const candidates = (options.candidates ?? gemmCandidates(this.compact)).filter((g) => {
      try {
        validateGemmGeometry(ctx, g);
        return g.kind !== "texel" || this.texels;
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
    // A dispatcher and texture binder of its own: their bind groups and uniforms go with the scratch
    // buffers at the end (the compiled pipelines are shared through the context's pipeline cache).
    const d = new Dispatcher(ctx, "WebGpuGemm:tune");
    const binder = new TexelBinder(ctx);
    try {
      for (const g of candidates) {
        await this.prepare(g, [[transA, transB]]);
        if (g.kind === "texel") continue; // prepare compiled every variant, used through this.#d
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
          this.#encode(d, binder, pass, { ...views, M, N, K, transA, transB, geometry: g });
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
      binder.dispose();
      a.destroy();
      b.destroy();
      c.destroy();
    }
  }

  /** Bind groups cached so far (each with its params uniform). */
  get cachedBindGroups(): number {
    return this.#d.cachedBindGroups + this.#binder.size;
  }

  /** Forgets cached bind groups (after the caller frees buffers they reference). */
  clearCache(): void {
    this.#d.clearCache();
    this.#binder.clear();
  }

  /** Frees the parameter uniforms and operand textures this launcher created (never the caller's buffers). */
  dispose(): void {
    this.#d.dispose();
    this.#binder.dispose();
    for (const t of [this.#textures.a?.texture, this.#textures.b?.texture, ...this.#retired.splice(0)]) {
      t?.destroy();
    }
    this.#textures.a = this.#textures.b = undefined;
  }

  #key(g: GemmGeometry, transA: boolean, transB: boolean, vec: Vec4Views): string {
    if (g.kind === "texel") return `gemm_texel:${geometryKey(g)}:${vec[2] ? "v" : "s"}`;
    const t = `${transA ? "t" : "n"}${transB ? "t" : "n"}`;
    if (g.kind === "direct") {
      return `gemm_direct:${t}:${geometryKey(g)}:${vec.map((v) => (v ? "v" : "s")).join("")}`;
    }
    return `gemm_train:${t}:${geometryKey(g)}`;
  }
}

/** Pipeline key of a packing kernel (kernels/gemm_pack.wgsl). */
function packKey(trans: boolean, vec: boolean): string {
  return `gemm_pack:${trans ? "t" : "n"}${vec ? "v" : "s"}:w${PACK_WG}`;
}

/** The expanded WGSL of a packing kernel: P stored transposed (`trans`), vec4 loads (`vec`). */
function packSource(trans: boolean, vec: boolean): string {
  return expandWgsl(KERNELS.gemm_pack, {
    name: "gemm_pack",
    values: { TRANS: trans ? 1 : 0, VEC: vec ? 1 : 0, WG: PACK_WG },
  });
}
