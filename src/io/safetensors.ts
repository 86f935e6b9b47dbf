// Safetensors, Hugging Face's tensor file: a strict reader that checks every size and range its header
// claims against the file before anything is allocated, and a writer.
//
// Layout: u64 little-endian N, the header's length; N bytes of UTF-8 JSON, an object mapping each tensor
// name to {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]} (byte offsets into the data
// section, end exclusive), plus an optional "__metadata__" object of string values, the JSON padded with
// spaces; then the data section: each tensor's elements row-major, little-endian. Readers here refuse a
// header longer than MAX_SAFETENSORS_HEADER_BYTES (the official reader's limit) or than the file, a dtype
// they do not know or the caller does not accept, a byte range whose length is not shape × dtype size,
// ranges past the end of the file and ranges that overlap. Gaps between ranges are allowed.

import { f16BitsToF32 } from "../util/fp16.ts";
import { FormatError } from "./errors.ts";

/**
 * Longest header accepted, in bytes (100 MB, as the official `safetensors` reader).
 *
 * @example
 * ```ts
 * import { MAX_SAFETENSORS_HEADER_BYTES } from "./safetensors.ts";
 * MAX_SAFETENSORS_HEADER_BYTES; // 100000000
 * ```
 */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000;

/** Most dimensions a tensor may have. */
const MAX_RANK = 8;

const HINT = "Expected a safetensors file (8-byte header length, JSON header, tensor data)";

/**
 * Bytes per element of every safetensors dtype (the official list; append-only there too).
 *
 * @example
 * ```ts
 * import { SAFETENSORS_DTYPE_BYTES } from "./safetensors.ts";
 * SAFETENSORS_DTYPE_BYTES.BF16; // 2
 * ```
 */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<string, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
});

/** The dtypes a model's float tensors may have: they convert to f32 exactly. */
export const FLOAT_DTYPES: readonly string[] = ["F32", "F16", "BF16"];

/** One tensor as the header describes it. */
export interface SafetensorInfo {
  /** The tensor's name, e.g. "model.layers.0.self_attn.q_proj.weight". */
  name: string;
  /** Safetensors dtype name: "F32", "F16", "BF16", "U8", … */
  dtype: string;
  /** Dimensions, row-major. */
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  /** Bytes of data: product(shape) × dtype size. */
  byteLength: number;
}

/** A safetensors file's header, checked against the file's size. */
export interface SafetensorsHeader {
  /** The tensors in header order. */
  tensors: SafetensorInfo[];
  /** The tensors by name. */
  byName: Map<string, SafetensorInfo>;
  /** `__metadata__` (string values), or an empty object. */
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section: 8 + header length. */
  dataOffset: number;
  /** Size of the whole file in bytes. */
  fileBytes: number;
}

/** Options of the safetensors readers. */
export interface SafetensorsReadOptions {
  /** Dtypes the caller can use; a tensor of another (known) dtype is refused naming it. Default F32, F16, BF16. */
  dtypes?: readonly string[];
}

/** One tensor to write. */
export interface SafetensorOut {
  /** Tensor name (any non-empty string but "__metadata__"). */
  name: string;
  /** Safetensors dtype name. */
  dtype: string;
  /** Dimensions, row-major. */
  shape: number[];
  /** Little-endian element bytes: product(shape) × dtype size of them. */
  data: Uint8Array;
}

/**
 * True when `bytes` starts like a safetensors file: a u64 header length then "{" (no magic exists; this
 * is what a header length below 2^32 and a JSON object look like).
 *
 * @example
 * ```ts
 * import { looksLikeSafetensors, serializeSafetensors } from "./safetensors.ts";
 * looksLikeSafetensors(serializeSafetensors([])); // true
 * looksLikeSafetensors(new TextEncoder().encode("GGUF\x03\0\0\0\0")); // false
 * ```
 */
