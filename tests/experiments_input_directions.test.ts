// experiments/input_directions.ts: the Jacobi eigen-decomposition reconstructs its matrix, the split of a
// path correlation over input directions adds up to the correlation of the outputs computed directly, and
// the script runs on a packed model and agrees with `inspect --diagnose`.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { directionalCorrelation, symmetricEigen } from "../experiments/input_directions.ts";
import { Rng } from "../src/util/rng.ts";
import { runCli, runScript, tempDir } from "./_cli.ts";

/** X (T, n) with a few strong directions, as a layer's inputs have, and its second moment XᵀX/T. */
function inputs(rng: Rng, T: number, n: number) {
  const x = new Float32Array(T * n);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < n; i++) x[t * n + i] = rng.normal() * (i < 2 ? 5 : 1);
  }
  const m = new Float64Array(n * n);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] += x[t * n + i] * x[t * n + j] / T;
  }
  return { x, m };
}

Deno.test("symmetricEigen reconstructs symmetric matrices (A v = λ v, orthonormal, descending)", () => {
  const rng = new Rng(7);
  for (const n of [1, 5, 17]) {
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.normal();
    const { values, vectors } = symmetricEigen(a, n);
    for (let j = 0; j < n; j++) {
      if (j > 0) assert.ok(values[j] <= values[j - 1] + 1e-12);
      for (let r = 0; r < n; r++) {
        let av = 0;
        for (let c = 0; c < n; c++) av += a[r * n + c] * vectors[j][c];
        assert.ok(Math.abs(av - values[j] * vectors[j][r]) < 1e-9, `n ${n}, vector ${j}, row ${r}`);
      }
      for (let k = 0; k < n; k++) {
        const dot = vectors[j].reduce((s, v, i) => s + v * vectors[k][i], 0);
        assert.ok(Math.abs(dot - (j === k ? 1 : 0)) < 1e-9);
      }
    }
  }
  assert.throws(() => symmetricEigen(new Float64Array(3), 2), /expected 2×2 = 4 entries, found 3/);
});

Deno.test("directionalCorrelation: the output correlation is Σ y_1·y_2 / √(Σy_1² Σy_2²) on the inputs", () => {
  const rng = new Rng(3);
  for (const [out, n, T] of [[4, 6, 50], [7, 13, 200]]) {
    const a1 = rng.normals(out * n), a2 = rng.normals(out * n);
    // Path 2 opposes path 1 along input 0, the strongest direction, and agrees with it elsewhere.
    for (let r = 0; r < out; r++) {
      for (let i = 0; i < n; i++) a2[r * n + i] = (i === 0 ? -1 : 1) * a1[r * n + i] + 0.3 * a2[r * n + i];
    }
    const { x, m } = inputs(rng, T, n);
    let s12 = 0, s11 = 0, s22 = 0;
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < out; r++) {
        let y1 = 0, y2 = 0;
        for (let i = 0; i < n; i++) y1 += a1[r * n + i] * x[t * n + i], y2 += a2[r * n + i] * x[t * n + i];
        s12 += y1 * y2, s11 += y1 * y1, s22 += y2 * y2;
      }
    }
    const d = directionalCorrelation(a1, a2, out, n, m, 2);
    assert.ok(Math.abs(d.outputCorrelation - s12 / Math.sqrt(s11 * s22)) < 1e-9);
    // With M = I the output correlation is the weight-level one.
    const eye = new Float64Array(n * n).map((_, e) => (e % (n + 1) === 0 ? 1 : 0));
    const flat = directionalCorrelation(a1, a2, out, n, eye, 2);
    assert.ok(Math.abs(flat.outputCorrelation - flat.weightCorrelation) < 1e-9);
    // The two strong inputs (0 opposed, 1 agreeing) lead; the rest agree.
    assert.ok(d.leadingInputShare > 0.5 && d.leadingInputShare < 1);
    assert.ok(d.restCorrelation! > 0.9, `${d.restCorrelation}`);
    const all = directionalCorrelation(a1, a2, out, n, m, n);
    assert.equal(all.restCorrelation, null);
    assert.ok(Math.abs(all.leadingCorrelation - d.outputCorrelation) < 1e-9);
    assert.ok(Math.abs(all.leadingPath1Share - 1) < 1e-12);
  }
  const z = new Float32Array(4);
  assert.throws(() => directionalCorrelation(z, z, 2, 2, new Float64Array(4), 3), /expected top in 1\.\.2/);
  assert.throws(() => directionalCorrelation(z, z, 2, 3, new Float64Array(9), 1), /found 4, 4 and 9 entries/);
});

Deno.test("input_directions.ts runs on a packed model and agrees with inspect --diagnose", async () => {
  await using tmp = await tempDir();
  const model = `${tmp.dir}/ptq.rabit`, text = `${tmp.dir}/t.txt`;
  const story = await Deno.readTextFile(new URL("../../shared/data/tinystories_dev.txt", import.meta.url));
  await Deno.writeTextFile(text, story.slice(0, 6000));
  const q = await runCli(["quantize", "--method", "ptq", "--calib-tokens", "256", "--out", model]);
  assert.equal(q.code, 0, q.stderr);
  const script = fileURLToPath(new URL("../experiments/input_directions.ts", import.meta.url));
  const r = await runScript(script, [model, text, "--tokens", "1024", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const { layers } = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  const inspect = await runCli([
    "inspect",
    model,
    "--diagnose",
    "--text",
    text,
    "--tokens",
    "1024",
    "--json",
  ]);
  assert.equal(inspect.code, 0, inspect.stderr);
  const diag = JSON.parse(inspect.stdout.trim().split("\n").at(-1)!).diagnostics.layers;
  assert.equal(layers.length, 35);
  for (let i = 0; i < layers.length; i++) {
    assert.equal(layers[i].name, diag[i].name);
    // Uncentered here, centered there: close, not equal.
    assert.ok(Math.abs(layers[i].outputCorrelation - diag[i].pathCorrelation) < 0.05, layers[i].name);
  }
  for (
    const [args, reason] of [
      [[model], /expected a student \.rabit file and a text file/],
      [[model, text, "--bogus"], /Unknown option '--bogus'/],
      [[model, text, "--top", "0"], /--top expects an integer ≥ 1, found "0"/],
      [[model, text, "--top", "65"], /--top must be at most the narrowest layer's 64 inputs, found 65/],
      [[model, text, "--tokens", "1.5"], /--tokens expects an integer ≥ 1, found "1\.5"/],
    ] as const
  ) {
    const bad = await runScript(script, [...args]);
    assert.equal(bad.code, 2, args.join(" "));
    assert.match(bad.stderr, reason);
    assert.match(bad.stderr, /Usage: deno run -A experiments\/input_directions\.ts STUDENT\.rabit TEXT/);
  }
});
