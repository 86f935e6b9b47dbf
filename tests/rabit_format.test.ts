// The packed .rabit file: bit-exact round trips (fp32/fp16 tensors, k = 1..4 ragged layers, real model),
// the dtype table, refusal of damaged or inconsistent files with distinct messages, and atomic writes.

import assert from "node:assert/strict";
import { Packr } from "msgpackr";
import { loadLlama2c } from "../src/io/llama2c.ts";
import {
  type FpDtype,
  type LoadedRabit,
  parseRabit,
  RABIT_PREAMBLE_BYTES,
  type RabitFile,
  rabitSummary,
  readRabit,
  serializeRabit,
  writeRabit,
} from "../src/io/rabit_format.ts";
import {
  decodeFloats,
  decodeU32,
  dtypeById,
  DTYPES,
  encodeFloats,
  encodeU32,
} from "../src/io/tensor_codec.ts";
import type { LlamaConfig } from "../src/model/config.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import { withoutQuantized } from "../src/model/model.ts";
import { llamaParamSpecs } from "../src/model/params.ts";
import { wordsPerRow } from "../src/quant/bitpack.ts";
import { PackedLinear, type PackedModel, type ResidualBinaryLinear } from "../src/quant/residual_binary.ts";
import { crc32 } from "../src/util/crc32.ts";
import { roundThroughF16 } from "../src/util/fp16.ts";
import { Rng } from "../src/util/rng.ts";
import { MODEL_PATH, randomModel, tinyConfig, TOKENIZER_PATH } from "./_data.ts";

// dim 40 and hidden 72 make every `in` ragged (not a multiple of 32).
const CONFIG = tinyConfig({ dim: 40, hiddenDim: 72 });

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
    h: rng.normals(k * inF, 2),
  });
}

/** A layer object that skips PackedLinear's checks, to test the writer's own. */
function unchecked(layer: ResidualBinaryLinear): PackedLinear {
  return layer as PackedLinear;
}

/** A llama2.c tokenizer.bin for a vocabulary of `n` made-up tokens. */
function fakeTokenizer(n: number): Uint8Array {
  const parts: number[] = [];
  const view = new DataView(new ArrayBuffer(4));
  const i32 = (v: number) => (view.setInt32(0, v, true), parts.push(...new Uint8Array(view.buffer)));
  const f32 = (v: number) => (view.setFloat32(0, v, true), parts.push(...new Uint8Array(view.buffer)));
  i32(8);
  for (let i = 0; i < n; i++) {
    const piece = new TextEncoder().encode(`t${i}`);
    f32(-i);
    i32(piece.length);
    parts.push(...piece);
  }
  return new Uint8Array(parts);
}

/** Layers to binarize with their k: every k from 1 to 4, on several shapes. */
const PLAN: [string, number][] = [["layers.0.wq", 1], ["layers.0.w2", 2], ["layers.1.wk", 3], [
  "layers.1.w1",
  4,
]];

function buildFile(config: LlamaConfig, seed: number, dtypes: Record<string, FpDtype> = {}): RabitFile {
  const model = randomModel(config, seed);
  const rng = new Rng(seed + 100);
  for (const [name, k] of PLAN) {
    const [out, inF] = model.params.shape(name);
    model.quantized.set(name, randomLayer(rng, out, inF, k));
  }
  return {
    model,
    tokenizerBytes: fakeTokenizer(config.vocabSize),
    method: "ptq",
    options: { k: 2, rounds: 3, exponents: [0.5, 0.5], skip: undefined },
    metadata: {
      calibration: { tokens: 2048, text: "tinystories_dev.txt" },
      losses: [1.5, 1.25],
      big: 2 ** 40,
    },
    dtypes,
  };
}

