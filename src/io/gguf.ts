// GGUF, llama.cpp's model file (versions 2 and 3): a strict reader of its header, and Llama models stored as
// F32, F16 or BF16 tensors mapped onto the parameter table, with the SentencePiece vocabulary they carry.
//
// Layout, little-endian: "GGUF", u32 version, u64 tensor_count, u64 kv_count; kv_count × (string key, u32
// value type, value); tensor_count × (string name, u32 n_dims, n_dims × u64 ne, u32 ggml type, u64 offset
// into the data section); zero padding to `general.alignment` (default 32); the data section. A string is a
// u64 byte length and UTF-8 bytes; an array is a u32 element type, a u64 count and the elements. ne lists
// dimensions fastest-varying first, so a weight with ne = [in, out] is our row-major (out, in).
//
// Rotary layout: llama.cpp runs LLM_ARCH_LLAMA with rope type NORM, which rotates adjacent pairs (2j, 2j+1)
// of each head, as llama2.c and ops.ts's ropeForward do. Hugging Face checkpoints permute the q/k rows of
// Meta's weights for rotate_half pairs (j, j + hs/2); convert_hf_to_gguf.py permutes them back when it
// writes the file. So GGUF q/k rows are in Meta's order, the one llama2.c checkpoints use, and load without
// any permutation (tests/gguf.test.ts checks both permutations and both pairings against each other).

import { headSize, type LlamaConfig } from "../model/config.ts";
import { llamaParamCount, llamaParamSpecs, ParamTable } from "../model/params.ts";
import { f16BitsToF32 } from "../util/fp16.ts";
import { FormatError, readFileOrThrow } from "./errors.ts";
import { configProblem, MAX_TOKEN_LENGTH } from "./limits.ts";
import { plainBytes } from "./tensor_codec.ts";
import { BOS, EOS, Tokenizer } from "./tokenizer.ts";

/** The first four bytes of every GGUF file: "GGUF". */
export const GGUF_MAGIC: readonly number[] = [0x47, 0x47, 0x55, 0x46];

const HINT = "Expected a GGUF file (version 2 or 3) as llama.cpp's convert_hf_to_gguf.py writes it";
const HEADER_BYTES = 24; // magic, version, tensor_count, kv_count
const DEFAULT_ALIGNMENT = 32;
/** Smallest possible records: a KV (empty-key length, type, one byte) and a tensor info (one dim). */
const MIN_KV_BYTES = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;
/** ggml's GGML_MAX_DIMS, and GGML_MAX_NAME minus its NUL: what llama.cpp itself accepts. */
const MAX_DIMS = 4;
const MAX_TENSOR_NAME_BYTES = 63;
/** The GGUF spec's bound on keys, and a nesting bound for arrays of arrays (real files nest none). */
const MAX_KEY_BYTES = 65535;
const MAX_ARRAY_DEPTH = 8;

