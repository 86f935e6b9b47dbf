// Runs cli.ts in a child process, as a user would, and captures its output and exit code.

import { fileURLToPath } from "node:url";
import type { BackendName } from "../src/backend/backend.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

/** Exit code, stdout and stderr of `deno run -A cli.ts ...args`. */
export function runCli(args: string[], env: Record<string, string> = {}) {
  return runScript(CLI, args, env);
}

/** Exit code, stdout and stderr of `deno run -A SCRIPT ...args` (a script of this repository, by path). */
export async function runScript(script: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A fresh temporary directory removed by the returned cleanup. */
export async function tempDir(): Promise<{ dir: string; [Symbol.asyncDispose]: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "rabit-test-" });
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/** The last stdout line of a `--json` command, parsed (progress and notes go before it or to stderr). */
// deno-lint-ignore no-explicit-any
export function lastJson(stdout: string): any {
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

/** What the tests vary of `cli.ts eval`; unset options keep the CLI's defaults. */
export interface EvalCliOptions {
  context?: number;
  maxWindows?: number;
  holdout?: number;
  backend?: BackendName;
}

/**
 * Runs `cli.ts eval --model M --text T … --json` and returns its JSON report; a non-zero exit throws with the
 * command's stderr, so a failing eval names its own cause.
 */
// deno-lint-ignore no-explicit-any
export async function evalCli(model: string, text: string, o: EvalCliOptions = {}): Promise<any> {
  const args = ["eval", "--model", model, "--text", text];
  if (o.context !== undefined) args.push("--context", String(o.context));
  if (o.maxWindows !== undefined) args.push("--max-windows", String(o.maxWindows));
  if (o.holdout !== undefined) args.push("--holdout", String(o.holdout));
  if (o.backend !== undefined) args.push("--backend", o.backend);
  const r = await runCli([...args, "--json"]);
  if (r.code !== 0) throw new Error(`${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return lastJson(r.stdout);
}
