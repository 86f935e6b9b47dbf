// Whole-model inference on the WebAssembly SIMD backend against the CPU reference on the real model: golden
// greedy text, perplexity, and a post-training-quantized k = 2 model (packed kernels, both table variants).

import assert from "node:assert/strict";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { createSession } from "../src/backend/create.ts";
import { WasmSession } from "../src/backend/wasm/session.ts";
import { generate } from "../src/eval/generate.ts";
import { perplexity } from "../src/eval/perplexity.ts";
import { openModel } from "../src/io/load_model.ts";
import { quantizeModel } from "../src/quant/quantize_model.ts";
import { DEV_TEXT_PATH, GOLDEN_GREEDY, MODEL_PATH } from "./_data.ts";

const opened = await openModel(MODEL_PATH, { requireTokenizer: true });
const tokenizer = opened.tokenizer!;
const ids = [1, ...tokenizer.encode((await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 12000))];
const packed = quantizeModel(opened.model, { method: "ptq", paths: 2, precondition: 0 }).model;

Deno.test("wasm greedy decoding gives the golden tokens and equals the CPU backend for 256 steps", async () => {
  const a = await generate(new WasmSession(opened.model), tokenizer, { steps: 256 });
  const b = await generate(new CpuSession(opened.model), tokenizer, { steps: 256 });
  assert.deepEqual(a.generated.slice(0, GOLDEN_GREEDY.length), GOLDEN_GREEDY);
  assert.ok(a.text.startsWith("Once upon a time, there was a little girl named Lily."), a.text);
  assert.deepEqual(a.generated, b.generated);
});

Deno.test("wasm perplexity of the float model agrees with the CPU backend to 1e-3 (fp32 and fp16 storage)", async () => {
  const c = await perplexity(new CpuSession(opened.model), ids, { context: 128, maxWindows: 3 });
  const w = await perplexity(new WasmSession(opened.model), ids, { context: 128, maxWindows: 3 });
  assert.ok(Math.abs(w.ppl / c.ppl - 1) < 1e-3, `wasm ${w.ppl} vs cpu ${c.ppl}`);
  // fp16 storage rounds the weights (relative 2^-11), which moves perplexity by far less than 1e-3.
  const h = await perplexity(new WasmSession(opened.model, { denseStorage: "f16" }), ids, {
    context: 128,
    maxWindows: 3,
  });
  assert.ok(Math.abs(h.ppl / c.ppl - 1) < 1e-3, `wasm fp16 ${h.ppl} vs cpu ${c.ppl}`);
});

// The f32 and int16 tables match the reference to float rounding or near it: perplexity within 1e-3 (int16:
// entries rounded to 1/65534 of their block's largest). The int8 tables round every entry to 1/254 of it:
// each packed layer's output moves by ~0.6 % RMS of its scale (tests/wasm_kernels.test.ts), independently per
// layer and token, and log-likelihoods by a few 1e-3 (measured 0.4 % here; −1.2e-3..+1.8e-3 over 8 windows of
// 256 for blocks of 1..8 words): within 1e-2. Greedy tokens stay the CPU's with all three.
Deno.test("wasm on a PTQ k = 2 model: the same greedy tokens as the CPU backend, perplexity close", async () => {
  const want = await generate(new CpuSession(packed), tokenizer, { steps: 128 });
  const c = await perplexity(new CpuSession(packed), ids, { context: 128, maxWindows: 3 });
  for (const [packedTables, tolerance] of [["i16", 1e-3], ["i8", 1e-2], ["f32", 1e-3]] as const) {
    const session = new WasmSession(packed, { packedTables });
    const got = await generate(session, tokenizer, { steps: 128 });
    assert.deepEqual(got.generated, want.generated, packedTables);
    const w = await perplexity(session, ids, { context: 128, maxWindows: 3 });
    assert.ok(Math.abs(w.ppl / c.ppl - 1) < tolerance, `${packedTables}: wasm ${w.ppl} vs cpu ${c.ppl}`);
  }
});

Deno.test("wasm prefill in one chunk equals token-by-token decoding", async () => {
  const prompt = [1, ...tokenizer.encode("Lily and Ben went to the park to play.")];
  const V = opened.model.config.vocabSize;
  for (const model of [opened.model, packed]) {
    const batched = await new WasmSession(model).run(prompt, 0);
    const stepper = new WasmSession(model);
    for (let p = 0; p < prompt.length; p++) {
      const one = await stepper.run([prompt[p]], p, { lastOnly: true });
      const row = batched.subarray(p * V, (p + 1) * V);
      // Exactly equal for the int8 tables too: a token's tables and sums do not depend on its neighbours.
      for (let i = 0; i < V; i++) assert.ok(Math.abs(one[i] - row[i]) < 1e-4, `pos ${p} logit ${i}`);
    }
  }
});

Deno.test("WasmSession.create with worker threads gives the same logits as one thread, and stops them", async () => {
  const threaded = await WasmSession.create(packed, { threads: 2 });
  try {
    assert.equal(threaded.threads, 2);
    const prompt = [1, ...tokenizer.encode("Once upon a time")];
    assert.deepEqual(await threaded.run(prompt, 0), await new WasmSession(packed).run(prompt, 0));
  } finally {
    threaded.dispose();
  }
  assert.equal(threaded.threads, 0);
  // By default no workers start for a model whose products are all too small to split.
  const small = await WasmSession.create(packed);
  assert.equal(small.threads, 1);
  small.dispose();
});

Deno.test("wasm session refuses bad tokens and positions, and use after dispose", async () => {
  const session = new WasmSession(opened.model);
  await assert.rejects(session.run([600], 0), /Token id 600 at position 0 is outside the vocabulary 0..511/);
  await assert.rejects(session.run([1, 2], 511), /exceed the cache length 512/);
  await assert.rejects(session.run([], 0), /at least one token/);
  session.dispose();
  await assert.rejects(session.run([1], 0), /used after dispose/);
});

Deno.test("createSession --backend wasm opens a WasmSession; auto never picks the reference when wasm runs", async () => {
  const notices: string[] = [];
  const s = await createSession(packed, { backend: "wasm", onNotice: (l) => notices.push(l) });
  assert.equal(s.backend, "wasm");
  s.dispose();
  const a = await createSession(packed, { backend: "auto", onNotice: (l) => notices.push(l) });
  assert.ok(a.backend === "webgpu" || a.backend === "wasm", a.backend);
  a.dispose();
});
