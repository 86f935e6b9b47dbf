// Picks and opens a backend for a model: `auto` tries WebGPU, then falls back to the CPU with a notice.

import type { BackendName, InferenceSession } from "./backend.ts";
import { CpuSession } from "./cpu/session.ts";
import type { PackedModel } from "../quant/residual_binary.ts";
import { requestGpu } from "./webgpu/device.ts";
import { WebGpuSession } from "./webgpu/session.ts";

/** Options of {@link createSession}. */
export interface CreateSessionOptions {
  backend?: BackendName;
  /** Receives one-line notices (e.g. the fallback to CPU). */
  onNotice?: (line: string) => void;
}

/** Opens `model` on the requested backend. */
export async function createSession(
  model: PackedModel,
  options: CreateSessionOptions = {},
): Promise<InferenceSession> {
  const backend = options.backend ?? "auto";
  if (backend === "cpu") return new CpuSession(model);
  const ctx = await requestGpu().catch(() => null);
  if (!ctx) {
    if (backend === "webgpu") {
      throw new Error(
        "No WebGPU adapter answered: install a GPU driver (or Mesa's llvmpipe), or use --backend cpu",
      );
    }
    options.onNotice?.("note: no WebGPU adapter answered; running on the CPU reference backend");
    return new CpuSession(model);
  }
  if (backend === "auto" && ctx.isFallback) {
    // A software adapter runs kernels on the CPU with per-dispatch overhead; the reference backend is
    // faster for small models there. Users who want the WebGPU path anyway pass --backend webgpu.
    options.onNotice?.(
      `note: the WebGPU adapter is a CPU fallback (${ctx.adapterDescription}); using the CPU backend ` +
        "(--backend webgpu forces WebGPU)",
    );
    ctx.device.destroy();
    return new CpuSession(model);
  }
  return await WebGpuSession.create(model, { ctx });
}
