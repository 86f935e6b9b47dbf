// The CPU reference forward as the model-format tests use it: logits of a short token sequence.

import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import type { LlamaModel } from "../src/model/model.ts";

/** BOS and the first 15 tokens of stories260K's greedy story. */
export const STORY_TOKENS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];

/** Logits (tokens.length, vocab) of `tokens` from an empty cache. */
export function logitsOf(model: LlamaModel, tokens: number[] = STORY_TOKENS): Float32Array {
  return forwardChunk(model, tokens, 0, createKvCache(model, tokens.length)).logits;
}
