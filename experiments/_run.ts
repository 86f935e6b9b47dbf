// What the experiment scripts share (ablation.ts, test_tail.ts, …): the repository's paths, running one
// `cli.ts` command for its JSON line, and result files written atomically so an interrupted script leaves
// the last complete state.

import { writeFileAtomic } from "../src/io/container.ts";

/** The repository root (with a trailing slash) and the shared data beside it. */
export const ROOT = new URL("..", import.meta.url).pathname;
export const DATA = `${ROOT}../shared/data`;
export const TEXT = `${DATA}/tinystories_dev.txt`;
export const WIKI = `${DATA}/wikitext2_test.raw`;

export interface Json {
  [key: string]: unknown;
}

/** Runs `cli.ts ARGS` (its progress on our stderr) and parses the JSON object on its last stdout line. */
export async function cli(args: string[]): Promise<Json> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli.ts`, ...args],
    stdout: "piped",
    stderr: "inherit",
  });
  const r = await cmd.output();
  const out = new TextDecoder().decode(r.stdout).trim().split("\n").at(-1) ?? "";
  if (r.code !== 0) throw new Error(`cli.ts ${args.join(" ")} exited with ${r.code}`);
  return JSON.parse(out);
}

/** The command as a reader reruns it from the repository root. */
export const show = (args: string[]) => `deno run -A cli.ts ${args.join(" ").replaceAll(ROOT, "")}`;

/** A JSON file's object, or {} when the file does not exist yet. */
export async function readJson(path: string): Promise<Json> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw e;
  }
}

/** Writes `value` as indented JSON through a temporary file and a rename (never half a file). */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n"));
}

/** A script called wrongly: `script: message` and its usage line on stderr, exit 2. */
export function usageExit(script: string, usage: string, message: string): never {
  console.error(`${script}: ${message}\n${usage}`);
  Deno.exit(2);
}

/**
 * Runs `parse` (a node:util parseArgs call) and turns what it throws (an unknown option, an option without
 * its value) into {@link usageExit}.
 */
export function parseOrExit<T>(script: string, usage: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    return usageExit(script, usage, (e as Error).message);
  }
}
