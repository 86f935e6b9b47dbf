// Golden end-to-end tests on the real model: greedy tokens and the pinned perplexity.

import assert from "node:assert/strict";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { generate } from "../src/eval/generate.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { openModel } from "../src/io/load_model.ts";
import { DEV_TEXT_PATH, GOLDEN_GREEDY, MODEL_PATH } from "./_data.ts";

const opened = await openModel(MODEL_PATH, { requireTokenizer: true });
const tokenizer = opened.tokenizer!;

Deno.test("greedy decoding from BOS gives the known tokens and text", async () => {
  const r = await generate(new CpuSession(opened.model), tokenizer, { steps: GOLDEN_GREEDY.length });
  assert.deepEqual(r.generated, GOLDEN_GREEDY);
  assert.ok(r.text.startsWith("Once upon a time, there was a little girl named Lily."), r.text);
});

Deno.test("prompted greedy continues with the known next token", async () => {
  const r = await generate(new CpuSession(opened.model), tokenizer, { prompt: "Once upon a time", steps: 1 });
  assert.deepEqual(r.ids, [1, 403, 407, 261, 378, 432]);
});

Deno.test("chunked prefill equals token-by-token decoding", async () => {
  const ids = [1, ...tokenizer.encode("Lily and Ben went to the park to play.")];
  const V = opened.model.config.vocabSize;
  const batched = await new CpuSession(opened.model).run(ids, 0);
  const stepper = new CpuSession(opened.model);
  for (let p = 0; p < ids.length; p++) {
    const one = await stepper.run([ids[p]], p, { lastOnly: true });
    const row = batched.subarray(p * V, (p + 1) * V);
    for (let i = 0; i < V; i++) assert.ok(Math.abs(one[i] - row[i]) < 1e-4, `pos ${p} logit ${i}`);
  }
});

Deno.test("perplexity of stories260K on tinystories_dev.txt at context 512 is pinned", async () => {
  const text = await Deno.readTextFile(DEV_TEXT_PATH);
  const ids = perplexityTokens((t) => tokenizer.encode(t), text);
  const r = await perplexity(new CpuSession(opened.model), ids, { context: 512 });
  assert.equal(r.tokens, 234796);
  assert.equal(r.windows, 458);
  assert.equal(r.predicted, 458 * 511);
  // Independent float64 implementation: 4.7433 (ENGINEERING.md §2); float32 agrees to ~1e-4 relative.
  assert.equal(r.ppl.toFixed(4), "4.7433");
  assert.ok(Math.abs(r.nll - 1.55674) < 2e-4, `mean NLL ${r.nll}`);
});
