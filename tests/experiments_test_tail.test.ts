// experiments/test_tail.ts, the full-budget protocol as one command: a tiny run writes each seed's row
// (scores, ratio to the teacher, diagnostics, the commands) into the results file, two runs started together
// both land, a rerun skips the seeds already there without training, and bad arguments are refused by name
// before anything runs.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runScript, tempDir } from "./_cli.ts";

const SCRIPT = fileURLToPath(new URL("../experiments/test_tail.ts", import.meta.url));
const testTail = (args: string[]) => runScript(SCRIPT, args, { RABIT_PROGRESS: "0" });

Deno.test("test_tail.ts writes one row per seed, then skips the seeds it has", async () => {
  await using tmp = await tempDir();
  const results = `${tmp.dir}/r.json`;
  await Deno.writeTextFile(results, JSON.stringify({ other: { kept: true } }));
  const own = [
    "--key",
    "tiny",
    "--seeds",
    "3",
    "--results",
    results,
    "--work",
    tmp.dir,
    "--wiki-windows",
    "1",
  ];
  const tiny = ["--steps", "1", "--batch", "1", "--seq", "64", "--calib-tokens", "256", "--backend", "cpu"];
  // A second run started at the same moment over the same --work and results file: the test tail's text and
  // the results are written atomically under names of their own, so neither run trips over the other.
  const [first, twin] = await Promise.all([
    testTail([...own, "--", ...tiny]),
    testTail([...own.map((a) => (a === "tiny" ? "twin" : a === "3" ? "4" : a)), "--", ...tiny]),
  ]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(twin.code, 0, twin.stderr);
  const state = JSON.parse(await Deno.readTextFile(results));
  assert.deepEqual(state.other, { kept: true }); // other keys survive the update
  assert.equal(state.twin.seed4.options.seed, 4); // and so does the concurrent run's row
  await assert.rejects(Deno.stat(`${results}.lock`), Deno.errors.NotFound); // the write lock is released
  const row = state.tiny.seed3;
  assert.ok(state.tiny.fp32TestPpl > 7 && state.tiny.fp32TestPpl < 8, `${state.tiny.fp32TestPpl}`); // 7.334
  assert.ok(row.testPpl > state.tiny.fp32TestPpl, `${row.testPpl}`);
  assert.ok(Math.abs(row.ratio - row.testPpl / state.tiny.fp32TestPpl) < 1e-12);
  assert.ok(Number.isFinite(row.wikiPpl) && row.wikiPpl > 1);
  assert.equal(row.options.seed, 3);
  assert.equal(row.options.steps, 1);
  assert.equal(row.diagnostics.layers.length, 35); // 5 blocks × 7 linears
  assert.ok(Math.abs(row.diagnostics.meanPathCorrelation) < 1);
  assert.equal(state.tiny.meanTestPpl, row.testPpl);
  assert.equal(state.tiny.seeds, 1);
  assert.match(row.commands[0], /^deno run -A cli\.ts quantize --steps 1 .* --seed 3 --out .* --json$/);
  assert.equal(JSON.parse(first.stdout.trim().split("\n").at(-1)!).seed3.testPpl, row.testPpl);

  // Everything asked for is there: nothing trains, the file is untouched.
  const before = await Deno.readTextFile(results);
  const again = await testTail([...own, "--", ...tiny]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /tiny\.seed3 is there; skipped/);
  assert.equal(await Deno.readTextFile(results), before);
});

Deno.test("test_tail.ts refuses bad arguments by name and writes nothing", async () => {
  await using tmp = await tempDir();
  const results = `${tmp.dir}/r.json`;
  const cases: [string[], RegExp][] = [
    [["--seeds", "1"], /--key NAME is required/],
    [["--key", "k", "--seeds", "1,x"], /--seeds expects comma-separated integers/],
    [["--key", "k", "--seeds", "1,"], /--seeds expects comma-separated integers ≥ 0, got "1,"/],
    [["--key", "k", "--jobs", "0"], /--jobs expects an integer ≥ 1, got "0"/],
    [["--key", "k", "--wiki-windows", "many"], /--wiki-windows expects an integer ≥ 1/],
    [["--key", "k", "--", "--seed", "4"], /--seed is set by the script/],
    [["--key", "k", "--", "--out=m.rabit"], /--out is set by the script/],
    [["--key", "k", "--colour"], /Unknown option '--colour'/],
    // A repeated option of the script is refused; after "--" the options are quantize's, which refuses its own.
    [["--key", "k", "--jobs", "1", "--jobs=2"], /--jobs given twice; give it once/],
    [["--key", "k", "--", "--method", "rabit", "--model"], /--model expects a model path/],
  ];
  for (const [args, message] of cases) {
    const r = await testTail(["--results", results, "--work", tmp.dir, ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /Usage: deno run -A experiments\/test_tail\.ts/);
  }
  await assert.rejects(Deno.stat(results), Deno.errors.NotFound);
});
