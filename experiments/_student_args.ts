// The command line the student-versus-teacher experiments share (fit_gap.ts, layer_sensitivity.ts):
// STUDENT.rabit TEXT [--holdout P] [--windows N] [--teacher M.bin] [--json], both models opened.

import { parseArgs } from "node:util";
import { openModel } from "../src/io/load_model.ts";

/** Parses Deno.args for `script` (its file name, for the usage line) and opens the teacher and student. */
export async function studentExperimentArgs(script: string) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      holdout: { type: "string", default: String(1 / 9) },
      windows: { type: "string", default: "47" },
      teacher: {
        type: "string",
        default: new URL("../../shared/data/stories260K.bin", import.meta.url).pathname,
      },
      json: { type: "boolean" },
    },
  });
  const [studentPath, textPath] = positionals;
  if (!studentPath || !textPath) {
    console.error(
      `Usage: deno run -A experiments/${script} STUDENT.rabit TEXT [--holdout P] [--windows N] [--teacher M.bin] [--json]`,
    );
    Deno.exit(2);
  }
  return {
    studentPath,
    textPath,
    holdout: Number(values.holdout),
    maxWindows: Number(values.windows),
    json: values.json === true,
    teacher: await openModel(values.teacher!, { requireTokenizer: true }),
    student: await openModel(studentPath, { requireTokenizer: true }),
  };
}
