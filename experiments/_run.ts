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

/** `text` as `deno fmt` formats a markdown file (the repository's check requires formatted markdown). */
export async function formatMarkdownText(text: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "-q", "--ext", "md", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const r = await child.output();
  if (r.code !== 0) throw new Error(`deno fmt exited with ${r.code}: ${new TextDecoder().decode(r.stderr)}`);
  return new TextDecoder().decode(r.stdout);
}

/** Writes `text` formatted as {@link formatMarkdownText} gives it, through a temporary file and a rename. */
export async function writeMarkdown(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(await formatMarkdownText(text)));
}

/** A script called wrongly: `script: message` and its usage line on stderr, exit 2. */
export function usageExit(script: string, usage: string, message: string): never {
  console.error(`${script}: ${message}\n${usage}`);
  Deno.exit(2);
}

/** `--name`'s value `text` as an integer ≥ 1, or {@link usageExit} naming what was found. */
export function positiveIntOrExit(script: string, usage: string, name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    usageExit(script, usage, `--${name} expects an integer ≥ 1, got "${text}"`);
  }
  return n;
}

/**
 * A script's own arguments and the ones after "--" that it passes to `cli.ts quantize` (none without "--").
 *
 * @example
 * ```ts
 * import { splitAtDash } from "./_run.ts";
 * splitAtDash(["--seeds", "1", "--", "--paths", "3"]); // { own: ["--seeds", "1"], passed: ["--paths", "3"] }
 * ```
 */
export function splitAtDash(args: readonly string[]): { own: string[]; passed: string[] } {
  const dash = args.indexOf("--");
  return dash < 0
    ? { own: [...args], passed: [] }
    : { own: args.slice(0, dash), passed: args.slice(dash + 1) };
}

/**
 * The value of `name` (`--name V` or `--name=V`) among the options a script passes on to `cli.ts`, or
 * undefined when it is not there; {@link usageExit} with "`name` expects `what`" when it has no value.
 */
export function passedOptionValue(
  script: string,
  usage: string,
  options: readonly string[],
  name: string,
  what = "a value",
): string | undefined {
  const at = options.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (at < 0) return undefined;
  const value = options[at].includes("=") ? options[at].slice(name.length + 1) : options[at + 1];
  if (value === undefined || value.startsWith("--")) usageExit(script, usage, `${name} expects ${what}`);
  return value;
}

/** Runs `work` on every item, at most `jobs` at once; the results in the items' order. */
export async function runPool<T, R>(
  items: readonly T[],
  jobs: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
  return out;
}

/**
 * Runs `parse` (a node:util parseArgs call) and turns what it throws (an unknown option, an option without
 * its value) into {@link usageExit}; so does an option given twice in `args` before a "--" (parseArgs would
 * keep the last one silently; no script here takes an option more than once).
 */
export function parseOrExit<T>(script: string, usage: string, parse: () => T, args = Deno.args): T {
  let parsed: T;
  try {
    parsed = parse();
  } catch (e) {
    return usageExit(script, usage, (e as Error).message);
  }
  const repeated = repeatedOption(args);
  if (repeated !== undefined) usageExit(script, usage, `--${repeated} given twice; give it once`);
  return parsed;
}

/**
 * The first long option named twice in `args` before a "--" (`--x v` or `--x=v`), or undefined.
 *
 * @example
 * ```ts
 * import { repeatedOption } from "./_run.ts";
 * repeatedOption(["--seed", "1", "--json", "--seed=2"]); // "seed"
 * repeatedOption(["--seed", "1", "--", "--seed", "2"]); // undefined: after "--" the options are another command's
 * ```
 */
export function repeatedOption(args: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const arg of args) {
    if (arg === "--") break;
    const name = /^--([^=]+)/.exec(arg)?.[1];
    if (name === undefined) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}
