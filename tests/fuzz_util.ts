// Seeded mutation fuzzing of the file loaders (llama2.c model, tokenizer.bin, .rabit, training checkpoint,
// safetensors exports, GGUF models): small valid files, mutators that damage them, and a driver that
// requires every input to be accepted or refused with the loader's own error, fast. Shared by
// tests/fuzz_loaders.test.ts and scripts/fuzz_loaders.ts.
//
// A case is (format, seed, index): its own Rng picks a valid file and 1..3 mutations, so any case is
// reproduced from those three numbers alone.

import { Packr } from "msgpackr";
import { FormatError } from "../src/io/errors.ts";
import { serializeLlama2cLegacy, serializeLlama2cV1 } from "../src/io/llama2c.ts";
import { parseLlama2c } from "../src/io/llama2c.ts";
import { parseRabit, serializeRabit } from "../src/io/rabit_format.ts";
import { packedSafetensors, parsePackedSafetensors } from "../src/io/rabit_safetensors.ts";
import { parseSafetensors, SAFETENSORS_DTYPE_BYTES } from "../src/io/safetensors.ts";
import { exportTrainState, importTrainState, TRAIN_STATE_LAYOUT } from "../src/train/state_safetensors.ts";
import { Llama2cTokenizer, Tokenizer } from "../src/io/tokenizer.ts";
import { tokenizerJsonFromLlama2c } from "../src/io/hf_tokenizer.ts";
import { parseGgufModel } from "../src/io/gguf.ts";
import { headSize, type LlamaConfig } from "../src/model/config.ts";
import { llamaParamCount } from "../src/model/params.ts";
import { wordsPerRow } from "../src/quant/bitpack.ts";
import { PackedLinear } from "../src/quant/residual_binary.ts";
import { type Checkpoint, parseCheckpoint, writeCheckpoint } from "../src/train/checkpoint.ts";
import { crc32 } from "../src/util/crc32.ts";
import { Rng } from "../src/util/rng.ts";
import { randomModel, tinyConfig, TOKENIZER_PATH } from "./_data.ts";
import { modelToGguf } from "./_gguf.ts";

/** What one mutator did to its input. */
export interface Mutated {
  bytes: Uint8Array;
  /** How, precisely enough to read off a failure report (offsets, values). */
  detail: string;
}

/** Damages a file; `input` is never changed in place. */
export type Mutator = (input: Uint8Array, rng: Rng) => Mutated;

/** One format under test. */
export interface FuzzTarget {
  name: string;
  /** Valid files of the format (each is accepted as is). */
  seeds: { name: string; bytes: Uint8Array }[];
  /** The loader, on bytes. */
  parse: (bytes: Uint8Array) => unknown;
  /** Mutators by name, with a weight: the generic ones and the format's own. */
  mutators: [string, Mutator, number][];
}

/** One generated input. */
export interface FuzzCase {
  index: number;
  bytes: Uint8Array;
  /** The valid file it started from and each mutation applied, in order. */
  mutation: string;
}

/** An input the loader mishandled. */
export interface FuzzFailure {
  format: string;
  seed: number;
  index: number;
  mutation: string;
  /** What went wrong: the foreign error (class and message) or the time taken. */
  problem: string;
}

/** Totals of a run over one format. */
export interface FuzzSummary {
  format: string;
  seed: number;
  inputs: number;
  accepted: number;
  refused: number;
  failures: FuzzFailure[];
  slowestMs: number;
  slowestIndex: number;
  slowestMutation: string;
}

// ---------------------------------------------------------------------------------------------------
// What counts as the loader's own refusal.

/** Messages of errors the engine (not the loader) throws: never acceptable from a loader. */
const ENGINE_MESSAGES: RegExp[] = [
  /Array buffer allocation failed/i,
  /offset is out of bounds/i,
  /Invalid typed array length/i,
  /Invalid array length/i,
  /Invalid string length/i,
  /Maximum call stack/i,
  /out of memory/i,
  /Cannot read propert/i,
  /Cannot set propert/i,
  /Cannot convert/i,
  /is not a function/i,
  /is not iterable/i,
  /is not a constructor/i,
  /is not defined/i,
  /outside the bounds of the DataView/i,
  /Start offset .* is outside the bounds/i,
  /undefined/,
];

/**
 * Whether `e` is a refusal of the loader's own: a FormatError, RangeError or TypeError (Deno std's
 * grammar) whose message is none of the engine's.
 */
export function isLoaderError(e: unknown): boolean {
  if (!(e instanceof FormatError || e instanceof RangeError || e instanceof TypeError)) return false;
  return !ENGINE_MESSAGES.some((re) => re.test(e.message));
}

// ---------------------------------------------------------------------------------------------------
// Generic mutators (any format).

/** Interesting 32-bit values: boundaries, the sizes that used to exhaust memory, NaN/Inf bit patterns. */
const EXTREME_I32 = [
  0,
  -1,
  1,
  2,
  0x7fffffff,
  -0x80000000,
  1 << 20, // 1,048,576 layers
  1 << 16, // dim 65,536
  1 << 24,
  (1 << 24) + 1,
  0x7fc00000, // f32 NaN
  0x7f800000, // f32 +Inf
  0xff800000 | 0, // f32 -Inf
];
const SPECIAL_F32 = [NaN, Infinity, -Infinity, -0, 3.4e38, 1e-45];

const copyOf = (b: Uint8Array) => b.slice();
const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(items.length)];
const randomBytes = (rng: Rng, n: number) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(256);
  return out;
};
/** An offset, half of the time inside the first `head` bytes (where headers are). */
const offset = (rng: Rng, n: number, head = 64) => rng.next() < 0.5 ? rng.int(Math.min(n, head)) : rng.int(n);
const i32At = (b: Uint8Array, at: number, v: number) =>
  new DataView(b.buffer, b.byteOffset, b.byteLength).setInt32(at, v, true);
const i32Of = (b: Uint8Array, at: number) =>
  new DataView(b.buffer, b.byteOffset, b.byteLength).getInt32(at, true);
/** A 32-bit value derived from `current`: an extreme, a neighbour, a double, or a small random one. */
function extremeI32(rng: Rng, current: number): number {
  const r = rng.next();
  if (r < 0.6) return pick(rng, EXTREME_I32);
  if (r < 0.75) return current + (rng.next() < 0.5 ? 1 : -1);
  if (r < 0.85) return current * 2;
  return 1 + rng.int(64);
}

function bitFlips(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  if (b.length === 0) return { bytes: b, detail: "nothing to flip" };
  const n = 1 + rng.int(8);
  const flips: string[] = [];
  for (let i = 0; i < n; i++) {
    const at = offset(rng, b.length), bit = rng.int(8);
    b[at] ^= 1 << bit;
    flips.push(`${at}.${bit}`);
  }
  return { bytes: b, detail: `bits ${flips.join(" ")}` };
}

function byteOverwrite(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  if (b.length === 0) return { bytes: b, detail: "nothing to overwrite" };
  const n = 1 + rng.int(16);
  const at = offset(rng, b.length);
  const value = pick(rng, [-1, 0, 0xff, 0x7f, 0x80]);
  for (let i = at; i < Math.min(b.length, at + n); i++) b[i] = value < 0 ? rng.int(256) : value;
  return { bytes: b, detail: `${n} bytes at ${at} := ${value < 0 ? "random" : value}` };
}

function int32Extreme(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  if (b.length < 4) return { bytes: b, detail: "too short" };
  const at = 4 * Math.floor(offset(rng, b.length - 3, 256) / 4);
  const v = extremeI32(rng, i32Of(b, at));
  i32At(b, at, v);
  return { bytes: b, detail: `int32 at ${at} := ${v}` };
}

function floatSpecial(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  if (b.length < 4) return { bytes: b, detail: "too short" };
  const at = 4 * rng.int(Math.floor(b.length / 4));
  const v = pick(rng, SPECIAL_F32);
  new DataView(b.buffer).setFloat32(at, v, true);
  return { bytes: b, detail: `f32 at ${at} := ${v}` };
}

function truncate(input: Uint8Array, rng: Rng): Mutated {
  const n = rng.next() < 0.3 ? rng.int(Math.min(input.length, 300) + 1) : rng.int(input.length + 1);
  return { bytes: input.slice(0, n), detail: `to ${n} of ${input.length} bytes` };
}

function appendGarbage(input: Uint8Array, rng: Rng): Mutated {
  const n = 1 + rng.int(rng.next() < 0.5 ? 8 : 4096);
  const b = new Uint8Array(input.length + n);
  b.set(input);
  b.set(randomBytes(rng, n), input.length);
  return { bytes: b, detail: `${n} random bytes` };
}

