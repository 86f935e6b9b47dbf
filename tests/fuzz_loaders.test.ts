// Loaders that hold: seeded mutations of valid llama2.c models, tokenizers, .rabit files, training
// checkpoints, safetensors exports and GGUF models are each accepted or refused with the loader's own error
// within a second, and the headers that used to exhaust memory (a million layers, dim 65,536) are refused
// at once by the file's length.

import assert from "node:assert/strict";
import { FormatError } from "../src/io/errors.ts";
import { parseLlama2c } from "../src/io/llama2c.ts";
import { parseRabit } from "../src/io/rabit_format.ts";
import { parseCheckpoint } from "../src/train/checkpoint.ts";
import { parseGgufModel } from "../src/io/gguf.ts";
import {
  buildTarget,
  formatFailure,
  FORMATS,
  isLoaderError,
  makeCase,
  runFuzz,
  withBody,
} from "./fuzz_util.ts";
import { MODEL_PATH, randomModel, tinyConfig } from "./_data.ts";
import { modelToGguf, T } from "./_gguf.ts";

/** Inputs per format here; `deno task fuzz` runs 10,000. */
const COUNT = 500;

for (const format of FORMATS) {
  Deno.test(`fuzz ${format}: ${COUNT} mutated files, each accepted or refused with the loader's own error in < 1 s`, async () => {
    const target = await buildTarget(format);
    const s = runFuzz(target, { count: COUNT, seed: 1 });
    assert.equal(s.inputs, COUNT);
    assert.equal(
      s.failures.length,
      0,
      `${s.failures.length} failures:\n${s.failures.slice(0, 5).map(formatFailure).join("\n")}`,
    );
    assert.ok(
      s.refused > COUNT / 2,
      `only ${s.refused} of ${COUNT} refused: are the mutations reaching the loader?`,
    );
    assert.ok(s.slowestMs < 1000, `slowest input took ${s.slowestMs.toFixed(0)} ms: ${s.slowestMutation}`);
  });
}

Deno.test("fuzz cases are reproducible from (seed, index) alone", async () => {
  const target = await buildTarget("rabit");
  for (const index of [0, 7, 123]) {
    const a = makeCase(target, 5, index), b = makeCase(target, 5, index);
    assert.equal(a.mutation, b.mutation);
    assert.deepEqual(a.bytes, b.bytes);
  }
  assert.notEqual(makeCase(target, 5, 1).mutation, makeCase(target, 6, 1).mutation);
});

Deno.test("the loader-error predicate refuses engine errors", () => {
  assert.ok(isLoaderError(new FormatError("f", "truncated: expected 10 bytes, found 3")));
  assert.ok(
    isLoaderError(new RangeError("Invalid model config: expected dim to be a positive integer, found 0")),
  );
  assert.ok(!isLoaderError(new RangeError("Array buffer allocation failed")));
  assert.ok(!isLoaderError(new RangeError("Invalid typed array length: 4294967296")));
  assert.ok(!isLoaderError(new RangeError("Offset is outside the bounds of the DataView")));
  assert.ok(!isLoaderError(new TypeError("Cannot read properties of undefined (reading 'reduce')")));
  assert.ok(!isLoaderError(new Error("plain error")));
});

/** The real 1 MB legacy stories260K.bin with one header field (int32 index `field`) replaced. */
async function realWith(field: number, value: number): Promise<Uint8Array> {
  const bytes = await Deno.readFile(MODEL_PATH);
  new DataView(bytes.buffer).setInt32(4 * field, value, true);
  return bytes;
}

/** Asserts that `parse` refuses within `ms` milliseconds with a FormatError matching `re`. */
function refusedFast(parse: () => unknown, re: RegExp, ms = 1000): void {
  const start = performance.now();
  assert.throws(parse, (e) => e instanceof FormatError && re.test(e.message));
  const took = performance.now() - start;
  assert.ok(took < ms, `refused after ${took.toFixed(0)} ms`);
}

Deno.test("a 1 MB llama2.c file claiming 1,048,576 layers is refused at once by its length", async () => {
  const bytes = await realWith(2, 1 << 20);
  assert.ok(bytes.byteLength < 1.1e6);
  refusedFast(
    () => parseLlama2c(bytes, "m.bin"),
    /^m\.bin: truncated: the header \(legacy, dim 64, .*1048576 layers.*\) implies \d+ bytes, found 1056540/,
  );
});

