// experiments/learn_rotation.ts: dL/dQ against central finite differences (the rotated model's loss as a
// smooth function of any matrix Q, without quantization), the orthogonal invariance that leaves an
// unquantized model no skew direction, the Cayley step's orthogonality and descent, and the script's output
// file and refusals.

import assert from "node:assert/strict";
import {
  binarizeBlockLinears,
  cayleyStep,
  rotatedStudentLoss,
  skewDirection,
} from "../experiments/learn_rotation.ts";
import { orthogonalMatrix, rotateResidual } from "../experiments/rotate_residual.ts";
import { loadLlama2c } from "../src/io/llama2c.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import { runScript, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH, randomModel, tinyConfig } from "./_data.ts";
import { logitsOf } from "./_forward.ts";
import { maxAbsDiff } from "./_numeric.ts";

const windows = [[1, 5, 9, 2, 30, 7, 7, 11], [1, 3, 3, 4, 20, 21, 8, 2, 17]];

/** A student model and the logits of another random model as the target, so the KL is far from its minimum. */
function setup(sharedClassifier: boolean) {
  const config = tinyConfig({ sharedClassifier });
  const model = randomModel(config, 4);
  const other = randomModel(config, 9);
  const targets = windows.map((ids) => forwardChunk(other, ids, 0, createKvCache(other, ids.length)).logits);
  return { model, targets, d: config.dim };
}

const orthogonalityError = (q: Float64Array, d: number) => {
  let worst = 0;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += q[i * d + k] * q[j * d + k];
      worst = Math.max(worst, Math.abs(dot - (i === j ? 1 : 0)));
    }
  }
  return worst;
};

Deno.test("rotatedStudentLoss: dL/dQ matches central finite differences (shared and unshared classifier)", () => {
  for (const sharedClassifier of [true, false]) {
    const { model, targets, d } = setup(sharedClassifier);
    const q = orthogonalMatrix(d, "random", 5);
    const opts = { k: 2, rounds: 0, quantize: false };
    const { grad } = rotatedStudentLoss(model, q, windows, targets, { ...opts, wantGrad: true });
    const h = 1e-3;
    for (const [i, j] of [[0, 0], [3, 7], [15, 2], [8, 8], [11, 14]]) {
      const at = (delta: number) => {
        const moved = q.slice();
        moved[i * d + j] += delta;
        return rotatedStudentLoss(model, moved, windows, targets, opts).kl;
      };
      const numeric = (at(h) - at(-h)) / (2 * h);
      const analytic = grad![i * d + j];
      assert.ok(
        Math.abs(numeric - analytic) <= 2e-3 * Math.max(1, Math.abs(numeric)),
        `shared ${sharedClassifier} (${i}, ${j}): numeric ${numeric}, analytic ${analytic}`,
      );
    }
  }
});

Deno.test("without quantization the loss is the same for every orthogonal Q, so the skew direction vanishes", () => {
  const { model, targets, d } = setup(false);
  const q = orthogonalMatrix(d, "hadamard", 2);
  const opts = { k: 2, rounds: 0, quantize: false };
  const { kl, grad } = rotatedStudentLoss(model, q, windows, targets, { ...opts, wantGrad: true });
  const identityKl = rotatedStudentLoss(model, orthogonalMatrix(d, "none", 0), windows, targets, opts).kl;
  assert.ok(Math.abs(kl - identityKl) < 1e-5, `${kl} against ${identityKl}`);
  const a = skewDirection(grad!, q, d);
  const norm = (m: Float64Array) => Math.sqrt(m.reduce((s, v) => s + v * v, 0));
  assert.ok(norm(grad!) > 1e-2, `the Euclidean gradient is not zero: ${norm(grad!)}`);
  assert.ok(norm(a) < 1e-4 * norm(grad!), `skew ${norm(a)} against gradient ${norm(grad!)}`);
  // With the block linears binarized the loss does depend on Q, and the skew direction is not zero.
  const quantized = rotatedStudentLoss(model, q, windows, targets, { k: 2, rounds: 0, wantGrad: true });
  assert.ok(norm(skewDirection(quantized.grad!, q, d)) > 1e-3 * norm(quantized.grad!));
});

Deno.test("cayleyStep keeps Q orthogonal and descends a linear loss along the skew direction", () => {
  const d = 16;
  let q = orthogonalMatrix(d, "random", 7);
  const c = orthogonalMatrix(d, "random", 8).map((v, i) => v + (i % 5) * 0.1); // L(Q) = Σ C ⊙ Q, G = C
  const loss = (m: Float64Array) => m.reduce((s, v, i) => s + v * c[i], 0);
  for (let step = 0; step < 20; step++) {
    const a = skewDirection(c, q, d);
    const norm = Math.sqrt(a.reduce((s, v) => s + v * v, 0));
    const next = cayleyStep(q, a.map((v) => v / norm), 0.05, d);
    assert.ok(loss(next) < loss(q), `step ${step}: ${loss(next)} ≥ ${loss(q)}`);
    q = next;
  }
  assert.ok(orthogonalityError(q, d) < 1e-10, `QQᵀ − I: ${orthogonalityError(q, d)}`);
});