/** A ggml tensor type: `blockSize` elements take `typeSize` bytes. */
export interface GgmlType {
  /** ggml's enum value (append-only). */
  id: number;
  /** ggml's name: "F32", "F16", "Q4_0", "Q4_K", … */
  name: string;
  /** Elements per block (1 for plain types). */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

// ggml's type_traits, by id (append-only; ids 4, 5, 31–33 and 36–38 were removed from ggml and are unknown).
const GGML_TYPE_LIST: [number, string, number, number][] = [
  [0, "F32", 1, 4],
  [1, "F16", 1, 2],
  [2, "Q4_0", 32, 18],
  [3, "Q4_1", 32, 20],
  [6, "Q5_0", 32, 22],
  [7, "Q5_1", 32, 24],
  [8, "Q8_0", 32, 34],
  [9, "Q8_1", 32, 36],
  [10, "Q2_K", 256, 84],
  [11, "Q3_K", 256, 110],
  [12, "Q4_K", 256, 144],
  [13, "Q5_K", 256, 176],
  [14, "Q6_K", 256, 210],
  [15, "Q8_K", 256, 292],
  [16, "IQ2_XXS", 256, 66],
  [17, "IQ2_XS", 256, 74],
  [18, "IQ3_XXS", 256, 98],
  [19, "IQ1_S", 256, 50],
  [20, "IQ4_NL", 32, 18],
  [21, "IQ3_S", 256, 110],
  [22, "IQ2_S", 256, 82],
  [23, "IQ4_XS", 256, 136],
  [24, "I8", 1, 1],
  [25, "I16", 1, 2],
  [26, "I32", 1, 4],
  [27, "I64", 1, 8],
  [28, "F64", 1, 8],
  [29, "IQ1_M", 256, 56],
  [30, "BF16", 1, 2],
  [34, "TQ1_0", 256, 54],
  [35, "TQ2_0", 256, 66],
  [39, "MXFP4", 32, 17],
];
const GGML_TYPES = new Map(
  GGML_TYPE_LIST.map(([id, name, blockSize, typeSize]) => [id, { id, name, blockSize, typeSize }]),
);
/** Tensor types a model may be stored in: they convert to f32 exactly. */
const FLOAT_TYPES = new Set(["F32", "F16", "BF16"]);

/** Metadata value types, by id. */
const VALUE_TYPE_NAMES = [
  "uint8",
  "int8",
  "uint16",
  "int16",
  "uint32",
  "int32",
  "float32",
  "bool",
  "string",
  "array",
  "uint64",
  "int64",
  "float64",
];
type NumericArrayCtor =
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Uint16ArrayConstructor
  | Int16ArrayConstructor
  | Uint32ArrayConstructor
  | Int32ArrayConstructor
  | Float32ArrayConstructor
  | BigUint64ArrayConstructor
  | BigInt64ArrayConstructor
  | Float64ArrayConstructor;
/** Fixed-size value types: bytes and the typed array an array of them is read into. */
const FIXED: Record<number, [number, NumericArrayCtor]> = {
  0: [1, Uint8Array],
  1: [1, Int8Array],
  2: [2, Uint16Array],
  3: [2, Int16Array],
  4: [4, Uint32Array],
  5: [4, Int32Array],
  6: [4, Float32Array],
  10: [8, BigUint64Array],
  11: [8, BigInt64Array],
  12: [8, Float64Array],
};
const TYPE_STRING = 8;
const TYPE_ARRAY = 9;
const TYPE_BOOL = 7;

/** A numeric metadata array, read into the typed array of its element type. */
export type GgufNumericArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | BigUint64Array
  | BigInt64Array
  | Float64Array;

/**
 * A metadata value: numbers for the 8–32-bit and float types, bigint for uint64/int64, boolean, string,
 * a typed array for a numeric array, and a plain array for arrays of bools, strings or arrays.
 */
export type GgufValue = number | bigint | boolean | string | GgufNumericArray | GgufValue[];

/** One tensor as the header describes it. */
export interface GgufTensorInfo {
  /** llama.cpp's tensor name, e.g. "blk.0.attn_q.weight". */
  name: string;
  /** ggml's ne: dimensions fastest-varying first (the reverse of a row-major shape). */
  dims: number[];
  /** Storage type. */
  type: GgmlType;
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  /** Bytes of data: elements / blockSize × typeSize. */
  byteLength: number;
}

/** A GGUF file's header: metadata, tensor directory and where the data lies. */
export interface GgufFile {
  /** Format version. */
  version: 2 | 3;
  /** Every key-value pair, in file order. */
  metadata: Map<string, GgufValue>;
  /** The tensor directory, in file order. */
  tensors: GgufTensorInfo[];
  /** `general.alignment`, or 32. */
  alignment: number;
  /** Absolute byte offset of the data section. */
  dataOffset: number;
}

/**
 * True when `bytes` starts with the GGUF magic.
 *
 * @example
 * ```ts
 * import { isGguf } from "./gguf.ts";
 * isGguf(new TextEncoder().encode("GGUF\x03\0\0\0")); // true
 * ```
 */
export function isGguf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && GGUF_MAGIC.every((b, i) => bytes[i] === b);
}

const utf8Decoder = new TextDecoder();

