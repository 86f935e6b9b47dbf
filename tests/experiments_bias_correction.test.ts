// experiments/bias_correction.ts: the bias wrapper's forward and its gradient against finite differences,
// each estimate's defining property on stories260K and a post-training k = 2 copy, and the script's JSON
// and refusals.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  BiasedLinear,
  fitLocal,
  fitResidual,
  fitTrained,
  klAndBiasGradients,
  spreadWindows,
  withBiases,
} from "../experiments/bias_correction.ts";
import { perplexityTokens } from "../src/eval/perplexity.ts";
import { openModel } from "../src/io/load_model.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import { DenseLinear } from "../src/model/linear.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { quantizeModel } from "../src/quant/quantize_model.ts";
import { klDivergence } from "../src/train/losses.ts";
import { runCli, runScript, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH } from "./_data.ts";

const { model: teacher, tokenizer } = await openModel(MODEL_PATH, { requireTokenizer: true });
const student = quantizeModel(teacher, { method: "ptq", paths: 2, precondition: 0, svidRounds: 0 }).model;
const story = (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 8000);
const ids = perplexityTokens((t) => tokenizer!.encode(t), story);
/** Four windows of 32 tokens: short, so that every test stays quick. */
const windows = spreadWindows(ids, 4, 32);

const meanKl = (model: LlamaModel) => {
  let sum = 0;
  for (const w of windows) {
    const s = forwardChunk(model, w, 0, createKvCache(model)).logits;
    const t = forwardChunk(teacher, w, 0, createKvCache(teacher)).logits;
    sum += klDivergence(s, t, w.length, teacher.config.vocabSize).loss;
  }
  return sum / windows.length;
};

Deno.test("BiasedLinear adds its bias to every row and passes dX through the wrapped layer", () => {
  const inner = new DenseLinear(new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3); // W (2, 3)
  const layer = new BiasedLinear(inner, new Float32Array([0.5, -1]));
  assert.deepEqual([...layer.forward(new Float32Array([1, 0, 0, 0, 1, 0]), 2)], [1.5, 3, 2.5, 4]);
  const dX = new Float32Array(6);
  layer.backward(new Float32Array(6), new Float32Array([1, 2, 3, 4]), 2, dX);
  assert.deepEqual([...dX], [9, 12, 15, 19, 26, 33]); // dY (2, 2) · W
  assert.deepEqual([...layer.dBias], [4, 6]); // Σ_t dY
});

Deno.test("the biases' gradients of the KL match central finite differences on stories260K", () => {
  const { model, layers } = withBiases(student);
  const window = windows[1];
  const target = forwardChunk(teacher, window, 0, createKvCache(teacher)).logits;
  const kl = () =>
    klDivergence(
      forwardChunk(model, window, 0, createKvCache(model)).logits,
      target,
      window.length,
      teacher.config.vocabSize,
    ).loss;
  klAndBiasGradients(model, layers.values(), window, target);
  for (
    const [name, o] of [["layers.0.wq", 3], ["layers.2.w2", 0], ["layers.4.wo", 7], [
      "layers.3.w1",
      100,
    ]] as const
  ) {
    const layer = layers.get(name)!;
    const want = layer.dBias[o], e = 1e-3;
    layer.bias[o] = e;
    const up = kl();
    layer.bias[o] = -e;
    const down = kl();
    layer.bias[o] = 0;
    const fd = (up - down) / (2 * e);
    assert.ok(
      Math.abs(fd - want) <= 0.03 * Math.abs(want) + 2e-5,
      `${name}[${o}]: fd ${fd}, backward ${want}`,
    );
  }
});

Deno.test("every estimate gives zero biases when the student is the teacher", () => {
  const dense = new Map([...student.quantized.keys()].map((n) => {
    const [out, inF] = teacher.params.shape(n);
    return [n, new DenseLinear(teacher.params.get(n), out, inF)];
  }));
  const copy: LlamaModel = { ...teacher, quantized: dense };
  for (const fit of [fitLocal, fitResidual]) {
    for (const layer of fit(copy, teacher, windows).quantized.values()) {
      for (const b of (layer as BiasedLinear).bias) assert.ok(Math.abs(b) < 1e-5, `${fit.name}: ${b}`);
    }
  }
  // At the KL's minimum the gradient is zero: Adam's first steps move a bias by about the lr, no more.
  for (const layer of fitTrained(copy, teacher, windows, { steps: 2, lr: 1e-3 }).quantized.values()) {
    for (const b of (layer as BiasedLinear).bias) assert.ok(Math.abs(b) <= 2e-3, `trained: ${b}`);
  }
});

