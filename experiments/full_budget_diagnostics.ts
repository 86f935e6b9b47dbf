// Writes experiments/full_budget_diagnostics.md: the per-layer diagnostics (METHOD.md §6) of the seed-1
// models trained at the full default budget (2,400 steps, today's late batch) for rabit, dbllm and standard
// QAT, side by side, from what experiments/full_budget_dev.json recorded (key
// diagnosticsWithOuterShareSeed1). The ablation's tables (ablation.ts) stop at 450 steps; the paper-evidence
// issue asks for the diagnostics of rabit, standard and dbllm per layer, and the full budget is where the
// defaults' claims are made.
//
//   deno run -A experiments/full_budget_diagnostics.ts [--json]

import { parseArgs } from "node:util";
import { type Json, parseOrExit, readJson, ROOT, writeMarkdown } from "./_run.ts";
import { type DiagnosedModel, type DiagnosticsColumn, diagnosticsTableLines } from "./_diagnostics_table.ts";

export const RESULTS = `${ROOT}experiments/full_budget_dev.json`;
export const TABLE = `${ROOT}experiments/full_budget_diagnostics.md`;
/** The key of full_budget_dev.json whose models the table shows. */
export const KEY = "diagnosticsWithOuterShareSeed1";

/** The table's columns: the key's entries, in this order, with their headings. */
const COLUMNS: { entry: string; label: string }[] = [
  { entry: "rabit", label: "rabit (default)" },
  { entry: "dbllmRabitSettings", label: "dbllm, rabit's settings" },
  { entry: "dbllm", label: "dbllm, its tuned settings" },
  { entry: "standardInit", label: "standard + SVID + precond." },
  { entry: "standardNoInit", label: "standard" },
];

/** The columns read from the recorded results; throws, naming what is missing, when an entry is absent. */
export function fullBudgetColumns(results: Json): { columns: DiagnosticsColumn[]; rows: Json[] } {
  const block = results[KEY] as Json | undefined;
  if (block === undefined) throw new Error(`${RESULTS}: expected the key ${KEY}, found none`);
  const rows: Json[] = [];
  const columns = COLUMNS.map(({ entry, label }) => {
    const e = block[entry] as Json | undefined;
    const d = e?.diagnostics as DiagnosedModel | undefined;
    if (!d || !Array.isArray(d.layers)) {
      throw new Error(`${RESULTS}: expected ${KEY}.${entry}.diagnostics, found none`);
    }
    rows.push({ label, model: e!.model, trainedBy: e!.trainedBy });
    return { label, diagnostics: d };
  });
  return { columns, rows };
}

/** The whole markdown file, unformatted (the script writes it formatted, as `deno fmt` would). */
export function fullBudgetTable(results: Json): string {
  const { columns, rows } = fullBudgetColumns(results);
  return [
    "# Per-layer diagnostics at the full default budget (METHOD.md §6), seed 1",
    "",
    "Each cell: path correlation corr(y₁, y₂) / residual alignment corr(y_t − y₁, y₂), on the first 4,096 tokens",
    "of the test tail (`inspect M.rabit --diagnose --text test.txt --json`, test.txt the last 10 % of",
    "`tinystories_dev.txt`). Every model trained 2,400 steps with today's late batch on the first 90 % of that",
    "file. Written by `deno run -A experiments/full_budget_diagnostics.ts` from `experiments/full_budget_dev.json`,",
    `key \`${KEY}\`; the reading is in docs/evidence.md ("Why the paths end positively correlated").`,
    "",
    ...rows.map((r) => `- ${r.label}: ${r.model}; \`${r.trainedBy}\``),
    "",
    ...diagnosticsTableLines(columns),
    "",
  ].join("\n");
}

const USAGE = "usage: deno run -A experiments/full_budget_diagnostics.ts [--json]\n" +
  "  writes experiments/full_budget_diagnostics.md from experiments/full_budget_dev.json\n" +
  "  --json  also print the columns' means as one JSON line";

if (import.meta.main) {
  const { values } = parseOrExit("full_budget_diagnostics", USAGE, () =>
    parseArgs({
      args: Deno.args,
      options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      strict: true,
    }));
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const results = await readJson(RESULTS);
  let text: string;
  try {
    text = fullBudgetTable(results);
  } catch (e) {
    // Missing or malformed results: one line naming what was expected, exit 1, the table left as it was.
    console.error(`full_budget_diagnostics: ${(e as Error).message}`);
    Deno.exit(1);
  }
  await writeMarkdown(TABLE, text);
  if (values.json) {
    const { columns } = fullBudgetColumns(results);
    console.log(JSON.stringify(columns.map((c) => ({
      label: c.label,
      meanPathCorrelation: c.diagnostics.meanPathCorrelation,
      meanResidualAlignment: c.diagnostics.meanResidualAlignment,
      coAdaptedFraction: c.diagnostics.coAdaptedFraction,
    }))));
  } else {
    console.error(`wrote ${TABLE}`);
  }
}
