// A training checkpoint as a safetensors file, and back: the trainable table (latents W, scales g and h,
// trained norms), the optimizer moments and the step, so a run's state can be read or edited in PyTorch or
// NumPy and resumed with `quantize --resume` (docs/safetensors.md).
//
// Tensors, all F32, named and shaped as the table of train/trainable.ts (rows in our, Meta, order):
//   <layer>.w, <layer>.g, <layer>.h, <norm>   the table (e.g. layers.0.wq.w (out, in), layers.0.wq.g (k, out))
//   optimizer.m.<name>                        first moments (AdamW) or momentum (Muon) of every entry
//   optimizer.v.<name>                        AdamW second moments of the entries from metadata v_from on
//                                             (every entry with AdamW; with Muon the latents have none)
// Metadata (strings): rabit_layout "rabit-train-state-v1", step, seconds, backend, v_from (the first
// entry with a second moment), and as JSON: layout ([name, shape] in table order), teacher ({config, crc}:
// a resume checks both against its model), options (a resume must pass the same ones), log.

import { FormatError } from "../io/errors.ts";
import {
  parseSafetensors,
  type SafetensorOut,
  serializeSafetensors,
  tensorBytes,
} from "../io/safetensors.ts";
import type { Checkpoint, TrainLog } from "./checkpoint.ts";

/** `__metadata__["rabit_layout"]` of an exported training state. */
export const TRAIN_STATE_LAYOUT = "rabit-train-state-v1";

const HINT =
  `Expected a training state exported by rabit export-state (metadata rabit_layout "${TRAIN_STATE_LAYOUT}")`;
const LOG_KEYS: readonly (keyof TrainLog)[] = ["losses", "kl", "mse", "lr", "gradNorm"];

const f32Bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The safetensors bytes of a checkpoint (layout at the top of this file).
 *
 * @example
 * ```ts
 * import { exportTrainState, importTrainState } from "./state_safetensors.ts";
 * const c = { dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 10, seqLen: 8,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * const ck = { teacher: { config: c, crc: 7 }, options: { method: "rabit" }, step: 3,
 *   layout: [["norm", [8]]] as [string, number[]][],
 *   state: { params: new Float32Array(8).fill(1), m: new Float32Array(8), v: new Float32Array(8) },
 *   log: { losses: [3, 2, 1], kl: [3, 2, 1], mse: [0, 0, 0], lr: [1, 1, 1], gradNorm: [1, 1, 1] }, seconds: 2 };
 * importTrainState(exportTrainState(ck)).step; // 3
 * ```
 */
export function exportTrainState(ck: Checkpoint): Uint8Array {
  const total = ck.state.params.length;
  const vFromIndex = total - ck.state.v.length;
  const tensors: SafetensorOut[] = [];
  const moments: SafetensorOut[] = [];
  let offset = 0, vFrom: number | undefined;
  for (const [name, shape] of ck.layout) {
    const size = shape.reduce((a, d) => a * d, 1);
    if (offset === vFromIndex) vFrom = tensors.length;
    const slice = (a: Float32Array, from = 0) => f32Bytes(a.subarray(offset - from, offset - from + size));
    tensors.push({ name, dtype: "F32", shape, data: slice(ck.state.params) });
    moments.push({ name: `optimizer.m.${name}`, dtype: "F32", shape, data: slice(ck.state.m) });
    if (offset >= vFromIndex) {
      moments.push({ name: `optimizer.v.${name}`, dtype: "F32", shape, data: slice(ck.state.v, vFromIndex) });
    }
    offset += size;
  }
  if (offset !== total || ck.state.m.length !== total) {
    throw new RangeError(
      `exportTrainState: the layout holds ${offset} values, params ${total} and m ${ck.state.m.length}`,
    );
  }
  if (vFromIndex === total) vFrom = ck.layout.length;
  if (vFrom === undefined) {
    throw new RangeError(
      `exportTrainState: v (${ck.state.v.length} values) does not start at a layout entry`,
    );
  }
  return serializeSafetensors([...tensors, ...moments], {
    format: "pt",
    rabit_layout: TRAIN_STATE_LAYOUT,
    step: String(ck.step),
    seconds: String(ck.seconds),
    backend: ck.backend ?? "",
    v_from: String(vFrom),
    layout: JSON.stringify(ck.layout),
    teacher: JSON.stringify(ck.teacher),
    options: JSON.stringify(ck.options),
    log: JSON.stringify(ck.log),
  });
}

/**
 * A checkpoint from exported bytes (the inverse of {@link exportTrainState}): every tensor F32, named and
 * shaped as the layout says, none missing or extra; `quantize --resume` then checks the teacher and
 * options against its own. `path` only names the file in errors (FormatErrors).
 *
 * @example
 * ```ts
 * import { importTrainState } from "./state_safetensors.ts";
 * import { serializeSafetensors } from "../io/safetensors.ts";
 * try {
 *   importTrainState(serializeSafetensors([]), "s.safetensors");
 * } catch (e) {
 *   (e as Error).message; // "s.safetensors: metadata rabit_layout is nothing, expected …"
 * }
 * ```
 */
