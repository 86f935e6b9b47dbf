// Weight matmuls on WebGPU: uploading a linear layer (dense f32, fp16-storage, residual-binary packed, or
// int8 with per-row scales) into GPU buffers, and one launcher that records y (T, out) = x (T, in) Wᵀ (+ y)
// into a caller's compute pass: GEMV kernels for T = 1 (decode), token-tiled GEMM kernels for T > 1
// (prefill, evaluation).
// Launcher steps: validate shapes → cache key → bind → dispatch, through the shared dispatch layer
// (dispatch.ts): pipelines by key, bind groups and their parameter uniforms cached per (weight chunk,
// buffers, offsets, T), so repeated decode steps allocate nothing.
//
// Dimension legend: T tokens, out rows of W, in columns of W, k sign planes (packed; 1 otherwise).
// Device layouts (row-major; rows split into chunks that each fit one storage binding, one dispatch each):
//   f32     w (rows, ceil(in/4)) vec4<f32>, zero-padded columns
//   f16     w (rows, ceil(in/8)) vec4<u32>, two halves per u32, low half = even column, zero-padded
//   packed  planes (k, rows, ceil(in/128)) vec4<u32>: bitpack.ts words, each row padded with zero words to a
//           128-column multiple so it is read as whole vec4s; g (k, out) and h (k, ceil(in/128)·128) as fp16
//           pairs in u32 (low half = even index), h zero-padded. Scales are fp16 as in the .rabit file
//           (METHOD.md §8): a layer whose scales are not fp16 values is rounded to them here.
//   i8      q (rows, ceil(in/16)) vec4<u32>: int8 codes four per u32 (byte b of word j = column 4j + b, two's
//           complement), zero-padded columns; g (out) row scales as f32 (exactly quant/int8_rows.ts's);
//           h (ceil(in/16)·16) f32 column multipliers (ones, or a folded RMSNorm weight), zero-padded.
// Decode GEMVs read x (and a packed or i8 layer's h) through a uniform binding when it fits one: a software
// adapter (llvmpipe) loads storage buffers lane by lane even at uniform addresses, uniform buffers once.
// x then needs a buffer with UNIFORM usage (createStorageBuffer(..., GPUBufferUsage.UNIFORM)) and a
// 256-byte-aligned offset; otherwise the storage variant of the kernel runs.

import { createStorageBuffer, type GpuContext } from "./device.ts";
import { Dispatcher, type GpuView } from "./dispatch.ts";
import { KERNELS } from "./kernels.gen.ts";
import { type ResidualBinaryLinear, validateResidualBinary } from "../../quant/residual_binary.ts";
import { type Int8Rows, validateInt8Rows } from "../../quant/int8_rows.ts";
import { wordsPerRow } from "../../quant/bitpack.ts";
import { fromF16, toF16 } from "../../util/fp16.ts";
import {
  defaultGeometry,
  type MatmulGeometry,
  type MatmulOp,
  shapeClass,
  validateGeometry,
  WEIGHT_KINDS,
  type WeightKind,
} from "./matmul_geometry.ts";
import { tuneMatmul, type TuneOptions, type TuneResult } from "./matmul_tune.ts";
import { expandWgsl } from "./wgsl_template.ts";

export { defaultTuneCachePath, type TuneOptions, type TuneResult } from "./matmul_tune.ts";
export {
  DEFAULT_GEMM_GEOMETRY,
  DEFAULT_GEMV_GEOMETRY,
  FALLBACK_GEMM_GEOMETRY,
  FALLBACK_GEMV_GEOMETRY,
  type MatmulGeometry,
  type MatmulOp,
  WEIGHT_KINDS,
  type WeightKind,
} from "./matmul_geometry.ts";

/** A linear layer's weights on the host, by storage kind. */
export type LinearWeights =
  | { kind: "f32" | "f16"; w: Float32Array; out: number; in: number }
  | { kind: "packed"; layer: ResidualBinaryLinear }
  /** Int8 codes with per-row scales; `h` (in) multiplies x's columns first (default ones). */
  | { kind: "i8"; rows: Int8Rows; h?: Float32Array };

