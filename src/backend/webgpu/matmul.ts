// Weight matmuls on WebGPU: uploading a linear layer (dense f32, fp16-storage, or residual-binary packed)
// into GPU buffers, and one launcher that records y (T, out) = W x (+ y) into a caller's compute pass.
// Launcher steps: validate shapes → cache key → bind → dispatch; bind groups and their parameter uniforms
// are cached per (weights chunk, buffers, shape), so repeated decode steps allocate nothing.
//
// Device layouts (all row-major, rows split into chunks that each fit one storage binding):
//   f32     (rows, ceil(in/4)) vec4<f32>, zero-padded columns
//   f16     (rows, ceil(in/8)) vec4<u32>, two halves per u32, low half = even column, zero-padded
//   packed  planes (k, rows, ceil(in/128)) vec4<u32> in bitpack.ts order with zero words up to 128-column
//           multiples; g (k, out) f32; h (k, ceil(in/128)·128) f32 zero-padded (shared by the chunks)
// T > 1 dispatches one row pass per token (grid y): correct for prefill and evaluation windows, with weight
// traffic T times a GEMV's; a token-tiled GEMM is the next step for prefill speed.

import { createStorageBuffer, createUniformBuffer, getPipeline, type GpuContext } from "./device.ts";
import type { GpuView } from "./ops.ts";
import { KERNELS } from "./kernels.gen.ts";
import type { ResidualBinaryLinear } from "../../quant/residual_binary.ts";
import { wordsPerRow } from "../../quant/bitpack.ts";
import { toF16 } from "../../util/fp16.ts";

/** A linear layer's weights on the host, by storage kind. */
export type LinearWeights =
  | { kind: "f32" | "f16"; w: Float32Array; out: number; in: number }
  | { kind: "packed"; layer: ResidualBinaryLinear };

/** Rows [rowStart, rowStart + rows) of a layer in one buffer. */
interface GpuChunk {
  rowStart: number;
  rows: number;
  buffer: GPUBuffer;
}

/** A linear layer resident on the device. */
export interface GpuLinear {
  readonly label: string;
  readonly kind: "f32" | "f16" | "packed";
  readonly out: number;
  readonly in: number;
  /** Paths (packed), else 1. */
  readonly k: number;
  /** vec4 units per row in the chunk buffers. */
  readonly rowStride: number;
  readonly chunks: readonly GpuChunk[];
  /** Packed only: (k, out) row scales and (k, hStride·4) column scales. */
  readonly g?: GPUBuffer;
  readonly h?: GPUBuffer;
  readonly hStride: number;
  /** Bytes of every buffer allocated for this layer. */
  readonly bytes: number;
  destroy(): void;
}

/** Options of {@link uploadLinear}. */
export interface UploadLinearOptions {
  /** Largest chunk buffer in bytes (default: the device's maxStorageBufferBindingSize). */
  maxBindingBytes?: number;
}

function padRows(src: Uint32Array | Float32Array, rows: number, cols: number, stride: number) {
  const out = new (src.constructor as Uint32ArrayConstructor | Float32ArrayConstructor)(rows * stride);
  for (let r = 0; r < rows; r++) out.set(src.subarray(r * cols, (r + 1) * cols), r * stride);
  return out;
}

