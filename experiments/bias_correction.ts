// Would a float bias per output channel of the binarized layers buy accuracy? A trained k = 2 student's
// layers leave a mean error: over real inputs, what the paths give differs from the teacher on average. A
// bias (out floats per layer, 64 for stories260K's projections: about 0.25 bits per weight at f16 there, a
// rounding error for a large model) could hold that mean, and the `.rabit` format has none today. Before
// building it into training, the kernels and the file, this measures it after the fact on the CPU: biases
// are estimated on windows the student trained on, added to the packed layers, and the held-out text is
// scored. Three estimates, each fitted in forward order so a bias sees the earlier ones:
//
//   local:    every binarized layer gets mean(x·W_tᵀ − What(x)) over its own inputs x in the student, W_t
//             the teacher's weight: each layer's mean error against its full-precision counterpart.
//   residual: each block's w2 (whose output is added to the residual stream) gets mean(h_t − h_s) of the
//             block's output hidden states, teacher minus student: the stream's mean drift, block by block.
//   trained:  every layer's bias trained alone (the student's signs, scales and norms fixed) on the KL to the
//             teacher's next-token distribution over the calibration windows, with Adam: what the biases
//             can add to this student, fitted to the objective rather than to a local mean.
//
//   deno run -A experiments/bias_correction.ts STUDENT.rabit TEXT [--holdout P] [--windows N]
//                                              [--calib-windows C] [--steps N] [--lr X]
//                                              [--estimates local,residual,trained] [--json]
//
// TEXT and --holdout as for eval: the held-out tail is scored, and the C calibration windows of the model's
// seq_len are spread over the rest (what quantize trained on). Dev protocol (experiments/full_budget_dev.json):
// TEXT = .tmp/ablation/train.txt, P = 1/9.

import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { backwardChunk } from "../src/model/backward.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import type { LinearLayer } from "../src/model/linear.ts";
import { matmul } from "../src/model/ops.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { splitHoldout } from "../src/train/data.ts";
import { klDivergence } from "../src/train/losses.ts";
import { studentExperimentArgs } from "./_student_args.ts";

/** A layer whose output gets `bias` (out) added to every row; `onInput` sees each input it is given. */
export class BiasedLinear implements LinearLayer {
  readonly out: number;
  readonly in: number;
  onInput?: (x: Float32Array, T: number) => void;
  /** (out) gradient of the loss at the bias, summed by backward until cleared. */
  readonly dBias: Float64Array;
  constructor(readonly inner: LinearLayer, readonly bias: Float32Array) {
    this.out = inner.out;
    this.in = inner.in;
    this.dBias = new Float64Array(bias.length);
  }
  forward(x: Float32Array, T: number): Float32Array {
    this.onInput?.(x, T);
    const y = this.inner.forward(x, T); // (T, out)
    for (let t = 0; t < T; t++) for (let o = 0; o < this.out; o++) y[t * this.out + o] += this.bias[o];
    return y;
  }
  /** dX += dY·What as the layer's own backward gives it; the bias's gradient Σ_t dY goes to `dBias`. */
  backward(x: Float32Array, dY: Float32Array, T: number, dX: Float32Array): void {
    this.inner.backward(x, dY, T, dX);
    for (let t = 0; t < T; t++) for (let o = 0; o < this.out; o++) this.dBias[o] += dY[t * this.out + o];
  }
}

/** `student` with every binarized layer wrapped in a zero {@link BiasedLinear}, and the wrappers by name. */
export function withBiases(student: LlamaModel): { model: LlamaModel; layers: Map<string, BiasedLinear> } {
  const layers = new Map(
    [...student.quantized].map((
      [name, layer],
    ) => [name, new BiasedLinear(layer, new Float32Array(layer.out))]),
  );
  return { model: { ...student, quantized: layers }, layers };
}

/**
 * The "local" estimate: in forward order, each layer's bias becomes mean(x·W_tᵀ − What(x)) over its inputs x
 * in the student (with the earlier biases in place), W_t the teacher's (out, in) weight of the same name.
 */
export function fitLocal(student: LlamaModel, teacher: LlamaModel, windows: number[][]): LlamaModel {
  const { model, layers } = withBiases(student);
  for (const [name, layer] of layers) {
    const wT = teacher.params.get(name); // (out, in)
    const sum = new Float64Array(layer.out);
    let rows = 0;
    layer.onInput = (x, T) => {
      const want = matmul(x, wT, T, layer.in, layer.out); // (T, out)
      const got = layer.inner.forward(x, T);
      for (let t = 0; t < T; t++) {
        for (let o = 0; o < layer.out; o++) sum[o] += want[t * layer.out + o] - got[t * layer.out + o];
      }
      rows += T;
    };
    for (const w of windows) forwardChunk(model, w, 0, createKvCache(model));
    layer.onInput = undefined;
    for (let o = 0; o < layer.out; o++) layer.bias[o] = sum[o] / rows;
  }
  return model;
}