/** (out, in) of a layer's host weights. */
function shapeOf(weights: LinearWeights): { out: number; in: number } {
  if (weights.kind === "packed") return weights.layer;
  if (weights.kind === "i8") return weights.rows;
  return weights;
}

/** Rows [rowStart, rowStart + rows) of a layer in one buffer. */
export interface GpuChunk {
  readonly rowStart: number;
  readonly rows: number;
  readonly buffer: GPUBuffer;
}

/** A linear layer resident on the device. */
export interface GpuLinear {
  readonly label: string;
  readonly kind: WeightKind;
  readonly out: number;
  readonly in: number;
  /** Paths (packed), else 1. */
  readonly k: number;
  /** vec4 units per row in the chunk buffers (4 f32, 8 f16, 128 packed or 16 i8 columns). */
  readonly rowStride: number;
  /** Row chunks, each at most one storage binding; every chunk is one dispatch. */
  readonly chunks: readonly GpuChunk[];
  /**
   * Packed: (k, out) row scales and (k, hStride·8) column scales, fp16 pairs. i8: (out) row scales and
   * (hStride·8) column multipliers, f32.
   */
  readonly g?: GPUBuffer;
  readonly h?: GPUBuffer;
  /** Packed and i8: 8-column units per plane of h (vec4<u32> of fp16 packed, two vec4<f32> of i8). */
  readonly hStride: number;
  /** h also has UNIFORM usage and fits one uniform binding (packed and i8 GEMVs read it as uniform). */
  readonly hUniform: boolean;
  /**
   * Packed, when it fits one uniform binding: h as f32 (k, hStride·8), which decode GEMVs read instead
   * of h (unpacking fp16 scales costs ~10 % of a GEMV on llvmpipe; the copy adds 32·k/out bits per
   * weight, counted in `bytes`). i8, when h fits one uniform binding: h itself (it is f32 already).
   */
  readonly hF32?: GPUBuffer;
  /** Bytes of every buffer allocated for this layer (weights, scales, padding). */
  readonly bytes: number;
  destroy(): void;
}

/** Options of {@link uploadLinear}. */
export interface UploadLinearOptions {
  /** Largest chunk buffer in bytes (default and cap: the device's maxStorageBufferBindingSize). */
  maxBindingBytes?: number;
}

function padRows<A extends Uint32Array | Float32Array | Uint16Array | Int8Array>(
  src: A,
  rows: number,
  cols: number,
  stride: number,
): A {
  const out = new (src.constructor as new (n: number) => A)(rows * stride);
  for (let r = 0; r < rows; r++) out.set(src.subarray(r * cols, (r + 1) * cols), r * stride);
  return out;
}

/** The bits of an f32, for a uniform buffer written as u32s. */
function f32Bits(v: number): number {
  return new Uint32Array(new Float32Array([v]).buffer)[0];
}

/**
 * A linear layer whose input is RMS-normalized with weight `normWeight` (in), with that weight folded
 * into its columns: W diag(w) for dense layers, h ⊙ w for residual-binary and int8 ones (exact in real
 * numbers; the device then rounds W diag(w), or packed h ⊙ w, to its storage precision; int8 codes are
 * never re-quantized, so they stay those of the CPU reference). GEMVs then read the raw residual stream
 * and fuse the normalization (EncodeOptions.normEps).
 */
export function foldNormWeight(weights: LinearWeights, normWeight: Float32Array): LinearWeights {
  const inF = shapeOf(weights).in;
  if (normWeight.length !== inF) {
    throw new RangeError(
      `foldNormWeight: expected a norm weight of ${inF} values, found ${normWeight.length}`,
    );
  }
  if (weights.kind === "packed") {
    const h = weights.layer.h.slice();
    for (let i = 0; i < h.length; i++) h[i] *= normWeight[i % inF];
    return { kind: "packed", layer: { ...weights.layer, h } };
  }
  if (weights.kind === "i8") {
    const h = weights.h ? weights.h.slice() : new Float32Array(inF).fill(1);
    for (let i = 0; i < inF; i++) h[i] *= normWeight[i];
    return { ...weights, h };
  }
  const w = weights.w.slice();
  for (let r = 0; r < weights.out; r++) {
    for (let c = 0; c < inF; c++) w[r * inF + c] *= normWeight[c];
  }
  return { ...weights, w };
}

