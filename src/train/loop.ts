// The training loop: warmup + cosine learning rate, one batch per step in a seeded order, global
// gradient-norm clipping, a checkpoint every N steps, exact resume, and a hard stop on non-finite losses.

import type { TrainingBackend } from "./backend.ts";
import { type Checkpoint, layoutOf, type TrainLog, writeCheckpoint } from "./checkpoint.ts";
import type { WindowSet } from "./data.ts";

/** Options of {@link runTraining}. */
export interface LoopOptions {
  /** Total optimizer steps (a resumed run continues to this count). */
  steps: number;
  /** Windows per step. */
  batch: number;
  /** Windows per step from step {@link lateBatchStart} on (default: `batch`); see {@link stepBatch}. */
  lateBatch?: number;
  /** Where lateBatch starts, as a fraction of the steps (default 0.5). */
  lateBatchFrom?: number;
  /** Peak learning rate. */
  lr: number;
  /** Linear warmup steps (default 5 % of steps). */
  warmup?: number;
  /** Final learning rate as a fraction of the peak (default 0, as quantize's). */
  minLrRatio?: number;
  /** Shape of the decay after the warmup (default "cosine"). */
  lrSchedule?: LrSchedule;
  /** Global gradient-norm clip (default 1; 0 disables). */
  maxGradNorm?: number;
  /**
   * A γ schedule: the MSE weight goes from `from` to `to` along the lr's decay (see {@link gammaAt}); each
   * step sets it on the backend. Default: none (the backend's γ throughout).
   */
  gammaSchedule?: GammaSchedule;
  /**
   * A latent mix (quant/latent_mix.ts): the binarized layers compute with (1 − α)·What + α·W, α falling from
   * `from` to 0 (see {@link latentMixAt}); each step sets it on the backend. Default: none (α = 0).
   */
  latentMix?: LatentMixSchedule;
  /** Seed of the window order. */
  seed: number;
  /** Write a checkpoint here every `checkpointEvery` steps and at the end. */
  checkpointPath?: string;
  /** Steps between checkpoints (default: only at the end). */
  checkpointEvery?: number;
  /** What a checkpoint records to identify the run (teacher and options). */
  identity: Pick<Checkpoint, "teacher" | "options" | "backend">;
  /** Continue from this checkpoint (its state is written into the backend first). */
  resume?: Checkpoint;
  /**
   * Give the backend's losses the batch's windows as read, before token noise (what a label weight's
   * cross-entropy scores; default false).
   */
  labels?: boolean;
  /** Called after every step. */
  onStep?: (info: StepInfo) => void;
  /** Stop after this step (checkpoint written), as if interrupted; the schedule still spans `steps`. */
  stopAfter?: number;
}

/**
 * How the learning rate falls from the peak to the floor after the warmup: a half cosine, or a straight line
 * (linear decay to zero, "D2Z", which arXiv 2502.15938 finds ahead of cosine for LLM training).
 */
export type LrSchedule = "cosine" | "linear";

/** The MSE weight's path over a run: `from` through the warmup, then to `to` as the lr decays. */
export interface GammaSchedule {
  /** γ at the start (the backend's options.gamma). */
  from: number;
  /** γ at the last step. */
  to: number;
}

/** The latent mix's path over a run: α = `from` at step 1, falling on a line to 0 at fraction `until`. */
export interface LatentMixSchedule {
  /** α at step 1, in [0, 1). */
  from: number;
  /** Where α reaches 0, as a fraction of the run, in (0, 1]. */
  until: number;
}

/** Progress of one step. */
export interface StepInfo {
  /** The step just done (1-based). */
  step: number;
  /** Total steps of the run. */
  steps: number;
  /** (1 − α)·kl + α·ce + γ·mse of the step's batch (α: the label weight; 0 by the backend's options). */
  loss: number;
  /** KL(teacher ‖ student) per position, nats. */
  kl: number;
  /** Hidden-state MSE summed over blocks. */
  mse: number;
  /** Cross-entropy on the text's next tokens (only with a label weight). */
  ce?: number;
  /** Learning rate of the step. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Training tokens per second over this session's steps. */
  tokensPerSecond: number;
}