Deno.test("a 1 MB llama2.c file claiming dim 65,536 is refused at once by its length", async () => {
  const bytes = await realWith(0, 1 << 16);
  refusedFast(
    () => parseLlama2c(bytes, "m.bin"),
    /^m\.bin: truncated: the header \(legacy, dim 65536, .*found 1056540/,
  );
  // Also in the v1 layout, whose header is checked the same way.
  const v1 = new Uint8Array(1 << 20);
  const view = new DataView(v1.buffer);
  [0x616b3432, 1, 64, 172, 5, 8, 4, 512, 512].forEach((v, i) => view.setInt32(4 * i, v, true));
  for (const [field, value] of [[2, 1 << 20], [0, 1 << 16]]) {
    view.setInt32(8 + 4 * field, value, true);
    refusedFast(() => parseLlama2c(v1, "v1.bin"), /^v1\.bin: truncated: the header \(v1, .*found 1048576/);
    view.setInt32(8 + 4 * field, field === 2 ? 5 : 64, true);
  }
});

Deno.test("headers beyond the loaders' limits are refused with what was expected and found", async () => {
  refusedFast(() => parseLlama2c(new Uint8Array(20)), /file is 20 bytes, shorter than any llama2.c header/);
  const neg = await realWith(2, -1);
  refusedFast(
    () => parseLlama2c(neg, "m"),
    /bad header: .*expected nLayers to be a positive integer, found -1/,
  );
  const big = await realWith(6, 0x7fffffff);
  refusedFast(
    () => parseLlama2c(big, "m"),
    /bad header: .*expected seqLen to be a positive integer, found 2147483647/,
  );
  const long = await realWith(6, (1 << 20) + 2);
  refusedFast(
    () => parseLlama2c(long, "m"),
    /bad header: seqLen 1048578 is beyond the loader's limit of 1048576/,
  );
  const rabitStart = new Uint8Array([0x52, 0x41, 0x42, 0x49, 0x54, 0, 0, 0, 1, 0]);
  refusedFast(() => parseRabit(rabitStart, "r"), /r: truncated: expected at least 24 bytes, found 10/);
  refusedFast(() => parseCheckpoint(new Uint8Array(30), "c"), /c: not a checkpoint file/);
});

Deno.test(".rabit and checkpoint files whose config or layout claims gigabytes are refused at once", async () => {
  const rabit = (await buildTarget("rabit")).seeds[0].bytes;
  for (const [key, value] of [["nLayers", 1 << 20], ["dim", 1 << 16], ["vocabSize", 1 << 24]] as const) {
    const bytes = withBody(rabit, (b) => (b.config as Record<string, number>)[key] = value);
    refusedFast(
      () => parseRabit(bytes, "r"),
      /^r: the config \(.*\) with 3 binarized layers needs at least \d+ bytes of tensors .* the file is \d+ bytes/,
    );
  }
  const seqLen = withBody(rabit, (b) => (b.config as Record<string, number>).seqLen = 1 << 24);
  refusedFast(() => parseRabit(seqLen, "r"), /bad config: seqLen 16777216 is beyond the loader's limit/);

  const ck = (await buildTarget("checkpoint")).seeds[0].bytes;
  const huge = withBody(ck, (b) => (b.layout as [string, number[]][])[0][1] = [1 << 20, 1 << 16]);
  refusedFast(
    () => parseCheckpoint(huge, "c"),
    /^c: the layout holds 68719476784 values, so params and m need 549755814272 bytes, but the file is \d+ bytes/,
  );
  const step = withBody(ck, (b) => b.step = 1 << 20);
  refusedFast(
    () => parseCheckpoint(step, "c"),
    /expected log\.losses to be an array of at least 1048576 numbers/,
  );
});

// Found by the GGUF fuzzer: the parameter list was built from llama.block_count before any size check, so
// a 37 KB file claiming 2^20 layers took seconds and gigabytes (2^24, the config limit, exhausted memory).
Deno.test("a small GGUF whose llama.block_count claims 2^20 or 2^24 layers is refused at once", () => {
  const model = randomModel(tinyConfig(), 61);
  for (const [type, value] of [[T.u32, 1 << 20], [T.u64, 1n << 24n]] as const) {
    const bytes = modelToGguf(model.config, model.params, {
      extra: [{ key: "llama.block_count", type, value }],
    });
    refusedFast(
      () => parseGgufModel(bytes, "g"),
      new RegExp(
        `^g: the config \\(dim 16, .*, ${value} layers, .*\\) has \\d+ parameters, ` +
          ".* data section has \\d+ bytes",
      ),
    );
  }
});

Deno.test("the GGUF mutators reach the header, metadata, tensor-directory and model checks", async () => {
  const target = await buildTarget("gguf");
  const messages: string[] = [];
  for (let index = 0; index < 300; index++) {
    try {
      target.parse(makeCase(target, 2, index).bytes);
    } catch (e) {
      messages.push((e as Error).message);
    }
  }
  const checks = [
    /tensor_count \d+ cannot fit|kv_count \d+ cannot fit/,
    /beyond 2\^53/,
    /claims \d+ (bytes|elements)/,
    /unknown value type/,
    /appears twice/,
    /has \d+ dimensions \(expected 1\.\.4\)/,
    /unknown ggml type|not a multiple of its block/,
    /general\.alignment is/,
    /not a multiple of the alignment/,
    /overlaps tensor/,
    /ends past the file/,
    /is missing|is not part of/,
    /non-finite weight/,
  ];
  const missed = checks.filter((re) => !messages.some((m) => re.test(m)));
  assert.deepEqual(missed, [], `no refusal of ${messages.length} matched ${missed.join(", ")}`);
});
