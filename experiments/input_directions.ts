// Where a layer's path correlation comes from, input direction by input direction. The §6 path correlation
// is an output-level statistic: Σ_t y_1·y_2 = tr(A_1 M A_2ᵀ)·T with A_i = diag(g_i) B_i diag(h_i) (out, in)
// and M = E[x xᵀ] (in, in) the second moment of the layer's input. Written over M's eigenvectors u_j
// (eigenvalues λ_j), tr(A_1 M A_2ᵀ) = Σ_j λ_j (A_1 u_j)·(A_2 u_j): each input direction adds what the two
// paths do to it, weighted by how much input arrives along it. The weight-level correlation (M = I, every
// direction alike) and the output-level one part where a layer reads most of its output from a few
// directions. This splits the output correlation into the leading `top` directions and the rest.
//
//   deno run -A experiments/input_directions.ts STUDENT.rabit TEXT [--top 3] [--tokens 4096] [--json]
//
// The inputs are the packed model's own (as `inspect --diagnose` feeds its layers), over the first
// --tokens tokens of TEXT in windows of the model's context. The correlations here are uncentered (the
// diagnostics' Pearson correlation subtracts the pooled means, which moves them by about 0.01 on
// stories260K).

import { parseArgs } from "node:util";
import { openModel } from "../src/io/load_model.ts";
import { perplexityTokens } from "../src/eval/perplexity.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import { checkInput, type LinearLayer } from "../src/model/linear.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { linearNames } from "../src/model/params.ts";
import { dequantize, pathView, type ResidualBinaryLinear } from "../src/quant/residual_binary.ts";
import { parseOrExit, usageExit } from "./_run.ts";

/** Eigen-decomposition of a symmetric matrix: values in descending order, vectors[j] the unit vector of j. */
export interface SymmetricEigen {
  values: number[];
  vectors: Float64Array[];
}

/**
 * Cyclic Jacobi rotations on a symmetric n×n matrix (row-major) until the off-diagonal mass is below
 * 1e-24 of the whole; exact enough for the 64–172-wide input moments here, and simple to check.
 */
export function symmetricEigen(matrix: Float64Array, n: number): SymmetricEigen {
  if (matrix.length !== n * n) {
    throw new RangeError(`symmetricEigen: expected ${n}×${n} = ${n * n} entries, found ${matrix.length}`);
  }
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const total = a.reduce((s, x) => s + x * x, 0);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    if (off <= 1e-24 * total) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        // The rotation by angle θ with cot 2θ = (a_qq − a_pp) / 2a_pq zeroes a_pq.
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i]);
  return {
    values: order.map((i) => a[i * n + i]),
    vectors: order.map((i) => Float64Array.from({ length: n }, (_, k) => v[k * n + i])),
  };
}

/** What {@link directionalCorrelation} finds for one layer. */
export interface DirectionalCorrelation {
  /** tr(A_1 A_2ᵀ) / (‖A_1‖‖A_2‖): every weight alike. */
  weightCorrelation: number;
  /** tr(A_1 M A_2ᵀ) / √(tr(A_1 M A_1ᵀ)·tr(A_2 M A_2ᵀ)): the uncentered output correlation. */
  outputCorrelation: number;
  /** Share of the input's energy (tr M) along the leading `top` eigenvectors. */
  leadingInputShare: number;
  /** Share of path 1's output energy tr(A_1 M A_1ᵀ) that comes from those directions. */
  leadingPath1Share: number;
  /** The output correlation restricted to the leading directions. */
  leadingCorrelation: number;
  /** The output correlation over the other directions (null when `top` covers them all). */
  restCorrelation: number | null;
}

/**
 * Splits the output-level correlation of two paths A_1, A_2 (out, in) under the input second moment M
 * (in, in) into its leading `top` input directions and the rest.
 */
export function directionalCorrelation(
  a1: Float32Array,
  a2: Float32Array,
  out: number,
  inF: number,
  moment: Float64Array,
  top: number,
): DirectionalCorrelation {
  if (a1.length !== out * inF || a2.length !== out * inF || moment.length !== inF * inF) {
    throw new RangeError(
      `directionalCorrelation: expected paths of ${out}×${inF} and a moment of ${inF}×${inF}, found ` +
        `${a1.length}, ${a2.length} and ${moment.length} entries`,
    );
  }
  if (!Number.isInteger(top) || top < 1 || top > inF) {
    throw new RangeError(`directionalCorrelation: expected top in 1..${inF}, found ${top}`);
  }
  const { values, vectors } = symmetricEigen(moment, inF);
  // Per direction j: λ_j (A_1u)·(A_2u), λ_j ‖A_1u‖², λ_j ‖A_2u‖².
  const cross: number[] = [], self1: number[] = [], self2: number[] = [];
  for (let j = 0; j < inF; j++) {
    const u = vectors[j];
    let c = 0, s1 = 0, s2 = 0;
    for (let r = 0; r < out; r++) {
      let p1 = 0, p2 = 0;
      for (let i = 0; i < inF; i++) {
        p1 += a1[r * inF + i] * u[i];
        p2 += a2[r * inF + i] * u[i];
      }
      c += p1 * p2, s1 += p1 * p1, s2 += p2 * p2;
    }
    cross.push(values[j] * c), self1.push(values[j] * s1), self2.push(values[j] * s2);
  }
  const sum = (x: number[], from: number, to: number) => x.slice(from, to).reduce((s, v) => s + v, 0);
  const corr = (from: number, to: number) =>
    sum(cross, from, to) / Math.sqrt(sum(self1, from, to) * sum(self2, from, to));
  let w12 = 0, w11 = 0, w22 = 0;
  for (let e = 0; e < a1.length; e++) w12 += a1[e] * a2[e], w11 += a1[e] * a1[e], w22 += a2[e] * a2[e];
  return {
    weightCorrelation: w12 / Math.sqrt(w11 * w22),
    outputCorrelation: corr(0, inF),
    leadingInputShare: sum(values, 0, top) / sum(values, 0, inF),
    leadingPath1Share: sum(self1, 0, top) / sum(self1, 0, inF),
    leadingCorrelation: corr(0, top),
    restCorrelation: top < inF ? corr(top, inF) : null,
  };
}

