// The CPU training backend: the reference forward and backward (src/model/) over a student whose block
// linears are TrainableLinear layers reading the flat table; the definition the WebGPU backend matches.
//
// Dimension legend: B windows in a batch, S tokens per window, V vocabulary, D model width.

import { backwardChunk } from "../model/backward.ts";
import { type ChunkActivations, createKvCache, forwardChunk } from "../model/forward.ts";
import type { LlamaModel } from "../model/model.ts";
import type { ParamTable } from "../model/params.ts";
import { adamwStep } from "./adamw.ts";
import {
  type BatchLosses,
  batchLosses,
  checkGamma,
  checkLabels,
  checkTrainStateLengths,
  type StepReport,
  type TrainingBackend,
  type TrainState,
  writeStateAsPromise,
} from "./backend.ts";
import { windowLossSeeds } from "./losses.ts";
import { muonStep } from "./muon.ts";
import { latentSlabs, layerPaths, TrainableLinear, type TrainLayout, type TrainMethod } from "./trainable.ts";

/** Optimizer of the 2-D latents (scales and float tensors always use AdamW). */
export type LatentOptimizer = "muon" | "adamw";

/** Options shared by every training backend. */
export interface BackendOptions {
  /** The training method (the layout's). */
  method: TrainMethod;
  /**
   * Binary paths, when every layer has the same k (a check against the layout); each layer trains the paths
   * its table holds (trainable.ts layerPaths), so a mixed-k layout needs none.
   */
  k?: number;
  /** Weight γ of the hidden-state MSE (METHOD.md §4). */
  gamma: number;
  /** Optimizer of the latents. */
  optimizer: LatentOptimizer;
  /** AdamW/Muon decoupled weight decay of the latents (default 0). */
  weightDecay?: number;
  /** Learning-rate multiplier of the scales and float tensors relative to the latents (default 1). */
  scaleLrMultiplier?: number;
  /** Muon's momentum μ for the latents (default 0.95; unused with AdamW). */
  momentum?: number;
  /** Clipped STE bound (undefined: identity STE). */
  steClip?: number;
  /**
   * Weight α of the hard-label cross-entropy on the text's next tokens, taken from the KL's share: the loss
   * is (1 − α)·KL + α·CE + γ·MSE (default 0, pure distillation).
   */
  labelWeight?: number;
}

/**
 * The reference training backend: one step is teacherForward → studentForward → losses → backward →
 * optimizerStep, each over a batch of windows (runTraining in loop.ts drives it).
 *
 * @example
 * ```ts
 * import { CpuTrainingBackend } from "./cpu_backend.ts";
 * import { initializeTable } from "./init.ts";
 * import { trainLayout } from "./trainable.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const teacher = { config, params, quantized: new Map() };
 * const layout = trainLayout(config, 2, "rabit", "norms");
 * initializeTable(teacher, layout, { method: "rabit", k: 2, precondition: 0, svidRounds: 0 });
 * const backend = new CpuTrainingBackend(teacher, layout, { method: "rabit", k: 2, gamma: 0.1, optimizer: "muon" });
 * const batch = [Int32Array.from([1, 403, 407, 261, 378, 432, 383, 286])];
 * await backend.teacherForward(batch);
 * await backend.studentForward(batch);
 * (await backend.losses()).loss; // KL + 0.1 · MSE, > 0: the student is not the teacher yet
 * await backend.backward();
 * await backend.optimizerStep(1e-3, 1, 1);
 * backend.dispose();
 * ```
 */
export class CpuTrainingBackend implements TrainingBackend {
  /** Always "cpu". */
  readonly name = "cpu";
  /** The trainable table, trained in place (it is `layout.table`). */
  readonly table: ParamTable;
  readonly #grads: ParamTable;
  readonly #m: Float32Array;
  readonly #v: Float32Array;
  readonly #layout: TrainLayout;
  readonly #teacher: LlamaModel;
  readonly #student: LlamaModel<TrainableLinear>;
  readonly #options: BackendOptions;
  /** The MSE weight of the next losses/backward (options.gamma until setGamma). */
  #gamma: number;
  readonly #studentGrads: ParamTable;
  #teacherOut: { logits: Float32Array; hidden: Float32Array[] }[] = [];
  #studentOut: { logits: Float32Array; hidden: Float32Array[]; acts: ChunkActivations }[] = [];
  #seeds: { dLogits: Float32Array; dHidden: Float32Array[] }[] = [];

