// The reference Llama backward over one chunk, from the activations forwardChunk kept: parameter
// gradients in the flat table's layout, plus hooks for per-linear statistics and hidden-state losses.
//
// Dimension legend: T tokens in the chunk (S = T: the chunk starts at position 0), D model width,
// H hidden, V vocabulary, kvD key/value width, nH heads, in/out features of a linear layer.

import { headSize, kvDim } from "./config.ts";
import { type ChunkActivations, createKvCache, forwardChunk } from "./forward.ts";
import { classifierWeight, linearLayer, type LlamaModel } from "./model.ts";
import {
  attentionBackward,
  crossEntropySoftmaxBackward,
  matmulBackward,
  rmsnormBackward,
  ropeBackward,
  swigluBackward,
} from "./ops_backward.ts";
import type { ParamTable } from "./params.ts";

/**
 * Sees one block linear during the backward: its input x (T, in) and the loss gradient dY (T, out) at
 * its output (for wq/wk: before rotary). The arrays are never modified afterwards, so they may be kept.
 */
export type LinearHook = (name: string, x: Float32Array, dY: Float32Array) => void;

/** Options of {@link backwardChunk}. */
export interface BackwardOptions {
  /** Called once for every block linear (layers.L.{wo,w2,w1,w3,wq,wk,wv}, last layer first). */
  onLinear?: LinearHook;
  /**
   * Extra gradients (T, D) added at each block's output hidden state (what forwardChunk's keepHidden
   * returns), e.g. from a hidden-state MSE loss. One entry per block; undefined entries add nothing.
   */
  dHidden?: (Float32Array | undefined)[];
  /** Compute parameter gradients (default true); false gives only activation gradients and hook calls. */
  paramGrads?: boolean;
  /**
   * Only these parameters of model.params get gradients (default: all). Skipping the classifier and
   * embedding saves their (V, D) products when they are not trained.
   */
  trainable?: (name: string) => boolean;
  /** Add parameter gradients into this table (the layout of model.params) instead of a new one. */
  grads?: ParamTable;
  /** Add the weight gradients of replaced layers (model.quantized) into this map instead of a new one. */
  linearGrads?: Map<string, Float32Array>;
  /** Return the total gradient at each block's output (see {@link BackwardResult.dHidden}). */
  keepDHidden?: boolean;
}

/** Result of {@link backwardChunk}. */
export interface BackwardResult {
  /**
   * dL/dθ for every tensor of model.params (absent with paramGrads: false). A shared classifier's
   * gradient and the embedding gather's gradient both land in tok_embeddings.
   */
  grads?: ParamTable;
  /**
   * dL/dW (out, in) of every replaced layer (model.quantized), by name, W being the matrix the layer
   * computes with (a binarized layer's What). The training code maps it to latent/scale gradients
   * (METHOD.md §2). Absent with paramGrads: false.
   */
  linearGrads?: Map<string, Float32Array>;
  /** (T, D) gradient at the embedded tokens (the residual stream entering block 0). */
  dEmbedded: Float32Array;
  /** Per block (T, D): gradient at the block's output, injected dHidden included (with keepDHidden). */
  dHidden?: Float32Array[];
}

/**
 * Backpropagates dLogits (T, V) through the model whose forward produced `activations`
 * (forwardChunk with keepActivations, pos0 = 0, all T logits).
 *
 * @example
 * ```ts
 * import { backwardChunk } from "./backward.ts";
 * import { createKvCache, forwardChunk } from "./forward.ts";
 * import { llamaParamSpecs, ParamTable } from "./params.ts";
 * const config = {
 *   dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 4,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000,
 * };
 * const params = ParamTable.fromSpecs(llamaParamSpecs(config));
 * params.data.fill(0.1);
 * const model = { config, params, quantized: new Map() };
 * const { logits, activations } = forwardChunk(model, [1, 2, 3], 0, createKvCache(model), { keepActivations: true });
 * const { grads } = backwardChunk(model, activations!, new Float32Array(logits.length).fill(1e-3));
 * grads!.get("layers.0.wq"); // (8, 8)
 * ```
 */