function insertChunk(input: Uint8Array, rng: Rng): Mutated {
  const at = offset(rng, input.length + 1), n = 1 + rng.int(64);
  const b = new Uint8Array(input.length + n);
  b.set(input.subarray(0, at));
  b.set(randomBytes(rng, n), at);
  b.set(input.subarray(at), at + n);
  return { bytes: b, detail: `${n} random bytes at ${at}` };
}

function deleteChunk(input: Uint8Array, rng: Rng): Mutated {
  if (input.length === 0) return { bytes: copyOf(input), detail: "nothing to delete" };
  const at = offset(rng, input.length), n = 1 + rng.int(Math.min(256, input.length - at));
  const b = new Uint8Array(input.length - n);
  b.set(input.subarray(0, at));
  b.set(input.subarray(at + n), at);
  return { bytes: b, detail: `${n} bytes at ${at}` };
}

function duplicateChunk(input: Uint8Array, rng: Rng): Mutated {
  if (input.length === 0) return { bytes: copyOf(input), detail: "nothing to copy" };
  const from = rng.int(input.length), n = 1 + rng.int(Math.min(512, input.length - from));
  const to = rng.int(input.length - n + 1);
  const b = copyOf(input);
  b.copyWithin(to, from, from + n);
  return { bytes: b, detail: `${n} bytes from ${from} to ${to}` };
}

function pureRandom(input: Uint8Array, rng: Rng): Mutated {
  const n = rng.int(4097);
  const b = randomBytes(rng, n);
  // Half the time behind the file's real first bytes, so the magic and version checks let it through.
  const keep = rng.next() < 0.5 ? Math.min(n, input.length, pick(rng, [4, 8, 12, 24, 28, 256])) : 0;
  b.set(input.subarray(0, keep));
  return { bytes: b, detail: `${n} random bytes${keep ? ` after the file's first ${keep}` : ""}` };
}

const GENERIC: [string, Mutator, number][] = [
  ["bit flips", bitFlips, 2],
  ["byte overwrite", byteOverwrite, 2],
  ["int32 extreme", int32Extreme, 2],
  ["f32 special", floatSpecial, 1],
  ["truncate", truncate, 2],
  ["append garbage", appendGarbage, 1],
  ["insert chunk", insertChunk, 1],
  ["delete chunk", deleteChunk, 1],
  ["duplicate chunk", duplicateChunk, 1],
  ["pure random", pureRandom, 1],
];

// ---------------------------------------------------------------------------------------------------
// llama2.c model files.

const V1_MAGIC = 0x616b3432;
const FIELDS = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
const isV1 = (b: Uint8Array) => b.length >= 4 && (i32Of(b, 0) >>> 0) === V1_MAGIC;
const fieldAt = (b: Uint8Array, i: number) => (isV1(b) ? 8 : 0) + 4 * i;

function llamaHeaderField(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  const i = rng.int(FIELDS.length), at = fieldAt(b, i);
  if (b.length < at + 4) return { bytes: b, detail: "too short" };
  const v = extremeI32(rng, i32Of(b, at));
  i32At(b, at, v);
  return { bytes: b, detail: `${FIELDS[i]} := ${v}` };
}

function llamaV1Fields(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  if (!isV1(b) || b.length < 40) return { bytes: b, detail: "not v1" };
  if (rng.next() < 0.5) {
    const v = extremeI32(rng, 1);
    i32At(b, 4, v);
    return { bytes: b, detail: `version := ${v}` };
  }
  const v = rng.int(256);
  b[36] = v;
  return { bytes: b, detail: `shared_classifier := ${v}` };
}

/** The file size a (possibly damaged) header implies, or -1 when the header is not a config. */
function llamaImpliedBytes(b: Uint8Array): number {
  const at = (i: number) => i32Of(b, fieldAt(b, i));
  if (b.length < fieldAt(b, 7)) return -1;
  const vocab = at(5);
  const c: LlamaConfig = {
    dim: at(0),
    hiddenDim: at(1),
    nLayers: at(2),
    nHeads: at(3),
    nKvHeads: at(4),
    vocabSize: Math.abs(vocab),
    seqLen: at(6),
    sharedClassifier: isV1(b) ? b[36] === 1 : vocab > 0,
    normEps: 1e-5,
    ropeTheta: 1e4,
  };
  if (Object.values(c).some((v) => typeof v === "number" && !(v > 0))) return -1;
  const freq = isV1(b) ? 0 : c.seqLen * headSize(c);
  return (isV1(b) ? 256 : 28) + 4 * (llamaParamCount(c) + freq);
}

/** Damages a header field, then cuts or zero-pads the file to the size the new header implies. */
function llamaHeaderResized(input: Uint8Array, rng: Rng): Mutated {
  const { bytes: b, detail } = llamaHeaderField(input, rng);
  const n = llamaImpliedBytes(b);
  if (!(Number.isInteger(n) && n > 0 && n <= 1 << 22)) {
    return { bytes: b, detail: `${detail}, implies ${n} bytes: not resized` };
  }
  const out = new Uint8Array(n);
  out.set(b.subarray(0, Math.min(n, b.length)));
  return { bytes: out, detail: `${detail}, resized to ${n} bytes` };
}

async function llama2cTarget(): Promise<FuzzTarget> {
  await Promise.resolve();
  const config = tinyConfig();
  const shared = randomModel(config, 11);
  const separate = randomModel({ ...config, sharedClassifier: false }, 12);
  return {
    name: "llama2c",
    seeds: [
      { name: "v1, shared classifier", bytes: serializeLlama2cV1(shared.config, shared.params) },
      {
        name: "legacy, separate classifier",
        bytes: serializeLlama2cLegacy(separate.config, separate.params),
      },
      { name: "legacy, shared classifier", bytes: serializeLlama2cLegacy(shared.config, shared.params) },
    ],
    parse: (bytes) => parseLlama2c(bytes, "fuzz.bin"),
    mutators: [
      ...GENERIC,
      ["header field", llamaHeaderField, 4],
      ["header field, file resized", llamaHeaderResized, 3],
      ["v1 version/flag", llamaV1Fields, 1],
    ],
  };
}

// ---------------------------------------------------------------------------------------------------
// llama2.c tokenizer.bin.

/** Byte offsets of each record (score, then length) while the records parse. */
function tokenRecords(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let at = 4; at + 8 <= b.length;) {
    const len = i32Of(b, at + 4);
    if (len < 0 || at + 8 + len > b.length) break;
    out.push(at);
    at += 8 + len;
  }
  return out;
}

function tokenMaxLength(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  if (b.length < 4) return { bytes: b, detail: "too short" };
  const v = extremeI32(rng, i32Of(b, 0));
  i32At(b, 0, v);
  return { bytes: b, detail: `max_token_length := ${v}` };
}

function tokenRecordField(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  const records = tokenRecords(b);
  if (records.length === 0) return { bytes: b, detail: "no records" };
  const r = rng.int(records.length), at = records[r];
  if (rng.next() < 0.3) {
    const v = pick(rng, SPECIAL_F32);
    new DataView(b.buffer).setFloat32(at, v, true);
    return { bytes: b, detail: `score of token ${r} := ${v}` };
  }
  const v = extremeI32(rng, i32Of(b, at + 4));
  i32At(b, at + 4, v);
  return { bytes: b, detail: `length of token ${r} := ${v}` };
}

function tokenRecordSplice(input: Uint8Array, rng: Rng): Mutated {
  const records = tokenRecords(input);
  if (records.length === 0) return { bytes: copyOf(input), detail: "no records" };
  const r = rng.int(records.length), at = records[r];
  const end = r + 1 < records.length ? records[r + 1] : at + 8 + i32Of(input, at + 4);
  const record = input.subarray(at, end);
  if (rng.next() < 0.5) {
    const b = new Uint8Array(input.length - record.length);
    b.set(input.subarray(0, at));
    b.set(input.subarray(end), at);
    return { bytes: b, detail: `token ${r} removed` };
  }
  const b = new Uint8Array(input.length + record.length);
  b.set(input.subarray(0, end));
  b.set(record, end);
  b.set(input.subarray(end), end + record.length);
  return { bytes: b, detail: `token ${r} repeated` };
}