export function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 9) return false;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return v.getUint32(4, true) === 0 && v.getUint32(0, true) >= 2 && bytes[8] === 0x7b;
}

/** The header length a file's first 8 bytes claim, checked against the limit and the file's size. */
export function safetensorsHeaderLength(first8: Uint8Array, fileBytes: number, path: string): number {
  const fail = (problem: string) => new FormatError(path, problem, HINT);
  if (fileBytes < 8 || first8.length < 8) {
    throw fail(`file is ${fileBytes} bytes, shorter than the 8-byte header length`);
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_SAFETENSORS_HEADER_BYTES)) {
    throw fail(`header length ${n} is beyond the limit of ${MAX_SAFETENSORS_HEADER_BYTES} bytes`);
  }
  if (n > BigInt(fileBytes - 8)) {
    throw fail(
      `truncated: the header claims ${n} bytes but only ${fileBytes - 8} follow its length in the file`,
    );
  }
  if (n < 2n) throw fail(`header length ${n} is too short for a JSON object`);
  return Number(n);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  return `${typeof v} ${String(v)}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses and checks a safetensors header. `head` holds at least the file's first 8 + N bytes (N: the
 * header length; the whole file will do) and `fileBytes` is the file's size, which bounds every range.
 * `path` only names the file in errors, which are FormatErrors saying what was expected and found.
 *
 * @example
 * ```ts
 * import { parseSafetensorsHeader, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors([{ name: "w", dtype: "F32", shape: [2], data: new Uint8Array(8) }]);
 * parseSafetensorsHeader(bytes, bytes.length).byName.get("w")!.shape; // [2]
 * ```
 */
export function parseSafetensorsHeader(
  head: Uint8Array,
  fileBytes: number,
  path = "model.safetensors",
  options: SafetensorsReadOptions = {},
): SafetensorsHeader {
  const fail = (problem: string) => new FormatError(path, problem, HINT);
  const n = safetensorsHeaderLength(head, fileBytes, path);
  if (head.length < 8 + n) {
    throw new RangeError(`parseSafetensorsHeader: expected the first ${8 + n} bytes, found ${head.length}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(8, 8 + n));
  } catch {
    throw fail("the header is not valid UTF-8");
  }
  if (text[0] !== "{") {
    throw fail(`the header does not start with "{" (found ${JSON.stringify(text.slice(0, 16))})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fail(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(json)) throw fail(`expected the header to be a JSON object, found ${describe(json)}`);
  const accepted = options.dtypes ?? FLOAT_DTYPES;
  const dataOffset = 8 + n;
  const dataBytes = fileBytes - dataOffset;
  let metadata: Record<string, string> = {};
  const tensors: SafetensorInfo[] = [];
  const rel: number[] = []; // data-relative begin of each tensor
  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isObject(entry)) throw fail(`expected __metadata__ to be an object, found ${describe(entry)}`);
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== "string") {
          throw fail(`__metadata__ "${key}" is ${describe(value)}; metadata values are strings`);
        }
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const what = `tensor ${name}`;
    if (!isObject(entry)) throw fail(`expected ${what} to be an object, found ${describe(entry)}`);
    for (const key of Object.keys(entry)) {
      if (key !== "dtype" && key !== "shape" && key !== "data_offsets") {
        throw fail(`${what} has an unknown field "${key}" (expected dtype, shape, data_offsets)`);
      }
    }
    const dtype = entry.dtype;
    if (typeof dtype !== "string") {
      throw fail(`expected the dtype of ${what} to be a string, found ${describe(dtype)}`);
    }
    const size = SAFETENSORS_DTYPE_BYTES[dtype];
    if (size === undefined || !Object.hasOwn(SAFETENSORS_DTYPE_BYTES, dtype)) {
      throw fail(
        `${what} has unknown dtype ${JSON.stringify(dtype)} (safetensors dtypes: ${
          Object.keys(SAFETENSORS_DTYPE_BYTES).join(", ")
        })`,
      );
    }
    if (!accepted.includes(dtype)) {
      throw fail(`${what} has dtype ${dtype}; this reader takes ${accepted.join(", ")}`);
    }
    const shape = entry.shape;
    if (
      !Array.isArray(shape) || shape.length > MAX_RANK ||
      !shape.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw fail(
        `expected the shape of ${what} to be at most ${MAX_RANK} non-negative integers, found ${
          JSON.stringify(shape)?.slice(0, 80)
        }`,
      );
    }
    const offsets = entry.data_offsets;
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((d) => Number.isSafeInteger(d) && d >= 0) || offsets[0] > offsets[1]
    ) {
      throw fail(
        `expected the data_offsets of ${what} to be [begin, end] with 0 <= begin <= end, found ${
          JSON.stringify(offsets)?.slice(0, 80)
        }`,
      );
    }
    const [begin, end] = offsets as [number, number];
    const want = (shape as number[]).reduce((a, d) => a * BigInt(d), BigInt(size));
    if (want !== BigInt(end - begin)) {
      throw fail(
        `${what}: dtype ${dtype} and shape [${shape.join(", ")}] need ${want} bytes, its data_offsets ` +
          `[${begin}, ${end}] span ${end - begin}`,
      );
    }
    if (end > dataBytes) {
      throw fail(
        `${what} (data_offsets [${begin}, ${end}]) ends past the file: the data section has ${dataBytes} ` +
          "bytes (truncated or corrupt)",
      );
    }
    tensors.push({
      name,
      dtype,
      shape: shape as number[],
      offset: dataOffset + begin,
      byteLength: end - begin,
    });
    rel.push(begin);
  }
  const order = tensors.map((_, i) => i).filter((i) => tensors[i].byteLength > 0).sort((a, b) =>
    rel[a] - rel[b]
  );
  for (let j = 1; j < order.length; j++) {
    const p = tensors[order[j - 1]], t = tensors[order[j]];
    if (p.offset + p.byteLength > t.offset) {
      const range = (x: SafetensorInfo) =>
        `[${x.offset - dataOffset}, ${x.offset - dataOffset + x.byteLength}]`;
      throw fail(
        `tensor ${t.name} (data_offsets ${range(t)}) overlaps tensor ${p.name} (data_offsets ${range(p)})`,
      );
    }
  }
  return { tensors, byName: new Map(tensors.map((t) => [t.name, t])), metadata, dataOffset, fileBytes };
}

/**
 * Parses and checks the header of a whole safetensors file in memory (see {@link parseSafetensorsHeader});
 * read a tensor's bytes with {@link tensorBytes}.
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors([], { format: "pt" });
 * parseSafetensors(bytes).metadata; // { format: "pt" }
 * ```
 */
export function parseSafetensors(
  bytes: Uint8Array,
  path = "model.safetensors",
  options: SafetensorsReadOptions = {},
): SafetensorsHeader {
  return parseSafetensorsHeader(bytes, bytes.length, path, options);
}

/**
 * The bytes of one tensor of a file held in memory (a view, no copy).
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors, tensorBytes } from "./safetensors.ts";
 * const bytes = serializeSafetensors([{ name: "b", dtype: "U8", shape: [2], data: new Uint8Array([7, 9]) }]);
 * tensorBytes(bytes, parseSafetensors(bytes, "b", { dtypes: ["U8"] }).tensors[0]); // Uint8Array [7, 9]
 * ```
 */
export function tensorBytes(file: Uint8Array, t: SafetensorInfo): Uint8Array {
  return file.subarray(t.offset, t.offset + t.byteLength);
}

let f16Table: Float32Array | undefined;

/**
 * Converts one F32, F16 or BF16 tensor's little-endian bytes to f32 values in `dst` (exact for all three).
 *
 * @example
 * ```ts
 * import { decodeFloatTensor } from "./safetensors.ts";
 * const dst = new Float32Array(1);
 * decodeFloatTensor(new Uint8Array([0x80, 0x3f]), "BF16", dst); // dst[0] === 1
 * ```
 */
export function decodeFloatTensor(bytes: Uint8Array, dtype: string, dst: Float32Array): Float32Array {
  const size = dtype === "F32" ? 4 : dtype === "F16" || dtype === "BF16" ? 2 : 0;
  if (size === 0) throw new TypeError(`decodeFloatTensor: expected F32, F16 or BF16, found ${dtype}`);
  if (bytes.byteLength !== size * dst.length) {
    throw new RangeError(
      `decodeFloatTensor: ${dst.length} ${dtype} values need ${
        size * dst.length
      } bytes, found ${bytes.byteLength}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dst.length;
  if (dtype === "F32") {
    if (bytes.byteOffset % 4 === 0) dst.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
    else for (let i = 0; i < n; i++) dst[i] = view.getFloat32(4 * i, true);
  } else if (dtype === "F16") {
    f16Table ??= Float32Array.from({ length: 65536 }, (_, h) => f16BitsToF32(h));
    for (let i = 0; i < n; i++) dst[i] = f16Table[view.getUint16(2 * i, true)];
  } else {
    const u = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) u[i] = view.getUint16(2 * i, true) << 16;
  }
  return dst;
}

/**
 * The bytes of a safetensors file: `__metadata__` (string values) and the tensors, laid out one after
 * another with no gaps (the official reader requires that), larger element sizes first so that every
 * tensor starts aligned to its element size; the header is padded with spaces to a multiple of 8.
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
 * const data = new Uint8Array(new Float32Array([1, 2]).buffer);
 * const bytes = serializeSafetensors([{ name: "w", dtype: "F32", shape: [2], data }], { note: "hi" });
 * parseSafetensors(bytes).tensors[0].offset % 8; // 0
 * ```
 */
export function serializeSafetensors(
  tensors: SafetensorOut[],
  metadata?: Record<string, string>,
): Uint8Array {
  const names = new Set<string>();
  for (const t of tensors) {
    if (typeof t.name !== "string" || t.name.length === 0 || t.name === "__metadata__") {
      throw new TypeError(`serializeSafetensors: bad tensor name ${JSON.stringify(t.name)}`);
    }
    if (names.has(t.name)) throw new RangeError(`serializeSafetensors: tensor "${t.name}" appears twice`);
    names.add(t.name);
    const size = Object.hasOwn(SAFETENSORS_DTYPE_BYTES, t.dtype)
      ? SAFETENSORS_DTYPE_BYTES[t.dtype]
      : undefined;
    if (size === undefined) {
      throw new TypeError(`serializeSafetensors: tensor "${t.name}" has unknown dtype ${t.dtype}`);
    }
    const want = t.shape.reduce((a, d) => a * d, size);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || t.data.byteLength !== want) {
      throw new RangeError(
        `serializeSafetensors: tensor "${t.name}" (${t.dtype} [${
          t.shape.join(", ")
        }]) needs ${want} bytes, ` +
          `found ${t.data.byteLength}`,
      );
    }
  }
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== "string") {
      throw new TypeError(
        `serializeSafetensors: metadata "${key}" is ${describe(value)}; values must be strings`,
      );
    }
  }
  const order = tensors.map((t, i) => [SAFETENSORS_DTYPE_BYTES[t.dtype], i]).sort((a, b) =>
    b[0] - a[0] || a[1] - b[1]
  )
    .map(([, i]) => tensors[i]);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let at = 0;
  for (const t of order) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.data.byteLength] };
    at += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.fill(0x20, 8, 8 + n);
  out.set(json, 8);
  let p = 8 + n;
  for (const t of order) {
    out.set(t.data, p);
    p += t.data.byteLength;
  }
  return out;
}
