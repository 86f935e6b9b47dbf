// The int8 classifier on WebGPU: the i8 GEMV and GEMM against quant/int8_rows.ts's reference on the
// issue's ragged shapes (and an h too wide for a uniform binding), uploadModel's classifier storage, and a
// session on stories260K with `classifierStorage: "i8"` against the CPU forward with the int8 classifier:
// logits (prefill and decode) and greedy tokens.
// Fails (does not skip) without a WebGPU adapter: CI has llvmpipe.

import assert from "node:assert/strict";
import { createStorageBuffer, readF32, requestGpu } from "../src/backend/webgpu/device.ts";
import {
  DEFAULT_GEMM_GEOMETRY,
  DEFAULT_GEMV_GEOMETRY,
  FALLBACK_GEMM_GEOMETRY,
  FALLBACK_GEMV_GEOMETRY,
  type GpuLinear,
  MatmulEngine,
  type MatmulGeometry,
  uploadLinear,
} from "../src/backend/webgpu/matmul.ts";
import { uploadModel } from "../src/backend/webgpu/weights.ts";
import { WebGpuSession } from "../src/backend/webgpu/session.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import { classifierWeight } from "../src/model/model.ts";
import { ParamTable } from "../src/model/params.ts";
import { dequantizeRowsInt8, Int8RowsLinear, quantizeRowsInt8 } from "../src/quant/int8_rows.ts";
import type { PackedModel } from "../src/quant/residual_binary.ts";
import { openModel } from "../src/io/load_model.ts";
import { argmax } from "../src/eval/sampling.ts";
import { Rng } from "../src/util/rng.ts";
import { MODEL_PATH } from "./_data.ts";
import { relativeError } from "./_numeric.ts";

const ctx = await requestGpu();
if (!ctx) throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; ENGINEERING.md §1)");
const rng = new Rng(7);

/** y (T, out) = x (T, in) through `lin` with `geo`, x at element offset `xOff` of a UNIFORM-usage buffer. */
async function product(
  engine: MatmulEngine,
  lin: GpuLinear,
  x: Float32Array,
  T: number,
  geo: MatmulGeometry,
  xOff = 0,
): Promise<Float32Array> {
  const xData = new Float32Array(Math.ceil((xOff + x.length) / 4) * 4 + 4).fill(NaN);
  xData.set(x, xOff);
  const xb = createStorageBuffer(ctx!, "x", xData, GPUBufferUsage.UNIFORM);
  const yb = createStorageBuffer(ctx!, "y", T * lin.out * 4);
  try {
    const enc = ctx!.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    engine.encodeWith(pass, lin, { buffer: xb, offset: xOff }, { buffer: yb }, T, geo);
    pass.end();
    ctx!.device.queue.submit([enc.finish()]);
    return await readF32(ctx!, yb, T * lin.out);
  } finally {
    xb.destroy();
    yb.destroy();
  }
}

Deno.test("i8 GEMV and GEMM equal Int8RowsLinear on (h ⊙ x) within 1e-4 on ragged shapes", async () => {
  const engine = await MatmulEngine.create(ctx);
  const shapes = [[37, 53], [100, 300], [512, 64], [1001, 17], [3, 16_400]]; // the last: h in storage
  for (const [out, inF] of shapes) {
    const w = rng.normals(out * inF);
    const rows = quantizeRowsInt8(w, out, inF);
    const h = rng.normals(inF).map((v) => 1 + 0.3 * v);
    const lin = uploadLinear(ctx, `i8:${out}x${inF}`, { kind: "i8", rows, h });
    assert.equal(lin.hF32 !== undefined, inF * 4 <= ctx.limits.maxUniformBufferBindingSize);
    const ref = new Int8RowsLinear(rows);
    for (const T of [1, 5, 33]) {
      if (inF > 10_000 && T > 5) continue;
      const x = rng.normals(T * inF);
      const want = ref.forward(x.map((v, i) => v * h[i % inF]), T);
      const geos = T === 1
        ? [DEFAULT_GEMV_GEOMETRY, FALLBACK_GEMV_GEOMETRY]
        : [DEFAULT_GEMM_GEOMETRY, FALLBACK_GEMM_GEOMETRY];
      for (const geo of geos) {
        for (const xOff of [0, 3]) { // aligned (uniform x for a GEMV, vec4 x) and misaligned (scalar x)
          const got = await product(engine, lin, x, T, geo, xOff);
          const e = relativeError(got, want);
          assert.ok(e <= 1e-4, `${out}x${inF} T=${T} ${JSON.stringify(geo)} x at ${xOff}: error ${e}`);
        }
      }
    }
    lin.destroy();
  }
});

