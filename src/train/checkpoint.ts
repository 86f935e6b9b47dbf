// Training checkpoints: the trainable table, the optimizer moments, the step reached and the log so far,
// in the shared file container (io/container.ts) with magic "RABITCK\0", written atomically. A resumed
// run checks that the checkpoint belongs to the same teacher, table layout and options.

import { type ContainerKind, openContainer, sealContainer, writeFileAtomic } from "../io/container.ts";
import { FormatError, readFileOrThrow } from "../io/errors.ts";
import type { LlamaConfig } from "../model/config.ts";
import type { ParamTable } from "../model/params.ts";
import { crc32 } from "../util/crc32.ts";
import type { TrainState } from "./backend.ts";

/** Per-step records of a run (index = step − 1). */
export interface TrainLog {
  losses: number[];
  kl: number[];
  mse: number[];
  lr: number[];
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
  state: TrainState;
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

/** CRC-32 of a model's parameter bytes (what identifies the teacher). */
export function paramsCrc(params: ParamTable): number {
  return crc32(new Uint8Array(params.data.buffer, params.data.byteOffset, params.data.byteLength));
}

/** The layout of a table as [name, shape] pairs. */
export function layoutOf(table: ParamTable): [string, number[]][] {
  return table.names().map((n) => [n, table.shape(n)]);
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Writes a checkpoint atomically (a crash mid-write leaves the previous file intact). */
export async function writeCheckpoint(path: string, ck: Checkpoint): Promise<void> {
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
  await writeFileAtomic(path, sealContainer(CHECKPOINT_CONTAINER, body, "writeCheckpoint"));
}

/** Reads and validates a checkpoint file. */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const bytes = await readFileOrThrow(path, "Checkpoint");
  const { body } = openContainer(CHECKPOINT_CONTAINER, bytes, path);
  const fail = (problem: string): never => {
    throw new FormatError(path, problem, "Expected a checkpoint written by this version of rabit");
  };
  const b = body as Record<string, unknown>;
  if (typeof b !== "object" || b === null || b.kind !== "rabit-training-checkpoint") {
    fail(`expected a body of kind "rabit-training-checkpoint", found ${JSON.stringify(b?.kind)}`);
  }
  const layout = b.layout as [string, number[]][];
  if (!Array.isArray(layout)) fail("expected a layout array");
  const total = layout.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
  const floats = (key: string, want?: number): Float32Array => {
    const v = b[key];
    if (!(v instanceof Uint8Array) || v.byteLength % 4 !== 0) fail(`expected "${key}" as binary f32 data`);
    const data = v as Uint8Array;
    const out = new Float32Array(data.byteLength / 4);
    new Uint8Array(out.buffer).set(data);
    if (want !== undefined && out.length !== want) {
      fail(`expected "${key}" to hold ${want} values (the layout's size), found ${out.length}`);
    }
    return out;
  };
  const step = b.step as number;
  if (!Number.isInteger(step) || step < 0) fail(`expected a step count, found ${JSON.stringify(step)}`);
  return {
    teacher: b.teacher as Checkpoint["teacher"],
    options: b.options as Record<string, unknown>,
    backend: typeof b.backend === "string" ? b.backend : undefined,
    step,
    layout,
    state: { params: floats("params", total), m: floats("m", total), v: floats("v") },
    log: b.log as TrainLog,
    seconds: Number(b.seconds) || 0,
  };
}