export function backwardChunk(
  model: LlamaModel,
  activations: ChunkActivations,
  dLogits: Float32Array,
  options: BackwardOptions = {},
): BackwardResult {
  const c = model.config;
  const { T, blocks } = activations;
  const D = c.dim, H = c.hiddenDim, V = c.vocabSize, kvD = kvDim(c), hs = headSize(c);
  if (activations.pos0 !== 0) {
    throw new RangeError(
      `backwardChunk: expected activations of a chunk at pos0 = 0, found pos0 = ${activations.pos0}`,
    );
  }
  if (blocks.length !== c.nLayers) {
    throw new RangeError(
      `backwardChunk: expected activations of ${c.nLayers} blocks, found ${blocks.length}`,
    );
  }
  if (dLogits.length !== T * V) {
    throw new RangeError(
      `backwardChunk: expected dLogits of ${T}x${V}=${T * V} values, found ${dLogits.length}`,
    );
  }
  if (options.dHidden && options.dHidden.length !== c.nLayers) {
    throw new RangeError(
      `backwardChunk: expected dHidden for ${c.nLayers} blocks, found ${options.dHidden.length}`,
    );
  }
  const wantParams = options.paramGrads !== false;
  const grads = wantParams ? (options.grads ?? model.params.zerosLike()) : undefined;
  if (grads && grads.count !== model.params.count) {
    throw new RangeError(
      `backwardChunk: expected options.grads with the layout of model.params (${model.params.count} floats), found ${grads.count}`,
    );
  }
  const linearGrads = wantParams ? (options.linearGrads ?? new Map<string, Float32Array>()) : undefined;
  const gradOf = (name: string) => options.trainable?.(name) === false ? undefined : grads?.get(name);

  /** dX (T, in) += dY · W, dW += dYᵀ · x, and the hook. */
  const linearBackward = (name: string, x: Float32Array, dY: Float32Array, dX: Float32Array) => {
    options.onLinear?.(name, x, dY);
    const layer = linearLayer(model, name);
    let dW: Float32Array | undefined;
    if (!model.quantized.has(name)) dW = gradOf(name);
    else if (linearGrads) {
      dW = linearGrads.get(name) ?? new Float32Array(layer.out * layer.in);
      linearGrads.set(name, dW);
    }
    layer.backward(x, dY, T, dX, dW);
  };

  // Classifier and final norm.
  const dXn = new Float32Array(T * D); // (T, D) at the final norm's output
  const clsName = c.sharedClassifier ? "tok_embeddings" : "output";
  matmulBackward(dLogits, activations.xnFinal, classifierWeight(model), T, D, V, dXn, gradOf(clsName));
  let dx = new Float32Array(T * D); // (T, D) at the residual stream, moving down the blocks
  rmsnormBackward(
    dXn,
    activations.xFinal,
    model.params.get("norm"),
    activations.invRmsFinal,
    T,
    D,
    dx,
    gradOf("norm"),
  );

  const shape = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs };
  const dHiddenOut: Float32Array[] = [];
  for (let l = c.nLayers - 1; l >= 0; l--) {
    const a = blocks[l];
    const p = `layers.${l}.`;
    const inject = options.dHidden?.[l];
    if (inject) {
      if (inject.length !== T * D) {
        throw new RangeError(
          `backwardChunk: expected dHidden[${l}] of ${T}x${D}=${T * D} values, found ${inject.length}`,
        );
      }
      for (let i = 0; i < dx.length; i++) dx[i] += inject[i];
    }
    if (options.keepDHidden) dHiddenOut[l] = dx.slice();

    // Feed-forward: xOut = xMid + w2(silu(w1 xn) ⊙ w3 xn), xn = ffn_norm(xMid).
    const dHAct = new Float32Array(T * H); // (T, H)
    linearBackward(p + "w2", a.hAct, dx, dHAct);
    const dH1 = new Float32Array(T * H); // (T, H)
    const dH3 = new Float32Array(T * H); // (T, H)
    swigluBackward(dHAct, a.h1, a.h3, dH1, dH3);
    const dXnFfn = new Float32Array(T * D); // (T, D)
    linearBackward(p + "w1", a.xnFfn, dH1, dXnFfn);
    linearBackward(p + "w3", a.xnFfn, dH3, dXnFfn);
    const dMid = dx.slice(); // (T, D) residual path plus the norm path below (dx stays as the hook saw it)
    rmsnormBackward(
      dXnFfn,
      a.xMid,
      model.params.get(p + "ffn_norm"),
      a.invRmsFfn,
      T,
      D,
      dMid,
      gradOf(p + "ffn_norm"),
    );

    // Attention: xMid = xIn + wo(attention(rope(wq xn), rope(wk xn), wv xn)), xn = attention_norm(xIn).
    const dAttOut = new Float32Array(T * D); // (T, D)
    linearBackward(p + "wo", a.attOut, dMid, dAttOut);
    const dQ = new Float32Array(T * D); // (T, D)
    const dK = new Float32Array(T * kvD); // (T, kvD)
    const dV = new Float32Array(T * kvD); // (T, kvD)
    attentionBackward(dAttOut, a.q, a.k, a.v, a.probs, T, T, shape, dQ, dK, dV);
    ropeBackward(dQ, T, D, hs, 0, c.ropeTheta);
    ropeBackward(dK, T, kvD, hs, 0, c.ropeTheta);
    const dXnAtt = new Float32Array(T * D); // (T, D)
    linearBackward(p + "wq", a.xnAtt, dQ, dXnAtt);
    linearBackward(p + "wk", a.xnAtt, dK, dXnAtt);
    linearBackward(p + "wv", a.xnAtt, dV, dXnAtt);
    const dIn = dMid.slice(); // (T, D)
    rmsnormBackward(
      dXnAtt,
      a.xIn,
      model.params.get(p + "attention_norm"),
      a.invRmsAtt,
      T,
      D,
      dIn,
      gradOf(p + "attention_norm"),
    );
    dx = dIn;
  }

  // Embedding gather: each position's gradient goes to its token's row.
  const dEmb = gradOf("tok_embeddings");
  if (dEmb) {
    for (let t = 0; t < T; t++) {
      const ro = activations.tokens[t] * D;
      const o = t * D;
      for (let i = 0; i < D; i++) dEmb[ro + i] += dx[o + i];
    }
  }
  const result: BackwardResult = { dEmbedded: dx };
  if (grads) result.grads = grads;
  if (linearGrads) result.linearGrads = linearGrads;
  if (options.keepDHidden) result.dHidden = dHiddenOut;
  return result;
}