/**
 * The learning rate of step s (1-based): linear warmup, then cosine (or linear) decay to minLrRatio · lr.
 *
 * @example
 * ```ts
 * import { learningRate } from "./loop.ts";
 * const o = { steps: 100, lr: 1e-3, warmup: 10 };
 * learningRate(5, o); // 5e-4, halfway through the warmup
 * learningRate(100, o); // 0: the default floor
 * learningRate(100, { ...o, minLrRatio: 0.1 }); // 1e-4: a floor of 0.1 · lr
 * learningRate(55, { ...o, lrSchedule: "linear" }); // 5e-4: halfway down the line
 * ```
 */
export function learningRate(
  s: number,
  o: Pick<LoopOptions, "steps" | "lr" | "warmup" | "minLrRatio" | "lrSchedule">,
): number {
  const warmup = warmupSteps(o);
  const min = o.minLrRatio ?? 0;
  if (s <= warmup) return o.lr * s / warmup;
  return o.lr * (min + (1 - min) * decayFraction(s, o));
}

/** Warmup steps of a run: the option, else 5 % of the steps (at least 1). */
function warmupSteps(o: Pick<LoopOptions, "steps" | "warmup">): number {
  return o.warmup ?? Math.max(1, Math.round(0.05 * o.steps));
}

/**
 * How far the decay after the warmup has still to go at step s: 1 through the warmup, then down to 0 at the
 * last step along the half cosine (or the straight line) of the lr schedule.
 *
 * @example
 * ```ts
 * import { decayFraction } from "./loop.ts";
 * const o = { steps: 100, warmup: 10 };
 * decayFraction(5, o); // 1: still warming up
 * decayFraction(55, o); // 0.5 (to rounding): halfway down the cosine
 * decayFraction(100, o); // 0
 * ```
 */
export function decayFraction(
  s: number,
  o: Pick<LoopOptions, "steps" | "warmup" | "lrSchedule">,
): number {
  const warmup = warmupSteps(o);
  if (s <= warmup) return 1;
  const t = Math.min(1, (s - warmup) / Math.max(1, o.steps - warmup));
  return (o.lrSchedule ?? "cosine") === "linear" ? 1 - t : 0.5 * (1 + Math.cos(Math.PI * t));
}

/**
 * Levels of a γ schedule: the decay fraction is rounded to multiples of 1/GAMMA_LEVELS, so a run sets at most
 * GAMMA_LEVELS + 1 distinct γ. The WebGPU backend binds γ as a kernel parameter, and each distinct value
 * caches one bind group and uniform (dispatch.ts): a new value every step would churn that cache.
 */
export const GAMMA_LEVELS = 64;

/**
 * The MSE weight γ of step s under a schedule: `from` through the warmup, then `to + (from − to)·f` where f
 * is the lr's {@link decayFraction} rounded to a multiple of 1/{@link GAMMA_LEVELS} (a staircase of 64
 * steps), so γ reaches `to` at the end. A schedule to 0 leaves the late steps, where the signs settle, to
 * the KL alone (the hidden-state MSE guides the early ones).
 *
 * @example
 * ```ts
 * import { gammaAt } from "./loop.ts";
 * const o = { steps: 100, warmup: 10, gammaSchedule: { from: 0.1, to: 0 } };
 * gammaAt(5, o); // 0.1
 * gammaAt(100, o); // 0
 * ```
 */
export function gammaAt(
  s: number,
  o: Pick<LoopOptions, "steps" | "warmup" | "lrSchedule"> & { gammaSchedule: GammaSchedule },
): number {
  const { from, to } = o.gammaSchedule;
  return to + (from - to) * Math.round(decayFraction(s, o) * GAMMA_LEVELS) / GAMMA_LEVELS;
}

/**
 * The latent mix α of step s (1-based): `from` at step 1, then a straight line to 0 at step
 * 1 + U, U = max(1, round(until · (steps − 1))), and 0 after it (so `until` = 1 reaches 0 at the last
 * step: the last step always trains the binary layer alone, as it will be packed).
 *
 * @example
 * ```ts
 * import { latentMixAt } from "./loop.ts";
 * const o = { steps: 101, latentMix: { from: 0.5, until: 0.5 } };
 * [1, 26, 51, 101].map((s) => latentMixAt(s, o)); // [0.5, 0.25, 0, 0]
 * ```
 */
export function latentMixAt(
  s: number,
  o: Pick<LoopOptions, "steps"> & { latentMix: LatentMixSchedule },
): number {
  const { from, until } = o.latentMix;
  const span = Math.max(1, Math.round(until * (o.steps - 1)));
  return from * Math.max(0, 1 - (s - 1) / span);
}

