// End-to-end decode speed of one model shape stored three ways (fp32, fp16-storage, packed k = 2) on one
// WebGPU device, with a profile of where a step's time goes. Used by bench/decode.bench.ts and `rabit bench`.

import type { GpuContext } from "../backend/webgpu/device.ts";
import { type StepProfile, WebGpuSession } from "../backend/webgpu/session.ts";
import type { LlamaConfig } from "../model/config.ts";
import { randomGpuWeights } from "./random_model.ts";
import { argmax } from "../eval/sampling.ts";

/** Storage of the block linears. */
export type DecodeVariant = "f32" | "f16" | "packed2";

/** Decode speed of one variant. */
export interface DecodeResult {
  variant: DecodeVariant;
  tokensPerSecond: number;
  msPerToken: number;
  /** Bytes of the block linears on the device, and bits per weight from them. */
  linearBytes: number;
  bitsPerWeight: number;
  profile: StepProfile;
}

/** Options of {@link measureDecode}. */
export interface MeasureDecodeOptions {
  /** Positions already in the KV cache when decoding starts (default 128: "after a 128-token prompt"). */
  context?: number;
  /** Decode steps timed (default 4). */
  steps?: number;
  variants?: DecodeVariant[];
  /** Autotune each variant's GEMV geometries first, as WebGpuSessionOptions.tune (default true: cached). */
  tune?: boolean | string;
  onResult?: (r: DecodeResult) => void;
}

/**
 * Decodes `steps` tokens after `context` cached positions for each variant (random weights) and reports
 * tokens/s. The cache positions are not computed by a prefill: their values do not change the cost of a
 * step, and a 128-token prefill of a 1B model on a software adapter would take minutes.
 */
export async function measureDecode(
  ctx: GpuContext,
  config: LlamaConfig,
  options: MeasureDecodeOptions = {},
): Promise<DecodeResult[]> {
  const context = options.context ?? 128;
  const steps = options.steps ?? 4;
  const results: DecodeResult[] = [];
  for (const variant of options.variants ?? ["f16", "packed2"]) {
    const weights = randomGpuWeights(ctx, config, variant === "packed2" ? "packed" : variant);
    const session = await WebGpuSession.fromWeights(ctx, weights, {
      maxChunk: 1,
      tune: options.tune ?? true,
    });
    try {
      await session.run([1], context - 1, { lastOnly: true }); // warm up: pipelines, bind groups
      const t0 = performance.now();
      let token = 1;
      for (let i = 0; i < steps; i++) {
        const logits = await session.run([token], context + i, { lastOnly: true });
        token = argmax(logits);
      }
      const ms = (performance.now() - t0) / steps;
      const result: DecodeResult = {
        variant,
        tokensPerSecond: 1000 / ms,
        msPerToken: ms,
        linearBytes: weights.linearBytes,
        bitsPerWeight: (8 * weights.linearBytes) / weights.linearWeights,
        profile: await session.profileStep(context + steps),
      };
      results.push(result);
      options.onResult?.(result);
    } finally {
      session.dispose();
    }
  }
  return results;
}
