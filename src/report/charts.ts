// Vega-Lite specs of a report's charts, and the flat rows each one draws: training curves from the .rabit
// log, per-layer path diagnostics, perplexity by model, and speed-ups from the bench JSON. Pure functions;
// render.ts turns a spec into SVG.
//
// Row legend: run = a run's label (RunInput.label); step is 1-based; layer = "block.linear" ("0.wq").

import { basename } from "node:path";
import type { TopLevelSpec } from "vega-lite";
import type { TrainLog } from "../train/checkpoint.ts";
import type { PathDiagnostics } from "../eval/diagnostics.ts";
import type { EvalInput, LogSeries, ReportInputs } from "./inputs.ts";
import { runOfEval } from "./inputs.ts";

/** A chart of a report: an id (also the SVG's file-safe name), a title, a caption and its spec. */
export interface ReportChart {
  id: string;
  title: string;
  /** One or two sentences under the chart: what is drawn, and how to read it. */
  caption: string;
  spec: TopLevelSpec;
}

/** What each training-log series is called on an axis. */
export const SERIES_TITLES: Record<LogSeries, string> = {
  losses: "loss (KL + γ·MSE)",
  kl: "KL(teacher ‖ student)",
  mse: "hidden MSE (Σ blocks)",
  lr: "learning rate",
  gradNorm: "gradient norm (before clipping)",
};

/** Short y-axis titles (the chart title has the full name; a long axis title would overhang the plot). */
const AXIS_TITLES: Record<LogSeries, string> = {
  losses: "loss",
  kl: "KL",
  mse: "MSE",
  lr: "learning rate",
  gradNorm: "gradient norm",
};

/** Variants of the bench JSON as tables and legends name them. */
export const VARIANT_NAMES: Record<string, string> = {
  f32: "fp32",
  f16: "fp16-storage",
  packed2: "packed k=2",
  tfjs_f32: "tfjs fp32",
  packed2_i8: "packed k=2 int8 tables",
  "packed2-i8cls": "packed k=2, int8 classifier",
  packed2_i8cls: "packed k=2, int8 classifier",
  packed2_f16cls: "packed k=2, fp16 classifier",
  packed2_i16: "packed k=2 int16 tables",
  packed2_f32lut: "packed k=2 f32 tables",
  cpu_f32: "TS reference fp32",
  cpu_packed2: "TS reference packed k=2",
};

/** The display name of a bench variant. */
export const variantName = (v: string): string => VARIANT_NAMES[v] ?? v;

/** Run colours (Vega's tableau10): run i of the report always gets colour i, in every chart. */
export const RUN_COLORS = [
  "#4c78a8",
  "#f58518",
  "#e45756",
  "#72b7b2",
  "#54a24b",
  "#eeca3b",
  "#b279a2",
  "#ff9da6",
  "#9d755d",
  "#bab0ac",
];

/** A colour scale over the runs present in `rows`, each with its report-wide colour. */
function runScale(runLabels: string[], rows: { run: string }[]) {
  const present = new Set(rows.map((r) => r.run));
  const runs = runLabels.map((label, i) => ({ label, color: RUN_COLORS[i % RUN_COLORS.length] }))
    .filter((r) => present.has(r.label));
  return { domain: runs.map((r) => r.label), range: runs.map((r) => r.color) };
}

/** Shared look: readable sizes; label limits wide enough that names are not cut. */
const CONFIG = {
  font: "sans-serif",
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: "normal", labelLimit: 420 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 360, symbolStrokeWidth: 3 },
  title: { fontSize: 14, anchor: "start", subtitleFontSize: 11, subtitleColor: "#555" },
  view: { stroke: "#ccc" },
} as const;

// ---------------------------------------------------------------------------------------------------
// Training curves.

/** One point of a training curve. */
export interface CurveRow {
  run: string;
  step: number;
  value: number;
}

