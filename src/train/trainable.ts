// The flat trainable table of a binarization run and the trainable linear layers that read it.
//
// Table layout (one ParamTable; gradients, optimizer moments and checkpoints use the same layout):
//   <layer>.w   latent W: (out, in) for the coupled methods (`rabit`, `dbllm`, `onebit`: one per layer),
//               (k·out, in) = k stacked latents for `standard` and `freeze`; 2-D, trained by Muon (each
//               stacked latent on its own) or AdamW
//   <layer>.g   (k, out) row scales        <layer>.h   (k, in) column scales      — AdamW
//   <norm>      (D) RMSNorm weights when trainFloat = "norms"                     — AdamW
// Latents come first so that a Muon run's AdamW second moments cover only the tail of the table.
//
// Dimension legend: out/in features of a linear layer, k paths, T tokens, D model width.

import type { LlamaConfig } from "../model/config.ts";
import { checkInput, type LinearLayer } from "../model/linear.ts";
import { matmul } from "../model/ops.ts";
import { matmulBackward } from "../model/ops_backward.ts";
import { linearNames, llamaParamSpecs, ParamTable } from "../model/params.ts";
import {
  coupledBackward,
  coupledForward,
  standardBackward,
  standardForward,
  toLayer,
} from "../quant/coupled.ts";
import { checkLatentMix, mixLatentBackward, mixLatentForward } from "../quant/latent_mix.ts";
import { pathsOfLayer } from "../quant/layer_paths.ts";
import { PackedLinear, type PackedModel } from "../quant/residual_binary.ts";
import { roundScalesF16 } from "../quant/scales.ts";
import { type LlamaModel, withoutQuantized } from "../model/model.ts";

/**
 * The trained methods (METHOD.md §2 and §5):
 *   rabit     coupled derivation of k paths from one latent, function-aware init
 *   standard  k independent latents, B_i = sign(W_i), the same STE gradient to each
 *   freeze    MBOK path freezing: standard's k latents from a greedy start; paths 1..k−1 never train
 *             (their latent gradient is zeroed, so their signs stay bit-identical), path k and all scales do
 *   dbllm     DB-LLM dual binarization: one latent on a uniform 2-bit grid split into two planes
 *             (g = (Δ, Δ/2), h = 1, see quant/rtn.ts); the coupled derivation of that grid is exactly
 *             rounding to the 2-bit code, the STE is clipped to the code's range, h stays 1
 *   onebit    OneBit: k = 1, SVID start, QAT
 */
export type TrainMethod = "rabit" | "standard" | "freeze" | "dbllm" | "onebit";

/**
 * Every {@link TrainMethod}.
 *
 * @example
 * ```ts
 * import { TRAIN_METHODS } from "./trainable.ts";
 * TRAIN_METHODS.includes("rabit"); // true
 * TRAIN_METHODS.length; // 5
 * ```
 */
export const TRAIN_METHODS: readonly TrainMethod[] = ["rabit", "standard", "freeze", "dbllm", "onebit"];

/** How a method derives its paths: coupled (one latent per layer) or standard (k stacked latents). */
export type Derivation = "coupled" | "standard";

/** The derivation of `method`. */
export function derivationOf(method: TrainMethod): Derivation {
  return method === "standard" || method === "freeze" ? "standard" : "coupled";
}

/** Number of (out, in) latents a layer keeps: k for the standard derivation, else 1. */
export function latentSlabs(method: TrainMethod, k: number): number {
  return derivationOf(method) === "standard" ? k : 1;
}

/**
 * Which float tensors train besides the binarized layers: "norms" (the RMSNorm weights), "none", or "all"
 * (the norms, the token embedding and the classifier: they stay floating point in the file, and training
 * them lets them absorb part of the binarization error).
 */
export type TrainFloat = "norms" | "none" | "all";