/** Options of {@link lossAndGrad}. */
export interface LossAndGradOptions extends BackwardOptions {
  /**
   * Target id per position (T); negative ids are not scored. Default: the next token, so the last
   * position is not scored (a window of T tokens gives T − 1 predictions, as in perplexity).
   */
  targets?: ArrayLike<number>;
}

/** Result of {@link lossAndGrad}. */
export interface LossAndGradResult extends BackwardResult {
  /** Mean cross-entropy (nats) over the scored positions. */
  loss: number;
  /** Number of scored positions. */
  count: number;
  /** (T, V) logits of the forward. */
  logits: Float32Array;
}

/**
 * Mean next-token cross-entropy of a window (positions 0..T−1) and its gradient:
 * forwardChunk(keepActivations) then {@link backwardChunk}.
 *
 * @example
 * ```ts
 * import { lossAndGrad } from "./backward.ts";
 * import { llamaParamSpecs, ParamTable } from "./params.ts";
 * const config = {
 *   dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 4,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000,
 * };
 * const params = ParamTable.fromSpecs(llamaParamSpecs(config));
 * params.data.fill(0.1);
 * const { loss, grads } = lossAndGrad({ config, params, quantized: new Map() }, [1, 2, 3, 4]);
 * // loss = ln 10 (all logits equal); grads!.get("norm") has the final norm's gradient
 * ```
 */
export function lossAndGrad(
  model: LlamaModel,
  tokens: ArrayLike<number>,
  options: LossAndGradOptions = {},
): LossAndGradResult {
  const T = tokens.length;
  let targets = options.targets;
  if (targets === undefined) {
    const next = new Int32Array(T);
    for (let t = 0; t + 1 < T; t++) next[t] = tokens[t + 1];
    next[T - 1] = -1;
    targets = next;
  } else if (targets.length !== T) {
    throw new RangeError(`lossAndGrad: expected ${T} targets (one per token), found ${targets.length}`);
  }
  const { logits, activations } = forwardChunk(model, tokens, 0, createKvCache(model, T), {
    keepActivations: true,
  });
  const ce = crossEntropySoftmaxBackward(logits, targets, model.config.vocabSize);
  if (ce.count === 0) throw new RangeError("lossAndGrad: expected at least one scored target, found none");
  const back = backwardChunk(model, activations!, ce.dLogits, options);
  return { ...back, loss: ce.loss, count: ce.count, logits };
}
