// File access for the library through node:fs, which Deno and Node both implement. The module is taken
// with process.getBuiltinModule (Node ≥ 20.16, Deno 2) on first use rather than imported, so that a browser
// can import the library and pass bytes instead of paths (openModelBytes, parseRabit, parseCheckpoint, ...).

import type * as NodeFs from "node:fs";
import type * as NodePath from "node:path";

type NodeProcess = { getBuiltinModule?: (id: string) => unknown };

/** A Node built-in module, or a TypeError saying that this runtime has no files. */
function builtin<T>(id: string): T {
  const proc = (globalThis as { process?: NodeProcess }).process;
  const mod = proc?.getBuiltinModule?.(id) as T | undefined;
  if (!mod) {
    throw new TypeError(
      `File access needs Deno 2 or Node ≥ 20.16 (${id} through process.getBuiltinModule), found neither; ` +
        "in a browser pass bytes instead: openModelBytes, parseRabit, parseCheckpoint, Tokenizer.parse",
    );
  }
  return mod;
}

let cachedFs: typeof NodeFs | undefined;
const nodeFs = (): typeof NodeFs => cachedFs ??= builtin<typeof NodeFs>("node:fs");

/** node:path (join, dirname, ...) in Deno and Node; a TypeError in a browser. */
export function pathModule(): typeof NodePath {
  return builtin<typeof NodePath>("node:path");
}

/** True where {@link readFile} and the other functions here can work (Deno, Node), false in a browser. */
export function hasFileSystem(): boolean {
  try {
    nodeFs();
    return true;
  } catch {
    return false;
  }
}

/** The error code of a failed file operation ("ENOENT", "EISDIR", ...), in Deno and Node alike. */
function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

type ErrorClass = new (message?: string, options?: ErrorOptions) => Error;

/** Deno's error class `name` (Deno.errors.NotFound, ...); undefined outside Deno. */
function denoError(name: "NotFound" | "IsADirectory"): ErrorClass | undefined {
  return (globalThis as { Deno?: { errors?: Record<string, ErrorClass> } }).Deno?.errors?.[name];
}

/** True when `e` says that a file or directory does not exist (Node's ENOENT, Deno.errors.NotFound). */
export function isNotFound(e: unknown): boolean {
  const NotFound = denoError("NotFound");
  return codeOf(e) === "ENOENT" || (NotFound !== undefined && e instanceof NotFound);
}

/** True when `e` says that a file operation met a directory (EISDIR). */
export function isDirectoryError(e: unknown): boolean {
  const IsADirectory = denoError("IsADirectory");
  return codeOf(e) === "EISDIR" || (IsADirectory !== undefined && e instanceof IsADirectory);
}

/**
 * A "not found" error with `message`: a Deno.errors.NotFound under Deno (what Deno code checks with
 * instanceof), else an Error named "NotFound"; both carry code "ENOENT" (what Node code checks).
 */
export function notFoundError(message: string, cause?: unknown): Error {
  const NotFound = denoError("NotFound");
  const options = cause === undefined ? undefined : { cause };
  const e = NotFound ? new NotFound(message, options) : new Error(message, options);
  if (!NotFound) e.name = "NotFound";
  return Object.assign(e, { code: "ENOENT" });
}

/** Node reads at most 2 GiB in one call; larger files are read in chunks of this many bytes. */
const READ_CHUNK = 1 << 30;

/**
 * Reads a whole file into a plain Uint8Array (not a Node Buffer, whose slice() shares memory), at offset
 * 0 of its own ArrayBuffer, so that aligned typed-array views of it work. Files of any size (Node's own
 * readFile stops at 2 GiB). A directory fails with code "EISDIR", a missing file with "ENOENT".
 */
export async function readFile(path: string): Promise<Uint8Array> {
  const handle = await nodeFs().promises.open(path, "r");
  try {
    const info = await handle.stat();
    if (info.isDirectory()) {
      throw Object.assign(new Error(`EISDIR: illegal operation on a directory, read '${path}'`), {
        code: "EISDIR",
      });
    }
    if (!info.isFile()) return new Uint8Array(await handle.readFile()); // a pipe or device: no size
    const out = new Uint8Array(info.size);
    let at = 0;
    while (at < out.length) {
      const { bytesRead } = await handle.read(out, at, Math.min(out.length - at, READ_CHUNK), at);
      if (bytesRead === 0) return out.slice(0, at); // the file shrank while it was read
      at += bytesRead;
    }
    return out;
  } finally {
    await handle.close();
  }
}

/** Reads a whole UTF-8 text file. */
export async function readTextFile(path: string): Promise<string> {
  return new TextDecoder().decode(await readFile(path));
}

/** Writes `data` to `path`, replacing it (not atomic: see writeFileAtomic in container.ts). */
export async function writeFile(path: string, data: Uint8Array | string): Promise<void> {
  await nodeFs().promises.writeFile(path, data);
}

/**
 * Creates `path`, which must not exist yet (code "EEXIST" otherwise; "ENOENT" when its directory is
 * missing), writes `bytes` and syncs them to disk. When a write fails the new file is removed again.
 */
export async function writeNewFile(path: string, bytes: Uint8Array): Promise<void> {
  const fs = nodeFs().promises;
  const handle = await fs.open(path, "wx");
  try {
    for (let at = 0; at < bytes.length;) {
      at += (await handle.write(bytes, at, Math.min(bytes.length - at, READ_CHUNK))).bytesWritten;
    }
    await handle.sync();
  } catch (e) {
    await handle.close().catch(() => {});
    await fs.rm(path, { force: true }).catch(() => {});
    throw e;
  }
  await handle.close();
}

/** Renames (moves) `from` to `to`, replacing `to` when it exists. */
export async function rename(from: string, to: string): Promise<void> {
  await nodeFs().promises.rename(from, to);
}

/** Removes a file, or with `recursive` a directory and everything in it. */
export async function remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
  const fs = nodeFs().promises;
  if (options.recursive) await fs.rm(path, { recursive: true });
  else if ((await fs.lstat(path)).isDirectory()) await fs.rmdir(path);
  else await fs.unlink(path);
}

/** Creates a directory (and with `recursive` its parents; then an existing directory is fine). */
export async function mkdir(path: string, options: { recursive?: boolean } = {}): Promise<void> {
  await nodeFs().promises.mkdir(path, { recursive: options.recursive ?? false });
}

/** What {@link stat} reports. */
export interface FileInfo {
  isFile: boolean;
  isDirectory: boolean;
  /** Bytes. */
  size: number;
}

/** Size and kind of `path` (following links); code "ENOENT" when it does not exist. */
export async function stat(path: string): Promise<FileInfo> {
  const s = await nodeFs().promises.stat(path);
  return { isFile: s.isFile(), isDirectory: s.isDirectory(), size: s.size };
}

/** True when `path` is an existing file; false when it is missing, not a file, or files are unavailable. */
export function isFileSync(path: string): boolean {
  try {
    return nodeFs().statSync(path).isFile();
  } catch {
    return false;
  }
}