/** Each window's block outputs [window][block] (T, D) under `model`. */
function blockOutputs(model: LlamaModel, windows: number[][]): Float32Array[][] {
  return windows.map((w) => forwardChunk(model, w, 0, createKvCache(model), { keepHidden: true }).hidden!);
}

/**
 * The "residual" estimate: block by block, the bias of the block's w2 (whose output is added to the
 * residual stream) becomes the mean over the windows' tokens of teacher-minus-student block output.
 */
export function fitResidual(student: LlamaModel, teacher: LlamaModel, windows: number[][]): LlamaModel {
  const { model, layers } = withBiases(student);
  const D = student.config.dim;
  const wanted = blockOutputs(teacher, windows);
  for (let l = 0; l < student.config.nLayers; l++) {
    const got = blockOutputs(model, windows);
    const sum = new Float64Array(D);
    let rows = 0;
    for (let w = 0; w < windows.length; w++) {
      const ht = wanted[w][l], hs = got[w][l];
      for (let i = 0; i < ht.length; i++) sum[i % D] += ht[i] - hs[i];
      rows += ht.length / D;
    }
    const bias = layers.get(`layers.${l}.w2`)!.bias;
    for (let d = 0; d < D; d++) bias[d] = sum[d] / rows;
  }
  return model;
}

/** Mean KL(teacher ‖ model) of one window and, through backward, every bias's gradient (in dBias). */
export function klAndBiasGradients(
  model: LlamaModel,
  layers: Iterable<BiasedLinear>,
  window: number[],
  teacherLogits: Float32Array,
): number {
  const { logits, activations } = forwardChunk(model, window, 0, createKvCache(model), {
    keepActivations: true,
  });
  const { loss, dLogits } = klDivergence(logits, teacherLogits, window.length, model.config.vocabSize);
  for (const l of layers) l.dBias.fill(0);
  backwardChunk(model, activations!, dLogits, { paramGrads: false });
  return loss;
}

/**
 * The "trained" estimate: Adam (β 0.9 / 0.999) on the biases alone, one window a step in turn, the lr
 * decaying on a cosine from `lr` to 0, on the mean KL(teacher ‖ student) of the window's positions.
 */
export function fitTrained(
  student: LlamaModel,
  teacher: LlamaModel,
  windows: number[][],
  o: { steps: number; lr: number },
): LlamaModel {
  const { model, layers } = withBiases(student);
  const teacherLogits = windows.map((w) => forwardChunk(teacher, w, 0, createKvCache(teacher)).logits);
  const all = [...layers.values()];
  const m = all.map((l) => new Float64Array(l.out)), v = all.map((l) => new Float64Array(l.out));
  for (let step = 1; step <= o.steps; step++) {
    const w = (step - 1) % windows.length;
    klAndBiasGradients(model, all, windows[w], teacherLogits[w]);
    const rate = o.lr * 0.5 * (1 + Math.cos(Math.PI * (step - 1) / o.steps));
    all.forEach((l, i) => {
      for (let j = 0; j < l.out; j++) {
        const g = l.dBias[j];
        m[i][j] = 0.9 * m[i][j] + 0.1 * g;
        v[i][j] = 0.999 * v[i][j] + 0.001 * g * g;
        const mHat = m[i][j] / (1 - 0.9 ** step), vHat = v[i][j] / (1 - 0.999 ** step);
        l.bias[j] -= rate * mHat / (Math.sqrt(vHat) + 1e-8);
      }
    });
  }
  return model;
}

/** Mean |b| over every bias of a model from {@link withBiases}. */
export function meanAbsBias(model: LlamaModel): number {
  let s = 0, n = 0;
  for (const layer of model.quantized.values()) {
    for (const b of (layer as BiasedLinear).bias) [s, n] = [s + Math.abs(b), n + 1];
  }
  return s / n;
}

/**
 * `count` windows of `length` tokens spread evenly over `ids` (BOS first, as perplexityTokens gives them);
 * each window's first token becomes BOS. Fewer than `count` fit: an error naming both.
 */
export function spreadWindows(ids: number[], count: number, length: number): number[][] {
  const spacing = Math.floor((ids.length - 1) / length / count);
  if (spacing < 1) {
    throw new RangeError(`expected ${count} windows of ${length} tokens, found ${ids.length} tokens`);
  }
  return Array.from({ length: count }, (_, i) => {
    const w = ids.slice(i * spacing * length, i * spacing * length + length);
    w[0] = ids[0];
    return w;
  });
}

