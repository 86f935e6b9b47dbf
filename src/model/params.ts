// One flat float32 buffer for all parameters, with a name → (offset, shape) table (llm.c style).
// Gradients and optimizer state use the same table over buffers of the same length.
//
// Names (shapes as row-major [rows, cols]; linear weights are [out, in]):
//   tok_embeddings            (vocab, dim)
//   layers.L.attention_norm   (dim)
//   layers.L.wq               (dim, dim)        layers.L.wk / wv  (kvDim, dim)     layers.L.wo (dim, dim)
//   layers.L.ffn_norm         (dim)
//   layers.L.w1 / w3          (hidden, dim)     layers.L.w2       (dim, hidden)
//   norm                      (dim)
//   output                    (vocab, dim)      only when the classifier is not shared

import { kvDim, type LlamaConfig } from "./config.ts";

/** Location of one tensor inside the flat buffer. */
export interface ParamEntry {
  /** Index of the tensor's first value in the flat buffer. */
  offset: number;
  /** Dimensions, row-major (linear weights are [out, in]). */
  shape: number[];
  /** Number of values: the product of `shape`. */
  size: number;
}

/**
 * The linear layers inside each block, the ones residual binarization replaces (METHOD.md §1).
 *
 * @example
 * ```ts
 * import { BLOCK_LINEARS } from "./params.ts";
 * BLOCK_LINEARS.map((w) => `layers.0.${w}`); // ["layers.0.wq", "layers.0.wk", …, "layers.0.w3"]
 * ```
 */
export const BLOCK_LINEARS = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const;
/** One of the per-block linear layer names. */
export type BlockLinear = typeof BLOCK_LINEARS[number];

/**
 * A named set of tensors stored in one Float32Array.
 *
 * @example
 * ```ts
 * import { ParamTable } from "./params.ts";
 * const t = ParamTable.fromSpecs([["w", [2, 3]], ["b", [2]]]);
 * t.get("b").set([1, 2]); // a live view into t.data
 * t.count; // 8
 * t.entry("b"); // { offset: 6, shape: [2], size: 2 }
 * t.names(); // ["w", "b"]
 * ```
 */
export class ParamTable {
  /** Every tensor's values, one after another. */
  readonly data: Float32Array;
  /** Where each tensor lives in `data`, by name, in layout order. */
  readonly entries: Map<string, ParamEntry>;

  /** A table over `entries`, backed by `data` (which must be exactly as long) or by a new zeroed buffer. */
  constructor(entries: Map<string, ParamEntry>, data?: Float32Array) {
    let total = 0;
    for (const e of entries.values()) total = Math.max(total, e.offset + e.size);
    if (data && data.length !== total) {
      throw new RangeError(`ParamTable: expected a buffer of ${total} floats, found ${data.length}`);
    }
    this.entries = entries;
    this.data = data ?? new Float32Array(total);
  }

  /** Lays out tensors one after another in the given order. */
  static fromSpecs(specs: [string, number[]][]): ParamTable {
    const entries = new Map<string, ParamEntry>();
    let offset = 0;
    for (const [name, shape] of specs) {
      const size = shape.reduce((a, b) => a * b, 1);
      entries.set(name, { offset, shape, size });
      offset += size;
    }
    return new ParamTable(entries);
  }

  /** A new table with the same layout and zeroed data (for gradients, optimizer moments). */
  zerosLike(): ParamTable {
    return new ParamTable(this.entries);
  }

  /** Whether the table holds a tensor `name`. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Where tensor `name` lives; throws a RangeError listing the known names when there is none. */
  entry(name: string): ParamEntry {
    const e = this.entries.get(name);
    if (!e) {
      throw new RangeError(`Unknown parameter "${name}"; known: ${[...this.entries.keys()].join(", ")}`);
    }
    return e;
  }

  /** A live view of one tensor's values. */
  get(name: string): Float32Array {
    const e = this.entry(name);
    return this.data.subarray(e.offset, e.offset + e.size);
  }

  /** The dimensions of tensor `name`. */
  shape(name: string): number[] {
    return this.entry(name).shape;
  }

  /** Tensor names in layout order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Total number of scalars. */
  get count(): number {
    return this.data.length;
  }
}

/**
 * The parameter specs of a Llama model in llama2.c's storage order (per kind, then per layer): the
 * argument of {@link ParamTable.fromSpecs} for a model's table.
 *
 * @example
 * ```ts
 * import { llamaParamSpecs, ParamTable } from "./params.ts";
 * const c = { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 4,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * const specs = llamaParamSpecs(c);
 * specs[0]; // ["tok_embeddings", [10, 8]]
 * ParamTable.fromSpecs(specs).count; // 584
 * ```
 */
export function llamaParamSpecs(c: LlamaConfig): [string, number[]][] {
  const kv = kvDim(c);
  const specs: [string, number[]][] = [["tok_embeddings", [c.vocabSize, c.dim]]];
  const perLayer: [string, number[]][] = [
    ["attention_norm", [c.dim]],
    ["wq", [c.dim, c.dim]],
    ["wk", [kv, c.dim]],
    ["wv", [kv, c.dim]],
    ["wo", [c.dim, c.dim]],
    ["ffn_norm", [c.dim]],
    ["w1", [c.hiddenDim, c.dim]],
    ["w2", [c.dim, c.hiddenDim]],
    ["w3", [c.hiddenDim, c.dim]],
  ];
  for (const [kind, shape] of perLayer) {
    for (let l = 0; l < c.nLayers; l++) specs.push([`layers.${l}.${kind}`, shape]);
  }
  specs.push(["norm", [c.dim]]);
  if (!c.sharedClassifier) specs.push(["output", [c.vocabSize, c.dim]]);
  return specs;
}

/**
 * Scalars of a Llama model with config `c`, computed without building the table (loaders compare it with
 * a file's size before allocating anything). Exact while below 2^53; beyond that it is still larger than
 * any file.
 *
 * @example
 * ```ts
 * import { llamaParamCount } from "./params.ts";
 * const c = { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 4,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * llamaParamCount(c); // 80 + 8 + 64 + 32 + 32 + 64 + 8 + 3 * 96 + 8 = 584
 * ```
 */
export function llamaParamCount(c: LlamaConfig): number {
  const kv = kvDim(c);
  // (layer) attention_norm, ffn_norm (dim each); wq, wo (dim, dim); wk, wv (kvDim, dim); w1, w2, w3
  const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * kv * c.dim + 3 * c.hiddenDim * c.dim;
  return c.vocabSize * c.dim * (c.sharedClassifier ? 1 : 2) + c.nLayers * perLayer + c.dim;
}

/**
 * Names of every binarizable linear layer, block by block: layers.L.{wq,wk,wv,wo,w1,w2,w3}.
 *
 * @example
 * ```ts
 * import { linearNames } from "./params.ts";
 * const c = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 4,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * linearNames(c).length; // 14
 * linearNames(c)[7]; // "layers.1.wq"
 * ```
 */
export function linearNames(c: LlamaConfig): string[] {
  const out: string[] = [];
  for (let l = 0; l < c.nLayers; l++) for (const w of BLOCK_LINEARS) out.push(`layers.${l}.${w}`);
  return out;
}