/**
 * The first step (1-based) that takes `lateBatch` windows: the one after ⌊lateBatchFrom · steps⌋.
 *
 * @example
 * ```ts
 * import { lateBatchStart } from "./loop.ts";
 * lateBatchStart({ steps: 2400 }); // 1201: the second half
 * lateBatchStart({ steps: 10, lateBatchFrom: 0.75 }); // 8
 * ```
 */
export function lateBatchStart(o: Pick<LoopOptions, "steps" | "lateBatchFrom">): number {
  return Math.floor((o.lateBatchFrom ?? 0.5) * o.steps) + 1;
}

/**
 * Windows of step s (1-based): `batch`, then `lateBatch` from {@link lateBatchStart} on. A larger batch late
 * in the decay spends compute where the gradient's noise, not its direction, limits what the signs settle to
 * (docs/evidence.md, "The default budget").
 *
 * @example
 * ```ts
 * import { stepBatch } from "./loop.ts";
 * const o = { steps: 8, batch: 2, lateBatch: 4, lateBatchFrom: 0.5 };
 * [1, 4, 5, 8].map((s) => stepBatch(s, o)); // [2, 2, 4, 4]
 * stepBatch(8, { steps: 8, batch: 2 }); // 2: no late batch
 * ```
 */
export function stepBatch(
  s: number,
  o: Pick<LoopOptions, "steps" | "batch" | "lateBatch" | "lateBatchFrom">,
): number {
  return s >= lateBatchStart(o) ? o.lateBatch ?? o.batch : o.batch;
}

/**
 * Windows read by steps 1 … s − 1 (so step s reads windows from there on): a pure function of the options,
 * which keeps a resumed run's windows those of an uninterrupted one.
 *
 * @example
 * ```ts
 * import { windowsBefore } from "./loop.ts";
 * const o = { steps: 8, batch: 2, lateBatch: 4, lateBatchFrom: 0.5 };
 * windowsBefore(5, o); // 8: four steps of 2
 * windowsBefore(9, o); // 24: then four of 4
 * ```
 */
export function windowsBefore(
  s: number,
  o: Pick<LoopOptions, "steps" | "batch" | "lateBatch" | "lateBatchFrom">,
): number {
  const late = lateBatchStart(o);
  const early = Math.min(s, late) - 1;
  return early * o.batch + Math.max(0, s - late) * (o.lateBatch ?? o.batch);
}

/**
 * Thrown when a loss or gradient stops being finite; the last checkpoint on disk is left untouched.
 *
 * @example
 * ```ts
 * import { NonFiniteError } from "./loop.ts";
 * const e = new NonFiniteError("step 3: the loss is NaN");
 * e instanceof RangeError; // true
 * e.name; // "NonFiniteError"
 * ```
 */
export class NonFiniteError extends RangeError {
  /** An error with `message` as is. */
  constructor(message: string) {
    super(message);
    this.name = "NonFiniteError";
  }
}

/**
 * Runs (or continues) training; returns the full log (a resumed run's earlier steps included). With the
 * pieces around it this is `quantize` (quantize.ts) opened up: a custom loop, then packing.
 *
 * @example
 * ```ts
 * import { runTraining } from "./loop.ts";
 * import { paramsCrc } from "./checkpoint.ts";
 * import { CpuTrainingBackend } from "./cpu_backend.ts";
 * import { WindowSet } from "./data.ts";
 * import { initializeTable } from "./init.ts";
 * import { TrainableLinear, trainLayout } from "./trainable.ts";
 * import { withoutQuantized } from "../model/model.ts";
 * import { openModel } from "../io/load_model.ts";
 * const { model, tokenizer } = await openModel("../shared/data/stories260K.bin", { requireTokenizer: true });
 * const text = (await Deno.readTextFile("../shared/data/tinystories_dev.txt")).slice(0, 4000);
 * const windows = WindowSet.fromTexts([{ name: "dev", text }], (t) => tokenizer!.encode(t), 32);
 * const layout = trainLayout(model.config, 2, "rabit", "norms");
 * initializeTable(model, layout, { method: "rabit", k: 2, precondition: 0, svidRounds: 0 });
 * const backend = new CpuTrainingBackend(model, layout, { method: "rabit", k: 2, gamma: 0.1, optimizer: "muon" });
 * const { log } = await runTraining(backend, windows, {
 *   steps: 3,
 *   batch: 1,
 *   lr: 2e-3,
 *   seed: 1,
 *   identity: { teacher: { config: model.config, crc: paramsCrc(model.params) }, options: { note: "example" } },
 * });
 * log.losses.length; // 3
 * // Pack: freeze each layer's signs and scales, keep the trained norms.
 * layout.table.data.set((await backend.readState()).params);
 * const quantized = new Map(layout.linears.map((n) => [n, new TrainableLinear(layout.table, n, 2, "rabit").pack()]));
 * const params = withoutQuantized(model.params, layout.linears);
 * for (const n of layout.floats) params.get(n).set(layout.table.get(n));
 * const student = { config: model.config, params, quantized }; // a PackedModel: run it, or writeRabit it
 * student.quantized.size; // 35
 * backend.dispose();
 * ```
 */
