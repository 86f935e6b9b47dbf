// Error types for file formats: what was expected, what was found, and how to fix it.

import { isDirectoryError, isNotFound, notFoundError, readFile } from "./fs.ts";

/**
 * A file that cannot be used: bad header, wrong size, corrupt content. The message names the file, says
 * what was found and, with a hint, what was expected.
 *
 * @example
 * ```ts
 * import { FormatError } from "./errors.ts";
 * const e = new FormatError("model.bin", "file is 3 bytes, too short", "Expected a llama2.c checkpoint");
 * e.message; // "model.bin: file is 3 bytes, too short. Expected a llama2.c checkpoint"
 * e instanceof SyntaxError; // true
 * ```
 */
export class FormatError extends SyntaxError {
  /** "`path`: `problem`. `hint`". */
  constructor(path: string, problem: string, hint?: string) {
    super(`${path}: ${problem}${hint ? `. ${hint}` : ""}`);
    this.name = "FormatError";
  }
}

/**
 * Reads a whole file, turning "not found" into an error that names the file and what it should be
 * (Deno.errors.NotFound under Deno, code "ENOENT" in both runtimes).
 */
export async function readFileOrThrow(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    if (isNotFound(e)) throw notFoundError(`${what} not found: ${path}`);
    if (isDirectoryError(e)) {
      throw new TypeError(`${what} must be a file, found a directory: ${path}`);
    }
    throw e;
  }
}
