// llama2.c checkpoints: the legacy layout (7 int32 header) and version 1 ("ak42" magic, 256-byte header).
//
// Legacy: int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative = separate
// classifier), seq_len; then f32 tensors tok_embeddings, attention_norm, wq, wk, wv, wo, ffn_norm, w1, w2,
// w3, norm, freq_cis_real and freq_cis_imag (seq_len * head_size / 2 each, unused: rotary is recomputed),
// then output when not shared.
// Version 1: u32 magic 0x616b3432, i32 version = 1, the 7 int32 params, u8 shared_classifier, zero pad to
// 256 bytes; then f32 attention_norm (all layers), ffn_norm, norm, tok_embeddings, wq, wk, wv, wo, w1, w2,
// w3, and output when not shared.

import { headSize, type LlamaConfig } from "../model/config.ts";
import { llamaParamCount, llamaParamSpecs, ParamTable } from "../model/params.ts";
import { FormatError, readFileOrThrow } from "./errors.ts";
import { configProblem } from "./limits.ts";
import { plainBytes } from "./tensor_codec.ts";

const V1_MAGIC = 0x616b3432;
const V1_HEADER_BYTES = 256;
const LEGACY_HEADER_BYTES = 28;

/** A model's config and its parameters. */
export interface LoadedCheckpoint {
  /** Hyper-parameters from the header. */
  config: LlamaConfig;
  /** Every tensor of `llamaParamSpecs(config)`. */
  params: ParamTable;
  /** Which llama2.c layout the file used. */
  format: "llama2c-legacy" | "llama2c-v1";
}

function configFromInts(ints: Int32Array, shared: boolean): LlamaConfig {
  return {
    dim: ints[0],
    hiddenDim: ints[1],
    nLayers: ints[2],
    nHeads: ints[3],
    nKvHeads: ints[4],
    vocabSize: Math.abs(ints[5]),
    seqLen: ints[6],
    sharedClassifier: shared,
    normEps: 1e-5,
    ropeTheta: 10000,
  };
}

/** Tensor order of the version-1 layout, as names of the parameter table. */
function v1Order(c: LlamaConfig): string[] {
  const layers = (kind: string) => Array.from({ length: c.nLayers }, (_, l) => `layers.${l}.${kind}`);
  const names = [
    ...layers("attention_norm"),
    ...layers("ffn_norm"),
    "norm",
    "tok_embeddings",
    ...["wq", "wk", "wv", "wo", "w1", "w2", "w3"].flatMap(layers),
  ];
  if (!c.sharedClassifier) names.push("output");
  return names;
}

/**
 * Parses a llama2.c checkpoint from bytes (legacy or version 1, told apart by the magic); `path` only
 * names the file in errors, which are FormatErrors.
 *
 * @example
 * ```ts
 * import { parseLlama2c } from "./llama2c.ts";
 * const ck = parseLlama2c(await Deno.readFile("../shared/data/stories260K.bin"), "stories260K.bin");
 * ck.format; // "llama2c-legacy"
 * ck.config.dim; // 64
 * try {
 *   parseLlama2c(new Uint8Array(8), "tiny.bin");
 * } catch (e) {
 *   (e as Error).message; // "tiny.bin: file is 8 bytes, shorter than any llama2.c header. Expected …"
 * }
 * ```
 */
