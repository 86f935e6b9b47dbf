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
 * import { gemm } from "./gemm.ts";
 * // (1, 2) · (2, 1): [1, 2] · [3, 4]ᵀ = 11
 * const c = new Float32Array(1);
 * gemm(new Float32Array([1, 2]), new Float32Array([3, 4]), c, { M: 1, N: 1, K: 2 });
 * console.assert(c[0] === 11);
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
    const acc = new Float64Array(N); // (N)
    for (let i = 0; i < M; i++) {
      acc.fill(0);
      for (let k = 0; k < K; k++) {
        const aik = transA ? a[k * lda + i] : a[i * lda + k];
        const bo = k * ldb;
        for (let j = 0; j < N; j++) acc[j] += aik * b[bo + j];
      }
      const co = i * ldc;
      for (let j = 0; j < N; j++) store(co + j, acc[j]);
    }
  } else if (!transA) {
    // C[i, j] = A[i, :] · B[j, :]: contiguous dot products, four partial sums to overlap the adds.
    for (let i = 0; i < M; i++) {
      const ao = i * lda, co = i * ldc;
      for (let j = 0; j < N; j++) {
        const bo = j * ldb;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = 0;
        for (; k + 3 < K; k += 4) {
          s0 += a[ao + k] * b[bo + k];
          s1 += a[ao + k + 1] * b[bo + k + 1];
          s2 += a[ao + k + 2] * b[bo + k + 2];
          s3 += a[ao + k + 3] * b[bo + k + 3];
        }
        for (; k < K; k++) s0 += a[ao + k] * b[bo + k];
        store(co + j, (s0 + s1) + (s2 + s3));
      }
    }
  } else {
    // Aᵀ · Bᵀ: C[:, j] = Σ_k B[j, k] · A[k, :], contiguous rows of A into a float64 column.
    const acc = new Float64Array(M); // (M)
    for (let j = 0; j < N; j++) {
      acc.fill(0);
      const bo = j * ldb;
      for (let k = 0; k < K; k++) {
        const bjk = b[bo + k];
        const ao = k * lda;
        for (let i = 0; i < M; i++) acc[i] += bjk * a[ao + i];
      }
      for (let i = 0; i < M; i++) store(i * ldc + j, acc[i]);
    }
  }
}
