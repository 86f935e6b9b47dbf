// The inputs of a report: .rabit runs (method, options, training log, diagnostics when stored) and the JSON
// that `eval --json`, `bench --json`, `bench --backend wasm --json` and `bench --train --json` print, each
// recognised by its content and checked before anything is drawn from it.

import { basename, resolve } from "node:path";
import { openModel } from "../io/load_model.ts";
import { readFileOrThrow } from "../io/errors.ts";
import { RABIT_MAGIC } from "../io/rabit_format.ts";
import type { PathDiagnostics } from "../eval/diagnostics.ts";
import { inspectModel } from "../eval/inspect.ts";
import type { TrainLog } from "../train/checkpoint.ts";
import type { LlamaConfig } from "../model/config.ts";
import type { OpenedModel } from "../io/load_model.ts";

/** The training-log series a report draws, in the order of `TrainLog`. */
export const LOG_SERIES = ["losses", "kl", "mse", "lr", "gradNorm"] as const;
/** One series of a training log. */
export type LogSeries = typeof LOG_SERIES[number];

/** Where a run's diagnostics came from. */
export type DiagnosticsSource =
  | { kind: "metadata" }
  | { kind: "eval"; path: string }
  | { kind: "computed"; text: string; holdout: number; teacher: string };

/** A .rabit file as a report shows it. */
export interface RunInput {
  kind: "run";
  /** The path as given. */
  path: string;
  /** The name in legends and tables: "file.rabit (method)", made unique among the inputs. */
  label: string;
  /** Quantization method ("rabit", "ptq", …; "none" for a float model). */
  method: string;
  options: Record<string, unknown>;
  metadata: Record<string, unknown>;
  config: LlamaConfig;
  /** Size of the file. */
  fileBytes: number;
  /** Bits per weight of the binarized layers (sign planes + scales); null without binarized layers. */
  bitsPerWeight: number | null;
  /** Binarized layers and their largest path count. */
  binarizedLayers: number;
  maxPaths: number;
  /** ISO time of writing, when stored. */
  createdAt?: string;
  /** The training log, when the file has one with at least one step. */
  log?: TrainLog;
  /** Why there is no log (e.g. "method ptq does not train"). */
  noLogReason?: string;
  /** Path diagnostics (METHOD.md §6), when stored, given by an eval JSON, or computed. */
  diagnostics?: PathDiagnostics;
  diagnosticsSource?: DiagnosticsSource;
  /** The opened model, for computing diagnostics. */
  opened: OpenedModel;
}

/** `eval --json`: perplexity of one model on one text. */
export interface EvalInput {
  kind: "eval";
  path: string;
  /** The model path the eval ran (as it was given to eval). */
  model: string;
  text: string;
  holdout: number | null;
  ppl: number;
  nll: number;
  tokens: number;
  windows: number;
  context: number;
  backend?: string;
  diagnostics?: PathDiagnostics;
}

/** GEMV ms of one shape by variant (f32, f16, packed2, tfjs_f32, packed2_i8, …). */
export type GemvMs = Record<string, number>;

/** `bench --json` (WebGPU) or `bench --backend wasm --json`: GEMV ms by shape, and decode tokens/s. */
export interface KernelBenchInput {
  kind: "bench";
  path: string;
  backend: "webgpu" | "wasm";
  /** Adapter or CPU description. */
  device: string;
  gemv: { shape: string; ms: GemvMs }[];
  /** The same on all threads (wasm on a multi-core machine). */
  gemvThreads?: { threads: number; rows: { shape: string; ms: GemvMs }[] };
  decode?: { tokensPerSecond: Record<string, number>; layers?: number; model?: string };
}

/** `bench --train --json`: ms of one training step on the CPU and on WebGPU per benchmark model. */
export interface TrainBenchInput {
  kind: "train-bench";
  path: string;
  device: string;
  models: { name: string; batch: number; seq: number; cpuMs: number; webgpuMs: number }[];
}

/** Anything a report takes. */
export type ReportInput = RunInput | EvalInput | KernelBenchInput | TrainBenchInput;

/** The inputs of one report, by kind, in the order given. */
export interface ReportInputs {
  runs: RunInput[];
  evals: EvalInput[];
  benches: KernelBenchInput[];
  trainBenches: TrainBenchInput[];
}

const KINDS_HINT = "expected a .rabit file, or the JSON that eval --json, bench --json, " +
  "bench --backend wasm --json or bench --train --json print";

/** A wrong input file: names it, says what was found and what is expected. */
export class ReportInputError extends TypeError {
  constructor(path: string, problem: string) {
    super(`${path}: ${problem}`);
    this.name = "ReportInputError";
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function numberField(o: Record<string, unknown>, key: string, path: string, where: string): number {
  const v = o[key];
  if (!isNumber(v)) {
    throw new ReportInputError(path, `${where}.${key} must be a finite number, found ${JSON.stringify(v)}`);
  }
  return v;
}

/** The numeric fields of `o` (others, like weightBytes maps, are skipped). */
function numbersOf(o: Record<string, unknown>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, number] => isNumber(e[1])));
}

