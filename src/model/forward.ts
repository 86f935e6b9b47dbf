// The reference Llama forward over a chunk of tokens with a KV cache: batched for evaluation windows
// and training, one token for decoding. Optionally keeps every activation the backward needs.
//
// Dimension legend: T tokens in the chunk, S = pos0 + T visible positions, D model width, H hidden,
// V vocabulary, kvD key/value width, nH heads.

import { headSize, kvDim } from "./config.ts";
import { applyLinear, classifierWeight, type LlamaModel } from "./model.ts";
import type { LinearLayer } from "./linear.ts";
import { addInPlace, attentionForward, matmul, rmsnormForward, ropeForward, swigluForward } from "./ops.ts";

/** Keys and values of every layer for positions 0..seqLen−1. */
export interface KvCache {
  /** Keys, per layer (seqLen, kvD). */
  k: Float32Array[];
  /** Values, per layer (seqLen, kvD). */
  v: Float32Array[];
}

/**
 * An empty cache for `length` positions (default the model's seqLen).
 *
 * @example
 * ```ts
 * import { createKvCache } from "./forward.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const cache = createKvCache({ config, params, quantized: new Map() }, 16);
 * cache.k.length; // 5 layers
 * cache.k[0].length; // 16 positions × kvDim 32 = 512
 * ```
 */
export function createKvCache(model: LlamaModel, length = model.config.seqLen): KvCache {
  const n = length * kvDim(model.config);
  const make = () => Array.from({ length: model.config.nLayers }, () => new Float32Array(n));
  return { k: make(), v: make() };
}

/** What one block computed, kept for the backward. All (T, ·) row-major. */
export interface BlockActivations {
  /** (T, D) residual stream entering the block. */
  xIn: Float32Array;
  /** (T, D) attention_norm output = input of wq, wk, wv. */
  xnAtt: Float32Array;
  /** (T) 1 / RMS of each row of xIn. */
  invRmsAtt: Float32Array;
  /** (T, D) after rotary. */
  q: Float32Array;
  /** (T, kvD) after rotary. */
  k: Float32Array;
  /** (T, kvD) values. */
  v: Float32Array;
  /** (nH, T, S) softmax weights. */
  probs: Float32Array;
  /** (T, D) = input of wo. */
  attOut: Float32Array;
  /** (T, D) after the attention residual. */
  xMid: Float32Array;
  /** (T, D) ffn_norm output = input of w1, w3. */
  xnFfn: Float32Array;
  /** (T) 1 / RMS of each row of xMid. */
  invRmsFfn: Float32Array;
  /** (T, H) w1 output (pre-activation). */
  h1: Float32Array;
  /** (T, H) w3 output. */
  h3: Float32Array;
  /** (T, H) silu(h1) ⊙ h3 = input of w2. */
  hAct: Float32Array;
}

/** Activations of a whole chunk: blocks, the final norm and the logits. */
export interface ChunkActivations {
  /** Tokens in the chunk. */
  T: number;
  /** Position of the first token. */
  pos0: number;
  /** (T) the token ids. */
  tokens: Int32Array;
  /** Per block, in order. */
  blocks: BlockActivations[];
  /** (T, D) residual stream after the last block. */
  xFinal: Float32Array;
  /** (T, D) after the final norm = input of the classifier. */
  xnFinal: Float32Array;
  /** (T) 1 / RMS of each row of xFinal. */
  invRmsFinal: Float32Array;
}

/** Options of {@link forwardChunk}. */
export interface ForwardOptions {
  /** Keep activations for the backward (the cache must then start empty: pos0 = 0). */
  keepActivations?: boolean;
  /** Keep each block's output hidden state (T, D) (for hidden-state distillation). */
  keepHidden?: boolean;
  /** Compute logits only for the last position (decoding). */
  lastLogitsOnly?: boolean;
  /** Computes the logits with this (V, D) layer instead of the classifier weight (a backend's own kernel). */
  classifier?: LinearLayer;
}

/** Result of {@link forwardChunk}. */
export interface ForwardResult {
  /** (T, V), or (1, V) with lastLogitsOnly. */
  logits: Float32Array;
  /** Block outputs (T, D) each, with keepHidden. */
  hidden?: Float32Array[];
  /** Everything the backward needs, with keepActivations. */
  activations?: ChunkActivations;
}

/**
 * Runs `tokens` at positions pos0..pos0+T−1, reading and extending `cache` (positions < pos0 must be
 * filled). This one function serves evaluation windows, prompt prefill, decoding and training.
 *
 * @example
 * ```ts
 * import { createKvCache, forwardChunk } from "./forward.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * import { argmax } from "../eval/sampling.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const model = { config, params, quantized: new Map() };
 * const cache = createKvCache(model);
 * const prefill = forwardChunk(model, [1, 403], 0, cache); // BOS and one token: logits (2, 512)
 * const next = argmax(prefill.logits.subarray(512)); // 407, the greedy continuation
 * forwardChunk(model, [next], 2, cache, { lastLogitsOnly: true }).logits.length; // 512
 * ```
 */
