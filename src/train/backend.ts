// The training backend interface: what the loop asks of a device. The CPU implementation
// (cpu_backend.ts) is the definition; the WebGPU one must give the same losses (to 1e-3 relative).

import type { ParamTable } from "../model/params.ts";

/** The losses of one batch (means over its windows). */
export interface BatchLosses {
  /** (1 − α) · kl + α · ce + γ · mse, α = BackendOptions.labelWeight (0: kl + γ · mse). */
  loss: number;
  /** Mean over positions of KL(teacher ‖ student), nats. */
  kl: number;
  /** Σ over blocks of the mean squared error of the block's output hidden state. */
  mse: number;
  /** Mean over scored positions of the student's cross-entropy on the next token (only when α > 0). */
  ce?: number;
}

/**
 * The next-token targets of a batch's windows (B of S tokens each) as one (B·S) row list: position t of
 * window b scores window b's token t + 1; the last position of each window has none (−1, unscored).
 *
 * @example
 * ```ts
 * import { nextTokenTargets } from "./backend.ts";
 * nextTokenTargets([Int32Array.of(1, 5, 6)], 3); // Int32Array [5, 6, -1]
 * ```
 */
export function nextTokenTargets(labels: Int32Array[], S: number): Int32Array<ArrayBuffer> {
  const targets = new Int32Array(labels.length * S).fill(-1); // (B·S)
  labels.forEach((w, b) => {
    if (w.length !== S) {
      throw new RangeError(`nextTokenTargets: expected label windows of ${S} tokens, found ${w.length}`);
    }
    for (let t = 0; t + 1 < S; t++) targets[b * S + t] = w[t + 1];
  });
  return targets;
}

/**
 * A batch's losses from its means: loss = kl + γ·mse, or (1 − α)·kl + α·ce + γ·mse with a label weight α > 0
 * (then `ce` is reported too).
 */
export function batchLosses(
  kl: number,
  mse: number,
  gamma: number,
  labelWeight: number,
  ce: number,
): BatchLosses {
  if (labelWeight === 0) return { loss: kl + gamma * mse, kl, mse };
  return { loss: (1 - labelWeight) * kl + labelWeight * ce + gamma * mse, kl, mse, ce };
}

/**
 * Returns γ when it is a valid MSE weight (finite, ≥ 0), else throws naming it: what both backends' setGamma
 * and constructors accept.
 *
 * @example
 * ```ts
 * import { checkGamma } from "./backend.ts";
 * checkGamma(0.1); // 0.1
 * ```
 */
export function checkGamma(gamma: number): number {
  if (!(gamma >= 0) || !Number.isFinite(gamma)) {
    throw new RangeError(`training backend: expected an MSE weight gamma ≥ 0, found ${gamma}`);
  }
  return gamma;
}

/** Checks the label windows `losses` was given against the batch and the label weight α. */
export function checkLabels(labelWeight: number, labels: Int32Array[] | undefined, batch: number): void {
  if (labelWeight > 0 && labels?.length !== batch) {
    throw new Error(
      `losses: the label weight ${labelWeight} needs the batch's ${batch} windows as read (before token ` +
        `noise), found ${labels === undefined ? "none" : labels.length}`,
    );
  }
}

/** What an optimizer step reports. */
export interface StepReport {
  /** Global L2 norm of the gradient before clipping. */
  gradNorm: number;
}

/** Everything that changes during training: the table and the optimizer moments (for checkpoints). */
export interface TrainState {
  /** The trainable table's values. */
  params: Float32Array;
  /** First moments (AdamW) / momentum (Muon), the table's layout. */
  m: Float32Array;
  /** AdamW second moments: the whole table (AdamW) or its tail from layout.latentEnd (Muon). */
  v: Float32Array;
}

/**
 * Refuses a state whose lengths are not the backend's (a checkpoint of another model or optimizer) before
 * anything is overwritten: params and m have the table's length, v the optimizer's second-moment length.
 */
export function checkTrainStateLengths(state: TrainState, params: number, m: number, v: number): void {
  const check = (what: string, got: Float32Array, want: number) => {
    if (got.length !== want) {
      throw new RangeError(`writeState: expected ${what} of ${want} values, found ${got.length}`);
    }
  };
  check("params", state.params, params);
  check("m", state.m, m);
  check("v", state.v, v);
}

/** Runs a synchronous state write as the Promise TrainingBackend.writeState returns (a throw rejects it). */
export function writeStateAsPromise(write: () => void): Promise<void> {
  try {
    write();
  } catch (e) {
    return Promise.reject(e);
  }
  return Promise.resolve();
}

/**
 * One training step is: teacherForward → studentForward → losses → backward → optimizerStep. The
 * backend keeps what each phase produces (teacher logits and block outputs, student activations,
 * gradients) until the next phase needs it.
 */
export interface TrainingBackend {
  /** "cpu" or "webgpu". */
  readonly name: string;
  /** The trainable table's layout (values live on the backend; read them with readState). */
  readonly table: ParamTable;
  /** Bytes of optimizer state allocated (m and v). */
  readonly optimizerStateBytes: number;
  /** Runs the full-precision teacher on the windows, keeping its logits and block outputs. */
  teacherForward(windows: Int32Array[]): Promise<void>;
  /** Runs the student (paths derived from the current latents), keeping what the backward needs. */
  studentForward(windows: Int32Array[]): Promise<void>;
  /**
   * (1 − α)·KL + α·CE + γ·MSE of the kept outputs; seeds the gradients at the logits and block outputs.
   * `labels`: the batch's windows as read, before token noise (their next tokens are the CE targets); needed
   * only when the label weight α > 0.
   */
  losses(labels?: Int32Array[]): Promise<BatchLosses>;
  /** Backpropagates into the table's gradient (latents through the straight-through estimator). */
  backward(): Promise<void>;
  /**
   * Sets the MSE weight γ of the next `losses` and `backward` (a γ schedule: loop.ts's gammaAt); it starts at
   * the options' γ.
   */
  setGamma(gamma: number): void;
  /**
   * Sets the latent mix α of the next `studentForward` and its `backward`: the binarized layers compute with
   * (1 − α)·What + α·W (quant/latent_mix.ts; a schedule: loop.ts's latentMixAt). It starts at 0. Refused
   * (RangeError) outside [0, 1), and for α > 0 with the standard derivation or the clipped STE.
   */
  setLatentMix(alpha: number): void;
  /** Clips the gradient to the global norm `maxNorm` (0: no clipping) and applies one optimizer step. */
  optimizerStep(lr: number, step: number, maxNorm: number): Promise<StepReport>;
  /** A copy of the table and optimizer moments. */
  readState(): Promise<TrainState>;
  /** Replaces the table and optimizer moments (a resumed run). */
  writeState(state: TrainState): Promise<void>;
  /** Frees what the backend holds. */
  dispose(): void;
}
