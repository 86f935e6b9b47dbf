// Opens any supported model file (llama2.c checkpoint; `.rabit` packed file) with its tokenizer.

import type { LlamaModel } from "../model/model.ts";
import { loadLlama2c } from "./llama2c.ts";
import { findTokenizerNear } from "./model_paths.ts";
import { Tokenizer } from "./tokenizer.ts";

/** A model ready to run, its tokenizer when one was found, and what the file was. */
export interface OpenedModel {
  model: LlamaModel;
  tokenizer?: Tokenizer;
  format: string;
  path: string;
}

/** Options of {@link openModel}. */
export interface OpenModelOptions {
  /** Tokenizer file; when absent, one embedded in the model file or next to it is used. */
  tokenizer?: string;
  /** Throw when no tokenizer can be found (commands that read or write text need one). */
  requireTokenizer?: boolean;
}

/** Loads a model file and its tokenizer. */
export async function openModel(path: string, options: OpenModelOptions = {}): Promise<OpenedModel> {
  const ck = await loadLlama2c(path);
  const model: LlamaModel = { config: ck.config, params: ck.params, quantized: new Map() };
  const tokPath = options.tokenizer ?? findTokenizerNear(path, ck.config.vocabSize);
  const tokenizer = tokPath ? await Tokenizer.load(tokPath, ck.config.vocabSize) : undefined;
  if (!tokenizer && options.requireTokenizer) {
    throw new Deno.errors.NotFound(
      `No tokenizer for ${path}: pass --tokenizer FILE (llama2.c tokenizer.bin with ${ck.config.vocabSize} tokens)`,
    );
  }
  return { model, tokenizer, format: ck.format, path };
}
