// Paths of the shared real data and small builders of random models for tests.

import { fileURLToPath } from "node:url";
import type { LlamaConfig } from "../src/model/config.ts";
import type { PackedModel } from "../src/quant/residual_binary.ts";
import { llamaParamSpecs, ParamTable } from "../src/model/params.ts";
import { Rng } from "../src/util/rng.ts";

const shared = (name: string) => fileURLToPath(new URL(`../../shared/data/${name}`, import.meta.url));

export const MODEL_PATH = shared("stories260K.bin");
export const TOKENIZER_PATH = shared("tok512.bin");
export const DEV_TEXT_PATH = shared("tinystories_dev.txt");
export const WIKI_TEXT_PATH = shared("wikitext2_test.raw");
export const GGUF_PATH = shared("llama-2-tiny-random.gguf");

/** Greedy ids from BOS on stories260K (ENGINEERING.md §2). */
export const GOLDEN_GREEDY = [
  403,
  407,
  261,
  378,
  432,
  383,
  286,
  261,
  376,
  298,
  315,
  421,
  395,
  317,
  426,
  338,
  401,
  396,
  267,
  337,
  410,
  408,
  419,
  292,
];

/** A small config for unit tests. */
export function tinyConfig(overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    dim: 16,
    hiddenDim: 24,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 32,
    seqLen: 16,
    sharedClassifier: true,
    normEps: 1e-5,
    ropeTheta: 10000,
    ...overrides,
  };
}

/** A model with seeded random weights (norm weights near 1). */
export function randomModel(config: LlamaConfig, seed = 1): PackedModel {
  const rng = new Rng(seed);
  const params = ParamTable.fromSpecs(llamaParamSpecs(config));
  for (const name of params.names()) {
    const t = params.get(name);
    const isNorm = name.endsWith("norm");
    for (let i = 0; i < t.length; i++) t[i] = isNorm ? 1 + 0.1 * rng.normal() : 0.3 * rng.normal();
  }
  return { config, params, quantized: new Map() };
}