export function forwardChunk(
  model: LlamaModel,
  tokens: ArrayLike<number>,
  pos0: number,
  cache: KvCache,
  options: ForwardOptions = {},
): ForwardResult {
  const c = model.config;
  const T = tokens.length;
  const S = pos0 + T;
  const D = c.dim, kvD = kvDim(c), hs = headSize(c);
  const cacheLen = cache.k[0].length / kvD;
  if (T === 0) throw new RangeError("forwardChunk: expected at least one token, found none");
  if (S > cacheLen) {
    throw new RangeError(`forwardChunk: positions up to ${S - 1} exceed the cache length ${cacheLen}`);
  }
  const emb = model.params.get("tok_embeddings");
  const x = new Float32Array(T * D); // (T, D) residual stream
  for (let t = 0; t < T; t++) {
    const id = tokens[t];
    if (!(id >= 0 && id < c.vocabSize)) {
      throw new RangeError(
        `Token id ${id} at position ${pos0 + t} is outside the vocabulary 0..${c.vocabSize - 1}`,
      );
    }
    x.set(emb.subarray(id * D, (id + 1) * D), t * D);
  }
  const keep = options.keepActivations === true;
  const blocks: BlockActivations[] = [];
  const hidden: Float32Array[] = [];
  const shape = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs };
  for (let l = 0; l < c.nLayers; l++) {
    const p = `layers.${l}.`;
    const xIn = keep ? x.slice() : x;
    const invRmsAtt = new Float32Array(T);
    const xnAtt = rmsnormForward(
      x,
      model.params.get(p + "attention_norm"),
      T,
      D,
      c.normEps,
      undefined,
      invRmsAtt,
    );
    const q = applyLinear(model, p + "wq", xnAtt, T); // (T, D)
    const kNew = applyLinear(model, p + "wk", xnAtt, T); // (T, kvD)
    const vNew = applyLinear(model, p + "wv", xnAtt, T); // (T, kvD)
    ropeForward(q, T, D, hs, pos0, c.ropeTheta);
    ropeForward(kNew, T, kvD, hs, pos0, c.ropeTheta);
    cache.k[l].set(kNew, pos0 * kvD);
    cache.v[l].set(vNew, pos0 * kvD);
    const probs = keep ? new Float32Array(c.nHeads * T * S) : undefined;
    const kView = cache.k[l].subarray(0, S * kvD);
    const vView = cache.v[l].subarray(0, S * kvD);
    const attOut = attentionForward(q, kView, vView, T, S, shape, undefined, probs);
    addInPlace(x, applyLinear(model, p + "wo", attOut, T));
    const xMid = keep ? x.slice() : x;
    const invRmsFfn = new Float32Array(T);
    const xnFfn = rmsnormForward(x, model.params.get(p + "ffn_norm"), T, D, c.normEps, undefined, invRmsFfn);
    const h1 = applyLinear(model, p + "w1", xnFfn, T); // (T, H)
    const h3 = applyLinear(model, p + "w3", xnFfn, T); // (T, H)
    const hAct = swigluForward(h1, h3);
    addInPlace(x, applyLinear(model, p + "w2", hAct, T));
    if (keep) {
      const k = kNew, v = vNew;
      blocks.push({
        xIn,
        xnAtt,
        invRmsAtt,
        q,
        k,
        v,
        probs: probs!,
        attOut,
        xMid,
        xnFfn,
        invRmsFfn,
        h1,
        h3,
        hAct,
      });
    }
    if (options.keepHidden) hidden.push(x.slice());
  }
  const xFinal = keep ? x.slice() : x;
  const invRmsFinal = new Float32Array(T);
  const xnFinal = rmsnormForward(x, model.params.get("norm"), T, D, c.normEps, undefined, invRmsFinal);
  const rows = options.lastLogitsOnly ? 1 : T;
  const head = options.lastLogitsOnly ? xnFinal.subarray((T - 1) * D) : xnFinal;
  const logits = options.classifier
    ? options.classifier.forward(head, rows)
    : matmul(head, classifierWeight(model), rows, D, c.vocabSize);
  const result: ForwardResult = { logits };
  if (options.keepHidden) result.hidden = hidden;
  if (keep) {
    result.activations = {
      T,
      pos0,
      tokens: Int32Array.from(tokens),
      blocks,
      xFinal,
      xnFinal,
      invRmsFinal,
    };
  }
  return result;
}