/** A training log with equal-length finite series, or a reason it is not one. */
export function readTrainLog(v: unknown): { log?: TrainLog; problem?: string } {
  if (v === undefined) return { problem: "no training log" };
  if (!isObject(v)) return { problem: "its training log is not an object" };
  const steps = Array.isArray(v.losses) ? v.losses.length : 0;
  if (steps === 0) return { problem: "its training log has no steps" };
  for (const key of LOG_SERIES) {
    const s = v[key];
    if (!Array.isArray(s) || s.length !== steps || !s.every((x) => typeof x === "number")) {
      return { problem: `its training log's ${key} is not ${steps} numbers (as many as the losses)` };
    }
  }
  return { log: v as unknown as TrainLog };
}

/** Path diagnostics as `eval --json` and `inspect --diagnose --json` print them, or undefined. */
export function readDiagnostics(v: unknown): PathDiagnostics | undefined {
  if (!isObject(v) || !Array.isArray(v.layers) || v.layers.length === 0) return undefined;
  const corr = (x: unknown) => x === null || isNumber(x);
  const ok = v.layers.every((l) =>
    isObject(l) && typeof l.name === "string" && corr(l.pathCorrelation) && corr(l.residualAlignment)
  );
  if (!ok) return undefined;
  // Files written before the weight-level statistics existed lack them: null, as for k = 1.
  const orNull = (x: unknown) => isNumber(x) ? x : null;
  const d = v as unknown as PathDiagnostics;
  return {
    ...d,
    layers: d.layers.map((l) => ({
      ...l,
      outerShare: orNull(l.outerShare),
      scaleRatio: orNull(l.scaleRatio),
      weightCorrelation: orNull(l.weightCorrelation),
    })),
    meanOuterShare: orNull(d.meanOuterShare),
    meanScaleRatio: orNull(d.meanScaleRatio),
    meanWeightCorrelation: orNull(d.meanWeightCorrelation),
  };
}

/** Recognises a parsed JSON object as one of the kinds a report takes, or throws saying why not. */
export function classifyJson(value: unknown, path: string): EvalInput | KernelBenchInput | TrainBenchInput {
  if (!isObject(value)) {
    throw new ReportInputError(path, `found JSON that is not an object; ${KINDS_HINT}`);
  }
  if ("ppl" in value && "nll" in value) {
    const n = (key: string) => numberField(value, key, path, "eval JSON");
    return {
      kind: "eval",
      path,
      model: typeof value.model === "string" ? value.model : "(unnamed model)",
      text: typeof value.text === "string" ? value.text : "(unnamed text)",
      holdout: isNumber(value.holdout) ? value.holdout : null,
      ppl: n("ppl"),
      nll: n("nll"),
      tokens: n("tokens"),
      windows: n("windows"),
      context: n("context"),
      backend: typeof value.backend === "string" ? value.backend : undefined,
      diagnostics: readDiagnostics(value.diagnostics),
    };
  }
  if ("train" in value) {
    if (!isObject(value.train) || Object.keys(value.train).length === 0) {
      throw new ReportInputError(path, "bench --train JSON: train must be an object of models, found none");
    }
    const models = Object.entries(value.train).map(([name, m]) => {
      const where = `bench --train JSON: train["${name}"]`;
      if (!isObject(m)) throw new ReportInputError(path, `${where} must be an object`);
      const n = (key: string) => numberField(m, key, path, where);
      return { name, batch: n("batch"), seq: n("seq"), cpuMs: n("cpuMs"), webgpuMs: n("webgpuMs") };
    });
    return { kind: "train-bench", path, device: String(value.adapter ?? "unknown adapter"), models };
  }
  if ("gemv" in value) {
    const shapes = (g: unknown, where: string) => {
      if (!isObject(g)) throw new ReportInputError(path, `${where} must be an object of shapes`);
      return Object.entries(g).filter(([shape]) => shape !== "threads").map(([shape, ms]) => {
        if (!isObject(ms) || Object.keys(numbersOf(ms)).length === 0) {
          throw new ReportInputError(path, `${where}["${shape}"] must be an object of ms by variant`);
        }
        return { shape, ms: numbersOf(ms) };
      });
    };
    const wasm = value.backend === "wasm";
    const what = wasm ? "bench --backend wasm JSON" : "bench JSON";
    const out: KernelBenchInput = {
      kind: "bench",
      path,
      backend: wasm ? "wasm" : "webgpu",
      device: String(value.device ?? value.adapter ?? "unknown device"),
      gemv: shapes(value.gemv, `${what}: gemv`),
    };
    if (isObject(value.gemv_threads)) {
      const threads = isNumber(value.gemv_threads.threads) ? value.gemv_threads.threads : 0;
      out.gemvThreads = { threads, rows: shapes(value.gemv_threads, `${what}: gemv_threads`) };
    }
    if (value.decode !== undefined) {
      const d = value.decode;
      if (!isObject(d) || !isObject(d.tokensPerSecond)) {
        throw new ReportInputError(path, `${what}: decode.tokensPerSecond must be an object of variants`);
      }
      out.decode = {
        tokensPerSecond: numbersOf(d.tokensPerSecond),
        layers: isNumber(d.layers) ? d.layers : undefined,
        model: typeof d.model === "string" ? d.model : undefined,
      };
    }
    return out;
  }
  const keys = Object.keys(value).slice(0, 8).join(", ");
  throw new ReportInputError(path, `found a JSON object with keys ${keys || "(none)"}; ${KINDS_HINT}`);
}

