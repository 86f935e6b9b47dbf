// The training backend interface: what the loop asks of a device. The CPU implementation
// (cpu_backend.ts) is the definition; the WebGPU one must give the same losses (to 1e-3 relative).

import type { ParamTable } from "../model/params.ts";

/** The losses of one batch (means over its windows). */
export interface BatchLosses {
  /** kl + γ · mse. */
  loss: number;
  /** Mean over positions of KL(teacher ‖ student), nats. */
  kl: number;
  /** Σ over blocks of the mean squared error of the block's output hidden state. */
  mse: number;
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
  /** KL + γ·MSE of the kept outputs; seeds the gradients at the logits and block outputs. */
  losses(): Promise<BatchLosses>;
  /** Backpropagates into the table's gradient (latents through the straight-through estimator). */
  backward(): Promise<void>;
  /** Clips the gradient to the global norm `maxNorm` (0: no clipping) and applies one optimizer step. */
  optimizerStep(lr: number, step: number, maxNorm: number): Promise<StepReport>;
  /** A copy of the table and optimizer moments. */
  readState(): Promise<TrainState>;
  /** Replaces the table and optimizer moments (a resumed run). */
  writeState(state: TrainState): Promise<void>;
  /** Frees what the backend holds. */
  dispose(): void;
}
