// The safetensors reader and writer: round trips, the layout the writer chooses, and hostile headers
// (impossible lengths, bad JSON, unknown or refused dtypes, sizes that do not match, ranges out of the file
// or overlapping) refused at once with the loader's own message.

import assert from "node:assert/strict";
import { FormatError } from "../src/io/errors.ts";
import {
  decodeFloatTensor,
  looksLikeSafetensors,
  MAX_SAFETENSORS_HEADER_BYTES,
  parseSafetensors,
  serializeSafetensors,
  tensorBytes,
} from "../src/io/safetensors.ts";
import { toBf16 } from "./_gguf.ts";
import { fromF16, toF16 } from "../src/util/fp16.ts";

const f32 = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);

/** A file with a hand-written header (any JSON text) and `data` after it. */
function raw(header: string | object, data = new Uint8Array(0), lengthField?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Refused with a FormatError naming the file and matching `re`, in well under a second. */
function refuses(bytes: Uint8Array, re: RegExp, dtypes?: string[]): void {
  const start = performance.now();
  assert.throws(() => parseSafetensors(bytes, "bad.safetensors", dtypes ? { dtypes } : {}), (e) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, found ${e}`);
    assert.match((e as Error).message, /^bad\.safetensors: /);
    assert.match((e as Error).message, re);
    return true;
  });
  const ms = performance.now() - start;
  assert.ok(ms < 500, `took ${ms.toFixed(0)} ms`);
}

Deno.test("write then read: tensors, shapes, metadata, aligned and contiguous data", () => {
  const a = {
    name: "a",
    dtype: "F16",
    shape: [3],
    data: new Uint8Array(toF16(new Float32Array([1, -2, 0.5])).buffer),
  };
  const b = { name: "b.weight", dtype: "F32", shape: [2, 2], data: f32(1, 2, 3, 4) };
  const c = { name: "c", dtype: "U8", shape: [5], data: new Uint8Array([1, 2, 3, 4, 5]) };
  const z = { name: "empty", dtype: "F32", shape: [0, 4], data: new Uint8Array(0) };
  const bytes = serializeSafetensors([a, b, c, z], { format: "pt", note: "ü" });
  assert.ok(looksLikeSafetensors(bytes));
  const h = parseSafetensors(bytes, "x", { dtypes: ["F32", "F16", "U8"] });
  assert.deepEqual(h.metadata, { format: "pt", note: "ü" });
  assert.deepEqual(h.tensors.map((t) => t.name), ["b.weight", "empty", "a", "c"]); // wider elements first
  assert.equal(h.dataOffset % 8, 0);
  let end = h.dataOffset;
  for (const t of h.tensors) {
    assert.equal(t.offset, end, `${t.name} starts where the previous ended`);
    assert.equal(t.offset % (t.dtype === "F32" ? 4 : t.dtype === "F16" ? 2 : 1), 0);
    end += t.byteLength;
  }
  assert.equal(end, bytes.length);
  assert.deepEqual(h.byName.get("b.weight")!.shape, [2, 2]);
  const out = decodeFloatTensor(tensorBytes(bytes, h.byName.get("b.weight")!), "F32", new Float32Array(4));
  assert.deepEqual([...out], [1, 2, 3, 4]);
  assert.deepEqual(
    [...decodeFloatTensor(tensorBytes(bytes, h.byName.get("a")!), "F16", new Float32Array(3))],
    [
      1,
      -2,
      0.5,
    ],
  );
  assert.deepEqual([...tensorBytes(bytes, h.byName.get("c")!)], [1, 2, 3, 4, 5]);
});

Deno.test("decodeFloatTensor: F16 and BF16 exactly, F32 at any alignment", () => {
  const v = new Float32Array([0, -0, 1, -1.5, 3.14159, 65504, 1e-7, -123.456]);
  const f16 = new Uint8Array(toF16(v).buffer);
  assert.deepEqual(decodeFloatTensor(f16, "F16", new Float32Array(8)), fromF16(toF16(v)));
  const bf = toBf16(v);
  const want = new Float32Array(new Uint32Array(bf.length).map((_, i) => bf[i] << 16).buffer);
  assert.deepEqual(decodeFloatTensor(new Uint8Array(bf.buffer), "BF16", new Float32Array(8)), want);
  const shifted = new Uint8Array(33);
  shifted.set(f32(...v), 1);
  assert.deepEqual(decodeFloatTensor(shifted.subarray(1), "F32", new Float32Array(8)), v);
  assert.throws(() => decodeFloatTensor(f16, "I64", new Float32Array(8)), /expected F32, F16 or BF16/);
});

Deno.test("the writer refuses what no reader could load", () => {
  assert.throws(
    () => serializeSafetensors([{ name: "a", dtype: "F32", shape: [3], data: f32(1, 2) }]),
    /needs 12 bytes, found 8/,
  );
  assert.throws(
    () => serializeSafetensors([{ name: "a", dtype: "Q4", shape: [1], data: f32(1) }]),
    /unknown dtype Q4/,
  );
  assert.throws(
    () => serializeSafetensors([{ name: "__metadata__", dtype: "F32", shape: [1], data: f32(1) }]),
    /bad tensor name/,
  );
  const t = { name: "a", dtype: "F32", shape: [1], data: f32(1) };
  assert.throws(() => serializeSafetensors([t, t]), /appears twice/);
  assert.throws(() => serializeSafetensors([], { n: 1 as unknown as string }), /values must be strings/);
});

Deno.test("hostile lengths: 2^60, past the end, beyond 100 MB, shorter than 8 bytes — refused before reading", () => {
  const good = serializeSafetensors([{ name: "w", dtype: "F32", shape: [2], data: f32(1, 2) }]);
  const withLength = (n: bigint) => {
    const b = good.slice();
    new DataView(b.buffer).setBigUint64(0, n, true);
    return b;
  };
  refuses(withLength(2n ** 60n), /header length 1152921504606846976 is beyond the limit of 100000000 bytes/);
  refuses(withLength(BigInt(MAX_SAFETENSORS_HEADER_BYTES) + 1n), /beyond the limit/);
  refuses(withLength(BigInt(good.length)), /truncated: the header claims \d+ bytes but only \d+ follow/);
  refuses(good.subarray(0, 20), /truncated: the header claims/);
  refuses(good.subarray(0, 5), /file is 5 bytes, shorter than the 8-byte header length/);
  refuses(new Uint8Array(0), /file is 0 bytes/);
});

Deno.test("hostile headers: bad JSON, not an object, bad UTF-8, bad __metadata__, unknown fields", () => {
  refuses(raw('{"w": {'), /the header is not valid JSON/);
  refuses(raw("[1, 2]"), /does not start with "\{"/);
  refuses(raw("{} ".replace("{}", '{"a":1}')), /expected tensor a to be an object, found number 1/);
  const badUtf8 = raw("{}  ");
  badUtf8[9] = 0xff;
  refuses(badUtf8, /not valid UTF-8/);
  refuses(raw({ __metadata__: { a: 1 } }), /__metadata__ "a" is number 1; metadata values are strings/);
  refuses(raw({ __metadata__: [] }), /expected __metadata__ to be an object/);
  refuses(
    raw({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4], extra: 1 } }, f32(1)),
    /tensor w has an unknown field "extra"/,
  );
});

Deno.test("hostile tensors: dtypes I64 and Q refused by name, size mismatch, out of range, overlap", () => {
  const one = (entry: object, data = f32(1, 2, 3, 4)) => raw({ w: entry }, data);
  refuses(
    one({ dtype: "I64", shape: [2], data_offsets: [0, 16] }),
    /tensor w has dtype I64; this reader takes F32, F16, BF16/,
  );
  refuses(
    one({ dtype: "Q", shape: [2], data_offsets: [0, 16] }),
    /tensor w has unknown dtype "Q" \(safetensors dtypes: BOOL, U8/,
  );
  refuses(
    one({ dtype: 7, shape: [2], data_offsets: [0, 8] }),
    /expected the dtype of tensor w to be a string/,
  );
  refuses(
    one({ dtype: "F32", shape: [3], data_offsets: [0, 16] }),
    /tensor w: dtype F32 and shape \[3\] need 12 bytes, its data_offsets \[0, 16\] span 16/,
  );
  refuses(
    one({ dtype: "F32", shape: [2 ** 31, 2 ** 31], data_offsets: [0, 16] }),
    /need 18446744073709551616 bytes/,
  );
  refuses(one({ dtype: "F32", shape: [-1], data_offsets: [0, 4] }), /expected the shape of tensor w/);
  refuses(one({ dtype: "F32", shape: [1], data_offsets: [8, 4] }), /0 <= begin <= end/);
  refuses(one({ dtype: "F32", shape: [1], data_offsets: [0.5, 4.5] }), /data_offsets of tensor w/);
  refuses(one({ dtype: "F32", shape: [1], data_offsets: [0] }), /data_offsets of tensor w/);
  refuses(
    one({ dtype: "F32", shape: [2], data_offsets: [12, 20] }),
    /tensor w \(data_offsets \[12, 20\]\) ends past the file: the data section has 16 bytes/,
  );
  refuses(
    one({ dtype: "F32", shape: [2], data_offsets: [2 ** 40, 2 ** 40 + 8] }),
    /ends past the file/,
  );
  refuses(
    raw({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    }, f32(1, 2, 3, 4)),
    /tensor b \(data_offsets \[4, 12\]\) overlaps tensor a \(data_offsets \[0, 8\]\)/,
  );
  // Gaps are allowed (only the official writer's files are contiguous); empty tensors never overlap.
  const gaps = raw({
    a: { dtype: "F32", shape: [1], data_offsets: [12, 16] },
    e: { dtype: "F32", shape: [0], data_offsets: [12, 12] },
    b: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
  }, f32(1, 2, 3, 4));
  assert.deepEqual(parseSafetensors(gaps).tensors.map((t) => t.name), ["a", "e", "b"]);
  // U8 is refused unless the caller takes it.
  const u8 = raw({ w: { dtype: "U8", shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4));
  refuses(u8, /tensor w has dtype U8/);
  assert.equal(parseSafetensors(u8, "ok", { dtypes: ["U8"] }).tensors.length, 1);
});