const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Asserts that `back` holds exactly what storing `file` with its dtypes keeps. */
function assertStoredExactly(file: RabitFile, back: LoadedRabit): void {
  const dtypes = file.dtypes ?? {};
  assert.deepEqual(back.model.config, file.model.config);
  const expectedNames = llamaParamSpecs(file.model.config).map(([n]) => n).filter((n) =>
    !file.model.quantized.has(n)
  );
  assert.deepEqual(back.model.params.names(), expectedNames);
  for (const name of expectedNames) {
    const src = file.model.params.get(name);
    const got = back.model.params.get(name);
    const dtype = dtypes[name] ?? "f32";
    assert.equal(back.dtypes[name], dtype, name);
    assert.deepEqual(bitsOf(got), bitsOf(dtype === "f16" ? roundThroughF16(src) : src), name);
  }
  // Binarized layers come back in parameter order, whatever the order of the map written.
  const specOrder = llamaParamSpecs(file.model.config).map(([n]) => n);
  assert.deepEqual([...back.model.quantized.keys()], specOrder.filter((n) => file.model.quantized.has(n)));
  for (const [name, q] of file.model.quantized) {
    const b = back.model.quantized.get(name)!;
    assert.deepEqual([b.out, b.in, b.k], [q.out, q.in, q.k]);
    assert.ok(b.planes instanceof Uint32Array && b.planes.byteOffset % 4 === 0);
    assert.deepEqual(b.planes, q.planes, name);
    for (const key of ["g", "h"] as const) {
      const dtype = dtypes[`${name}.${key}`] ?? "f16";
      assert.equal(back.dtypes[`${name}.${key}`], dtype);
      assert.deepEqual(
        bitsOf(b[key]),
        bitsOf(dtype === "f16" ? roundThroughF16(q[key]) : q[key]),
        `${name}.${key}`,
      );
    }
  }
  assert.equal(Object.keys(back.dtypes).length, expectedNames.length + 2 * file.model.quantized.size);
  assert.deepEqual(back.tokenizerBytes, file.tokenizerBytes);
  assert.equal(back.method, file.method);
}

for (const shared of [true, false]) {
  Deno.test(`write → read is bit-exact, f32 and f16, k = 1..4 ragged (${shared ? "shared" : "separate"} classifier)`, () => {
    const config = { ...CONFIG, sharedClassifier: shared };
    const dtypes: Record<string, FpDtype> = {
      tok_embeddings: "f16",
      "layers.1.wv": "f16",
      "layers.0.ffn_norm": "f16",
      "layers.0.w2.g": "f32", // scales default to f16: one g and one h kept at f32
      "layers.1.w1.h": "f32",
      ...(shared ? {} : { output: "f16" as const }),
    };
    const file = buildFile(config, shared ? 3 : 4, dtypes);
    const bytes = serializeRabit(file);
    const back = parseRabit(bytes, "mem.rabit");
    assertStoredExactly(file, back);
    assert.equal(back.fileBytes, bytes.length);
    assert.equal(back.tokenizer?.vocabSize, config.vocabSize);
    // Options and metadata come back as JSON: undefined fields dropped, large integers kept.
    assert.deepEqual(back.options, { k: 2, rounds: 3, exponents: [0.5, 0.5] });
    assert.deepEqual(back.metadata, file.metadata);
    assert.equal(typeof back.created.at, "string");
    assert.match(back.created.by, /^rabit/);
    // Loaded arrays are aligned copies, not views of the file.
    assert.notEqual(back.model.params.data.buffer, bytes.buffer);
    // Writing what was read gives the same bytes (creation info and every dtype are kept).
    assert.deepEqual(serializeRabit(back), bytes);
    // The loaded model runs: same logits as the in-memory model after fp16 rounding of what is f16.
    const expected: PackedModel = {
      config,
      params: withoutQuantized(file.model.params, file.model.quantized.keys()),
      quantized: back.model.quantized,
    };
    for (const [name, dtype] of Object.entries(dtypes)) {
      if (dtype === "f16" && expected.params.has(name)) {
        expected.params.get(name).set(roundThroughF16(expected.params.get(name)));
      }
    }
    const tokens = [1, 5, 9, 2];
    const a = forwardChunk(expected, tokens, 0, createKvCache(expected)).logits;
    const b = forwardChunk(back.model, tokens, 0, createKvCache(back.model)).logits;
    assert.deepEqual(b, a);
  });
}