/** fp16 values packed two per u32 (low half = even index), padded to a whole word. */
function f16Words(values: Float32Array): Uint32Array {
  const halves = new Uint16Array(Math.ceil(values.length / 2) * 2);
  halves.set(toF16(values));
  return new Uint32Array(halves.buffer);
}

/**
 * Uploads one linear layer in the layout its kernels read (see the table at the top of this file).
 * Weights larger than one storage binding are split by rows into chunks.
 *
 * @example
 * ```ts ignore
 * const lin = uploadLinear(ctx, "wq", { kind: "f16", w, out: 4096, in: 4096 });
 * console.log(lin.bytes * 8 / (lin.out * lin.in), "bits per weight");
 * ```
 */
export function uploadLinear(
  ctx: GpuContext,
  label: string,
  weights: LinearWeights,
  options: UploadLinearOptions = {},
): GpuLinear {
  const maxBinding = Math.min(options.maxBindingBytes ?? Infinity, ctx.limits.maxStorageBufferBindingSize);
  const kind = weights.kind;
  if (kind === "packed") validateResidualBinary(weights.layer, `uploadLinear ${label}`);
  if (kind === "i8") validateInt8Rows(weights.rows, `uploadLinear ${label}`);
  const { out, in: inF } = shapeOf(weights);
  const k = kind === "packed" ? weights.layer.k : 1;
  if (!(out >= 1 && inF >= 1 && Number.isInteger(out) && Number.isInteger(inF))) {
    throw new RangeError(`uploadLinear ${label}: expected positive integer out and in, found ${out}x${inF}`);
  }
  if ((kind === "f32" || kind === "f16") && weights.w.length !== out * inF) {
    throw new RangeError(
      `uploadLinear ${label}: expected ${out}x${inF}=${out * inF} weights, found ${weights.w.length}`,
    );
  }
  if (kind === "i8" && weights.h && weights.h.length !== inF) {
    throw new RangeError(
      `uploadLinear ${label}: expected ${inF} column multipliers h, found ${weights.h.length}`,
    );
  }
  const rowStride = kind === "f32"
    ? Math.ceil(inF / 4)
    : kind === "f16"
    ? Math.ceil(inF / 8)
    : kind === "i8"
    ? Math.ceil(inF / 16)
    : Math.ceil(inF / 128);
  const rowBytes = rowStride * 16 * k; // a chunk holds its rows of every plane
  if (rowBytes > maxBinding) {
    throw new RangeError(
      `uploadLinear ${label}: one row of ${rowBytes} bytes exceeds a ${maxBinding}-byte binding`,
    );
  }
  const chunkRows = Math.floor(maxBinding / rowBytes);
  const buffers: GPUBuffer[] = [];
  const chunks: GpuChunk[] = [];
  let g: GPUBuffer | undefined, h: GPUBuffer | undefined, hF32: GPUBuffer | undefined, hUniform = false;
  const hStride = kind === "packed" ? rowStride * 16 : kind === "i8" ? rowStride * 2 : 0;
  try {
    if (kind === "i8") {
      g = createStorageBuffer(ctx, `${label}.g`, weights.rows.scales);
      buffers.push(g);
      const hPadded = new Float32Array(hStride * 8); // zero past the columns, like the codes
      if (weights.h) hPadded.set(weights.h);
      else hPadded.fill(1, 0, inF);
      hUniform = hPadded.byteLength <= ctx.limits.maxUniformBufferBindingSize;
      h = createStorageBuffer(ctx, `${label}.h`, hPadded, hUniform ? GPUBufferUsage.UNIFORM : 0);
      buffers.push(h);
      if (hUniform) hF32 = h; // already f32: the GEMV's uniform h is the buffer itself
    }
    if (kind === "packed") {
      const layer = weights.layer;
      const hPadded = new Float32Array(k * hStride * 8);
      for (let p = 0; p < k; p++) hPadded.set(layer.h.subarray(p * inF, (p + 1) * inF), p * hStride * 8);
      g = createStorageBuffer(ctx, `${label}.g`, f16Words(layer.g));
      buffers.push(g);
      const hHalves = toF16(hPadded); // k · hStride · 8 halves: a whole number of words
      const hWords = new Uint32Array(hHalves.buffer);
      hUniform = hWords.byteLength <= ctx.limits.maxUniformBufferBindingSize;
      h = createStorageBuffer(ctx, `${label}.h`, hWords, hUniform ? GPUBufferUsage.UNIFORM : 0);
      buffers.push(h);
      if (hPadded.byteLength <= ctx.limits.maxUniformBufferBindingSize) {
        // The fp16 values h holds, widened: both paths compute with the same scales.
        hF32 = createStorageBuffer(ctx, `${label}.h32`, fromF16(hHalves), GPUBufferUsage.UNIFORM);
        buffers.push(hF32);
      }
    }
    for (let rowStart = 0; rowStart < out; rowStart += chunkRows) {
      const rows = Math.min(chunkRows, out - rowStart);
      let data: Uint32Array | Float32Array;
      if (kind === "f32") {
        data = padRows(weights.w.subarray(rowStart * inF, (rowStart + rows) * inF), rows, inF, rowStride * 4);
      } else if (kind === "f16") {
        const halves = padRows(
          toF16(weights.w.subarray(rowStart * inF, (rowStart + rows) * inF)),
          rows,
          inF,
          rowStride * 8,
        );
        data = new Uint32Array(halves.buffer); // little-endian: the even column is the low half
      } else if (kind === "i8") {
        const codes = padRows(
          weights.rows.q.subarray(rowStart * inF, (rowStart + rows) * inF),
          rows,
          inF,
          rowStride * 16,
        );
        data = new Uint32Array(codes.buffer); // little-endian: column 4j + b is byte b of word j
      } else {
        const layer = (weights as { layer: ResidualBinaryLinear }).layer;
        const wpr = wordsPerRow(inF);
        data = new Uint32Array(k * rows * rowStride * 4);
        for (let p = 0; p < k; p++) {
          const plane = layer.planes.subarray((p * out + rowStart) * wpr, (p * out + rowStart + rows) * wpr);
          data.set(padRows(plane, rows, wpr, rowStride * 4), p * rows * rowStride * 4);
        }
      }
      const buffer = createStorageBuffer(ctx, `${label}[${rowStart}:${rowStart + rows}]`, data);
      buffers.push(buffer);
      chunks.push({ rowStart, rows, buffer });
    }
  } catch (e) {
    buffers.forEach((b) => b.destroy());
    throw e;
  }
  return {
    label,
    kind,
    out,
    in: inF,
    k,
    rowStride,
    chunks,
    g,
    h,
    hStride,
    hUniform,
    hF32,
    bytes: buffers.reduce((a, b) => a + b.size, 0),
    destroy: () => buffers.forEach((b) => b.destroy()),
  };
}

