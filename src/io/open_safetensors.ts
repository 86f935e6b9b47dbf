// Safetensors models for openModel: a Hugging Face Llama checkpoint (a directory, or one .safetensors
// file) or a packed export of a .rabit model, with the tokenizer each carries or has next to it.

import type { PackedModel } from "../quant/residual_binary.ts";
import { FormatError, readFileOrThrow } from "./errors.ts";
import { isFileSync, pathModule, stat } from "./fs.ts";
import { loadHfModel, tokenizerBytesOfMetadata } from "./hf.ts";
import type { LoadedRabit } from "./rabit_format.ts";
import { PACKED_LAYOUT, parsePackedSafetensors } from "./rabit_safetensors.ts";
import { parseSafetensors, SAFETENSORS_DTYPE_BYTES } from "./safetensors.ts";
import { Tokenizer } from "./tokenizer.ts";

/** A safetensors model, opened. */
export interface SafetensorsOpened {
  /** The model (packed linears for a packed export). */
  model: PackedModel;
  /** Its tokenizer: the one it carries, or tokenizer.json next to it. */
  tokenizer?: Tokenizer;
  /** Why there is no tokenizer. */
  tokenizerProblem?: string;
  /** "hf" (a Hugging Face checkpoint) or "rabit-safetensors" (a packed export). */
  format: "hf" | "rabit-safetensors";
  /** A packed export read as a .rabit file would be (method, options, metadata, dtypes). */
  rabit?: LoadedRabit;
}

/**
 * Opens `path` when it is a directory (a Hugging Face checkpoint) or a file named *.safetensors (a
 * checkpoint's weights, a dense or a packed export); resolves to undefined for anything else. The tokenizer
 * is looked up unless `options.tokenizer` names one (the caller loads that); one that cannot be used is
 * reported in `tokenizerProblem`, the model still opens.
 *
 * @example
 * ```ts
 * import { openSafetensorsModel } from "./open_safetensors.ts";
 * await openSafetensorsModel("../shared/data/stories260K.bin"); // undefined: not a safetensors model
 * ```
 */
export async function openSafetensorsModel(
  path: string,
  options: { tokenizer?: string } = {},
): Promise<SafetensorsOpened | undefined> {
  const info = await stat(path).catch(() => undefined);
  if (!info || !(info.isDirectory || (info.isFile && path.endsWith(".safetensors")))) return undefined;
  const dir = info.isDirectory ? path : pathModule().dirname(path);
  let opened: SafetensorsOpened;
  let carried: Uint8Array | undefined; // tokenizer bytes in the file's metadata
  if (info.isDirectory) {
    const hf = await loadHfModel(path);
    opened = { model: { config: hf.config, params: hf.params, quantized: new Map() }, format: "hf" };
    carried = tokenizerBytesOfMetadata(hf.metadata, hf.files[0]);
  } else {
    const bytes = await readFileOrThrow(path, "Model file");
    const header = parseSafetensors(bytes, path, { dtypes: Object.keys(SAFETENSORS_DTYPE_BYTES) });
    if (header.metadata.rabit_layout === PACKED_LAYOUT) {
      const rabit = parsePackedSafetensors(bytes, path);
      opened = { model: rabit.model, tokenizer: rabit.tokenizer, format: "rabit-safetensors", rabit };
    } else {
      const hf = await loadHfModel(path, { bytes });
      opened = { model: { config: hf.config, params: hf.params, quantized: new Map() }, format: "hf" };
      carried = tokenizerBytesOfMetadata(hf.metadata, path);
    }
  }
  if (options.tokenizer || opened.tokenizer) return opened;
  const vocab = opened.model.config.vocabSize;
  const near = pathModule().join(dir, "tokenizer.json");
  try {
    if (isFileSync(near)) opened.tokenizer = await Tokenizer.load(near, vocab);
    else if (carried) opened.tokenizer = Tokenizer.parse(carried, vocab, `${path} (metadata tokenizer)`);
    else opened.tokenizerProblem = `no tokenizer.json in ${dir}`;
  } catch (e) {
    // A vocabulary the pipeline cannot run (e.g. BOS other than 1) leaves the model usable without text.
    if (!(e instanceof FormatError)) throw e;
    opened.tokenizerProblem = e.message;
  }
  return opened;
}