/** Names of the table's groups, in table order. */
export interface TrainLayout {
  /** The flat table (zeros; fill it from an initialization). */
  table: ParamTable;
  /** Binarized layer names (layers.L.wq …). */
  linears: string[];
  /** Float tensors trained (model parameter names). */
  floats: string[];
  /** Index into table.data where the AdamW-only part (scales, floats) starts. */
  latentEnd: number;
  /**
   * Ranges of the table that never train: their gradient is zeroed before clipping and the optimizer, so
   * they keep their initial values exactly (`freeze`'s first k−1 latents, `dbllm`'s column scales).
   */
  frozen: { offset: number; size: number }[];
}

/**
 * Builds the table layout for every block linear of `config` with k paths (one k, or a k per layer name as
 * quant/layer_paths.ts resolvePaths gives it); the table is zeroed (fill it with initializeTable from
 * init.ts).
 *
 * @example
 * ```ts
 * import { trainLayout } from "./trainable.ts";
 * const c = { dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 10, seqLen: 8,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * const layout = trainLayout(c, 2, "rabit", "norms");
 * layout.linears; // ["layers.0.wq", …, "layers.0.w3"]
 * layout.table.shape("layers.0.w1.g"); // [2, 16]: (k, out)
 * layout.floats; // ["layers.0.attention_norm", "layers.0.ffn_norm", "norm"]
 * ```
 */
export function trainLayout(
  config: LlamaConfig,
  paths: number | Map<string, number>,
  method: TrainMethod,
  trainFloat: TrainFloat,
): TrainLayout {
  const linears = linearNames(config);
  const shapes = new Map(llamaParamSpecs(config));
  const kOf = (name: string) => pathsOfLayer(paths, name, "trainLayout");
  const specs: [string, number[]][] = [];
  for (const name of linears) {
    const [out, inF] = shapes.get(name)!;
    specs.push([`${name}.w`, [latentSlabs(method, kOf(name)) * out, inF]]);
  }
  for (const name of linears) {
    const [out, inF] = shapes.get(name)!;
    specs.push([`${name}.g`, [kOf(name), out]], [`${name}.h`, [kOf(name), inF]]);
  }
  const floats = trainFloat === "none"
    ? []
    : [...shapes.keys()].filter((n) => /norm$/.test(n) || (trainFloat === "all" && !/^layers\./.test(n)));
  for (const name of floats) specs.push([name, shapes.get(name)!]);
  const table = ParamTable.fromSpecs(specs);
  const latentEnd = linears.length
    ? table.entry(`${linears[linears.length - 1]}.w`).offset +
      table.entry(`${linears[linears.length - 1]}.w`).size
    : 0;
  const frozen: TrainLayout["frozen"] = [];
  for (const name of linears) {
    const k = kOf(name);
    if (method === "freeze" && k > 1) {
      const [out, inF] = shapes.get(name)!;
      frozen.push({ offset: table.entry(`${name}.w`).offset, size: (k - 1) * out * inF });
    }
    if (method === "dbllm") {
      const e = table.entry(`${name}.h`);
      frozen.push({ offset: e.offset, size: e.size });
    }
  }
  return { table, linears, floats, latentEnd, frozen } satisfies TrainLayout;
}

/**
 * Binary paths of block linear `name` in `layout` (the first dimension of its row scales, (k, out)).
 *
 * @example
 * ```ts
 * import { layerPaths, trainLayout } from "./trainable.ts";
 * const c = { dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 10, seqLen: 8,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * const layout = trainLayout(c, new Map(["wq", "wk", "wv", "wo", "w1", "w2", "w3"].map((w) =>
 *   [`layers.0.${w}`, w === "w1" ? 3 : 2])), "rabit", "norms");
 * layerPaths(layout, "layers.0.w1"); // 3
 * ```
 */
export function layerPaths(layout: TrainLayout, name: string): number {
  return layout.table.shape(`${name}.g`)[0];
}