/** The estimates, in the order the script runs them. */
export const ESTIMATES = ["local", "residual", "trained"] as const;

async function main(): Promise<void> {
  const { studentPath, textPath, text, holdout, maxWindows, json, teacher, student, extra, fail } =
    await studentExperimentArgs(
      "bias_correction.ts",
      { "calib-windows": "16", steps: "200", lr: "1e-3", estimates: ESTIMATES.join(",") },
      "[--calib-windows C] [--steps N] [--lr X] [--estimates local,residual,trained]",
    );
  const estimates = extra.estimates.split(",");
  const unknown = estimates.find((e) => !(ESTIMATES as readonly string[]).includes(e));
  if (unknown !== undefined) fail(`--estimates expects some of ${ESTIMATES.join(", ")}, found "${unknown}"`);
  const calibWindows = Number(extra["calib-windows"]), steps = Number(extra.steps), lr = Number(extra.lr);
  if (!(Number.isInteger(calibWindows) && calibWindows >= 1)) {
    fail(`--calib-windows expects an integer ≥ 1, found "${extra["calib-windows"]}"`);
  }
  if (!(Number.isInteger(steps) && steps >= 1)) {
    fail(`--steps expects an integer ≥ 1, found "${extra.steps}"`);
  }
  if (!(lr > 0 && lr < 1)) fail(`--lr expects a number in (0, 1), found "${extra.lr}"`);
  const { train, heldOut } = splitHoldout(text, holdout);
  const encode = (t: string) => teacher.tokenizer!.encode(t);
  const scored = perplexityTokens(encode, heldOut);
  const S = student.model.config.seqLen;
  const trainIds = perplexityTokens(encode, train);
  let calib: number[][] = [];
  try {
    calib = spreadWindows(trainIds, calibWindows, S);
  } catch (e) {
    fail(`the trained part: ${(e as Error).message}`);
  }

  const score = async (model: LlamaModel) =>
    (await perplexity(new CpuSession(model), scored, { maxWindows })).ppl;

  // The objective on the scored text: mean KL(teacher ‖ model) over the windows perplexity scores.
  const scoredWindows = Array.from(
    { length: Math.min(Math.floor(scored.length / S), maxWindows) },
    (_, w) => scored.slice(w * S, (w + 1) * S),
  );
  const teacherLogits = scoredWindows.map((w) =>
    forwardChunk(teacher.model, w, 0, createKvCache(teacher.model)).logits
  );
  const scoredKl = (model: LlamaModel) =>
    scoredWindows.reduce(
      (sum, w, i) =>
        sum +
        klDivergence(
          forwardChunk(model, w, 0, createKvCache(model)).logits,
          teacherLogits[i],
          S,
          model.config.vocabSize,
        )
          .loss,
      0,
    ) / scoredWindows.length;
  const teacherPpl = await score(teacher.model);
  const studentKl = scoredKl(student.model);
  const studentPpl = await score(student.model);
  const rows: {
    estimate: string;
    ppl: number;
    ratio: number;
    change: number;
    kl: number;
    meanAbsBias: number;
  }[] = [];
  for (
    const [estimate, fit] of [
      ["local", () => fitLocal(student.model, teacher.model, calib)],
      ["residual", () => fitResidual(student.model, teacher.model, calib)],
      ["trained", () => fitTrained(student.model, teacher.model, calib, { steps, lr })],
    ] as const
  ) {
    if (!estimates.includes(estimate)) continue;
    const model = fit();
    const ppl = await score(model);
    rows.push({
      estimate,
      ppl,
      ratio: ppl / teacherPpl,
      change: ppl / studentPpl - 1,
      kl: scoredKl(model),
      meanAbsBias: meanAbsBias(model),
    });
    if (!json) {
      console.log(
        `${estimate.padEnd(9)} ppl ${ppl.toFixed(3)} (${(ppl / teacherPpl).toFixed(3)}×, ` +
          `${(100 * (ppl / studentPpl - 1)).toFixed(2)} % against no bias), KL ${
            rows.at(-1)!.kl.toFixed(4)
          }, mean |b| ${meanAbsBias(model).toFixed(4)}`,
      );
    }
  }
  if (json) {
    console.log(JSON.stringify({
      student: studentPath,
      text: textPath,
      holdout,
      calibWindows,
      steps,
      lr,
      teacherPpl,
      studentPpl,
      studentKl,
      rows,
    }));
  } else {
    console.log(
      `teacher ${teacherPpl.toFixed(3)}, student ${studentPpl.toFixed(3)}, KL ${studentKl.toFixed(4)} (${
        (studentPpl / teacherPpl).toFixed(3)
      }×)`,
    );
  }
}

if (import.meta.main) await main();