Deno.test("residual: every block's mean output drift from the teacher is zero on the windows", () => {
  const fitted = fitResidual(student, teacher, windows);
  const D = teacher.config.dim;
  for (let l = 0; l < teacher.config.nLayers; l++) {
    const drift = new Float64Array(D);
    let rows = 0;
    for (const w of windows) {
      const ht = forwardChunk(teacher, w, 0, createKvCache(teacher), { keepHidden: true }).hidden![l];
      const hs = forwardChunk(fitted, w, 0, createKvCache(fitted), { keepHidden: true }).hidden![l];
      for (let i = 0; i < ht.length; i++) drift[i % D] += ht[i] - hs[i];
      rows += w.length;
    }
    for (const d of drift) assert.ok(Math.abs(d / rows) < 1e-4, `block ${l}: ${d / rows}`);
  }
});

Deno.test("trained: the biases lower the KL on the windows they are fitted to", () => {
  const before = meanKl(student);
  const after = meanKl(fitTrained(student, teacher, windows, { steps: 8, lr: 3e-3 }));
  assert.ok(after < before, `${after} vs ${before}`);
});

Deno.test("spreadWindows spaces the windows over the tokens, BOS first, and refuses a text too short", () => {
  const tokens = Array.from({ length: 41 }, (_, i) => i + 1);
  assert.deepEqual(spreadWindows(tokens, 2, 4), [[1, 2, 3, 4], [1, 22, 23, 24]]);
  assert.throws(() => spreadWindows(tokens, 11, 4), /expected 11 windows of 4 tokens, found 41 tokens/);
});

Deno.test("bias_correction.ts prints its three estimates as JSON and refuses bad calls", async () => {
  await using tmp = await tempDir();
  const model = `${tmp.dir}/ptq.rabit`, text = `${tmp.dir}/t.txt`;
  await Deno.writeTextFile(text, (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 12000));
  const q = await runCli(["quantize", "--method", "ptq", "--calib-tokens", "256", "--out", model]);
  assert.equal(q.code, 0, q.stderr);
  const script = fileURLToPath(new URL("../experiments/bias_correction.ts", import.meta.url));
  const base = [model, text, "--holdout", "0.5", "--windows", "1", "--steps", "2"];
  const args = [...base, "--calib-windows", "1"];
  const r = await runScript(script, [...args, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(report.rows.map((row: { estimate: string }) => row.estimate), [
    "local",
    "residual",
    "trained",
  ]);
  for (const row of report.rows) {
    assert.ok(row.ppl > 1 && Number.isFinite(row.ratio) && row.kl > 0, JSON.stringify(row));
  }
  assert.ok(report.studentKl > 0);
  const one = await runScript(script, [...args, "--estimates", "trained", "--json"]);
  assert.equal(one.code, 0, one.stderr);
  const trained = JSON.parse(one.stdout.trim().split("\n").at(-1)!).rows;
  assert.deepEqual(trained, [report.rows[2]]); // the same fit, alone

  for (
    const [extra, reason] of [
      [["--calib-windows", "1", "--lr", "2"], /--lr expects a number in \(0, 1\), found "2"/],
      [["--calib-windows", "0"], /--calib-windows expects an integer ≥ 1/],
      [["--calib-windows", "50"], /the trained part: expected 50 windows of 512 tokens/],
      [["--calib-windows", "1", "--calib-windows=2"], /--calib-windows given twice; give it once/],
      [
        ["--calib-windows", "1", "--estimates", "trained,global"],
        /--estimates expects some of local, residual, trained, found "global"/,
      ],
    ] as const
  ) {
    const bad = await runScript(script, [...base, ...extra]);
    assert.equal(bad.code, 2, `${extra.join(" ")}: ${bad.stderr}`);
    assert.match(bad.stderr, reason);
  }
});
