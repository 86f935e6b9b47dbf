// The file container shared by `.rabit` models and training checkpoints: a 24-byte preamble (magic,
// format version, CRC-32 of the body, body length) in front of one MessagePack body, written atomically.
//
//   offset  bytes  field (integers little-endian)
//   0       8      magic, one per file kind (e.g. "RABIT\0\0\0", "RABITCK\0")
//   8       4      u32 format version (read before anything after it)
//   12      4      u32 CRC-32 of the body (zlib's: util/crc32.ts)
//   16      8      u64 body length B: the file is exactly 24 + B bytes
//   24      B      body: MessagePack (plain maps; tensors as raw little-endian bins)

import { Packr, RESERVE_START_SPACE } from "msgpackr";
import { crc32 } from "../util/crc32.ts";
import { FormatError } from "./errors.ts";
import { isNotFound, notFoundError, remove, rename, writeNewFile } from "./fs.ts";

/** Bytes before the body. */
export const PREAMBLE_BYTES = 24;

/** What identifies one kind of file, and the hints its errors give. */
export interface ContainerKind {
  /** Name in messages, e.g. ".rabit" or "checkpoint". */
  name: string;
  /** 8 magic bytes. */
  magic: Uint8Array;
  /** Printable form of the magic for messages, e.g. "RABIT". */
  magicText: string;
  /** The version this code writes. */
  version: number;
  /** The versions this code reads. */
  supported: readonly number[];
  /** Hint when the magic is wrong. */
  hintNotThis: string;
}

const HINT_TRUNCATED =
  "The file was cut short (an interrupted write, copy or download?): produce or copy it again";
const HINT_CORRUPT =
  "The file changed after it was written (disk, copy or download error): produce or copy it again";
const HINT_VERSION = "Upgrade rabit to read it";

// useRecords false: plain MessagePack maps, readable by any implementation. int64AsType: other writers may
// use 64-bit ints for small numbers.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/** Whether `v` is a plain object (a MessagePack map), not an array, typed array or class instance. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * The complete file bytes for `body` (MessagePack after the preamble). The body is packed into one buffer
 * sized up front: left to itself msgpackr grows its buffer by copying (most of the time for large
 * models). `who` names the caller in errors.
 */
export function sealContainer(kind: ContainerKind, body: Record<string, unknown>, who: string): Uint8Array {
  let binBytes = 0;
  let bins = 0;
  const empty = new Uint8Array(0);
  const strip = (v: unknown): unknown => {
    if (v instanceof Uint8Array) {
      binBytes += v.byteLength;
      bins++;
      return empty;
    }
    if (Array.isArray(v)) return v.map(strip);
    if (isPlainObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, strip(x)]));
    return v;
  };
  const skeleton = packr.pack(strip(body)).byteLength;
  // An empty bin takes 2 bytes and any bin at most 5; msgpackr wants some room to spare at the end.
  const buffer = new Uint8Array(PREAMBLE_BYTES + skeleton + binBytes + 3 * bins + 4096);
  let packed: Uint8Array;
  try {
    packr.useBuffer(buffer);
    packed = packr.pack(body, RESERVE_START_SPACE | PREAMBLE_BYTES);
  } catch (e) {
    throw new RangeError(`${who}: MessagePack encoding failed: ${(e as Error).message}`, { cause: e });
  } finally {
    packr.useBuffer(new Uint8Array(8192)); // msgpackr must never write into `buffer` again
  }
  // Had the estimate been short, msgpackr would have moved to a buffer of its own: copy out of it.
  const out = packed.buffer === buffer.buffer && packed.byteOffset === 0 ? packed : new Uint8Array(packed);
  out.set(kind.magic, 0);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const bodyBytes = out.subarray(PREAMBLE_BYTES);
  view.setUint32(8, kind.version, true);
  view.setUint32(12, crc32(bodyBytes), true);
  view.setBigUint64(16, BigInt(bodyBytes.byteLength), true);
  return out;
}

/**
 * Checks the preamble of `bytes` (magic, version, length, checksum; each with its own FormatError naming
 * `path`) and returns the decoded MessagePack body and the version.
 */