Deno.test("a float model without quantized layers or tokenizer round-trips; params may omit quantized names", () => {
  const model = randomModel(CONFIG, 5);
  const plain = serializeRabit({ model, method: "none", options: {}, metadata: {} });
  const back = parseRabit(plain);
  assert.deepEqual(back.model.params.data, model.params.data);
  assert.equal(back.model.quantized.size, 0);
  assert.equal(back.tokenizerBytes, undefined);
  assert.equal(back.tokenizer, undefined);
  // The same file whether params still hold the binarized weights or not.
  const file = buildFile(CONFIG, 6);
  const slim = {
    ...file,
    model: { ...file.model, params: withoutQuantized(file.model.params, file.model.quantized.keys()) },
  };
  const created = { at: "2024-01-01T00:00:00.000Z", by: "test" };
  assert.deepEqual(serializeRabit({ ...slim, created }), serializeRabit({ ...file, created }));
  // Insertion order of the quantized map does not matter: layers are written in parameter order.
  const reversed = new Map([...file.model.quantized].reverse());
  assert.deepEqual(
    serializeRabit({ ...file, created, model: { ...file.model, quantized: reversed } }),
    serializeRabit({ ...file, created }),
  );
});

Deno.test("every dtype round-trips through its byte encoding; ids are the append-only table", () => {
  assert.deepEqual(DTYPES.map((d) => [d.id, d.name, d.bytes]), [[0, "f32", 4], [1, "f16", 2], [2, "u32", 4], [
    3,
    "i8",
    1,
  ]]);
  assert.equal(dtypeById(1)?.name, "f16");
  assert.equal(dtypeById(4), undefined);
  const f = new Float32Array([0, -0, 1, -2.5, 1e-40, 3.4028234663852886e38, 65504, 6e-8, Math.PI, -1e-3]);
  assert.deepEqual(bitsOf(decodeFloats(encodeFloats(f, "f32"), "f32")), bitsOf(f));
  const fitsF16 = f.filter((x) => Math.abs(x) <= 65504);
  assert.deepEqual(
    bitsOf(decodeFloats(encodeFloats(fitsF16, "f16"), "f16")),
    bitsOf(roundThroughF16(fitsF16)),
  );
  assert.deepEqual([...encodeFloats(new Float32Array([1, 0.5]), "f16")], [0, 0x3c, 0, 0x38]); // little-endian
  const w = new Uint32Array([0, 1, 0x80000000, 0xffffffff, 0xdeadbeef]);
  assert.deepEqual(decodeU32(encodeU32(w)), w);
  assert.deepEqual([...encodeU32(new Uint32Array([0x04030201]))], [1, 2, 3, 4]);
  // Decoding from an odd offset (as inside a file) gives an aligned copy.
  const odd = new Uint8Array(1 + 8);
  odd.set(encodeFloats(new Float32Array([1.5, -7]), "f32"), 1);
  const got = decodeFloats(odd.subarray(1), "f32");
  assert.deepEqual([...got], [1.5, -7]);
  assert.equal(got.byteOffset, 0);
});

