// experiments/rotate_residual.ts: its matrices are orthogonal, the rotated model computes the original's
// logits (norms folded, classifier unshared; shared and unshared classifiers, grouped-query attention, and
// the real stories260K), and the script writes a llama2.c file that loads back to the same function.

import assert from "node:assert/strict";
import { orthogonalMatrix, rotateResidual } from "../experiments/rotate_residual.ts";
import { loadLlama2c } from "../src/io/llama2c.ts";
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
  const bad = await runScript("experiments/rotate_residual.ts", [MODEL_PATH, out, "--rotation", "spin"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /usage: rotate_residual\.ts/);
});
