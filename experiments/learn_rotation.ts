// A learned rotation of the residual stream (SpinQuant, arXiv 2405.16406, its R1 alone): the orthogonal Q of
// rotate_residual.ts, not fixed but trained so that the 2-bit model started from the rotated copy is as close
// to the teacher as it can be. The fixed choices measured there (random, Hadamard, the principal axes) never
// beat the teacher's own basis; this asks whether a basis fitted to the quantizer does.
//
// Each step: the rotated copy's block linears W'(Q) are binarized by the init (k sign planes with per-row and
// per-column scales, `--rounds` Gauss–Seidel rounds, no preconditioning), the student computes with those
// planes and the rotated float embedding and classifier, and its KL(teacher ‖ student) on a batch of training
// windows is backpropagated. The straight-through estimator passes dL/dŴ' to W' (the signs are piecewise
// constant in Q), and the chain through rotate_residual.ts's map gives the Euclidean gradient G = dL/dQ:
//
//   E' = E·Q                         G += Eᵀ·dE'
//   W' = W·diag(n)·Q  (wq … w3)      G += (W·diag(n))ᵀ·dW'
//   W' = Qᵀ·W         (wo, w2)       G += W·dW'ᵀ
//   C' = C·diag(n_f)·Q               G += (C·diag(n_f))ᵀ·dC'
//
// Q moves on the orthogonal group by the Cayley transform (Li et al., arXiv 2002.01113, as SpinQuant does):
// A = G·Qᵀ − Q·Gᵀ (skew), Q ← (I + ½ηÂ)⁻¹·(I − ½ηÂ)·Q with Â = A/‖A‖_F, so a step turns Q by about η
// whatever the gradient's scale, and η follows a cosine from --lr to 0. Without quantization the loss does not
// depend on an orthogonal Q at all, so A is zero there (a test checks it): what moves Q is the quantizer.
//
//   deno run -A experiments/learn_rotation.ts MODEL TEXT OUT.bin [--holdout 0.1111111111111111]
//       [--start none|pca] [--steps 200] [--lr 0.05] [--batch 4] [--window 256] [--windows 64] [--paths 2]
//       [--rounds 4] [--seed 1] [--json]
//
// The windows come from TEXT's first (1 − holdout) (what quantize trains on with that holdout; the default is
// the dev split of docs/evidence.md); the held-out part is never read. OUT.bin is a llama2.c file of the
// rotated teacher (the same function as MODEL's), for `quantize --model OUT.bin --tokenizer TOK`.

import { parseArgs } from "node:util";
import { openModel } from "../src/io/load_model.ts";
import { writeFileAtomic } from "../src/io/container.ts";
import { serializeLlama2cV1 } from "../src/io/llama2c.ts";
import { backwardChunk } from "../src/model/backward.ts";
import type { LlamaConfig } from "../src/model/config.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { BLOCK_LINEARS, type ParamTable } from "../src/model/params.ts";
import { dequantize } from "../src/quant/residual_binary.ts";
import { residualInit } from "../src/quant/residual_init.ts";
import { splitHoldout } from "../src/train/data.ts";
import { klDivergence } from "../src/train/losses.ts";
import { formatSeconds } from "../src/util/progress.ts";
import { Rng } from "../src/util/rng.ts";
import { parseOrExit, usageExit } from "./_run.ts";
import {
  backToBackWindows,
  orthogonalMatrix,
  principalAxes,
  READER_NORMS,
  rotateResidual,
} from "./rotate_residual.ts";

/** Replaces every block linear of `params` (in place) by its k-plane init, dequantized: what the student uses. */
export function binarizeBlockLinears(
  config: LlamaConfig,
  params: ParamTable,
  k: number,
  rounds: number,
): void {
  for (let l = 0; l < config.nLayers; l++) {
    for (const w of BLOCK_LINEARS) {
      const entry = params.entry(`layers.${l}.${w}`);
      const [out, inF] = entry.shape;
      const weight = params.get(`layers.${l}.${w}`);
      const { layer } = residualInit(weight, { out, in: inF }, { k, rounds, aIn: 0, aOut: 0 });
      weight.set(dequantize(layer));
    }
  }
}

