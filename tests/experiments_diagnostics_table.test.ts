// experiments/_diagnostics_table.ts (the per-layer diagnostics table the ablation and the full-budget
// scripts write) on hand-built models, and experiments/full_budget_diagnostics.ts: the committed table is
// what the script renders from the committed results, and missing results are named.

import assert from "node:assert/strict";
import { type DiagnosedModel, diagnosticsTableLines } from "../experiments/_diagnostics_table.ts";
import { formatMarkdownText, readJson, ROOT } from "../experiments/_run.ts";
import {
  fullBudgetColumns,
  fullBudgetTable,
  KEY,
  RESULTS,
  TABLE,
} from "../experiments/full_budget_diagnostics.ts";

const a: DiagnosedModel = {
  layers: [
    { name: "layers.0.wq", pathCorrelation: -0.25, residualAlignment: 0.5 },
    { name: "layers.0.wk", pathCorrelation: 0.1234, residualAlignment: 0.66666 },
  ],
  meanPathCorrelation: -0.0633,
  meanResidualAlignment: 0.58333,
  coAdaptedFraction: 0.5,
};
// A k = 1 layer measures null, and the second model lacks layers.0.wk altogether.
const b: DiagnosedModel = {
  layers: [{ name: "layers.0.wq", pathCorrelation: null, residualAlignment: null }],
  meanPathCorrelation: null,
  meanResidualAlignment: null,
  coAdaptedFraction: null,
};

Deno.test("diagnosticsTableLines: one row per layer of the first column, means and the co-adapted share", () => {
  const lines = diagnosticsTableLines([{ label: "rabit", diagnostics: a }, {
    label: "onebit",
    diagnostics: b,
  }]);
  assert.deepEqual(lines, [
    "| layer | rabit | onebit |",
    "|---|---|---|",
    "| layers.0.wq | -0.250 / 0.500 | – / – |",
    "| layers.0.wk | 0.123 / 0.667 | – / – |",
    "| **mean** | -0.063 / 0.583 | – / – |",
    "| layers with corr < 0 and align > 0.4 | 50 % | – |",
  ]);
  assert.throws(() => diagnosticsTableLines([]), /at least one column/);
});

Deno.test("full_budget_diagnostics: the committed table is what the script renders from the committed results", async () => {
  const results = await readJson(RESULTS);
  const rendered = await formatMarkdownText(fullBudgetTable(results));
  assert.equal(
    await Deno.readTextFile(TABLE),
    rendered,
    "rerun deno run -A experiments/full_budget_diagnostics.ts",
  );
  const { columns } = fullBudgetColumns(results);
  assert.deepEqual(columns.map((c) => c.diagnostics.layers.length), [35, 35, 35, 35, 35]);
  // The reading docs/evidence.md gives: rabit's paths end slightly positive on the mean, dbllm's (with
  // rabit's settings) negative, standard QAT's clearly positive with the lowest alignment.
  const [rabit, dbllm, , standardInit] = columns.map((c) => c.diagnostics);
  assert.ok(rabit.meanPathCorrelation! > 0 && rabit.meanPathCorrelation! < 0.05);
  assert.ok(dbllm.meanPathCorrelation! < 0);
  assert.ok(standardInit.meanResidualAlignment! < rabit.meanResidualAlignment!);
});

Deno.test("full_budget_diagnostics names the results it lacks", () => {
  assert.throws(() => fullBudgetColumns({}), new RegExp(`expected the key ${KEY}`));
  assert.throws(
    () => fullBudgetColumns({ [KEY]: { rabit: { diagnostics: a } } }),
    /dbllmRabitSettings\.diagnostics/,
  );
});

Deno.test("full_budget_diagnostics refuses an unknown option with exit 2 and writes nothing", async () => {
  const before = await Deno.readTextFile(TABLE);
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}experiments/full_budget_diagnostics.ts`, "--out", "x.md"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 2);
  assert.match(new TextDecoder().decode(r.stderr), /full_budget_diagnostics: .*out/);
  assert.equal(await Deno.readTextFile(TABLE), before);
});