  /** `layout.table` must hold the initialized values (initializeTable); the backend trains it in place. */
  constructor(teacher: LlamaModel, layout: TrainLayout, options: BackendOptions) {
    this.#teacher = teacher;
    this.#layout = layout;
    this.#options = options;
    this.#gamma = checkGamma(options.gamma);
    this.table = layout.table;
    this.#grads = layout.table.zerosLike();
    this.#m = new Float32Array(this.table.count);
    this.#v = new Float32Array(
      options.optimizer === "muon" ? this.table.count - layout.latentEnd : this.table.count,
    );
    const params = teacher.params.zerosLike();
    params.data.set(teacher.params.data);
    const quantized = new Map<string, TrainableLinear>();
    for (const name of layout.linears) {
      const k = options.k ?? layerPaths(layout, name); // a given k is checked by the layer
      quantized.set(name, new TrainableLinear(this.table, name, k, options.method, options.steClip));
    }
    this.#student = { config: teacher.config, params, quantized };
    this.#studentGrads = params.zerosLike();
    this.#syncStudent();
  }

  /** Bytes of the optimizer moments m and v. */
  get optimizerStateBytes(): number {
    return (this.#m.length + this.#v.length) * 4;
  }

  /** A copy of the gradient accumulated since the last optimizer step (the table's layout). */
  gradient(): Float32Array {
    return this.#grads.data.slice();
  }

  /** The student as it computes now (trainable layers over the live table). */
  get student(): LlamaModel<TrainableLinear> {
    return this.#student;
  }

  teacherForward(windows: Int32Array[]): Promise<void> {
    this.#teacherOut = windows.map((win) => {
      const r = forwardChunk(this.#teacher, win, 0, createKvCache(this.#teacher, win.length), {
        keepHidden: true,
      });
      return { logits: r.logits, hidden: r.hidden! };
    });
    return Promise.resolve();
  }

  studentForward(windows: Int32Array[]): Promise<void> {
    this.#studentOut = windows.map((win) => {
      const r = forwardChunk(this.#student, win, 0, createKvCache(this.#student, win.length), {
        keepHidden: true,
        keepActivations: true,
      });
      return { logits: r.logits, hidden: r.hidden!, acts: r.activations! };
    });
    return Promise.resolve();
  }

  losses(labels?: Int32Array[]): Promise<BatchLosses> {
    const B = this.#studentOut.length;
    if (B === 0 || this.#teacherOut.length !== B) {
      throw new Error("losses: run teacherForward and studentForward on the same batch first");
    }
    const V = this.#teacher.config.vocabSize;
    const gamma = this.#gamma;
    const alpha = this.#options.labelWeight ?? 0;
    checkLabels(alpha, labels, B);
    let kl = 0, mse = 0, ce = 0;
    this.#seeds = this.#studentOut.map((s, b) => {
      const w = windowLossSeeds(s, this.#teacherOut[b], V, {
        batch: B,
        gamma,
        labelWeight: alpha,
        label: labels?.[b],
      });
      kl += w.kl / B;
      ce += w.ce / B;
      mse += w.mse / B;
      return { dLogits: w.dLogits, dHidden: w.dHidden };
    });
    return Promise.resolve(batchLosses(kl, mse, gamma, alpha, ce));
  }

  setGamma(gamma: number): void {
    this.#gamma = checkGamma(gamma);
  }

  setLatentMix(alpha: number): void {
    for (const layer of this.#student.quantized.values()) layer.setMix(alpha);
  }

  backward(): Promise<void> {
    const trained = new Set(this.#layout.floats);
    const linearGrads = new Map<string, Float32Array>();
    this.#studentGrads.data.fill(0);
    this.#studentOut.forEach((s, b) => {
      const seed = this.#seeds[b];
      backwardChunk(this.#student, s.acts, seed.dLogits, {
        dHidden: this.#gamma === 0 ? undefined : seed.dHidden,
        grads: this.#studentGrads,
        linearGrads,
        trainable: (name) => trained.has(name),
      });
    });
    for (const [name, dWHat] of linearGrads) {
      this.#student.quantized.get(name)!.accumulate(dWHat, this.#grads);
    }
    for (const name of this.#layout.floats) {
      const g = this.#grads.get(name), src = this.#studentGrads.get(name);
      for (let i = 0; i < g.length; i++) g[i] += src[i];
    }
    for (const { offset, size } of this.#layout.frozen) this.#grads.data.fill(0, offset, offset + size);
    this.#studentOut = [];
    this.#teacherOut = [];
    this.#seeds = [];
    return Promise.resolve();
  }

  optimizerStep(lr: number, step: number, maxNorm: number): Promise<StepReport> {
    const g = this.#grads.data;
    let sq = 0;
    for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
    const gradNorm = Math.sqrt(sq);
    if (!Number.isFinite(gradNorm)) {
      throw new RangeError(`optimizer step ${step}: the gradient is not finite (norm ${gradNorm})`);
    }
    if (maxNorm > 0 && gradNorm > maxNorm) {
      const s = maxNorm / gradNorm;
      for (let i = 0; i < g.length; i++) g[i] *= s;
    }
    const o = this.#options;
    const wd = o.weightDecay ?? 0;
    const scaleLr = lr * (o.scaleLrMultiplier ?? 1);
    const end = this.#layout.latentEnd;
    const p = this.table.data;
    if (o.optimizer === "muon") {
      for (const name of this.#layout.linears) {
        const e = this.table.entry(`${name}.w`);
        const [rows, cols] = e.shape;
        const slabs = latentSlabs(o.method, layerPaths(this.#layout, name)); // each stacked latent is its own matrix
        const r = rows / slabs;
        for (let s = 0; s < slabs; s++) {
          if (o.method === "freeze" && s < slabs - 1) continue; // frozen paths: zero gradient, no update
          const a = e.offset + s * r * cols, b = a + r * cols;
          muonStep(p.subarray(a, b), g.subarray(a, b), this.#m.subarray(a, b), r, cols, {
            lr,
            weightDecay: wd,
            momentum: o.momentum,
          });
        }
      }
      adamwStep(p.subarray(end), g.subarray(end), this.#m.subarray(end), this.#v, step, { lr: scaleLr });
    } else {
      adamwStep(
        p.subarray(0, end),
        g.subarray(0, end),
        this.#m.subarray(0, end),
        this.#v.subarray(0, end),
        step,
        {
          lr,
          weightDecay: wd,
        },
      );
      adamwStep(p.subarray(end), g.subarray(end), this.#m.subarray(end), this.#v.subarray(end), step, {
        lr: scaleLr,
      });
    }
    g.fill(0);
    this.#syncStudent();
    return Promise.resolve({ gradNorm });
  }

  readState(): Promise<TrainState> {
    return Promise.resolve({ params: this.table.data.slice(), m: this.#m.slice(), v: this.#v.slice() });
  }

  writeState(state: TrainState): Promise<void> {
    return writeStateAsPromise(() => this.#writeState(state));
  }

  #writeState(state: TrainState): void {
    checkTrainStateLengths(state, this.table.count, this.#m.length, this.#v.length);
    this.table.data.set(state.params);
    this.#m.set(state.m);
    this.#v.set(state.v);
    this.#syncStudent();
  }

  dispose(): void {
    this.#studentOut = [];
    this.#teacherOut = [];
  }

  /** Re-derives every layer's paths and copies trained float tensors into the student's parameters. */
  #syncStudent(): void {
    for (const layer of this.#student.quantized.values()) layer.derive();
    for (const name of this.#layout.floats) this.#student.params.get(name).set(this.table.get(name));
  }
}
