// The running process (arguments, environment, working directory, stdout/stderr, exit) through
// node:process, which Deno and Node both implement. Taken from globalThis.process rather than imported, so
// that library code using it still loads in a browser, where every function here degrades quietly.

interface NodeStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
}

interface NodeProcess {
  argv: string[];
  env: Record<string, string | undefined>;
  cwd(): string;
  exit(code?: number): never;
  platform: string;
  stdout: NodeStream;
  stderr: NodeStream;
}

function proc(): NodeProcess | undefined {
  const p = (globalThis as { process?: NodeProcess }).process;
  return p && typeof p.cwd === "function" ? p : undefined;
}

/** The command-line arguments after the script (Deno.args in Deno, process.argv.slice(2) in Node). */
export function args(): string[] {
  return proc()?.argv.slice(2) ?? [];
}

/** An environment variable; undefined when unset, unreadable (no permission) or in a browser. */
export function env(name: string): string | undefined {
  try {
    return proc()?.env[name];
  } catch {
    return undefined; // Deno without --allow-env
  }
}

/** The working directory ("." in a browser). */
export function cwd(): string {
  return proc()?.cwd() ?? ".";
}

/** "linux", "darwin", "win32", ... (Node's names; Deno reports the same through node:process). */
export function platform(): string {
  return proc()?.platform ?? "browser";
}

/** Ends the process with `code` (Deno.exit / process.exit). */
export function exit(code: number): never {
  const p = proc();
  if (!p) throw new Error(`exit(${code}) needs Deno or Node`);
  return p.exit(code);
}

/** Writes text to stdout without a newline (streamed generation). */
export function writeStdout(text: string): void {
  proc()?.stdout.write(text);
}

/** Writes text to stderr without a newline (progress bars). */
export function writeStderr(text: string): void {
  proc()?.stderr.write(text);
}

/** True when stderr is a terminal. */
export function stderrIsTerminal(): boolean {
  return proc()?.stderr.isTTY === true;
}
