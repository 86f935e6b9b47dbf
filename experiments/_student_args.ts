// The command line the student-versus-teacher experiments share (fit_gap.ts, layer_sensitivity.ts,
// excess_profile.ts): STUDENT.rabit TEXT [--holdout P] [--windows N] [--teacher M.bin] [--json], plus a
// script's own options, both models opened. A bad call (an unknown option, a missing argument, a holdout
// outside (0, 1), an unreadable model) exits 2 with the reason and the usage line.

import { parseArgs } from "node:util";
import { openModel } from "../src/io/load_model.ts";
import { parseOrExit, usageExit } from "./_run.ts";

/** A script's own string options: name → default. */
export type ExtraOptions = Record<string, string>;

/**
 * Parses Deno.args for `script` (its file name, for the usage line) and opens the teacher and student.
 * `extra` adds string options with their defaults (their values come back in `extra`); `extraUsage`
 * describes them in the usage line.
 */
export async function studentExperimentArgs(script: string, extra: ExtraOptions = {}, extraUsage = "") {
  const usage = `Usage: deno run -A experiments/${script} STUDENT.rabit TEXT [--holdout P] [--windows N] ` +
    `[--teacher M.bin]${extraUsage ? ` ${extraUsage}` : ""} [--json]`;
  const fail = (message: string): never => usageExit(script, usage, message);
  const { values, positionals } = parseOrExit(script, usage, () =>
    parseArgs({
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
        ...Object.fromEntries(
          Object.entries(extra).map(([name, value]) => [name, { type: "string" as const, default: value }]),
        ),
      },
    }));
  if (positionals.length !== 2) {
    fail(`expected STUDENT.rabit and TEXT, found ${positionals.length} arguments`);
  }
  const [studentPath, textPath] = positionals;
  const holdout = Number(values.holdout);
  if (!(holdout > 0 && holdout < 1)) {
    fail(`--holdout expects a fraction in (0, 1), found "${values.holdout}"`);
  }
  const maxWindows = Number(values.windows);
  if (!(Number.isInteger(maxWindows) && maxWindows >= 1)) {
    fail(`--windows expects an integer ≥ 1, found "${values.windows}"`);
  }
  const open = (path: string) =>
    openModel(path, { requireTokenizer: true }).catch((e: Error) =>
      fail(`cannot open ${path}: ${e.message}`)
    );
  const text = await Deno.readTextFile(textPath).catch((e: Error) =>
    fail(`cannot read ${textPath}: ${e.message}`)
  );
  const given = values as Record<string, string | boolean | undefined>;
  return {
    studentPath,
    textPath,
    text,
    holdout,
    maxWindows,
    json: values.json === true,
    teacher: await open(values.teacher!),
    student: await open(studentPath),
    extra: Object.fromEntries(Object.keys(extra).map((name) => [name, String(given[name])])),
    fail,
  };
}
