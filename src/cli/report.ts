// `rabit report`: one self-contained HTML page of training curves, path diagnostics, perplexity and
// speed-ups from .rabit files and the JSON that eval and bench print.

import { basename, dirname, join, resolve } from "node:path";
import { numberOption, parseCommand, printJson, UsageError } from "./args.ts";
import { readTextOrThrow } from "./text.ts";
import { openModel } from "../io/load_model.ts";
import { resolveModelPath } from "../io/model_paths.ts";
import { writeFileAtomic } from "../io/container.ts";
import { configDifferences, pathDiagnostics } from "../eval/diagnostics.ts";
import { perplexityTokens } from "../eval/perplexity.ts";
import { splitHoldout } from "../train/data.ts";
import type { LlamaModel } from "../model/model.ts";
import { readReportInputs, type ReportInputs, type RunInput } from "../report/inputs.ts";
import { renderReport } from "../report/report.ts";

/** Tokens the report's diagnostics run on unless --diag-tokens says otherwise. */
export const REPORT_DIAGNOSTICS_TOKENS = 2048;
/** The held-out fraction of the text the diagnostics run on (quantize's default --holdout). */
export const REPORT_HOLDOUT = 0.1;

export const REPORT_HELP =
  `rabit report — an HTML report of runs: training curves, diagnostics, perplexity, speed

Usage: rabit report RUN.rabit [MORE.rabit ...] [EVAL.json ...] [BENCH.json ...] --out report.html
                    [--teacher M.bin] [--text F] [--holdout P] [--diag-tokens N] [--no-diagnostics]
                    [--title T] [--json]

Inputs, recognised by content (at least one; any mix):
  .rabit            a quantized model: its method, options and bits/weight, and when it was trained its
                    log (loss, KL, MSE, learning rate, gradient norm per step) as training curves
  eval --json       perplexity of a model on a text (a bar per input); with eval --teacher, the diagnostics
                    of the .rabit it scored (same path), which are then not computed again
  bench --json      GEMV ms (WebGPU or --backend wasm) and decode tokens/s: speed-up bars
  bench --train --json   ms of a training step on the CPU and WebGPU: speed-up bars
A JSON file may be the whole stdout of the command: its last line is read when the whole is not JSON.

Path diagnostics (METHOD.md §6: per-layer path correlation and residual alignment, and the paths'
correlation as matrices, corr(A₁, A₂)) are taken from the
.rabit's metadata or an eval JSON when there, else computed with the full-precision teacher on the
held-out end of a text (the part quantize never trained on). --teacher, --text, --holdout and
--diag-tokens are refused when no input needs diagnostics computed.

Writes one HTML file with the charts as inline SVG (Vega-Lite rendered by Vega, no browser needed) and
every number also as a table; no scripts, no external URLs. Written atomically.

Options:
  --out F           the HTML file to write (required)
  --teacher M       full-precision llama2.c .bin the runs were quantized from, same config
                    (default: $RABIT_MODEL, then ../shared/data/stories260K.bin)
  --text F          text for the diagnostics (default: tinystories_dev.txt next to the teacher)
  --holdout P       run the diagnostics on the last P of the text, cut as quantize --holdout cuts it
                    (default ${REPORT_HOLDOUT}; 0: from the start of the text)
  --diag-tokens N   diagnostics run on at most N tokens (default ${REPORT_DIAGNOSTICS_TOKENS})
  --no-diagnostics  draw only the diagnostics stored in the inputs; compute none
  --title T         the page title (default: "rabit report: " and the runs)
  --json            print one JSON object as the last line: out, bytes, charts, runs, evals, benches
  -h, --help        show this help`;

interface DiagnosticsOptions {
  teacher?: string;
  text?: string;
  holdout: number;
  maxTokens: number;
  log: (line: string) => void;
}

/**
 * The runs whose diagnostics must be computed (binarized layers with k ≥ 2 and none stored or given by an
 * eval JSON), and notes on the runs that cannot have any.
 */
function diagnosticsTodo(inputs: ReportInputs): { todo: RunInput[]; notes: string[] } {
  const notes: string[] = [];
  const todo: RunInput[] = [];
  for (const r of inputs.runs) {
    if (r.diagnostics) continue;
    if (r.binarizedLayers === 0) notes.push(`${r.label}: no binarized layers, so no paths to compare.`);
    else if (r.maxPaths < 2) notes.push(`${r.label}: k = 1, no second path to compare.`);
    else todo.push(r);
  }
  return { todo, notes };
}

/**
 * Computes the diagnostics of the runs in `todo` (see {@link diagnosticsTodo}). The teacher and the text
 * are loaded once, and only when some run needs them.
 */
