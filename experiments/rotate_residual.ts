// Writes a copy of a model whose residual stream is rotated by a fixed orthogonal matrix Q (dim × dim), the
// function unchanged (QuaRot, arXiv 2404.00456, without the online rotations): a full-precision model computes
// the same logits either way, but its binarized layers see other weight matrices, so a 2-bit student started
// from the rotated copy can land elsewhere. RMSNorm(xQ) = RMSNorm(x)·Q, so with every norm weight folded into
// the layer that reads it:
//   tok_embeddings E (vocab, dim)        → E·Q
//   wq, wk, wv, w1, w3 W (out, dim)      → W·diag(n)·Q      n: the block's attention_norm / ffn_norm weight
//   wo, w2 W (dim, in)                   → Qᵀ·W             (they write into the residual stream)
//   output C (vocab, dim)                → C·diag(n_f)·Q    n_f: the final norm weight; the classifier is
//                                                           written unshared, since E·Q ≠ C·diag(n_f)·Q
//   every norm weight                    → 1
// `--rotation hadamard` uses a Walsh–Hadamard matrix with seeded random signs (dim a power of two), `random`
// the Q of a seeded Gaussian matrix's QR, `none` only folds the norms (the control: the same function and the
// same norms-at-one start, no rotation), and `pca` the principal axes of the normed residual stream on the
// first --tokens tokens of --text (the eigenvectors of M = E[r rᵀ], r = RMSNorm(x) without its weight, over
// every block's two norms and the final one): the opposite of a random rotation, it lines the strongest input
// directions up with single columns, where a layer's per-column scales can weigh them (and the diagonal
// input statistics of the function-aware init see all of M).
//
//   deno run -A experiments/rotate_residual.ts MODEL OUT.bin [--rotation hadamard|random|none|pca] [--seed N]
//                                              [--text F] [--tokens 4096]
//
// OUT.bin is a llama2.c (v1) file, so `quantize --model OUT.bin --tokenizer TOK` trains from it with the
// rotated model as its own teacher (the same function as MODEL's).

import { parseArgs } from "node:util";
import { openModel } from "../src/io/load_model.ts";
import { writeFileAtomic } from "../src/io/container.ts";
import { serializeLlama2cV1 } from "../src/io/llama2c.ts";
import type { LlamaConfig } from "../src/model/config.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { ParamTable } from "../src/model/params.ts";
import { BOS } from "../src/io/tokenizer.ts";
import { Rng } from "../src/util/rng.ts";
import { symmetricEigen } from "./input_directions.ts";
import { parseOrExit, usageExit } from "./_run.ts";

/** A dim × dim orthogonal matrix, row-major. */
export function orthogonalMatrix(
  dim: number,
  kind: "hadamard" | "random" | "none",
  seed: number,
): Float64Array {
  const q = new Float64Array(dim * dim);
  const rng = new Rng(seed);
  if (kind === "none") {
    for (let i = 0; i < dim; i++) q[i * dim + i] = 1;
  } else if (kind === "hadamard") {
    if ((dim & (dim - 1)) !== 0) {
      throw new RangeError(`--rotation hadamard: dim must be a power of two, found ${dim}`);
    }
    // H[i][j] = (−1)^popcount(i & j) / √dim, then each row's sign flipped at random: diag(s)·H is orthogonal.
    for (let i = 0; i < dim; i++) {
      const sign = rng.next() < 0.5 ? -1 : 1;
      for (let j = 0; j < dim; j++) {
        let bits = i & j, parity = 0;
        while (bits) parity ^= bits & 1, bits >>= 1;
        q[i * dim + j] = sign * (parity ? -1 : 1) / Math.sqrt(dim);
      }
    }
  } else {
    // Gram–Schmidt on the rows of a Gaussian matrix (twice, for orthogonality to rounding).
    for (let i = 0; i < dim * dim; i++) q[i] = rng.normal();
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < dim; i++) {
        for (let k = 0; k < i; k++) {
          let dot = 0;
          for (let j = 0; j < dim; j++) dot += q[i * dim + j] * q[k * dim + j];
          for (let j = 0; j < dim; j++) q[i * dim + j] -= dot * q[k * dim + j];
        }
        let norm = 0;
        for (let j = 0; j < dim; j++) norm += q[i * dim + j] ** 2;
        norm = Math.sqrt(norm);
        for (let j = 0; j < dim; j++) q[i * dim + j] /= norm;
      }
    }
  }
  return q;
}

