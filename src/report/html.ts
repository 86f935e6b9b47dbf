// The report as one self-contained HTML page: a title, the runs and their options, every chart as inline
// SVG in a figure with a caption, and the numbers of every chart as plain tables (screen readers, copying).
// No scripts, no external URLs; every text from an input is escaped.

import { basename } from "node:path";
import type { ReportChart } from "./charts.ts";
import { evalModelLabel, evalTextLabel, shortLayer, speedupRows, variantName } from "./charts.ts";
import { LOG_SERIES, type ReportInputs, type RunInput, runOfEval } from "./inputs.ts";

/** A chart and its SVG markup (already inlined: see render.ts inlineSvg). */
export interface RenderedChart {
  chart: ReportChart;
  svg: string;
}

/** Everything the page shows. */
export interface ReportPage {
  title: string;
  /** ISO time of writing. */
  generatedAt: string;
  inputs: ReportInputs;
  charts: RenderedChart[];
  /** Lines on how diagnostics were obtained or why some are missing. */
  notes: string[];
  /** Footer: what drew the charts. */
  renderer: string;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** A number for a table: 5 significant digits, exponent form when tiny, "—" when absent. */
export function formatNumber(v: unknown, digits = 5): string {
  if (typeof v !== "number" || !Number.isFinite(v)) return "—";
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(digits - 3);
  return String(Number(v.toPrecision(digits)));
}

/** An option value for a table cell. */
function formatValue(v: unknown): string {
  if (v === undefined) return "";
  if (v === null) return "—";
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.map(formatValue).join(", ");
  return JSON.stringify(v);
}

/** A number already written out (fixed decimals, exponent form), right-aligned like other numbers. */
class Fixed {
  constructor(readonly text: string) {}
}

/** Fixed decimals, or null (a "—" cell) for a value that is absent, null or not finite. */
const fixed = (v: number | null | undefined, digits = 4) =>
  typeof v === "number" && Number.isFinite(v) ? new Fixed(v.toFixed(digits)) : null;
/** Exponent form with 3 significant digits (learning rates: 2.00e-4, as the README writes them). */
const sci = (v: number) => new Fixed(v.toExponential(2));

/** A table: header cells, then rows of cells (strings escaped, numbers formatted and right-aligned). */
function table(caption: string, head: string[], rows: unknown[][]): string {
  const td = (v: unknown, i: number) => {
    const tag = i === 0 ? "th" : "td";
    const numeric = typeof v === "number" || v instanceof Fixed;
    const text = v instanceof Fixed ? v.text : formatValue(v);
    return `<${tag}${i === 0 ? ' scope="row"' : ""}${numeric ? ' class="num"' : ""}>${
      escapeHtml(text)
    }</${tag}>`;
  };
  return `<table>\n<caption>${escapeHtml(caption)}</caption>\n<thead><tr>${
    head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join("")
  }</tr></thead>\n<tbody>\n${
    rows.map((r) => `<tr>${r.map(td).join("")}</tr>`).join("\n")
  }\n</tbody>\n</table>`;
}

function figure(c: RenderedChart): string {
  const wide = c.chart.id.startsWith("diagnostics-") ? ' class="wide"' : "";
  return `<figure id="chart-${escapeHtml(c.chart.id)}"${wide}>\n${c.svg}\n<figcaption>${
    escapeHtml(c.chart.caption)
  }</figcaption>\n</figure>`;
}

const CSS = `
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; margin: 0 auto;
  max-width: 1180px; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; } h2 { font-size: 1.25rem; margin: 2rem 0 .6rem;
  border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.meta, figcaption, .note { color: #555; font-size: .9rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 1rem; }
figure { margin: 0 0 1rem; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; display: block; }
figure.wide svg { max-width: none; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .85rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { border: 1px solid #ddd; padding: .2rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #f2f2f2; } tbody tr:nth-child(even) { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; } .scroll table { margin-top: 0; }
dl.meta { margin: .4rem 0 1rem; } dl.meta dt { font-weight: 600; margin-top: .3rem; }
dl.meta dd { margin: 0 0 0 1.2rem; }
details { margin: .4rem 0 1rem; } summary { cursor: pointer; color: #333; }
code { font-size: .9em; }
`;

const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;

/**
 * Means over up to `spans` equal spans of steps, as the README's loss table: run, steps, loss, KL, MSE,
 * learning rate at the span's end (written out), gradient norm.
 */
export function logSpanRows(run: Pick<RunInput, "label" | "log">, spans = 10): unknown[][] {
  const log = run.log!;
  const steps = log.losses.length;
  const size = Math.ceil(steps / spans);
  const rows: unknown[][] = [];
  for (let a = 0; a < steps; a += size) {
    const b = Math.min(steps, a + size);
    const part = (s: number[]) => s.slice(a, b);
    rows.push([
      run.label,
      a + 1 === b ? `${b}` : `${a + 1}–${b}`,
      mean(part(log.losses)),
      mean(part(log.kl)),
      mean(part(log.mse)),
      sci(log.lr[b - 1]),
      mean(part(log.gradNorm)),
    ]);
  }
  return rows;
}

function runsSection(inputs: ReportInputs): string {
  const rows = inputs.runs.map((r) => {
    const md = r.metadata;
    return [
      r.label,
      r.method,
      r.maxPaths || "—",
      r.binarizedLayers,
      r.bitsPerWeight,
      r.log ? r.log.losses.length : "no log",
      r.log ? r.log.losses.at(-1) : null,
      r.log ? r.log.kl.at(-1) : null,
      typeof md.backend === "string" ? md.backend : "—",
      typeof md.trainSeconds === "number" ? md.trainSeconds : null,
      r.fileBytes,
      r.createdAt ?? "—",
    ];
  });
  const notes = inputs.runs.filter((r) => !r.log).map((r) =>
    `<p class="note">${escapeHtml(r.label)}: no training curves — ${
      escapeHtml(r.noLogReason ?? "no log")
    }.</p>`
  );
  const keys: string[] = [];
  for (const r of inputs.runs) for (const k of Object.keys(r.options)) if (!keys.includes(k)) keys.push(k);
  const options = table(
    "Options each run was made with (as stored in the .rabit file)",
    ["option", ...inputs.runs.map((r) => r.label)],
    keys.map((k) => [k, ...inputs.runs.map((r) => k in r.options ? r.options[k] : undefined)]),
  );
  return `<section id="runs">\n<h2>Runs</h2>\n${
    table(
      "One row per .rabit input",
      [
        "run",
        "method",
        "paths k",
        "binarized layers",
        "bits/weight",
        "steps",
        "final loss",
        "final KL",
        "backend",
        "training s",
        "file bytes",
        "written",
      ],
      rows,
    )
  }\n${notes.join("\n")}\n${options}\n</section>`;
}

function curvesSection(page: ReportPage): string {
  const charts = page.charts.filter((c) => c.chart.id.startsWith("curve-"));
  if (!charts.length) return "";
  const logged = page.inputs.runs.filter((r) => r.log);
  const spans = table(
    "Training log: means over spans of steps (learning rate: at the span's end)",
    ["run", "steps", "loss", "KL", "MSE", "lr", "grad norm"],
    logged.flatMap((r) => logSpanRows(r)),
  );
  const every = logged.map((r) =>
    `<details><summary>${escapeHtml(r.label)}: every step (${r.log!.losses.length})</summary>\n${
      table(
        `${r.label}: training log`,
        ["step", ...LOG_SERIES.map((s) => s === "losses" ? "loss" : s)],
        r.log!.losses.map((_, i) => [
          i + 1,
          ...LOG_SERIES.map((s) => s === "lr" ? sci(r.log!.lr[i]) : r.log![s][i]),
        ]),
      )
    }\n</details>`
  );
  return `<section id="training">\n<h2>Training curves</h2>\n<div class="grid">\n${
    charts.map(figure).join("\n")
  }\n</div>\n${spans}\n${every.join("\n")}\n</section>`;
}

/** The per-layer table's columns for each run, in the order of {@link DIAGNOSTICS_GLOSSARY}. */
const PER_LAYER_COLUMNS = ["corr(y₁, y₂)", "corr(yₜ − y₁, y₂)", "corr(A₁, A₂)", "outer share", "scale ratio"];

/**
 * What each diagnostic column is. The weight-level three read the packed signs and scales alone; the
 * output-level correlation weighs the input directions by the energy the text puts in them, so the two
 * correlations can disagree in sign (docs/evidence.md, "Why the paths end positively correlated").
 */
const DIAGNOSTICS_GLOSSARY = `<dl class="meta">
<dt>corr(y₁, y₂), path correlation</dt>
<dd>Pearson correlation of the two paths' outputs, pooled over every token and output feature. The paper's
sign is negative (RaBiT −0.35 to −0.50, standard QAT about 0): path 2 corrects path 1 (co-adaptation).</dd>
<dt>corr(yₜ − y₁, y₂), residual alignment</dt>
<dd>Correlation of path 2's output with what path 1 left of the full-precision output; the paper's is positive
(RaBiT 0.58 to 0.65). Co-adapted fraction: the share of layers with alignment above 0.4 and path correlation
below 0.</dd>
<dt>corr(A₁, A₂), weight-level path correlation</dt>
<dd>The paths' matrices Aᵢ = diag(gᵢ) Bᵢ diag(hᵢ) correlated weight by weight, tr(A₁A₂ᵀ) / (‖A₁‖‖A₂‖), from
the packed signs and scales alone (no text). It is what corr(y₁, y₂) would be for inputs spread evenly over
every direction; real inputs weigh a few directions more, so the two can differ in sign. Negative is the
paper's sign here too.</dd>
<dt>outer share</dt>
<dd>The share of weights whose path-2 sign equals path 1's (B₂ = B₁): there path 2 adds to path 1's magnitude,
elsewhere it subtracts. With equal scales everywhere the matrices would correlate 2 · share − 1: negative
for a share below ½.</dd>
<dt>scale ratio</dt>
<dd>Path 2's step against path 1's over the whole matrix: Σ|g₂[r] h₂[c]| / Σ|g₁[r] h₁[c]|.</dd>
<dt>—</dt>
<dd>Undefined (a layer with one path, a constant output, an all-zero path) or not in the input (diagnostics
written before the weight-level statistics existed). Means are over the layers that have a value.</dd>
</dl>`;

function diagnosticsSection(page: ReportPage): string {
  const charts = page.charts.filter((c) => c.chart.id.startsWith("diagnostics-"));
  const runs = page.inputs.runs.filter((r) => r.diagnostics);
  const notes = page.notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join("\n");
  if (!runs.length) {
    return notes ? `<section id="diagnostics">\n<h2>Path diagnostics</h2>\n${notes}\n</section>` : "";
  }
  const names = runs[0].diagnostics!.layers.map((l) => l.name);
  const byName = (r: RunInput, name: string) => r.diagnostics!.layers.find((l) => l.name === name);
  const allNames = [...names, ...runs.flatMap((r) => r.diagnostics!.layers.map((l) => l.name))]
    .filter((n, i, a) => a.indexOf(n) === i);
  const head = [
    "layer",
    ...runs.flatMap((r) => PER_LAYER_COLUMNS.map((c) => `${r.label} ${c}`)),
  ];
  const rows = allNames.map((n) => [
    shortLayer(n),
    ...runs.flatMap((r) => {
      const l = byName(r, n);
      return [
        fixed(l?.pathCorrelation),
        fixed(l?.residualAlignment),
        fixed(l?.weightCorrelation),
        fixed(l?.outerShare, 3),
        fixed(l?.scaleRatio, 3),
      ];
    }),
  ]);
  rows.push([
    "mean",
    ...runs.flatMap((r) => {
      const d = r.diagnostics!;
      return [
        fixed(d.meanPathCorrelation),
        fixed(d.meanResidualAlignment),
        fixed(d.meanWeightCorrelation),
        fixed(d.meanOuterShare, 3),
        fixed(d.meanScaleRatio, 3),
      ];
    }),
  ]);
  const summary = table(
    "Means over layers, and the co-adapted fraction",
    [
      "run",
      "mean corr(y₁, y₂)",
      "mean corr(yₜ − y₁, y₂)",
      "mean corr(A₁, A₂)",
      "mean outer share",
      "mean scale ratio",
      "co-adapted fraction",
      "tokens",
      "source",
    ],
    runs.map((r) => {
      const d = r.diagnostics!;
      const s = r.diagnosticsSource;
      const source = !s
        ? "—"
        : s.kind === "metadata"
        ? "stored in the .rabit metadata"
        : s.kind === "eval"
        ? `eval JSON ${basename(s.path)}`
        : `computed on ${s.text}${
          s.holdout > 0 ? ` (held-out ${+(s.holdout * 100).toFixed(2)}%)` : ""
        }, teacher ${basename(s.teacher)}`;
      return [
        r.label,
        fixed(d.meanPathCorrelation),
        fixed(d.meanResidualAlignment),
        fixed(d.meanWeightCorrelation),
        fixed(d.meanOuterShare, 3),
        fixed(d.meanScaleRatio, 3),
        fixed(d.coAdaptedFraction, 3),
        d.tokens,
        source,
      ];
    }),
  );
  return `<section id="diagnostics">\n<h2>Path diagnostics (METHOD.md §6)</h2>\n<p class="meta">At every binarized
layer, the paths' outputs y₁, y₂ are compared with the full-precision layer's output yₜ on the same input (the
input that reaches the layer in the 2-bit model).</p>\n${DIAGNOSTICS_GLOSSARY}\n${notes}\n${
    charts.map(figure).join("\n")
  }\n${summary}\n<div class="scroll">\n${table("Per layer", head, rows)}\n</div>\n</section>`;
}

function perplexitySection(page: ReportPage): string {
  const { evals } = page.inputs;
  if (!evals.length) return "";
  const rows = evals.map((e) => {
    const run = runOfEval(page.inputs.runs, e);
    return [
      evalModelLabel(e, page.inputs),
      run?.method ?? (e.model.endsWith(".rabit") ? "—" : "none (float)"),
      evalTextLabel(e),
      e.ppl,
      e.nll,
      e.tokens,
      `${e.windows} × ${e.context}`,
      e.backend ?? "—",
      basename(e.path),
    ];
  });
  return `<section id="perplexity">\n<h2>Perplexity</h2>\n${
    page.charts.filter((c) => c.chart.id === "perplexity").map(figure).join("\n")
  }\n${
    table(
      "Perplexity by model (eval --json inputs)",
      [
        "model",
        "method",
        "text",
        "perplexity",
        "mean NLL",
        "tokens",
        "windows × context",
        "backend",
        "input",
      ],
      rows,
    )
  }\n</section>`;
}

function speedSection(page: ReportPage): string {
  const { benches, trainBenches } = page.inputs;
  if (!benches.length && !trainBenches.length) return "";
  const parts: string[] = page.charts.filter((c) => c.chart.id === "speedup").map(figure);
  parts.push(table(
    "Speed-ups (baseline time / contender time)",
    ["measurement", "contender vs baseline", "speed-up ×"],
    speedupRows(page.inputs).map((r) => [r.group, r.comparison, r.speedup]),
  ));
  for (const b of benches) {
    const gemvTable = (rows: typeof b.gemv, what: string) => {
      const variants = [...new Set(rows.flatMap((r) => Object.keys(r.ms)))];
      return table(
        `${basename(b.path)}: ${what} ms per GEMV (${b.device})`,
        ["shape", ...variants.map(variantName)],
        rows.map((r) => [r.shape, ...variants.map((v) => r.ms[v] ?? null)]),
      );
    };
    parts.push(gemvTable(b.gemv, b.backend));
    if (b.gemvThreads) {
      parts.push(gemvTable(b.gemvThreads.rows, `${b.backend}, ${b.gemvThreads.threads} threads`));
    }
    if (b.decode) {
      const tps = Object.entries(b.decode.tokensPerSecond);
      const what = b.decode.model
        ? basename(b.decode.model)
        : `${b.decode.layers ?? "?"}-layer TinyLlama-shaped`;
      parts.push(table(
        `${basename(b.path)}: decode tokens/s, ${what} (${b.backend})`,
        ["variant", "tokens/s"],
        tps.map(([v, t]) => [variantName(v), t]),
      ));
    }
  }
  for (const t of trainBenches) {
    parts.push(table(
      `${basename(t.path)}: ms per training step (${t.device})`,
      ["model", "batch", "CPU ms", "WebGPU ms", "speed-up ×"],
      t.models.map((m) => [m.name, `${m.batch}×${m.seq}`, m.cpuMs, m.webgpuMs, m.cpuMs / m.webgpuMs]),
    ));
  }
  return `<section id="speed">\n<h2>Speed</h2>\n${parts.join("\n")}\n</section>`;
}

/** The whole page. */
export function reportHtml(page: ReportPage): string {
  const { inputs } = page;
  const kinds = [
    [inputs.runs, ".rabit run"],
    [inputs.evals, "eval JSON"],
    [inputs.benches, "bench JSON"],
    [inputs.trainBenches, "bench --train JSON"],
  ] as const;
  const list = kinds.flatMap(([items, kind]) =>
    items.map((i) => `<li><code>${escapeHtml(i.path)}</code> — ${kind}</li>`)
  );
  const body = [
    runsSection(inputs),
    curvesSection(page),
    diagnosticsSection(page),
    perplexitySection(page),
    speedSection(page),
  ].filter((s) => s !== "" && !(s.startsWith('<section id="runs">') && !inputs.runs.length));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${escapeHtml(page.title)}</h1>
<p class="meta">Written ${escapeHtml(page.generatedAt)} by <code>rabit report</code> from ${
    list.length === 1 ? "one input" : `${list.length} inputs`
  }:</p>
<ul class="meta">
${list.join("\n")}
</ul>
</header>
<main>
${body.join("\n")}
</main>
<footer><p class="meta">${escapeHtml(page.renderer)}</p></footer>
</body>
</html>
`;
}
