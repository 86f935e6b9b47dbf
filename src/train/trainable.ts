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
import { PackedLinear } from "../quant/residual_binary.ts";

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

/** Every {@link TrainMethod}. */
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

/** Which float tensors train besides the binarized layers. */
export type TrainFloat = "norms" | "none";

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

/** Builds the table layout for every block linear of `config` with k paths. */
export function trainLayout(
  config: LlamaConfig,
  k: number,
  method: TrainMethod,
  trainFloat: TrainFloat,
): TrainLayout {
  const linears = linearNames(config);
  const shapes = new Map(llamaParamSpecs(config));
  const specs: [string, number[]][] = [];
  for (const name of linears) {
    const [out, inF] = shapes.get(name)!;
    specs.push([`${name}.w`, [latentSlabs(method, k) * out, inF]]);
  }
  for (const name of linears) {
    const [out, inF] = shapes.get(name)!;
    specs.push([`${name}.g`, [k, out]], [`${name}.h`, [k, inF]]);
  }
  const floats = trainFloat === "norms" ? [...shapes.keys()].filter((n) => /norm$/.test(n)) : [];
  for (const name of floats) specs.push([name, shapes.get(name)!]);
  const table = ParamTable.fromSpecs(specs);
  const latentEnd = linears.length
    ? table.entry(`${linears[linears.length - 1]}.w`).offset +
      table.entry(`${linears[linears.length - 1]}.w`).size
    : 0;
  const frozen: TrainLayout["frozen"] = [];
  for (const name of linears) {
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
 * A binarized linear layer in training: reads its latent and scales from the table, derives the k paths
 * once per step ({@link derive}), computes with What, and maps dWhat onto latent and scale gradients.
 */
export class TrainableLinear implements LinearLayer {
  readonly name: string;
  readonly out: number;
  readonly in: number;
  readonly k: number;
  readonly method: TrainMethod;
  /** Clipped straight-through estimator bound (METHOD.md §2, our option); undefined = identity STE. */
  readonly clip?: number;
  #wHat?: Float32Array; // (out, in)
  #signs?: Int8Array; // (k, out, in)
  #table: ParamTable;

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

  /** Re-derives signs and What from the current latent and scales (call after every optimizer step). */
  derive(): void {
    const w = this.#table.get(`${this.name}.w`);
    const r = derivationOf(this.method) === "coupled"
      ? coupledForward(w, this.#scales())
      : standardForward(w, this.#scales());
    this.#wHat = r.wHat;
    this.#signs = r.signs;
  }

  /** (out, in) What of the last derive. */
  get wHat(): Float32Array {
    if (!this.#wHat) this.derive();
    return this.#wHat!;
  }

  /** (k, out, in) ±1 signs of the last derive. */
  get signs(): Int8Array {
    if (!this.#signs) this.derive();
    return this.#signs!;
  }

  forward(x: Float32Array, T: number): Float32Array {
    checkInput(this.name, x, T, this.in);
    return matmul(x, this.wHat, T, this.in, this.out);
  }

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