/** Every path into a JSON value (objects and arrays, at most `depth` deep). */
function jsonPaths(v: unknown, depth = 6, prefix: (string | number)[] = []): (string | number)[][] {
  if (depth === 0 || typeof v !== "object" || v === null) return [];
  const keys: (string | number)[] = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return keys.flatMap((k) => [
    [...prefix, k],
    ...jsonPaths((v as Record<string | number, unknown>)[k], depth - 1, [...prefix, k]),
  ]);
}

/** Changes one node of a tokenizer.json: an odd value, a deletion, or a duplicate. */
function tokenizerJsonNode(input: Uint8Array, rng: Rng): Mutated {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(input));
  } catch {
    return { bytes: copyOf(input), detail: "not JSON: unchanged" };
  }
  const paths = jsonPaths(json);
  if (paths.length === 0) return { bytes: copyOf(input), detail: "no node" };
  const path = pick(rng, paths);
  let parent = json as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = path[path.length - 1];
  const r = rng.next();
  let detail: string;
  if (r < 0.7) {
    const v = pick(rng, [-1, 0, 1, 2 ** 31, 2 ** 53, 1e308, 0.5, "", "<s>", "▁", null, [], {}, true, "Nope"]);
    parent[key] = v;
    detail = `${path.join(".")} := ${JSON.stringify(v)}`;
  } else if (r < 0.9) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
    detail = `${path.join(".")} deleted`;
  } else {
    if (Array.isArray(parent)) parent.push(parent[key]);
    else parent[`${key}x`] = parent[key];
    detail = `${path.join(".")} duplicated`;
  }
  return { bytes: new TextEncoder().encode(JSON.stringify(json)), detail };
}

async function tokenizerTarget(): Promise<FuzzTarget> {
  const bytes = await Deno.readFile(TOKENIZER_PATH);
  const json = new TextEncoder().encode(
    tokenizerJsonFromLlama2c(await Llama2cTokenizer.load(TOKENIZER_PATH, 512)),
  );
  return {
    name: "tokenizer",
    seeds: [{ name: "tok512.bin", bytes }, { name: "tok512 as tokenizer.json", bytes: json }],
    parse: (b) => {
      const tok = Tokenizer.parse(b, 512, "fuzz-tok.bin");
      return tok.decode(tok.encode("Once upon a time, é!\n", { bos: true }));
    },
    mutators: [
      ...GENERIC,
      ["max_token_length", tokenMaxLength, 2],
      ["record field", tokenRecordField, 4],
      ["record removed/repeated", tokenRecordSplice, 2],
      ["tokenizer.json node", tokenizerJsonNode, 6],
    ],
  };
}

// ---------------------------------------------------------------------------------------------------
// The container (.rabit, checkpoints): preamble fields, and body changes sealed with a fresh checksum and
// length so they reach the MessagePack decoder and the field checks.

const PREAMBLE = 24;
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/** The file's magic and version in front of `body`, with the CRC-32 and length of `body`. */
function reseal(file: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(PREAMBLE + body.length);
  out.set(file.subarray(0, 12));
  const view = new DataView(out.buffer);
  view.setUint32(12, crc32(body), true);
  view.setBigUint64(16, BigInt(body.length), true);
  out.set(body, PREAMBLE);
  return out;
}

/**
 * A container file (.rabit, checkpoint) whose decoded body `edit` changed, re-encoded and resealed with a
 * fresh checksum and length: what a writer with that body would have produced.
 */
export function withBody(file: Uint8Array, edit: (body: Record<string, unknown>) => void): Uint8Array {
  const body = packr.unpack(file.subarray(PREAMBLE)) as Record<string, unknown>;
  edit(body);
  return reseal(file, packr.pack(body));
}

function preambleField(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  if (b.length < PREAMBLE) return { bytes: b, detail: "too short" };
  const view = new DataView(b.buffer);
  const which = rng.int(3);
  if (which < 2) {
    const v = extremeI32(rng, view.getInt32(8 + 4 * which, true)) >>> 0;
    view.setUint32(8 + 4 * which, v, true);
    return { bytes: b, detail: `${which ? "crc" : "version"} := ${v}` };
  }
  const body = BigInt(b.length - PREAMBLE);
  const v = pick(rng, [0n, 1n, body - 1n, body + 1n, 2n ** 31n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n]);
  view.setBigUint64(16, v < 0n ? 0n : v, true);
  return { bytes: b, detail: `body length := ${v < 0n ? 0n : v}` };
}

/** A generic byte mutation of the body alone, then resealed. */
function bodyBytes(input: Uint8Array, rng: Rng): Mutated {
  if (input.length < PREAMBLE) return { bytes: copyOf(input), detail: "too short" };
  const [name, m] = pick(rng, GENERIC.filter(([n]) => n !== "pure random"));
  const { bytes, detail } = m(input.subarray(PREAMBLE), rng);
  return { bytes: reseal(input, bytes), detail: `${name} (${detail}), resealed` };
}

/** A body of `depth` nested one-element arrays, resealed: the decoder must not overflow the stack. */
function deepNesting(input: Uint8Array, rng: Rng): Mutated {
  if (input.length < PREAMBLE) return { bytes: copyOf(input), detail: "too short" };
  const depth = pick(rng, [100, 10_000, 200_000]);
  const body = new Uint8Array(depth + 1).fill(0x91);
  body[depth] = 0xc0;
  return { bytes: reseal(input, body), detail: `${depth} nested arrays, resealed` };
}

type Path = (string | number)[];

/** Every node of a decoded body (not inside binaries), up to `limit`. */
function nodePaths(root: unknown, limit = 5000): Path[] {
  const out: Path[] = [];
  const walk = (v: unknown, path: Path) => {
    if (out.length >= limit) return;
    if (path.length) out.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
      for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    }
  };
  walk(root, []);
  return out;
}

type Node = Record<string | number, unknown>;
const parentOf = (root: unknown, path: Path) =>
  path.slice(0, -1).reduce((v, k) => (v as Node)[k], root) as Node;

/** Values to put anywhere in a decoded body. */
function extremeValue(rng: Rng, current: unknown): unknown {
  if (typeof current === "number" && rng.next() < 0.5) {
    return pick(rng, [current + 1, current - 1, current * 2, -current, current * 1048576, current + 0.5]);
  }
  if (current instanceof Uint8Array && rng.next() < 0.6) {
    const r = rng.next();
    if (r < 0.4) return current.slice(0, rng.int(current.length + 1));
    if (r < 0.7) {
      const longer = new Uint8Array(current.length + 1 + rng.int(64));
      longer.set(current);
      return longer;
    }
    const b = current.slice();
    if (b.length) b[rng.int(b.length)] ^= 0xff;
    return b;
  }
  return pick(rng, [
    0,
    -1,
    1,
    0x7fffffff,
    -0x80000000,
    2 ** 32,
    2 ** 53,
    1 << 20,
    1 << 16,
    1 << 24,
    0.5,
    NaN,
    Infinity,
    -Infinity,
    -0,
    1e308,
    null,
    true,
    false,
    "",
    "x",
    "x".repeat(10_000),
    [],
    {},
    [1 << 20, 1 << 16],
    [[1 << 20, [1 << 16, 1 << 16]]],
    new Uint8Array(0),
    new Uint8Array(7),
    { dtype: 0, shape: [1 << 20, 1 << 16], data: new Uint8Array(4) },
    new Date(0),
  ]);
}

/**
 * Decodes the body, changes one node (an extreme value, a deletion, an addition, or another node's value),
 * re-encodes and reseals. `focus` restricts the nodes to paths starting with one of its prefixes.
 */
function treeMutator(focus?: string[]): Mutator {
  return (input, rng) => {
    if (input.length < PREAMBLE) return { bytes: copyOf(input), detail: "too short" };
    let body: unknown;
    try {
      body = packr.unpack(input.subarray(PREAMBLE));
    } catch {
      return { bytes: copyOf(input), detail: "body does not decode: unchanged" };
    }
    let paths = nodePaths(body);
    if (focus) paths = paths.filter((p) => focus.some((f) => p.join(".").startsWith(f)));
    if (paths.length === 0) return { bytes: copyOf(input), detail: "no node to change" };
    const path = pick(rng, paths);
    const parent = parentOf(body, path);
    const key = path[path.length - 1];
    const where = path.join(".");
    let detail: string;
    const r = rng.next();
    if (r < 0.65) {
      const v = extremeValue(rng, parent[key]);
      parent[key] = v;
      detail = `${where} := ${describe(v)}`;
    } else if (r < 0.8) {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      detail = `${where} deleted`;
    } else if (r < 0.9) {
      if (Array.isArray(parent)) parent.push(extremeValue(rng, parent[key]));
      else parent[`${key}_extra`] = extremeValue(rng, parent[key]);
      detail = `${where}: sibling added`;
    } else {
      // Not an ancestor's value: that would make the body a cycle.
      const others = nodePaths(body).filter((p) => !path.join("\0").startsWith(p.join("\0")));
      const other = others.length ? pick(rng, others) : path;
      parent[key] = parentOf(body, other)[other[other.length - 1]];
      detail = `${where} := the value of ${other.join(".")}`;
    }
    let packed: Uint8Array;
    try {
      packed = packr.pack(body);
    } catch (e) {
      return { bytes: copyOf(input), detail: `${detail}: does not encode (${(e as Error).message})` };
    }
    return { bytes: reseal(input, packed), detail: `${detail}, resealed` };
  };
}