/** G (d, d) += Aᵀ·B for A, B (rows, d) row-major. */
function addTransposedProduct(g: Float64Array, a: Float32Array, b: Float32Array, rows: number, d: number) {
  for (let r = 0; r < rows; r++) {
    const ao = r * d, bo = r * d;
    for (let i = 0; i < d; i++) {
      const ai = a[ao + i];
      if (ai === 0) continue;
      const go = i * d;
      for (let j = 0; j < d; j++) g[go + j] += ai * b[bo + j];
    }
  }
}

/** G (d, d) += W·Dᵀ for W, D (d, cols) row-major. */
function addProductTransposed(g: Float64Array, w: Float32Array, dw: Float32Array, d: number, cols: number) {
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += w[i * cols + c] * dw[j * cols + c];
      g[i * d + j] += s;
    }
  }
}

/** W (rows, d) · diag(n): a reader's weight with its norm folded in, before the rotation. */
function foldNorm(w: Float32Array, rows: number, d: number, n: Float32Array): Float32Array {
  const out = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) out[r * d + j] = w[r * d + j] * n[j];
  return out;
}

/**
 * dL/dQ (d, d), Euclidean, from the gradients `rotatedGrads` of the loss at the rotated table that
 * rotateResidual(config, params, Q) wrote (tok_embeddings, output and the block linears; the norms, all one
 * there, do not depend on Q). `params` is the unrotated model's table.
 */
export function rotationGradient(config: LlamaConfig, params: ParamTable, rotatedGrads: ParamTable) {
  const d = config.dim;
  const g = new Float64Array(d * d);
  addTransposedProduct(
    g,
    params.get("tok_embeddings"),
    rotatedGrads.get("tok_embeddings"),
    config.vocabSize,
    d,
  );
  for (let l = 0; l < config.nLayers; l++) {
    const p = `layers.${l}.`;
    for (const w of BLOCK_LINEARS) {
      const [rows, cols] = params.entry(`${p}${w}`).shape;
      const dw = rotatedGrads.get(`${p}${w}`);
      const norm = READER_NORMS[w as keyof typeof READER_NORMS]; // undefined for wo, w2: they write into it
      if (norm) {
        addTransposedProduct(
          g,
          foldNorm(params.get(`${p}${w}`), rows, d, params.get(`${p}${norm}`)),
          dw,
          rows,
          d,
        );
      } else {
        addProductTransposed(g, params.get(`${p}${w}`), dw, d, cols);
      }
    }
  }
  const classifier = config.sharedClassifier ? params.get("tok_embeddings") : params.get("output");
  const folded = foldNorm(classifier, config.vocabSize, d, params.get("norm"));
  addTransposedProduct(g, folded, rotatedGrads.get("output"), config.vocabSize, d);
  return g;
}

/** The skew direction A = G·Qᵀ − Q·Gᵀ (d, d) along which Q descends: dQ/dt = −A·Q lowers L. */
export function skewDirection(g: Float64Array, q: Float64Array, d: number): Float64Array {
  const a = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += g[i * d + k] * q[j * d + k] - q[i * d + k] * g[j * d + k];
      a[i * d + j] = s;
    }
  }
  return a;
}

