// Random-weight models of real shapes on the host, for CPU (wasm, TypeScript) decode measurements: weights
// do not change the speed. Each block linear owns its array (a DenseLinear or a PackedLinear in
// `quantized`), so a model of billions of weights never needs one typed array of that size.

import type { LlamaConfig } from "../model/config.ts";
import { DenseLinear, type LinearLayer } from "../model/linear.ts";
import type { LlamaModel } from "../model/model.ts";
import { llamaParamSpecs, ParamTable } from "../model/params.ts";
import { wordsPerRow } from "../quant/bitpack.ts";
import { PackedLinear } from "../quant/residual_binary.ts";
import { Rng } from "../util/rng.ts";

const BLOCK_LINEAR = /^layers\.\d+\.w[qkvo123]$/;
/** Values drawn once and copied from a random offset: a billion draws would take minutes on a busy machine. */
const POOL = 1 << 20;

/** Fills arrays from one pool of uniform [−1, 1) values, each copy from a seeded random offset. */
class UniformPool {
  readonly #rng: Rng;
  readonly #pool: Float32Array;

  constructor(rng: Rng) {
    this.#rng = rng;
    this.#pool = new Float32Array(2 * POOL);
    for (let i = 0; i < POOL; i++) this.#pool[i] = this.#pool[POOL + i] = rng.next() * 2 - 1;
  }

  /** `out` filled with pool values times `scale`. */
  fill(out: Float32Array, scale: number): Float32Array {
    for (let i = 0; i < out.length; i += POOL) {
      const n = Math.min(POOL, out.length - i), at = this.#rng.int(POOL);
      const src = this.#pool.subarray(at, at + n), dst = out.subarray(i, i + n);
      for (let j = 0; j < n; j++) dst[j] = src[j] * scale;
    }
    return out;
  }

  /** `out` filled with random words (the pool's bits). */
  words(out: Uint32Array): Uint32Array {
    const bits = new Uint32Array(this.#pool.buffer);
    for (let i = 0; i < out.length; i += POOL) {
      const n = Math.min(POOL, out.length - i), at = this.#rng.int(POOL);
      out.set(bits.subarray(at, at + n), i);
    }
    return out;
  }
}

/**
 * A model of `config` with random values: block linears dense fp32 ("f32") or packed residual-binary with
 * `paths` random sign planes ("packed"); embeddings, norms and the classifier fp32 in `params`. With
 * `classifierStorage: "i8"` sessions run the classifier with their int8 kernels.
 *
 * @example
 * ```ts
 * import { randomCpuModel } from "./random_cpu_model.ts";
 * const config = { dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 100, seqLen: 64,
 *   sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
 * randomCpuModel(config, "packed").quantized.size; // 14
 * ```
 */
export function randomCpuModel(
  config: LlamaConfig,
  linears: "f32" | "packed",
  options: { paths?: number; seed?: number; classifierStorage?: "f32" | "i8" } = {},
): LlamaModel {
  const rng = new UniformPool(new Rng(options.seed ?? 1));
  const k = options.paths ?? 2;
  const specs = llamaParamSpecs(config);
  const params = ParamTable.fromSpecs(specs.filter(([name]) => !BLOCK_LINEAR.test(name)));
  for (const name of params.names()) {
    const v = params.get(name);
    rng.fill(v, name.endsWith("norm") ? 0.1 : 0.02);
    if (name.endsWith("norm")) { for (let i = 0; i < v.length; i++) v[i] += 1; }
  }
  const quantized = new Map<string, LinearLayer>();
  for (const [name, shape] of specs) {
    if (!BLOCK_LINEAR.test(name)) continue;
    const [out, inF] = shape;
    if (linears === "f32") {
      quantized.set(
        name,
        new DenseLinear(rng.fill(new Float32Array(out * inF), 1 / Math.sqrt(inF)), out, inF),
      );
      continue;
    }
    const planes = rng.words(new Uint32Array(k * out * wordsPerRow(inF)));
    // Clear the padding bits past `in` (the packed layout requires them 0).
    const wpr = wordsPerRow(inF), tail = inF % 32;
    if (tail) { for (let r = 0; r < k * out; r++) planes[r * wpr + wpr - 1] &= (1 << tail) - 1; }
    const g = rng.fill(new Float32Array(k * out), 0.05).map(Math.abs);
    const h = rng.fill(new Float32Array(k * inF), 1).map(Math.abs);
    quantized.set(name, new PackedLinear({ out, in: inF, k, planes, g, h }, name));
  }
  return {
    config,
    params,
    quantized,
    ...(options.classifierStorage === "i8" ? { classifierStorage: "i8" as const } : {}),
  };
}