/**
 * Returns α when a latent mix of α (quant/latent_mix.ts) can train `method` with this STE clip, else throws
 * naming why: α outside [0, 1); for α > 0, the standard derivation (its k latents are not a weight) or a
 * clipped STE (its mask would reach the mixed-in part). What both training backends' setLatentMix accept.
 *
 * @example
 * ```ts
 * import { checkLatentMixFits } from "./trainable.ts";
 * checkLatentMixFits(0.5, "rabit", undefined); // 0.5
 * checkLatentMixFits(0, "standard", 1.5); // 0: no mix suits every method
 * ```
 */
export function checkLatentMixFits(alpha: number, method: TrainMethod, clip: number | undefined): number {
  checkLatentMix(alpha);
  if (alpha > 0 && derivationOf(method) !== "coupled") {
    throw new RangeError(`a latent mix needs the coupled derivation (rabit, dbllm, onebit), found ${method}`);
  }
  if (alpha > 0 && clip !== undefined) {
    throw new RangeError(`a latent mix needs the identity STE, found a clip of ${clip}`);
  }
  return alpha;
}

/**
 * A binarized linear layer in training: reads its latent and scales from the table, derives the k paths
 * once per step ({@link TrainableLinear.derive}), computes with What, and maps dWhat onto latent and
 * scale gradients. {@link TrainableLinear.pack} freezes it into the packed layer a .rabit file stores.
 *
 * @example
 * ```ts
 * import { TrainableLinear, trainLayout } from "./trainable.ts";
 * import { initializeTable } from "./init.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const teacher = { config, params, quantized: new Map() };
 * const layout = trainLayout(config, 2, "rabit", "none");
 * initializeTable(teacher, layout, { method: "rabit", k: 2, precondition: 0, svidRounds: 0 });
 * const wq = new TrainableLinear(layout.table, "layers.0.wq", 2, "rabit");
 * wq.forward(new Float32Array(64).fill(1), 1).length; // 64
 * const packed = wq.pack(); // PackedLinear: 2 sign planes and their scales
 * packed.planes.length; // 2 × 64 rows × 2 words
 * ```
 */
export class TrainableLinear implements LinearLayer {
  /** Parameter name of the layer ("layers.0.wq"); its table entries are `<name>.w`, `.g`, `.h`. */
  readonly name: string;
  /** Output features. */
  readonly out: number;
  /** Input features. */
  readonly in: number;
  /** Binary paths. */
  readonly k: number;
  /** The training method (how paths derive from latents). */
  readonly method: TrainMethod;
  /** Clipped straight-through estimator bound (METHOD.md §2, our option); undefined = identity STE. */
  readonly clip?: number;
  #wHat?: Float32Array; // (out, in)
  #signs?: Int8Array; // (k, out, in)
  #table: ParamTable;
  #mix = 0;

  /** A view of layer `name` in `table` (a {@link trainLayout} table); nothing is copied. */
  constructor(table: ParamTable, name: string, k: number, method: TrainMethod, clip?: number) {
    const [, inF] = table.shape(`${name}.w`);
    const [kk, out] = table.shape(`${name}.g`);
    if (kk !== k) throw new RangeError(`TrainableLinear ${name}: table has ${kk} paths, expected ${k}`);
    this.#table = table;
    this.name = name;
    this.out = out;
    this.in = inF;
    this.k = k;
    this.method = method;
    this.clip = clip;
  }

