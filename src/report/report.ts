// A report from its inputs: every chart the inputs support rendered to SVG, laid into one HTML page.
// Reading the inputs (inputs.ts) and computing missing diagnostics (cli/report.ts) come before this.

import { reportCharts } from "./charts.ts";
import { type RenderedChart, reportHtml } from "./html.ts";
import type { ReportInputs } from "./inputs.ts";
import { inlineSvg, RENDERER_VERSIONS, renderSvg } from "./render.ts";

/** Options of {@link renderReport}. */
export interface RenderReportOptions {
  /** The page title (default: "rabit report: " and the runs' labels, else the inputs' file count). */
  title?: string;
  /** Time written into the page (default: now). */
  now?: Date;
  /** Lines shown under the diagnostics heading (how they were obtained, why some are missing). */
  notes?: string[];
}

/** The page and what it holds. */
export interface RenderedReport {
  html: string;
  /** Each chart drawn, in page order, with the size of its SVG. */
  charts: { id: string; title: string; svgBytes: number }[];
}

/** The default title: the runs' labels, or what else the report is about. */
export function defaultTitle(inputs: ReportInputs): string {
  const runs = inputs.runs.map((r) => r.label);
  if (runs.length) {
    return `rabit report: ${runs.length > 3 ? `${runs.slice(0, 3).join(", ")} …` : runs.join(", ")}`;
  }
  return "rabit report";
}

/**
 * Renders every chart of `inputs` to inline SVG and returns the page. Charts are drawn one after another:
 * each vega View is finalized before the next starts.
 *
 * @example
 * ```ts
 * import { renderReport } from "./report.ts";
 * const inputs = {
 *   runs: [],
 *   evals: [{ kind: "eval" as const, path: "e.json", model: "m.bin", text: "t.txt", holdout: null, ppl: 7.3,
 *     nll: 2, tokens: 100, windows: 1, context: 99 }],
 *   benches: [],
 *   trainBenches: [],
 * };
 * const { html, charts } = await renderReport(inputs, { title: "demo" });
 * charts.map((c) => c.id); // ["perplexity"]
 * html.includes("<svg"); // true
 * ```
 */
export async function renderReport(
  inputs: ReportInputs,
  options: RenderReportOptions = {},
): Promise<RenderedReport> {
  const rendered: RenderedChart[] = [];
  for (const chart of reportCharts(inputs)) {
    rendered.push({ chart, svg: inlineSvg(await renderSvg(chart.spec), chart.title) });
  }
  const html = reportHtml({
    title: options.title ?? defaultTitle(inputs),
    generatedAt: (options.now ?? new Date()).toISOString(),
    inputs,
    charts: rendered,
    notes: options.notes ?? [],
    renderer:
      `Charts: Vega-Lite ${RENDERER_VERSIONS.vegaLite} specs rendered to SVG by Vega ${RENDERER_VERSIONS.vega}.`,
  });
  return {
    html,
    charts: rendered.map((r) => ({ id: r.chart.id, title: r.chart.title, svgBytes: r.svg.length })),
  };
}