Deno.test("crc32 matches zlib's check value and continues over pieces", () => {
  const data = new TextEncoder().encode("123456789");
  assert.equal(crc32(data), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  const long = new Rng(9).normals(1001);
  const bytes = new Uint8Array(long.buffer);
  assert.equal(crc32(bytes.subarray(1234), crc32(bytes.subarray(0, 1234))), crc32(bytes));
});

// ---------------------------------------------------------------------------------------------------
// Damaged files.

Deno.test("damaged files: wrong magic, future version, truncated, trailing bytes, corrupt — distinct errors", async () => {
  const bytes = serializeRabit(buildFile(CONFIG, 7));
  const messages: string[] = [];
  const refuse = (b: Uint8Array, re: RegExp) => {
    assert.throws(() => parseRabit(b, "m.rabit"), (e: Error) => {
      assert.equal(e.name, "FormatError");
      assert.match(e.message, /^m\.rabit: /);
      assert.match(e.message, re);
      messages.push(e.message);
      return true;
    });
  };
  const edit = (f: (b: Uint8Array, v: DataView) => void) => {
    const b = bytes.slice();
    f(b, new DataView(b.buffer));
    return b;
  };
  // Wrong magic, including a llama2.c checkpoint passed by mistake.
  refuse(
    edit((b) => (b[0] = 0x51)),
    /not a \.rabit file: expected the magic bytes .* found 51 41 42 49 54 00 00 00/,
  );
  refuse((await Deno.readFile(MODEL_PATH)).subarray(0, 4096), /not a \.rabit file/);
  // A version from the future.
  refuse(
    edit((_, v) => v.setUint32(8, 2, true)),
    /unsupported \.rabit format version 2: written by a newer rabit; this rabit reads version 1\. Upgrade rabit/,
  );
  refuse(edit((_, v) => v.setUint32(8, 0, true)), /unsupported \.rabit format version 0: no rabit wrote it/);
  // Truncated anywhere: in the body, in the preamble, inside the magic.
  const n = bytes.length;
  refuse(
    bytes.subarray(0, n - 1),
    new RegExp(
      `truncated: expected ${n} bytes \\(24-byte preamble \\+ ${n - 24}-byte body\\), found ${n - 1}`,
    ),
  );
  refuse(bytes.subarray(0, 20), /truncated: expected at least 24 bytes, found 20/);
  refuse(bytes.subarray(0, 3), /truncated: expected at least 24 bytes, found 3/);
  refuse(new Uint8Array(0), /truncated: expected at least 24 bytes, found 0/);
  // Trailing bytes.
  const longer = new Uint8Array(n + 3);
  longer.set(bytes);
  refuse(longer, /3 unexpected bytes after the end: expected \d+ bytes .* found \d+/);
  // One flipped byte anywhere in the body, or in the stored checksum.
  for (const at of [RABIT_PREAMBLE_BYTES, RABIT_PREAMBLE_BYTES + 100, Math.floor(n / 2), n - 1]) {
    refuse(
      edit((b) => (b[at] ^= 0x10)),
      /corrupt: checksum mismatch \(CRC-32 of the body is 0x[0-9a-f]{8}, the header says 0x[0-9a-f]{8}\)/,
    );
  }
  refuse(edit((b) => (b[12] ^= 1)), /corrupt: checksum mismatch/);
  // Each kind of damage has its own message: every message matches exactly one kind, every kind is seen.
  const kinds = [
    /not a \.rabit file/,
    /unsupported \.rabit format version/,
    /truncated:/,
    /unexpected bytes after/,
    /corrupt:/,
  ];
  for (const m of messages) assert.equal(kinds.filter((k) => k.test(m)).length, 1, m);
  for (const k of kinds) assert.ok(messages.some((m) => k.test(m)), String(k));
  assert.ok(messages.some((m) => /Upgrade rabit/.test(m)));
  assert.ok(messages.some((m) => /changed after it was written/.test(m)));
  assert.ok(messages.some((m) => /cut short/.test(m)));
  assert.ok(messages.some((m) => /llama2\.c checkpoints are \.bin files/.test(m)));
});

/** A decoded body, edited freely by the tests. */
// deno-lint-ignore no-explicit-any
type Body = Record<string, any>;

/** Rewrites a valid file's body with `change` and frames it as the format documents (new checksum). */
function rewriteBody(bytes: Uint8Array, change: (body: Body) => void): Uint8Array {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  const body = packr.unpack(bytes.slice(RABIT_PREAMBLE_BYTES));
  change(body);
  const packed = packr.pack(body);
  const out = new Uint8Array(RABIT_PREAMBLE_BYTES + packed.length);
  out.set(bytes.subarray(0, 12));
  out.set(packed, RABIT_PREAMBLE_BYTES);
  const v = new DataView(out.buffer);
  v.setUint32(12, crc32(packed), true);
  v.setBigUint64(16, BigInt(packed.length), true);
  return out;
}

Deno.test("the documented layout alone re-frames a file, and content is checked against the config", () => {
  const bytes = serializeRabit(buildFile(CONFIG, 8));
  // Re-framing an unchanged body by the documented layout gives back the same file.
  assert.deepEqual(rewriteBody(bytes, () => {}), bytes);
  const refuse = (change: (body: Body) => void, re: RegExp) => {
    assert.throws(() => parseRabit(rewriteBody(bytes, change), "m.rabit"), (e: Error) => {
      assert.equal(e.name, "FormatError");
      assert.match(e.message, re);
      return true;
    });
  };
  refuse(
    (b) => delete b.tensors["norm"],
    /missing tensor "norm" \[40\]: the config needs every parameter that is not quantized/,
  );
  refuse((b) => delete b.config.dim, /config has no field "dim"/);
  refuse((b) => (b.config.nHeads = 7), /bad config: .*not divisible by nHeads 7/);
  refuse(
    (b) => (b.tensors["norm"].shape = [41]),
    /tensor "norm" has shape \[41\], the config implies \[40\]/,
  );
  refuse(
    (b) => (b.tensors["norm"].data = b.tensors["norm"].data.subarray(2)),
    /tensor "norm": dtype f32 and shape \[40\] need 160 bytes of data, found 158/,
  );
  refuse(
    (b) => (b.tensors["norm"].dtype = 9),
    /tensor "norm" has unknown dtype id 9 \(this rabit knows 0 f32, 1 f16, 2 u32, 3 i8\)/,
  );
  refuse((b) => (b.tensors["norm"].dtype = 2), /tensor "norm" has dtype u32, expected f32 or f16/);
  refuse((b) => (b.tensors["norm"].dtype = 3), /tensor "norm" has dtype i8, expected f32 or f16/);
  refuse((b) => {
    const d = b.tensors["layers.1.wo"].data as Uint8Array;
    new DataView(d.buffer, d.byteOffset).setFloat32(4 * 17, NaN, true);
  }, /tensor "layers\.1\.wo" holds a non-finite value NaN at index 17/);
  refuse((b) => {
    const d = b.quantized["layers.0.w2"].g.data as Uint8Array; // f16 by default
    d[2 * 3] = 0, d[2 * 3 + 1] = 0xfc; // -Infinity
  }, /the scales g of quantized layer "layers\.0\.w2" holds a non-finite value -Infinity at index 3/);
  refuse(
    (b) => (b.tensors["foo"] = b.tensors["norm"]),
    /unexpected tensor "foo": not a parameter of this config/,
  );
  refuse(
    (b) => (b.tensors["layers.0.wq"] = b.tensors["layers.1.wq"]),
    /"layers\.0\.wq" is stored both as a tensor and as a quantized layer/,
  );
  refuse(
    (b) => (b.quantized["norm"] = b.quantized["layers.0.wq"]),
    /quantized layer "norm" is not a linear layer of this config/,
  );
  refuse(
    (b) => (b.quantized["layers.0.wq"].in = 41),
    /quantized layer "layers\.0\.wq" is \(out, in\) = \(40, 41\), the config implies \(40, 40\)/,
  );
  refuse(
    (b) => (b.quantized["layers.0.wq"].k = 5),
    /quantized layer "layers\.0\.wq" has k = 5 paths, expected 1\.\.4/,
  );
  refuse(
    (b) => (b.quantized["layers.0.w2"].k = 1),
    /the planes of quantized layer "layers\.0\.w2" has shape \[2, 40, 3\], the config implies \[1, 40, 3\]/,
  );
  refuse((b) => {
    const p = b.quantized["layers.0.w2"].planes.data as Uint8Array; // in = 72: 8 columns in the last word
    p[4 * (3 * 5 + 2) + 2] |= 1; // plane 0, row 5, last word, bit 16
  }, /quantized layer "layers\.0\.w2": padding bits of plane 0 row 5 are not 0/);
  refuse((b) => delete b.quantized["layers.1.w1"].h, /quantized layer "layers\.1\.w1" has no field "h"/);
  refuse(
    (b) => (b.tokenizer = fakeTokenizer(31)),
    /embedded tokenizer\): file ends after 31 tokens but the model expects 32/,
  );
  refuse((b) => (b.method = 3), /expected method to be a non-empty string, found number 3/);
  refuse((b) => (b.metadata = [1]), /expected metadata to be a map, found an array of 1/);
  refuse((b) => (b.metadata.when = new Date(0)), /metadata\.when is a Date; expected a JSON value/);
  refuse((b) => (b.created = { at: "now" }), /expected created to have string fields at and by/);
  // Unknown body keys are ignored (additions that old readers can skip keep the version).
  const extended = rewriteBody(bytes, (b) => (b.future = { x: 1 }));
  assert.deepEqual(serializeRabit(parseRabit(extended)), bytes);
});

