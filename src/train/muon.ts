// Muon (METHOD.md §4) on the CPU: Nesterov momentum, orthogonalized by a quintic Newton–Schulz
// iteration, for the 2-D latent matrices. The reference of the WebGPU version (src/train/webgpu_muon.ts).
//
// Dimension legend: rows × cols the matrix (W is (out, in)); s = min(rows, cols), the Gram side.
//
// One step on W (rows, cols) with gradient G and momentum buffer M (our spec):
//   M ← μ·M + G
//   U = nesterov ? G + μ·M : M
//   X = U / (‖U‖_F + 1e-7); work on Xᵀ when rows > cols, so that the Gram matrix is (s, s)
//   5 times: A = X·Xᵀ; B = b·A + c·A·A; X ← a·X + B·X, with (a, b, c) = (3.4445, −4.7750, 2.0315)
//   transpose back; W ← W·(1 − lr·wd) − lr · 0.2·sqrt(max(rows, cols)) · X
// The coefficients make the iteration push every singular value of X quickly into roughly [0.7, 1.2]
// rather than converge to exactly 1 (Muon's reference implementation). The 0.2·sqrt(max(rows, cols))
// scale gives the update the RMS of a typical AdamW update, so that Muon can share AdamW's learning rate.

import { gemm } from "../model/gemm.ts";

/** Hyperparameters of {@link muonStep}. */
export interface MuonOptions {
  /** Learning rate. */
  lr: number;
  /** Momentum μ (default 0.95). */
  momentum?: number;
  /** Nesterov momentum (default true). */
  nesterov?: boolean;
  /** Decoupled weight decay wd: W ← W·(1 − lr·wd) (default 0). */
  weightDecay?: number;
  /** Newton–Schulz iterations (default 5). */
  nsSteps?: number;
}

/** Newton–Schulz coefficients (a, b, c) of Muon's quintic iteration. */
export const NS_COEFFICIENTS: readonly [number, number, number] = [3.4445, -4.775, 2.0315];

/** Added to ‖U‖_F before dividing (a zero gradient stays zero). */
export const NS_EPS = 1e-7;

/** The update scale 0.2·sqrt(max(rows, cols)) that lets Muon share AdamW's learning rate. */
export function muonScale(rows: number, cols: number): number {
  return 0.2 * Math.sqrt(Math.max(rows, cols));
}

function checkShape(op: string, name: string, arr: Float32Array, rows: number, cols: number): void {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < 1) {
    throw new RangeError(`${op}: expected positive integer rows and cols, found ${rows} × ${cols}`);
  }
  if (arr.length !== rows * cols) {
    throw new RangeError(
      `${op}: expected ${name} of ${rows} × ${cols} = ${rows * cols}, found ${arr.length}`,
    );
  }
}

/** (rows, cols) row-major → (cols, rows) row-major. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = m[o + c];
  }
  return out;
}

/**
 * Newton–Schulz orthogonalization of x (rows, cols) → new array of the same shape: x is first divided by
 * ‖x‖_F + 1e-7, then `steps` (default 5) quintic iterations run on the wide orientation (on xᵀ when
 * rows > cols). The result's singular values lie roughly in [0.7, 1.2] (exactly 0 stays 0).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { newtonSchulz } from "./muon.ts";
 * // A (1, 2) row has one singular value: 5 steps leave it roughly in [0.7, 1.2] (0.696 here), the direction kept.
 * const x = newtonSchulz(new Float32Array([3, 4]), 1, 2);
 * const s = Math.hypot(x[0], x[1]);
 * assert(s > 0.6 && s < 1.2);
 * assert(Math.abs(x[0] / x[1] - 0.75) < 1e-5);
 * ```
 */
export function newtonSchulz(x: Float32Array, rows: number, cols: number, steps = 5): Float32Array {
  checkShape("newtonSchulz", "x", x, rows, cols);
  if (!Number.isInteger(steps) || steps < 0) {
    throw new RangeError(`newtonSchulz: expected steps to be an integer ≥ 0, found ${steps}`);
  }
  const tall = rows > cols;
  const r = tall ? cols : rows, c = tall ? rows : cols; // X (r, c), r ≤ c
  let X: Float32Array = tall ? transpose(x, rows, cols) : Float32Array.from(x); // (r, c)
  let ss = 0;
  for (let i = 0; i < X.length; i++) ss += X[i] * X[i];
  const inv = 1 / (Math.sqrt(ss) + NS_EPS);
  for (let i = 0; i < X.length; i++) X[i] *= inv;
  const [ca, cb, cc] = NS_COEFFICIENTS;
  const A = new Float32Array(r * r); // (r, r)
  const B = new Float32Array(r * r); // (r, r)
  let Y: Float32Array = new Float32Array(r * c); // (r, c)
  for (let s = 0; s < steps; s++) {
    gemm(X, X, A, { M: r, N: r, K: c, transB: true }); // A = X·Xᵀ
    B.set(A);
    gemm(A, A, B, { M: r, N: r, K: r, alpha: cc, beta: cb }); // B = b·A + c·A·A
    Y.set(X);
    gemm(B, X, Y, { M: r, N: c, K: r, beta: ca }); // Y = a·X + B·X
    [X, Y] = [Y, X];
  }
  return tall ? transpose(X, r, c) : X;
}

/**
 * One Muon step in place on w (rows, cols) with gradient g and momentum buffer m (same size; m is
 * updated), as described at the top of this file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { muonStep } from "./muon.ts";
 * const w = new Float32Array([1, 1]), m = new Float32Array(2);
 * muonStep(w, new Float32Array([3, 4]), m, 1, 2, { lr: 0.1, nsSteps: 0 });
 * // m = g; u = g + 0.95·m = 1.95·g; x = u / ‖u‖ = [0.6, 0.8]; scale 0.2·sqrt(2)
 * assert(Math.abs(w[0] - (1 - 0.1 * 0.2 * Math.SQRT2 * 0.6)) < 1e-6);
 * ```
 */
export function muonStep(
  w: Float32Array,
  g: Float32Array,
  m: Float32Array,
  rows: number,
  cols: number,
  o: MuonOptions,
): void {
  const op = "muonStep";
  checkShape(op, "w", w, rows, cols);
  checkShape(op, "g", g, rows, cols);
  checkShape(op, "m", m, rows, cols);
  const mu = o.momentum ?? 0.95, nesterov = o.nesterov ?? true, wd = o.weightDecay ?? 0;
  if (!(o.lr >= 0) || !Number.isFinite(o.lr)) {
    throw new RangeError(`${op}: expected a finite lr ≥ 0, found ${o.lr}`);
  }
  if (!(mu >= 0 && mu < 1)) throw new RangeError(`${op}: expected momentum in [0, 1), found ${mu}`);
  if (!(wd >= 0) || !Number.isFinite(wd)) {
    throw new RangeError(`${op}: expected a finite weightDecay ≥ 0, found ${wd}`);
  }
  const u = new Float32Array(rows * cols); // (rows, cols)
  for (let i = 0; i < u.length; i++) {
    m[i] = mu * m[i] + g[i];
    u[i] = nesterov ? g[i] + mu * m[i] : m[i];
  }
  const x = newtonSchulz(u, rows, cols, o.nsSteps ?? 5); // (rows, cols)
  const decay = 1 - o.lr * wd, step = o.lr * muonScale(rows, cols);
  for (let i = 0; i < w.length; i++) w[i] = w[i] * decay - step * x[i];
}
