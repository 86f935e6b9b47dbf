// Int8 storage of the vocabulary tensors (token embedding, classifier) with per-row scales: the codes and
// their reference product, the wasm kernel against it on ragged shapes, the .rabit round trip and its
// refusals, and the real model on the CPU and wasm backends (same greedy text, perplexity close to fp32).

import assert from "node:assert/strict";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { WasmKernels } from "../src/backend/wasm/kernels.ts";
import { WasmSession } from "../src/backend/wasm/session.ts";
import { generate } from "../src/eval/generate.ts";
import { perplexity } from "../src/eval/perplexity.ts";
import { openModel } from "../src/io/load_model.ts";
import { parseRabit, serializeRabit } from "../src/io/rabit_format.ts";
import { matmul } from "../src/model/ops.ts";
import {
  dequantizeRowsInt8,
  Int8RowsLinear,
  quantizeRowsInt8,
  validateInt8Rows,
} from "../src/quant/int8_rows.ts";
import { Rng } from "../src/util/rng.ts";
import { DEV_TEXT_PATH, MODEL_PATH, randomModel, tinyConfig } from "./_data.ts";
import { relativeError } from "./_numeric.ts";

const SHAPES: [number, number][] = [[1, 1], [3, 5], [17, 33], [37, 53], [64, 64], [100, 300], [19, 1041]];

function randomMatrix(rng: Rng, n: number): Float32Array {
  return new Float32Array(n).map(() => rng.normal() * (rng.next() < 0.01 ? 8 : 1)); // a few outliers
}

Deno.test("int8 rows: codes within half a step of every value, symmetric range, exact re-quantization", () => {
  const rng = new Rng(3);
  for (const [out, inF] of SHAPES) {
    const w = randomMatrix(rng, out * inF);
    const rows = quantizeRowsInt8(w, out, inF);
    validateInt8Rows(rows, "test");
    const back = dequantizeRowsInt8(rows);
    for (let r = 0; r < out; r++) {
      let max = 0;
      for (let c = 0; c < inF; c++) max = Math.max(max, Math.abs(w[r * inF + c]));
      assert.ok(
        Math.abs(rows.scales[r] * 127 - max) <= 1e-6 * max,
        `row ${r}: scale ${rows.scales[r]} max ${max}`,
      );
      for (let c = 0; c < inF; c++) {
        const i = r * inF + c;
        assert.ok(rows.q[i] >= -127 && rows.q[i] <= 127);
        assert.ok(Math.abs(back[i] - w[i]) <= rows.scales[r] * 0.5 * (1 + 1e-6), `(${r}, ${c})`);
      }
    }
    // A file stores codes and scales; the loaded model holds the dequantized values, whose codes are the same.
    assert.deepEqual(quantizeRowsInt8(back, out, inF).q, rows.q);
  }
});

Deno.test("int8 rows: an all-zero row has scale 0; NaN, Inf and wrong sizes are refused", () => {
  const rows = quantizeRowsInt8(new Float32Array([0, 0, 1, -2]), 2, 2);
  assert.deepEqual([...rows.q], [0, 0, 64, -127]);
  assert.equal(rows.scales[0], 0);
  assert.throws(() => quantizeRowsInt8(new Float32Array([1, NaN]), 1, 2), /row 0 column 1 is NaN/);
  assert.throws(() => quantizeRowsInt8(new Float32Array([Infinity, 1]), 1, 2), /finite/);
  assert.throws(() => quantizeRowsInt8(new Float32Array(5), 2, 2), /expected 2x2=4 values, found 5/);
  assert.throws(
    () => validateInt8Rows({ out: 2, in: 2, q: new Int8Array(4), scales: new Float32Array([1, -1]) }, "w"),
    /row scale 1 is -1/,
  );
});

Deno.test("Int8RowsLinear equals the dense product of the dequantized matrix to float rounding", () => {
  const rng = new Rng(5);
  for (const [out, inF] of SHAPES) {
    const rows = quantizeRowsInt8(randomMatrix(rng, out * inF), out, inF);
    const layer = new Int8RowsLinear(rows);
    for (const T of [1, 3]) {
      const x = randomMatrix(rng, T * inF);
      const want = matmul(x, dequantizeRowsInt8(rows), T, inF, out);
      assert.ok(relativeError(layer.forward(x, T), want) < 1e-5, `${out}x${inF} T=${T}`);
    }
  }
  assert.throws(() =>
    new Int8RowsLinear(quantizeRowsInt8(new Float32Array(4), 2, 2)).forward(new Float32Array(3), 1)
  );
});

/**
 * x is rounded to int16 per token (steps of max|x| / 32767), so output (t, r) moves by at most
 * s_r · Σ_c |q_rc| · max|x_t| / 65534, plus float rounding; asserts every output within that bound.
 */
function assertWithinInt16Bound(
  got: Float32Array,
  want: Float32Array,
  rows: ReturnType<typeof quantizeRowsInt8>,
  x: Float32Array,
  T: number,
  what: string,
): void {
  const { out, in: inF } = rows;
  for (let t = 0; t < T; t++) {
    let maxX = 0;
    for (let c = 0; c < inF; c++) maxX = Math.max(maxX, Math.abs(x[t * inF + c]));
    for (let r = 0; r < out; r++) {
      let l1 = 0;
      for (let c = 0; c < inF; c++) l1 += Math.abs(rows.q[r * inF + c]);
      const bound = rows.scales[r] * l1 * maxX / 65534 * 1.01 + 1e-6 * Math.abs(want[t * out + r]) + 1e-30;
      const d = Math.abs(got[t * out + r] - want[t * out + r]);
      assert.ok(d <= bound, `${what}: (${t}, ${r}) off by ${d}, bound ${bound}`);
    }
  }
}