/** Reads fields in order, each checked against the file's end before it is taken. */
class Cursor {
  at = 0;
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array, readonly path: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get left(): number {
    return this.bytes.length - this.at;
  }
  fail(problem: string): FormatError {
    return new FormatError(this.path, problem, HINT);
  }
  /** Claims `n` bytes and returns where they start. */
  take(n: number, what: string): number {
    if (n > this.left) {
      throw this.fail(
        `truncated: ${what} needs ${n} bytes at byte ${this.at}, the file ends at ${this.bytes.length}`,
      );
    }
    const start = this.at;
    this.at += n;
    return start;
  }
  u32(what: string): number {
    return this.view.getUint32(this.take(4, what), true);
  }
  /** A u64 that must fit a double exactly (every size or count a real file holds does). */
  u64(what: string): number {
    const at = this.at;
    const v = this.view.getBigUint64(this.take(8, what), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(`${what} at byte ${at} is ${v}, beyond 2^53`);
    return Number(v);
  }
  string(what: string, maxBytes = Infinity): string {
    const at = this.at;
    const n = this.u64(`the length of ${what}`);
    if (n > maxBytes) {
      throw this.fail(`${what} at byte ${at} claims ${n} bytes (expected at most ${maxBytes})`);
    }
    if (n > this.left) {
      throw this.fail(
        `${what} at byte ${at} claims ${n} bytes but only ${this.left} remain in the file: truncated or corrupt`,
      );
    }
    const start = this.take(n, what);
    return utf8Decoder.decode(this.bytes.subarray(start, start + n));
  }
}

function valueTypeName(type: number): string {
  return VALUE_TYPE_NAMES[type] ?? `unknown type ${type}`;
}

/** Fewest bytes a value of `type` can take (for checking a claimed array length against the file). */
function minValueBytes(c: Cursor, type: number, what: string): number {
  if (FIXED[type]) return FIXED[type][0];
  if (type === TYPE_BOOL) return 1;
  if (type === TYPE_STRING) return 8;
  if (type === TYPE_ARRAY) return 12;
  throw c.fail(`${what} has unknown value type ${type} (expected 0..12: ${VALUE_TYPE_NAMES.join(", ")})`);
}

function readValue(c: Cursor, type: number, what: string, depth: number): GgufValue {
  minValueBytes(c, type, what); // refuses unknown types
  if (type === TYPE_STRING) return c.string(what);
  if (type === TYPE_ARRAY) return readArray(c, what, depth + 1);
  if (type === TYPE_BOOL) {
    const at = c.at;
    const b = c.view.getUint8(c.take(1, what));
    if (b > 1) throw c.fail(`${what} at byte ${at} is a bool with byte ${b} (expected 0 or 1)`);
    return b === 1;
  }
  const at = c.take(FIXED[type][0], what);
  switch (type) {
    case 0:
      return c.view.getUint8(at);
    case 1:
      return c.view.getInt8(at);
    case 2:
      return c.view.getUint16(at, true);
    case 3:
      return c.view.getInt16(at, true);
    case 4:
      return c.view.getUint32(at, true);
    case 5:
      return c.view.getInt32(at, true);
    case 6:
      return c.view.getFloat32(at, true);
    case 10:
      return c.view.getBigUint64(at, true);
    case 11:
      return c.view.getBigInt64(at, true);
    default:
      return c.view.getFloat64(at, true);
  }
}

function readArray(c: Cursor, what: string, depth: number): GgufValue {
  if (depth > MAX_ARRAY_DEPTH) throw c.fail(`${what} nests arrays deeper than ${MAX_ARRAY_DEPTH} levels`);
  const elemType = c.u32(`the element type of ${what}`);
  const min = minValueBytes(c, elemType, `${what} (its elements)`);
  const at = c.at;
  const count = c.u64(`the length of ${what}`);
  // Before anything is allocated: the elements must fit in what is left of the file.
  if (count * min > c.left) {
    throw c.fail(
      `${what} at byte ${at} claims ${count} elements of type ${valueTypeName(elemType)} ` +
        `(at least ${count * min} bytes) but only ${c.left} bytes remain in the file`,
    );
  }
  const fixed = FIXED[elemType];
  if (fixed) {
    const start = c.take(count * fixed[0], what);
    // A copy: its own aligned buffer (the file's bytes may sit at any offset). Little-endian host, as ggml.
    return new fixed[1](c.bytes.slice(start, start + count * fixed[0]).buffer);
  }
  const out: GgufValue[] = [];
  for (let i = 0; i < count; i++) out.push(readValue(c, elemType, `${what}[${i}]`, depth));
  return out;
}

/**
 * Reads and checks a GGUF file's header: magic, version 2 or 3, metadata, tensor directory and data layout
 * (every tensor in range, aligned, not overlapping, its size matching its shape and type). Counts and lengths
 * are checked against the file's size before anything is allocated. Tensor data is not read; `path` only
 * names the file in errors.
 *
 * @example
 * ```ts
 * import { parseGguf } from "./gguf.ts";
 * const gguf = parseGguf(await Deno.readFile("../shared/data/llama-2-tiny-random.gguf"));
 * console.log(gguf.version, gguf.metadata.get("general.architecture"), gguf.tensors.length); // 3 llama 12
 * ```
 */
export function parseGguf(input: Uint8Array, path = "model.gguf"): GgufFile {
  // A Node Buffer's slice() shares memory: work on a plain Uint8Array view.
  const bytes = plainBytes(input);
  const c = new Cursor(bytes, path);
  if (!isGguf(bytes)) {
    const found = [...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw c.fail(`bad magic: expected "GGUF" (47 47 55 46), found ${found || "an empty file"}`);
  }
  if (bytes.length < HEADER_BYTES) {
    throw c.fail(`file is ${bytes.length} bytes, shorter than the ${HEADER_BYTES}-byte GGUF header`);
  }
  c.at = 4;
  const version = c.u32("version");
  if (version !== 2 && version !== 3) {
    const swapped = c.view.getUint32(4, false); // what a big-endian file's version reads as
    const detail = version === 1
      ? "version 1 files (before August 2023) are not supported: convert the model again with a current llama.cpp"
      : swapped === 2 || swapped === 3
      ? "this is a big-endian GGUF file; only little-endian files are supported"
      : `version ${version} is unknown to this loader (it reads 2 and 3)`;
    throw c.fail(`unsupported GGUF version ${version}: ${detail}`);
  }
  const tensorCount = c.u64("tensor_count");
  const kvCount = c.u64("kv_count");
  if (kvCount * MIN_KV_BYTES > c.left) {
    throw c.fail(
      `kv_count ${kvCount} cannot fit: ${kvCount} metadata entries need at least ${kvCount * MIN_KV_BYTES} ` +
        `bytes, the file has ${c.left} after its header`,
    );
  }
  if (tensorCount * MIN_TENSOR_INFO_BYTES > c.left - kvCount * MIN_KV_BYTES) {
    throw c.fail(
      `tensor_count ${tensorCount} cannot fit: ${tensorCount} tensor infos need at least ` +
        `${tensorCount * MIN_TENSOR_INFO_BYTES} bytes, the file has ${c.left} after its header`,
    );
  }
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`the key of metadata entry ${i}`, MAX_KEY_BYTES);
    if (key.length === 0) throw c.fail(`metadata entry ${i} has an empty key`);
    if (metadata.has(key)) throw c.fail(`metadata key "${key}" appears twice`);
    const type = c.u32(`the value type of "${key}"`);
    metadata.set(key, readValue(c, type, `metadata "${key}"`, 0));
  }
  const alignment = metadata.has("general.alignment")
    ? intMeta(metadata, "general.alignment", path)
    : DEFAULT_ALIGNMENT;
  if (alignment < 1 || alignment > 1 << 30 || (alignment & (alignment - 1)) !== 0) {
    throw c.fail(`general.alignment is ${alignment} (expected a power of two)`);
  }
  const names = new Set<string>();
  const infos: { name: string; dims: number[]; type: GgmlType; rel: number; bytes: bigint }[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`the name of tensor ${i}`, MAX_TENSOR_NAME_BYTES);
    if (names.has(name)) throw c.fail(`tensor name "${name}" appears twice`);
    names.add(name);
    const nDims = c.u32(`the dimension count of tensor ${name}`);
    if (nDims < 1 || nDims > MAX_DIMS) {
      throw c.fail(`tensor ${name} has ${nDims} dimensions (expected 1..${MAX_DIMS})`);
    }
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const n = c.u64(`dimension ${d} of tensor ${name}`);
      if (n < 1) throw c.fail(`tensor ${name} has dimension ${d} of size 0 (expected every ne > 0)`);
      dims.push(n);
    }
    const typeId = c.u32(`the type of tensor ${name}`);
    const type = GGML_TYPES.get(typeId);
    if (!type) throw c.fail(`tensor ${name} has unknown ggml type ${typeId}`);
    if (dims[0] % type.blockSize !== 0) {
      const block = `not a multiple of its block of ${type.blockSize}`;
      throw c.fail(`tensor ${name} (${type.name}) has ne[0] = ${dims[0]}, ${block}`);
    }
    const rel = c.u64(`the data offset of tensor ${name}`);
    // Exact sizes in bigint: four dims near 2^53 would overflow a double's integers.
    const elements = dims.reduce((a, n) => a * BigInt(n), 1n);
    const size = elements / BigInt(type.blockSize) * BigInt(type.typeSize);
    infos.push({ name, dims, type, rel, bytes: size });
  }
  const dataOffset = Math.ceil(c.at / alignment) * alignment;
  if (tensorCount > 0 && dataOffset > bytes.length) {
    throw c.fail(
      `truncated: the data section starts at byte ${dataOffset} (alignment ${alignment}), the file ends at ${bytes.length}`,
    );
  }
  const dataBytes = BigInt(bytes.length - dataOffset);
  for (const t of infos) {
    if (t.rel % alignment !== 0) {
      throw c.fail(
        `tensor ${t.name} starts at data offset ${t.rel}, not a multiple of the alignment ${alignment}`,
      );
    }
    if (BigInt(t.rel) + t.bytes > dataBytes) {
      const what = `${t.type.name}, ne [${t.dims.join(", ")}], ${t.bytes} bytes at data offset ${t.rel}`;
      throw c.fail(
        `tensor ${t.name} (${what}) ends past the file: the data section has ${dataBytes} bytes ` +
          "(truncated or corrupt)",
      );
    }
  }
  const byStart = [...infos].sort((a, b) => a.rel - b.rel);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1], t = byStart[i];
    if (BigInt(prev.rel) + prev.bytes > BigInt(t.rel)) {
      throw c.fail(
        `tensor ${t.name} (data offset ${t.rel}) overlaps tensor ${prev.name} ` +
          `(data offsets ${prev.rel}..${BigInt(prev.rel) + prev.bytes - 1n})`,
      );
    }
  }
  const tensors = infos.map((t) => ({
    name: t.name,
    dims: t.dims,
    type: t.type,
    offset: dataOffset + t.rel,
    byteLength: Number(t.bytes),
  }));
  return { version, metadata, tensors, alignment, dataOffset };
}

