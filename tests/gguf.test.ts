// GGUF input: the real fixture loads and runs, stories260K written as GGUF (F32, F16, BF16; v2 and v3) gives
// the original's logits and perplexity, the q/k row order is the one llama.cpp's converter produces, and
// broken or unsupported files are refused at once with the loader's own message.

import assert from "node:assert/strict";
import { join } from "node:path";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { FormatError } from "../src/io/errors.ts";
import { ggufTensorName, parseGguf, parseGgufModel } from "../src/io/gguf.ts";
import { loadLlama2c } from "../src/io/llama2c.ts";
import { openModel } from "../src/io/load_model.ts";
import { Llama2cTokenizer } from "../src/io/tokenizer.ts";
import { headSize, type LlamaConfig } from "../src/model/config.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { ropeForward } from "../src/model/ops.ts";
import { ParamTable } from "../src/model/params.ts";
import { fromF16, toF16 } from "../src/util/fp16.ts";
import { Rng } from "../src/util/rng.ts";
import { GGML, type Kv, modelToGguf, T, tensorBytes, type TensorOut, toBf16, writeGguf } from "./_gguf.ts";
import { evalCli, lastJson, runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, GGUF_PATH, MODEL_PATH, randomModel, tinyConfig, TOKENIZER_PATH } from "./_data.ts";
import { logitsOf } from "./_forward.ts";
import { maxAbsDiff } from "./_numeric.ts";

/** The model with every weight (not the norms) passed through `round`, as a 16-bit GGUF stores it. */
function rounded(model: LlamaModel, round: (v: Float32Array) => Float32Array): LlamaModel {
  const params = new ParamTable(model.params.entries, model.params.data.slice());
  for (const n of params.names()) if (params.shape(n).length === 2) params.get(n).set(round(params.get(n)));
  return { config: model.config, params, quantized: new Map() };
}

const fromBf16 = (v: Float32Array) => {
  const out = new Uint32Array(v.length);
  toBf16(v).forEach((h, i) => out[i] = h << 16);
  return new Float32Array(out.buffer);
};

async function stories(): Promise<{ model: LlamaModel; tokenizer: Llama2cTokenizer }> {
  const ck = await loadLlama2c(MODEL_PATH);
  const model = { config: ck.config, params: ck.params, quantized: new Map() };
  return { model, tokenizer: await Llama2cTokenizer.load(TOKENIZER_PATH, ck.config.vocabSize) };
}

