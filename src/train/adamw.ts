// AdamW (decoupled weight decay) on the CPU: the reference of kernels/adamw.wgsl, computed in f32 with the
// kernel's operations in the kernel's order (every intermediate rounded with Math.fround).
//
// Dimension legend: n = parameters in the updated range; p, g, m, v are all (n).
//
// One step t ≥ 1 (all in f32):
//   p ← p − (lr·wd)·p
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·(g·g)
//   p ← p − lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + eps)

/** Hyperparameters of {@link adamwStep}. */
export interface AdamWOptions {
  /** Learning rate. */
  lr: number;
  /** First-moment decay β1 (default 0.9). */
  beta1?: number;
  /** Second-moment decay β2 (default 0.999). */
  beta2?: number;
  /** Added to the root of the second moment (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay wd: p ← p − lr·wd·p before the update (default 0). */
  weightDecay?: number;
}

/** The f32 scalars of one step, shared by {@link adamwStep} and the WebGPU kernel's uniform. */
export interface AdamWCoefficients {
  lr: number;
  /** lr·wd. */
  lrWd: number;
  beta1: number;
  /** 1 − β1. */
  oneMinusBeta1: number;
  beta2: number;
  /** 1 − β2. */
  oneMinusBeta2: number;
  /** 1 − β1^t, the first moment's bias correction. */
  correction1: number;
  /** 1 − β2^t, the second moment's bias correction. */
  correction2: number;
  eps: number;
}

/**
 * The step's scalars, each computed in f64 and rounded once to f32; throws a RangeError on a step number
 * below 1 or hyperparameters outside their ranges.
 *
 * @example
 * ```ts
 * import { adamwCoefficients } from "./adamw.ts";
 * const c = adamwCoefficients(1, { lr: 1e-3 });
 * console.log(c.correction1); // 0.1 (as f32)
 * ```
 */
export function adamwCoefficients(t: number, o: AdamWOptions): AdamWCoefficients {
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0 } = o;
  if (!Number.isInteger(t) || t < 1) throw new RangeError(`adamw: expected a step number t ≥ 1, found ${t}`);
  if (!(lr >= 0 && Number.isFinite(lr))) throw new RangeError(`adamw: expected lr ≥ 0, found ${lr}`);
  for (const [name, b] of [["beta1", beta1], ["beta2", beta2]] as const) {
    if (!(b >= 0 && b < 1)) throw new RangeError(`adamw: expected ${name} in [0, 1), found ${b}`);
  }
  if (!(eps > 0)) throw new RangeError(`adamw: expected eps > 0, found ${eps}`);
  if (!(weightDecay >= 0)) throw new RangeError(`adamw: expected weightDecay ≥ 0, found ${weightDecay}`);
  const f = Math.fround;
  return {
    lr: f(lr),
    lrWd: f(lr * weightDecay),
    beta1: f(beta1),
    oneMinusBeta1: f(1 - beta1),
    beta2: f(beta2),
    oneMinusBeta2: f(1 - beta2),
    correction1: f(1 - beta1 ** t),
    correction2: f(1 - beta2 ** t),
    eps: f(eps),
  };
}

/**
 * One AdamW step in place; p, g, m, v have equal length; t ≥ 1 is the step number (bias correction).
 * m and v start at zero before step 1.
 *
 * @example
 * ```ts
 * import { adamwStep } from "./adamw.ts";
 * const p = new Float32Array([1, -2]), g = new Float32Array([0.5, -0.5]);
 * const m = new Float32Array(2), v = new Float32Array(2);
 * adamwStep(p, g, m, v, 1, { lr: 0.1 });
 * console.log(p); // ≈ [0.9, -1.9]: the first step moves each entry by lr·sign(g)
 * ```
 */
export function adamwStep(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  t: number,
  o: AdamWOptions,
): void {
  const n = p.length;
  for (const [name, a] of [["g", g], ["m", m], ["v", v]] as const) {
    if (a.length !== n) {
      throw new RangeError(`adamwStep: expected ${name} of length ${n} (p's), found ${a.length}`);
    }
  }
  const c = adamwCoefficients(t, o);
  const f = Math.fround;
  for (let j = 0; j < n; j++) {
    const gj = g[j];
    const pd = f(p[j] - f(c.lrWd * p[j]));
    const mj = f(f(c.beta1 * m[j]) + f(c.oneMinusBeta1 * gj));
    const vj = f(f(c.beta2 * v[j]) + f(c.oneMinusBeta2 * f(gj * gj)));
    const mHat = f(mj / c.correction1);
    const vHat = f(vj / c.correction2);
    const u = f(mHat / f(f(Math.sqrt(vHat)) + c.eps));
    p[j] = f(pd - f(c.lr * u));
    m[j] = mj;
    v[j] = vj;
  }
}
