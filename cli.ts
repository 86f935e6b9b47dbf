// The rabit command line: one library call per command. `deno run -A cli.ts <command> --help`.

import { UsageError } from "./src/cli/args.ts";
import { BENCH_HELP, runBench } from "./src/cli/bench.ts";
import { DEMO_HELP, runDemo } from "./src/cli/demo.ts";
import { EVAL_HELP, runEval } from "./src/cli/eval.ts";
import {
  EXPORT_HELP,
  EXPORT_STATE_HELP,
  IMPORT_STATE_HELP,
  runExport,
  runExportState,
  runImportState,
} from "./src/cli/export.ts";
import { GENERATE_HELP, runGenerate } from "./src/cli/generate.ts";
import { INSPECT_HELP, runInspect } from "./src/cli/inspect.ts";
import { QUANTIZE_HELP, runQuantize } from "./src/cli/quantize.ts";
import { REPORT_HELP, runReport } from "./src/cli/report.ts";
import { args, env, exit } from "./src/util/process.ts";

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; help: string }> = {
  quantize: { run: runQuantize, help: QUANTIZE_HELP },
  eval: { run: runEval, help: EVAL_HELP },
  generate: { run: runGenerate, help: GENERATE_HELP },
  inspect: { run: runInspect, help: INSPECT_HELP },
  bench: { run: runBench, help: BENCH_HELP },
  demo: { run: runDemo, help: DEMO_HELP },
  export: { run: runExport, help: EXPORT_HELP },
  "export-state": { run: runExportState, help: EXPORT_STATE_HELP },
  "import-state": { run: runImportState, help: IMPORT_STATE_HELP },
  report: { run: runReport, help: REPORT_HELP },
};

const HELP = `rabit — residual-aware binarization (RaBiT) of Llama models, and bit-packed inference

Usage: deno run -A cli.ts <command> [options]

Commands:
${
  Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.help.split("\n")[0].split(" — ")[1]}`)
    .join("\n")
}

Run "deno run -A cli.ts <command> --help" for a command's options.`;

/** Runs the CLI on argv and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(HELP);
    return command ? 0 : 2;
  }
  const entry = COMMANDS[command];
  try {
    if (!entry) {
      throw new UsageError(
        `unknown command "${command}"; expected one of ${Object.keys(COMMANDS).join(", ")}`,
      );
    }
    await entry.run(rest);
    return 0;
  } catch (e) {
    const err = e as Error;
    console.error(`error: ${err.message}`);
    if (env("RABIT_DEBUG")) console.error(err.stack);
    return e instanceof UsageError ? 2 : 1;
  }
}

// Under Node (no import.meta.main before Node 24) the npm package's `rabit` bin, src/cli/bin.ts, calls main.
if (import.meta.main) exit(await main(args()));