  #scales() {
    const t = this.#table;
    return { out: this.out, in: this.in, k: this.k, g: t.get(`${this.name}.g`), h: t.get(`${this.name}.h`) };
  }

  /**
   * Re-derives signs and What from the current latent and scales (call after every optimizer step); with a
   * latent mix α > 0 the layer computes with (1 − α)·What + α·W (quant/latent_mix.ts).
   */
  derive(): void {
    const w = this.#table.get(`${this.name}.w`);
    const r = derivationOf(this.method) === "coupled"
      ? coupledForward(w, this.#scales())
      : standardForward(w, this.#scales());
    mixLatentForward(r.wHat, w, this.#mix);
    this.#wHat = r.wHat;
    this.#signs = r.signs;
  }

  /** The latent mix α of the forward (0: the binary layer alone). */
  get mix(): number {
    return this.#mix;
  }

  /**
   * Sets the latent mix α (quant/latent_mix.ts) and re-derives when it changed. Refused for the standard
   * derivation (its k latents are not a weight) and with the clipped STE.
   */
  setMix(alpha: number): void {
    checkLatentMixFits(alpha, this.method, this.clip);
    if (alpha === this.#mix) return;
    this.#mix = alpha;
    this.derive();
  }

  /** (out, in) What of the last derive (mixed with the latent when {@link TrainableLinear.mix} > 0). */
  get wHat(): Float32Array {
    if (!this.#wHat) this.derive();
    return this.#wHat!;
  }

  /** (k, out, in) ±1 signs of the last derive. */
  get signs(): Int8Array {
    if (!this.#signs) this.derive();
    return this.#signs!;
  }

  /** y (T, out) = x (T, in) · Whatᵀ. */
  forward(x: Float32Array, T: number): Float32Array {
    checkInput(this.name, x, T, this.in);
    return matmul(x, this.wHat, T, this.in, this.out);
  }

  /** dX += dY · What and, with `dW`, dW += dYᵀ · x (the gradient of What; see {@link TrainableLinear.accumulate}). */
  backward(x: Float32Array, dY: Float32Array, T: number, dX: Float32Array, dW?: Float32Array): void {
    matmulBackward(dY, x, this.wHat, T, this.in, this.out, dX, dW);
  }

  /** Adds the latent and scale gradients that dWhat (out, in) implies into `grads` (the table's layout). */
  accumulate(dWHat: Float32Array, grads: ParamTable): void {
    const saved = { ...this.#scales(), signs: this.signs };
    const w = this.#table.get(`${this.name}.w`);
    const r = derivationOf(this.method) === "coupled"
      ? coupledBackward(dWHat, saved, this.clip === undefined ? {} : { clip: this.clip, w })
      : standardBackward(dWHat, saved, this.clip === undefined ? {} : { clip: this.clip, ws: w });
    mixLatentBackward(r.dg, r.dh, this.#mix);
    addInto(grads.get(`${this.name}.w`), r.dW);
    addInto(grads.get(`${this.name}.g`), r.dg);
    addInto(grads.get(`${this.name}.h`), r.dh);
  }

  /** Freezes the current signs and scales into a packed layer. */
  pack(): PackedLinear {
    this.derive();
    const s = this.#scales();
    return new PackedLinear(toLayer(s, this.signs), this.name);
  }
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] += src[i];
}

/**
 * Freezes a trained table into a packed model: every binarized layer's current signs with its scales
 * rounded to fp16 (as a .rabit file stores them), the trained float tensors, and the teacher's other
 * tensors (embedding, classifier). What `quantize` returns after training; use it after a custom loop.
 * Each layer keeps the paths its table holds; `k`, when given, is checked against every layer.
 *
 * @example
 * ```ts
 * import { packTable, trainLayout } from "./trainable.ts";
 * import { initializeTable } from "./init.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const teacher = { config, params, quantized: new Map() };
 * const layout = trainLayout(config, 2, "rabit", "norms");
 * initializeTable(teacher, layout, { method: "rabit", k: 2, precondition: 0 });
 * const packed = packTable(teacher, layout, "rabit", 2);
 * packed.quantized.size; // 35
 * ```
 */
export function packTable(
  teacher: LlamaModel,
  layout: TrainLayout,
  method: TrainMethod,
  k?: number,
): PackedModel {
  const quantized = new Map<string, PackedLinear>();
  for (const name of layout.linears) {
    // k, when given, must be every layer's (a check); each layer packs the paths its table holds.
    const layer = new TrainableLinear(layout.table, name, k ?? layerPaths(layout, name), method).pack();
    quantized.set(name, new PackedLinear(roundScalesF16(layer), name));
  }
  const params = withoutQuantized(teacher.params, layout.linears);
  for (const name of layout.floats) params.get(name).set(layout.table.get(name));
  return { config: teacher.config, params, quantized };
}
