// Limits loaders check header fields against before trusting any size they imply: bounds no real model
// reaches, for what a file's length cannot bound by itself.

import { type LlamaConfig, validateConfig } from "../model/config.ts";

/**
 * Longest context a loaded config may claim (2^20 tokens; Llama 3.1 has 131072). Nothing in a llama2.c v1
 * or .rabit file is sized by it, but sessions allocate their KV cache from it (seqLen · kvDim per layer).
 */
export const MAX_SEQ_LEN: number = 1 << 20;

/** Longest token a llama2.c tokenizer may declare, in bytes (real ones stay under 64). */
export const MAX_TOKEN_LENGTH: number = 1024;

/**
 * What is wrong with a config read from a file (validateConfig's checks, then {@link MAX_SEQ_LEN}), or
 * undefined when it may be loaded.
 *
 * @example
 * ```ts
 * import { configProblem } from "./limits.ts";
 * const c = { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 2 ** 24,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * configProblem(c); // "seqLen 16777216 is beyond the loader's limit of 1048576"
 * ```
 */
export function configProblem(c: LlamaConfig): string | undefined {
  try {
    validateConfig(c);
  } catch (e) {
    return (e as Error).message;
  }
  if (c.seqLen > MAX_SEQ_LEN) return `seqLen ${c.seqLen} is beyond the loader's limit of ${MAX_SEQ_LEN}`;
  return undefined;
}