async function addDiagnostics(todo: RunInput[], o: DiagnosticsOptions): Promise<void> {
  if (!todo.length) return;
  const teacherPath = resolveModelPath(o.teacher);
  let teacher: LlamaModel;
  try {
    teacher = (await openModel(teacherPath)).model;
  } catch (e) {
    throw new UsageError(
      `report: the diagnostics of ${todo[0].label} need the full-precision teacher, and ${
        (e as Error).message
      }; pass --teacher M.bin, or --no-diagnostics`,
    );
  }
  if (teacher.quantized.size > 0) {
    throw new UsageError(
      `--teacher ${teacherPath}: expected a full-precision model (a llama2.c .bin), found a quantized .rabit file`,
    );
  }
  const textPath = o.text ?? join(dirname(teacherPath), "tinystories_dev.txt");
  let whole: string;
  try {
    whole = await readTextOrThrow(textPath);
  } catch (e) {
    throw new UsageError(
      `report: the diagnostics run on a text, and ${
        (e as Error).message
      }; pass --text F, or --no-diagnostics`,
    );
  }
  const text = o.holdout > 0 ? splitHoldout(whole, o.holdout).heldOut : whole;
  if (!text.length) {
    throw new UsageError(`report: the held-out ${o.holdout} of ${textPath} is empty; pass a longer --text`);
  }
  for (const r of todo) {
    const diff = configDifferences(r.config, teacher.config);
    if (diff.length) {
      throw new UsageError(
        `report: ${r.path} does not fit the teacher ${teacherPath} (model vs teacher: ${diff.join(", ")}); ` +
          "pass --teacher with the float model it was quantized from, or --no-diagnostics",
      );
    }
    const tokenizer = r.opened.tokenizer;
    if (!tokenizer) {
      throw new UsageError(
        `report: ${r.path} embeds no tokenizer, so the diagnostics text cannot be encoded; --no-diagnostics skips them`,
      );
    }
    const ids = perplexityTokens((t) => tokenizer.encode(t), text);
    r.diagnostics = pathDiagnostics({ student: r.opened.model, teacher }, ids, { maxTokens: o.maxTokens });
    r.diagnosticsSource = {
      kind: "computed",
      text: basename(textPath),
      holdout: o.holdout,
      teacher: teacherPath,
    };
    o.log(
      `diagnostics of ${r.label}: ${r.diagnostics.tokens} tokens in ${r.diagnostics.seconds.toFixed(1)} s`,
    );
  }
}

/** Runs `report` with argv (after the command name). */
export async function runReport(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand("report", argv, {
    out: { type: "string" },
    teacher: { type: "string" },
    text: { type: "string" },
    holdout: { type: "string" },
    "diag-tokens": { type: "string" },
    "no-diagnostics": { type: "boolean" },
    title: { type: "string" },
    json: { type: "boolean" },
  }, true);
  if (values.help) return console.log(REPORT_HELP);
  if (!positionals.length) {
    throw new UsageError("report: expected at least one input (a .rabit file, or eval / bench JSON)");
  }
  if (!values.out) throw new UsageError("report: --out F is required (the HTML file to write)");
  const clash = positionals.find((p) => resolve(p) === resolve(values.out!));
  if (clash) throw new UsageError(`report: --out ${values.out} is also an input; write the report elsewhere`);
  const noDiag = values["no-diagnostics"] === true;
  const diagOnly = (["teacher", "text", "holdout", "diag-tokens"] as const).filter((k) =>
    values[k] !== undefined
  ).map((k) => `--${k}`);
  if (noDiag && diagOnly.length) {
    throw new UsageError(`report: ${diagOnly[0]} has no use with --no-diagnostics`);
  }
  const holdout = numberOption(values, "holdout", { min: 0, max: 0.9 }) ?? REPORT_HOLDOUT;
  const maxTokens = numberOption(values, "diag-tokens", { integer: true, min: 1 }) ??
    REPORT_DIAGNOSTICS_TOKENS;
  const log = (line: string) => values.json ? console.error(line) : console.log(line);
  const start = performance.now();

  const inputs = await readReportInputs(positionals);
  let notes: string[];
  if (noDiag) {
    notes = inputs.runs.filter((r) => !r.diagnostics).map((r) =>
      `${r.label}: diagnostics not computed (--no-diagnostics).`
    );
  } else {
    const plan = diagnosticsTodo(inputs);
    // Known once the inputs are read, before the teacher is loaded or anything is computed or written.
    if (!plan.todo.length && diagOnly.length) {
      const [is, drop] = diagOnly.length === 1 ? ["is", diagOnly[0]] : ["are", "them"];
      throw new UsageError(
        `report: ${diagOnly.join(", ")} ${is} used only to compute diagnostics, and no input needs them ` +
          `(no .rabit with k ≥ 2 lacks stored diagnostics); drop ${drop}`,
      );
    }
    notes = plan.notes;
    await addDiagnostics(plan.todo, { teacher: values.teacher, text: values.text, holdout, maxTokens, log });
  }
  const { html, charts } = await renderReport(inputs, { title: values.title, notes });
  const bytes = new TextEncoder().encode(html);
  await writeFileAtomic(values.out, bytes);

  const summary = {
    out: values.out,
    bytes: bytes.length,
    charts: charts.map((c) => c.id),
    runs: inputs.runs.map((r) => ({
      path: r.path,
      label: r.label,
      method: r.method,
      steps: r.log?.losses.length ?? 0,
      bitsPerWeight: r.bitsPerWeight,
      diagnostics: r.diagnosticsSource?.kind ?? null,
    })),
    evals: inputs.evals.length,
    benches: inputs.benches.length + inputs.trainBenches.length,
    seconds: (performance.now() - start) / 1000,
  };
  if (values.json) return printJson(summary);
  console.log(
    `wrote ${values.out}: ${bytes.length} bytes, ${charts.length} charts (${
      summary.charts.join(", ") || "none"
    }), ` +
      `${inputs.runs.length} runs, ${inputs.evals.length} evals, ${summary.benches} bench files`,
  );
  for (const n of notes) console.log(`note: ${n}`);
}
