// Opens any supported model file (llama2.c checkpoint; GGUF; `.rabit` packed file) with its tokenizer.

import type { PackedModel } from "../quant/residual_binary.ts";
import { readFileOrThrow } from "./errors.ts";
import { notFoundError } from "./fs.ts";
import { findTokenizerNear } from "./model_paths.ts";
import { openSafetensorsModel } from "./open_safetensors.ts";
import { parseModelBytes } from "./open_bytes.ts";
import type { LoadedRabit } from "./rabit_format.ts";
import { Tokenizer } from "./tokenizer.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

/** A model ready to run, its tokenizer when one was found, and what the file was. */
export interface OpenedModel {
  /** The model: float tensors, plus packed linears for a .rabit file. */
  model: PackedModel;
  /** The tokenizer, when one was given, embedded, or found next to the file. */
  tokenizer?: Tokenizer;
  /** "llama2c-legacy", "llama2c-v1", "gguf", "rabit", "hf" or "rabit-safetensors". */
  format: string;
  /** The path the model was read from. */
  path: string;
  /** The whole packed file (method, options, metadata) when the format is rabit. */
  rabit?: LoadedRabit;
}

/** Options of {@link openModel}. */
export interface OpenModelOptions {
  /** Tokenizer file; when absent, one embedded in the model file or next to it is used. */
  tokenizer?: string;
  /** Throw when no tokenizer can be found (commands that read or write text need one). */
  requireTokenizer?: boolean;
}

const OPEN_MODEL_OPTION_KEYS = optionKeys<OpenModelOptions>({ tokenizer: true, requireTokenizer: true });

/**
 * Loads a model file (format detected from its first bytes: .rabit, GGUF, else llama2.c) and its
 * tokenizer: the one given, the one embedded in the file, or one found next to it.
 *
 * @example
 * ```ts
 * import { openModel } from "./load_model.ts";
 * const { model, tokenizer, format } = await openModel("../shared/data/stories260K.bin", { requireTokenizer: true });
 * format; // "llama2c-legacy"
 * model.config.vocabSize; // 512
 * tokenizer!.encode("Once upon a time"); // [403, 407, 261, 378]
 * ```
 */
export async function openModel(path: string, options: OpenModelOptions = {}): Promise<OpenedModel> {
  checkOptionKeys("openModel", options, OPEN_MODEL_OPTION_KEYS);
  // A Hugging Face checkpoint directory or a .safetensors file (open_safetensors.ts); else by magic.
  const st = await openSafetensorsModel(path, { tokenizer: options.tokenizer });
  let opened: OpenedModel;
  let problem: string | undefined; // why the file's own vocabulary cannot be used
  if (st) {
    opened = { model: st.model, tokenizer: st.tokenizer, format: st.format, path, rabit: st.rabit };
    problem = st.tokenizerProblem;
  } else {
    const bytes = await readFileOrThrow(path, "Model file");
    ({ opened, tokenizerProblem: problem } = parseModelBytes(bytes, path));
  }
  const noTokenizer = problem ? `: ${problem};` : ":";
  const vocab = opened.model.config.vocabSize;
  const tokPath = options.tokenizer ?? (opened.tokenizer ? undefined : findTokenizerNear(path, vocab));
  if (tokPath) opened.tokenizer = await Tokenizer.load(tokPath, vocab);
  if (!opened.tokenizer && options.requireTokenizer) {
    throw notFoundError(
      `No tokenizer for ${path}${noTokenizer} pass --tokenizer FILE (llama2.c tokenizer.bin or Hugging Face tokenizer.json with ${vocab} tokens)`,
    );
  }
  return opened;
}