Deno.test("int8 vocabulary tensors: missing, misshaped or bad row scales are refused by name", () => {
  const file = buildFile({ ...CONFIG, sharedClassifier: false }, 9);
  const bytes = serializeRabit({ ...file, dtypes: { tok_embeddings: "i8", output: "i8" } });
  assert.equal(parseRabit(bytes, "m.rabit").dtypes.output, "i8");
  const refuse = (change: (body: Body) => void, re: RegExp) => {
    assert.throws(() => parseRabit(rewriteBody(bytes, change), "m.rabit"), (e: Error) => {
      assert.equal(e.name, "FormatError");
      assert.match(e.message, re);
      return true;
    });
  };
  refuse((b) => delete b.tensors["output"].scales, /tensor "output" has no field "scales"/);
  refuse(
    (b) => (b.tensors["output"].scales.shape = [3]),
    /the row scales of tensor "output" has shape \[3\], the config implies \[32\]/,
  );
  refuse(
    (b) => (b.tensors["output"].scales.dtype = 1),
    /the row scales of tensor "output" has dtype f16, expected f32/,
  );
  refuse((b) => {
    const d = b.tensors["tok_embeddings"].scales.data as Uint8Array;
    new DataView(d.buffer, d.byteOffset).setFloat32(4 * 5, NaN, true);
  }, /the row scales of tensor "tok_embeddings" holds a non-finite value NaN at index 5/);
  refuse((b) => {
    const d = b.tensors["tok_embeddings"].scales.data as Uint8Array;
    new DataView(d.buffer, d.byteOffset).setFloat32(4 * 2, -1, true);
  }, /tensor "tok_embeddings": row scale 2 is -1; expected a finite value >= 0/);
  refuse(
    (b) => (b.tensors["output"].data = b.tensors["output"].data.subarray(1)),
    /tensor "output": dtype i8 and shape \[32, 40\] need 1280 bytes of data, found 1279/,
  );
});

