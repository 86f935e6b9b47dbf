// Calibration statistics and whole-model quantization on the real model.

import assert from "node:assert/strict";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import { openModel } from "../src/io/load_model.ts";
import { calibrate, calibrationWindows } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize_model.ts";
import { linearNames } from "../src/model/params.ts";
import { dequantize } from "../src/quant/residual_binary.ts";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity } from "../src/eval/perplexity.ts";
import { DEV_TEXT_PATH, MODEL_PATH } from "./_data.ts";

const opened = await openModel(MODEL_PATH, { requireTokenizer: true });
const text = (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 20000);
const ids = [1, ...opened.tokenizer!.encode(text)];

Deno.test("calibration windows come from the end of the text and start with BOS", () => {
  const wins = calibrationWindows(ids, 256, 64);
  assert.equal(wins.length, 4);
  assert.ok(wins.every((w) => w.length === 64 && w[0] === 1));
  assert.deepEqual(wins[3].slice(1), ids.slice(ids.length - 63));
  assert.throws(() => calibrationWindows(ids.slice(0, 10), 256, 64), /fewer than one window of 64/);
});

Deno.test("s_in is the RMS of each linear's input channels; s_out is positive and finite", () => {
  const wins = calibrationWindows(ids, 128, 64);
  const stats = calibrate(opened.model, wins);
  assert.deepEqual([...stats.keys()], linearNames(opened.model.config));
  // Recompute s_in of layers.2.w2 (input = silu(w1 x) ⊙ w3 x) directly from the forward's activations.
  const hidden = opened.model.config.hiddenDim;
  const sum = new Float64Array(hidden);
  let rows = 0;
  for (const w of wins) {
    const T = w.length - 1;
    const { activations } = forwardChunk(
      opened.model,
      w.slice(0, T),
      0,
      createKvCache(opened.model, w.length),
      {
        keepActivations: true,
      },
    );
    const x = activations!.blocks[2].hAct;
    for (let i = 0; i < x.length; i++) sum[i % hidden] += x[i] ** 2;
    rows += T;
  }
  const sIn = stats.get("layers.2.w2")!.sIn;
  for (let c = 0; c < hidden; c++) {
    assert.ok(Math.abs(sIn[c] - Math.sqrt(sum[c] / rows)) < 1e-4 * (1 + sIn[c]));
  }
  for (const s of stats.values()) {
    assert.ok(s.sOut.every((v) => Number.isFinite(v) && v > 0));
    assert.ok(s.sIn.every((v) => Number.isFinite(v) && v >= 0));
  }
});

Deno.test("quantizeModel binarizes exactly the block linears and more paths fit better", async () => {
  const stats = calibrate(opened.model, calibrationWindows(ids, 128, 64));
  const errs: number[] = [];
  const ppls: number[] = [];
  for (const k of [1, 2, 3]) {
    const q = quantizeModel(opened.model, { method: "ptq", paths: k, stats });
    assert.deepEqual([...q.model.quantized.keys()], linearNames(opened.model.config));
    assert.ok(!q.model.params.has("layers.0.wq") && q.model.params.has("tok_embeddings"));
    const layer = q.model.quantized.get("layers.0.w1")!;
    assert.equal(dequantize(layer).length, layer.out * layer.in);
    errs.push(q.layers.reduce((a, l) => a + l.relError, 0));
    ppls.push((await perplexity(new CpuSession(q.model), ids, { context: 128, maxWindows: 4 })).ppl);
  }
  assert.ok(errs[0] > errs[1] && errs[1] > errs[2], `${errs}`);
  assert.ok(ppls[0] > ppls[1] && ppls[1] > ppls[2], `${ppls}`);
  assert.throws(() => quantizeModel(opened.model, { method: "ptq" }), /needs calibration statistics/);
});
