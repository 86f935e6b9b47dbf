// Training checkpoints: the trainable table, the optimizer moments, the step reached and the log so far,
// in the shared file container (io/container.ts) with magic "RABITCK\0", written atomically. A resumed
// run checks that the checkpoint belongs to the same teacher, table layout and options.

import {
  type ContainerKind,
  isPlainObject,
  openContainer,
  sealContainer,
  writeFileAtomic,
} from "../io/container.ts";
import { FormatError, readFileOrThrow } from "../io/errors.ts";
import { type LlamaConfig, validateConfig } from "../model/config.ts";
import type { ParamTable } from "../model/params.ts";
import { crc32 } from "../util/crc32.ts";
import type { TrainState } from "./backend.ts";

/** Per-step records of a run (index = step − 1). */
export interface TrainLog {
  /** kl + γ · mse of each step. */
  losses: number[];
  /** KL(teacher ‖ student) of each step. */
  kl: number[];
  /** Hidden-state MSE of each step. */
  mse: number[];
  /** Learning rate of each step. */
  lr: number[];
  /** Gradient norm before clipping of each step. */
  gradNorm: number[];
}

/** What a checkpoint holds. */
export interface Checkpoint {
  /** Teacher config and a CRC-32 of its parameters: a checkpoint only resumes on the same model. */
  teacher: { config: LlamaConfig; crc: number };
  /** The run's options (JSON); a resume must pass the same ones. */
  options: Record<string, unknown>;
  /** The backend that trained ("cpu", "webgpu"); `--backend auto` resumes on the same one. */
  backend?: string;
  /** Steps completed. */
  step: number;
  /** Layout of the table: [name, shape] in order. */
  layout: [string, number[]][];
  /** The table and optimizer moments after `step` steps. */
  state: TrainState;
  /** The records of steps 1..step. */
  log: TrainLog;
  /** Seconds of training so far. */
  seconds: number;
}

const CHECKPOINT_CONTAINER: ContainerKind = {
  name: "checkpoint",
  magic: new Uint8Array([0x52, 0x41, 0x42, 0x49, 0x54, 0x43, 0x4b, 0]),
  magicText: "RABITCK",
  version: 1,
  supported: [1],
  hintNotThis: "Expected a training checkpoint written by rabit quantize --checkpoint",
};

/**
 * CRC-32 of a model's parameter bytes (what identifies the teacher).
 *
 * @example
 * ```ts
 * import { paramsCrc } from "./checkpoint.ts";
 * import { ParamTable } from "../model/params.ts";
 * paramsCrc(ParamTable.fromSpecs([["w", [2]]])); // 1696784233: zlib's CRC-32 of 8 zero bytes
 * ```
 */
export function paramsCrc(params: ParamTable): number {
  return crc32(new Uint8Array(params.data.buffer, params.data.byteOffset, params.data.byteLength));
}

/**
 * The layout of a table as [name, shape] pairs.
 *
 * @example
 * ```ts
 * import { layoutOf } from "./checkpoint.ts";
 * import { ParamTable } from "../model/params.ts";
 * layoutOf(ParamTable.fromSpecs([["w", [2, 3]], ["g", [2]]])); // [["w", [2, 3]], ["g", [2]]]
 * ```
 */
