// Reading text inputs for the CLI with errors that name the file.

import { readFileOrThrow } from "../io/errors.ts";

/** Reads a UTF-8 text file; a missing file or invalid UTF-8 is a clear error. */
export async function readTextOrThrow(path: string): Promise<string> {
  const bytes = await readFileOrThrow(path, "Text file");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new TypeError(`${path}: expected UTF-8 text, found invalid UTF-8 bytes`);
  }
}