function describeValue(v: GgufValue | undefined): string {
  if (v === undefined) return "nothing";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return `an array of ${v.length}`;
  return `${typeof v} ${v}`;
}

/** An integer metadata value (any integer type) as a number; `fallback` when the key is absent. */
function intMeta(meta: Map<string, GgufValue>, key: string, path: string, fallback?: number): number {
  const v = meta.get(key);
  if (v === undefined && fallback !== undefined) return fallback;
  const n = typeof v === "bigint" ? (v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : NaN) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n)) {
    throw new FormatError(path, `expected metadata ${key} to be an integer, found ${describeValue(v)}`, HINT);
  }
  return n;
}

/**
 * A float metadata value. llama.cpp stores hyper-parameters as float32, so 1e-5 arrives as 9.99999974738e-6;
 * the shortest decimal that rounds to the same float32 is the value the converter was given, and is returned.
 */
function floatMeta(meta: Map<string, GgufValue>, key: string, path: string, fallback?: number): number {
  const v = meta.get(key);
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new FormatError(
      path,
      `expected metadata ${key} to be a finite number, found ${describeValue(v)}`,
      HINT,
    );
  }
  if (Math.fround(v) !== v) return v; // a float64 value: taken as written
  for (let digits = 1; digits < 9; digits++) {
    const d = Number(v.toPrecision(digits));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** A model read from a GGUF file. */
export interface LoadedGguf {
  /** Hyper-parameters from the llama.* metadata and the token embedding's shape. */
  config: LlamaConfig;
  /** Every tensor in f32, under the project's names. */
  params: ParamTable;
  /** The file's vocabulary, when it has one the project's (llama2.c) tokenizer runs. */
  tokenizer?: Tokenizer;
  /** Why `tokenizer` is absent. */
  tokenizerProblem?: string;
  /** The header as read. */
  gguf: GgufFile;
}

/**
 * GGUF's name of one of our parameters (llama.cpp's LLM_ARCH_LLAMA tensor names).
 *
 * @example
 * ```ts
 * import { ggufTensorName } from "./gguf.ts";
 * ggufTensorName("layers.3.w1"); // "blk.3.ffn_gate.weight"
 * ggufTensorName("tok_embeddings"); // "token_embd.weight"
 * ```
 */
export function ggufTensorName(param: string): string {
  const global: Record<string, string> = {
    tok_embeddings: "token_embd.weight",
    norm: "output_norm.weight",
    output: "output.weight",
  };
  if (global[param]) return global[param];
  const m = /^layers\.(\d+)\.(\w+)$/.exec(param);
  const kind: Record<string, string> = {
    attention_norm: "attn_norm",
    wq: "attn_q",
    wk: "attn_k",
    wv: "attn_v",
    wo: "attn_output",
    ffn_norm: "ffn_norm",
    w1: "ffn_gate",
    w2: "ffn_down",
    w3: "ffn_up",
  };
  if (!m || !kind[m[2]]) throw new RangeError(`ggufTensorName: unknown parameter "${param}"`);
  return `blk.${m[1]}.${kind[m[2]]}.weight`;
}

/** The Llama config the metadata and the token embedding describe. */
function ggufConfig(g: GgufFile, path: string): LlamaConfig {
  const meta = g.metadata;
  const fail = (problem: string) => new FormatError(path, problem, HINT);
  const arch = meta.get("general.architecture");
  if (arch !== "llama") {
    throw fail(`general.architecture is ${describeValue(arch)}; this loader reads "llama" models only`);
  }
  const int = (key: string, fallback?: number) => intMeta(meta, key, path, fallback);
  const experts = int("llama.expert_count", 0);
  if (experts > 0) {
    throw fail(`llama.expert_count is ${experts}: mixture-of-experts models are not supported`);
  }
  const scaling = meta.get("llama.rope.scaling.type");
  if (scaling !== undefined && scaling !== "none") {
    throw fail(
      `llama.rope.scaling.type is ${describeValue(scaling)}: scaled rotary embeddings are not supported`,
    );
  }
  const embd = g.tensors.find((t) => t.name === "token_embd.weight");
  if (!embd) throw fail("no tensor token_embd.weight (the token embedding)");
  if (embd.dims.length !== 2) {
    throw fail(`token_embd.weight has ne [${embd.dims.join(", ")}] (expected 2 dimensions: [dim, vocab])`);
  }
  const nHeads = int("llama.attention.head_count");
  const config: LlamaConfig = {
    dim: int("llama.embedding_length"),
    hiddenDim: int("llama.feed_forward_length"),
    nLayers: int("llama.block_count"),
    nHeads,
    nKvHeads: int("llama.attention.head_count_kv", nHeads),
    vocabSize: embd.dims[1],
    seqLen: int("llama.context_length"),
    sharedClassifier: !g.tensors.some((t) => t.name === "output.weight"),
    normEps: floatMeta(meta, "llama.attention.layer_norm_rms_epsilon", path),
    ropeTheta: floatMeta(meta, "llama.rope.freq_base", path, 10000),
  };
  const problem = configProblem(config);
  if (problem) throw fail(`bad llama.* metadata: ${problem}`);
  if (!(config.normEps > 0) || !(config.ropeTheta > 0)) {
    throw fail(
      `expected a positive rms epsilon and rope base, found ${config.normEps} and ${config.ropeTheta}`,
    );
  }
  const vocab = int("llama.vocab_size", config.vocabSize);
  if (vocab !== config.vocabSize) {
    throw fail(`llama.vocab_size is ${vocab} but token_embd.weight has ${config.vocabSize} rows`);
  }
  const hs = headSize(config);
  for (
    const key of ["llama.rope.dimension_count", "llama.attention.key_length", "llama.attention.value_length"]
  ) {
    const v = int(key, hs);
    if (v !== hs) {
      throw fail(
        `${key} is ${v} but the head size is ${hs} (dim ${config.dim} / ${config.nHeads} heads): ` +
          "partial rotary or unequal head sizes are not supported",
      );
    }
  }
  return config;
}

let f16Table: Float32Array | undefined;

/** Converts one tensor's bytes to f32 values in `dst`. */
function readTensor(bytes: Uint8Array, t: GgufTensorInfo, dst: Float32Array): void {
  const start = bytes.byteOffset + t.offset;
  const n = dst.length;
  const elemBytes = t.type.typeSize;
  // A view when the data is aligned for its element type, else a copy (alignment may be 1).
  const aligned = start % elemBytes === 0;
  const raw = aligned ? bytes.buffer : bytes.slice(t.offset, t.offset + t.byteLength).buffer;
  const at = aligned ? start : 0;
  if (t.type.name === "F32") {
    dst.set(new Float32Array(raw, at, n));
  } else if (t.type.name === "F16") {
    f16Table ??= Float32Array.from({ length: 65536 }, (_, h) => f16BitsToF32(h));
    const h = new Uint16Array(raw, at, n);
    for (let i = 0; i < n; i++) dst[i] = f16Table[h[i]];
  } else {
    const h = new Uint16Array(raw, at, n);
    const u = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) u[i] = h[i] << 16;
  }
}