function describe(v: unknown): string {
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === "string") return v.length > 12 ? `"${v.slice(0, 4)}…" (${v.length})` : JSON.stringify(v);
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
  if (v instanceof Date) return "a Date";
  try {
    return JSON.stringify(v, (_, x) => x instanceof Uint8Array ? `<${x.length} bytes>` : x);
  } catch {
    return String(v);
  }
}

const CONTAINER: [string, Mutator, number][] = [
  ["preamble field", preambleField, 2],
  ["body bytes, resealed", bodyBytes, 3],
  ["deep nesting", deepNesting, 0.3],
  ["body node", treeMutator(), 6],
];

// ---------------------------------------------------------------------------------------------------
// .rabit files.

/** A random k-path layer with zero padding bits, as packSigns makes them. */
function randomLayer(rng: Rng, out: number, inF: number, k: number): PackedLinear {
  const wpr = wordsPerRow(inF);
  const planes = new Uint32Array(k * out * wpr);
  for (let i = 0; i < planes.length; i++) planes[i] = (rng.next() * 2 ** 32) >>> 0;
  const tail = inF % 32;
  if (tail) { for (let r = 0; r < k * out; r++) planes[r * wpr + wpr - 1] &= (1 << tail) - 1; }
  return new PackedLinear({
    out,
    in: inF,
    k,
    planes,
    g: rng.normals(k * out, 0.05),
    h: rng.normals(k * inF),
  });
}

