// `report`: the Vega-Lite data built from hand-made logs and bench/eval JSON, every chart rendered to SVG
// without a warning, the HTML page of a tiny trained run (standalone, one <svg> per chart, the series and
// axis titles in it), and bad inputs refused with messages that name the file.

import assert from "node:assert/strict";
import { lastJson, runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH } from "./_data.ts";
import {
  diagnosticRows,
  perplexityRows,
  reportCharts,
  smoothingWindow,
  speedupRows,
  trainingCurveRows,
  trainingCurveSpec,
} from "../src/report/charts.ts";
import {
  classifyJson,
  parseJsonInput,
  readDiagnostics,
  readReportInput,
  readReportInputs,
  type ReportInputs,
  type RunInput,
} from "../src/report/inputs.ts";
import { reportHtml } from "../src/report/html.ts";
import { renderSvg } from "../src/report/render.ts";
import { renderReport } from "../src/report/report.ts";
import type { TrainLog } from "../src/train/checkpoint.ts";
import type { PathDiagnostics } from "../src/eval/diagnostics.ts";

/** A spec read back as plain JSON, for looking into it. */
// deno-lint-ignore no-explicit-any
const plain = (spec: unknown): any => JSON.parse(JSON.stringify(spec));

/** What `bench --train --json` prints (real schema, made-up numbers). */
const TRAIN_BENCH = {
  adapter: "llvmpipe (LLVM 15.0.6, 256 bits)",
  train: {
    stories260K: {
      batch: 4,
      seq: 128,
      cpuMs: 900,
      webgpuMs: 300,
      train_speedup: 3,
      gpuBytes: 1,
      optimizerStateBytes: 1,
    },
  },
};
/** What `bench --json` prints without decode (real schema). */
const GEMV_BENCH = {
  adapter: "llvmpipe",
  gemv: { "2048x2048": { f32: 8, f16: 6, packed2: 2, tfjs_f32: 32, weightBytes: { f32: 16777216 } } },
  decode: { layers: 22, tokensPerSecond: { f16: 0.5, packed2: 1.5 }, speedup_vs_fp16: 3 },
};
/** What `bench --backend wasm --json` prints (real schema, one shape, threads). */
const WASM_BENCH = {
  backend: "wasm",
  device: "CPU (WebAssembly SIMD, 2 hardware threads)",
  gemv: {
    "1024x1024": { f32: 0.16, f16: 0.24, packed2: 0.08, packed2_i8: 0.04, weightBytes: { f32: 4194304 } },
  },
  gemv_threads: { threads: 2, "1024x1024": { f32: 0.1, f16: 0.2, packed2: 0.05, packed2_i8: 0.025 } },
};
const evalJson = (model: string, ppl: number, text = "../shared/data/tinystories_dev.txt") => ({
  model,
  text,
  holdout: 0.1,
  backend: "cpu",
  ppl,
  nll: Math.log(ppl),
  tokens: 24420,
  windows: 4,
  context: 512,
});

function handLog(steps: number, scale = 1): TrainLog {
  const s = Array.from({ length: steps }, (_, i) => i);
  return {
    losses: s.map((i) => scale * (3 - i / steps)),
    kl: s.map((i) => scale * (2 - i / steps)),
    mse: s.map(() => scale),
    lr: s.map((i) => 1e-3 * (1 - i / steps)),
    gradNorm: s.map((i) => 5 + i),
  };
}

