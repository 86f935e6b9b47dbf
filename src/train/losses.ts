// Distillation losses on the CPU (METHOD.md §4): KL(teacher ‖ student) over next-token distributions and
// the hidden-state MSE, each with its gradient. The references of kernels/kl_div.wgsl and kernels/mse.wgsl
// (hard-label cross-entropy: crossEntropySoftmaxBackward in src/model/ops_backward.ts, for cross_entropy.wgsl).
//
// Dimension legend: rows = positions scored (tokens of a batch), V = vocabulary, n = elements compared.
// Sums accumulate in f64; log-softmax subtracts the row maximum first (no overflow for any finite logits).

import { crossEntropySoftmaxBackward } from "../model/ops_backward.ts";
import { nextTokenTargets } from "./backend.ts";

function checkPair(op: string, student: Float32Array, teacher: Float32Array, n: number, what: string): void {
  for (const [name, a] of [["student", student], ["teacher", teacher]] as const) {
    if (!(a instanceof Float32Array)) {
      throw new TypeError(
        `${op}: expected ${name} as a Float32Array, found ${(a as object)?.constructor?.name}`,
      );
    }
    if (a.length !== n) {
      throw new RangeError(`${op}: expected ${name} of ${what} = ${n} values, found ${a.length}`);
    }
  }
}

/** log Σ_c exp(x[o + c]) over c < V, in f64, with the maximum subtracted first. */
function logSumExp(x: Float32Array, o: number, V: number): number {
  let max = -Infinity;
  for (let c = 0; c < V; c++) if (x[o + c] > max) max = x[o + c];
  let sum = 0;
  for (let c = 0; c < V; c++) sum += Math.exp(x[o + c] - max);
  return max + Math.log(sum);
}

/**
 * Mean over rows of KL(softmax(teacher) ‖ softmax(student)) (nats) and its gradient w.r.t. the student
 * logits, (softmax(s) − softmax(t)) / rows. Logits (rows, V).
 *
 * @example
 * ```ts
 * import { klDivergence } from "./losses.ts";
 * const s = new Float32Array([0, 0]), t = new Float32Array([0, Math.log(3)]); // teacher p = [1/4, 3/4]
 * const { loss, dLogits } = klDivergence(s, t, 1, 2);
 * console.log(loss, dLogits); // 0.25·ln(1/2) + 0.75·ln(3/2) ≈ 0.1308, [0.25, -0.25]
 * ```
 */
export function klDivergence(
  student: Float32Array,
  teacher: Float32Array,
  rows: number,
  V: number,
): { loss: number; dLogits: Float32Array } {
  const op = "klDivergence";
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(V) || V < 1) {
    throw new RangeError(`${op}: expected positive integer rows and V, found ${rows} × ${V}`);
  }
  checkPair(op, student, teacher, rows * V, `${rows} × ${V}`);
  const dLogits = new Float32Array(rows * V); // (rows, V)
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    const lseS = logSumExp(student, o, V), lseT = logSumExp(teacher, o, V);
    let kl = 0;
    for (let c = 0; c < V; c++) {
      const ls = student[o + c] - lseS, lt = teacher[o + c] - lseT;
      const pt = Math.exp(lt);
      kl += pt * (lt - ls); // 0 where pt underflows: 0·log 0 = 0
      dLogits[o + c] = (Math.exp(ls) - pt) / rows;
    }
    total += kl;
  }
  return { loss: total / rows, dLogits };
}

/**
 * Mean squared error over all elements, and dStudent = 2 (s − t) / n.
 *
 * @example
 * ```ts
 * import { meanSquaredError } from "./losses.ts";
 * const { loss, dStudent } = meanSquaredError(new Float32Array([1, 2]), new Float32Array([0, 2]));
 * console.log(loss, dStudent); // 0.5, [1, 0]
 * ```
 */
export function meanSquaredError(
  student: Float32Array,
  teacher: Float32Array,
): { loss: number; dStudent: Float32Array } {
  const n = student?.length;
  if (!(n >= 1)) throw new RangeError(`meanSquaredError: expected at least one element, found ${n}`);
  checkPair("meanSquaredError", student, teacher, n, "student's length");
  const dStudent = new Float32Array(n); // (n)
  let total = 0;
  for (let j = 0; j < n; j++) {
    const d = student[j] - teacher[j];
    total += d * d;
    dStudent[j] = (2 * d) / n;
  }
  return { loss: total / n, dStudent };
}

/** What one window adds to a batch's loss ({@link windowLossSeeds}). */
export interface WindowLossSeeds {
  /** The window's mean KL(teacher ‖ student), nats. */
  kl: number;
  /** Its mean cross-entropy on the label window's next tokens (0 without a label weight). */
  ce: number;
  /** Σ over blocks of the mean squared error of the block outputs. */
  mse: number;
  /** (S, V) gradient at the student logits of the batch's mean loss. */
  dLogits: Float32Array;
  /** Per block (S, D): gradient at the block's output of the batch's γ·MSE term. */
  dHidden: Float32Array[];
}

/**
 * One window's share of a batch loss (1 − α)·KL + α·CE + γ·MSE, averaged over `batch` windows: its losses and
 * the gradients that seed the backward (the CPU training backend's losses, and experiments that train the
 * same objective). `label` is the window as written (its next tokens are the CE targets); needed when α > 0.
 * Logits (S, V); hidden one (S, D) array per block.
 */
export function windowLossSeeds(
  student: { logits: Float32Array; hidden: Float32Array[] },
  teacher: { logits: Float32Array; hidden: Float32Array[] },
  V: number,
  o: { batch: number; gamma: number; labelWeight: number; label?: Int32Array },
): WindowLossSeeds {
  const B = o.batch, alpha = o.labelWeight;
  const rows = student.logits.length / V;
  const k = klDivergence(student.logits, teacher.logits, rows, V);
  for (let i = 0; i < k.dLogits.length; i++) k.dLogits[i] *= (1 - alpha) / B;
  let ce = 0;
  if (alpha > 0) {
    // Every window has rows − 1 scored positions: the batch mean's gradient is α / (B·(rows − 1)).
    const targets = nextTokenTargets([o.label!], rows);
    ce = crossEntropySoftmaxBackward(student.logits, targets, V, k.dLogits, alpha / (B * (rows - 1))).loss;
  }
  let mse = 0;
  const dHidden = student.hidden.map((h, l) => {
    const e = meanSquaredError(h, teacher.hidden[l]);
    mse += e.loss;
    const scale = o.gamma / B;
    for (let i = 0; i < e.dStudent.length; i++) e.dStudent[i] *= scale;
    return e.dStudent;
  });
  return { kl: k.loss, ce, mse, dLogits: k.dLogits, dHidden };
}
