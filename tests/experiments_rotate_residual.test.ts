// experiments/rotate_residual.ts: its matrices are orthogonal, the rotated model computes the original's
// logits (norms folded, classifier unshared; shared and unshared classifiers, grouped-query attention, and
// the real stories260K), and the script writes a llama2.c file that loads back to the same function.

import assert from "node:assert/strict";
import { orthogonalMatrix, principalAxes, rotateResidual } from "../experiments/rotate_residual.ts";
import { loadLlama2c } from "../src/io/llama2c.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import { runScript, tempDir } from "./_cli.ts";
import { MODEL_PATH, randomModel, tinyConfig } from "./_data.ts";
import { logitsOf } from "./_forward.ts";
import { maxAbsDiff } from "./_numeric.ts";

Deno.test("orthogonalMatrix: QQᵀ = I for hadamard, random and none; hadamard refuses a dim not a power of two", () => {
  for (const kind of ["hadamard", "random", "none"] as const) {
    for (const dim of [1, 8, 64]) {
      const q = orthogonalMatrix(dim, kind, 3);
      for (let i = 0; i < dim; i++) {
        for (let j = 0; j < dim; j++) {
          let dot = 0;
          for (let k = 0; k < dim; k++) dot += q[i * dim + k] * q[j * dim + k];
          assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-12, `${kind} dim ${dim} (${i}, ${j}): ${dot}`);
        }
      }
    }
  }
  // A rotation, not the identity: every entry of a Hadamard matrix is ±1/√dim.
  assert.ok(orthogonalMatrix(16, "hadamard", 1).every((v) => Math.abs(Math.abs(v) - 0.25) < 1e-15));
  assert.throws(() => orthogonalMatrix(12, "hadamard", 1), /dim must be a power of two, found 12/);
});

Deno.test("rotateResidual keeps the logits of random models (shared and unshared classifier, GQA)", () => {
  const tokens = [1, 5, 9, 2, 30, 7, 7, 11];
  for (const sharedClassifier of [true, false]) {
    const model = randomModel(tinyConfig({ sharedClassifier }), 4);
    const before = logitsOf(model, tokens);
    for (const kind of ["hadamard", "random", "none"] as const) {
      const rotated = rotateResidual(model.config, model.params, orthogonalMatrix(16, kind, 2));
      assert.equal(rotated.config.sharedClassifier, false);
      assert.ok(rotated.params.get("norm").every((v) => v === 1));
      const after = logitsOf({ ...rotated, quantized: new Map() }, tokens);
      assert.ok(maxAbsDiff(before, after) < 1e-4, `${kind}, shared ${sharedClassifier}`);
      if (kind !== "none") {
        // The weights the quantizer sees do change.
        assert.ok(maxAbsDiff(model.params.get("layers.0.wq"), rotated.params.get("layers.0.wq")) > 0.1);
      }
    }
  }
});

Deno.test("principalAxes: orthogonal, and the rotated model's normed inputs have a diagonal, descending moment", () => {
  const model = randomModel(tinyConfig({ sharedClassifier: false }), 6);
  const windows = [[1, 5, 9, 2, 30, 7, 7, 11], [1, 3, 3, 4, 20, 21, 8, 2]];
  const d = model.config.dim, q = principalAxes(model, windows);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += q[k * d + i] * q[k * d + j];
      assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-9);
    }
  }
  // In the rotated model (norms at 1) the normed inputs r' = r·Q: their moment over the same sites is diag(λ).
  const rotated = { ...rotateResidual(model.config, model.params, q), quantized: new Map() };
  const m = new Float64Array(d * d);
  let rows = 0;
  for (const ids of windows) {
    const a = forwardChunk(rotated, ids, 0, createKvCache(rotated, ids.length), { keepActivations: true })
      .activations!;
    for (const x of [...a.blocks.flatMap((b) => [b.xnAtt, b.xnFfn]), a.xnFinal]) {
      for (let t = 0; t < x.length / d; t++, rows++) {
        for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m[i * d + j] += x[t * d + i] * x[t * d + j];
      }
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      if (i !== j) assert.ok(Math.abs(m[i * d + j] / rows) < 1e-4, `(${i}, ${j}): ${m[i * d + j] / rows}`);
    }
    if (i > 0) assert.ok(m[i * d + i] <= m[(i - 1) * d + i - 1] + 1e-6, `λ ${i} ascends`);
  }
});

Deno.test("rotate_residual.ts writes stories260K rotated: same logits after a llama2.c round trip", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.dir}/rotated.bin`;
  const { code, stdout, stderr } = await runScript("experiments/rotate_residual.ts", [MODEL_PATH, out]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /residual stream rotated \(hadamard, seed 1\)/);
  const original = await loadLlama2c(MODEL_PATH), rotated = await loadLlama2c(out);
  const tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376];
  const a = logitsOf({ ...original, quantized: new Map() }, tokens);
  const b = logitsOf({ ...rotated, quantized: new Map() }, tokens);
  assert.ok(maxAbsDiff(a, b) < 1e-3, `max |Δlogit| ${maxAbsDiff(a, b)}`);
  const refused = [
    [["--rotation", "spin"], /--rotation: expected hadamard, random, none or pca, found spin/],
    [["--rotation", "pca"], /--text is needed by --rotation pca, and only by it/],
    [["--text", MODEL_PATH], /--text is needed by --rotation pca, and only by it/],
    [["--tokens", "0"], /--tokens: expected an integer ≥ 1, found 0/],
    [["--rotate", "pca"], /Unknown option '--rotate'/],
    [["--rotation", "pca", "--text", "/nonexistent/t.txt"], /--text: .*nonexistent/],
  ] as const;
  for (const [args, message] of refused) {
    const bad = await runScript("experiments/rotate_residual.ts", [MODEL_PATH, out, ...args]);
    assert.equal(bad.code, 2, args.join(" "));
    assert.match(bad.stderr, message);
    assert.match(bad.stderr, /usage: rotate_residual\.ts/);
  }
});