/** Path p of a packed layer as a dense (out, in) matrix diag(g_p) B_p diag(h_p). */
const pathMatrix = (layer: ResidualBinaryLinear, p: number) => dequantize(pathView(layer, p));

/** A packed layer that adds its inputs' x xᵀ into `moment` (float64), then computes what the layer does. */
class MomentLinear implements LinearLayer {
  readonly out: number;
  readonly in: number;
  readonly moment: Float64Array;
  tokens = 0;
  constructor(readonly inner: LinearLayer, readonly name: string) {
    this.out = inner.out;
    this.in = inner.in;
    this.moment = new Float64Array(inner.in * inner.in);
  }
  forward(x: Float32Array, T: number): Float32Array {
    checkInput(`input_directions ${this.name}`, x, T, this.in);
    const n = this.in;
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < n; i++) {
        const xi = x[t * n + i];
        for (let j = 0; j < n; j++) this.moment[i * n + j] += xi * x[t * n + j];
      }
    }
    this.tokens += T;
    return this.inner.forward(x, T);
  }
  backward(): void {
    throw new TypeError("input_directions: the forward only, found a backward call");
  }
}

if (import.meta.main) {
  const usage = "Usage: deno run -A experiments/input_directions.ts STUDENT.rabit TEXT [--top 3] " +
    "[--tokens 4096] [--json]";
  const fail: (message: string) => never = (message) => usageExit("input_directions", usage, message);
  const { values, positionals } = parseOrExit("input_directions", usage, () =>
    parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        top: { type: "string", default: "3" },
        tokens: { type: "string", default: "4096" },
        json: { type: "boolean" },
      },
    }));
  const [studentPath, textPath] = positionals;
  const top = Number(values.top), maxTokens = Number(values.tokens);
  if (!studentPath || !textPath) fail("expected a student .rabit file and a text file");
  if (!(Number.isInteger(top) && top >= 1)) fail(`--top expects an integer ≥ 1, found "${values.top}"`);
  if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) {
    fail(`--tokens expects an integer ≥ 1, found "${values.tokens}"`);
  }
  const opened = await openModel(studentPath, { requireTokenizer: true });
  const student = opened.model;
  const binarized = [...student.quantized.values()];
  if (binarized.length === 0 || binarized.some((l) => l.k < 2)) {
    fail(`expected a .rabit file whose binarized layers have 2 or more paths, found ${studentPath}`);
  }
  const narrowest = Math.min(...binarized.map((l) => l.in));
  if (top > narrowest) fail(`--top must be at most the narrowest layer's ${narrowest} inputs, found ${top}`);
  const c = student.config;
  const ids = perplexityTokens((t) => opened.tokenizer!.encode(t), await Deno.readTextFile(textPath))
    .slice(0, maxTokens);
  const recorders = linearNames(c).filter((n) => student.quantized.has(n))
    .map((name) => new MomentLinear(student.quantized.get(name)!, name));
  const probe: LlamaModel = {
    config: c,
    params: student.params,
    quantized: new Map(recorders.map((r) => [r.name, r])),
  };
  for (let s = 0; s < ids.length; s += c.seqLen) {
    const win = ids.slice(s, s + c.seqLen);
    forwardChunk(probe, win, 0, createKvCache(probe, win.length), { lastLogitsOnly: true });
  }
  const layers = recorders.map((r) => {
    const layer = student.quantized.get(r.name)!;
    const moment = r.moment.map((v) => v / r.tokens);
    const d = directionalCorrelation(pathMatrix(layer, 0), pathMatrix(layer, 1), r.out, r.in, moment, top);
    return { name: r.name, ...d };
  });
  const f = (v: number | null) => (v === null ? "-" : v.toFixed(3)).padStart(8);
  console.error(
    `${"layer".padEnd(14)} ${"weight".padStart(8)} ${"output".padStart(8)} ${"in-share".padStart(8)} ` +
      `${"p1-share".padStart(8)} ${"leading".padStart(8)} ${"rest".padStart(8)}   (top ${top} directions)`,
  );
  for (const l of layers) {
    console.error(
      `${l.name.padEnd(14)} ${f(l.weightCorrelation)} ${f(l.outputCorrelation)} ${f(l.leadingInputShare)} ` +
        `${f(l.leadingPath1Share)} ${f(l.leadingCorrelation)} ${f(l.restCorrelation)}`,
    );
  }
  if (values.json) {
    console.log(JSON.stringify({ student: studentPath, text: textPath, top, tokens: ids.length, layers }));
  }
}