/**
 * Reads a Llama model from GGUF bytes: config from the `llama.*` metadata, F32/F16/BF16 tensors into the
 * parameter table (quantized types are refused, naming type and tensor), and the SentencePiece vocabulary
 * (`tokenizer.ggml.*`) as a llama2.c tokenizer when it has one; `path` only names the file in errors.
 *
 * @example
 * ```ts
 * import { parseGgufModel } from "./gguf.ts";
 * const m = parseGgufModel(await Deno.readFile("../shared/data/llama-2-tiny-random.gguf"));
 * console.log(m.config.dim, m.config.vocabSize, m.tokenizer?.vocabSize); // 8 32000 32000
 * ```
 */
export function parseGgufModel(bytes: Uint8Array, path = "model.gguf"): LoadedGguf {
  const gguf = parseGguf(bytes, path);
  const fail = (problem: string) => new FormatError(path, problem, HINT);
  const config = ggufConfig(gguf, path);
  // Before anything the config's size is built (llama.block_count alone may claim 2^32 layers): the data
  // section must hold every parameter at 2 bytes (F16, BF16) at least.
  const values = llamaParamCount(config), dataBytes = bytes.length - gguf.dataOffset;
  if (values * 2 > dataBytes) {
    throw fail(
      `the config (dim ${config.dim}, hidden ${config.hiddenDim}, ${config.nLayers} layers, vocab ` +
        `${config.vocabSize}) has ${values} parameters, at least ${values * 2} bytes of tensor data, ` +
        `but the data section has ${dataBytes} bytes`,
    );
  }
  const specs = llamaParamSpecs(config);
  const byName = new Map(gguf.tensors.map((t) => [t.name, t]));
  const wanted = new Map(specs.map(([name, shape]) => [ggufTensorName(name), { name, shape }]));
  // Every tensor checked (known, float, right shape) before the table is allocated.
  for (const t of gguf.tensors) {
    const w = wanted.get(t.name);
    if (!w) {
      throw fail(
        `tensor ${t.name} is not part of a ${config.nLayers}-layer Llama model as this loader maps it ` +
          "(token_embd, blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_down,ffn_up}, " +
          "output_norm, output)",
      );
    }
    if (!FLOAT_TYPES.has(t.type.name)) {
      throw fail(
        `tensor ${t.name} has type ${t.type.name}: quantized GGUF tensors are not supported ` +
          "(expected F32, F16 or BF16); convert the model with --outtype f32 or f16",
      );
    }
    const shape = [...t.dims].reverse();
    if (shape.length !== w.shape.length || shape.some((d, i) => d !== w.shape[i])) {
      throw fail(
        `tensor ${t.name} has shape [${shape.join(", ")}] (ne [${t.dims.join(", ")}]) but the config ` +
          `(dim ${config.dim}, hidden ${config.hiddenDim}, ${config.nHeads} heads, ${config.nKvHeads} kv heads, ` +
          `vocab ${config.vocabSize}) makes ${w.name} [${w.shape.join(", ")}]`,
      );
    }
  }
  for (const [gname, w] of wanted) {
    if (!byName.has(gname)) throw fail(`tensor ${gname} (our ${w.name}) is missing`);
  }
  const params = ParamTable.fromSpecs(specs);
  for (const [gname, w] of wanted) {
    const t = byName.get(gname)!;
    const dst = params.get(w.name);
    readTensor(bytes, t, dst);
    for (let i = 0; i < dst.length; i++) {
      if (!Number.isFinite(dst[i])) {
        throw fail(`non-finite weight ${dst[i]} in tensor ${gname} at element ${i}`);
      }
    }
  }
  const { tokenizer, problem } = ggufTokenizer(gguf, config.vocabSize, path);
  return { config, params, tokenizer, tokenizerProblem: problem, gguf };
}