/** The rows of one series for every run with a log: (run, step, value), steps from 1. */
export function trainingCurveRows(runs: { label: string; log: TrainLog }[], series: LogSeries): CurveRow[] {
  return runs.flatMap((r) => r.log[series].map((value, i) => ({ run: r.label, step: i + 1, value })));
}

/** Steps averaged by the smoothed line: about a fiftieth of the longest run, 1 (no smoothing) below 100. */
export function smoothingWindow(steps: number): number {
  return steps < 100 ? 1 : Math.round(steps / 50);
}

/**
 * A line per run of one log series against the step. Long runs are noisy step to step: there a thick
 * line of the trailing mean over {@link smoothingWindow} steps is drawn over the thin per-step one.
 */
export function trainingCurveSpec(series: LogSeries, rows: CurveRow[], runLabels: string[]): TopLevelSpec {
  const steps = rows.reduce((m, r) => Math.max(m, r.step), 0);
  const w = series === "lr" ? 1 : smoothingWindow(steps);
  const color = {
    field: "run",
    type: "nominal",
    title: "run",
    scale: runScale(runLabels, rows),
    legend: { orient: "bottom", direction: "vertical", symbolOpacity: 1 },
  } as const;
  const x = { field: "step", type: "quantitative", title: "step", axis: { tickMinStep: 1 } } as const;
  const y = { type: "quantitative", title: AXIS_TITLES[series], scale: { zero: false } } as const;
  const base = {
    config: CONFIG,
    width: 440,
    height: 220,
    data: { values: rows },
    title: {
      text: SERIES_TITLES[series],
      subtitle: w > 1 ? `thin: every step; thick: mean of ${w} steps` : "",
    },
  };
  if (w === 1) {
    return {
      ...base,
      mark: { type: "line", strokeWidth: 2, point: steps <= 50 },
      encoding: { x, y: { ...y, field: "value" }, color },
    } as TopLevelSpec;
  }
  return {
    ...base,
    layer: [
      {
        mark: { type: "line", strokeWidth: 1, opacity: 0.3 },
        encoding: { x, y: { ...y, field: "value" }, color },
      },
      {
        transform: [{
          window: [{ op: "mean", field: "value", as: "smoothed" }],
          frame: [-(w - 1), 0],
          groupby: ["run"],
          sort: [{ field: "step" }],
        }],
        mark: { type: "line", strokeWidth: 2.5 },
        encoding: { x, y: { ...y, field: "smoothed" }, color },
      },
    ],
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------------
// Path diagnostics.

/** One layer's value of one diagnostic for one run. */
export interface DiagnosticRow {
  run: string;
  /** "0.wq": block and linear. */
  layer: string;
  /** Position of the layer in the model (sorts the axis). */
  index: number;
  value: number;
}

/** The diagnostics a report draws: the two of METHOD.md §6 and the paths' correlation as matrices. */
export type DiagnosticMetric = "pathCorrelation" | "residualAlignment" | "weightCorrelation";

/** In report order. */
export const DIAGNOSTIC_METRICS: readonly DiagnosticMetric[] = [
  "pathCorrelation",
  "residualAlignment",
  "weightCorrelation",
];

const DIAGNOSTIC_TITLES: Record<DiagnosticMetric, string> = {
  pathCorrelation: "path correlation corr(y₁, y₂)",
  residualAlignment: "residual alignment corr(yₜ − y₁, y₂)",
  weightCorrelation: "weight-level path correlation corr(A₁, A₂)",
};

const DIAGNOSTIC_SUBTITLES: Record<DiagnosticMetric, string> = {
  pathCorrelation: "negative: path 2 corrects path 1 (co-adaptation)",
  residualAlignment: "positive: path 2 fits what path 1 left of the teacher's output",
  // The output-level correlation weighs each input direction by the energy the text puts in it; this one
  // weighs all directions alike (docs/evidence.md, "Why the paths end positively correlated").
  weightCorrelation:
    "Aᵢ = diag(gᵢ) Bᵢ diag(hᵢ), weight by weight: the path correlation for inputs spread evenly",
};

const DIAGNOSTIC_AXES: Record<DiagnosticMetric, string> = {
  pathCorrelation: "path correlation",
  residualAlignment: "residual alignment",
  weightCorrelation: "corr(A₁, A₂)",
};

/** "layers.3.w2" → "3.w2". */
export const shortLayer = (name: string): string => name.replace(/^layers\./, "");

/**
 * Rows of one diagnostic for every run that has diagnostics; layers where it is null (k = 1, or a file from
 * before the weight-level statistics) are left out.
 */
export function diagnosticRows(
  runs: { label: string; diagnostics?: PathDiagnostics }[],
  metric: DiagnosticMetric,
): DiagnosticRow[] {
  return runs.flatMap((r) =>
    (r.diagnostics?.layers ?? []).flatMap((l, index) => {
      const value = l[metric];
      return value === null ? [] : [{ run: r.label, layer: shortLayer(l.name), index, value }];
    })
  );
}

/** Bars per layer (in model order), one per run side by side, on a fixed −1..1 axis with a rule at 0. */
export function diagnosticsSpec(
  metric: DiagnosticMetric,
  rows: DiagnosticRow[],
  runLabels: string[],
): TopLevelSpec {
  const scale = runScale(runLabels, rows);
  const layers = new Set(rows.map((r) => r.layer)).size;
  return {
    config: CONFIG,
    title: {
      text: DIAGNOSTIC_TITLES[metric],
      subtitle: DIAGNOSTIC_SUBTITLES[metric],
    },
    // About 1,100 px for stories260K's 35 layers; a bigger model's chart is wider (the page scrolls it).
    width: { step: Math.max(18, Math.min(40, Math.floor(1080 / layers))), for: "position" },
    height: 220,
    data: { values: rows },
    layer: [
      {
        mark: { type: "bar" },
        encoding: {
          x: {
            field: "layer",
            type: "nominal",
            title: "layer (block.linear, model order)",
            sort: { field: "index", op: "min" },
            axis: { labelAngle: -90 },
          },
          xOffset: { field: "run", type: "nominal", scale: { domain: scale.domain } },
          y: {
            field: "value",
            type: "quantitative",
            title: DIAGNOSTIC_AXES[metric],
            scale: { domain: [-1, 1] },
          },
          color: {
            field: "run",
            type: "nominal",
            title: "run",
            scale,
            legend: { orient: "bottom", direction: "vertical" },
          },
        },
      },
      { mark: { type: "rule", color: "#333" }, encoding: { y: { datum: 0 } } },
    ],
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------------
// Perplexity.

/** One eval's perplexity. */
export interface PerplexityRow {
  /** The run's label when the eval scored one of the runs, else the model's file name. */
  model: string;
  /** "tinystories_dev.txt, held-out 10%". */
  text: string;
  ppl: number;
}

/** The text an eval scored, as legends say it. */
export function evalTextLabel(e: Pick<EvalInput, "text" | "holdout">): string {
  const h = e.holdout === null ? "" : `, held-out ${+(e.holdout * 100).toFixed(2)}%`;
  return `${basename(e.text)}${h}`;
}

/** The model an eval scored, as legends say it. */
export function evalModelLabel(e: EvalInput, inputs: Pick<ReportInputs, "runs">): string {
  const run = runOfEval(inputs.runs, e);
  if (run) return run.label;
  const name = basename(e.model);
  return name.endsWith(".rabit") ? name : `${name} (full precision)`;
}

/** One row per eval. */
export function perplexityRows(inputs: Pick<ReportInputs, "runs" | "evals">): PerplexityRow[] {
  return inputs.evals.map((e) => ({ model: evalModelLabel(e, inputs), text: evalTextLabel(e), ppl: e.ppl }));
}

/**
 * Panels stacked top to bottom, one per value of `field` in the order of first appearance, each with
 * its value as title and only its own rows on the y axis; `x` says whether panels share the x scale.
 * (Vega-Lite facets sort panels and warn on layered independent scales; concatenation does not.)
 */
function panels(
  field: string,
  rows: Record<string, unknown>[],
  panel: Record<string, unknown>,
  x: "shared" | "independent",
) {
  const values = [...new Set(rows.map((r) => String(r[field])))];
  return {
    vconcat: values.map((v) => ({
      title: { text: v, fontSize: 12, subtitle: "" },
      transform: [{ filter: { field, equal: v } }],
      ...panel,
    })),
    spacing: 16,
    resolve: { scale: { x, y: "independent" } },
  };
}

/**
 * A horizontal bar per model with its value printed, one panel per text scored (each panel lists only the
 * models scored on that text).
 */
export function perplexitySpec(rows: PerplexityRow[]): TopLevelSpec {
  return {
    config: CONFIG,
    title: { text: "perplexity (lower is better)", subtitle: "one panel per text scored" },
    data: { values: rows },
    ...panels("text", rows as unknown as Record<string, unknown>[], {
      width: 520,
      height: { step: 22 },
      encoding: {
        y: { field: "model", type: "nominal", title: null, sort: null },
        x: { field: "ppl", type: "quantitative", title: "perplexity" },
      },
      layer: [
        { mark: { type: "bar", color: "#4c78a8" } },
        {
          mark: { type: "text", align: "left", dx: 3, fontSize: 11 },
          encoding: { text: { field: "ppl", type: "quantitative", format: ".2f" } },
        },
      ],
    }, "independent"),
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------------
// Speed-ups.

/** One measured speed-up. */
export interface SpeedupRow {
  /** What was measured: "GEMV 4096x4096 (webgpu)", "decode (wasm)", "training step stories260K 4×128". */
  group: string;
  /** "packed k=2 vs fp16-storage", "webgpu vs cpu". */
  comparison: string;
  /** Baseline time / contender time (tokens/s: contender / baseline): above 1 is faster. */
  speedup: number;
  /** The bench file's name. */
  source: string;
}

function gemvSpeedups(
  rows: { shape: string; ms: Record<string, number> }[],
  backend: "webgpu" | "wasm",
  where: string,
): Omit<SpeedupRow, "source">[] {
  return rows.flatMap(({ shape, ms }) => {
    // WebGPU: packed k=2 against each baseline (README's table); wasm: every variant against fp32.
    const pairs: [string, string][] = backend === "webgpu"
      ? ["f32", "f16", "tfjs_f32"].map((b) => ["packed2", b])
      : Object.keys(ms).filter((v) => v !== "f32").map((v) => [v, "f32"]);
    return pairs.filter(([c, b]) => ms[c] > 0 && ms[b] > 0).map(([c, b]) => ({
      group: `GEMV ${shape} (${where})`,
      comparison: `${variantName(c)} vs ${variantName(b)}`,
      speedup: ms[b] / ms[c],
    }));
  });
}

/** Every speed-up the bench inputs hold, in file order. */
export function speedupRows(inputs: Pick<ReportInputs, "benches" | "trainBenches">): SpeedupRow[] {
  const files = [...inputs.benches, ...inputs.trainBenches];
  const tag = (path: string) => (files.length > 1 ? ` · ${basename(path)}` : "");
  const out: SpeedupRow[] = [];
  for (const b of files) {
    const source = basename(b.path);
    const push = (rows: Omit<SpeedupRow, "source">[]) =>
      out.push(...rows.map((r) => ({ ...r, group: r.group + tag(b.path), source })));
    if (b.kind === "train-bench") {
      push(b.models.map((m) => ({
        group: `training step ${m.name} ${m.batch}×${m.seq}`,
        comparison: "webgpu vs cpu",
        speedup: m.cpuMs / m.webgpuMs,
      })));
      continue;
    }
    push(gemvSpeedups(b.gemv, b.backend, b.backend));
    if (b.gemvThreads) {
      push(gemvSpeedups(b.gemvThreads.rows, b.backend, `${b.backend}, ${b.gemvThreads.threads} threads`));
    }
    if (b.decode) {
      const tps = b.decode.tokensPerSecond;
      const contenders = Object.keys(tps).filter((v) => v.startsWith("packed"));
      const baselines = ["f16", "f32"].filter((v) => tps[v] > 0);
      push(contenders.flatMap((c) =>
        baselines.filter(() => tps[c] > 0).map((base) => ({
          group: `decode (${b.backend})`,
          comparison: `${variantName(c)} vs ${variantName(base)}`,
          speedup: tps[c] / tps[base],
        }))
      ));
    }
  }
  return out;
}

/**
 * One panel per measurement (its name above it), a horizontal bar per comparison with its value printed,
 * a dashed rule at 1× (no change); panels share the x scale so bars compare across them.
 */
export function speedupSpec(rows: SpeedupRow[]): TopLevelSpec {
  return {
    config: CONFIG,
    title: {
      text: "speed-up (above 1×: faster than the baseline)",
      subtitle: "baseline time / contender time",
    },
    data: { values: rows },
    transform: [{ calculate: "format(datum.speedup, '.2f') + '×'", as: "speedupText" }],
    ...panels("group", rows as unknown as Record<string, unknown>[], {
      width: 520,
      height: { step: 18 },
      encoding: {
        y: { field: "comparison", type: "nominal", title: null, sort: null },
        x: { field: "speedup", type: "quantitative", title: "speed-up (×)" },
      },
      layer: [
        { mark: { type: "bar", color: "#4c78a8" } },
        {
          mark: { type: "text", align: "left", dx: 3, fontSize: 11 },
          encoding: { text: { field: "speedupText", type: "nominal" } },
        },
        {
          mark: { type: "rule", color: "#222", strokeDash: [4, 3], opacity: 0.8 },
          encoding: { x: { datum: 1 }, y: null },
        },
      ],
    }, "shared"),
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------------
// All charts of a report.

/** The charts the inputs support, in report order: curves, diagnostics, perplexity, speed-ups. */
export function reportCharts(inputs: ReportInputs): ReportChart[] {
  const labels = inputs.runs.map((r) => r.label);
  const logged = inputs.runs.filter((r) => r.log).map((r) => ({ label: r.label, log: r.log! }));
  const charts: ReportChart[] = [];
  if (logged.length) {
    for (const series of ["losses", "kl", "mse", "lr", "gradNorm"] as const) {
      charts.push({
        id: `curve-${series}`,
        title: SERIES_TITLES[series],
        caption: `${SERIES_TITLES[series]} at every training step, one line per run (from the .rabit log).`,
        spec: trainingCurveSpec(series, trainingCurveRows(logged, series), labels),
      });
    }
  }
  for (const metric of DIAGNOSTIC_METRICS) {
    const rows = diagnosticRows(inputs.runs, metric);
    if (!rows.length) continue;
    charts.push({
      id: `diagnostics-${metric}`,
      title: DIAGNOSTIC_TITLES[metric],
      caption: metric === "weightCorrelation"
        ? `${
          DIAGNOSTIC_TITLES[metric]
        } at every binarized layer, from the packed signs and scales alone, one bar per run.`
        : `${DIAGNOSTIC_TITLES[metric]} at every binarized layer (METHOD.md §6), one bar per run.`,
      spec: diagnosticsSpec(metric, rows, labels),
    });
  }
  if (inputs.evals.length) {
    charts.push({
      id: "perplexity",
      title: "perplexity",
      caption: "Perplexity of each eval --json input (lower is better).",
      spec: perplexitySpec(perplexityRows(inputs)),
    });
  }
  const speedups = speedupRows(inputs);
  if (speedups.length) {
    charts.push({
      id: "speedup",
      title: "speed-ups",
      caption:
        "Speed-ups from the bench --json inputs: baseline time / contender time; the dashed rule is 1×.",
      spec: speedupSpec(speedups),
    });
  }
  return charts;
}
