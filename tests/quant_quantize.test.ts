// quantizeLayer dispatch: each method returns a valid layer whose reported error is the real one.

import assert from "node:assert/strict";
import { quantizeLayer } from "../src/quant/quantize.ts";
import { relativeError } from "../src/quant/matrix.ts";
import { validateResidualBinary } from "../src/quant/residual_binary.ts";
import { residualInit } from "../src/quant/residual_init.ts";
import { rtn2 } from "../src/quant/rtn.ts";
import { roundThroughF16 } from "../src/util/fp16.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("quantizeLayer: ptq / rtn2 / dbllm give valid layers, fp16 scales by default, true errors", () => {
  const rng = new Rng(61);
  const out = 48, inF = 64;
  const w = rng.normals(out * inF);
  const shape = { out, in: inF };
  const ptq = quantizeLayer(w, shape, { method: "ptq", k: 3, rounds: 2 });
  const r2 = quantizeLayer(w, shape, { method: "rtn2" });
  const db = quantizeLayer(w, shape, { method: "dbllm" });
  for (const { layer, stats } of [ptq, r2, db]) {
    validateResidualBinary(layer);
    assert.deepEqual(roundThroughF16(layer.g), layer.g);
    assert.deepEqual(roundThroughF16(layer.h), layer.h);
    assert.equal(stats.relError, relativeError(w, layer));
    assert.equal(stats.k, layer.k);
    assert.ok(Math.abs(stats.bitsPerWeight - (layer.k + (16 * layer.k * (out + inF)) / (out * inF))) < 1e-12);
  }
  assert.equal(ptq.stats.k, 3);
  assert.equal(ptq.stats.init?.preconditionedErrors.length, 3);
  assert.ok(Math.abs(ptq.stats.relError - ptq.stats.init!.relError) < 2e-3);
  assert.equal(db.stats.step?.length, out);
  assert.ok(db.stats.relError < r2.stats.relError);
});

Deno.test("quantizeLayer with fp16Scales: false returns the unrounded fits", () => {
  const rng = new Rng(62);
  const w = rng.normals(20 * 30);
  const shape = { out: 20, in: 30 };
  const a = quantizeLayer(w, shape, { method: "ptq", k: 2, fp16Scales: false }).layer;
  assert.deepEqual(a.g, residualInit(w, shape, { k: 2 }).layer.g);
  const b = quantizeLayer(w, shape, { method: "rtn2", fp16Scales: false }).layer;
  assert.deepEqual(b.g, rtn2(w, shape).g);
});