Deno.test("binarizeBlockLinears leaves two sign planes' values in every block linear and the norms alone", () => {
  const model = randomModel(tinyConfig(), 3);
  const params = model.params.zerosLike();
  params.data.set(model.params.data);
  binarizeBlockLinears(model.config, params, 1, 0);
  // k = 1: every row of a rank-one-scaled sign matrix has |W[r][c]| = g[r]·h[c], so |W| has rank one.
  const w = params.get("layers.1.w1"), [rows, cols] = params.entry("layers.1.w1").shape;
  for (let r = 1; r < rows; r++) {
    const ratio = Math.abs(w[r * cols]) / Math.abs(w[0]);
    for (let col = 1; col < cols; col++) {
      assert.ok(Math.abs(Math.abs(w[r * cols + col]) / Math.abs(w[col]) - ratio) < 1e-4 * ratio);
    }
  }
  assert.deepEqual(params.get("layers.0.attention_norm"), model.params.get("layers.0.attention_norm"));
  assert.ok(maxAbsDiff(params.get("layers.0.wq"), model.params.get("layers.0.wq")) > 1e-3);
});

Deno.test("learn_rotation.ts writes a rotated stories260K with the original's logits, and refuses bad calls", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.dir}/learned.bin`;
  const small = { steps: "2", batch: "1", window: "32", windows: "2" };
  const argsWith = (over: Record<string, string>) => [
    MODEL_PATH,
    DEV_TEXT_PATH,
    out,
    ...Object.entries({ ...small, ...over }).flatMap(([name, value]) => [`--${name}`, value]),
  ];
  const { code, stdout, stderr } = await runScript("experiments/learn_rotation.ts", [
    ...argsWith({}),
    "--json",
  ]);
  assert.equal(code, 0, stderr);
  const result = JSON.parse(stdout);
  assert.equal(result.trace.length, 2);
  assert.ok(result.checkKlStart > 0 && Number.isFinite(result.checkKlEnd));
  const original = await loadLlama2c(MODEL_PATH), learned = await loadLlama2c(out);
  const tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376];
  const a = logitsOf({ ...original, quantized: new Map() }, tokens);
  const b = logitsOf({ ...learned, quantized: new Map() }, tokens);
  assert.ok(maxAbsDiff(a, b) < 1e-3, `max |Δlogit| ${maxAbsDiff(a, b)}`);
  // The rotation moved: the binarized layers see another matrix than the norm-folded original's.
  const folded = rotateResidual(original.config, original.params, orthogonalMatrix(64, "none", 0));
  assert.ok(maxAbsDiff(folded.params.get("layers.0.wq"), learned.params.get("layers.0.wq")) > 1e-4);
  // --start pca begins from the principal axes of the sampled windows (rotate_residual.ts's pca), then learns.
  const pca = await runScript("experiments/learn_rotation.ts", [
    ...argsWith({ start: "pca", steps: "1" }),
    "--json",
  ]);
  assert.equal(pca.code, 0, pca.stderr);
  assert.equal(JSON.parse(pca.stdout).start, "pca");
  const fromPca = await loadLlama2c(out);
  assert.ok(maxAbsDiff(a, logitsOf({ ...fromPca, quantized: new Map() }, tokens)) < 1e-3);
  assert.ok(maxAbsDiff(learned.params.get("layers.0.wq"), fromPca.params.get("layers.0.wq")) > 1e-2);
  const refused: [string[], RegExp][] = [
    [argsWith({ start: "spin" }), /--start: expected none or pca, found spin/],
    [argsWith({ lr: "0" }), /--lr: expected a number in \(0, 1\), found 0/],
    [argsWith({ window: "4096" }), /--window 4096 exceeds the model's seq_len 512/],
    [argsWith({ batch: "3" }), /--batch 3 is more than --windows 2/],
    [argsWith({ steps: "1.5" }), /--steps: expected an integer ≥ 1, found 1.5/],
    [argsWith({ windows: "100000" }), /gives \d+ windows of 32 tokens, fewer than 2 × --windows 100000/],
    [[...argsWith({}), "--steps", "3"], /--steps given twice; give it once/],
    [argsWith({ rotation: "pca" }), /Unknown option '--rotation'/],
  ];
  for (const [args, message] of refused) {
    const bad = await runScript("experiments/learn_rotation.ts", args);
    assert.equal(bad.code, 2, args.join(" "));
    assert.match(bad.stderr, message);
    assert.match(bad.stderr, /usage: learn_rotation\.ts/);
  }
  const missing = await runScript("experiments/learn_rotation.ts", [MODEL_PATH, out]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /expected MODEL, TEXT and OUT\.bin, found 2 arguments/);
});