/** Uploads one linear layer in the layout its kernel reads. */
export function uploadLinear(
  ctx: GpuContext,
  label: string,
  weights: LinearWeights,
  options: UploadLinearOptions = {},
): GpuLinear {
  const maxBinding = Math.min(options.maxBindingBytes ?? Infinity, ctx.limits.maxStorageBufferBindingSize);
  const kind = weights.kind;
  const out = kind === "packed" ? weights.layer.out : weights.out;
  const inF = kind === "packed" ? weights.layer.in : weights.in;
  const k = kind === "packed" ? weights.layer.k : 1;
  if (kind !== "packed" && weights.w.length !== out * inF) {
    throw new RangeError(
      `uploadLinear ${label}: expected ${out}x${inF}=${out * inF} weights, found ${weights.w.length}`,
    );
  }
  // vec4 units per row, and 32-bit words per row in the chunk buffers
  const rowStride = kind === "f32"
    ? Math.ceil(inF / 4)
    : kind === "f16"
    ? Math.ceil(inF / 8)
    : Math.ceil(inF / 128);
  const rowBytes = rowStride * 16 * k;
  const chunkRows = Math.max(1, Math.floor(maxBinding / rowBytes));
  if (rowBytes > maxBinding) {
    throw new RangeError(`uploadLinear ${label}: one row of ${rowBytes} bytes exceeds a binding`);
  }
  const chunks: GpuChunk[] = [];
  let g: GPUBuffer | undefined, h: GPUBuffer | undefined;
  const hStride = kind === "packed" ? rowStride * 128 : 0; // floats per plane of h (128 columns per vec4<u32>)
  if (kind === "packed") {
    const layer = weights.layer;
    const hPadded = new Float32Array(k * hStride);
    for (let p = 0; p < k; p++) hPadded.set(layer.h.subarray(p * inF, (p + 1) * inF), p * hStride);
    g = createStorageBuffer(ctx, `${label}.g`, layer.g);
    h = createStorageBuffer(ctx, `${label}.h`, hPadded);
  }
  for (let rowStart = 0; rowStart < out; rowStart += chunkRows) {
    const rows = Math.min(chunkRows, out - rowStart);
    let data: Uint32Array | Float32Array;
    if (kind === "f32") {
      data = padRows(weights.w.subarray(rowStart * inF, (rowStart + rows) * inF), rows, inF, rowStride * 4);
    } else if (kind === "f16") {
      const halves = new Uint16Array(rows * rowStride * 8);
      const src = toF16(weights.w.subarray(rowStart * inF, (rowStart + rows) * inF));
      for (let r = 0; r < rows; r++) halves.set(src.subarray(r * inF, (r + 1) * inF), r * rowStride * 8);
      data = new Uint32Array(halves.buffer); // little-endian: the even column is the low half
    } else {
      const layer = (weights as { layer: ResidualBinaryLinear }).layer;
      const wpr = wordsPerRow(inF);
      data = new Uint32Array(k * rows * rowStride * 4);
      for (let p = 0; p < k; p++) {
        const plane = layer.planes.subarray((p * out + rowStart) * wpr, (p * out + rowStart + rows) * wpr);
        data.set(padRows(plane, rows, wpr, rowStride * 4), p * rows * rowStride * 4);
      }
    }
    chunks.push({
      rowStart,
      rows,
      buffer: createStorageBuffer(ctx, `${label}[${rowStart}:${rowStart + rows}]`, data),
    });
  }
  const all = [...chunks.map((c) => c.buffer), ...(g ? [g] : []), ...(h ? [h] : [])];
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
    bytes: all.reduce((a, b) => a + b.size, 0),
    destroy: () => all.forEach((b) => b.destroy()),
  };
}

/** Work-group geometry of the GEMV kernels (WGSL override constants). */
export interface MatmulGeometry {
  /** Threads per workgroup. */
  WG: number;
  /** Threads sharing one row group (power of two dividing WG). */
  TPR: number;
  /** Rows per thread. */
  RPT: number;
}

/** GPU-sensible defaults: 128 threads, 32 lanes per row group, 2 rows per thread (8 rows per workgroup). */
export const DEFAULT_GEOMETRY: MatmulGeometry = { WG: 128, TPR: 32, RPT: 2 };

/**
 * Software adapters (llvmpipe) run a workgroup's invocations as SIMD lanes, where the shared-memory
 * reduction costs more than it saves: one thread per 4 rows, no reduction. Measured on llvmpipe at
 * 4096×4096: f32 85 ms, f16 51 ms, packed 70 ms, against 113 / 82 / 152 ms with the GPU default.
 */
export const FALLBACK_GEOMETRY: MatmulGeometry = { WG: 64, TPR: 1, RPT: 4 };

/** Options of {@link MatmulEngine.encode}. */
export interface EncodeOptions {
  /** y += W x instead of y = W x. */
  accumulate?: boolean;
  /** Elements between tokens of x (default in) and of y (default out). */
  xStride?: number;
  yStride?: number;
}

const KERNEL_OF = { f32: "gemv_f32", f16: "gemv_f16", packed: "gemv_packed" } as const;

/** Compiled matmul pipelines of one device and the launcher that records them. */
export class MatmulEngine {
  readonly ctx: GpuContext;
  readonly geometry: Record<GpuLinear["kind"], MatmulGeometry>;
  readonly #pipelines: Record<GpuLinear["kind"], GPUComputePipeline>;
  readonly #groups = new Map<string, GPUBindGroup>();
  readonly #uniforms: GPUBuffer[] = [];
  readonly #ids = new WeakMap<GPUBuffer, number>();
  #nextId = 1;

  private constructor(
    ctx: GpuContext,
    geometry: Record<GpuLinear["kind"], MatmulGeometry>,
    pipelines: Record<GpuLinear["kind"], GPUComputePipeline>,
  ) {
    this.ctx = ctx;
    this.geometry = geometry;
    this.#pipelines = pipelines;
  }

