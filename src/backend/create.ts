// Picks and opens a backend for a model. `auto` takes WebGPU on a hardware adapter, else the WebAssembly SIMD
// kernels when this engine validates them, else the TypeScript reference, with a one-line notice.

import type { BackendName, InferenceSession } from "./backend.ts";
import { CpuSession } from "./cpu/session.ts";
import type { PackedModel } from "../quant/residual_binary.ts";
import { requestGpu } from "./webgpu/device.ts";
import { WebGpuSession } from "./webgpu/session.ts";
import { wasmSimdSupported } from "./wasm/kernels.ts";
import { WASM_SESSION_OPTION_KEYS, WasmSession, type WasmSessionOptions } from "./wasm/session.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

/** Options of {@link createSession}. */
export interface CreateSessionOptions {
  /** "auto" (default: WebGPU on a hardware adapter, else the CPU), "webgpu", "wasm" or "cpu". */
  backend?: BackendName;
  /** Receives one-line notices (e.g. the fallback to the CPU). */
  onNotice?: (line: string) => void;
  /** Options of the wasm backend, when it is chosen. */
  wasm?: WasmSessionOptions;
}

const CREATE_SESSION_OPTION_KEYS = optionKeys<CreateSessionOptions>({
  backend: true,
  onNotice: true,
  wasm: true,
});

/**
 * Opens `model` on the requested backend. `auto` runs on WebGPU when a hardware adapter answers, and on
 * the CPU otherwise (no adapter, or a software one such as llvmpipe), with a notice.
 *
 * @example
 * ```ts
 * import { createSession } from "./create.ts";
 * import { openModel } from "../io/load_model.ts";
 * const { model } = await openModel("../shared/data/stories260K.bin");
 * const session = await createSession(model, { backend: "cpu" });
 * session.backend; // "cpu"
 * (await session.run([1], 0)).length; // 512: logits of one position
 * session.dispose();
 * ```
 */
export async function createSession(
  model: PackedModel,
  options: CreateSessionOptions = {},
): Promise<InferenceSession> {
  checkOptionKeys("createSession", options, CREATE_SESSION_OPTION_KEYS);
  // Checked whichever backend runs, so a misspelt wasm option fails on a machine with a GPU too.
  checkOptionKeys("createSession options.wasm", options.wasm, WASM_SESSION_OPTION_KEYS);
  const backend = options.backend ?? "auto";
  if (backend === "cpu") return new CpuSession(model);
  if (backend === "wasm") {
    if (!wasmSimdSupported()) {
      throw new Error("This JavaScript engine does not validate WebAssembly SIMD: use --backend cpu");
    }
    return await WasmSession.create(model, options.wasm);
  }
  const ctx = await requestGpu().catch(() => null);
  // Without a hardware adapter, the CPU runs the model: the wasm kernels when they validate here.
  const cpuFallback = async (why: string, hint = ""): Promise<InferenceSession> => {
    if (wasmSimdSupported()) {
      options.onNotice?.(`note: ${why}; running on the WebAssembly SIMD CPU backend${hint}`);
      return await WasmSession.create(model, options.wasm);
    }
    options.onNotice?.(
      `note: ${why}, and WebAssembly SIMD does not validate here; running on the CPU reference backend${hint}`,
    );
    return new CpuSession(model);
  };
  if (!ctx) {
    if (backend === "webgpu") {
      throw new Error(
        "No WebGPU adapter answered: install a GPU driver (or Mesa's llvmpipe), or use --backend wasm or cpu",
      );
    }
    return await cpuFallback("no WebGPU adapter answered");
  }
  if (backend === "auto" && ctx.isFallback) {
    // A software adapter runs kernels on the CPU with per-dispatch overhead; the CPU backends are faster for
    // small models there. Users who want the WebGPU path anyway pass --backend webgpu.
    ctx.device.destroy();
    return await cpuFallback(
      `the WebGPU adapter is a CPU fallback (${ctx.adapterDescription})`,
      " (--backend webgpu forces WebGPU)",
    );
  }
  return await WebGpuSession.create(model, { ctx });
}