/**
 * Parses a JSON input: the whole file, else its last non-empty line (the --json contract: one JSON
 * object as the last stdout line, so `cmd --json > f.json` may hold log lines before it).
 */
export function parseJsonInput(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const last = text.trimEnd().split("\n").at(-1) ?? "";
    try {
      return JSON.parse(last);
    } catch {
      throw new ReportInputError(path, `neither the file nor its last line is JSON; ${KINDS_HINT}`);
    }
  }
}

function runFromOpened(opened: OpenedModel): Omit<RunInput, "label"> {
  const rabit = opened.rabit!;
  const report = inspectModel(opened);
  const layers = [...opened.model.quantized.values()];
  const { log, problem } = readTrainLog(rabit.metadata.log);
  const method = rabit.method;
  const stored = readDiagnostics(rabit.metadata.diagnostics);
  return {
    kind: "run",
    path: opened.path,
    method,
    options: rabit.options,
    metadata: rabit.metadata,
    config: opened.model.config,
    fileBytes: rabit.fileBytes,
    bitsPerWeight: layers.length ? report.bitsPerWeight ?? null : null,
    binarizedLayers: layers.length,
    maxPaths: layers.reduce((a, l) => Math.max(a, l.k), 0),
    createdAt: typeof rabit.created.at === "string" ? rabit.created.at : undefined,
    log,
    noLogReason: log
      ? undefined
      : (["ptq", "rtn2", "none"].includes(method)
        ? `method ${method} does not train`
        : `${problem} (method ${method})`),
    diagnostics: stored,
    diagnosticsSource: stored ? { kind: "metadata" } : undefined,
    opened,
  };
}

/**
 * Reads one input: a .rabit file (by its magic) or a JSON file of one of the known kinds. Anything else,
 * a missing file, or a model file that is not a .rabit, is refused with a message naming the file.
 */
export async function readReportInput(path: string): Promise<ReportInput> {
  const bytes = await readFileOrThrow(path, "Report input");
  if (bytes.length >= RABIT_MAGIC.length && RABIT_MAGIC.every((b, i) => bytes[i] === b)) {
    const opened = await openModel(path);
    return { ...runFromOpened(opened), label: basename(path) };
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ReportInputError(path, `found a binary file that is not a .rabit; ${KINDS_HINT}`);
  }
  return classifyJson(parseJsonInput(text, path), path);
}

/**
 * Reads every input and sorts them by kind. Run labels are file names, with a parent folder (then a
 * number) added where two runs share one. An eval's diagnostics go to the run it evaluated (same resolved
 * path) unless the run already has diagnostics stored.
 */
export async function readReportInputs(paths: string[]): Promise<ReportInputs> {
  if (paths.length === 0) throw new RangeError("report: expected at least one input file, found none");
  const inputs: ReportInput[] = [];
  for (const p of paths) inputs.push(await readReportInput(p));
  const out: ReportInputs = { runs: [], evals: [], benches: [], trainBenches: [] };
  for (const i of inputs) {
    if (i.kind === "run") out.runs.push(i);
    else if (i.kind === "eval") out.evals.push(i);
    else if (i.kind === "bench") out.benches.push(i);
    else out.trainBenches.push(i);
  }
  uniqueLabels(out.runs);
  for (const e of out.evals) {
    const run = runOfEval(out.runs, e);
    if (run && e.diagnostics && !run.diagnostics) {
      run.diagnostics = e.diagnostics;
      run.diagnosticsSource = { kind: "eval", path: e.path };
    }
  }
  return out;
}

/** The run an eval scored: the same resolved path. */
export function runOfEval(runs: RunInput[], e: EvalInput): RunInput | undefined {
  return runs.find((r) => resolve(r.path) === resolve(e.model));
}

function uniqueLabels(runs: RunInput[]): void {
  const names = runs.map((r) => basename(r.path));
  const shared = (name: string) => names.filter((n) => n === name).length > 1;
  runs.forEach((r, i) => {
    const parent = basename(resolve(r.path, ".."));
    const file = shared(names[i]) && parent ? `${parent}/${names[i]}` : names[i];
    r.label = `${file} (${r.method})`;
  });
  const seen = new Map<string, number>();
  for (const r of runs) {
    const n = (seen.get(r.label) ?? 0) + 1;
    seen.set(r.label, n);
    if (n > 1) r.label = `${r.label} #${n}`;
  }
}