export function openContainer(kind: ContainerKind, bytes: Uint8Array, path: string) {
  const fail = (problem: string, hint: string): never => {
    throw new FormatError(path, problem, hint);
  };
  const n = bytes.byteLength;
  for (let i = 0; i < Math.min(n, kind.magic.length); i++) {
    if (bytes[i] !== kind.magic[i]) {
      const hex = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ");
      const want = Array.from(kind.magic, (b) => b.toString(16).padStart(2, "0")).join(" ");
      fail(
        `not a ${kind.name} file: expected the magic bytes ${want} ("${kind.magicText}"), found ${hex}`,
        kind.hintNotThis,
      );
    }
  }
  const truncated = (expected: string, detail = "") =>
    fail(`truncated: expected ${expected} bytes${detail}, found ${n}`, HINT_TRUNCATED);
  if (n < 12) truncated(`at least ${PREAMBLE_BYTES}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, n);
  const version = view.getUint32(8, true);
  if (!kind.supported.includes(version)) {
    const supported = `this rabit reads version ${kind.supported.join(", ")}`;
    if (version > kind.version) {
      fail(
        `unsupported ${kind.name} format version ${version}: written by a newer rabit; ${supported}`,
        HINT_VERSION,
      );
    }
    fail(`unsupported ${kind.name} format version ${version}: no rabit wrote it; ${supported}`, HINT_CORRUPT);
  }
  if (n < PREAMBLE_BYTES) truncated(`at least ${PREAMBLE_BYTES}`);
  const storedCrc = view.getUint32(12, true);
  const bodyLength64 = view.getBigUint64(16, true); // exact in messages; a Number beyond 2^53 is rounded
  const bodyLength = Number(bodyLength64);
  const expected = PREAMBLE_BYTES + bodyLength;
  if (n < expected) {
    truncated(
      `${BigInt(PREAMBLE_BYTES) + bodyLength64}`,
      ` (${PREAMBLE_BYTES}-byte preamble + ${bodyLength64}-byte body)`,
    );
  }
  if (n > expected) {
    fail(
      `${n - expected} unexpected bytes after the end: expected ${expected} bytes ` +
        `(${PREAMBLE_BYTES}-byte preamble + ${bodyLength}-byte body), found ${n}`,
      HINT_CORRUPT,
    );
  }
  const bodyBytes = bytes.subarray(PREAMBLE_BYTES);
  const crc = crc32(bodyBytes);
  if (crc !== storedCrc) {
    const hex = (x: number) => "0x" + x.toString(16).padStart(8, "0");
    fail(
      `corrupt: checksum mismatch (CRC-32 of the body is ${hex(crc)}, the header says ${hex(storedCrc)})`,
      HINT_CORRUPT,
    );
  }
  // One MessagePack value must fill the body. unpackMultiple stops after the first value, so trailing
  // bytes are found here (plain unpack would JSON-print the whole value, tensors and all, to say so).
  let body: unknown;
  let end = -1;
  try {
    packr.unpackMultiple(bodyBytes, (value: unknown, _start?: number, stop?: number) => {
      body = value;
      end = stop ?? -1;
      return false;
    });
  } catch (e) {
    // msgpackr's own errors say what is wrong; an engine error from inside it (it decodes recursively and
    // reads some values without a bounds check) only says that the bytes are malformed.
    const engine = e instanceof RangeError || e instanceof TypeError;
    const why = !engine
      ? (e as Error).message
      : /call stack/i.test(e.message)
      ? "values nested too deeply"
      : "a value is malformed or cut off by the end of the body";
    fail(`corrupt: the body is not valid MessagePack (${why})`, HINT_CORRUPT);
  }
  if (end !== bodyBytes.byteLength) {
    fail(
      `corrupt: the body's MessagePack value ends at byte ${end} of ${bodyBytes.byteLength}; ` +
        `expected it to fill the body`,
      HINT_CORRUPT,
    );
  }
  return { body, version };
}

function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Writes `bytes` to `path` atomically: they go to `path.tmp-<random>` in the same directory, are synced,
 * then renamed over `path`. On any failure the temporary file is removed and `path` is left as it was.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${randomSuffix()}`;
  try {
    // Exclusive creation: a failed write removes only the file this call created.
    await writeNewFile(tmp, bytes);
  } catch (e) {
    if (isNotFound(e)) throw notFoundError(`Cannot write ${path}: its directory does not exist`, e);
    throw e;
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await remove(tmp).catch(() => {});
    throw e;
  }
}
