// `rabit inspect FILE`: what a model file holds — format, config, parameter count, bytes by group.

import { parseCommand, printJson, UsageError } from "./args.ts";
import { openModel } from "../io/load_model.ts";
import { inspectModel } from "../eval/inspect.ts";

export const INSPECT_HELP = `rabit inspect — describe a model file

Usage: rabit inspect FILE [--json]

Shows the format, the config, the parameter count and the bytes of each tensor group
(for .rabit files also bits per weight and per-layer reconstruction error when known).

Options:
  --json       print one JSON object as the last line
  -h, --help   show this help`;

/** Runs `inspect` with argv (after the command name). */
export async function runInspect(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand("inspect", argv, { json: { type: "boolean" } }, true);
  if (values.help) return console.log(INSPECT_HELP);
  if (positionals.length !== 1) {
    throw new UsageError(`inspect: expected one FILE, found ${positionals.length} arguments`);
  }
  const opened = await openModel(positionals[0]);
  const report = inspectModel(opened);
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
}