/** Q ← (I + ½ηA)⁻¹·(I − ½ηA)·Q for a skew A (d, d): an orthogonal Q stays orthogonal. */
export function cayleyStep(q: Float64Array, a: Float64Array, eta: number, d: number): Float64Array {
  // Solve (I + ½ηA)·X = (I − ½ηA)·Q by Gauss–Jordan with partial pivoting on the augmented [M | R].
  const m = new Float64Array(d * d), r = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) m[i * d + j] = (i === j ? 1 : 0) + 0.5 * eta * a[i * d + j];
    for (let j = 0; j < d; j++) {
      let s = q[i * d + j];
      for (let k = 0; k < d; k++) s -= 0.5 * eta * a[i * d + k] * q[k * d + j];
      r[i * d + j] = s;
    }
  }
  for (let col = 0; col < d; col++) {
    let pivot = col;
    for (let i = col + 1; i < d; i++) if (Math.abs(m[i * d + col]) > Math.abs(m[pivot * d + col])) pivot = i;
    if (pivot !== col) {
      for (let j = 0; j < d; j++) {
        [m[col * d + j], m[pivot * d + j]] = [m[pivot * d + j], m[col * d + j]];
        [r[col * d + j], r[pivot * d + j]] = [r[pivot * d + j], r[col * d + j]];
      }
    }
    const inv = 1 / m[col * d + col];
    for (let j = 0; j < d; j++) m[col * d + j] *= inv, r[col * d + j] *= inv;
    for (let i = 0; i < d; i++) {
      if (i === col) continue;
      const f = m[i * d + col];
      if (f === 0) continue;
      for (let j = 0; j < d; j++) m[i * d + j] -= f * m[col * d + j], r[i * d + j] -= f * r[col * d + j];
    }
  }
  return r;
}

/** The student's mean KL to the teacher over `windows` and, with `wantGrad`, dL/dQ. */
export function rotatedStudentLoss(
  model: LlamaModel,
  q: Float64Array,
  windows: number[][],
  teacherLogits: Float32Array[],
  options: { k: number; rounds: number; quantize?: boolean; wantGrad?: boolean },
): { kl: number; grad?: Float64Array } {
  const c = model.config;
  const rotated = rotateResidual(c, model.params, q);
  if (options.quantize !== false) {
    binarizeBlockLinears(rotated.config, rotated.params, options.k, options.rounds);
  }
  const student: LlamaModel = { config: rotated.config, params: rotated.params, quantized: new Map() };
  const grads = options.wantGrad ? rotated.params.zerosLike() : undefined;
  const trainable = (name: string) => !name.endsWith("norm");
  let kl = 0;
  windows.forEach((ids, w) => {
    const T = ids.length;
    const { logits, activations } = forwardChunk(student, ids, 0, createKvCache(student, T), {
      keepActivations: options.wantGrad,
    });
    const loss = klDivergence(logits, teacherLogits[w], T, c.vocabSize);
    kl += loss.loss / windows.length;
    if (grads) {
      for (let i = 0; i < loss.dLogits.length; i++) loss.dLogits[i] /= windows.length;
      backwardChunk(student, activations!, loss.dLogits, { grads, trainable });
    }
  });
  return { kl, grad: grads && rotationGradient(c, model.params, grads) };
}