export function layoutOf(table: ParamTable): [string, number[]][] {
  return table.names().map((n) => [n, table.shape(n)]);
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Writes a checkpoint atomically (a crash mid-write leaves the previous file intact).
 *
 * @example
 * ```ts
 * import { layoutOf, paramsCrc, readCheckpoint, writeCheckpoint } from "./checkpoint.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * import { ParamTable } from "../model/params.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const table = ParamTable.fromSpecs([["norm", [64]]]);
 * const dir = await Deno.makeTempDir();
 * await writeCheckpoint(`${dir}/run.ckpt`, {
 *   teacher: { config, crc: paramsCrc(params) },
 *   options: { method: "rabit" },
 *   step: 0,
 *   layout: layoutOf(table),
 *   state: { params: table.data, m: new Float32Array(64), v: new Float32Array(64) },
 *   log: { losses: [], kl: [], mse: [], lr: [], gradNorm: [] },
 *   seconds: 0,
 * });
 * (await readCheckpoint(`${dir}/run.ckpt`)).layout; // [["norm", [64]]]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeCheckpoint(path: string, ck: Checkpoint): Promise<void> {
  await writeFileAtomic(path, serializeCheckpoint(ck));
}

/**
 * The bytes of a checkpoint file ({@link writeCheckpoint} without the file: for browsers, or storage of
 * one's own); {@link parseCheckpoint} reads them back.
 *
 * @example
 * ```ts
 * import { layoutOf, parseCheckpoint, serializeCheckpoint } from "./checkpoint.ts";
 * import { ParamTable } from "../model/params.ts";
 * const table = ParamTable.fromSpecs([["norm", [4]]]);
 * const config = { dim: 4, hiddenDim: 8, nLayers: 1, nHeads: 1, nKvHeads: 1, vocabSize: 8, seqLen: 4,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * const bytes = serializeCheckpoint({
 *   teacher: { config, crc: 0 },
 *   options: {},
 *   step: 3,
 *   layout: layoutOf(table),
 *   state: { params: table.data, m: new Float32Array(4), v: new Float32Array(4) },
 *   log: { losses: [1, 1, 1], kl: [1, 1, 1], mse: [0, 0, 0], lr: [1, 1, 1], gradNorm: [1, 1, 1] },
 *   seconds: 0,
 * });
 * parseCheckpoint(bytes, "in memory").step; // 3
 * ```
 */
export function serializeCheckpoint(ck: Checkpoint): Uint8Array {
  const body = {
    kind: "rabit-training-checkpoint",
    teacher: ck.teacher,
    options: ck.options,
    backend: ck.backend ?? null,
    step: ck.step,
    layout: ck.layout,
    params: bytesOf(ck.state.params),
    m: bytesOf(ck.state.m),
    v: bytesOf(ck.state.v),
    log: ck.log,
    seconds: ck.seconds,
  };
  return sealContainer(CHECKPOINT_CONTAINER, body, "writeCheckpoint");
}

/**
 * Reads and validates a checkpoint file (see {@link parseCheckpoint}).
 *
 * @example
 * ```ts
 * import { readCheckpoint } from "./checkpoint.ts";
 * await readCheckpoint("run.ckpt").catch((e) => e.message); // "Checkpoint not found: run.ckpt"
 * ```
 */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  return parseCheckpoint(await readFileOrThrow(path, "Checkpoint"), path);
}

const LOG_KEYS: readonly (keyof TrainLog)[] = ["losses", "kl", "mse", "lr", "gradNorm"];
/** Most dimensions a layout entry may have (the table holds vectors and matrices). */
const MAX_RANK = 8;

/**
 * Parses and validates checkpoint bytes: the container (magic, version, length, checksum), then every
 * field's type, the layout's sizes against the file's length before anything is allocated, and the
 * state arrays against the layout. `path` only names the file in errors, which are FormatErrors.
 *
 * @example
 * ```ts
 * import { parseCheckpoint } from "./checkpoint.ts";
 * try {
 *   parseCheckpoint(new Uint8Array(8), "ck.bin");
 * } catch (e) {
 *   (e as Error).message; // "ck.bin: not a checkpoint file: expected the magic bytes 52 41 42 …"
 * }
 * ```
 */
export function parseCheckpoint(bytes: Uint8Array, path = "checkpoint"): Checkpoint {
  const { body } = openContainer(CHECKPOINT_CONTAINER, bytes, path);
  const fail = (problem: string): never => {
    throw new FormatError(path, problem, "Expected a checkpoint written by this version of rabit");
  };
  /** A short description of a decoded value (never its whole contents: it may be megabytes). */
  const text = (v: unknown): string => {
    if (v === null || v === undefined) return v === null ? "nil" : "nothing";
    if (v instanceof Uint8Array) return `${v.byteLength} bytes of binary`;
    if (Array.isArray(v)) return `an array of ${v.length}`;
    if (isPlainObject(v)) return "a map";
    if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);
    if (typeof v === "object") return `a ${v.constructor?.name ?? "object"}`;
    return `${typeof v} ${String(v)}`;
  };
  if (!isPlainObject(body)) fail(`expected the body to be a MessagePack map, found ${text(body)}`);
  const b = body as Record<string, unknown>;
  if (b.kind !== "rabit-training-checkpoint") {
    fail(`expected a body of kind "rabit-training-checkpoint", found ${text(b.kind)}`);
  }
  const map = (v: unknown, what: string): Record<string, unknown> => {
    if (!isPlainObject(v)) fail(`expected ${what} to be a map, found ${text(v)}`);
    return v as Record<string, unknown>;
  };
  const int = (v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
      fail(`expected ${what} to be an integer in 0..${max}, found ${text(v)}`);
    }
    return v as number;
  };

  // teacher: what a resume compares with the model it is given
  const teacher = map(b.teacher, "teacher");
  const tc = map(teacher.config, "teacher.config");
  for (const key of ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen"] as const) {
    int(tc[key], `teacher.config.${key}`);
  }
  for (const key of ["normEps", "ropeTheta"] as const) {
    if (typeof tc[key] !== "number" || !Number.isFinite(tc[key])) {
      fail(`expected teacher.config.${key} to be a finite number, found ${text(tc[key])}`);
    }
  }
  if (typeof tc.sharedClassifier !== "boolean") {
    fail(`expected teacher.config.sharedClassifier to be a boolean, found ${text(tc.sharedClassifier)}`);
  }
  try {
    validateConfig(tc as unknown as LlamaConfig);
  } catch (e) {
    fail(`bad teacher.config: ${(e as Error).message}`);
  }
  int(teacher.crc, "teacher.crc", 0xffffffff);
  const options = map(b.options, "options");
  if (b.backend !== undefined && b.backend !== null && typeof b.backend !== "string") {
    fail(`expected backend to be a string or nil, found ${text(b.backend)}`);
  }
  const step = int(b.step, "step");
  if (typeof b.seconds !== "number" || !(b.seconds >= 0) || b.seconds === Infinity) {
    fail(`expected seconds to be a finite number >= 0, found ${text(b.seconds)}`);
  }

  // layout: its size is checked against the file's length before any array is allocated
  const layout = b.layout;
  if (!Array.isArray(layout)) fail(`expected layout to be an array of [name, shape], found ${text(layout)}`);
  let total = 0;
  const names = new Set<string>();
  (layout as unknown[]).forEach((entry, i) => {
    const what = `layout[${i}]`;
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== "string") {
      fail(`expected ${what} to be [name, shape], found ${text(entry)}`);
    }
    const [name, shape] = entry as [string, unknown];
    if (names.has(name)) fail(`${what} repeats the name "${name}"`);
    names.add(name);
    if (!Array.isArray(shape) || shape.length > MAX_RANK) {
      fail(
        `expected the shape of ${what} ("${name}") to be an array of at most ${MAX_RANK} sizes, found ${
          text(shape)
        }`,
      );
    }
    let size = 1;
    (shape as unknown[]).forEach((d, j) => size *= int(d, `${what} ("${name}") dimension ${j}`, 1 << 30));
    total += size;
  });
  // params and m hold `total` f32 values each; v at most as many.
  if (8 * total > bytes.byteLength) {
    fail(
      `the layout holds ${total} values, so params and m need ${8 * total} bytes, but the file is ` +
        `${bytes.byteLength} bytes`,
    );
  }
  const floats = (key: string, want: number, exact: boolean): Float32Array => {
    const data = b[key];
    if (!(data instanceof Uint8Array) || data.byteLength % 4 !== 0) {
      fail(`expected "${key}" as binary f32 data (a multiple of 4 bytes), found ${text(data)}`);
    }
    const n = (data as Uint8Array).byteLength / 4;
    if (exact ? n !== want : n > want) {
      fail(
        `expected "${key}" to hold ${exact ? "" : "at most "}${want} values (the layout's size), found ${n}`,
      );
    }
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(data as Uint8Array);
    return out;
  };
  // v: AdamW's second moments over the whole table, or (Muon) only its tail.
  const state = {
    params: floats("params", total, true),
    m: floats("m", total, true),
    v: floats("v", total, false),
  };
  const bad = state.params.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) fail(`params hold a non-finite value ${state.params[bad]} at index ${bad}`);

  // log: a resumed run keeps its first `step` records
  const logMap = map(b.log, "log");
  for (const key of LOG_KEYS) {
    const a = logMap[key];
    if (!Array.isArray(a) || a.length < step || !a.every((x) => typeof x === "number")) {
      fail(`expected log.${key} to be an array of at least ${step} numbers (one per step), found ${text(a)}`);
    }
  }
  return {
    teacher: teacher as Checkpoint["teacher"],
    options,
    backend: typeof b.backend === "string" ? b.backend : undefined,
    step,
    layout: layout as [string, number[]][],
    state,
    log: logMap as unknown as TrainLog,
    seconds: b.seconds as number,
  };
}