/** Mean of the non-null values, null when there are none (as PathDiagnostics' means). */
function meanOf(values: (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length ? known.reduce((a, v) => a + v, 0) / known.length : null;
}

/**
 * Diagnostics of up to three layers (0.wq, 0.wk, 0.wv) from (path correlation, residual alignment) pairs,
 * and per layer the weight-level (corr(A₁, A₂), outer share, scale ratio); without `weights` every layer
 * has (−0.1, 0.4, 0.5). The weight-level means are of the layers' values.
 */
function handDiagnostics(
  values: [number | null, number | null][],
  weights: [number | null, number | null, number | null][] = values.map(() => [-0.1, 0.4, 0.5]),
): PathDiagnostics {
  return {
    layers: values.map(([pathCorrelation, residualAlignment], i) => ({
      name: `layers.0.${["wq", "wk", "wv"][i]}`,
      k: 2,
      pathCorrelation,
      residualAlignment,
      pathAlignments: [residualAlignment],
      weightCorrelation: weights[i][0],
      outerShare: weights[i][1],
      scaleRatio: weights[i][2],
    })),
    meanPathCorrelation: 0,
    meanResidualAlignment: 0,
    coAdaptedFraction: 0,
    meanOuterShare: meanOf(weights.map((w) => w[1])),
    meanScaleRatio: meanOf(weights.map((w) => w[2])),
    meanWeightCorrelation: meanOf(weights.map((w) => w[0])),
    tokens: 64,
    windows: 1,
    context: 64,
    seconds: 0,
  };
}

/** A run as inputs.ts makes it, without a model behind it (charts and pages do not look at one). */
function handRun(label: string, method: string, log?: TrainLog, diagnostics?: PathDiagnostics): RunInput {
  return {
    kind: "run",
    path: `/x/${label}`,
    label,
    method,
    options: { method, steps: log?.losses.length ?? 0 },
    metadata: {},
    config: {} as RunInput["config"],
    fileBytes: 1,
    bitsPerWeight: 2.87,
    binarizedLayers: 3,
    maxPaths: 2,
    log,
    noLogReason: log ? undefined : `method ${method} does not train`,
    diagnostics,
    opened: {} as RunInput["opened"],
  };
}

Deno.test("trainingCurveRows: one row per run and step, steps from 1; the spec draws them against the step", () => {
  const runs = [{ label: "a", log: handLog(3) }, { label: "b", log: handLog(2, 2) }];
  const rows = trainingCurveRows(runs, "kl");
  assert.deepEqual(rows, [
    { run: "a", step: 1, value: 2 },
    { run: "a", step: 2, value: 2 - 1 / 3 },
    { run: "a", step: 3, value: 2 - 2 / 3 },
    { run: "b", step: 1, value: 4 },
    { run: "b", step: 2, value: 3 },
  ]);
  const spec = plain(trainingCurveSpec("kl", rows, ["a", "p", "b"]));
  assert.deepEqual(spec.data.values, rows);
  assert.equal(spec.encoding.x.field, "step");
  assert.equal(spec.encoding.y.field, "value");
  // Only runs with a curve are in the legend, each keeping its report-wide colour (b is the third run).
  assert.deepEqual(spec.encoding.color.scale.domain, ["a", "b"]);
  assert.deepEqual(spec.encoding.color.scale.range, ["#4c78a8", "#e45756"]);
  assert.equal(smoothingWindow(99), 1);
  assert.equal(smoothingWindow(1200), 24);
  const long = trainingCurveSpec("losses", trainingCurveRows([{ label: "a", log: handLog(200) }], "losses"), [
    "a",
  ]);
  const layers = plain(long).layer;
  assert.equal(layers.length, 2, "a thin per-step line and a thick smoothed one");
  assert.deepEqual(layers[1].transform[0].frame, [-3, 0]);
});

Deno.test("diagnosticRows: per layer in model order, short names, null (k = 1) left out", () => {
  const runs = [
    { label: "r", diagnostics: handDiagnostics([[-0.2, 0.8], [0.1, 0.9], [null, null]]) },
    { label: "none" },
  ];
  assert.deepEqual(diagnosticRows(runs, "pathCorrelation"), [
    { run: "r", layer: "0.wq", index: 0, value: -0.2 },
    { run: "r", layer: "0.wk", index: 1, value: 0.1 },
  ]);
  assert.deepEqual(diagnosticRows(runs, "residualAlignment").map((r) => r.value), [0.8, 0.9]);
  // The weight-level correlation comes from the packed layers, so the k = 1 layer's null is left out too.
  const weights = handDiagnostics([[-0.2, 0.8], [0.1, 0.9], [null, null]]);
  weights.layers[2].weightCorrelation = null;
  assert.deepEqual(diagnosticRows([{ label: "r", diagnostics: weights }], "weightCorrelation"), [
    { run: "r", layer: "0.wq", index: 0, value: -0.1 },
    { run: "r", layer: "0.wk", index: 1, value: -0.1 },
  ]);
});

Deno.test("speedupRows and perplexityRows: the ratios and labels the bench and eval JSON imply", () => {
  const inputs: ReportInputs = {
    runs: [handRun("r.rabit (rabit)", "rabit")],
    evals: [
      classifyJson(evalJson("/x/r.rabit (rabit)", 10.5), "e1.json"),
      classifyJson(evalJson("../shared/data/stories260K.bin", 7.3, "wiki.raw"), "e2.json"),
    ] as ReportInputs["evals"],
    benches: [
      classifyJson(GEMV_BENCH, "g.json"),
      classifyJson(WASM_BENCH, "w.json"),
    ] as ReportInputs["benches"],
    trainBenches: [classifyJson(TRAIN_BENCH, "t.json")] as ReportInputs["trainBenches"],
  };
  const s = speedupRows(inputs).map((r) => [r.group, r.comparison, +r.speedup.toFixed(3)]);
  assert.deepEqual(s, [
    ["GEMV 2048x2048 (webgpu) · g.json", "packed k=2 vs fp32", 4],
    ["GEMV 2048x2048 (webgpu) · g.json", "packed k=2 vs fp16-storage", 3],
    ["GEMV 2048x2048 (webgpu) · g.json", "packed k=2 vs tfjs fp32", 16],
    ["decode (webgpu) · g.json", "packed k=2 vs fp16-storage", 3],
    ["GEMV 1024x1024 (wasm) · w.json", "fp16-storage vs fp32", 0.667],
    ["GEMV 1024x1024 (wasm) · w.json", "packed k=2 vs fp32", 2],
    ["GEMV 1024x1024 (wasm) · w.json", "packed k=2 int8 tables vs fp32", 4],
    ["GEMV 1024x1024 (wasm, 2 threads) · w.json", "fp16-storage vs fp32", 0.5],
    ["GEMV 1024x1024 (wasm, 2 threads) · w.json", "packed k=2 vs fp32", 2],
    ["GEMV 1024x1024 (wasm, 2 threads) · w.json", "packed k=2 int8 tables vs fp32", 4],
    ["training step stories260K 4×128 · t.json", "webgpu vs cpu", 3],
  ]);
  assert.deepEqual(perplexityRows(inputs), [
    { model: "r.rabit (rabit)", text: "tinystories_dev.txt, held-out 10%", ppl: 10.5 },
    { model: "stories260K.bin (full precision)", text: "wiki.raw, held-out 10%", ppl: 7.3 },
  ]);
});

Deno.test("every chart of a full hand-made report renders to SVG without a Vega or Vega-Lite warning", async () => {
  const inputs: ReportInputs = {
    runs: [
      handRun(
        "a.rabit (rabit)",
        "rabit",
        handLog(150),
        handDiagnostics([[-0.2, 0.8], [0.1, 0.9], [0.3, 0.7]]),
      ),
      handRun(
        "b.rabit (standard)",
        "standard",
        handLog(20, 1.1),
        handDiagnostics([[0.2, 0.6], [0, 0.5], [0, 0.4]]),
      ),
      handRun("p.rabit (ptq)", "ptq"),
    ],
    evals: [
      classifyJson(evalJson("a.rabit", 10), "e1.json"),
      classifyJson(evalJson("a.rabit", 130, "wiki.raw"), "e2.json"),
      classifyJson(evalJson("b.bin", 7), "e3.json"),
    ] as ReportInputs["evals"],
    benches: [
      classifyJson(GEMV_BENCH, "g.json"),
      classifyJson(WASM_BENCH, "w.json"),
    ] as ReportInputs["benches"],
    trainBenches: [classifyJson(TRAIN_BENCH, "t.json")] as ReportInputs["trainBenches"],
  };
  const charts = reportCharts(inputs);
  assert.deepEqual(charts.map((c) => c.id), [
    "curve-losses",
    "curve-kl",
    "curve-mse",
    "curve-lr",
    "curve-gradNorm",
    "diagnostics-pathCorrelation",
    "diagnostics-residualAlignment",
    "diagnostics-weightCorrelation",
    "perplexity",
    "speedup",
  ]);
  for (const c of charts) {
    const warnings: string[] = [];
    const svg = await renderSvg(c.spec, { onWarning: (m) => warnings.push(m) });
    assert.deepEqual(warnings, [], c.id);
    assert.match(svg, /^<svg[^>]* width="\d+" height="\d+"/, c.id);
  }
  const { html } = await renderReport(inputs, { title: "hand-made" });
  assert.match(html, /p\.rabit \(ptq\): no training curves — method ptq does not train/);
  // The per-layer table has each run's weight-level correlation, the summary its means of the weight
  // statistics (handDiagnostics: corr(A₁, A₂) −0.1, outer share 0.4, scale ratio 0.5).
  assert.match(html, /<th[^>]*>a\.rabit \(rabit\) corr\(A₁, A₂\)<\/th>/);
  assert.match(html, /<th[^>]*>mean outer share<\/th>/);
  assert.match(
    html,
    /<td class="num">-0\.1000<\/td><td class="num">0\.400<\/td><td class="num">0\.500<\/td>/,
  );
});

/** Diagnostics as eval JSON held them before the weight-level statistics (one k = 2 layer). */
const DIAGNOSTICS_BEFORE_WEIGHT_LEVEL = {
  layers: [{
    name: "layers.0.wq",
    k: 2,
    pathCorrelation: -0.2,
    residualAlignment: 0.6,
    pathAlignments: [0.6],
  }],
  meanPathCorrelation: -0.2,
  meanResidualAlignment: 0.6,
  coAdaptedFraction: 1,
};

Deno.test("readDiagnostics: eval JSON from before the weight-level statistics reads them as null", () => {
  const d = readDiagnostics(DIAGNOSTICS_BEFORE_WEIGHT_LEVEL)!;
  assert.deepEqual(
    [
      d.layers[0].outerShare,
      d.layers[0].scaleRatio,
      d.layers[0].weightCorrelation,
      d.meanOuterShare,
      d.meanScaleRatio,
      d.meanWeightCorrelation,
    ],
    [null, null, null, null, null, null],
  );
  assert.equal(d.layers[0].pathCorrelation, -0.2);
  // A report of such a file draws no weight-level chart rather than a chart of nothing.
  assert.deepEqual(diagnosticRows([{ label: "old", diagnostics: d }], "weightCorrelation"), []);
  const now = handDiagnostics([[-0.2, 0.6]]);
  assert.deepEqual(readDiagnostics(now), now);
  assert.equal(readDiagnostics({ layers: [{ name: "x", pathCorrelation: "high" }] }), undefined);
});

/** The cells of the row whose header cell is `name` in the table captioned `caption`, as text. */
function tableRow(html: string, caption: string, name: string): string[] {
  const start = html.indexOf(`<caption>${caption}</caption>`);
  assert.ok(start >= 0, `a table captioned "${caption}"`);
  const body = html.slice(start, html.indexOf("</table>", start));
  const row = body.split("\n").find((line) => line.startsWith(`<tr><th scope="row">${name}</th>`));
  assert.ok(row, `a row "${name}" in "${caption}"`);
  return [...row.matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map((m) => m[1]);
}

Deno.test("report HTML: the weight-level statistics per layer and as means, and — where a file lacks them", () => {
  const now = handDiagnostics([[-0.2, 0.8], [0.1, 0.9], [null, null]], [
    [-0.3, 0.35, 0.55],
    [0.05, 0.52, 0.6],
    [null, null, null],
  ]);
  // Diagnostics written before the weight-level statistics, as they are when nothing fills them in.
  const old = {
    ...DIAGNOSTICS_BEFORE_WEIGHT_LEVEL,
    tokens: 64,
    windows: 1,
    context: 64,
    seconds: 0,
  } as unknown as PathDiagnostics;
  const inputs: ReportInputs = {
    runs: [
      handRun("new.rabit (rabit)", "rabit", undefined, now),
      handRun("old.rabit (rabit)", "rabit", undefined, old),
    ],
    evals: [],
    benches: [],
    trainBenches: [],
  };
  const html = reportHtml({ title: "t", generatedAt: "", inputs, charts: [], notes: [], renderer: "" });
  const per = ["corr(y₁, y₂)", "corr(yₜ − y₁, y₂)", "corr(A₁, A₂)", "outer share", "scale ratio"];
  const head = [...html.matchAll(/<th scope="col">([^<]*)<\/th>/g)].map((m) => m[1]);
  for (const run of ["new.rabit (rabit)", "old.rabit (rabit)"]) {
    for (const c of per) assert.ok(head.includes(`${run} ${c}`), `column "${run} ${c}"`);
  }
  const dash = ["—", "—", "—"];
  // Per layer: five columns of the new run, then the old run's two correlations and three dashes; the old
  // run has no 0.wk at all.
  assert.deepEqual(tableRow(html, "Per layer", "0.wq"), [
    "-0.2000",
    "0.8000",
    "-0.3000",
    "0.350",
    "0.550",
    "-0.2000",
    "0.6000",
    ...dash,
  ]);
  assert.deepEqual(tableRow(html, "Per layer", "0.wk"), [
    "0.1000",
    "0.9000",
    "0.0500",
    "0.520",
    "0.600",
    "—",
    "—",
    ...dash,
  ]);
  assert.deepEqual(tableRow(html, "Per layer", "0.wv"), [...dash, "—", "—", "—", "—", ...dash]);
  // Means skip the k = 1 layer: corr(A₁, A₂) (−0.3 + 0.05) / 2, outer share 0.435, scale ratio 0.575.
  assert.deepEqual(tableRow(html, "Per layer", "mean").slice(2, 5), ["-0.1250", "0.435", "0.575"]);
  assert.deepEqual(tableRow(html, "Per layer", "mean").slice(7), dash);
  const summary = "Means over layers, and the co-adapted fraction";
  assert.deepEqual(tableRow(html, summary, "new.rabit (rabit)").slice(0, 6), [
    "0.0000",
    "0.0000",
    "-0.1250",
    "0.435",
    "0.575",
    "0.000",
  ]);
  assert.deepEqual(tableRow(html, summary, "old.rabit (rabit)").slice(0, 6), [
    "-0.2000",
    "0.6000",
    ...dash,
    "1.000",
  ]);
  assert.doesNotMatch(html, /NaN|undefined|null/);
  // The page says what the new columns are, and which sign the paper reports.
  assert.match(html, /<dt>corr\(A₁, A₂\), weight-level path correlation<\/dt>/);
  assert.match(html, /<dt>outer share<\/dt>/);
  assert.match(html, /<dt>scale ratio<\/dt>/);
  assert.match(html, /The paper's\s+sign is negative/);
});

Deno.test("classifyJson and readReportInput refuse what is not a report input, naming the file", async () => {
  assert.throws(
    () => classifyJson({ foo: 1, bar: 2 }, "x.json"),
    /x\.json: found a JSON object with keys foo, bar; expected a \.rabit file/,
  );
  assert.throws(() => classifyJson([1, 2], "a.json"), /a\.json: found JSON that is not an object/);
  assert.throws(
    () => classifyJson({ ppl: "7", nll: 2 }, "e.json"),
    /e\.json: eval JSON\.ppl must be a finite number/,
  );
  assert.throws(
    () => classifyJson({ train: { m: { batch: 1, seq: 2, cpuMs: 3 } } }, "t.json"),
    /t\.json: bench --train JSON: train\["m"\]\.webgpuMs must be a finite number/,
  );
  assert.throws(
    () => classifyJson({ gemv: 3 }, "g.json"),
    /g\.json: bench JSON: gemv must be an object of shapes/,
  );
  // The whole stdout of a --json command: log lines, then the object.
  assert.deepEqual(parseJsonInput('adapter: x\n{"ppl": 1}\n', "o.txt"), { ppl: 1 });
  assert.throws(
    () => parseJsonInput("hello\nworld", "h.txt"),
    /h\.txt: neither the file nor its last line is JSON/,
  );
  await assert.rejects(
    () => readReportInput(MODEL_PATH),
    /stories260K\.bin: found a binary file that is not a \.rabit/,
  );
  await assert.rejects(
    () => readReportInput("/nonexistent/r.rabit"),
    /Report input not found: \/nonexistent\/r\.rabit/,
  );
  await assert.rejects(() => readReportInputs([]), /expected at least one input file/);
});

Deno.test("report CLI: a tiny trained run + ptq + bench/eval JSON give one standalone page, an <svg> per chart", async () => {
  await using tmp = await tempDir();
  const run = `${tmp.dir}/r.rabit`;
  const ptq = `${tmp.dir}/p.rabit`;
  const tiny = ["--steps", "4", "--batch", "1", "--seq", "32", "--calib-tokens", "256", "--backend", "cpu"];
  const q = await runCli(["quantize", "--out", run, "--method", "rabit", ...tiny]);
  assert.equal(q.code, 0, q.stderr);
  const p = await runCli(["quantize", "--out", ptq, "--method", "ptq", "--calib-tokens", "256"]);
  assert.equal(p.code, 0, p.stderr);
  const files = {
    bench: `${tmp.dir}/train_bench.json`,
    gemv: `${tmp.dir}/gemv_bench.json`,
    eval: `${tmp.dir}/eval.json`,
  };
  await Deno.writeTextFile(files.bench, JSON.stringify(TRAIN_BENCH));
  // As `bench --json > f` leaves it when log lines went to stdout too.
  await Deno.writeTextFile(files.gemv, `adapter: llvmpipe\n${JSON.stringify(GEMV_BENCH)}\n`);
  await Deno.writeTextFile(files.eval, JSON.stringify(evalJson(run, 30.5)));
  const out = `${tmp.dir}/report.html`;
  const r = await runCli([
    "report",
    run,
    ptq,
    files.eval,
    files.bench,
    files.gemv,
    "--out",
    out,
    "--teacher",
    MODEL_PATH,
    "--text",
    DEV_TEXT_PATH,
    "--diag-tokens",
    "256",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const summary = lastJson(r.stdout);
  assert.equal(summary.out, out);
  assert.deepEqual(summary.runs.map((x: { method: string; steps: number }) => [x.method, x.steps]), [
    ["rabit", 4],
    ["ptq", 0],
  ]);
  assert.deepEqual(summary.runs.map((x: { diagnostics: string }) => x.diagnostics), ["computed", "computed"]);
  assert.equal(summary.evals, 1);
  assert.equal(summary.benches, 2);
  const html = await Deno.readTextFile(out);
  assert.equal(new TextEncoder().encode(html).length, summary.bytes);
  // 5 training curves, 3 diagnostics (corr(y₁, y₂), alignment, corr(A₁, A₂)), perplexity, speed-ups.
  assert.equal(summary.charts.length, 10);
  assert.ok(summary.charts.includes("diagnostics-weightCorrelation"));
  // One inline <svg> per chart, each in its figure.
  assert.equal(html.match(/<svg\b/g)?.length, summary.charts.length);
  assert.equal(html.match(/<\/svg>/g)?.length, summary.charts.length);
  for (const id of summary.charts) assert.match(html, new RegExp(`<figure id="chart-${id}"[^>]*>\\n<svg `));
  // Standalone: a complete document with no scripts, links, external resources or URLs of any kind.
  assert.match(html, /^<!DOCTYPE html>\n<html lang="en">/);
  assert.match(html, /<\/html>\n$/);
  assert.doesNotMatch(html, /<script|<link|<iframe|<img|@import|:\/\//i);
  for (const tag of ["table", "section", "figure", "details"]) {
    assert.equal(
      html.match(new RegExp(`<${tag}\\b`, "g"))?.length,
      html.match(new RegExp(`</${tag}>`, "g"))?.length,
      tag,
    );
  }
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length, "element ids are unique across the inlined SVGs");
  // The series names and axis titles, inside the SVGs.
  const svgs = html.match(/<svg\b[\s\S]*?<\/svg>/g)!.join("\n");
  for (
    const text of [
      "r.rabit (rabit)",
      "p.rabit (ptq)",
      "loss (KL + γ·MSE)",
      "KL(teacher ‖ student)",
      "learning rate",
      "step",
      "path correlation",
      "residual alignment",
      "perplexity",
      "speed-up (×)",
      "webgpu vs cpu",
      "packed k=2 vs fp16-storage",
    ]
  ) {
    assert.ok(svgs.includes(text), `"${text}" in a chart`);
  }
  // The numbers again as tables, and what the ptq run lacks.
  assert.match(html, /<caption>Training log: means over spans of steps/);
  assert.match(html, /p\.rabit \(ptq\): no training curves — method ptq does not train\./);
  assert.match(html, /<td class="num">30\.5<\/td>/);
  assert.match(html, /<th scope="row">stories260K<\/th><td>4×128<\/td><td class="num">900<\/td>/);

  // An eval JSON that carries the ptq run's diagnostics leaves nothing to compute: the diagnostics
  // options are refused, after reading the inputs and before any page is written.
  const evalDiag = `${tmp.dir}/eval_diag.json`;
  await Deno.writeTextFile(
    evalDiag,
    JSON.stringify({ ...evalJson(ptq, 40), diagnostics: handDiagnostics([[0.1, 0.2]]) }),
  );
  const refusedOut = `${tmp.dir}/refused.html`;
  const refused = await runCli([
    "report",
    ptq,
    evalDiag,
    files.bench,
    "--out",
    refusedOut,
    "--teacher",
    MODEL_PATH,
  ]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(
    refused.stderr.trim(),
    "error: report: --teacher is used only to compute diagnostics, and no input needs them " +
      "(no .rabit with k ≥ 2 lacks stored diagnostics); drop --teacher",
  );
  await assert.rejects(() => Deno.stat(refusedOut), Deno.errors.NotFound);
});

Deno.test("report CLI refuses bad calls and inputs with exit codes and messages that say what to do", async () => {
  await using tmp = await tempDir();
  const bad = `${tmp.dir}/bad.json`;
  await Deno.writeTextFile(bad, JSON.stringify({ hello: "world" }));
  const bench = `${tmp.dir}/bench.json`;
  await Deno.writeTextFile(bench, JSON.stringify(TRAIN_BENCH));
  // A float model as a .rabit: no binarized layers, so no diagnostics to compute.
  const float = `${tmp.dir}/float.rabit`;
  const f = await runCli(["export", MODEL_PATH, "--out", float, "--vocab-dtype", "f32"]);
  assert.equal(f.code, 0, f.stderr);
  const cases: [string[], number, RegExp][] = [
    [["report", "--out", `${tmp.dir}/o.html`], 2, /report: expected at least one input/],
    [["report", bad], 2, /report: --out F is required/],
    [["report", bad, "--out", bad], 2, /--out .*bad\.json is also an input/],
    [
      ["report", bad, "--out", `${tmp.dir}/o.html`, "--no-diagnostics", "--teacher", MODEL_PATH],
      2,
      /--teacher has no use with --no-diagnostics/,
    ],
    [
      ["report", bad, "--out", `${tmp.dir}/o.html`],
      1,
      /bad\.json: found a JSON object with keys hello; expected a \.rabit file/,
    ],
    [
      ["report", `${tmp.dir}/missing.rabit`, "--out", `${tmp.dir}/o.html`],
      1,
      /Report input not found: .*missing\.rabit/,
    ],
    [["report", MODEL_PATH, "--out", `${tmp.dir}/o.html`], 1, /found a binary file that is not a \.rabit/],
    // Options that only feed diagnostics, with no input that needs any computed.
    [
      ["report", bench, "--out", `${tmp.dir}/o.html`, "--teacher", MODEL_PATH],
      2,
      /^error: report: --teacher is used only to compute diagnostics, and no input needs them \(no \.rabit with k ≥ 2 lacks stored diagnostics\); drop --teacher\n$/,
    ],
    [
      ["report", float, bench, "--out", `${tmp.dir}/o.html`, "--text", DEV_TEXT_PATH, "--diag-tokens", "64"],
      2,
      /^error: report: --text, --diag-tokens are used only to compute diagnostics, and no input needs them .*; drop them\n$/,
    ],
  ];
  for (const [args, code, message] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const help = await runCli(["report", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: rabit report/);
  // Nothing was written by the refused calls.
  assert.deepEqual([...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort(), [
    "bad.json",
    "bench.json",
    "float.rabit",
  ]);
});
