// End-to-end decode speed of one model shape stored several ways (fp32, fp16-storage, packed k = 2 with an
// fp16 or an int8 classifier) on one WebGPU device, with a profile of where a step's time goes. Used by
// bench/decode.bench.ts and `rabit bench`.

import type { GpuContext } from "../backend/webgpu/device.ts";
import { type StepProfile, WebGpuSession } from "../backend/webgpu/session.ts";
import type { GpuModelWeights } from "../backend/webgpu/weights.ts";
import type { LlamaConfig } from "../model/config.ts";
import { randomGpuWeights } from "./random_model.ts";
import { argmax } from "../eval/sampling.ts";

/**
 * Storage of the block linears, and of the classifier: like the dense linears (f32, f16), fp16 with
 * packed linears ("packed2"), or int8 with per-row scales ("packed2-i8cls").
 */
export type DecodeVariant = "f32" | "f16" | "packed2" | "packed2-i8cls";

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
  /** Decode steps timed per variant, interleaved across variants (default 4); the median counts. */
  steps?: number;
  variants?: DecodeVariant[];
  /** Autotune each variant's GEMV geometries first, as WebGpuSessionOptions.tune (default true: cached). */
  tune?: boolean | string;
  onResult?: (r: DecodeResult) => void;
}

/**
 * Decodes `steps` tokens after `context` cached positions with every variant (random weights) resident at
 * once, timing the variants' steps interleaved (variant A step, variant B step, ...) so that a machine
 * whose speed drifts slows all of them alike; tokens/s from the median step. The cache positions are
 * not computed by a prefill: their values do not change the cost of a step, and a 128-token prefill of
 * a 1B model on a software adapter would take minutes.
 */
export async function measureDecode(
  ctx: GpuContext,
  config: LlamaConfig,
  options: MeasureDecodeOptions = {},
): Promise<DecodeResult[]> {
  const context = options.context ?? 128;
  const steps = options.steps ?? 4;
  const variants = options.variants ?? ["f16", "packed2"];
  const runs: { variant: DecodeVariant; weights: GpuModelWeights; session: WebGpuSession; ms: number[] }[] =
    [];
  try {
    for (const variant of variants) {
      const weights = variant === "packed2" || variant === "packed2-i8cls"
        ? randomGpuWeights(ctx, config, "packed", { classifier: variant === "packed2" ? "f16" : "i8" })
        : randomGpuWeights(ctx, config, variant);
      const session = await WebGpuSession.fromWeights(ctx, weights, {
        maxChunk: 1,
        tune: options.tune ?? true,
      });
      runs.push({ variant, weights, session, ms: [] });
      await session.run([1], context - 1, { lastOnly: true }); // warm up: pipelines, bind groups
    }
    const tokens = runs.map(() => 1);
    for (let i = 0; i < steps; i++) {
      for (const [j, r] of runs.entries()) {
        const t0 = performance.now();
        const logits = await r.session.run([tokens[j]], context + i, { lastOnly: true });
        tokens[j] = argmax(logits);
        r.ms.push(performance.now() - t0);
      }
    }
    const results: DecodeResult[] = [];
    for (const r of runs) {
      const ms = [...r.ms].sort((a, b) => a - b)[r.ms.length >> 1];
      const result: DecodeResult = {
        variant: r.variant,
        tokensPerSecond: 1000 / ms,
        msPerToken: ms,
        linearBytes: r.weights.linearBytes,
        bitsPerWeight: (8 * r.weights.linearBytes) / r.weights.linearWeights,
        profile: await r.session.profileStep(context + steps),
      };
      results.push(result);
      options.onResult?.(result);
    }
    return results;
  } finally {
    for (const r of runs) r.session.dispose();
  }
}
