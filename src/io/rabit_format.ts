// The packed model file `.rabit` (METHOD.md §8): everything needed to run a residual-binarized Llama —
// config, tokenizer, fp tensors, sign planes and scales — with the method, its options and metadata.
//
// Layout, format version 1 (all integers little-endian):
//
//   offset  bytes  field
//   0       8      magic "RABIT\0\0\0" (52 41 42 49 54 00 00 00)
//   8       4      u32 format version = 1. Read before anything after it, so a later version may change
//                  everything that follows.
//   12      4      u32 CRC-32 of the body (zlib's: util/crc32.ts)
//   16      8      u64 body length B: the file is exactly 24 + B bytes
//   24      B      body: one MessagePack map of plain maps, arrays, strings, numbers, booleans, nil and
//                  bins (no msgpackr records or extensions: any MessagePack reader can open it):
//
//   key        type       value
//   config     map        LlamaConfig: dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen,
//                         sharedClassifier, normEps, ropeTheta
//   tokenizer  bin | nil  the tokenizer file's bytes, unchanged: llama2.c's tokenizer.bin, or a Hugging Face
//                         tokenizer.json (told apart by its first bytes; io/tokenizer.ts). nil: none embedded
//   tensors    map        name → tensor for every parameter of llamaParamSpecs(config) that is not
//                         binarized, in that order; dtype f32 or f16, or i8 for tok_embeddings and
//                         output (int8 codes; the record then also holds scales: an f32 tensor (rows)
//                         of per-row scales, value = scale · code, quant/int8_rows.ts)
//   quantized  map        linear name ("layers.L.wq" …) → {out, in, k, planes, g, h}, in the same order:
//                           planes  u32 tensor (k, out, ceil(in/32)), bit layout of quant/bitpack.ts
//                                   (bit j of word w is column 32w + j, 1 = +1, padding bits 0)
//                           g       f32|f16 tensor (k, out)        h  f32|f16 tensor (k, in)
//   method     str        quantization method ("none" for a float model)
//   options    map        the method's options (JSON values)
//   metadata   map        calibration and training metadata (JSON values)
//   created    map        {at: ISO-8601 time, by: writer, …} (JSON values)
//
//   tensor = {dtype: id in tensor_codec.ts's DTYPES (0 f32, 1 f16, 2 u32, 3 i8), shape: [int, …],
//             data: bin of prod(shape) × element size bytes, row-major, little-endian}
//
// Tensors are raw bytes, never MessagePack float arrays, and are copied into aligned buffers on load.
// Readers ignore body keys they do not know; any change an old reader would misread bumps the version.
// Loading checks, in order and each with its own message: the magic ("not a .rabit file"), the version
// ("unsupported .rabit format version"), the length ("truncated" / "unexpected bytes after the end"),
// the checksum ("corrupt"), then the config (limits of io/limits.ts), the fewest bytes it implies against
// the file's length (before any table is built or allocated), every binary's byte range (inside the body,
// disjoint), then every field against the config. Default storage: fp tensors f32, scales
// f16 (METHOD.md §8); both are chosen per tensor with `RabitFile.dtypes`.
//
// Dimension legend: out = rows of a linear layer, in = its columns, k = binary paths (1..4).

import {
  type ContainerKind,
  isPlainObject,
  openContainer,
  PREAMBLE_BYTES,
  sealContainer,
  writeFileAtomic,
} from "./container.ts";
import { kvDim, type LlamaConfig, validateConfig } from "../model/config.ts";
import { llamaParamCount, llamaParamSpecs, ParamTable } from "../model/params.ts";
import { wordsPerRow } from "../quant/bitpack.ts";
import {
  PackedLinear,
  type PackedModel,
  type ResidualBinaryLinear,
  validateResidualBinary,
} from "../quant/residual_binary.ts";
import { FormatError, readFileOrThrow } from "./errors.ts";
import { configProblem } from "./limits.ts";
import {
  decodeFloatsInto,
  decodeU32,
  dtypeById,
  dtypeByName,
  DTYPES,
  type DtypeTraits,
  encodeFloats,
  encodeU32,
  firstNonFinite,
  type FpDtype,
  type StoredDtype,
} from "./tensor_codec.ts";
import { dequantizeRowsInt8, quantizeRowsInt8, validateInt8Rows } from "../quant/int8_rows.ts";
import { Tokenizer } from "./tokenizer.ts";

export type { FpDtype, StoredDtype } from "./tensor_codec.ts";

/** The 8 bytes every .rabit file starts with: "RABIT\0\0\0". */
export const RABIT_MAGIC: Uint8Array = new Uint8Array([0x52, 0x41, 0x42, 0x49, 0x54, 0, 0, 0]);
/** The format version this code writes. */
export const RABIT_VERSION = 1;
/** The format versions this code reads. */
export const RABIT_SUPPORTED_VERSIONS: readonly number[] = [1];
/** Bytes before the MessagePack body: magic, version, CRC-32, body length. */
export const RABIT_PREAMBLE_BYTES = PREAMBLE_BYTES;
/** Storage of fp tensors not named in `RabitFile.dtypes`. */
export const DEFAULT_TENSOR_DTYPE: FpDtype = "f32";
/** Storage of scales g and h not named in `RabitFile.dtypes`. */
export const DEFAULT_SCALE_DTYPE: FpDtype = "f16";
/** The tensors that may be stored as "i8" (int8 codes with per-row scales): the vocabulary-sized ones. */
export const INT8_TENSORS: readonly string[] = ["tok_embeddings", "output"];