Deno.test("serializeRabit refuses what the loader would refuse, before writing anything", () => {
  const file = buildFile(CONFIG, 9);
  const nan = buildFile(CONFIG, 9);
  nan.model.params.get("norm")[3] = NaN;
  assert.throws(() => serializeRabit(nan), /RangeError: serializeRabit: tensor "norm" holds NaN at index 3/);
  const big = buildFile(CONFIG, 9, { "layers.1.wo": "f16" });
  big.model.params.get("layers.1.wo")[5] = 70000;
  assert.throws(
    () => serializeRabit(big),
    /tensor "layers\.1\.wo" holds 70000 at index 5, beyond f16's range .* store it as f32/,
  );
  big.dtypes = { "layers.1.wo": "f32" };
  assert.equal(parseRabit(serializeRabit(big)).model.params.get("layers.1.wo")[5], 70000);
  assert.throws(
    () => serializeRabit({ ...file, dtypes: { "layers.0.wq": "f16" } }),
    /dtypes names "layers\.0\.wq", which the file does not store as floats/,
  );
  assert.throws(
    () => serializeRabit({ ...file, dtypes: { norm: "bf16" as FpDtype } }),
    /dtypes\["norm"\] must be "f32", "f16" or "i8"/,
  );
  assert.throws(
    () => serializeRabit({ ...file, metadata: { curve: new Float32Array(2) } }),
    /TypeError: serializeRabit: metadata\.curve is a Float32Array; expected a JSON value/,
  );
  assert.throws(() => serializeRabit({ ...file, options: { lr: NaN } }), /options\.lr is NaN/);
  assert.throws(() => serializeRabit({ ...file, method: "" }), /expected method to be a non-empty string/);
  assert.throws(
    () => serializeRabit({ ...file, tokenizerBytes: fakeTokenizer(33) }),
    /tokenizerBytes: vocabulary has 33 tokens/,
  );
  const q = file.model.quantized.get("layers.0.w2")!;
  const dirty = new Map(file.model.quantized).set(
    "layers.0.w2",
    unchecked({ ...q, planes: q.planes.map((w) => w | 0x80000000) }),
  );
  assert.throws(
    () => serializeRabit({ ...file, model: { ...file.model, quantized: dirty } }),
    /padding bits of plane 0 row 0/,
  );
  const short = new Map(file.model.quantized).set("layers.0.w2", unchecked({ ...q, g: q.g.subarray(1) }));
  assert.throws(
    () => serializeRabit({ ...file, model: { ...file.model, quantized: short } }),
    /expected g of length 80, found 79/,
  );
  const misplaced = new Map(file.model.quantized).set("layers.0.wo", q);
  assert.throws(
    () => serializeRabit({ ...file, model: { ...file.model, quantized: misplaced } }),
    /quantized layer "layers\.0\.wo" is \(out, in\) = \(40, 72\), the config implies \(40, 40\)/,
  );
  const missing = { ...file.model, params: withoutQuantized(file.model.params, ["layers.1.w3"]) };
  assert.throws(
    () => serializeRabit({ ...file, model: missing }),
    /missing tensor "layers\.1\.w3" \[72, 40\]/,
  );
});

