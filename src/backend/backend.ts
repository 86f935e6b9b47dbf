// The interface every inference backend implements (CPU reference, WebGPU): a session holds one
// model's weights and a KV cache, and runs chunks of tokens at given positions.

import type { LlamaConfig } from "../model/config.ts";

/** Options of {@link InferenceSession.run}. */
export interface RunOptions {
  /** Return logits for the last position only (V) instead of every position (T, V). */
  lastOnly?: boolean;
}

/** One model loaded on one backend, with its KV cache. */
export interface InferenceSession {
  /** "cpu", "wasm" or "webgpu". */
  readonly backend: string;
  /** A one-line description (adapter name for WebGPU). */
  readonly device: string;
  /** The model's hyper-parameters. */
  readonly config: LlamaConfig;
  /**
   * Runs tokens at positions pos0..pos0+T−1 (the cache must hold 0..pos0−1) and returns logits:
   * (T, V) row-major, or (V) with lastOnly. pos0 = 0 starts a fresh sequence.
   */
  run(tokens: ArrayLike<number>, pos0: number, options?: RunOptions): Promise<Float32Array>;
  /** Frees device memory. */
  dispose(): void;
}

/**
 * Which backend a command should use: "auto" (WebGPU on a hardware adapter, else WebAssembly SIMD, else the
 * TypeScript reference), "webgpu", "wasm" (WebAssembly SIMD kernels on the CPU) or "cpu" (the reference).
 */
export type BackendName = "auto" | "cpu" | "wasm" | "webgpu";

/** The backend names accepted by `--backend`. */
export const BACKEND_NAMES: readonly BackendName[] = ["auto", "webgpu", "wasm", "cpu"];