/**
 * The vocabulary of `tokenizer.ggml.*` as a llama2.c tokenizer, written in tokenizer.bin's layout the way
 * llama2.c's tokenizer.py exports one (▁ becomes a space, BOS and EOS become "\n<s>\n" and "\n</s>\n"), so
 * the same parser reads it and a `.rabit` file can embed its bytes. Malformed metadata is a FormatError;
 * a well-formed vocabulary this tokenizer cannot run (another model type, other special ids) is a problem.
 */
function ggufTokenizer(
  g: GgufFile,
  vocabSize: number,
  path: string,
): { tokenizer?: Tokenizer; problem?: string } {
  const meta = g.metadata;
  const fail = (problem: string) => new FormatError(path, problem, HINT);
  const model = meta.get("tokenizer.ggml.model");
  if (model === undefined) return { problem: "the file has no tokenizer.ggml.* metadata" };
  if (model !== "llama") {
    return {
      problem: `tokenizer.ggml.model is ${
        describeValue(model)
      }; only "llama" (SentencePiece) vocabularies are supported`,
    };
  }
  const tokens = meta.get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== "string")) {
    throw fail(`expected tokenizer.ggml.tokens to be an array of strings, found ${describeValue(tokens)}`);
  }
  if (tokens.length !== vocabSize) {
    throw fail(
      `tokenizer.ggml.tokens has ${tokens.length} tokens but token_embd.weight has ${vocabSize} rows`,
    );
  }
  const scores = meta.get("tokenizer.ggml.scores") ?? new Float32Array(vocabSize);
  if (!(scores instanceof Float32Array) || scores.length !== vocabSize) {
    throw fail(
      `expected tokenizer.ggml.scores to be ${vocabSize} float32 values, found ${describeValue(scores)}`,
    );
  }
  const bos = intMeta(meta, "tokenizer.ggml.bos_token_id", path, BOS);
  const eos = intMeta(meta, "tokenizer.ggml.eos_token_id", path, EOS);
  if (bos !== BOS || eos !== EOS) {
    return { problem: `BOS and EOS are tokens ${bos} and ${eos}; this tokenizer needs ${BOS} and ${EOS}` };
  }
  for (let b = 0; b < 256; b++) {
    const want = `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
    if (tokens[3 + b] !== want) {
      return {
        problem: `token ${3 + b} is ${describeValue(tokens[3 + b])}, expected ${want}: ` +
          "the byte-fallback tokens must be ids 3..258 as in Llama 2's vocabulary",
      };
    }
  }
  const enc = new TextEncoder();
  const pieces = (tokens as string[]).map((t, id) =>
    enc.encode(id === BOS ? "\n<s>\n" : id === EOS ? "\n</s>\n" : t.replaceAll("\u2581", " "))
  );
  let maxLen = 1, total = 4;
  for (const [id, p] of pieces.entries()) {
    if (p.length > MAX_TOKEN_LENGTH) {
      throw fail(
        `token ${id} is ${p.length} bytes long, beyond the tokenizer's limit of ${MAX_TOKEN_LENGTH}`,
      );
    }
    maxLen = Math.max(maxLen, p.length);
    total += 8 + p.length;
  }
  const bin = new Uint8Array(total);
  const view = new DataView(bin.buffer);
  view.setInt32(0, maxLen, true);
  let at = 4;
  for (const [id, p] of pieces.entries()) {
    view.setFloat32(at, scores[id], true);
    view.setInt32(at + 4, p.length, true);
    bin.set(p, at + 8);
    at += 8 + p.length;
  }
  return { tokenizer: Tokenizer.parse(bin, vocabSize, `${path} (tokenizer.ggml.* metadata)`) };
}

/**
 * Loads a Llama model from a GGUF file on disk (see {@link parseGgufModel}).
 *
 * @example
 * ```ts
 * import { loadGgufModel } from "./gguf.ts";
 * const { config, params } = await loadGgufModel("../shared/data/llama-2-tiny-random.gguf");
 * console.log(config.nLayers, params.count); // 1 513048
 * ```
 */
export async function loadGgufModel(path: string): Promise<LoadedGguf> {
  return parseGgufModel(await readFileOrThrow(path, "GGUF model"), path);
}