/** Options of {@link MatmulEngine.encode}. */
export interface EncodeOptions {
  /** y += x Wᵀ instead of y = x Wᵀ (residual adds). */
  accumulate?: boolean;
  /** Elements between tokens of x (default x.stride, else in) and of y (default y.stride, else out). */
  xStride?: number;
  yStride?: number;
  /**
   * GEMV only: x is the raw residual stream and the layer's columns already carry an RMSNorm weight
   * (foldNormWeight); the kernel scales each output by 1 / sqrt(mean(x²) + normEps). For T > 1, normalize
   * first (rmsnorm with unit weight) and leave this unset.
   */
  normEps?: number;
}

/** Options of {@link MatmulEngine.create}. */
export interface MatmulEngineOptions {
  /** Geometry to use instead of the defaults, per op and weight kind (autotuned choices still win). */
  geometry?: Partial<Record<MatmulOp, Partial<Record<WeightKind, MatmulGeometry>>>>;
}

/** What else than the geometry selects a kernel's code: template values of wgsl_template.ts. */
export interface KernelVariant {
  /** Planes (packed kernels), else 1. */
  k: number;
  /** vec4s of x read through a uniform binding (GEMV only), or 0 for storage x. */
  xUniform: number;
  /** vec4<u32>s of fp16 h read through a uniform binding (packed GEMV only), or 0 for storage h. */
  hUniform: number;
  /** vec4<f32>s of f32 h read through a uniform binding (packed and i8 GEMVs only), or 0. */
  hF32: number;
  /** GEMV only: 1 when the RMSNorm of x is fused (EncodeOptions.normEps). */
  norm: 0 | 1;
}

