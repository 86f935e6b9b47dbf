// The training GEMM on the CPU: C (M, N) = alpha · op(A) · op(B) + beta · C over strided row-major views,
// the reference of kernels/gemm_train.wgsl and the product of the CPU training backend.
//
// Dimension legend: M rows of C and op(A), N columns of C and op(B), K the reduced dimension.
// op(A) = A (M, K), or Aᵀ with A stored (K, M) when transA; op(B) = B (K, N), or Bᵀ with B stored (N, K)
// when transB. lda, ldb, ldc are the row strides (elements) of the stored layouts.

/** Shape, transposes, scalars and strides of a {@link gemm}. */
export interface GemmOptions {
  M: number;
  N: number;
  K: number;
  /** A is stored (K, M) and used transposed (default false). */
  transA?: boolean;
  /** B is stored (N, K) and used transposed (default false). */
  transB?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 0: C's old contents are then never read (they may be NaN). */
  beta?: number;
  /** Row stride of A's stored layout (default its width: transA ? M : K). */
  lda?: number;
  /** Row stride of B's stored layout (default its width: transB ? K : N). */
  ldb?: number;
  /** Row stride of C (default N). */
  ldc?: number;
}

function checkDim(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) {
    throw new RangeError(`gemm: expected ${name} to be an integer ≥ ${min}, found ${v}`);
  }
}

function checkView(name: string, arr: Float32Array, rows: number, width: number, ld: number): void {
  checkDim(`ld${name.toLowerCase()}`, ld, width);
  const need = (rows - 1) * ld + width;
  if (arr.length < need) {
    throw new RangeError(
      `gemm: ${name} (${rows} rows of ${width}, stride ${ld}) needs ${need} elements, found ${arr.length}`,
    );
  }
}

/**
 * C (M, N) = alpha · op(A) · op(B) + beta · C, in place on `c`; pass subarrays for views that start at
 * an offset. Sums run in float64 and each result is rounded to f32 once. The loop order keeps every
 * inner loop contiguous in memory: a row of B is added into a float64 row of C (op(B) = B), or a row of
 * A is dotted with a row of B (A · Bᵀ), or a row of A is added into a column accumulator (Aᵀ · Bᵀ).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gemm } from "./gemm.ts";
 * // (1, 2) · (2, 1): [1, 2] · [3, 4]ᵀ = 11
 * const c = new Float32Array(1);
 * gemm(new Float32Array([1, 2]), new Float32Array([3, 4]), c, { M: 1, N: 1, K: 2 });
 * assert.equal(c[0], 11);
 * ```
 */
export function gemm(a: Float32Array, b: Float32Array, c: Float32Array, o: GemmOptions): void {
  const { M, N, K } = o;
  const transA = o.transA ?? false, transB = o.transB ?? false;
  const alpha = o.alpha ?? 1, beta = o.beta ?? 0;
  checkDim("M", M, 1);
  checkDim("N", N, 1);
  checkDim("K", K, 1);
  if (!Number.isFinite(alpha) || !Number.isFinite(beta)) {
    throw new RangeError(`gemm: expected finite alpha and beta, found ${alpha} and ${beta}`);
  }
  const lda = o.lda ?? (transA ? M : K), ldb = o.ldb ?? (transB ? K : N), ldc = o.ldc ?? N;
  checkView("A", a, transA ? K : M, transA ? M : K, lda);
  checkView("B", b, transB ? N : K, transB ? K : N, ldb);
  checkView("C", c, M, N, ldc);
  const store = (at: number, sum: number) => {
    c[at] = beta === 0 ? alpha * sum : alpha * sum + beta * c[at];
  };

  if (!transB) {
    // C[i, :] = Σ_k op(A)[i, k] · B[k, :]: axpy of contiguous rows of B into a float64 row.
    // Four rows of B per sweep over the accumulator: a quarter of its loads and stores.
    const acc = new Float64Array(N); // (N)
    const sa = transA ? lda : 1, ai = transA ? 1 : lda; // op(A)[i, k] = a[i * ai + k * sa]
    for (let i = 0; i < M; i++) {
      acc.fill(0);
      const ao = i * ai;
      let k = 0;
      for (; k + 3 < K; k += 4) {
        const a0 = a[ao + k * sa], a1 = a[ao + (k + 1) * sa], a2 = a[ao + (k + 2) * sa];
        const a3 = a[ao + (k + 3) * sa];
        const b0 = k * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
        for (let j = 0; j < N; j++) {
          acc[j] += a0 * b[b0 + j] + a1 * b[b1 + j] + a2 * b[b2 + j] + a3 * b[b3 + j];
        }
      }
      for (; k < K; k++) {
        const aik = a[ao + k * sa];
        const bo = k * ldb;
        for (let j = 0; j < N; j++) acc[j] += aik * b[bo + j];
      }
      const co = i * ldc;
      for (let j = 0; j < N; j++) store(co + j, acc[j]);
    }
  } else if (!transA) {
    // C[i, j] = A[i, :] · B[j, :]: contiguous dot products, four rows of B per pass sharing each load of
    // A's row, with separate sums so that the multiply-adds overlap.
    for (let i = 0; i < M; i++) {
      const ao = i * lda, co = i * ldc;
      let j = 0;
      for (; j + 3 < N; j += 4) {
        const b0 = j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ao + k];
          s0 += av * b[b0 + k];
          s1 += av * b[b1 + k];
          s2 += av * b[b2 + k];
          s3 += av * b[b3 + k];
        }
        store(co + j, s0);
        store(co + j + 1, s1);
        store(co + j + 2, s2);
        store(co + j + 3, s3);
      }
      for (; j < N; j++) {
        const bo = j * ldb;
        let s0 = 0;
        for (let k = 0; k < K; k++) s0 += a[ao + k] * b[bo + k];
        store(co + j, s0);
      }
    }
  } else {
    // Aᵀ · Bᵀ: C[:, j] = Σ_k B[j, k] · A[k, :], contiguous rows of A into a float64 column.
    const acc = new Float64Array(M); // (M)
    for (let j = 0; j < N; j++) {
      acc.fill(0);
      const bo = j * ldb;
      let k = 0;
      for (; k + 3 < K; k += 4) {
        const b0 = b[bo + k], b1 = b[bo + k + 1], b2 = b[bo + k + 2], b3 = b[bo + k + 3];
        const a0 = k * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda;
        for (let i = 0; i < M; i++) {
          acc[i] += b0 * a[a0 + i] + b1 * a[a1 + i] + b2 * a[a2 + i] + b3 * a[a3 + i];
        }
      }
      for (; k < K; k++) {
        const bjk = b[bo + k];
        const ao = k * lda;
        for (let i = 0; i < M; i++) acc[i] += bjk * a[ao + i];
      }
      for (let i = 0; i < M; i++) store(i * ldc + j, acc[i]);
    }
  }
}
