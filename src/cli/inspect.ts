// `rabit inspect FILE`: what a model file holds — format, config, parameter count, bytes by group —
// and, with --diagnose, the inter-path diagnostics of a .rabit file against its teacher (METHOD.md §6).

import { numberOption, parseCommand, printJson, UsageError } from "./args.ts";
import { openModel } from "../io/load_model.ts";
import { inspectModel, type ModelReport } from "../eval/inspect.ts";
import { DIAGNOSTICS_TOKENS, type PathDiagnostics, pathDiagnostics } from "../eval/diagnostics.ts";
import { perplexityTokens } from "../eval/perplexity.ts";
import { readTextOrThrow } from "./text.ts";
import { openTeacher, printDiagnostics, requirePacked } from "./diagnose.ts";

export const INSPECT_HELP = `rabit inspect — describe a model file

Usage: rabit inspect FILE [--json]
       rabit inspect FILE.rabit --diagnose --text F [--teacher M.bin] [--tokens N] [--json]

Shows the format, the config, the parameter count and the bytes of each tensor group
(for .rabit files also bits per weight and per-layer reconstruction error when known).

With --diagnose, also runs the packed model on a text and reports, for every binarized layer, the
path correlation corr(y_1, y_2) and the residual alignment corr(y_t − y_1, y_2), where y_i are the
paths' outputs and y_t the full-precision teacher layer's output on the same input (METHOD.md §6);
for k ≥ 3 also each later path's alignment corr(y_t − Σ_{j<i} y_j, y_i).

Options:
  --diagnose       run the inter-path diagnostics (.rabit files only)
  --text F         text to run the model on (required with --diagnose)
  --teacher M      the full-precision llama2.c .bin the file was quantized from, same config
                   (default: $RABIT_MODEL, then ../shared/data/stories260K.bin)
  --tokens N       use at most the first N tokens of the text (default ${DIAGNOSTICS_TOKENS})
  --context N      window length in tokens (default: the model's seq_len)
  --tokenizer T    llama2.c tokenizer.bin or Hugging Face tokenizer.json (default: embedded in the
                   model file, or found next to it)
  --json           print one JSON object as the last line (with --diagnose: plus "diagnostics")
  -h, --help       show this help`;

/** Runs `inspect` with argv (after the command name). */
export async function runInspect(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand("inspect", argv, {
    json: { type: "boolean" },
    diagnose: { type: "boolean" },
    text: { type: "string" },
    teacher: { type: "string" },
    tokens: { type: "string" },
    context: { type: "string" },
    tokenizer: { type: "string" },
  }, true);
  if (values.help) return console.log(INSPECT_HELP);
  if (positionals.length !== 1) {
    throw new UsageError(`inspect: expected one FILE, found ${positionals.length} arguments`);
  }
  const diagnoseOnly = (["text", "teacher", "tokens", "context", "tokenizer"] as const).filter((k) =>
    values[k] !== undefined
  );
  if (!values.diagnose && diagnoseOnly.length) {
    throw new UsageError(`inspect: --${diagnoseOnly[0]} applies only with --diagnose`);
  }
  if (values.diagnose && !values.text) {
    throw new UsageError("inspect: --diagnose needs --text F (the text to run the model on)");
  }
  const maxTokens = numberOption(values, "tokens", { integer: true, min: 1 });
  const context = numberOption(values, "context", { integer: true, min: 1 });
  if (context !== undefined && maxTokens !== undefined && context > maxTokens) {
    throw new UsageError(
      `inspect: --context ${context} is longer than --tokens ${maxTokens}, so no window of it fits; ` +
        "lower --context or raise --tokens",
    );
  }
  const opened = await openModel(positionals[0], {
    tokenizer: values.tokenizer,
    requireTokenizer: values.diagnose,
  });
  const report: ModelReport & { diagnostics?: PathDiagnostics } = inspectModel(opened);
  if (values.diagnose) {
    requirePacked("inspect --diagnose", opened);
    if (context !== undefined && context > opened.model.config.seqLen) {
      throw new UsageError(
        `inspect: --context must be from 1 to ${opened.model.config.seqLen} (the model's seq_len), found ${context}`,
      );
    }
    const teacher = await openTeacher(values.teacher, opened);
    const text = await readTextOrThrow(values.text!);
    const ids = perplexityTokens((t) => opened.tokenizer!.encode(t), text);
    report.diagnostics = pathDiagnostics({ student: opened.model, teacher }, ids, { maxTokens, context });
  }
  if (values.json) return printJson(report);
  const c = report.config;
  console.log(`file        ${report.path}`);
  console.log(`format      ${report.format}`);
  console.log(
    `config      dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads ` +
      `(${c.nKvHeads} kv), vocab ${c.vocabSize}, seq_len ${c.seqLen}, ${
        c.sharedClassifier ? "shared" : "separate"
      } classifier`,
  );
  console.log(`parameters  ${report.parameters.toLocaleString("en-US")}`);
  console.log(`tokenizer   ${report.tokenizer ?? "none found"}`);
  console.log("bytes by tensor group:");
  for (const g of report.groups) {
    console.log(
      `  ${g.group.padEnd(12)} ${String(g.parameters).padStart(12)} params ${
        String(g.bytes).padStart(12)
      } bytes` +
        `  ${g.bitsPerWeight.toFixed(3)} bits/weight`,
    );
  }
  if (report.method) {
    console.log(`method      ${report.method} ${JSON.stringify(report.options)}`);
    console.log(`binarized   ${report.bitsPerWeight!.toFixed(3)} bits/weight (sign planes + fp16 scales)`);
    console.log("layers:");
    for (const l of report.layers ?? []) {
      const err = l.relError !== undefined ? `  rel. error ${l.relError.toFixed(4)}` : "";
      console.log(
        `  ${l.name.padEnd(16)} ${l.out}x${l.in} k=${l.k}  ${l.bitsPerWeight.toFixed(3)} bits/weight${err}`,
      );
    }
  }
  console.log(
    `  ${"total".padEnd(12)} ${String(report.parameters).padStart(12)} params ${
      String(report.bytes).padStart(12)
    } bytes`,
  );
  if (report.diagnostics) printDiagnostics(report.diagnostics, true);
}