// ---------------------------------------------------------------------------------------------------
// Atomic writes.

Deno.test("writeRabit is atomic: no temporary file on success, nothing left behind on failure", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rabit_format_" });
  const list = async () => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  try {
    const path = `${dir}/m.rabit`;
    const file = buildFile(CONFIG, 10);
    await writeRabit(path, file);
    assert.deepEqual(await list(), ["m.rabit"]);
    const first = await Deno.readFile(path);
    assertStoredExactly(file, await readRabit(path));
    // Overwriting replaces the file.
    await writeRabit(path, { ...file, method: "rtn2" });
    assert.equal((await readRabit(path)).method, "rtn2");
    assert.deepEqual(await list(), ["m.rabit"]);
    // Serialization fails: the existing file is untouched and no temporary file appears.
    await Deno.writeFile(path, first);
    const bad = buildFile(CONFIG, 10);
    bad.model.params.get("norm")[0] = Infinity;
    await assert.rejects(writeRabit(path, bad), /holds Infinity/);
    assert.deepEqual(await Deno.readFile(path), first);
    assert.deepEqual(await list(), ["m.rabit"]);
    // The directory does not exist: nothing is created anywhere.
    await assert.rejects(
      writeRabit(`${dir}/missing/m.rabit`, file),
      /Cannot write .*missing\/m\.rabit: its directory does not exist/,
    );
    assert.deepEqual(await list(), ["m.rabit"]);
    // Failing half way: the temporary file is written, then the rename fails (the target is a non-empty
    // directory). The temporary file is removed and the target is unchanged.
    await Deno.mkdir(`${dir}/d.rabit`);
    await Deno.writeTextFile(`${dir}/d.rabit/keep`, "x");
    await assert.rejects(writeRabit(`${dir}/d.rabit`, file));
    assert.deepEqual(await list(), ["d.rabit", "m.rabit"]);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(`${dir}/d.rabit`))).map((e) => e.name), ["keep"]);
    // readRabit names a missing file.
    await assert.rejects(readRabit(`${dir}/none.rabit`), /Packed model not found: .*none\.rabit/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------------
// The real model.

Deno.test("stories260K with two binarized layers: write, read, same tensors, same logits, summary", async () => {
  const { config, params } = await loadLlama2c(MODEL_PATH);
  const tokenizerBytes = await Deno.readFile(TOKENIZER_PATH);
  const rng = new Rng(260);
  const quantized = new Map<string, PackedLinear>([
    ["layers.1.wq", randomLayer(rng, 64, 64, 2)],
    ["layers.3.w2", randomLayer(rng, 64, 172, 3)], // in = 172: ragged
  ]);
  const model: PackedModel = { config, params: withoutQuantized(params, quantized.keys()), quantized };
  const file: RabitFile = {
    model,
    tokenizerBytes,
    method: "ptq",
    options: { k: 2 },
    metadata: { source: "stories260K.bin" },
    dtypes: { "layers.3.w2.g": "f32" },
  };
  const dir = await Deno.makeTempDir({ prefix: "rabit_format_" });
  try {
    const path = `${dir}/stories260K.rabit`;
    await writeRabit(path, file);
    const back = await readRabit(path);
    assert.equal(back.fileBytes, (await Deno.stat(path)).size);
    assertStoredExactly(file, back);
    assert.deepEqual(back.model.params.data, model.params.data);
    assert.equal(back.tokenizer?.encode("Once upon a time").join(" "), "403 407 261 378");
    // Same logits: the in-memory model with fp16-rounded scales is what the file holds.
    const rounded = new Map(
      [...quantized].map((
        [n, q],
      ) => [
        n,
        new PackedLinear({
          ...q,
          g: n === "layers.3.w2" ? q.g : roundThroughF16(q.g),
          h: roundThroughF16(q.h),
        }),
      ]),
    );
    const tokens = [1, 403, 407, 261, 378];
    const mem = { ...model, quantized: rounded };
    const a = forwardChunk(mem, tokens, 0, createKvCache(mem, 8)).logits;
    const b = forwardChunk(back.model, tokens, 0, createKvCache(back.model, 8)).logits;
    assert.deepEqual(b, a);

    const s = rabitSummary(back);
    const planeBytes = 4 * (2 * 64 * 2 + 3 * 64 * 6);
    const scaleBytes = 2 * 2 * (64 + 64) + 3 * 64 * 4 + 3 * 172 * 2;
    assert.deepEqual(s.binarized, {
      layers: 2,
      weights: 64 * 64 + 64 * 172,
      planeBytes,
      scaleBytes,
      bitsPerWeight: (8 * (planeBytes + scaleBytes)) / (64 * 64 + 64 * 172),
    });
    assert.deepEqual(s.layers.map((l) => [l.name, l.k, l.bitsPerWeight]), [
      ["layers.1.wq", 2, 3],
      ["layers.3.w2", 3, (8 * (4 * 3 * 64 * 6 + 3 * 64 * 4 + 3 * 172 * 2)) / (64 * 172)],
    ]);
    const group = (g: string) => s.groups.find((x) => x.group === g)!;
    assert.deepEqual(group("embeddings"), { group: "embeddings", elements: 512 * 64, bytes: 4 * 512 * 64 });
    assert.deepEqual(group("norms"), { group: "norms", elements: 64 * 11, bytes: 4 * 64 * 11 });
    assert.equal(group("classifier").bytes, 0); // shared with the embeddings
    assert.equal(s.parameters, params.count);
    assert.equal(s.tensorBytes, 4 * (params.count - 64 * 64 - 64 * 172) + planeBytes + scaleBytes);
    assert.equal(s.tokenizerBytes, tokenizerBytes.length);
    // The packed body is the tensors plus little overhead.
    assert.ok(back.fileBytes < s.tensorBytes + s.tokenizerBytes + 8192, `${back.fileBytes} bytes`);
    // The summary of a float model stored all in f16 halves the fp bytes.
    const half = rabitSummary({
      model: { config, params, quantized: new Map() },
      method: "none",
      options: {},
      metadata: {},
      dtypes: Object.fromEntries(params.names().map((n) => [n, "f16" as const])),
    });
    assert.equal(half.tensorBytes, 2 * params.count);
    assert.equal(half.binarized.bitsPerWeight, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