const STORAGE_VARIANT: KernelVariant = { k: 1, xUniform: 0, hUniform: 0, hF32: 0, norm: 0 };

const KERNEL = {
  gemv: { f32: "gemv_f32", f16: "gemv_f16", packed: "gemv_packed", i8: "gemv_i8" },
  gemm: { f32: "gemm_f32", f16: "gemm_f16", packed: "gemm_packed", i8: "gemm_i8" },
} as const satisfies Record<MatmulOp, Record<WeightKind, string>>;

// Bindings: 0 params, 1 the weight chunk, then x4, y, x1 at 2, 3, 4 (dense) or, after g = 2 and h = 3,
// at 4, 5, 6 (packed, i8). The uniform-x variants declare no x1.

/**
 * The WGSL of one kernel for a geometry and variant: the GEMM kernels' register arrays sized (MAX_RPT,
 * MAX_TT are `const` because WGSL sizes function-scope arrays with constant expressions only), the GEMV
 * templates expanded (unrolled rows and planes, uniform or storage x and h).
 */
export function kernelSource(
  name: string,
  geo: MatmulGeometry,
  variant: KernelVariant = STORAGE_VARIANT,
): string {
  const kernels = KERNELS as Readonly<Record<string, string>>;
  const code = kernels[name];
  if (code === undefined) throw new RangeError(`matmul: unknown kernel "${name}"`);
  const sized = code
    .replace(/const MAX_RPT: u32 = \d+u;/, `const MAX_RPT: u32 = ${geo.RPT}u;`)
    .replace(/const MAX_TT: u32 = \d+u;/, `const MAX_TT: u32 = ${geo.TT ?? 1}u;`);
  return expandWgsl(sized, {
    name,
    include: (fragment) => kernels[fragment],
    values: {
      RPT: geo.RPT,
      TT: geo.TT ?? 1,
      K: variant.k,
      X_UNIFORM: variant.xUniform > 0 ? 1 : 0,
      XN: Math.max(1, variant.xUniform),
      H_UNIFORM: variant.hUniform > 0 ? 1 : 0,
      HN: Math.max(1, variant.hF32 || variant.hUniform),
      H_F32: variant.hF32 > 0 ? 1 : 0,
      NORM: variant.norm,
    },
  });
}

function pipelineKey(name: string, geo: MatmulGeometry, xVec4: boolean, variant: KernelVariant): string {
  return `${name}:wg${geo.WG}:tpr${geo.TPR}:rpt${geo.RPT}${geo.TT ? `:tt${geo.TT}` : ""}:${
    xVec4 ? "x4" : "x1"
  }:k${variant.k}:xu${variant.xUniform}:hu${variant.hUniform}:hf${variant.hF32}${
    variant.norm ? ":norm" : ""
  }`;
}

function constantsOf(geo: MatmulGeometry, xVec4: boolean): Record<string, number> {
  const c: Record<string, number> = { WG: geo.WG, TPR: geo.TPR, RPT: geo.RPT, X_VEC4: xVec4 ? 1 : 0 };
  if (geo.TT !== undefined) c.TT = geo.TT;
  return c;
}

/**
 * Compiled matmul pipelines of one device and the launcher that records them.
 *
 * @example
 * ```ts ignore
 * const engine = await MatmulEngine.create(ctx);
 * await engine.tune(lin); // optional: pick the fastest geometry for this adapter and shape class
 * const pass = encoder.beginComputePass();
 * engine.encode(pass, lin, { buffer: x }, { buffer: y }, 1);
 * pass.end();
 * ```
 */
export class MatmulEngine {
  readonly ctx: GpuContext;
  /** Geometry per shape class chosen by {@link MatmulEngine.tune} (or set with {@link setGeometry}). */
  readonly tuned: Map<string, MatmulGeometry> = new Map();
  readonly #override: MatmulEngineOptions["geometry"];
  readonly #d: Dispatcher;

  private constructor(ctx: GpuContext, options: MatmulEngineOptions) {
    this.ctx = ctx;
    this.#override = options.geometry;
    this.#d = new Dispatcher(ctx, "MatmulEngine");
  }

