// Random-weight models of real shapes for speed measurements (weights do not change the speed):
// a TinyLlama-1.1B-shaped config and device weights built one layer at a time, so the host never holds
// the whole model.

import type { LlamaConfig } from "../model/config.ts";
import { llamaParamSpecs } from "../model/params.ts";
import type { GpuContext } from "../backend/webgpu/device.ts";
import { buildWeights, type GpuModelWeights } from "../backend/webgpu/weights.ts";
import type { LinearWeights } from "../backend/webgpu/matmul.ts";
import { wordsPerRow } from "../quant/bitpack.ts";
import type { Int8Rows } from "../quant/int8_rows.ts";
import { Rng } from "../util/rng.ts";

/** TinyLlama-1.1B's shape (dim 2048, hidden 5632, 22 layers, 32 heads, 4 KV heads, vocab 32000). */
export const TINYLLAMA_CONFIG: LlamaConfig = {
  dim: 2048,
  hiddenDim: 5632,
  nLayers: 22,
  nHeads: 32,
  nKvHeads: 4,
  vocabSize: 32000,
  seqLen: 2048,
  sharedClassifier: false,
  normEps: 1e-5,
  ropeTheta: 10000,
};

/** Uniform values in [−scale, scale) (fast; a normal distribution adds nothing to a speed test). */
function uniform(rng: Rng, n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() * 2 - 1) * scale;
  return out;
}

/** Random words for sign planes. */
function randomWords(rng: Rng, n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() * 4294967296) >>> 0;
  return out;
}

/** Random int8 codes in [−127, 127] with per-row scales of about `scale` / 127. */
function randomInt8(rng: Rng, out: number, inF: number, scale: number): Int8Rows {
  const q = new Int8Array(out * inF);
  for (let i = 0; i < q.length; i++) q[i] = Math.floor(rng.next() * 255) - 127;
  return { out, in: inF, q, scales: uniform(rng, out, scale / 127).map((s) => Math.abs(s) + 1e-6) };
}

/**
 * Device weights with random values: block linears stored as `linears` ("f32", "f16" or packed k paths);
 * the classifier is stored as `options.classifier`, by default like the dense linears (f16 for the packed
 * model, as its fp tensors would be); "i8" stores it as int8 codes with per-row scales.
 */
export function randomGpuWeights(
  ctx: GpuContext,
  config: LlamaConfig,
  linears: "f32" | "f16" | "packed",
  options: { paths?: number; seed?: number; classifier?: "f32" | "f16" | "i8" } = {},
): GpuModelWeights {
  const rng = new Rng(options.seed ?? 1);
  const shapes = new Map(llamaParamSpecs(config)); // name → [out, in]
  const k = options.paths ?? 2;
  const dense = (out: number, inF: number, kind?: "f32" | "f16"): LinearWeights => ({
    kind: kind ?? (linears === "f32" ? "f32" : "f16"),
    w: uniform(rng, out * inF, 1 / Math.sqrt(inF)),
    out,
    in: inF,
  });
  return buildWeights(ctx, config, {
    fp: (name) =>
      name.endsWith("norm")
        ? uniform(rng, config.dim, 1).map((v) => 1 + 0.1 * v)
        : uniform(rng, config.vocabSize * config.dim, 0.02),
    linear: (name) => {
      const [out, inF] = shapes.get(name)!;
      if (linears !== "packed") return dense(out, inF);
      return {
        kind: "packed",
        layer: {
          out,
          in: inF,
          k,
          planes: randomWords(rng, k * out * wordsPerRow(inF)),
          g: uniform(rng, k * out, 0.05).map(Math.abs),
          h: uniform(rng, k * inF, 1).map(Math.abs),
        },
      };
    },
    classifier: () => {
      const [V, D] = [config.vocabSize, config.dim];
      if (options.classifier === "i8") return { kind: "i8", rows: randomInt8(rng, V, D, 1 / Math.sqrt(D)) };
      return dense(V, D, options.classifier);
    },
  });
}