const opened = await openModel(MODEL_PATH);

/** stories260K with its classifier stored as int8: params hold the dequantized values (as a loader does). */
function int8ClassifierModel(): PackedModel {
  const m = opened.model, c = m.config;
  const params = new ParamTable(m.params.entries, m.params.data.slice());
  const model: PackedModel = { ...m, params, classifierStorage: "i8" };
  const w = classifierWeight(model);
  w.set(dequantizeRowsInt8(quantizeRowsInt8(w, c.vocabSize, c.dim)));
  return model;
}

Deno.test("the dequantized classifier gives back its int8 codes exactly", () => {
  const c = opened.model.config;
  const first = quantizeRowsInt8(classifierWeight(opened.model), c.vocabSize, c.dim);
  const model = int8ClassifierModel();
  const again = quantizeRowsInt8(classifierWeight(model), c.vocabSize, c.dim);
  assert.deepEqual(again.q, first.q);
  // Scales come back within one f32 ulp (max / 127 after s · 127 rounds); the codes do not move.
  for (let r = 0; r < c.vocabSize; r++) {
    const s = first.scales[r];
    assert.ok(Math.abs(again.scales[r] - s) <= s * 2 ** -23, `row ${r}: ${again.scales[r]} vs ${s}`);
  }
});

Deno.test("uploadModel stores the classifier as int8 for an i8 model, or as classifierDtype says", () => {
  const model = int8ClassifierModel();
  const c = model.config;
  const cases: [PackedModel, Parameters<typeof uploadModel>[2], string][] = [
    [model, {}, "i8"],
    [model, { denseDtype: "f16" }, "i8"],
    [model, { classifierDtype: "f16" }, "f16"],
    [opened.model, {}, "f32"],
    [opened.model, { denseDtype: "f16" }, "f16"],
    [opened.model, { classifierDtype: "i8" }, "i8"],
  ];
  for (const [m, options, kind] of cases) {
    const w = uploadModel(ctx, m, options);
    try {
      assert.equal(w.classifier.kind, kind, JSON.stringify(options));
      if (kind === "i8") {
        // codes (16 columns per vec4<u32>) + f32 row scales + f32 h, padded to the codes' columns
        const padded = Math.ceil(c.dim / 16) * 16;
        assert.equal(w.classifier.bytes, c.vocabSize * padded + c.vocabSize * 4 + padded * 4);
      }
    } finally {
      w.dispose();
    }
  }
});

Deno.test("a WebGPU session with an int8 classifier matches the CPU forward with Int8RowsLinear", async () => {
  const model = int8ClassifierModel();
  const c = model.config;
  const classifier = new Int8RowsLinear(quantizeRowsInt8(classifierWeight(model), c.vocabSize, c.dim));
  const session = await WebGpuSession.create(model, { ctx });
  try {
    assert.equal(session.weights.classifier.kind, "i8");
    // Prefill (GEMM after a unit-weight norm, the norm weight in h) of a 20-token prompt: every row.
    const prompt = [1, ...Array.from({ length: 19 }, () => 2 + rng.int(c.vocabSize - 2))];
    const cache = createKvCache(model);
    const want = forwardChunk(model, prompt, 0, cache, { classifier }).logits;
    const got = await session.run(prompt, 0);
    assert.ok(relativeError(got, want) <= 1e-3, `prefill logits: error ${relativeError(got, want)}`);
    // Greedy decoding (GEMV with the norm fused) from that prompt: logits and tokens.
    let gpuToken = argmax(got.subarray((prompt.length - 1) * c.vocabSize));
    let cpuToken = argmax(want.subarray((prompt.length - 1) * c.vocabSize));
    const gpuTokens = [gpuToken], cpuTokens = [cpuToken];
    for (let pos = prompt.length; pos < prompt.length + 40; pos++) {
      const g = await session.run([gpuToken], pos, { lastOnly: true });
      const w = forwardChunk(model, [cpuToken], pos, cache, { classifier, lastLogitsOnly: true }).logits;
      if (gpuToken === cpuToken) {
        assert.ok(relativeError(g, w) <= 1e-3, `decode logits at ${pos}: error ${relativeError(g, w)}`);
      }
      gpuToken = argmax(g);
      cpuToken = argmax(w);
      gpuTokens.push(gpuToken);
      cpuTokens.push(cpuToken);
    }
    assert.deepEqual(gpuTokens, cpuTokens);
  } finally {
    session.dispose();
  }
});