  /**
   * Creates the engine and validates the default geometries. Kernels depend on the layer (planes, x and h
   * paths), so they are compiled by {@link prepare} per layer, or on first use.
   */
  static create(ctx: GpuContext, options: MatmulEngineOptions = {}): Promise<MatmulEngine> {
    const engine = new MatmulEngine(ctx, options);
    for (const op of ["gemv", "gemm"] as const) {
      for (const kind of WEIGHT_KINDS) {
        validateGeometry(ctx, op, engine.geometryFor(op, kind));
      }
    }
    return Promise.resolve(engine);
  }

  /** The geometry used for an op, weight kind and shape: tuned, else the option, else the default. */
  geometryFor(
    op: MatmulOp,
    kind: WeightKind,
    shape?: { out: number; in: number; k?: number },
  ): MatmulGeometry {
    if (shape) {
      const t = this.tuned.get(shapeClass(op, kind, shape));
      if (t) return t;
    }
    return this.#override?.[op]?.[kind] ?? defaultGeometry(this.ctx, op);
  }

  /** The unexpanded WGSL template (with the fragments it includes) of an op's kernel for a weight kind. */
  kernelTemplate(op: MatmulOp, kind: WeightKind): string {
    const kernels = KERNELS as Readonly<Record<string, string>>;
    const code = kernels[KERNEL[op][kind]];
    const fragments = [...code.matchAll(/^\s*\/\/#include\s+(\S+)/gm)].map((m) => kernels[m[1]] ?? "");
    return [code, ...fragments].join("\n");
  }

  /** Records a geometry for the shape class of (op, kind, shape), as tuning does. */
  setGeometry(
    op: MatmulOp,
    kind: WeightKind,
    shape: { out: number; in: number; k?: number },
    geo: MatmulGeometry,
  ) {
    validateGeometry(this.ctx, op, geo);
    this.tuned.set(shapeClass(op, kind, shape), geo);
  }

  /**
   * Times a few geometries for `lin`'s shape class (GEMV for T = 1, else GEMM) and keeps the fastest for
   * every later encode of that class on this engine.
   */
  tune(lin: GpuLinear, options: TuneOptions = {}): Promise<TuneResult> {
    return tuneMatmul(this, lin, options);
  }

  /** Compiles (inside an error scope) the pipeline of one kernel variant; cached per device. */
  async compile(
    op: MatmulOp,
    kind: WeightKind,
    geo: MatmulGeometry,
    xVec4: boolean,
    variant: KernelVariant = STORAGE_VARIANT,
  ): Promise<GPUComputePipeline> {
    const name = KERNEL[op][kind];
    const key = pipelineKey(name, geo, xVec4, variant);
    return await this.#d.compile(key, kernelSource(name, geo, variant), constantsOf(geo, xVec4));
  }

  /**
   * Compiles every pipeline `lin` may use for T tokens (storage x in both alignments, and uniform x when
   * its width fits a uniform binding), with the engine's geometry or `geometry`, so encode never compiles.
   */
  async prepare(
    lin: GpuLinear,
    T = 1,
    geometry?: MatmulGeometry,
    options: { norm?: boolean } = {},
  ): Promise<void> {
    const op: MatmulOp = T === 1 ? "gemv" : "gemm";
    const geo = geometry ?? this.geometryFor(op, lin.kind, lin);
    const norm = options.norm === true;
    const variants = [this.variantOf(op, lin, 0, norm)];
    const xn = Math.ceil(lin.in / 4);
    if (op === "gemv" && xn * 16 <= this.ctx.limits.maxUniformBufferBindingSize) {
      variants.push(this.variantOf(op, lin, xn, norm));
    }
    for (const variant of variants) {
      await this.compile(op, lin.kind, geo, true, variant);
      if (variant.xUniform === 0) await this.compile(op, lin.kind, geo, false, variant);
    }
  }

  /**
   * The kernel variant for `lin` with x read through a uniform binding of `xUniform` vec4s (0: storage),
   * and with the RMSNorm of x fused when `norm` (GEMV only).
   */
  variantOf(op: MatmulOp, lin: GpuLinear, xUniform: number, norm = false): KernelVariant {
    if (op === "gemm") return STORAGE_VARIANT; // the GEMM kernels take k at run time
    return {
      k: lin.kind === "packed" ? lin.k : 1,
      xUniform,
      hUniform: lin.kind === "packed" && lin.hUniform && !lin.hF32 ? lin.k * lin.hStride : 0,
      hF32: (lin.kind === "packed" || lin.kind === "i8") && lin.hF32 ? lin.k * lin.hStride * 2 : 0,
      norm: norm ? 1 : 0,
    };
  }

  /** vec4s of x to bind as uniform for a GEMV of `lin` reading x at element `xOff`, or 0 (storage). */
  #uniformX(lin: GpuLinear, x: GPUBuffer, xOff: number): number {
    const lim = this.ctx.limits, xn = Math.ceil(lin.in / 4);
    const ok = (x.usage & GPUBufferUsage.UNIFORM) !== 0 &&
      (xOff * 4) % lim.minUniformBufferOffsetAlignment === 0 &&
      xn * 16 <= lim.maxUniformBufferBindingSize && xOff * 4 + xn * 16 <= x.size;
    return ok ? xn : 0;
  }

  /**
   * How a matmul of `lin` over T tokens will read x from the view: through a uniform binding (GEMV, x in a
   * buffer with UNIFORM usage at a 256-byte-aligned offset, width within one uniform binding), as storage
   * vec4s (16-byte aligned token rows inside whole vec4s of the buffer), or as storage scalars.
   */
  xPath(lin: GpuLinear, x: GpuView, T: number, xStride = x.stride ?? lin.in): "uniform" | "vec4" | "scalar" {
    const xOff = x.offset ?? 0, xEnd = xOff + (T - 1) * xStride + lin.in;
    const vec4 = xOff % 4 === 0 && (T === 1 || xStride % 4 === 0) &&
      Math.ceil(xEnd / 4) * 16 <= x.buffer.size;
    if (!vec4) return "scalar";
    return T === 1 && this.#uniformX(lin, x.buffer, xOff) > 0 ? "uniform" : "vec4";
  }

  /** The pipeline of a kernel variant; not prepared, it is compiled synchronously on first use. */
  #pipeline(
    op: MatmulOp,
    kind: WeightKind,
    geo: MatmulGeometry,
    xVec4: boolean,
    variant: KernelVariant,
  ): string {
    const name = KERNEL[op][kind];
    const key = pipelineKey(name, geo, xVec4, variant);
    this.#d.pipelineOrCompile(key, () => kernelSource(name, geo, variant), constantsOf(geo, xVec4));
    return key;
  }