/** The block linears that read the normed residual stream, each with the norm whose weight folds into it. */
export const READER_NORMS = {
  wq: "attention_norm",
  wk: "attention_norm",
  wv: "attention_norm",
  w1: "ffn_norm",
  w3: "ffn_norm",
} as const;

/** Windows of `window` tokens cut from `ids` back to back, each with BOS first as every window the model reads. */
export function backToBackWindows(ids: number[], window: number): number[][] {
  const windows: number[][] = [];
  for (let at = 0; at + window <= ids.length; at += window) {
    windows.push([BOS, ...ids.slice(at + 1, at + window)]);
  }
  return windows;
}

/** W (rows, dim) → W·diag(n)·Q, for a layer that reads the (normed) residual stream. */
function rotateInputs(
  w: Float32Array,
  rows: number,
  dim: number,
  n: Float32Array | undefined,
  q: Float64Array,
) {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dim; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += w[r * dim + k] * (n ? n[k] : 1) * q[k * dim + j];
      out[r * dim + j] = s;
    }
  }
  return out;
}

/** W (dim, cols) → Qᵀ·W, for a layer that writes into the residual stream. */
function rotateOutputs(w: Float32Array, dim: number, cols: number, q: Float64Array) {
  const out = new Float32Array(dim * cols);
  for (let i = 0; i < dim; i++) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += q[k * dim + i] * w[k * cols + c];
      out[i * cols + c] = s;
    }
  }
  return out;
}

/** The rotated model: same function, residual stream x·Q, norms folded, classifier unshared. */
export function rotateResidual(config: LlamaConfig, params: ParamTable, q: Float64Array) {
  const d = config.dim;
  const outConfig: LlamaConfig = { ...config, sharedClassifier: false };
  const specs: [string, number[]][] = [...params.entries].map(([name, e]) => [name, e.shape]);
  if (config.sharedClassifier) specs.push(["output", [config.vocabSize, d]]);
  const out = ParamTable.fromSpecs(specs);
  const ones = (name: string) => out.get(name).fill(1);
  out.get("tok_embeddings").set(
    rotateInputs(params.get("tok_embeddings"), config.vocabSize, d, undefined, q),
  );
  for (let l = 0; l < config.nLayers; l++) {
    const p = `layers.${l}.`;
    for (const [w, norm] of Object.entries(READER_NORMS)) {
      const rows = params.entry(`${p}${w}`).shape[0];
      out.get(`${p}${w}`).set(rotateInputs(params.get(`${p}${w}`), rows, d, params.get(`${p}${norm}`), q));
    }
    out.get(`${p}wo`).set(rotateOutputs(params.get(`${p}wo`), d, d, q));
    out.get(`${p}w2`).set(rotateOutputs(params.get(`${p}w2`), d, config.hiddenDim, q));
    ones(`${p}attention_norm`);
    ones(`${p}ffn_norm`);
  }
  const classifier = config.sharedClassifier ? params.get("tok_embeddings") : params.get("output");
  out.get("output").set(rotateInputs(classifier, config.vocabSize, d, params.get("norm"), q));
  ones("norm");
  return { config: outConfig, params: out };
}