/** A llama2.c tokenizer.bin of `n` made-up tokens. */
export function fakeTokenizer(n: number): Uint8Array {
  const pieces = Array.from({ length: n }, (_, i) => new TextEncoder().encode(`t${i}`));
  const out = new Uint8Array(4 + pieces.reduce((a, p) => a + 8 + p.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, 8, true);
  let at = 4;
  pieces.forEach((p, i) => {
    view.setFloat32(at, -i, true);
    view.setInt32(at + 4, p.length, true);
    out.set(p, at + 8);
    at += 8 + p.length;
  });
  return out;
}

async function rabitTarget(): Promise<FuzzTarget> {
  await Promise.resolve();
  const config = tinyConfig({ dim: 16, hiddenDim: 40 }); // w2's in = 40: a ragged last word
  const model = randomModel(config, 21);
  const rng = new Rng(22);
  for (const [name, k] of [["layers.0.wq", 1], ["layers.0.w2", 2], ["layers.1.w1", 3]] as const) {
    const [out, inF] = model.params.shape(name);
    model.quantized.set(name, randomLayer(rng, out, inF, k));
  }
  const quantized = serializeRabit({
    model,
    tokenizerBytes: fakeTokenizer(config.vocabSize),
    method: "ptq",
    options: { k: 2, rounds: 3 },
    metadata: { calibration: { tokens: 2048 }, losses: [1.5, 1.25] },
    dtypes: { tok_embeddings: "f16", "layers.0.w2.g": "f32" },
    created: { at: "2025-01-01T00:00:00.000Z", by: "fuzz" },
  });
  const floatModel = randomModel({ ...config, sharedClassifier: false }, 23);
  const float = serializeRabit({
    model: floatModel,
    method: "none",
    options: {},
    metadata: {},
    created: { at: "2025-01-01T00:00:00.000Z", by: "fuzz" },
  });
  return {
    name: "rabit",
    seeds: [
      { name: "3 binarized layers, tokenizer, f16 and f32", bytes: quantized },
      { name: "float model, separate classifier, no tokenizer", bytes: float },
    ],
    parse: (bytes) => parseRabit(bytes, "fuzz.rabit"),
    mutators: [
      ...GENERIC,
      ...CONTAINER,
      ["config field", treeMutator(["config"]), 3],
      ["quantized layer field", treeMutator(["quantized"]), 2],
    ],
  };
}

// ---------------------------------------------------------------------------------------------------
// Training checkpoints.

async function checkpointTarget(): Promise<FuzzTarget> {
  const rng = new Rng(31);
  const layout: [string, number[]][] = [["layers.0.wq.g", [2, 16]], ["layers.0.wq.h", [2, 16]], ["norm", [
    16,
  ]]];
  const total = 2 * 32 + 16;
  const ck = (step: number, backend: string | undefined, vLength: number): Checkpoint => ({
    teacher: { config: tinyConfig(), crc: 0xdeadbeef },
    options: { lr: 1e-3, steps: 10, method: "rabit", data: ["tinystories_dev.txt"] },
    backend,
    step,
    layout,
    state: {
      params: rng.normals(total),
      m: rng.normals(total, 1e-3),
      v: rng.normals(vLength, 1e-6).map(Math.abs),
    },
    log: {
      losses: Array.from({ length: step }, () => 2 + rng.next()),
      kl: Array.from({ length: step }, () => rng.next()),
      mse: Array.from({ length: step }, () => rng.next()),
      lr: Array.from({ length: step }, () => 1e-3),
      gradNorm: Array.from({ length: step }, () => rng.next()),
    },
    seconds: 1.25,
  });
  const dir = await Deno.makeTempDir({ prefix: "rabit-fuzz-" });
  try {
    const bytesOf = async (c: Checkpoint) => {
      await writeCheckpoint(`${dir}/ck.bin`, c);
      return await Deno.readFile(`${dir}/ck.bin`);
    };
    return {
      name: "checkpoint",
      seeds: [
        { name: "AdamW, step 3", bytes: await bytesOf(ck(3, "cpu", total)) },
        { name: "Muon (v over the tail), step 0, no backend", bytes: await bytesOf(ck(0, undefined, 16)) },
      ],
      parse: (bytes) => parseCheckpoint(bytes, "fuzz-ck.bin"),
      mutators: [
        ...GENERIC,
        ...CONTAINER,
        ["layout or step", treeMutator(["layout", "step", "log"]), 3],
        ["teacher", treeMutator(["teacher"]), 1],
      ],
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// Safetensors exports (a packed model, a training state): the strict header reader and both importers.

const WEIRD_FIELDS: Record<string, unknown[]> = {
  dtype: ["I64", "Q", "F64", "U8", "BF16", "F16", "U32", "", 7, null],
  shape: [[], [0], [-1], [2 ** 31, 2 ** 31], [1e308], "x", [1.5], [1, 2, 3, 4, 5, 6, 7, 8, 9], null],
  data_offsets: [[0, 0], [5, 3], [0, 2 ** 53], [-4, 4], [0], null, [2 ** 40, 2 ** 40 + 4], "0"],
};

/** Rewrites one field of the JSON header (a tensor's dtype, shape or offsets; a metadata value; an entry). */
function safetensorsHeaderField(input: Uint8Array, rng: Rng): Mutated {
  let header: Record<string, Record<string, unknown>>, n: number;
  try {
    n = Number(new DataView(input.buffer, input.byteOffset, input.byteLength).getBigUint64(0, true));
    header = JSON.parse(new TextDecoder().decode(input.subarray(8, 8 + n)));
  } catch {
    return { bytes: copyOf(input), detail: "header does not decode: unchanged" };
  }
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  let detail: string;
  const r = rng.next();
  if (r < 0.6 && names.length) {
    const name = pick(rng, names);
    const field = pick(rng, ["dtype", "shape", "data_offsets"]);
    const offsets = header[name].data_offsets as number[];
    const shifted = Array.isArray(offsets) ? [offsets[0] + 4, offsets[1] + 4] : [0, 4];
    const v = field === "data_offsets" && rng.next() < 0.3 ? shifted : pick(rng, WEIRD_FIELDS[field]);
    header[name][field] = v;
    detail = `${name}.${field} := ${JSON.stringify(v)}`;
  } else if (r < 0.8 && header.__metadata__) {
    const meta = header.__metadata__;
    const key = pick(rng, Object.keys(meta));
    const v = pick(rng, [123, "", "{", "[]", "null", "-1", "1e308", JSON.stringify({ dim: 1 << 20 })]);
    (meta as Record<string, unknown>)[key] = v;
    detail = `__metadata__.${key} := ${JSON.stringify(v)}`;
  } else if (names.length) {
    const name = pick(rng, names);
    if (rng.next() < 0.5) delete header[name], detail = `${name} deleted`;
    else header[`${name}.copy`] = header[name], detail = `${name} copied`;
  } else {
    return { bytes: copyOf(input), detail: "no tensor to change" };
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + input.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(input.subarray(8 + n), 8 + json.length);
  return { bytes: out, detail };
}

async function safetensorsTarget(): Promise<FuzzTarget> {
  await Promise.resolve();
  const config = tinyConfig({ dim: 16, hiddenDim: 40 });
  const model = randomModel(config, 41);
  const rng = new Rng(42);
  for (const [name, k] of [["layers.0.wq", 1], ["layers.0.w2", 2], ["layers.1.wk", 3]] as const) {
    const [out, inF] = model.params.shape(name);
    model.quantized.set(name, randomLayer(rng, out, inF, k));
  }
  const packed = packedSafetensors({
    model,
    tokenizerBytes: fakeTokenizer(config.vocabSize),
    method: "ptq",
    options: { k: 2 },
    metadata: { note: "fuzz" },
    dtypes: { tok_embeddings: "f16", "layers.0.w2.g": "f32" },
  });
  const layout: [string, number[]][] = [["layers.0.wq.w", [16, 16]], ["layers.0.wq.g", [2, 16]], ["norm", [
    16,
  ]]];
  const total = 256 + 32 + 16;
  const state = exportTrainState({
    teacher: { config, crc: 0xdeadbeef },
    options: { lr: 1e-3, method: "rabit" },
    backend: "cpu",
    step: 2,
    layout,
    state: {
      params: rng.normals(total),
      m: rng.normals(total, 1e-3),
      v: rng.normals(48, 1e-6).map(Math.abs),
    },
    log: { losses: [2, 1], kl: [1, 1], mse: [0, 0], lr: [1e-3, 1e-3], gradNorm: [1, 1] },
    seconds: 1.5,
  });
  return {
    name: "safetensors",
    seeds: [
      { name: "packed export, 3 binarized layers, tokenizer", bytes: packed },
      { name: "training state, Muon (v over the tail)", bytes: state },
    ],
    parse: (bytes) => {
      const all = Object.keys(SAFETENSORS_DTYPE_BYTES);
      const h = parseSafetensors(bytes, "fuzz.safetensors", { dtypes: all });
      return h.metadata.rabit_layout === TRAIN_STATE_LAYOUT
        ? importTrainState(bytes, "fuzz.safetensors")
        : parsePackedSafetensors(bytes, "fuzz.safetensors");
    },
    mutators: [...GENERIC, ["header field", safetensorsHeaderField, 8]],
  };
}

// ---------------------------------------------------------------------------------------------------
// GGUF models (the full model path: header, llama.* config, tensors, tokenizer.ggml.* vocabulary).

/** Bytes of each fixed-size metadata value type, by GGUF id (0 for string and array). */
const GGUF_FIXED = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
/** Bytes per element of the float tensor types the seeds use (F32, F16, BF16). */
const GGUF_FLOAT_BYTES: Record<number, number> = { 0: 4, 1: 2, 30: 2 };
/** u64 values that break counts, lengths and offsets: 0, the 32-bit edges, past 2^53, 2^63, 2^64 - 1. */
const EXTREME_U64 = [
  0n,
  1n,
  2n ** 31n,
  2n ** 32n,
  2n ** 40n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n,
  2n ** 64n - 1n,
];

/** One metadata entry as laid out in a file. */
interface GgufKvAt {
  start: number;
  end: number;
  key: string;
  typeAt: number;
  type: number;
  valueAt: number;
  /** Where each u64 string length of the entry lies (its key, a string value, a string array's elements). */
  strings: { at: number; what: string }[];
  /** An array's element type and count (at valueAt and valueAt + 4). */
  array?: { elemType: number; count: number };
}

/** One tensor info as laid out in a file. */
interface GgufTensorAt {
  start: number;
  end: number;
  name: string;
  nDimsAt: number;
  dims: number[];
  typeAt: number;
  type: number;
  offsetAt: number;
  offset: number;
  /** Bytes of data for a float type, else -1. */
  bytes: number;
}

/** Where a (possibly damaged) GGUF file's parts lie, as far as they can be followed; -1 where not reached. */
interface GgufLayout {
  tensorCount: number;
  kvCount: number;
  kvs: GgufKvAt[];
  tensors: GgufTensorAt[];
  kvEnd: number;
  infoEnd: number;
  alignment: number;
  dataStart: number;
}

const u64At = (b: Uint8Array, at: number, v: bigint) =>
  new DataView(b.buffer, b.byteOffset, b.byteLength).setBigUint64(at, BigInt.asUintN(64, v), true);
const u32At = (b: Uint8Array, at: number, v: number) =>
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(at, v >>> 0, true);
const u64Of = (b: Uint8Array, at: number) =>
  new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, true);

/** A lenient walk over a GGUF file: it stops (leaving -1s) where the file stops making sense. */
function ggufLayout(b: Uint8Array): GgufLayout | undefined {
  if (b.length < 24) return undefined;
  const n = b.length;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const u32 = (at: number) => at >= 0 && at + 4 <= n ? view.getUint32(at, true) : -1;
  const u64 = (at: number) => at >= 0 && at + 8 <= n ? Number(view.getBigUint64(at, true)) : -1;
  const str = (at: number) => {
    const len = u64(at);
    return len >= 0 && at + 8 + len <= n ? at + 8 + len : -1;
  };
  const text = (at: number, end: number) => new TextDecoder().decode(b.subarray(at + 8, end));
  const L: GgufLayout = {
    tensorCount: u64(8),
    kvCount: u64(16),
    kvs: [],
    tensors: [],
    kvEnd: -1,
    infoEnd: -1,
    alignment: 32,
    dataStart: -1,
  };
  const skip = (
    type: number,
    at: number,
    depth: number,
    strings: GgufKvAt["strings"],
    what: string,
  ): number => {
    if (at < 0) return -1;
    if (type === 8) {
      strings.push({ at, what });
      return str(at);
    }
    if (type === 9) {
      const et = u32(at), count = u64(at + 4);
      if (depth > 3 || et < 0 || count < 0) return -1;
      let p = at + 12;
      if (et <= 12 && GGUF_FIXED[et] > 0) {
        return p + count * GGUF_FIXED[et] <= n ? p + count * GGUF_FIXED[et] : -1;
      }
      if ((et !== 8 && et !== 9) || count > n) return -1;
      for (let i = 0; i < count && p >= 0; i++) p = skip(et, p, depth + 1, strings, `${what}[${i}]`);
      return p;
    }
    const size = type >= 0 && type <= 12 ? GGUF_FIXED[type] : 0;
    return size && at + size <= n ? at + size : -1;
  };
  let at = 24;
  for (let i = 0; i < L.kvCount && i < 10_000; i++) {
    const keyEnd = str(at), type = u32(keyEnd);
    if (keyEnd < 0 || type < 0) return L;
    const key = text(at, keyEnd);
    const strings = [{ at, what: `the key "${key}"` }];
    const end = skip(type, keyEnd + 4, 0, strings, `"${key}"`);
    if (end < 0) return L;
    const kv: GgufKvAt = { start: at, end, key, typeAt: keyEnd, type, valueAt: keyEnd + 4, strings };
    if (type === 9) kv.array = { elemType: u32(kv.valueAt), count: u64(kv.valueAt + 4) };
    L.kvs.push(kv);
    if (key === "general.alignment" && type <= 12 && GGUF_FIXED[type] && type !== 7 && type !== 6) {
      L.alignment = type === 10 || type === 11
        ? u64(kv.valueAt)
        : type >= 4
        ? u32(kv.valueAt)
        : b[kv.valueAt];
    }
    at = end;
  }
  if (L.kvs.length !== L.kvCount) return L;
  L.kvEnd = at;
  for (let i = 0; i < L.tensorCount && i < 10_000; i++) {
    const nameEnd = str(at), nDims = u32(nameEnd);
    if (nameEnd < 0 || nDims < 0 || nDims > 8) return L;
    const dims = Array.from({ length: nDims }, (_, d) => u64(nameEnd + 4 + 8 * d));
    const typeAt = nameEnd + 4 + 8 * nDims, type = u32(typeAt), offset = u64(typeAt + 4);
    if (type < 0 || offset < 0) return L;
    const elements = dims.reduce((a, d) => a * d, 1);
    const bytes = GGUF_FLOAT_BYTES[type] && Number.isSafeInteger(elements)
      ? elements * GGUF_FLOAT_BYTES[type]
      : -1;
    L.tensors.push({
      start: at,
      end: typeAt + 12,
      name: text(at, nameEnd),
      nDimsAt: nameEnd,
      dims,
      typeAt,
      type,
      offsetAt: typeAt + 4,
      offset,
      bytes,
    });
    at = typeAt + 12;
  }
  if (L.tensors.length !== L.tensorCount) return L;
  L.infoEnd = at;
  const a = L.alignment;
  if (a >= 1 && a <= 1 << 30 && (a & (a - 1)) === 0) L.dataStart = Math.ceil(at / a) * a;
  return L;
}

/** Whether the layout was followed to the data section, inside the file. */
const complete = (L: GgufLayout | undefined, n: number): L is GgufLayout =>
  L !== undefined && L.dataStart >= 0 && L.dataStart <= n;

/**
 * The file rewritten as a writer would with these metadata and tensor-info records: counts set to match,
 * zero padding to `alignment` (the file's when that is no power of two), the data section unchanged.
 */
function ggufRebuild(
  b: Uint8Array,
  L: GgufLayout,
  kvs: Uint8Array[],
  infos: Uint8Array[],
  alignment = L.alignment,
): Uint8Array {
  const a = alignment >= 1 && alignment <= 1 << 16 && (alignment & (alignment - 1)) === 0
    ? alignment
    : L.alignment;
  const head = 24 + [...kvs, ...infos].reduce((s, r) => s + r.length, 0);
  const dataStart = Math.ceil(head / a) * a;
  const data = b.subarray(L.dataStart);
  const out = new Uint8Array(dataStart + data.length);
  out.set(b.subarray(0, 8));
  u64At(out, 8, BigInt(infos.length));
  u64At(out, 16, BigInt(kvs.length));
  let at = 24;
  for (const r of [...kvs, ...infos]) out.set(r, at), at += r.length;
  out.set(data, dataStart);
  return out;
}

const kvRecords = (b: Uint8Array, L: GgufLayout) => L.kvs.map((kv) => b.subarray(kv.start, kv.end));
const infoRecords = (b: Uint8Array, L: GgufLayout) => L.tensors.map((t) => b.subarray(t.start, t.end));

/** A metadata record: key, value type, the value's bytes. */
function kvRecord(key: string, type: number, value: Uint8Array): Uint8Array {
  const k = new TextEncoder().encode(key);
  const out = new Uint8Array(8 + k.length + 4 + value.length);
  u64At(out, 0, BigInt(k.length));
  out.set(k, 8);
  u32At(out, 8 + k.length, type);
  out.set(value, 12 + k.length);
  return out;
}

/** A u64 derived from `current`: an extreme, a neighbour or a double. */
function extremeU64(rng: Rng, current: bigint): bigint {
  const r = rng.next();
  if (r < 0.65) return pick(rng, EXTREME_U64);
  if (r < 0.9) return current + (rng.next() < 0.5 ? 1n : -1n);
  return current * 2n;
}

function ggufHeaderCount(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  if (b.length < 24) return { bytes: b, detail: "too short" };
  const [at, name] = pick(rng, [[8, "tensor_count"], [16, "kv_count"]] as const);
  const v = BigInt.asUintN(64, extremeU64(rng, u64Of(b, at)));
  u64At(b, at, v);
  return { bytes: b, detail: `${name} := ${v}` };
}

function ggufStringLength(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  const L = ggufLayout(b);
  const strings = [
    ...(L?.kvs ?? []).flatMap((kv) => kv.strings),
    ...(L?.tensors ?? []).map((t) => ({ at: t.start, what: `the name of tensor ${t.name}` })),
  ];
  if (strings.length === 0) return { bytes: b, detail: "no string" };
  const { at, what } = pick(rng, strings);
  const len = u64Of(b, at);
  const r = rng.next();
  const v = BigInt.asUintN(
    64,
    r < 0.3
      ? BigInt(b.length - at - 8) + 1n // one byte past the end of the file
      : r < 0.5
      ? pick(rng, [64n, 65535n, 65536n, 2n ** 31n - 1n])
      : extremeU64(rng, len),
  );
  u64At(b, at, v);
  return { bytes: b, detail: `length of ${what} (at ${at}) := ${v}` };
}

function ggufArray(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  const arrays = (ggufLayout(b)?.kvs ?? []).filter((kv) => kv.array);
  if (arrays.length === 0) return { bytes: b, detail: "no array" };
  const kv = pick(rng, arrays);
  if (rng.next() < 0.4) {
    const v = pick(rng, [0, 1, 4, 6, 7, 8, 9, 10, 12, 13, 255, 2 ** 31, 2 ** 32 - 1, rng.int(13)]);
    u32At(b, kv.valueAt, v);
    return { bytes: b, detail: `element type of "${kv.key}" := ${v}` };
  }
  const left = BigInt(b.length - kv.valueAt - 12);
  const v = BigInt.asUintN(
    64,
    rng.next() < 0.25
      ? pick(rng, [left, left + 1n, left / 4n + 1n])
      : extremeU64(rng, u64Of(b, kv.valueAt + 4)),
  );
  u64At(b, kv.valueAt + 4, v);
  return { bytes: b, detail: `length of "${kv.key}" := ${v}` };
}

function ggufValueType(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  const kvs = ggufLayout(b)?.kvs ?? [];
  if (kvs.length === 0) return { bytes: b, detail: "no metadata" };
  const kv = pick(rng, kvs);
  const v = pick(rng, [13, 14, 255, 2 ** 31, 2 ** 32 - 1, rng.int(13), rng.int(13)]);
  u32At(b, kv.typeAt, v);
  return { bytes: b, detail: `value type of "${kv.key}" := ${v}` };
}

/** Changes one metadata value in place: a number to an extreme of its type, a string's byte, an element. */
function ggufMetadataValue(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  const all = ggufLayout(b)?.kvs ?? [];
  const llama = all.filter((kv) => kv.key.startsWith("llama.") || kv.key.startsWith("general."));
  const kvs = rng.next() < 0.5 && llama.length ? llama : all;
  if (kvs.length === 0) return { bytes: b, detail: "no metadata" };
  const kv = pick(rng, kvs);
  const view = new DataView(b.buffer);
  const at = kv.valueAt;
  if (kv.type === 8 || (kv.array && kv.array.elemType === 8)) {
    const values = kv.strings.slice(1);
    if (values.length === 0) return { bytes: b, detail: `"${kv.key}" holds no string: unchanged` };
    const s = pick(rng, values);
    const len = Number(u64Of(b, s.at));
    if (len === 0) return { bytes: b, detail: `${s.what} is empty: unchanged` };
    const i = s.at + 8 + rng.int(len), v = pick(rng, [0, 0x20, 0x41, 0x80, 0xc3, 0xff]);
    b[i] = v;
    return { bytes: b, detail: `byte ${i - s.at - 8} of ${s.what} := ${v}` };
  }
  if (kv.array) {
    const size = GGUF_FIXED[kv.array.elemType] ?? 0;
    if (!size || kv.array.count === 0) return { bytes: b, detail: `"${kv.key}": no element to change` };
    const e = rng.int(kv.array.count), p = at + 12 + e * size;
    if (kv.array.elemType === 6) {
      const v = pick(rng, SPECIAL_F32);
      view.setFloat32(p, v, true);
      return { bytes: b, detail: `"${kv.key}"[${e}] := ${v}` };
    }
    for (let i = 0; i < size; i++) b[p + i] = pick(rng, [0, 0xff, 0x80, 0x7f]);
    return { bytes: b, detail: `"${kv.key}"[${e}] := bytes ${[...b.subarray(p, p + size)].join(" ")}` };
  }
  let v: number | bigint;
  switch (kv.type) {
    case 6:
      v = pick(rng, [...SPECIAL_F32, 0, -1, 1e-30]);
      view.setFloat32(at, v, true);
      break;
    case 12:
      v = pick(rng, [...SPECIAL_F32, 0, -1, 1e300]);
      view.setFloat64(at, v, true);
      break;
    case 10:
    case 11:
      v = BigInt.asUintN(64, extremeU64(rng, view.getBigUint64(at, true)));
      view.setBigUint64(at, v, true);
      break;
    case 4:
    case 5: {
      const cur = view.getUint32(at, true);
      v = pick(rng, [0, 1, 2, 3, 2 ** 31, 2 ** 32 - 1, 1 << 20, 1 << 16, cur + 1, cur - 1, cur * 2]) >>> 0;
      view.setUint32(at, v, true);
      break;
    }
    default: {
      const size = GGUF_FIXED[kv.type] ?? 0;
      if (!size) return { bytes: b, detail: `"${kv.key}" has type ${kv.type}: unchanged` };
      v = pick(rng, [0, 1, 2, 0x7f, 0x80, 0xff]);
      for (let i = 0; i < size; i++) b[at + i] = i === 0 ? v : 0;
    }
  }
  return { bytes: b, detail: `"${kv.key}" (type ${kv.type}) := ${v}` };
}

function ggufTensorDims(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  const tensors = ggufLayout(b)?.tensors ?? [];
  if (tensors.length === 0) return { bytes: b, detail: "no tensor info" };
  const t = pick(rng, tensors);
  if (rng.next() < 0.4 || t.dims.length === 0) {
    const v = pick(rng, [0, 5, 255, 2 ** 32 - 1, 1, 3, 4, t.dims.length - 1, t.dims.length + 1]);
    u32At(b, t.nDimsAt, v);
    return { bytes: b, detail: `dimension count of ${t.name} := ${v}` };
  }
  const d = rng.int(t.dims.length), at = t.nDimsAt + 4 + 8 * d;
  const v = BigInt.asUintN(
    64,
    rng.next() < 0.3 ? pick(rng, [2n ** 40n, 2n ** 53n - 1n, 32n, 256n]) : extremeU64(rng, u64Of(b, at)),
  );
  u64At(b, at, v);
  return { bytes: b, detail: `ne[${d}] of ${t.name} := ${v}` };
}

function ggufTensorType(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  const tensors = ggufLayout(b)?.tensors ?? [];
  if (tensors.length === 0) return { bytes: b, detail: "no tensor info" };
  const t = pick(rng, tensors);
  // Quantized (Q4_0, Q8_0, Q4_K, Q6_K, IQ4_NL, MXFP4), integer and F64, removed ids, unknown, the floats.
  const v = pick(rng, [2, 8, 12, 14, 20, 39, 24, 26, 28, 4, 31, 36, 40, 255, 2 ** 31, 0, 1, 30]);
  u32At(b, t.typeAt, v);
  return { bytes: b, detail: `type of ${t.name} := ${v}` };
}

function ggufTensorOffset(input: Uint8Array, rng: Rng): Mutated {
  const b = copyOf(input);
  const L = ggufLayout(b);
  if (!L || L.tensors.length === 0) return { bytes: b, detail: "no tensor info" };
  const t = pick(rng, L.tensors), other = pick(rng, L.tensors);
  const a = BigInt(L.alignment >= 1 && L.alignment < 2 ** 31 ? L.alignment : 32);
  const dataBytes = BigInt(L.dataStart >= 0 ? b.length - L.dataStart : b.length);
  const cur = BigInt(t.offset), size = BigInt(Math.max(t.bytes, 0));
  const choices: [bigint, string][] = [
    [cur + 1n, "misaligned by 1"],
    [cur + a / 2n, "misaligned by half the alignment"],
    [cur + a, "one alignment on"],
    [BigInt(other.offset), `that of ${other.name} (overlapping)`],
    [BigInt(other.offset) + a, `one alignment into ${other.name}`],
    [(dataBytes - size + a) / a * a, "just past the end of the file"],
    [dataBytes + a, "past the end of the file"],
    [2n ** 40n, "2^40"],
    [2n ** 53n + 1n, "2^53 + 1"],
    [2n ** 63n, "2^63"],
    [2n ** 64n - a, "2^64 - alignment"],
    [0n, "0"],
  ];
  const [v, why] = pick(rng, choices);
  u64At(b, t.offsetAt, v);
  return { bytes: b, detail: `data offset of ${t.name} := ${BigInt.asUintN(64, v)} (${why})` };
}

/** Sets general.alignment in place, or adds it (file rebuilt and padded as a writer with it would). */
function ggufAlignment(input: Uint8Array, rng: Rng): Mutated {
  const L = ggufLayout(input);
  const v = pick(rng, [0, 1, 2, 3, 7, 8, 16, 33, 64, 4096, 2 ** 30, 2 ** 31, 2 ** 32 - 1]);
  const kv = L?.kvs.find((k) => k.key === "general.alignment");
  if (kv && GGUF_FIXED[kv.type] && rng.next() < 0.7) {
    const b = copyOf(input);
    if (kv.type === 10 || kv.type === 11) u64At(b, kv.valueAt, BigInt(v));
    else if (kv.type === 4 || kv.type === 5) u32At(b, kv.valueAt, v);
    else b[kv.valueAt] = v & 0xff;
    return { bytes: b, detail: `general.alignment (type ${kv.type}) := ${v} in place` };
  }
  if (!complete(L, input.length)) return { bytes: copyOf(input), detail: "layout not followed: unchanged" };
  const [type, name, value] = pick(
    rng,
    [
      [4, "u32", () => new Uint8Array(new Uint32Array([v]).buffer)],
      [4, "u32", () => new Uint8Array(new Uint32Array([v]).buffer)],
      [10, "u64", () => new Uint8Array(new BigUint64Array([BigInt(v)]).buffer)],
      [5, "i32", () => new Uint8Array(new Int32Array([-v]).buffer)],
      [0, "u8", () => new Uint8Array([v & 0xff])],
      [6, "f32", () => new Uint8Array(new Float32Array([v + 0.5]).buffer)],
      [8, "string", () => new Uint8Array(8)], // an empty string
    ] as const,
  );
  const record = kvRecord("general.alignment", type, value());
  const kvs = kvRecords(input, L).filter((_, i) => L.kvs[i].key !== "general.alignment");
  kvs.splice(rng.int(kvs.length + 1), 0, record);
  const bytes = ggufRebuild(input, L, kvs, infoRecords(input, L), type === 4 || type === 10 ? v : undefined);
  return { bytes, detail: `general.alignment := ${name} ${v}, file rebuilt` };
}

/** Duplicates, removes or swaps metadata entries or tensor infos, rebuilding the file as a writer would. */
function ggufRecords(input: Uint8Array, rng: Rng): Mutated {
  const L = ggufLayout(input);
  if (!complete(L, input.length)) return { bytes: copyOf(input), detail: "layout not followed: unchanged" };
  const kvs = kvRecords(input, L), infos = infoRecords(input, L);
  const tensors = rng.next() < 0.4;
  const list = tensors ? infos : kvs;
  const names = tensors ? L.tensors.map((t) => t.name) : L.kvs.map((k) => `"${k.key}"`);
  const what = tensors ? "tensor info" : "metadata entry";
  if (list.length === 0) return { bytes: copyOf(input), detail: `no ${what}` };
  const i = rng.int(list.length), r = rng.next();
  let detail: string;
  if (r < 0.4) {
    const to = rng.int(list.length + 1);
    list.splice(to, 0, list[i]);
    detail = `${what} ${names[i]} duplicated at ${to}`;
  } else if (r < 0.8) {
    list.splice(i, 1);
    detail = `${what} ${names[i]} removed`;
  } else {
    const j = rng.int(list.length);
    [list[i], list[j]] = [list[j], list[i]];
    detail = `${tensors ? "tensor infos" : "metadata entries"} ${names[i]} and ${names[j]} swapped`;
  }
  return { bytes: ggufRebuild(input, L, kvs, infos), detail: `${detail}, file rebuilt` };
}

/** Cuts the file at (or a byte either side of) a boundary between its parts. */
function ggufTruncateAtBoundary(input: Uint8Array, rng: Rng): Mutated {
  const L = ggufLayout(input);
  const points: [number, string][] = [[0, "start"], [4, "magic"], [8, "version"], [16, "tensor_count"], [
    24,
    "header",
  ]];
  for (const kv of L?.kvs ?? []) {
    points.push([kv.start, `start of "${kv.key}"`], [kv.typeAt, `"${kv.key}" type`]);
    points.push([kv.valueAt, `"${kv.key}" value`], [kv.end, `end of "${kv.key}"`]);
    if (kv.array) {
      points.push([kv.valueAt + 4, `"${kv.key}" count`], [kv.valueAt + 12, `"${kv.key}" elements`]);
    }
  }
  if (L && L.kvEnd >= 0) points.push([L.kvEnd, "end of metadata"]);
  for (const t of L?.tensors ?? []) {
    points.push([t.start, `info of ${t.name}`], [t.nDimsAt, `dims of ${t.name}`]);
    points.push([t.typeAt, `type of ${t.name}`], [t.offsetAt, `offset of ${t.name}`]);
    if (L!.dataStart >= 0) {
      points.push([L!.dataStart + t.offset, `data of ${t.name}`]);
      if (t.bytes > 0) points.push([L!.dataStart + t.offset + t.bytes, `end of ${t.name}'s data`]);
    }
  }
  if (L && L.infoEnd >= 0) points.push([L.infoEnd, "end of tensor infos"]);
  if (L && L.dataStart >= 0) points.push([L.dataStart, "data section"]);
  points.push([input.length - 1, "last byte"]);
  const [p, what] = pick(rng, points);
  const delta = pick(rng, [0, 0, 0, -1, 1]);
  const n = Math.max(0, Math.min(input.length, p + delta));
  return {
    bytes: input.slice(0, n),
    detail: `at ${what}${delta ? ` ${delta > 0 ? "+" : ""}${delta}` : ""}: ${n} of ${input.length} bytes`,
  };
}

async function ggufTarget(): Promise<FuzzTarget> {
  // A real (small) Llama vocabulary: 512 tokens with BOS/EOS 1, 2 and the byte tokens at 3..258.
  const tokenizer = await Llama2cTokenizer.load(TOKENIZER_PATH, 512);
  // dim 32 and hidden 64 in one: ne[0] a multiple of 32, so a quantized type id passes the block check
  // and reaches the loader's refusal of quantized tensors.
  const wide = tinyConfig({ dim: 32, hiddenDim: 64, vocabSize: 512, sharedClassifier: false });
  const separate = randomModel(wide, 51);
  const shared = randomModel(tinyConfig({ vocabSize: 512 }), 52);
  const small = randomModel(tinyConfig(), 53);
  return {
    name: "gguf",
    seeds: [
      {
        name: "v3, F32, dim 32, separate classifier, 512-token vocabulary",
        bytes: modelToGguf(separate.config, separate.params, { type: "F32", tokenizer, version: 3 }),
      },
      {
        name: "v2, F16, shared classifier, 512-token vocabulary, alignment 64",
        bytes: modelToGguf(shared.config, shared.params, {
          type: "F16",
          tokenizer,
          version: 2,
          alignment: 64,
        }),
      },
      {
        name: "v3, F16, 32 tokens, no vocabulary",
        bytes: modelToGguf(small.config, small.params, { type: "F16", version: 3 }),
      },
      {
        name: "v2, BF16, 32 tokens, no vocabulary, alignment 1",
        bytes: modelToGguf(small.config, small.params, { type: "BF16", version: 2, alignment: 1 }),
      },
    ],
    parse: (bytes) => {
      const m = parseGgufModel(bytes, "fuzz.gguf");
      return m.tokenizer?.decode(m.tokenizer.encode("Once upon a time, é!\n", { bos: true })) ?? m;
    },
    mutators: [
      ...GENERIC,
      ["header count", ggufHeaderCount, 2],
      ["string length", ggufStringLength, 3],
      ["array type/length", ggufArray, 2],
      ["value type", ggufValueType, 2],
      ["metadata value", ggufMetadataValue, 4],
      ["tensor dims", ggufTensorDims, 3],
      ["tensor type", ggufTensorType, 2],
      ["tensor offset", ggufTensorOffset, 3],
      ["general.alignment", ggufAlignment, 2],
      ["records duplicated/removed/swapped", ggufRecords, 3],
      ["truncate at a boundary", ggufTruncateAtBoundary, 3],
    ],
  };
}

/** The formats under test, in report order. */
export const FORMATS = ["llama2c", "tokenizer", "rabit", "checkpoint", "safetensors", "gguf"] as const;

/** Builds the valid files and mutators of one format. */
export function buildTarget(format: string): Promise<FuzzTarget> {
  switch (format) {
    case "llama2c":
      return llama2cTarget();
    case "tokenizer":
      return tokenizerTarget();
    case "rabit":
      return rabitTarget();
    case "checkpoint":
      return checkpointTarget();
    case "safetensors":
      return safetensorsTarget();
    case "gguf":
      return ggufTarget();
  }
  throw new TypeError(`Unknown format "${format}": expected one of ${FORMATS.join(", ")}`);
}

// ---------------------------------------------------------------------------------------------------
// The driver.

/** The Rng seed of case `index` of a run seeded `seed` (a 32-bit mix, so neighbouring cases differ). */
function caseSeed(seed: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Case `index` of the run seeded `seed`: a valid file of `target` and 1..3 mutations of it. */
export function makeCase(target: FuzzTarget, seed: number, index: number): FuzzCase {
  const rng = new Rng(caseSeed(seed, index));
  const file = target.seeds[rng.int(target.seeds.length)];
  let bytes = file.bytes;
  const steps = [`seed file "${file.name}"`];
  const count = rng.next() < 0.7 ? 1 : 2 + rng.int(2);
  const totalWeight = target.mutators.reduce((a, [, , w]) => a + w, 0);
  for (let i = 0; i < count; i++) {
    let r = rng.next() * totalWeight;
    const [name, mutate] = target.mutators.find(([, , w]) => (r -= w) < 0) ?? target.mutators[0];
    const out = mutate(bytes, rng);
    bytes = out.bytes;
    steps.push(`${name}: ${out.detail}`);
  }
  return { index, bytes, mutation: steps.join("; ") };
}

/** Runs one case: undefined when the loader handled it (accepted or refused its own way) in time. */
export function runCase(
  target: FuzzTarget,
  c: FuzzCase,
  limitMs: number,
): { accepted: boolean; ms: number; problem?: string } {
  const start = performance.now();
  let accepted = true;
  let problem: string | undefined;
  try {
    target.parse(c.bytes);
  } catch (e) {
    accepted = false;
    if (!isLoaderError(e)) {
      const err = e as Error;
      problem = `foreign error ${err?.constructor?.name ?? typeof e}: ${err?.message ?? String(e)}`;
    }
  }
  const ms = performance.now() - start;
  if (!problem && ms > limitMs) problem = `took ${ms.toFixed(0)} ms (limit ${limitMs} ms)`;
  return { accepted, ms, problem };
}

/** Options of {@link runFuzz}. */
export interface FuzzOptions {
  /** Inputs to generate. */
  count: number;
  /** Run seed (cases are reproduced from it and their index). */
  seed?: number;
  /** Time one input may take (default 1000 ms). */
  limitMs?: number;
  /** Called after every input. */
  onProgress?: (done: number, summary: FuzzSummary) => void;
}

/** Generates `count` inputs for `target` and runs its loader on each; every valid seed file is checked first. */
export function runFuzz(target: FuzzTarget, options: FuzzOptions): FuzzSummary {
  const seed = options.seed ?? 1;
  const limitMs = options.limitMs ?? 1000;
  for (const file of target.seeds) {
    try {
      target.parse(file.bytes);
    } catch (e) {
      throw new Error(
        `fuzz: the valid ${target.name} seed "${file.name}" is refused: ${(e as Error).message}`,
      );
    }
  }
  const s: FuzzSummary = {
    format: target.name,
    seed,
    inputs: 0,
    accepted: 0,
    refused: 0,
    failures: [],
    slowestMs: 0,
    slowestIndex: -1,
    slowestMutation: "",
  };
  for (let index = 0; index < options.count; index++) {
    const c = makeCase(target, seed, index);
    const r = runCase(target, c, limitMs);
    s.inputs++;
    if (r.accepted) s.accepted++;
    else s.refused++;
    if (r.ms > s.slowestMs) {
      s.slowestMs = r.ms;
      s.slowestIndex = index;
      s.slowestMutation = c.mutation;
    }
    if (r.problem) {
      s.failures.push({ format: target.name, seed, index, mutation: c.mutation, problem: r.problem });
    }
    options.onProgress?.(index + 1, s);
  }
  return s;
}

/** A failure as text, with the command that reproduces it. */
export function formatFailure(f: FuzzFailure): string {
  return `${f.format} case ${f.index} (seed ${f.seed}): ${f.problem}\n  mutation: ${f.mutation}\n` +
    `  reproduce: deno task fuzz --format ${f.format} --seed ${f.seed} --case ${f.index}`;
}