export function importTrainState(bytes: Uint8Array, path = "state.safetensors"): Checkpoint {
  const header = parseSafetensors(bytes, path, { dtypes: ["F32"] });
  const fail = (problem: string) => new FormatError(path, problem, HINT);
  const meta = header.metadata;
  if (meta.rabit_layout !== TRAIN_STATE_LAYOUT) {
    throw fail(
      `metadata rabit_layout is ${
        meta.rabit_layout === undefined ? "nothing" : JSON.stringify(meta.rabit_layout)
      }, expected "${TRAIN_STATE_LAYOUT}"`,
    );
  }
  const json = (key: string): unknown => {
    try {
      return JSON.parse(meta[key] ?? "");
    } catch {
      throw fail(`metadata ${key} is ${meta[key] === undefined ? "missing" : "not valid JSON"}`);
    }
  };
  const int = (key: string): number => {
    const v = Number(meta[key]);
    if (meta[key] === undefined || !Number.isSafeInteger(v) || v < 0) {
      throw fail(
        `expected metadata ${key} to be an integer >= 0, found ${
          meta[key] === undefined ? "nothing" : JSON.stringify(meta[key])
        }`,
      );
    }
    return v;
  };
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  const layout = json("layout");
  if (
    !Array.isArray(layout) ||
    !layout.every((e) =>
      Array.isArray(e) && e.length === 2 && typeof e[0] === "string" && Array.isArray(e[1]) &&
      e[1].every((d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0)
    )
  ) {
    throw fail("expected metadata layout to be a JSON array of [name, shape]");
  }
  const entries = layout as [string, number[]][];
  const step = int("step"), vFrom = int("v_from");
  if (vFrom > entries.length) {
    throw fail(`metadata v_from ${vFrom} is beyond the layout's ${entries.length} entries`);
  }
  const seconds = Number(meta.seconds);
  if (!(seconds >= 0) || seconds === Infinity) {
    throw fail(`expected metadata seconds >= 0, found ${meta.seconds}`);
  }
  const teacher = json("teacher"), options = json("options"), log = json("log");
  if (!isObject(teacher) || !isObject(teacher.config) || !Number.isInteger(teacher.crc)) {
    throw fail("expected metadata teacher to be a JSON object {config, crc}");
  }
  if (!isObject(options)) throw fail("expected metadata options to be a JSON object");
  if (
    !isObject(log) || !LOG_KEYS.every((k) => Array.isArray(log[k]) && (log[k] as unknown[]).length >= step)
  ) {
    throw fail(`expected metadata log to hold ${LOG_KEYS.join(", ")}, each with at least ${step} numbers`);
  }
  // Every tensor the layout implies, with its shape; nothing else.
  const expected = new Set<string>();
  const want = (name: string, shape: number[]) => {
    const t = header.byName.get(name);
    if (!t) throw fail(`tensor ${name} is missing`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw fail(`tensor ${name} has shape [${t.shape.join(", ")}], the layout says [${shape.join(", ")}]`);
    }
    expected.add(name);
    return t;
  };
  let total = 0, vTotal = 0;
  entries.forEach(([name, shape], i) => {
    const size = shape.reduce((a, d) => a * d, 1);
    want(name, shape);
    want(`optimizer.m.${name}`, shape);
    if (i >= vFrom) want(`optimizer.v.${name}`, shape), vTotal += size;
    total += size;
  });
  for (const t of header.tensors) {
    if (!expected.has(t.name)) throw fail(`unexpected tensor ${t.name}: not part of the layout`);
  }
  const params = new Float32Array(total), m = new Float32Array(total), v = new Float32Array(vTotal);
  let at = 0, vAt = 0;
  const copy = (dst: Float32Array, dstAt: number, name: string) => {
    const t = header.byName.get(name)!;
    new Uint8Array(dst.buffer, dstAt * 4, t.byteLength).set(tensorBytes(bytes, t));
  };
  entries.forEach(([name, shape], i) => {
    copy(params, at, name);
    copy(m, at, `optimizer.m.${name}`);
    const size = shape.reduce((a, d) => a * d, 1);
    if (i >= vFrom) copy(v, vAt, `optimizer.v.${name}`), vAt += size;
    at += size;
  });
  const bad = params.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw fail(`the table holds a non-finite value ${params[bad]} at index ${bad}`);
  return {
    teacher: teacher as Checkpoint["teacher"],
    options,
    backend: meta.backend ? meta.backend : undefined,
    step,
    layout: entries,
    state: { params, m, v },
    log: log as unknown as TrainLog,
    seconds,
  };
}