Deno.test("wasm int8 product (int16 activations) stays within its rounding bound, one thread and two", async () => {
  const rng = new Rng(7);
  const one = WasmKernels.create();
  const two = await WasmKernels.load({ threads: 2 });
  try {
    for (const [out, inF] of [...SHAPES, [1030, 2000] as [number, number]]) {
      const rows = quantizeRowsInt8(randomMatrix(rng, out * inF), out, inF);
      const ref = new Int8RowsLinear(rows);
      const a = one.int8Rows(rows), b = two.int8Rows(rows);
      for (const T of [1, 2, 5]) {
        const x = randomMatrix(rng, T * inF);
        const want = ref.forward(x, T);
        const got = a.forward(x, T);
        assertWithinInt16Bound(got, want, rows, x, T, `${out}x${inF} T=${T}`);
        assert.ok(relativeError(got, want) < 3e-4, `${out}x${inF} T=${T}: ${relativeError(got, want)}`);
        assert.deepEqual(b.forward(x, T), got, `threads ${out}x${inF}`);
      }
    }
    // A zero input gives zeros (its token scale is 0), a non-finite one NaN rather than a wrong number.
    const rows = quantizeRowsInt8(randomMatrix(rng, 8 * 16), 8, 16);
    assert.deepEqual([...one.int8Rows(rows).forward(new Float32Array(16), 1)], new Array(8).fill(0));
    const bad = new Float32Array(16).fill(1);
    bad[3] = Infinity;
    assert.ok(one.int8Rows(rows).forward(bad, 1).every((v) => Number.isNaN(v)));
  } finally {
    two.dispose();
  }
});

Deno.test(".rabit with i8 vocabulary tensors: round trip, classifierStorage, smaller file, refusals", () => {
  for (const shared of [true, false]) {
    const config = tinyConfig({ dim: 40, hiddenDim: 72, sharedClassifier: shared });
    const model = randomModel(config, 11);
    const file = { model, method: "none", options: {}, metadata: {} };
    const dtypes: Record<string, "i8"> = shared
      ? { tok_embeddings: "i8" }
      : { tok_embeddings: "i8", output: "i8" };
    const bytes = serializeRabit({ ...file, dtypes });
    const back = parseRabit(bytes, "mem.rabit");
    assert.equal(back.model.classifierStorage, "i8");
    for (const name of Object.keys(dtypes)) {
      assert.equal(back.dtypes[name], "i8");
      const [out, inF] = model.params.shape(name);
      const want = dequantizeRowsInt8(quantizeRowsInt8(model.params.get(name), out, inF));
      assert.deepEqual(back.model.params.get(name), want, name);
    }
    assert.equal(back.dtypes["norm"], "f32");
    // Writing what was read gives the same bytes; the vocabulary tensors take about a quarter of f32's.
    assert.deepEqual(serializeRabit(back), bytes);
    const f32Bytes = serializeRabit(file).length;
    const vocab = config.vocabSize * config.dim * (shared ? 1 : 2);
    // 3 bytes saved per value, less 4 per row of scales and a little MessagePack framing.
    assert.ok(
      f32Bytes - bytes.length >= 3 * vocab - 8 * config.vocabSize - 200,
      `${f32Bytes} vs ${bytes.length}`,
    );
    // Only a classifier stored as int8 makes sessions use their int8 kernel.
    if (!shared) {
      const embOnly = parseRabit(serializeRabit({ ...file, dtypes: { tok_embeddings: "i8" } }), "m");
      assert.equal(embOnly.model.classifierStorage, undefined);
    }
  }
  const model = randomModel(tinyConfig({ dim: 40, hiddenDim: 72 }), 12);
  assert.throws(
    () => serializeRabit({ model, method: "none", options: {}, metadata: {}, dtypes: { norm: "i8" } }),
    /dtypes\["norm"\] is "i8", which only tok_embeddings and output may use/,
  );
});

const opened = await openModel(MODEL_PATH, { requireTokenizer: true });
const tokenizer = opened.tokenizer!;
const ids = [1, ...tokenizer.encode((await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 12000))];

Deno.test("stories260K with an int8 classifier: CPU and wasm agree, greedy text kept, perplexity within 1 %", async () => {
  const c = opened.model.config;
  const bytes = serializeRabit({
    model: opened.model,
    tokenizerBytes: tokenizer.bytes,
    method: "none",
    options: {},
    metadata: {},
    dtypes: c.sharedClassifier ? { tok_embeddings: "i8" } : { tok_embeddings: "i8", output: "i8" },
  });
  const int8 = parseRabit(bytes, "int8.rabit").model;
  assert.equal(int8.classifierStorage, "i8");
  const cpu = new CpuSession(int8), wasm = new WasmSession(int8);
  assert.match(wasm.device, /int8 classifier/);
  const base = await perplexity(new CpuSession(opened.model), ids, { context: 128, maxWindows: 3 });
  const pc = await perplexity(cpu, ids, { context: 128, maxWindows: 3 });
  const pw = await perplexity(wasm, ids, { context: 128, maxWindows: 3 });
  assert.ok(Math.abs(pw.ppl / pc.ppl - 1) < 1e-3, `wasm ${pw.ppl} vs cpu ${pc.ppl}`);
  assert.ok(Math.abs(pc.ppl / base.ppl - 1) < 1e-2, `int8 ${pc.ppl} vs fp32 ${base.ppl}`);
  assert.notEqual(pc.ppl, base.ppl); // the codes do change the model
  const a = await generate(cpu, tokenizer, { steps: 64 });
  const b = await generate(wasm, tokenizer, { steps: 64 });
  assert.deepEqual(b.generated, a.generated);
  assert.ok(a.text.startsWith("Once upon a time"), a.text);
});
