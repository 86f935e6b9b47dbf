// Opens a model from bytes already in memory (browsers, fetch, bundles): the format detection of
// openModel (load_model.ts) without files, the tokenizer given as bytes or embedded in the model file.

import { notFoundError } from "./fs.ts";
import { isGguf, parseGgufModel } from "./gguf.ts";
import { parseLlama2c } from "./llama2c.ts";
import type { OpenedModel } from "./load_model.ts";
import { parseRabit, RABIT_MAGIC } from "./rabit_format.ts";
import { plainBytes } from "./tensor_codec.ts";
import { Tokenizer } from "./tokenizer.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

/**
 * The model in `bytes` by its first bytes (.rabit, GGUF, else a llama2.c checkpoint), without any
 * tokenizer lookup: what openModel (load_model.ts) and {@link openModelBytes} share. `tokenizerProblem`
 * says why a GGUF file's own vocabulary cannot be used.
 */
export function parseModelBytes(
  bytes: Uint8Array,
  name: string,
): { opened: OpenedModel; tokenizerProblem?: string } {
  if (bytes.length >= RABIT_MAGIC.length && RABIT_MAGIC.every((b, i) => bytes[i] === b)) {
    const rabit = parseRabit(bytes, name);
    return { opened: { model: rabit.model, tokenizer: rabit.tokenizer, format: "rabit", path: name, rabit } };
  }
  if (isGguf(bytes)) {
    const g = parseGgufModel(bytes, name);
    const model = { config: g.config, params: g.params, quantized: new Map() };
    return {
      opened: { model, tokenizer: g.tokenizer, format: "gguf", path: name },
      tokenizerProblem: g.tokenizerProblem,
    };
  }
  const ck = parseLlama2c(bytes, name);
  return {
    opened: {
      model: { config: ck.config, params: ck.params, quantized: new Map() },
      format: ck.format,
      path: name,
    },
  };
}

/** Options of {@link openModelBytes}. */
export interface OpenModelBytesOptions {
  /** A llama2.c tokenizer.bin; when absent, the tokenizer embedded in a .rabit or GGUF file is used. */
  tokenizerBytes?: Uint8Array;
  /** What error messages call the model, and the result's `path` (default "model"). */
  name?: string;
  /** Throw when there is no tokenizer (what reads or writes text needs one). */
  requireTokenizer?: boolean;
}

const OPEN_MODEL_BYTES_OPTION_KEYS = optionKeys<OpenModelBytesOptions>({
  tokenizerBytes: true,
  name: true,
  requireTokenizer: true,
});

/**
 * The model in `bytes` (format detected from its first bytes: .rabit, GGUF, else a llama2.c checkpoint)
 * with its tokenizer: `tokenizerBytes`, else the one embedded in the file. Throws what the format's
 * parser throws (FormatError for a bad file).
 *
 * @example
 * ```ts
 * import { openModelBytes } from "./open_bytes.ts";
 * const bytes = await fetch(new URL("../../../shared/data/stories260K.bin", import.meta.url))
 *   .then((r) => r.bytes());
 * const tokenizerBytes = await fetch(new URL("../../../shared/data/tok512.bin", import.meta.url))
 *   .then((r) => r.bytes());
 * const { model, tokenizer, format } = openModelBytes(bytes, { tokenizerBytes, name: "stories260K.bin" });
 * format; // "llama2c-legacy"
 * model.config.dim; // 64
 * tokenizer!.encode("Once upon a time"); // [403, 407, 261, 378]
 * ```
 */
export function openModelBytes(input: Uint8Array, options: OpenModelBytesOptions = {}): OpenedModel {
  checkOptionKeys("openModelBytes", options, OPEN_MODEL_BYTES_OPTION_KEYS);
  const bytes = plainBytes(input); // a Node Buffer works too
  const name = options.name ?? "model";
  const { opened, tokenizerProblem } = parseModelBytes(bytes, name);
  const noTokenizer = tokenizerProblem ? `: ${tokenizerProblem};` : ":";
  const vocab = opened.model.config.vocabSize;
  if (options.tokenizerBytes) {
    opened.tokenizer = Tokenizer.parse(plainBytes(options.tokenizerBytes), vocab, `${name} tokenizer`);
  }
  if (!opened.tokenizer && options.requireTokenizer) {
    throw notFoundError(
      `No tokenizer for ${name}${noTokenizer} pass tokenizerBytes (a llama2.c tokenizer.bin with ${vocab} tokens)`,
    );
  }
  return opened;
}