export function parseLlama2c(bytes: Uint8Array, path = "checkpoint"): LoadedCheckpoint {
  const hint = "Expected a llama2.c checkpoint (legacy or version 1 from export.py)";
  if (bytes.byteLength < LEGACY_HEADER_BYTES) {
    throw new FormatError(path, `file is ${bytes.byteLength} bytes, shorter than any llama2.c header`, hint);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const isV1 = view.getUint32(0, true) === V1_MAGIC;
  let config: LlamaConfig;
  let headerBytes: number;
  if (isV1) {
    if (bytes.byteLength < V1_HEADER_BYTES) {
      throw new FormatError(
        path,
        `file is ${bytes.byteLength} bytes, shorter than the 256-byte v1 header`,
        hint,
      );
    }
    const version = view.getInt32(4, true);
    if (version !== 1) {
      throw new FormatError(path, `unsupported llama2.c version ${version} (expected 1)`, hint);
    }
    const ints = new Int32Array(7);
    for (let i = 0; i < 7; i++) ints[i] = view.getInt32(8 + 4 * i, true);
    const sharedByte = view.getUint8(36);
    if (sharedByte > 1) {
      throw new FormatError(path, `bad shared_classifier flag ${sharedByte} (expected 0 or 1)`, hint);
    }
    config = configFromInts(ints, sharedByte === 1);
    headerBytes = V1_HEADER_BYTES;
  } else {
    const ints = new Int32Array(7);
    for (let i = 0; i < 7; i++) ints[i] = view.getInt32(4 * i, true);
    config = configFromInts(ints, ints[5] > 0);
    headerBytes = LEGACY_HEADER_BYTES;
  }
  const problem = configProblem(config);
  if (problem) throw new FormatError(path, `bad header: ${problem}`, hint);
  // The size the header implies, computed before anything is allocated: a header claiming a million
  // layers is refused by the file's length, not by a failed multi-gigabyte allocation.
  const count = llamaParamCount(config);
  const freqFloats = isV1 ? 0 : config.seqLen * headSize(config); // real + imag halves
  const expected = headerBytes + 4 * (count + freqFloats);
  if (bytes.byteLength !== expected) {
    const what = bytes.byteLength < expected ? "truncated" : "too long";
    throw new FormatError(
      path,
      `${what}: the header (${isV1 ? "v1" : "legacy"}, dim ${config.dim}, hidden ${config.hiddenDim}, ` +
        `${config.nLayers} layers, vocab ${config.vocabSize}${isV1 ? "" : `, seq_len ${config.seqLen}`}) ` +
        `implies ${expected} bytes, found ${bytes.byteLength}`,
      hint,
    );
  }
  const params = ParamTable.fromSpecs(llamaParamSpecs(config));
  // Copy into an aligned buffer: the file's bytes may start at any offset (and a Node Buffer's slice()
  // would not copy).
  const floats = new Float32Array(plainBytes(bytes).slice(headerBytes).buffer);
  if (isV1) {
    let at = 0;
    for (const name of v1Order(config)) {
      const dst = params.get(name);
      dst.set(floats.subarray(at, at + dst.length));
      at += dst.length;
    }
  } else {
    const beforeFreq = params.count - (config.sharedClassifier ? 0 : config.vocabSize * config.dim);
    params.data.set(floats.subarray(0, beforeFreq));
    if (!config.sharedClassifier) params.get("output").set(floats.subarray(beforeFreq + freqFloats));
  }
  for (let i = 0; i < params.data.length; i++) {
    if (!Number.isFinite(params.data[i])) {
      const name = params.names().find((n) => {
        const e = params.entry(n);
        return i >= e.offset && i < e.offset + e.size;
      });
      throw new FormatError(path, `non-finite weight ${params.data[i]} in tensor ${name}`, hint);
    }
  }
  return { config, params, format: isV1 ? "llama2c-v1" : "llama2c-legacy" };
}

/**
 * Loads a llama2.c checkpoint from disk (see {@link parseLlama2c}).
 *
 * @example
 * ```ts
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * config.nLayers; // 5
 * params.count; // 260032
 * ```
 */
export async function loadLlama2c(path: string): Promise<LoadedCheckpoint> {
  return parseLlama2c(await readFileOrThrow(path, "Model checkpoint"), path);
}

/**
 * Serializes a model in the llama2.c version-1 layout (for interop and tests).
 *
 * @example
 * ```ts
 * import { loadLlama2c, parseLlama2c, serializeLlama2cV1 } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const back = parseLlama2c(serializeLlama2cV1(config, params));
 * back.format; // "llama2c-v1"
 * back.params.data.every((x, i) => x === params.data[i]); // true
 * ```
 */
export function serializeLlama2cV1(config: LlamaConfig, params: ParamTable): Uint8Array {
  const out = new Uint8Array(V1_HEADER_BYTES + 4 * params.count);
  const view = new DataView(out.buffer);
  view.setUint32(0, V1_MAGIC, true);
  view.setInt32(4, 1, true);
  const ints = [
    config.dim,
    config.hiddenDim,
    config.nLayers,
    config.nHeads,
    config.nKvHeads,
    config.vocabSize,
    config.seqLen,
  ];
  ints.forEach((v, i) => view.setInt32(8 + 4 * i, v, true));
  view.setUint8(36, config.sharedClassifier ? 1 : 0);
  let at = V1_HEADER_BYTES;
  for (const name of v1Order(config)) {
    const t = params.get(name);
    out.set(new Uint8Array(t.buffer, t.byteOffset, t.byteLength), at);
    at += t.byteLength;
  }
  return out;
}

/**
 * Serializes a model in the llama2.c legacy layout (freq_cis tables written as zeros; they are unused).
 *
 * @example
 * ```ts
 * import { loadLlama2c, serializeLlama2cLegacy } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/copy.bin`, serializeLlama2cLegacy(config, params));
 * (await loadLlama2c(`${dir}/copy.bin`)).config.vocabSize; // 512
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function serializeLlama2cLegacy(config: LlamaConfig, params: ParamTable): Uint8Array {
  const freqFloats = config.seqLen * headSize(config);
  const out = new Uint8Array(LEGACY_HEADER_BYTES + 4 * (params.count + freqFloats));
  const view = new DataView(out.buffer);
  const vocab = config.sharedClassifier ? config.vocabSize : -config.vocabSize;
  const ints = [
    config.dim,
    config.hiddenDim,
    config.nLayers,
    config.nHeads,
    config.nKvHeads,
    vocab,
    config.seqLen,
  ];
  ints.forEach((v, i) => view.setInt32(4 * i, v, true));
  const floats = new Float32Array(out.buffer, LEGACY_HEADER_BYTES);
  const beforeFreq = params.count - (config.sharedClassifier ? 0 : config.vocabSize * config.dim);
  floats.set(params.data.subarray(0, beforeFreq));
  if (!config.sharedClassifier) floats.set(params.get("output"), beforeFreq + freqFloats);
  return out;
}