  /** Compiles the three GEMV pipelines with the given geometry per kind. */
  static async create(
    ctx: GpuContext,
    geometry: Partial<Record<GpuLinear["kind"], MatmulGeometry>> = {},
  ): Promise<MatmulEngine> {
    const base = ctx.isFallback ? FALLBACK_GEOMETRY : DEFAULT_GEOMETRY;
    const geo = { f32: geometry.f32 ?? base, f16: geometry.f16 ?? base, packed: geometry.packed ?? base };
    const pipelines = {} as Record<GpuLinear["kind"], GPUComputePipeline>;
    for (const kind of ["f32", "f16", "packed"] as const) {
      const g = geo[kind];
      if (g.WG % g.TPR !== 0 || (g.TPR & (g.TPR - 1)) !== 0 || g.RPT < 1 || g.RPT > 8) {
        throw new RangeError(`MatmulEngine: bad ${kind} geometry ${JSON.stringify(g)}`);
      }
      const name = KERNEL_OF[kind];
      pipelines[kind] = await getPipeline(ctx, `${name}:wg${g.WG}:tpr${g.TPR}:rpt${g.RPT}`, KERNELS[name], {
        WG: g.WG,
        TPR: g.TPR,
        RPT: g.RPT,
      });
    }
    return new MatmulEngine(ctx, geo, pipelines);
  }

  #id(b: GPUBuffer): number {
    let id = this.#ids.get(b);
    if (id === undefined) this.#ids.set(b, id = this.#nextId++);
    return id;
  }

  /** Records y (T, out) = W x (T, in) (+ y) for every row chunk of `lin`. */
  encode(
    pass: GPUComputePassEncoder,
    lin: GpuLinear,
    x: GpuView,
    y: GpuView,
    T: number,
    options: EncodeOptions = {},
  ): void {
    if (!Number.isInteger(T) || T < 1 || T > this.ctx.limits.maxComputeWorkgroupsPerDimension) {
      throw new RangeError(`matmul ${lin.label}: expected T in 1..65535, found ${T}`);
    }
    if (x.buffer === y.buffer) throw new RangeError(`matmul ${lin.label}: x and y must be different buffers`);
    const xOff = x.offset ?? 0, yOff = y.offset ?? 0;
    const xStride = options.xStride ?? lin.in, yStride = options.yStride ?? lin.out;
    const needX = (xOff + (T - 1) * xStride + lin.in) * 4, needY = (yOff + (T - 1) * yStride + lin.out) * 4;
    if (needX > x.buffer.size || needY > y.buffer.size) {
      throw new RangeError(
        `matmul ${lin.label}: (${T}, ${lin.in}) → (${T}, ${lin.out}) needs ${needX} bytes of x and ${needY} of y, ` +
          `found ${x.buffer.size} and ${y.buffer.size}`,
      );
    }
    const geo = this.geometry[lin.kind];
    const pipeline = this.#pipelines[lin.kind];
    const acc = options.accumulate ? 1 : 0;
    for (const chunk of lin.chunks) {
      const key =
        `${this.#id(chunk.buffer)}:${this.#id(x.buffer)}:${this.#id(y.buffer)}:${xOff}:${xStride}:` +
        `${yOff}:${yStride}:${acc}:${T}`;
      let group = this.#groups.get(key);
      if (!group) {
        const params = new Uint32Array([
          chunk.rows,
          lin.in,
          T,
          lin.k,
          lin.rowStride,
          chunk.rows * lin.rowStride,
          xOff,
          xStride,
          yOff + chunk.rowStart,
          yStride,
          acc,
          chunk.rowStart,
          lin.out,
          lin.hStride / 4,
        ]);
        const uniform = createUniformBuffer(this.ctx, `${lin.label}.params`, params);
        this.#uniforms.push(uniform);
        const entries: GPUBindGroupEntry[] = [
          { binding: 0, resource: { buffer: uniform } },
          { binding: 1, resource: { buffer: chunk.buffer } },
        ];
        if (lin.kind === "packed") {
          entries.push({ binding: 2, resource: { buffer: lin.g! } }, {
            binding: 3,
            resource: { buffer: lin.h! },
          });
        }
        const base = lin.kind === "packed" ? 4 : 2;
        entries.push({ binding: base, resource: { buffer: x.buffer } }, {
          binding: base + 1,
          resource: { buffer: y.buffer },
        });
        group = this.ctx.device.createBindGroup({
          label: `${lin.label}:${key}`,
          layout: pipeline.getBindGroupLayout(0),
          entries,
        });
        this.#groups.set(key, group);
      }
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(Math.ceil(chunk.rows / ((geo.WG / geo.TPR) * geo.RPT)), T);
    }
  }

  /** Frees the cached parameter uniforms (bind groups are released with them). */
  dispose(): void {
    for (const u of this.#uniforms) u.destroy();
    this.#uniforms.length = 0;
    this.#groups.clear();
  }
}