/**
 * The principal axes of the normed residual stream as a rotation (dim × dim, row-major, column j the axis of
 * the j-th largest eigenvalue): M = E[r rᵀ] over every token of `windows` at every norm's input (each block's
 * two and the final one), with r = RMSNorm(x) before its weight, so every site and token weighs alike.
 */
export function principalAxes(model: LlamaModel, windows: number[][]): Float64Array {
  const d = model.config.dim;
  const identity = orthogonalMatrix(d, "none", 0);
  const folded = rotateResidual(model.config, model.params, identity); // norms at 1: their outputs are r
  const plain: LlamaModel = { ...folded, quantized: new Map() };
  const m = new Float64Array(d * d);
  let rows = 0;
  const add = (x: Float32Array) => {
    for (let t = 0; t < x.length / d; t++, rows++) {
      for (let i = 0; i < d; i++) {
        const xi = x[t * d + i];
        for (let j = 0; j < d; j++) m[i * d + j] += xi * x[t * d + j];
      }
    }
  };
  for (const ids of windows) {
    const acts = forwardChunk(plain, ids, 0, createKvCache(plain, ids.length), { keepActivations: true })
      .activations!;
    for (const b of acts.blocks) add(b.xnAtt), add(b.xnFfn);
    add(acts.xnFinal);
  }
  for (let i = 0; i < m.length; i++) m[i] /= rows;
  const { vectors } = symmetricEigen(m, d);
  const q = new Float64Array(d * d);
  for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) q[k * d + j] = vectors[j][k];
  return q;
}

if (import.meta.main) {
  const usage = "usage: rotate_residual.ts MODEL OUT.bin [--rotation hadamard|random|none|pca] [--seed N] " +
    "[--text F] [--tokens 4096]";
  const fail: (message: string) => never = (message) => usageExit("rotate_residual", usage, message);
  const { values, positionals } = parseOrExit("rotate_residual", usage, () =>
    parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        rotation: { type: "string", default: "hadamard" },
        seed: { type: "string", default: "1" },
        text: { type: "string" },
        tokens: { type: "string", default: "4096" },
      },
    }));
  const kind = values.rotation;
  if (positionals.length !== 2) fail(`expected MODEL and OUT.bin, found ${positionals.length} arguments`);
  if (!(kind === "hadamard" || kind === "random" || kind === "none" || kind === "pca")) {
    fail(`--rotation: expected hadamard, random, none or pca, found ${kind}`);
  }
  const seed = Number(values.seed), tokens = Number(values.tokens);
  if (!Number.isInteger(seed)) fail(`--seed: expected an integer, found ${values.seed}`);
  if (!Number.isInteger(tokens) || tokens < 1) {
    fail(`--tokens: expected an integer ≥ 1, found ${values.tokens}`);
  }
  if ((kind === "pca") !== (values.text !== undefined)) {
    fail("--text is needed by --rotation pca, and only by it");
  }
  const { model, tokenizer } = await openModel(positionals[0], { requireTokenizer: kind === "pca" });
  let q: Float64Array;
  if (kind === "pca") {
    const text = await Deno.readTextFile(values.text!).catch((e: Error) => fail(`--text: ${e.message}`));
    const ids = tokenizer!.encode(text);
    const window = Math.min(512, model.config.seqLen);
    const windows = backToBackWindows(ids, window).slice(0, Math.ceil(tokens / window));
    if (!windows.length) {
      fail(`--text: ${values.text} has ${ids.length} tokens, fewer than one window of ${window}`);
    }
    q = principalAxes(model, windows);
  } else {
    q = orthogonalMatrix(model.config.dim, kind as "hadamard" | "random" | "none", seed);
  }
  const rotated = rotateResidual(model.config, model.params, q);
  await writeFileAtomic(positionals[1], serializeLlama2cV1(rotated.config, rotated.params));
  const how = kind === "pca" ? `pca of ${values.text}` : `${kind}, seed ${seed}`;
  console.log(`${positionals[1]}: residual stream rotated (${how})`);
}