/**
 * `RabitFile.dtypes` entries storing the vocabulary-sized tensors (the token embedding, and the classifier
 * unless shared with it) as `dtype`.
 *
 * @example
 * ```ts
 * import { vocabDtypes } from "./rabit_format.ts";
 * vocabDtypes(false, "i8"); // { tok_embeddings: "i8", output: "i8" }
 * ```
 */
export function vocabDtypes(sharedClassifier: boolean, dtype: StoredDtype): Record<string, StoredDtype> {
  return sharedClassifier ? { tok_embeddings: dtype } : { tok_embeddings: dtype, output: dtype };
}

/** Who wrote a file and when; free extra fields are kept. */
export interface RabitCreated {
  /** ISO-8601 time of writing. */
  at: string;
  /** The writer, e.g. "rabit 0.1.0". */
  by: string;
  /** Free extra fields (e.g. the runtime). */
  [key: string]: unknown;
}

/** What a .rabit file holds. */
export interface RabitFile {
  /**
   * The model. Every parameter of `llamaParamSpecs(config)` must be in `params` unless it is in `quantized`;
   * parameters that are in `quantized` are not stored even when also in `params`.
   */
  model: PackedModel;
  /** Tokenizer file bytes (`Tokenizer.bytes`: tokenizer.bin or tokenizer.json), embedded so one file is enough to run. */
  tokenizerBytes?: Uint8Array;
  /** Quantization method ("ptq", "rtn2", "dbllm", …; "none" for a float model). */
  method: string;
  /** The method's options (JSON values; undefined fields are dropped). */
  options: Record<string, unknown>;
  /** Calibration and training metadata (JSON values; undefined fields are dropped). */
  metadata: Record<string, unknown>;
  /**
   * Storage dtype by stored array: a parameter name for an fp tensor, `<layer>.g` / `<layer>.h` for the
   * scales of a binarized layer. Arrays not named use {@link DEFAULT_TENSOR_DTYPE} (fp tensors) and
   * {@link DEFAULT_SCALE_DTYPE} (scales). fp16 storage rounds to nearest even; "i8" (int8 codes with
   * per-row scales, quant/int8_rows.ts) is for {@link INT8_TENSORS} only.
   */
  dtypes?: Record<string, StoredDtype>;
  /** Creation info; the writer fills `{at: now, by: "rabit"}` when absent. */
  created?: RabitCreated;
}

/** A file read back: every optional field resolved, plus the parsed tokenizer. */
export interface LoadedRabit extends RabitFile {
  /** The dtype of every stored fp array (so writing it again gives the same bytes). */
  dtypes: Record<string, StoredDtype>;
  /** Creation info as stored. */
  created: RabitCreated;
  /** The embedded tokenizer, parsed for the model's vocabulary. */
  tokenizer?: Tokenizer;
  /** Size of the file in bytes. */
  fileBytes: number;
}

const HINT_NOT_RABIT = "Expected a packed model written by rabit (llama2.c checkpoints are .bin files)";
const HINT_VERSION = "Upgrade rabit to read it";
const HINT_BAD = "The file does not follow the .rabit format rabit writes; was it produced by another tool?";

/** The container of .rabit files (io/container.ts). */
const RABIT_CONTAINER: ContainerKind = {
  name: ".rabit",
  magic: RABIT_MAGIC,
  magicText: "RABIT",
  version: RABIT_VERSION,
  supported: RABIT_SUPPORTED_VERSIONS,
  hintNotThis: HINT_NOT_RABIT,
};

// ---------------------------------------------------------------------------------------------------
// The layout both sides agree on.

/** Shapes the config implies: fp tensors that must be stored, and (out, in) of every linear layer. */
function layoutOf(c: LlamaConfig, quantized: (name: string) => boolean) {
  const specs = llamaParamSpecs(c);
  const linears = new Map<string, [number, number]>();
  for (const [name, shape] of specs) {
    if (/^layers\.\d+\.w[qkvo123]$/.test(name)) linears.set(name, [shape[0], shape[1]]);
  }
  const fp = specs.filter(([name]) => !quantized(name));
  const binarized = specs.filter(([name]) => quantized(name)).map(([name]) => name);
  return { specs, linears, fp, binarized };
}

const scaleKeys = (layer: string) => [`${layer}.g`, `${layer}.h`] as const;

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function describe(v: unknown): string {
  if (v === null) return "nil";
  if (v === undefined) return "nothing";
  if (v instanceof Uint8Array) return `${v.byteLength} bytes of binary`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (isPlainObject(v)) return "a map";
  if (typeof v === "object") return `a ${(v as object).constructor?.name ?? "object"}`;
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);
  return `${typeof v} ${String(v)}`;
}

/**
 * A copy of a JSON value (null, boolean, finite number, string, array, plain object) with undefined
 * object fields dropped; anything else is reported through `fail`.
 */
