// Work-group geometry of the matmul kernels (their WGSL override constants), the defaults per adapter
// class, and the shape classes the autotuner keys its choices by.

import type { GpuContext } from "./device.ts";

/** Storage of a linear layer's weights on the device. */
export type WeightKind = "f32" | "f16" | "packed" | "i8";

/** Every weight kind, in the order they were added. */
export const WEIGHT_KINDS: readonly WeightKind[] = ["f32", "f16", "packed", "i8"];

/** GEMV (one token, decode) or token-tiled GEMM (several tokens). */
export type MatmulOp = "gemv" | "gemm";

/** Geometry of a matmul dispatch. */
export interface MatmulGeometry {
  /** Threads per workgroup. */
  WG: number;
  /** Threads sharing one row group and splitting its columns (a power of two dividing WG). */
  TPR: number;
  /** Rows per thread, kept in registers (1..64; the GEMV kernels unroll them, so keep it ≤ 32 there). */
  RPT: number;
  /** GEMM only: tokens per thread (1..16). */
  TT?: number;
}

/**
 * GPU-sensible GEMV default: 128 threads, 16 lanes per row group, 2 rows per thread (16 rows per
 * workgroup), coalesced vec4 loads across the lanes and a shared-memory reduction.
 */
export const DEFAULT_GEMV_GEOMETRY: MatmulGeometry = { WG: 128, TPR: 16, RPT: 2 };

/** GPU-sensible GEMM default: as the GEMV, with 4 tokens per thread. */
export const DEFAULT_GEMM_GEOMETRY: MatmulGeometry = { WG: 128, TPR: 16, RPT: 2, TT: 4 };

/**
 * Defaults for software adapters (llvmpipe, SwiftShader), where a workgroup's invocations are SIMD lanes
 * of a CPU core: every storage load is a per-lane loop and barriers are coroutine switches, so one thread
 * per row group (no reduction) and many rows per thread (x loaded once per 16 rows) win there.
 */
export const FALLBACK_GEMV_GEOMETRY: MatmulGeometry = { WG: 32, TPR: 1, RPT: 16 };
export const FALLBACK_GEMM_GEOMETRY: MatmulGeometry = { WG: 64, TPR: 1, RPT: 8, TT: 4 };

/** The default geometry of an op on this adapter class. */
export function defaultGeometry(ctx: GpuContext, op: MatmulOp): MatmulGeometry {
  if (op === "gemv") return ctx.isFallback ? FALLBACK_GEMV_GEOMETRY : DEFAULT_GEMV_GEOMETRY;
  return ctx.isFallback ? FALLBACK_GEMM_GEOMETRY : DEFAULT_GEMM_GEOMETRY;
}

/** Workgroup memory (bytes) the reduction of a geometry uses. */
export function reductionBytes(geo: MatmulGeometry): number {
  return geo.TPR === 1 ? 4 : geo.WG * 4;
}

/** Throws a RangeError unless the geometry is valid for the op on this device. */
export function validateGeometry(ctx: GpuContext, op: MatmulOp, geo: MatmulGeometry): void {
  const bad = (why: string) => new RangeError(`matmul geometry ${JSON.stringify(geo)} for ${op}: ${why}`);
  const isInt = (v: number) => Number.isInteger(v) && v >= 1;
  if (!isInt(geo.WG) || geo.WG > ctx.limits.maxComputeInvocationsPerWorkgroup) {
    throw bad(`WG must be 1..${ctx.limits.maxComputeInvocationsPerWorkgroup}`);
  }
  if (!isInt(geo.TPR) || (geo.TPR & (geo.TPR - 1)) !== 0 || geo.WG % geo.TPR !== 0) {
    throw bad("TPR must be a power of two dividing WG");
  }
  if (!isInt(geo.RPT) || geo.RPT > 64) throw bad("RPT must be 1..64");
  if (op === "gemm" && (geo.TT === undefined || !isInt(geo.TT) || geo.TT > 16)) throw bad("TT must be 1..16");
  if (op === "gemv" && geo.TT !== undefined) throw bad("TT is for gemm only");
  if (reductionBytes(geo) > ctx.limits.maxComputeWorkgroupStorageSize) {
    throw bad(`the reduction needs ${reductionBytes(geo)} bytes of workgroup memory`);
  }
}

function bucket(n: number): number {
  return 2 ** Math.round(Math.log2(Math.max(1, n)));
}

/** Key of a shape class: op, kind, planes, and out/in rounded to powers of two. */
export function shapeClass(
  op: MatmulOp,
  kind: WeightKind,
  shape: { out: number; in: number; k?: number },
): string {
  const k = kind === "packed" ? `k${shape.k ?? 1}:` : "";
  return `${op}:${kind}:${k}${bucket(shape.out)}x${bucket(shape.in)}`;
}

/** Geometries the autotuner tries: GPU-shaped ones (several lanes per row) and software-adapter ones. */
export function candidateGeometries(op: MatmulOp): MatmulGeometry[] {
  if (op === "gemv") {
    return [
      DEFAULT_GEMV_GEOMETRY,
      { WG: 256, TPR: 32, RPT: 2 },
      { WG: 64, TPR: 8, RPT: 4 },
      { WG: 128, TPR: 4, RPT: 4 },
      { WG: 64, TPR: 1, RPT: 8 },
      FALLBACK_GEMV_GEOMETRY,
      { WG: 16, TPR: 1, RPT: 16 },
      { WG: 64, TPR: 1, RPT: 16 },
      { WG: 16, TPR: 1, RPT: 32 },
    ];
  }
  return [
    DEFAULT_GEMM_GEOMETRY,
    { WG: 64, TPR: 8, RPT: 4, TT: 4 },
    { WG: 128, TPR: 4, RPT: 4, TT: 4 },
    FALLBACK_GEMM_GEOMETRY,
    { WG: 64, TPR: 1, RPT: 4, TT: 8 },
    { WG: 64, TPR: 1, RPT: 16, TT: 4 },
  ];
}
