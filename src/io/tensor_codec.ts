// Storage dtypes of tensors in files, one table with append-only ids (in the spirit of ggml's
// type_traits), and the conversions between typed arrays and raw little-endian bytes.
//
// Ids are written into files: never renumber or reuse one, only append. Bytes are always little-endian;
// on a (rare) big-endian host the conversions swap.

import { f16BitsToF32, f32ToF16Bits } from "../util/fp16.ts";

/** What one stored element is. */
export interface DtypeTraits {
  /** The id written into files (append-only). */
  readonly id: number;
  /** Short name used in APIs and messages. */
  readonly name: DtypeName;
  /** Bytes per element. */
  readonly bytes: number;
  /** What it holds. */
  readonly description: string;
}

/** The table of storage dtypes, indexed by id. */
export const DTYPES = [
  { id: 0, name: "f32", bytes: 4, description: "IEEE-754 binary32" },
  { id: 1, name: "f16", bytes: 2, description: "IEEE-754 binary16, rounded to nearest even from f32" },
  {
    id: 2,
    name: "u32",
    bytes: 4,
    description: "unsigned 32-bit words (packed sign planes, quant/bitpack.ts)",
  },
  {
    id: 3,
    name: "i8",
    bytes: 1,
    description:
      "signed 8-bit codes with one f32 scale per row (quant/int8_rows.ts; vocabulary tensors only)",
  },
] as const satisfies readonly DtypeTraits[];

/** Name of a storage dtype. */
export type DtypeName = "f32" | "f16" | "u32" | "i8";

/** The dtypes a floating-point tensor (weights, norms, scales) may be stored as. */
export type FpDtype = "f32" | "f16";

/**
 * How a float tensor of a .rabit file may be stored: a float dtype, or "i8" (int8 codes with per-row
 * scales) for the vocabulary-sized tensors, the token embedding and the classifier.
 */
export type StoredDtype = FpDtype | "i8";

/** Traits of the dtype with this id, or undefined when this version does not know it. */
export function dtypeById(id: number): DtypeTraits | undefined {
  return Number.isInteger(id) && id >= 0 && id < DTYPES.length ? DTYPES[id] : undefined;
}

/** Traits of the dtype with this name; throws a TypeError for an unknown name. */
export function dtypeByName(name: string): DtypeTraits {
  const d = DTYPES.find((t) => t.name === name);
  if (!d) {
    throw new TypeError(`Unknown dtype "${name}": expected one of ${DTYPES.map((t) => t.name).join(", ")}`);
  }
  return d;
}

/**
 * `bytes` as a plain Uint8Array over the same memory. A Node Buffer is a Uint8Array whose slice() returns
 * a view rather than a copy, so `buffer.slice(a, b).buffer` would be the whole file's memory; parsers that
 * copy with slice() take their input through this.
 */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** True when this host stores typed arrays little-endian (every platform Deno ships for). */
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function swapInPlace<T extends Uint8Array>(bytes: T, width: number): T {
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
  return bytes;
}

/** Little-endian bytes of a typed array: a view of it on little-endian hosts, a swapped copy otherwise. */
function leBytes(a: Float32Array | Uint32Array | Uint16Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return HOST_LE ? view : swapInPlace(view.slice(), a.BYTES_PER_ELEMENT);
}

/** A copy of little-endian bytes in a fresh, aligned buffer in host order. */
function alignedCopy(bytes: Uint8Array, width: number): ArrayBuffer {
  const copy = new Uint8Array(bytes.byteLength); // a new buffer at offset 0: aligned for any element width
  copy.set(bytes);
  return (HOST_LE ? copy : swapInPlace(copy, width)).buffer;
}

/**
 * Stored bytes of float values as `dtype` (f16 rounds to nearest even). The result may be a view of
 * `values` (f32 on little-endian hosts): copy it before changing `values`.
 *
 * @example
 * ```ts
 * import { encodeFloats } from "./tensor_codec.ts";
 * encodeFloats(new Float32Array([1, 0.5]), "f16"); // Uint8Array [0, 60, 0, 56]
 * ```
 */
export function encodeFloats(values: Float32Array, dtype: FpDtype): Uint8Array {
  if (dtype === "f32") return leBytes(values);
  if (dtype !== "f16") throw new TypeError(`encodeFloats: expected dtype f32 or f16, found ${dtype}`);
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) bits[i] = f32ToF16Bits(values[i]);
  return leBytes(bits);
}

let f16Table: Float32Array | undefined; // all 65536 fp16 values as f32, built on first use

/**
 * Float values of stored bytes of `dtype`, in a new aligned Float32Array. The byte length must be a
 * multiple of the element size.
 *
 * @example
 * ```ts
 * import { decodeFloats } from "./tensor_codec.ts";
 * decodeFloats(new Uint8Array([0, 60, 0, 56]), "f16"); // Float32Array [1, 0.5]
 * ```
 */
export function decodeFloats(bytes: Uint8Array, dtype: FpDtype): Float32Array {
  const width = dtypeByName(dtype).bytes;
  if (bytes.byteLength % width !== 0) {
    throw new RangeError(
      `decodeFloats: expected a multiple of ${width} bytes for ${dtype}, found ${bytes.byteLength}`,
    );
  }
  return decodeFloatsInto(bytes, dtype, new Float32Array(bytes.byteLength / width));
}

/**
 * Decodes stored bytes of `dtype` into `target` (whose length must be the element count) and returns it:
 * one copy straight from the file's bytes into, e.g., a parameter table.
 *
 * @example
 * ```ts
 * import { decodeFloatsInto } from "./tensor_codec.ts";
 * decodeFloatsInto(new Uint8Array([0, 60, 0, 56]), "f16", new Float32Array(2)); // Float32Array [1, 0.5]
 * ```
 */
export function decodeFloatsInto(bytes: Uint8Array, dtype: FpDtype, target: Float32Array): Float32Array {
  const width = dtypeByName(dtype).bytes;
  if (bytes.byteLength !== target.length * width) {
    throw new RangeError(
      `decodeFloatsInto: expected ${
        target.length * width
      } bytes for ${target.length} ${dtype} values, found ${bytes.byteLength}`,
    );
  }
  if (dtype === "f32") {
    const dst = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
    dst.set(bytes);
    if (!HOST_LE) swapInPlace(dst, 4);
    return target;
  }
  if (dtype !== "f16") throw new TypeError(`decodeFloatsInto: expected dtype f32 or f16, found ${dtype}`);
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  const table = f16Table;
  for (let i = 0; i < target.length; i++) target[i] = table[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
  return target;
}

/** Stored bytes of u32 words (a view of `words` on little-endian hosts). */
export function encodeU32(words: Uint32Array): Uint8Array {
  return leBytes(words);
}

/** u32 words of stored bytes, in a new aligned Uint32Array. */
export function decodeU32(bytes: Uint8Array): Uint32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new RangeError(`decodeU32: expected a multiple of 4 bytes, found ${bytes.byteLength}`);
  }
  return new Uint32Array(alignedCopy(bytes, 4));
}

/** Index of the first NaN or ±Infinity in `values`, or -1 when all are finite. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v - v !== 0) return i; // NaN and ±Inf give NaN
  }
  return -1;
}
