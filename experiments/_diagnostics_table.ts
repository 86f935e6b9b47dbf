// The per-layer diagnostics table (METHOD.md §6) that the experiment scripts write: one column per model,
// one row per binarized layer, each cell "path correlation / residual alignment", then the means and the
// share of co-adapted layers. ablation.ts writes it for its seed-1 rows, full_budget_diagnostics.ts for
// the full-budget models recorded in full_budget_dev.json.

/** One layer as `inspect --diagnose --json` reports it (the fields the table reads). */
export interface DiagnosedLayer {
  name: string;
  pathCorrelation: number | null;
  residualAlignment: number | null;
}

/** A model's diagnostics as `inspect --diagnose --json` reports them (the fields the table reads). */
export interface DiagnosedModel {
  layers: DiagnosedLayer[];
  meanPathCorrelation: number | null;
  meanResidualAlignment: number | null;
  coAdaptedFraction: number | null;
}

/** A column of the table: its heading and the model's diagnostics. */
export interface DiagnosticsColumn {
  label: string;
  diagnostics: DiagnosedModel;
}

const fixed3 = (x: number | null | undefined) => (typeof x === "number" ? x.toFixed(3) : "–");

/**
 * The markdown table's lines (unformatted; `deno fmt` aligns them). Rows follow the first column's layer
 * order; a layer another column lacks, or measures as null (k = 1), shows "–".
 */
export function diagnosticsTableLines(columns: DiagnosticsColumn[]): string[] {
  if (columns.length === 0) throw new RangeError("diagnosticsTableLines: expected at least one column");
  const layers = columns[0].diagnostics.layers.map((l) => l.name);
  const cell = (d: DiagnosedModel, name: string) => {
    const l = d.layers.find((x) => x.name === name);
    return `${fixed3(l?.pathCorrelation)} / ${fixed3(l?.residualAlignment)}`;
  };
  const percent = (x: number | null) => (x === null ? "–" : `${(x * 100).toFixed(0)} %`);
  return [
    `| layer | ${columns.map((c) => c.label).join(" | ")} |`,
    `|---|${columns.map(() => "---").join("|")}|`,
    ...layers.map((name) => `| ${name} | ${columns.map((c) => cell(c.diagnostics, name)).join(" | ")} |`),
    `| **mean** | ${
      columns.map((c) =>
        `${fixed3(c.diagnostics.meanPathCorrelation)} / ${fixed3(c.diagnostics.meanResidualAlignment)}`
      )
        .join(" | ")
    } |`,
    `| layers with corr < 0 and align > 0.4 | ${
      columns.map((c) => percent(c.diagnostics.coAdaptedFraction)).join(" | ")
    } |`,
  ];
}