  /**
   * Records y (T, out) = x (T, in) Wᵀ (+ y) for every row chunk of `lin`: GEMV for T = 1, GEMM for T > 1.
   * x and y are views (element offsets and token strides in 4-byte words) of different buffers.
   */
  encode(
    pass: GPUComputePassEncoder,
    lin: GpuLinear,
    x: GpuView,
    y: GpuView,
    T: number,
    options: EncodeOptions = {},
  ): void {
    this.encodeWith(pass, lin, x, y, T, undefined, options);
  }

  /** {@link encode} with an explicit geometry (tuning and benchmarks). */
  encodeWith(
    pass: GPUComputePassEncoder,
    lin: GpuLinear,
    x: GpuView,
    y: GpuView,
    T: number,
    geometry: MatmulGeometry | undefined,
    options: EncodeOptions = {},
  ): void {
    if (!Number.isInteger(T) || T < 1) {
      throw new RangeError(`matmul ${lin.label}: expected T >= 1, found ${T}`);
    }
    if (x.buffer === y.buffer) throw new RangeError(`matmul ${lin.label}: x and y must be different buffers`);
    const xOff = x.offset ?? 0, yOff = y.offset ?? 0;
    const xStride = options.xStride ?? x.stride ?? lin.in, yStride = options.yStride ?? y.stride ?? lin.out;
    for (
      const [what, v] of [["x offset", xOff], ["y offset", yOff], ["x stride", xStride], [
        "y stride",
        yStride,
      ]]
    ) {
      if (!Number.isInteger(v) || (v as number) < 0) {
        throw new RangeError(`matmul ${lin.label}: expected a non-negative integer ${what}, found ${v}`);
      }
    }
    if (T > 1 && (xStride < lin.in || yStride < lin.out)) {
      throw new RangeError(
        `matmul ${lin.label}: token strides (${xStride}, ${yStride}) must be at least (in, out) = (${lin.in}, ${lin.out})`,
      );
    }
    const xEnd = xOff + (T - 1) * xStride + lin.in, yEnd = yOff + (T - 1) * yStride + lin.out;
    if (xEnd * 4 > x.buffer.size || yEnd * 4 > y.buffer.size) {
      throw new RangeError(
        `matmul ${lin.label}: (${T}, ${lin.in}) -> (${T}, ${lin.out}) needs ${xEnd * 4} bytes of x and ` +
          `${yEnd * 4} of y, found ${x.buffer.size} and ${y.buffer.size}`,
      );
    }
    const op: MatmulOp = T === 1 ? "gemv" : "gemm";
    const geo = geometry ?? this.geometryFor(op, lin.kind, lin);
    const path = this.xPath(lin, x, T, xStride);
    const xVec4 = path !== "scalar";
    const rowsPerGroup = (geo.WG / geo.TPR) * geo.RPT;
    const tokenGroups = op === "gemv" ? 1 : Math.ceil(T / geo.TT!);
    const maxGroups = this.ctx.limits.maxComputeWorkgroupsPerDimension;
    if (tokenGroups > maxGroups) {
      throw new RangeError(
        `matmul ${lin.label}: T = ${T} needs ${tokenGroups} workgroups along y, above ${maxGroups}`,
      );
    }
    const norm = options.normEps !== undefined;
    if (norm && (op !== "gemv" || !(options.normEps! > 0))) {
      throw new RangeError(
        `matmul ${lin.label}: a fused RMSNorm needs T = 1 and eps > 0, found T = ${T}, eps = ${options.normEps}`,
      );
    }
    const xUniform = path === "uniform" ? Math.ceil(lin.in / 4) : 0;
    const variant = this.variantOf(op, lin, xUniform, norm);
    const key = this.#pipeline(op, lin.kind, geo, xVec4, variant);
    const acc = options.accumulate ? 1 : 0;
    const [x4, x1] = variant.xUniform > 0
      ? [{ buffer: x.buffer, offset: xOff * 4, size: variant.xUniform * 16 }, undefined] // no x1 binding
      : [{ buffer: xVec4 ? x.buffer : this.#d.unused() }, { buffer: x.buffer }];
    for (const chunk of lin.chunks) {
      const groupsX = Math.ceil(chunk.rows / rowsPerGroup);
      if (groupsX > maxGroups) {
        throw new RangeError(
          `matmul ${lin.label}: ${chunk.rows} rows need ${groupsX} workgroups with geometry ${
            JSON.stringify(geo)
          }`,
        );
      }
      const params = new Uint32Array([
        chunk.rows,
        lin.in,
        T,
        lin.k,
        lin.rowStride,
        chunk.rows * lin.rowStride,
        variant.xUniform > 0 ? 0 : xOff, // a uniform x binding starts at x
        xStride,
        yOff + chunk.rowStart,
        yStride,
        acc,
        chunk.rowStart,
        lin.out,
        lin.hStride,
        f32Bits(options.normEps ?? 0),
        0,
      ]);
      // Bindings 1.. in order: the chunk, (packed, i8: g, h), x4, y, x1.
      const resources: GPUBufferBinding[] = [{ buffer: chunk.buffer }];
      if (lin.kind === "packed" || lin.kind === "i8") {
        resources.push({ buffer: lin.g! }, { buffer: variant.hF32 > 0 ? lin.hF32! : lin.h! });
      }
      resources.push(x4, { buffer: y.buffer });
      if (x1) resources.push(x1);
      this.#d.launch(pass, key, params, resources, groupsX, tokenGroups);
    }
  }

  /** Bind groups cached so far (each with its params uniform); constant in steady state. */
  get cachedBindGroups(): number {
    return this.#d.cachedBindGroups;
  }

  /** Frees the cached parameter uniforms and bind groups (pipelines stay compiled). */
  dispose(): void {
    this.#d.dispose();
  }
}