export async function runTraining(
  backend: TrainingBackend,
  windows: WindowSet,
  o: LoopOptions,
): Promise<{ log: TrainLog; seconds: number }> {
  const log: TrainLog = { losses: [], kl: [], mse: [], lr: [], gradNorm: [] };
  let first = 1;
  let priorSeconds = 0;
  if (o.resume) {
    const ck = o.resume;
    if (ck.step > o.steps) {
      throw new RangeError(`resume: the checkpoint is at step ${ck.step}, beyond --steps ${o.steps}`);
    }
    await backend.writeState(ck.state);
    for (const key of Object.keys(log) as (keyof TrainLog)[]) log[key] = ck.log[key].slice(0, ck.step);
    first = ck.step + 1;
    priorSeconds = ck.seconds;
  }
  const start = performance.now();
  const seconds = () => priorSeconds + (performance.now() - start) / 1000;
  let tokens = 0;
  const save = async (step: number) => {
    if (!o.checkpointPath) return;
    await writeCheckpoint(o.checkpointPath, {
      ...o.identity,
      step,
      layout: layoutOf(backend.table),
      state: await backend.readState(),
      log,
      seconds: seconds(),
    });
  };
  const last = Math.min(o.steps, o.stopAfter ?? o.steps);
  for (let s = first; s <= last; s++) {
    const first = windowsBefore(s, o), count = stepBatch(s, o);
    const batch = windows.span(o.seed, first, count);
    if (o.gammaSchedule) backend.setGamma(gammaAt(s, { ...o, gammaSchedule: o.gammaSchedule }));
    if (o.latentMix) backend.setLatentMix(latentMixAt(s, { ...o, latentMix: o.latentMix }));
    await backend.teacherForward(batch);
    await backend.studentForward(batch);
    const losses = await backend.losses(
      o.labels ? windows.span(o.seed, first, count, { clean: true }) : undefined,
    );
    if (!Number.isFinite(losses.loss)) {
      throw new NonFiniteError(
        `step ${s}: the loss is ${losses.loss} (KL ${losses.kl}, MSE ${losses.mse}); training stopped` +
          (o.checkpointPath ? `, the last good checkpoint is ${o.checkpointPath}` : "") +
          ". Try a lower --lr or --gamma",
      );
    }
    await backend.backward();
    const lr = learningRate(s, o);
    let report;
    try {
      report = await backend.optimizerStep(lr, s, o.maxGradNorm ?? 1);
    } catch (e) {
      if (e instanceof RangeError && /not finite/.test(e.message)) {
        throw new NonFiniteError(
          `${e.message}; training stopped` +
            (o.checkpointPath ? `, the last good checkpoint is ${o.checkpointPath}` : "") +
            ". Try a lower --lr",
        );
      }
      throw e;
    }
    log.losses.push(losses.loss);
    log.kl.push(losses.kl);
    log.mse.push(losses.mse);
    log.lr.push(lr);
    log.gradNorm.push(report.gradNorm);
    tokens += batch.reduce((a, w) => a + w.length, 0);
    o.onStep?.({
      step: s,
      steps: o.steps,
      ...losses,
      lr,
      gradNorm: report.gradNorm,
      tokensPerSecond: tokens / ((performance.now() - start) / 1000),
    });
    if (o.checkpointEvery && s % o.checkpointEvery === 0 && s < last) await save(s);
  }
  await save(last);
  return { log, seconds: seconds() };
}
