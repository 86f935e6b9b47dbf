// Llama-family model hyper-parameters, shared by every loader, backend and file format.

/** Hyper-parameters of a Llama-architecture decoder. */
export interface LlamaConfig {
  /** Model width (embedding size). */
  dim: number;
  /** SwiGLU hidden width (rows of w1/w3). */
  hiddenDim: number;
  /** Number of transformer blocks. */
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (grouped-query attention when < nHeads). */
  nKvHeads: number;
  /** Vocabulary size. */
  vocabSize: number;
  /** Maximum context length the model was trained for. */
  seqLen: number;
  /** True when the output head reuses the token embedding matrix. */
  sharedClassifier: boolean;
  /** RMSNorm epsilon (llama2.c uses 1e-5). */
  normEps: number;
  /** Rotary embedding base (10000 in llama2.c). */
  ropeTheta: number;
}

/**
 * Size of one attention head: dim / nHeads.
 *
 * @example
 * ```ts
 * import { headSize } from "./config.ts";
 * const c = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * headSize(c); // 8
 * ```
 */
export function headSize(c: LlamaConfig): number {
  return c.dim / c.nHeads;
}

/**
 * Width of the key/value projections: nKvHeads heads of {@link headSize} (smaller than dim under
 * grouped-query attention).
 *
 * @example
 * ```ts
 * import { kvDim } from "./config.ts";
 * const c = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * kvDim(c); // 32
 * ```
 */
export function kvDim(c: LlamaConfig): number {
  return (c.dim * c.nKvHeads) / c.nHeads;
}

/**
 * Throws a RangeError naming the first inconsistent hyper-parameter: sizes must be positive integers,
 * dim divisible by nHeads, nHeads by nKvHeads, and the head size even (rotary embedding).
 *
 * @example
 * ```ts
 * import { validateConfig } from "./config.ts";
 * const c = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * validateConfig(c); // fine
 * try {
 *   validateConfig({ ...c, nKvHeads: 3 });
 * } catch (e) {
 *   (e as Error).message; // "Invalid model config: nHeads 8 is not divisible by nKvHeads 3"
 * }
 * ```
 */
export function validateConfig(c: LlamaConfig): void {
  const ints: (keyof LlamaConfig)[] = [
    "dim",
    "hiddenDim",
    "nLayers",
    "nHeads",
    "nKvHeads",
    "vocabSize",
    "seqLen",
  ];
  for (const key of ints) {
    const v = c[key] as number;
    if (!Number.isInteger(v) || v <= 0 || v > 1 << 24) {
      throw new RangeError(`Invalid model config: expected ${key} to be a positive integer, found ${v}`);
    }
  }
  if (c.dim % c.nHeads !== 0) {
    throw new RangeError(`Invalid model config: dim ${c.dim} is not divisible by nHeads ${c.nHeads}`);
  }
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new RangeError(
      `Invalid model config: nHeads ${c.nHeads} is not divisible by nKvHeads ${c.nKvHeads}`,
    );
  }
  if (headSize(c) % 2 !== 0) {
    throw new RangeError(`Invalid model config: head size ${headSize(c)} must be even for rotary embedding`);
  }
}