function jsonValue(v: unknown, where: string, fail: (problem: string) => never, depth = 0): unknown {
  if (depth > 64) fail(`${where} is nested deeper than 64 levels (a cycle?)`);
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) fail(`${where} is ${v}; JSON values have only finite numbers`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => jsonValue(x, `${where}[${i}]`, fail, depth + 1));
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [key, x] of Object.entries(v)) {
      if (x === undefined) continue;
      // defineProperty: a "__proto__" key must become a field, not the prototype.
      Object.defineProperty(out, key, {
        value: jsonValue(x, `${where}.${key}`, fail, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return fail(
    `${where} is ${
      describe(v)
    }; expected a JSON value (null, boolean, finite number, string, array or plain object)`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Writing.

function encodeFpChecked(values: Float32Array, dtype: FpDtype, what: string): Uint8Array {
  const bad = firstNonFinite(values);
  if (bad >= 0) {
    throw new RangeError(
      `serializeRabit: ${what} holds ${values[bad]} at index ${bad}; only finite values are stored`,
    );
  }
  const bytes = encodeFloats(values, dtype);
  if (dtype === "f16") {
    for (let i = 0; i < values.length; i++) {
      if ((bytes[2 * i + 1] & 0x7c) === 0x7c) {
        throw new RangeError(
          `serializeRabit: ${what} holds ${
            values[i]
          } at index ${i}, beyond f16's range (|x| <= 65504); store it as f32`,
        );
      }
    }
  }
  return bytes;
}

function tensorRecord(dtype: DtypeTraits, shape: number[], data: Uint8Array) {
  return { dtype: dtype.id, shape, data };
}

/** Index (plane · out + row) of the first row whose padding bits are not 0, or -1. */
function firstDirtyPadding(planes: Uint32Array, k: number, out: number, inF: number): number {
  const tail = inF % 32;
  if (tail === 0) return -1;
  const wpr = wordsPerRow(inF);
  for (let r = 0; r < k * out; r++) {
    if (planes[r * wpr + wpr - 1] >>> tail !== 0) return r;
  }
  return -1;
}

function defaultCreated(): RabitCreated {
  const g = globalThis as {
    Deno?: { version?: { deno?: string } };
    process?: { versions?: { node?: string } };
  };
  const deno = g.Deno?.version?.deno, node = g.process?.versions?.node;
  const runtime = deno ? `deno ${deno}` : node ? `node ${node}` : undefined;
  return { at: new Date().toISOString(), by: "rabit", ...(runtime ? { runtime } : {}) };
}

function buildBody(file: RabitFile): Record<string, unknown> {
  const { model } = file;
  const c = model.config;
  validateConfig(c);
  const typeFail = (problem: string): never => {
    throw new TypeError(`serializeRabit: ${problem}`);
  };
  if (typeof file.method !== "string" || file.method.length === 0) {
    typeFail(`expected method to be a non-empty string, found ${describe(file.method)}`);
  }
  const options = jsonValue(file.options ?? {}, "options", typeFail);
  const metadata = jsonValue(file.metadata ?? {}, "metadata", typeFail);
  if (!isPlainObject(options)) typeFail(`expected options to be a plain object, found ${describe(options)}`);
  if (!isPlainObject(metadata)) {
    typeFail(`expected metadata to be a plain object, found ${describe(metadata)}`);
  }
  const created = jsonValue(file.created ?? defaultCreated(), "created", typeFail) as RabitCreated;
  if (!isPlainObject(created) || typeof created.at !== "string" || typeof created.by !== "string") {
    typeFail("expected created to be an object with string fields at and by");
  }

  let tokenizer: Uint8Array | null = null;
  if (file.tokenizerBytes !== undefined) {
    if (!(file.tokenizerBytes instanceof Uint8Array)) {
      typeFail(`expected tokenizerBytes to be a Uint8Array, found ${describe(file.tokenizerBytes)}`);
    }
    Tokenizer.parse(file.tokenizerBytes, c.vocabSize, "serializeRabit: tokenizerBytes"); // refuse what cannot load
    tokenizer = file.tokenizerBytes;
  }

  const { linears, fp, binarized } = layoutOf(c, (n) => model.quantized.has(n));
  for (const name of model.quantized.keys()) {
    if (!linears.has(name)) {
      throw new RangeError(
        `serializeRabit: quantized layer "${name}" is not a linear layer of this config ` +
          `(expected layers.L.{wq,wk,wv,wo,w1,w2,w3} with L < ${c.nLayers})`,
      );
    }
  }
  const known = new Set(llamaParamSpecs(c).map(([n]) => n));
  for (const name of model.params.names()) {
    if (!known.has(name)) {
      throw new RangeError(`serializeRabit: unexpected tensor "${name}": not a parameter of a Llama model`);
    }
  }

  const dtypes = file.dtypes ?? {};
  const stored = new Set<string>(fp.map(([n]) => n));
  for (const layer of binarized) for (const key of scaleKeys(layer)) stored.add(key);
  for (const [key, dtype] of Object.entries(dtypes)) {
    if (!stored.has(key)) {
      throw new RangeError(
        `serializeRabit: dtypes names "${key}", which the file does not store as floats ` +
          `(expected a parameter name, or <layer>.g / <layer>.h of a binarized layer)`,
      );
    }
    if (dtype === "i8" && !INT8_TENSORS.includes(key)) {
      throw new RangeError(
        `serializeRabit: dtypes["${key}"] is "i8", which only ${INT8_TENSORS.join(" and ")} may use`,
      );
    }
    if (dtype !== "f32" && dtype !== "f16" && dtype !== "i8") {
      typeFail(`dtypes["${key}"] must be "f32", "f16" or "i8", found ${describe(dtype)}`);
    }
  }
  const dtypeOf = (key: string, fallback: FpDtype) => dtypes[key] ?? fallback;
  const fpDtypeOf = (key: string, fallback: FpDtype) => dtypeOf(key, fallback) as FpDtype;

  const tensors: Record<string, unknown> = {};
  for (const [name, shape] of fp) {
    if (!model.params.has(name)) {
      throw new RangeError(
        `serializeRabit: missing tensor "${name}" ${
          shapeText(shape)
        }: every parameter that is not quantized is stored`,
      );
    }
    const found = model.params.shape(name);
    if (shapeText(found) !== shapeText(shape)) {
      throw new RangeError(
        `serializeRabit: tensor "${name}" has shape ${shapeText(found)}, the config implies ${
          shapeText(shape)
        }`,
      );
    }
    const dtype = dtypeOf(name, DEFAULT_TENSOR_DTYPE);
    if (dtype === "i8") {
      const rows = quantizeRowsInt8(model.params.get(name), shape[0], shape[1]);
      tensors[name] = {
        ...tensorRecord(dtypeByName("i8"), shape, new Uint8Array(rows.q.buffer)),
        scales: tensorRecord(dtypeByName("f32"), [shape[0]], encodeFloats(rows.scales, "f32")),
      };
      continue;
    }
    const data = encodeFpChecked(model.params.get(name), dtype, `tensor "${name}"`);
    tensors[name] = tensorRecord(dtypeByName(dtype), shape, data);
  }

  const quantized: Record<string, unknown> = {};
  for (const name of binarized) {
    const q = model.quantized.get(name)!;
    const [out, inF] = linears.get(name)!;
    if (q.out !== out || q.in !== inF) {
      throw new RangeError(
        `serializeRabit: quantized layer "${name}" is (out, in) = (${q.out}, ${q.in}), the config implies (${out}, ${inF})`,
      );
    }
    validateResidualBinary(q, `serializeRabit: quantized layer "${name}"`);
    const dirty = firstDirtyPadding(q.planes, q.k, out, inF);
    if (dirty >= 0) {
      throw new RangeError(
        `serializeRabit: quantized layer "${name}": padding bits of plane ${Math.floor(dirty / out)} row ` +
          `${dirty % out} are not 0 (layout of quant/bitpack.ts)`,
      );
    }
    const [gKey, hKey] = scaleKeys(name);
    const gType = fpDtypeOf(gKey, DEFAULT_SCALE_DTYPE);
    const hType = fpDtypeOf(hKey, DEFAULT_SCALE_DTYPE);
    quantized[name] = {
      out,
      in: inF,
      k: q.k,
      planes: tensorRecord(dtypeByName("u32"), [q.k, out, wordsPerRow(inF)], encodeU32(q.planes)),
      g: tensorRecord(dtypeByName(gType), [q.k, out], encodeFpChecked(q.g, gType, `scales "${gKey}"`)),
      h: tensorRecord(dtypeByName(hType), [q.k, inF], encodeFpChecked(q.h, hType, `scales "${hKey}"`)),
    };
  }

  return {
    config: {
      dim: c.dim,
      hiddenDim: c.hiddenDim,
      nLayers: c.nLayers,
      nHeads: c.nHeads,
      nKvHeads: c.nKvHeads,
      vocabSize: c.vocabSize,
      seqLen: c.seqLen,
      sharedClassifier: c.sharedClassifier,
      normEps: c.normEps,
      ropeTheta: c.ropeTheta,
    },
    tokenizer,
    tensors,
    quantized,
    method: file.method,
    options,
    metadata,
    created,
  };
}

/**
 * The bytes of a .rabit file (layout at the top of this file). Throws a RangeError or TypeError, before
 * producing anything, for a model the loader would refuse: missing or misshaped tensors, NaN/Inf, values
 * beyond f16's range where f16 is asked for, bad quantized layers, non-JSON options or metadata.
 *
 * @example
 * ```ts
 * import { parseRabit, serializeRabit } from "./rabit_format.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const bytes = serializeRabit({
 *   model: { config, params, quantized: new Map() },
 *   method: "none",
 *   options: {},
 *   metadata: {},
 * });
 * parseRabit(bytes).model.params.count; // 260032
 * ```
 */
export function serializeRabit(file: RabitFile): Uint8Array {
  return sealContainer(RABIT_CONTAINER, buildBody(file), "serializeRabit");
}

/**
 * Writes a .rabit file atomically: the bytes go to `path.tmp-<random>` in the same directory, are synced,
 * then renamed over `path`. On any failure the temporary file is removed and `path` is left as it was.
 *
 * @example
 * ```ts
 * import { readRabit, writeRabit } from "./rabit_format.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const path = await Deno.makeTempFile({ suffix: ".rabit" });
 * await writeRabit(path, { model: { config, params, quantized: new Map() }, method: "none", options: {}, metadata: {} });
 * (await readRabit(path)).method; // "none"
 * await Deno.remove(path);
 * ```
 */
export async function writeRabit(path: string, file: RabitFile): Promise<void> {
  await writeFileAtomic(path, serializeRabit(file));
}

// ---------------------------------------------------------------------------------------------------
// Reading.

/** (out, in) of each kind of block linear under config `c`. */
function linearShapes(c: LlamaConfig): Map<string, [number, number]> {
  const kv = kvDim(c);
  return new Map<string, [number, number]>([
    ["wq", [c.dim, c.dim]],
    ["wk", [kv, c.dim]],
    ["wv", [kv, c.dim]],
    ["wo", [c.dim, c.dim]],
    ["w1", [c.hiddenDim, c.dim]],
    ["w2", [c.dim, c.hiddenDim]],
    ["w3", [c.hiddenDim, c.dim]],
  ]);
}

/**
 * The fewest tensor bytes a file of config `c` can hold, from arithmetic alone: 2 bytes (f16) per stored
 * value (1 for the vocabulary tensors, which may be int8), and per binarized layer its planes and scales at
 * k = 1. `binarized`: kind → layers binarized.
 */
function minimumTensorBytes(
  c: LlamaConfig,
  shapes: Map<string, [number, number]>,
  binarized: Map<string, number>,
): number {
  let stored = llamaParamCount(c);
  let packed = 0;
  for (const [kind, layers] of binarized) {
    const [out, inF] = shapes.get(kind)!;
    stored -= layers * out * inF;
    packed += layers * (4 * out * wordsPerRow(inF) + 2 * (out + inF));
  }
  const vocabValues = c.vocabSize * c.dim * (c.sharedClassifier ? 1 : 2);
  return 2 * stored - vocabValues + packed;
}

/**
 * Checks that every binary inside `roots` (searched three maps deep) lies inside the body of `file` and
 * that no two overlap. MessagePack framing makes them so; a loader that copies from them checks it.
 */
function checkBinRanges(
  roots: [string, unknown][],
  file: Uint8Array,
  fail: (problem: string) => never,
): void {
  const ranges: [number, number, string][] = [];
  const visit = (v: unknown, where: string, depth: number) => {
    if (v instanceof Uint8Array) {
      if (v.byteLength === 0 || v.buffer !== file.buffer) return; // a decoder that copies: nothing to compare
      const start = v.byteOffset - file.byteOffset;
      const end = start + v.byteLength;
      if (start < PREAMBLE_BYTES || end > file.byteLength) {
        fail(
          `${where} lies at bytes ${start}..${end}, outside the body (${PREAMBLE_BYTES}..${file.byteLength})`,
        );
      }
      ranges.push([start, end, where]);
    } else if (depth < 3 && isPlainObject(v)) {
      for (const [key, x] of Object.entries(v)) visit(x, `${where}.${key}`, depth + 1);
    }
  };
  for (const [where, v] of roots) visit(v, where, 0);
  ranges.sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < ranges.length; i++) {
    const [s, e, what] = ranges[i], [ps, pe, prev] = ranges[i - 1];
    if (s < pe) fail(`${what} (bytes ${s}..${e}) overlaps ${prev} (bytes ${ps}..${pe})`);
  }
}

/**
 * Parses and validates the bytes of a .rabit file into a model ready to run (fp tensors in one ParamTable,
 * binarized layers with f32 scales). `path` only names the file in errors, which are FormatErrors saying
 * what was expected and what was found.
 *
 * @example
 * ```ts
 * import { parseRabit, serializeRabit } from "./rabit_format.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const bytes = serializeRabit({ model: { config, params, quantized: new Map() }, method: "none", options: {}, metadata: {} });
 * const file = parseRabit(bytes, "stories260K.rabit");
 * file.dtypes["tok_embeddings"]; // "f32"
 * ```
 */
export function parseRabit(bytes: Uint8Array, path = "packed model"): LoadedRabit {
  const fail = (problem: string, hint = HINT_BAD): never => {
    throw new FormatError(path, problem, hint);
  };
  const { body } = openContainer(RABIT_CONTAINER, bytes, path);
  return readBody(body, path, bytes, fail);
}

function readBody(
  body: unknown,
  path: string,
  file: Uint8Array,
  fail: (problem: string, hint?: string) => never,
): LoadedRabit {
  if (!isPlainObject(body)) fail(`expected the body to be a MessagePack map, found ${describe(body)}`);
  const b = body as Record<string, unknown>;
  const field = (obj: Record<string, unknown>, key: string, where: string): unknown => {
    if (!Object.hasOwn(obj, key)) fail(`${where} has no field "${key}"`);
    return obj[key];
  };
  const map = (v: unknown, where: string): Record<string, unknown> => {
    if (!isPlainObject(v)) fail(`expected ${where} to be a map, found ${describe(v)}`);
    return v as Record<string, unknown>;
  };
  const int = (v: unknown, where: string, min = 0): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      fail(`expected ${where} to be an integer >= ${min}, found ${describe(v)}`);
    }
    return v as number;
  };

  // config
  const cm = map(field(b, "config", "the body"), "config");
  const num = (key: keyof LlamaConfig) => {
    const v = field(cm, key, "config");
    if (typeof v !== "number" || !Number.isFinite(v)) {
      fail(`expected config.${key} to be a number, found ${describe(v)}`);
    }
    return v as number;
  };
  const shared = field(cm, "sharedClassifier", "config");
  if (typeof shared !== "boolean") {
    fail(`expected config.sharedClassifier to be a boolean, found ${describe(shared)}`);
  }
  const config: LlamaConfig = {
    dim: num("dim"),
    hiddenDim: num("hiddenDim"),
    nLayers: num("nLayers"),
    nHeads: num("nHeads"),
    nKvHeads: num("nKvHeads"),
    vocabSize: num("vocabSize"),
    seqLen: num("seqLen"),
    sharedClassifier: shared as boolean,
    normEps: num("normEps"),
    ropeTheta: num("ropeTheta"),
  };
  const problem = configProblem(config);
  if (problem) fail(`bad config: ${problem}`);
  if (!(config.normEps > 0) || !(config.ropeTheta > 0)) {
    fail(`bad config: expected normEps and ropeTheta > 0, found ${config.normEps} and ${config.ropeTheta}`);
  }

  // What the config implies, checked against the file before any table is built or allocated (a config
  // claiming a million layers is refused here, not by a failed allocation).
  const tm = map(field(b, "tensors", "the body"), "tensors");
  const qm = map(field(b, "quantized", "the body"), "quantized");
  const linearShape = linearShapes(config);
  const binarizedOf = new Map<string, number>(); // kind (wq …) → layers binarized
  for (const name of Object.keys(qm)) {
    const m = /^layers\.(0|[1-9]\d{0,8})\.(w[qkvo123])$/.exec(name);
    if (!m || Number(m[1]) >= config.nLayers) {
      fail(
        `quantized layer "${name}" is not a linear layer of this config ` +
          `(expected layers.L.{wq,wk,wv,wo,w1,w2,w3} with L < ${config.nLayers})`,
      );
    }
    const kind = (m as RegExpExecArray)[2];
    binarizedOf.set(kind, (binarizedOf.get(kind) ?? 0) + 1);
  }
  const need = minimumTensorBytes(config, linearShape, binarizedOf);
  if (need > file.byteLength) {
    fail(
      `the config (dim ${config.dim}, hidden ${config.hiddenDim}, ${config.nLayers} layers, vocab ` +
        `${config.vocabSize}) with ${Object.keys(qm).length} binarized layers needs at least ${need} bytes ` +
        `of tensors (2 per stored value; k = 1 planes and scales per binarized layer), the file is ` +
        `${file.byteLength} bytes`,
    );
  }
  checkBinRanges([["the tokenizer", b.tokenizer], ["tensors", tm], ["quantized", qm]], file, fail);

  // tokenizer
  const tok = field(b, "tokenizer", "the body");
  let tokenizerBytes: Uint8Array | undefined;
  let tokenizer: Tokenizer | undefined;
  if (tok !== null) {
    if (!(tok instanceof Uint8Array)) fail(`expected tokenizer to be binary or nil, found ${describe(tok)}`);
    tokenizerBytes = (tok as Uint8Array).slice(); // own copy: do not keep the whole file alive
    tokenizer = Tokenizer.parse(tokenizerBytes, config.vocabSize, `${path} (embedded tokenizer)`);
  }

  // tensors
  const FP: readonly FpDtype[] = ["f32", "f16"];
  const dtypes: Record<string, StoredDtype> = {};
  /** Checks a tensor record against the shape the config implies; returns its dtype and bytes. */
  const tensor = (v: unknown, what: string, allowed: readonly string[], want: number[]) => {
    const rec = map(v, what);
    const id = int(field(rec, "dtype", what), `the dtype of ${what}`);
    const dtype = dtypeById(id);
    if (!dtype) {
      fail(
        `${what} has unknown dtype id ${id} (this rabit knows ${
          DTYPES.map((d) => `${d.id} ${d.name}`).join(", ")
        })`,
        HINT_VERSION,
      );
    }
    const d = dtype as DtypeTraits;
    if (!allowed.includes(d.name)) fail(`${what} has dtype ${d.name}, expected ${allowed.join(" or ")}`);
    const shape = field(rec, "shape", what);
    if (!Array.isArray(shape) || !shape.every((x) => Number.isInteger(x) && x >= 0)) {
      fail(`expected the shape of ${what} to be an array of integers, found ${describe(shape)}`);
    }
    if (shapeText(shape as number[]) !== shapeText(want)) {
      fail(`${what} has shape ${shapeText(shape as number[])}, the config implies ${shapeText(want)}`);
    }
    const data = field(rec, "data", what);
    if (!(data instanceof Uint8Array)) {
      fail(`expected the data of ${what} to be binary, found ${describe(data)}`);
    }
    const need = want.reduce((a, x) => a * x, 1) * d.bytes;
    if ((data as Uint8Array).byteLength !== need) {
      fail(
        `${what}: dtype ${d.name} and shape ${shapeText(want)} need ${need} bytes of data, found ${
          (data as Uint8Array).byteLength
        }`,
      );
    }
    return { dtype: d, data: data as Uint8Array };
  };
  /** A float tensor's values; its dtype is recorded under `key` (null: an i8 tensor's row scales, always f32). */
  /** Float values of a tensor's bytes, refusing NaN and Inf. */
  const decodeFinite = (data: Uint8Array, dtype: DtypeTraits, what: string, into?: Float32Array) => {
    const values = decodeFloatsInto(
      data,
      dtype.name as FpDtype,
      into ?? new Float32Array(data.byteLength / dtype.bytes),
    );
    const bad = firstNonFinite(values);
    if (bad >= 0) fail(`${what} holds a non-finite value ${values[bad]} at index ${bad}`);
    return values;
  };
  /** A float tensor's values; its dtype is recorded under `key` (null: an i8 tensor's row scales, always f32). */
  const floats = (v: unknown, what: string, key: string | null, want: number[], into?: Float32Array) => {
    const { dtype, data } = tensor(v, what, key === null ? ["f32"] : FP, want);
    if (key !== null) dtypes[key] = dtype.name as FpDtype;
    return decodeFinite(data, dtype, what, into);
  };
  /** An i8 tensor's codes (`data`) and its record's per-row scales, dequantized into `into`. */
  const int8Into = (v: unknown, data: Uint8Array, what: string, want: number[], into: Float32Array) => {
    const scales = floats(field(map(v, what), "scales", what), `the row scales of ${what}`, null, [want[0]]);
    const rows = { out: want[0], in: want[1], q: new Int8Array(data.slice().buffer), scales };
    try {
      validateInt8Rows(rows, what);
    } catch (e) {
      fail((e as Error).message);
    }
    into.set(dequantizeRowsInt8(rows));
  };

  const layout = layoutOf(config, (name) => Object.hasOwn(qm, name));
  for (const name of Object.keys(qm)) {
    if (Object.hasOwn(tm, name)) fail(`"${name}" is stored both as a tensor and as a quantized layer`);
  }
  const expectedFp = new Set(layout.fp.map(([name]) => name));
  for (const name of Object.keys(tm)) {
    if (!expectedFp.has(name)) fail(`unexpected tensor "${name}": not a parameter of this config`);
  }
  const params = ParamTable.fromSpecs(layout.fp);
  for (const [name, shape] of layout.fp) {
    if (!Object.hasOwn(tm, name)) {
      fail(
        `missing tensor "${name}" ${
          shapeText(shape)
        }: the config needs every parameter that is not quantized`,
      );
    }
    const what = `tensor "${name}"`;
    const allowed: readonly StoredDtype[] = INT8_TENSORS.includes(name) ? [...FP, "i8"] : FP;
    const { dtype, data } = tensor(tm[name], what, allowed, shape);
    dtypes[name] = dtype.name as StoredDtype;
    if (dtype.name === "i8") int8Into(tm[name], data, what, shape, params.get(name));
    else decodeFinite(data, dtype, what, params.get(name));
  }

  const quantized = new Map<string, PackedLinear>();
  for (const name of layout.binarized) {
    const what = `quantized layer "${name}"`;
    const rec = map(qm[name], what);
    const [out, inF] = layout.linears.get(name)!;
    const qOut = int(field(rec, "out", what), `${what}.out`, 1);
    const qIn = int(field(rec, "in", what), `${what}.in`, 1);
    if (qOut !== out || qIn !== inF) {
      fail(`${what} is (out, in) = (${qOut}, ${qIn}), the config implies (${out}, ${inF})`);
    }
    const k = int(field(rec, "k", what), `${what}.k`, 1);
    if (k > 4) fail(`${what} has k = ${k} paths, expected 1..4`);
    const [gKey, hKey] = scaleKeys(name);
    const planesRec = tensor(field(rec, "planes", what), `the planes of ${what}`, ["u32"], [
      k,
      out,
      wordsPerRow(inF),
    ]);
    const layer: ResidualBinaryLinear = {
      out,
      in: inF,
      k,
      planes: decodeU32(planesRec.data),
      g: floats(field(rec, "g", what), `the scales g of ${what}`, gKey, [k, out]),
      h: floats(field(rec, "h", what), `the scales h of ${what}`, hKey, [k, inF]),
    };
    try {
      validateResidualBinary(layer, what);
    } catch (e) {
      fail((e as Error).message);
    }
    const dirty = firstDirtyPadding(layer.planes, k, out, inF);
    if (dirty >= 0) {
      fail(
        `${what}: padding bits of plane ${Math.floor(dirty / out)} row ${dirty % out} are not 0 ` +
          `(layout of quant/bitpack.ts)`,
      );
    }
    quantized.set(name, new PackedLinear(layer, what));
  }

  // method, options, metadata, creation info
  const method = field(b, "method", "the body");
  if (typeof method !== "string" || method.length === 0) {
    fail(`expected method to be a non-empty string, found ${describe(method)}`);
  }
  const json = (key: string) => {
    const v = map(field(b, key, "the body"), key);
    return jsonValue(v, key, (problem) => fail(problem)) as Record<string, unknown>;
  };
  const options = json("options");
  const metadata = json("metadata");
  const created = json("created");
  if (typeof created.at !== "string" || typeof created.by !== "string") {
    fail(
      `expected created to have string fields at and by, found ${describe(created.at)} and ${
        describe(created.by)
      }`,
    );
  }

  const classifierName = config.sharedClassifier ? "tok_embeddings" : "output";
  return {
    model: {
      config,
      params,
      quantized,
      ...(dtypes[classifierName] === "i8" ? { classifierStorage: "i8" as const } : {}),
    },
    tokenizerBytes,
    tokenizer,
    method: method as string,
    options,
    metadata,
    dtypes,
    created: created as RabitCreated,
    fileBytes: file.byteLength,
  };
}

/**
 * Reads and validates a .rabit file (see {@link parseRabit}).
 *
 * @example
 * ```ts
 * import { readRabit } from "./rabit_format.ts";
 * await readRabit("model.rabit").catch((e) => e.message); // "Packed model not found: model.rabit"
 * ```
 */
export async function readRabit(path: string): Promise<LoadedRabit> {
  return parseRabit(await readFileOrThrow(path, "Packed model"), path);
}

// ---------------------------------------------------------------------------------------------------
// Summary for `inspect`.

/** Names of the tensor groups of {@link rabitSummary}, in report order. */
export const RABIT_GROUPS = ["embeddings", "norms", "classifier", "linears", "planes", "scales"] as const;
/** A tensor group of {@link rabitSummary}. */
export type RabitGroupName = typeof RABIT_GROUPS[number];

/** Stored size of one tensor group. */
export interface RabitGroupSummary {
  /** embeddings, norms, classifier (separate output head), linears (dense, not binarized), planes, scales. */
  group: RabitGroupName;
  /** Values stored: floats for fp groups and scales; for planes, the weights they encode (1 bit per path). */
  elements: number;
  /** Bytes of tensor data (plane padding included). */
  bytes: number;
}

/** Storage cost of one binarized layer. */
export interface RabitLayerSummary {
  /** Parameter name, e.g. "layers.0.wq". */
  name: string;
  /** Output features (rows). */
  out: number;
  /** Input features (columns). */
  in: number;
  /** Binary paths. */
  k: number;
  /** Plane and scale bytes. */
  bytes: number;
  /** 8 · bytes / (out · in). */
  bitsPerWeight: number;
}

/** What {@link rabitSummary} reports. */
export interface RabitSummary {
  /** The file's quantization method. */
  method: string;
  /** Every group in {@link RABIT_GROUPS} order (zeros included). */
  groups: RabitGroupSummary[];
  /** The binarized layers together. */
  binarized: {
    layers: number;
    weights: number;
    planeBytes: number;
    scaleBytes: number;
    bitsPerWeight: number;
  };
  /** Each binarized layer, in parameter order. */
  layers: RabitLayerSummary[];
  /** Weights the model represents: fp values plus binarized weights. */
  parameters: number;
  /** Bytes of all tensor data. */
  tensorBytes: number;
  /** 8 · tensorBytes / parameters. */
  bitsPerParameter: number;
  /** Bytes of the embedded tokenizer (0 when none). */
  tokenizerBytes: number;
}

function groupOf(name: string): RabitGroupName {
  if (name === "tok_embeddings") return "embeddings";
  if (name === "output") return "classifier";
  if (name.endsWith("norm")) return "norms";
  return "linears";
}

/**
 * Storage by tensor group and bits per weight of the binarized layers (planes plus scales over weights),
 * for the dtypes the file stores (or would store).
 *
 * @example
 * ```ts
 * import { rabitSummary } from "./rabit_format.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const s = rabitSummary({ model: { config, params, quantized: new Map() }, method: "none", options: {}, metadata: {} });
 * s.tensorBytes; // 1040128 (260032 f32 values)
 * ```
 */
export function rabitSummary(file: RabitFile): RabitSummary {
  const { model } = file;
  const dtypes = file.dtypes ?? {};
  const bytesOf = (key: string, fallback: FpDtype) => dtypeByName(dtypes[key] ?? fallback).bytes;
  const groups = new Map<RabitGroupName, RabitGroupSummary>(
    RABIT_GROUPS.map((group) => [group, { group, elements: 0, bytes: 0 }]),
  );
  const add = (group: RabitGroupName, elements: number, bytes: number) => {
    const g = groups.get(group)!;
    g.elements += elements;
    g.bytes += bytes;
  };
  let parameters = 0;
  for (const name of model.params.names()) {
    if (model.quantized.has(name)) continue;
    const size = model.params.entry(name).size;
    // An int8 tensor also stores one f32 scale per row.
    const rowScales = dtypes[name] === "i8" ? 4 * model.params.shape(name)[0] : 0;
    add(groupOf(name), size, size * bytesOf(name, DEFAULT_TENSOR_DTYPE) + rowScales);
    parameters += size;
  }
  const layers: RabitLayerSummary[] = [];
  const binarized = { layers: 0, weights: 0, planeBytes: 0, scaleBytes: 0, bitsPerWeight: 0 };
  const order = llamaParamSpecs(model.config).map(([n]) => n).filter((n) => model.quantized.has(n));
  for (const name of order) {
    const q = model.quantized.get(name)!;
    const [gKey, hKey] = scaleKeys(name);
    const weights = q.out * q.in;
    const planeBytes = 4 * q.k * q.out * wordsPerRow(q.in);
    const scaleBytes = q.k *
      (q.out * bytesOf(gKey, DEFAULT_SCALE_DTYPE) + q.in * bytesOf(hKey, DEFAULT_SCALE_DTYPE));
    add("planes", weights, planeBytes);
    add("scales", q.k * (q.out + q.in), scaleBytes);
    parameters += weights;
    binarized.layers++;
    binarized.weights += weights;
    binarized.planeBytes += planeBytes;
    binarized.scaleBytes += scaleBytes;
    const bytes = planeBytes + scaleBytes;
    layers.push({ name, out: q.out, in: q.in, k: q.k, bytes, bitsPerWeight: (8 * bytes) / weights });
  }
  binarized.bitsPerWeight = binarized.weights > 0
    ? (8 * (binarized.planeBytes + binarized.scaleBytes)) / binarized.weights
    : 0;
  const list = [...groups.values()];
  const tensorBytes = list.reduce((a, g) => a + g.bytes, 0);
  return {
    method: file.method,
    groups: list,
    binarized,
    layers,
    parameters,
    tensorBytes,
    bitsPerParameter: parameters > 0 ? (8 * tensorBytes) / parameters : 0,
    tokenizerBytes: file.tokenizerBytes?.byteLength ?? 0,
  };
}