if (import.meta.main) {
  const script = "learn_rotation";
  const usage = "usage: learn_rotation.ts MODEL TEXT OUT.bin [--holdout P] [--start none|pca] [--steps N] " +
    "[--lr ETA] [--batch B] [--window S] [--windows W] [--paths K] [--rounds R] [--seed N] [--json]";
  const fail: (message: string) => never = (message) => usageExit(script, usage, message);
  const { values, positionals } = parseOrExit(script, usage, () =>
    parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        holdout: { type: "string", default: String(1 / 9) },
        start: { type: "string", default: "none" },
        steps: { type: "string", default: "200" },
        lr: { type: "string", default: "0.05" },
        batch: { type: "string", default: "4" },
        window: { type: "string", default: "256" },
        windows: { type: "string", default: "64" },
        paths: { type: "string", default: "2" },
        rounds: { type: "string", default: "4" },
        seed: { type: "string", default: "1" },
        json: { type: "boolean" },
      },
    }));
  if (positionals.length !== 3) {
    fail(`expected MODEL, TEXT and OUT.bin, found ${positionals.length} arguments`);
  }
  const integer = (name: keyof typeof values, min: number) => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < min) {
      fail(`--${name}: expected an integer ≥ ${min}, found ${values[name]}`);
    }
    return v;
  };
  const steps = integer("steps", 1), batch = integer("batch", 1), window = integer("window", 2);
  const windowCount = integer("windows", 1), k = integer("paths", 1), rounds = integer("rounds", 0);
  const seed = integer("seed", 0);
  const lr = Number(values.lr), holdout = Number(values.holdout);
  if (!(lr > 0 && lr < 1)) fail(`--lr: expected a number in (0, 1), found ${values.lr}`);
  if (!(holdout > 0 && holdout < 1)) {
    fail(`--holdout: expected a fraction in (0, 1), found ${values.holdout}`);
  }
  if (values.start !== "none" && values.start !== "pca") {
    fail(`--start: expected none or pca, found ${values.start}`);
  }
  if (batch > windowCount) fail(`--batch ${batch} is more than --windows ${windowCount}`);
  const { model, tokenizer } = await openModel(positionals[0], { requireTokenizer: true });
  if (window > model.config.seqLen) {
    fail(`--window ${window} exceeds the model's seq_len ${model.config.seqLen}`);
  }
  const text = await Deno.readTextFile(positionals[1]).catch((e: Error) => fail(`TEXT: ${e.message}`));
  const all = backToBackWindows(tokenizer!.encode(splitHoldout(text, holdout).train), window);
  if (all.length < 2 * windowCount) {
    fail(
      `TEXT's training part gives ${all.length} windows of ${window} tokens, fewer than 2 × --windows ` +
        `${windowCount} (the steps sample --windows of them; as many others score the start and the end)`,
    );
  }
  // Spread the windows over the training part; the window after each of the first 16 (never sampled, as the
  // stride is at least 2) scores the start and the end.
  const stride = Math.floor(all.length / windowCount);
  const train = Array.from({ length: windowCount }, (_, i) => all[i * stride]);
  const check = Array.from({ length: Math.min(16, windowCount) }, (_, i) => all[i * stride + 1]);
  const teacher = (ws: number[][]) =>
    ws.map((ids) => forwardChunk(model, ids, 0, createKvCache(model, ids.length)).logits);
  const trainLogits = teacher(train), checkLogits = teacher(check);
  const d = model.config.dim;
  let q = values.start === "pca" ? principalAxes(model, train) : orthogonalMatrix(d, "none", 0);
  const opts = { k, rounds };
  const checkKl = () => rotatedStudentLoss(model, q, check, checkLogits, opts).kl;
  const startKl = checkKl();
  const rng = new Rng(seed);
  const started = performance.now();
  const trace: { step: number; kl: number; eta: number }[] = [];
  for (let step = 1; step <= steps; step++) {
    const pick = Array.from({ length: batch }, () => Math.floor(rng.next() * windowCount));
    const { kl, grad } = rotatedStudentLoss(
      model,
      q,
      pick.map((i) => train[i]),
      pick.map((i) => trainLogits[i]),
      { ...opts, wantGrad: true },
    );
    const a = skewDirection(grad!, q, d);
    let norm = 0;
    for (const v of a) norm += v * v;
    norm = Math.sqrt(norm);
    const eta = 0.5 * lr * (1 + Math.cos(Math.PI * (step - 1) / steps));
    if (norm > 0) q = cayleyStep(q, a.map((v) => v / norm), eta, d);
    trace.push({ step, kl, eta });
    if (!values.json && (step % 10 === 0 || step === 1)) {
      const rate = step / ((performance.now() - started) / 1000);
      console.error(
        `step ${step}/${steps}  kl ${kl.toFixed(4)}  η ${eta.toExponential(2)}  ${
          rate.toFixed(2)
        } steps/s  ` +
          `ETA ${formatSeconds((steps - step) / rate)}`,
      );
    }
  }
  const endKl = checkKl();
  const rotated = rotateResidual(model.config, model.params, q);
  await writeFileAtomic(positionals[2], serializeLlama2cV1(rotated.config, rotated.params));
  const seconds = (performance.now() - started) / 1000;
  const result = {
    out: positionals[2],
    start: values.start,
    steps,
    lr,
    batch,
    window,
    windows: windowCount,
    k,
    rounds,
    seed,
    checkKlStart: startKl,
    checkKlEnd: endKl,
    seconds,
    trace,
  };
  if (values.json) console.log(JSON.stringify(result));
  else {console.log(
      `${positionals[2]}: learned rotation, check-window KL of the ${k}-plane init ${startKl.toFixed(4)} → ${
        endKl.toFixed(4)
      } (${seconds.toFixed(0)} s)`,
    );}
}
