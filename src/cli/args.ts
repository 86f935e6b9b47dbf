// Argument parsing shared by the CLI commands: node:util parseArgs (what Deno and Node both ship),
// strict, with typed number options and usage errors that say how to fix them.

import { parseArgs } from "node:util";

/** A mistake in how a command was called: printed with the command's help hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Option specs in parseArgs' format. */
export type OptionSpecs = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

/** The parsed values of `specs` (plus help) and the positionals. */
export interface ParsedCommand<T extends OptionSpecs> {
  values: { [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string } & { help?: boolean };
  positionals: string[];
}

/** Parses argv strictly against `specs` (plus --help); unknown options become UsageErrors. */
export function parseCommand<T extends OptionSpecs>(
  command: string,
  argv: string[],
  specs: T,
  allowPositionals = false,
): ParsedCommand<T> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...specs, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals,
      tokens: true,
    });
  } catch (e) {
    throw new UsageError(
      `${command}: ${parseArgsReason((e as Error).message)}. Run "rabit ${command} --help" for the options.`,
    );
  }
  refuseRepeatedOptions(command, parsed.tokens, specs);
  return { values: parsed.values, positionals: parsed.positionals } as unknown as ParsedCommand<T>;
}

/**
 * parseArgs keeps the last of an option given twice; a command line that names one twice ("--text a
 * --text b") would run with one of them and never read the other, so that is a usage error unless the
 * option takes several values (`multiple`).
 */
function refuseRepeatedOptions(
  command: string,
  tokens: { kind: string; name?: string; value?: string }[],
  specs: OptionSpecs,
): void {
  const seen = new Map<string, string | undefined>();
  for (const t of tokens) {
    if (t.kind !== "option" || !t.name || t.name === "help" || specs[t.name]?.multiple) continue;
    if (seen.has(t.name)) {
      const values = [seen.get(t.name), t.value].filter((v) => v !== undefined).map((v) => JSON.stringify(v));
      throw new UsageError(
        `${command}: --${t.name} given twice${values.length ? ` (${values.join(", ")})` : ""}; give it once`,
      );
    }
    seen.set(t.name, t.value);
  }
}

/**
 * node:util parseArgs's message as one line without a final period. Its message for a value that starts
 * with a dash ("--lr -1") spans three lines; it becomes one that says what to write instead.
 *
 * @example
 * ```ts
 * import { parseArgsReason } from "./args.ts";
 * parseArgsReason("Unknown option '--x'"); // "Unknown option '--x'"
 * parseArgsReason("Option '--lr' argument is ambiguous.\nDid you forget ...?\nTo specify ... '--lr=-XYZ'.");
 * // "--lr takes a value, and the argument after it starts with a dash: write --lr=VALUE for a value that …"
 * ```
 */
export function parseArgsReason(message: string): string {
  const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(message);
  if (ambiguous) {
    const opt = ambiguous[1];
    return `${opt} takes a value, and the argument after it starts with a dash: write ${opt}=VALUE for a ` +
      `value that starts with one (e.g. ${opt}=-1), or give ${opt} its value`;
  }
  return message.trim().replace(/\.?\s*\n\s*/g, ". ").replace(/\.$/, "");
}

/** Reads a number option: undefined when absent, UsageError when not a number in range. */
export function numberOption(
  values: Record<string, unknown>,
  name: string,
  opts: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const v = Number(raw);
  const kind = opts.integer ? "an integer" : "a number";
  // "from 0 to 1" where both bounds are given, else the one bound ("≥ 1").
  const range = opts.min !== undefined && opts.max !== undefined
    ? ` from ${opts.min} to ${opts.max}`
    : opts.min !== undefined
    ? ` ≥ ${opts.min}`
    : opts.max !== undefined
    ? ` ≤ ${opts.max}`
    : "";
  if (
    typeof raw !== "string" || raw.trim() === "" || !Number.isFinite(v) ||
    (opts.integer && !Number.isInteger(v)) ||
    (opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max)
  ) {
    throw new UsageError(`--${name} must be ${kind}${range}, found "${raw}"`);
  }
  return v;
}

/** Reads a string option restricted to `choices`. */
export function choiceOption<T extends string>(
  values: Record<string, unknown>,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!choices.includes(raw as T)) {
    throw new UsageError(`--${name} must be one of ${choices.join(", ")}, found "${raw}"`);
  }
  return raw as T;
}

/** Prints `value` as the last stdout line (the --json contract: one JSON object on the last line). */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}