/** Refused with a FormatError matching `re`, in under a second. */
function refuses(bytes: Uint8Array, re: RegExp): void {
  const start = performance.now();
  assert.throws(() => parseGgufModel(bytes, "bad.gguf"), (e) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, found ${e}`);
    assert.match((e as Error).message, /^bad\.gguf: /);
    assert.match((e as Error).message, re);
    return true;
  });
  const ms = performance.now() - start;
  assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
}

Deno.test("the fixture llama-2-tiny-random.gguf loads: config, tensors, the Llama 2 vocabulary", async () => {
  const bytes = await Deno.readFile(GGUF_PATH);
  const g = parseGguf(bytes, GGUF_PATH);
  assert.equal(g.version, 3);
  assert.equal(g.tensors.length, 12);
  assert.equal(g.alignment, 32);
  assert.equal(g.metadata.get("general.architecture"), "llama");
  assert.deepEqual(g.tensors.find((t) => t.name === "token_embd.weight")!.dims, [8, 32000]);
  const opened = await openModel(GGUF_PATH, { requireTokenizer: true });
  assert.equal(opened.format, "gguf");
  const c = opened.model.config;
  assert.deepEqual(
    [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen, c.sharedClassifier],
    [8, 32, 1, 2, 2, 32000, 4096, false],
  );
  assert.equal(c.normEps, 1e-5); // stored as the float32 9.99999974738e-6
  assert.equal(c.ropeTheta, 10000);
  assert.equal(opened.model.params.count, 2 * 32000 * 8 + 3 * 8 + 4 * 64 + 3 * 256);
  // The ids Llama 2's SentencePiece model gives this text ("▁Once" 9038, "▁upon" 2501, ...).
  const tok = opened.tokenizer!;
  assert.deepEqual(tok.encode("Once upon a time, there was", { bos: true }), [
    1,
    9038,
    2501,
    263,
    931,
    29892,
    727,
    471,
  ]);
  assert.equal(tok.decode(tok.encode("Hello wörld\n  tabs\t€")), "Hello wörld\n  tabs\t€");
  const logits = logitsOf(opened.model, [1, 9038, 2501, 263, 931]);
  assert.equal(logits.length, 5 * 32000);
  assert.ok(logits.every(Number.isFinite));
});

for (const version of [2, 3]) {
  Deno.test(`stories260K as GGUF v${version} F32 gives exactly its logits, perplexity and tokenizer`, async () => {
    const { model, tokenizer } = await stories();
    const bytes = modelToGguf(model.config, model.params, { tokenizer, version });
    await using tmp = await tempDir();
    const path = join(tmp.dir, "stories.gguf");
    await Deno.writeFile(path, bytes);
    const opened = await openModel(path, { requireTokenizer: true });
    assert.equal(opened.format, "gguf");
    assert.deepEqual(opened.model.config, model.config); // normEps 1e-5 from its float32
    assert.deepEqual(opened.model.params.data, model.params.data);
    assert.deepEqual(opened.tokenizer!.bytes, await Deno.readFile(TOKENIZER_PATH));
    assert.deepEqual(logitsOf(opened.model), logitsOf(model));
    const text = (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 6000);
    const ids = perplexityTokens((t) => tokenizer.encode(t), text);
    assert.deepEqual(perplexityTokens((t) => opened.tokenizer!.encode(t), text), ids);
    const want = await perplexity(new CpuSession(model), ids, { context: 256 });
    const got = await perplexity(new CpuSession(opened.model), ids, { context: 256 });
    assert.ok(want.windows >= 4);
    assert.equal(got.ppl, want.ppl);
  });
}

Deno.test("F16 and BF16 GGUF: exactly the logits of the weights rounded so, close to the original", async () => {
  const { model, tokenizer } = await stories();
  const text = (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 6000);
  const ids = perplexityTokens((t) => tokenizer.encode(t), text);
  const base = await perplexity(new CpuSession(model), ids, { context: 256 });
  for (
    const [type, round, tol] of [
      ["F16", (v: Float32Array) => fromF16(toF16(v)), 2e-3],
      ["BF16", fromBf16, 3e-2],
    ] as const
  ) {
    const loaded = parseGgufModel(modelToGguf(model.config, model.params, { tokenizer, type }), type);
    const ref = rounded(model, round);
    assert.deepEqual(loaded.params.data, ref.params.data, type);
    const logits = logitsOf({ ...loaded, quantized: new Map() });
    assert.deepEqual(logits, logitsOf(ref), type);
    const scale = Math.max(...logitsOf(model).map(Math.abs));
    assert.ok(maxAbsDiff(logits, logitsOf(model)) < tol * scale, type);
    const r = await perplexity(new CpuSession({ ...loaded, quantized: new Map() }), ids, { context: 256 });
    assert.ok(Math.abs(r.ppl / base.ppl - 1) < tol, `${type}: ppl ${r.ppl} vs ${base.ppl}`);
  }
});

Deno.test("unaligned (alignment 1) and wider (64) data sections load the same weights", () => {
  const model = randomModel(tinyConfig({ sharedClassifier: false }), 3);
  for (const alignment of [1, 8, 64]) {
    for (const type of ["F32", "F16"] as const) {
      const bytes = modelToGguf(model.config, model.params, { alignment, type });
      const g = parseGguf(bytes);
      assert.equal(g.alignment, alignment);
      assert.ok(g.tensors.every((t) => (t.offset - g.dataOffset) % alignment === 0));
      const back = parseGgufModel(bytes);
      assert.equal(back.config.sharedClassifier, false);
      assert.deepEqual(
        back.params.data,
        type === "F32" ? model.params.data : rounded(model, (v) => fromF16(toF16(v))).params.data,
      );
      assert.equal(back.tokenizer, undefined);
      assert.match(back.tokenizerProblem!, /no tokenizer/);
    }
  }
});

// ---------------------------------------------------------------------------------------------------
// Rotary layout. View a (rows, cols) matrix as (nH, a, b, cols), swap the middle axes: the Python reshapes.

function swapMiddle(w: Float32Array, nH: number, a: number, b: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < nH; h++) {
    for (let i = 0; i < a; i++) {
      for (let j = 0; j < b; j++) {
        const src = ((h * a + i) * b + j) * cols, dst = ((h * b + j) * a + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}
/** transformers' convert_llama_weights_to_hf.py: w.view(nH, hs/2, 2, cols).transpose(1, 2). */
const hfPermute = (w: Float32Array, nH: number, hs: number, cols: number) =>
  swapMiddle(w, nH, hs / 2, 2, cols);
/** llama.cpp's convert_hf_to_gguf.py LlamaModel.permute: w.reshape(nH, 2, hs/2, cols).swapaxes(1, 2). */
const ggufPermute = (w: Float32Array, nH: number, hs: number, cols: number) =>
  swapMiddle(w, nH, 2, hs / 2, cols);

/** Rotary as Hugging Face's rotate_half (llama.cpp's NEOX): pairs (j, j + hs/2), angle pos·θ^(−2j/hs). */
function ropeNeox(v: Float32Array, T: number, width: number, hs: number, theta: number): void {
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < width; h += hs) {
      for (let j = 0; j < hs / 2; j++) {
        const angle = t * (1 / Math.pow(theta, (2 * j) / hs));
        const o = t * width + h;
        const a = v[o + j], b = v[o + j + hs / 2];
        v[o + j] = a * Math.cos(angle) - b * Math.sin(angle);
        v[o + j + hs / 2] = a * Math.sin(angle) + b * Math.cos(angle);
      }
    }
  }
}

function withQk(model: LlamaModel, f: (w: Float32Array, nH: number) => Float32Array): LlamaModel {
  const c = model.config;
  const params = new ParamTable(model.params.entries, model.params.data.slice());
  for (let l = 0; l < c.nLayers; l++) {
    params.get(`layers.${l}.wq`).set(f(params.get(`layers.${l}.wq`), c.nHeads));
    params.get(`layers.${l}.wk`).set(f(params.get(`layers.${l}.wk`), c.nKvHeads));
  }
  return { config: c, params, quantized: new Map() };
}

Deno.test("rotary: llama.cpp's q/k permutation undoes Hugging Face's, and HF rows with rotate_half = ours", async () => {
  const { model } = await stories();
  const c: LlamaConfig = model.config;
  const hs = headSize(c);
  assert.ok(c.nKvHeads < c.nHeads, "stories260K has grouped-query attention: both head counts are exercised");
  for (let l = 0; l < c.nLayers; l++) {
    for (const [w, nH] of [["wq", c.nHeads], ["wk", c.nKvHeads]] as const) {
      const meta = model.params.get(`layers.${l}.${w}`);
      const hf = hfPermute(meta, nH, hs, c.dim);
      assert.notDeepEqual(hf, meta);
      assert.deepEqual(ggufPermute(hf, nH, hs, c.dim), meta);
    }
  }
  // Rotating adjacent pairs of Meta-order rows (ops.ts, llama2.c, llama.cpp's NORM) is rotating half-split
  // pairs of HF-order rows: the HF permutation is exactly the change between the two conventions.
  const rng = new Rng(5);
  const T = 7;
  const q = Float32Array.from({ length: T * c.dim }, () => rng.normal());
  const perRow = (v: Float32Array) => {
    const out = new Float32Array(v.length);
    for (let t = 0; t < T; t++) {
      out.set(hfPermute(v.subarray(t * c.dim, (t + 1) * c.dim), c.nHeads, hs, 1), t * c.dim);
    }
    return out;
  };
  const ours = q.slice();
  ropeForward(ours, T, c.dim, hs, 0, c.ropeTheta);
  const neox = perRow(q);
  ropeNeox(neox, T, c.dim, hs, c.ropeTheta);
  assert.ok(maxAbsDiff(perRow(ours), neox) < 1e-5);
});

Deno.test("rotary: an HF checkpoint converted as llama.cpp does loads to the original logits, unconverted it does not", async () => {
  const { model } = await stories();
  const c = model.config, hs = headSize(c);
  const hf = withQk(model, (w, nH) => hfPermute(w, nH, hs, c.dim)); // what an HF checkpoint holds
  const converted = withQk(hf, (w, nH) => ggufPermute(w, nH, hs, c.dim)); // what convert_hf_to_gguf writes
  const loaded = parseGgufModel(modelToGguf(c, converted.params));
  assert.deepEqual(logitsOf({ ...loaded, quantized: new Map() }), logitsOf(model));
  // Control: had the loader needed (or skipped) a permutation, the logits would be far off.
  const wrong = parseGgufModel(modelToGguf(c, hf.params));
  assert.ok(maxAbsDiff(logitsOf({ ...wrong, quantized: new Map() }), logitsOf(model)) > 0.1);
});

// ---------------------------------------------------------------------------------------------------
// Refusals.

const tinyKvs = (c: LlamaConfig): Kv[] => [
  { key: "general.architecture", type: T.str, value: "llama" },
  { key: "llama.context_length", type: T.u32, value: c.seqLen },
  { key: "llama.embedding_length", type: T.u32, value: c.dim },
  { key: "llama.block_count", type: T.u32, value: c.nLayers },
  { key: "llama.feed_forward_length", type: T.u32, value: c.hiddenDim },
  { key: "llama.attention.head_count", type: T.u32, value: c.nHeads },
  { key: "llama.attention.head_count_kv", type: T.u32, value: c.nKvHeads },
  { key: "llama.attention.layer_norm_rms_epsilon", type: T.f32, value: c.normEps },
];

/** A valid small model's tensors (F32), in file order, for editing. */
function tinyTensors(model: LlamaModel): TensorOut[] {
  const { params } = model;
  return params.names().map((n) => ({
    name: ggufTensorName(n),
    dims: [...params.shape(n)].reverse(),
    type: GGML.F32,
    data: tensorBytes(params.get(n), "F32"),
  }));
}

Deno.test("the small writer's file is valid (the base every refusal below edits)", () => {
  const model = randomModel(tinyConfig(), 2);
  const back = parseGgufModel(writeGguf(tinyKvs(model.config), tinyTensors(model)));
  assert.deepEqual(back.params.data, model.params.data);
});

Deno.test("refuses bad magic, versions 1 and 4, big-endian, truncation and impossible counts, fast", async () => {
  const good = await Deno.readFile(GGUF_PATH);
  const edit = (f: (v: DataView, b: Uint8Array) => void) => {
    const b = good.slice();
    f(new DataView(b.buffer), b);
    return b;
  };
  refuses(
    edit((_, b) => b.set([0x47, 0x47, 0x4d, 0x4c])),
    /bad magic: expected "GGUF" \(47 47 55 46\), found 47 47 4d 4c/,
  );
  refuses(new Uint8Array(0), /bad magic.*found an empty file/);
  refuses(good.subarray(0, 10), /shorter than the 24-byte GGUF header/);
  refuses(
    edit((v) => v.setUint32(4, 1, true)),
    /unsupported GGUF version 1: version 1 files .* not supported/,
  );
  refuses(edit((v) => v.setUint32(4, 4, true)), /unsupported GGUF version 4: .*reads 2 and 3/);
  refuses(edit((v) => v.setUint32(4, 3, false)), /big-endian/);
  refuses(edit((v) => v.setBigUint64(8, 2n ** 40n, true)), /tensor_count 1099511627776 cannot fit/);
  refuses(edit((v) => v.setBigUint64(16, 2n ** 40n, true)), /kv_count 1099511627776 cannot fit/);
  refuses(
    edit((v) => v.setBigUint64(8, 2n ** 63n, true)),
    /tensor_count at byte 8 is 9223372036854775808, beyond 2\^53/,
  );
  // Cut inside the metadata, inside the tensor infos, inside the data.
  refuses(good.subarray(0, 1000), /truncated|only \d+ (bytes )?remain/);
  refuses(good.subarray(0, 724000), /truncated|only \d+ (bytes )?remain/);
  refuses(good.subarray(0, good.length - 1), /tensor output\.weight .* ends past the file: .*truncated/);
});

Deno.test("refuses lengths past the end: a key, a string value, an array of 2^40 tokens", () => {
  const c = tinyConfig();
  const model = randomModel(c, 2);
  const kvs = [{ key: "general.name", type: T.str, value: "x" }, ...tinyKvs(c)];
  const base = writeGguf(kvs, tinyTensors(model));
  const patch = (at: number, v: bigint) => {
    const b = base.slice();
    new DataView(b.buffer).setBigUint64(at, v, true);
    return b;
  };
  refuses(patch(24, 60000n), /the key of metadata entry 0 at byte 24 claims 60000 bytes but only \d+ remain/);
  refuses(
    patch(24, 2n ** 40n),
    /key of metadata entry 0 at byte 24 claims 1099511627776 bytes \(expected at most 65535\)/,
  );
  // "general.name" (12 bytes) then its type: the value's length is at 24 + 8 + 12 + 4.
  refuses(
    patch(48, 1n << 30n),
    /metadata "general.name" at byte 48 claims 1073741824 bytes but only \d+ remain/,
  );
  const arr = writeGguf([
    { key: "tokenizer.ggml.scores", type: T.arr, elementType: T.f32, value: [0, 1] },
    ...tinyKvs(c),
  ], tinyTensors(model));
  const b = arr.slice();
  new DataView(b.buffer).setBigUint64(24 + 8 + 21 + 4 + 4, 2n ** 40n, true);
  refuses(b, /metadata "tokenizer.ggml.scores" at byte 61 claims 1099511627776 elements of type float32/);
  refuses(
    writeGguf([{ key: "x", type: 13, value: 0 }, ...tinyKvs(c)], tinyTensors(model)),
    /metadata "x" has unknown value type 13/,
  );
  refuses(
    writeGguf([{ key: "x", type: T.bool, value: 2 }, ...tinyKvs(c)], tinyTensors(model)),
    /metadata "x" .* is a bool with byte 2/,
  );
});

Deno.test("refuses tensor data out of range, overlapping, misaligned, and bad tensor infos", () => {
  const c = tinyConfig();
  const model = randomModel(c, 2);
  const with_ = (i: number, change: Partial<TensorOut>) => {
    const ts = tinyTensors(model);
    ts[i] = { ...ts[i], ...change };
    return writeGguf(tinyKvs(c), ts);
  };
  const ts = tinyTensors(model);
  const bytes = writeGguf(tinyKvs(c), ts);
  const g = parseGguf(bytes);
  const dataLen = bytes.length - g.dataOffset;
  // Out of range: written past the end, then the file cut back to where it should end.
  const far = with_(3, { offset: Math.ceil(dataLen / 32) * 32 + 64 });
  refuses(far.subarray(0, bytes.length), /tensor blk\.0\.attn_q\.weight .* ends past the file/);
  refuses(
    with_(2, { offset: g.tensors[1].offset - g.dataOffset }),
    /tensor blk\.1\.attn_norm\.weight \(data offset \d+\) overlaps tensor blk\.0\.attn_norm\.weight|blk\.0\.attn_norm\.weight .* overlaps tensor blk\.1\.attn_norm\.weight/,
  );
  refuses(
    with_(3, { offset: g.tensors[3].offset - g.dataOffset + 4 }),
    /tensor blk\.0\.attn_q\.weight starts at data offset \d+, not a multiple of the alignment 32/,
  );
  refuses(
    with_(3, { dims: [16, 16, 1, 1, 1] }),
    /tensor blk\.0\.attn_q\.weight has 5 dimensions \(expected 1\.\.4\)/,
  );
  refuses(with_(3, { dims: [16, 0] }), /tensor blk\.0\.attn_q\.weight has dimension 1 of size 0/);
  refuses(with_(3, { type: 99 }), /tensor blk\.0\.attn_q\.weight has unknown ggml type 99/);
  refuses(with_(3, { name: "token_embd.weight" }), /tensor name "token_embd\.weight" appears twice/);
  refuses(
    with_(3, { name: "x".repeat(64) }),
    /the name of tensor 3 at byte \d+ claims 64 bytes \(expected at most 63\)/,
  );
  // A tensor whose dims imply more than the file holds (2^62 elements): refused before anything is read.
  refuses(
    with_(3, { dims: [2 ** 31, 2 ** 31] }),
    /blk\.0\.attn_q\.weight \(F32, ne \[2147483648, 2147483648\], 18446744073709551616 bytes/,
  );
});

Deno.test("refuses a quantized tensor naming its type, and shapes, names or metadata that do not fit", () => {
  const c = tinyConfig({ dim: 32, hiddenDim: 64, nHeads: 4, nKvHeads: 2 });
  const model = randomModel(c, 4);
  const edit = (f: (ts: TensorOut[]) => void, kvs = tinyKvs(c)) => {
    const ts = tinyTensors(model);
    f(ts);
    return writeGguf(kvs, ts);
  };
  const q = (name: string) => (ts: TensorOut[]) => {
    const t = ts.find((t) => t.name === name)!;
    t.type = GGML.Q4_0;
    t.data = new Uint8Array((t.dims[0] * t.dims[1] / 32) * 18);
  };
  refuses(
    edit(q("blk.1.attn_q.weight")),
    /tensor blk\.1\.attn_q\.weight has type Q4_0: quantized GGUF tensors are not supported/,
  );
  refuses(
    edit((ts) => ts[3].dims = [32, 16]),
    /tensor blk\.0\.attn_q\.weight has shape \[16, 32\] \(ne \[32, 16\]\) but the config .* makes layers\.0\.wq \[32, 32\]/,
  );
  refuses(edit((ts) => ts.splice(5, 1)), /tensor blk\.0\.attn_k\.weight \(our layers\.0\.wk\) is missing/);
  refuses(
    edit((ts) => ts.push({ ...ts[1], name: "blk.2.attn_norm.weight" })),
    /tensor blk\.2\.attn_norm\.weight is not part of a 2-layer Llama model/,
  );
  refuses(
    edit((ts) => ts.push({ ...ts[1], name: "rope_freqs.weight" })),
    /tensor rope_freqs\.weight is not part/,
  );
  refuses(
    edit((ts) => new Float32Array(ts[1].data.buffer)[3] = NaN),
    /non-finite weight NaN in tensor blk\.0\.attn_norm\.weight at element 3/,
  );
  const kv = (
    key: string,
    type: number,
    value: unknown,
  ) => [...tinyKvs(c).filter((k) => k.key !== key), { key, type, value }];
  refuses(
    edit(() => {}, kv("general.architecture", T.str, "gpt2")),
    /general\.architecture is the string "gpt2"; this loader reads "llama" models only/,
  );
  refuses(
    edit(() => {}, kv("llama.block_count", T.str, "2")),
    /expected metadata llama\.block_count to be an integer, found the string "2"/,
  );
  refuses(
    edit(() => {}, kv("llama.block_count", T.u32, 3)),
    /tensor blk\.2\.attn_norm\.weight \(our layers\.2\.attention_norm\) is missing/,
  );
  refuses(
    edit(() => {}, kv("llama.attention.head_count", T.u32, 3)),
    /bad llama\.\* metadata: .*dim 32 is not divisible by nHeads 3/,
  );
  refuses(edit(() => {}, kv("llama.context_length", T.u64, 2n ** 40n)), /bad llama\.\* metadata: .*seqLen/);
  refuses(
    edit(() => {}, kv("llama.rope.dimension_count", T.u32, 4)),
    /llama\.rope\.dimension_count is 4 but the head size is 8/,
  );
  refuses(
    edit(() => {}, kv("llama.rope.scaling.type", T.str, "yarn")),
    /scaled rotary embeddings are not supported/,
  );
  refuses(edit(() => {}, kv("llama.expert_count", T.u32, 8)), /mixture-of-experts/);
  refuses(
    edit(() => {}, kv("general.alignment", T.u32, 24)),
    /general\.alignment is 24 \(expected a power of two\)/,
  );
});

Deno.test("a vocabulary the tokenizer cannot run leaves the model loadable and says why when text is needed", async () => {
  const { model, tokenizer } = await stories();
  await using tmp = await tempDir();
  const cases: [Kv, RegExp][] = [
    [
      { key: "tokenizer.ggml.model", type: T.str, value: "gpt2" },
      /tokenizer\.ggml\.model is the string "gpt2"/,
    ],
    [{ key: "tokenizer.ggml.bos_token_id", type: T.u32, value: 5 }, /BOS and EOS are tokens 5 and 2/],
  ];
  for (const [extra, re] of cases) {
    const path = join(tmp.dir, "m.gguf");
    await Deno.writeFile(path, modelToGguf(model.config, model.params, { tokenizer, extra: [extra] }));
    const opened = await openModel(path);
    assert.equal(opened.tokenizer, undefined);
    await assert.rejects(openModel(path, { requireTokenizer: true }), (e: Error) => {
      assert.match(e.message, /^No tokenizer for .*m\.gguf: /);
      assert.match(e.message, re);
      assert.match(e.message, /pass --tokenizer FILE/);
      return true;
    });
    // A tokenizer file given explicitly still works.
    const withTok = await openModel(path, { tokenizer: TOKENIZER_PATH, requireTokenizer: true });
    assert.equal(withTok.tokenizer!.vocabSize, 512);
  }
  const short = modelToGguf(model.config, model.params, {
    tokenizer,
    extra: [{ key: "tokenizer.ggml.scores", type: T.arr, elementType: T.f32, value: [1, 2] }],
  });
  refuses(short, /expected tokenizer\.ggml\.scores to be 512 float32 values, found an array of 2/);
});

Deno.test("CLI: generate, eval and inspect take the fixture", async () => {
  const gen = await runCli(["generate", "--model", GGUF_PATH, "--steps", "5", "--backend", "cpu", "--json"]);
  assert.equal(gen.code, 0, gen.stderr);
  const out = lastJson(gen.stdout);
  assert.equal(out.generatedTokens, 5);
  const r = await evalCli(GGUF_PATH, DEV_TEXT_PATH, { context: 64, maxWindows: 2, backend: "cpu" });
  assert.ok(r.ppl > 1000 && r.ppl < 1e6, `random weights over 32000 tokens: ppl ${r.ppl}`);
  const ins = await runCli(["inspect", GGUF_PATH, "--json"]);
  assert.equal(ins.code, 0, ins.stderr);
  const rep = lastJson(ins.stdout);
  assert.equal(rep.format, "gguf");
  assert.equal(rep.config.vocabSize, 32000);
  await using tmp = await tempDir();
  const cut = join(tmp.dir, "cut.gguf");
  await Deno.writeFile(cut, (await Deno.readFile(GGUF_PATH)).subarray(0, 800_000));
  const bad = await runCli(["inspect", cut]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr.trim(), /^error: .*cut\.gguf: tensor token_embd\.weight .* ends past the file/);
  assert.equal(bad.stderr.trim().split("\n").length, 1);
});

Deno.test("CLI: quantize --method ptq takes the fixture; the .rabit carries its vocabulary", async () => {
  await using tmp = await tempDir();
  const data = join(tmp.dir, "data.txt"), out = join(tmp.dir, "tiny.rabit");
  await Deno.writeTextFile(data, (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 20_000));
  const q = await runCli([
    "quantize",
    "--model",
    GGUF_PATH,
    "--method",
    "ptq",
    "--data",
    data,
    "--calib-tokens",
    "256",
    "--svid-rounds",
    "0",
    "--out",
    out,
    "--json",
  ]);
  assert.equal(q.code, 0, q.stderr);
  const packed = await openModel(out, { requireTokenizer: true });
  assert.equal(packed.model.quantized.size, 7);
  assert.equal(packed.tokenizer!.vocabSize, 32000);
  assert.deepEqual(packed.tokenizer!.encode("Once upon a time"), [9038, 2501, 263, 931]);
});
