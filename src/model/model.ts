// A Llama model in memory: config, floating-point parameters, and the linear layers that replace dense
// weights (packed residual-binary ones from quant/, trainable ones from train/), which are then absent
// from the parameter table or ignored there.

import type { LlamaConfig } from "./config.ts";
import { ParamTable } from "./params.ts";
import { DenseLinear, type LinearLayer } from "./linear.ts";

/**
 * Config, fp tensors, and the layers replacing block linears by parameter name (e.g. "layers.0.wq").
 * `L` narrows what those layers are: the packed file and the GPU engine need packed layers.
 */
export interface LlamaModel<L extends LinearLayer = LinearLayer> {
  /** Hyper-parameters. */
  config: LlamaConfig;
  /** Float tensors by llama2.c name (a replaced linear's own weight may be absent or is ignored). */
  params: ParamTable;
  /** Layers replacing block linears, by parameter name; empty for a full-precision model. */
  quantized: Map<string, L>;
  /**
   * How the file stored the classifier weight (the token embedding when shared). "i8" (int8 codes with one
   * scale per row, quant/int8_rows.ts): `params` holds the dequantized values, and inference sessions run
   * the classifier with their int8 kernel, so every backend computes with the same codes. Absent or a float
   * dtype: the sessions' float path.
   */
  classifierStorage?: "f32" | "f16" | "i8";
}

/** Shape [out, in] of a linear layer, whether dense or replaced. */
export function linearShape(model: LlamaModel, name: string): [number, number] {
  const q = model.quantized.get(name);
  if (q) return [q.out, q.in];
  const [out, inF] = model.params.shape(name);
  return [out, inF];
}

/** The layer that computes linear `name`: the replacing one, or the dense parameter. */
export function linearLayer(model: LlamaModel, name: string): LinearLayer {
  const q = model.quantized.get(name);
  if (q) return q;
  const [out, inF] = model.params.shape(name);
  return new DenseLinear(model.params.get(name), out, inF);
}

/** y (T, out) = layer(x (T, in)), dense or replaced. */
export function applyLinear(model: LlamaModel, name: string, x: Float32Array, T: number): Float32Array {
  return linearLayer(model, name).forward(x, T);
}

/** The classifier weight (V, D): the output head, or the token embedding when shared. */
export function classifierWeight(model: LlamaModel): Float32Array {
  return model.config.sharedClassifier ? model.params.get("tok_embeddings") : model.params.get("output");
}

/**
 * A parameter table holding only the tensors not binarized (what a packed model keeps in float); the
 * values are copied.
 *
 * @example
 * ```ts
 * import { withoutQuantized } from "./model.ts";
 * import { ParamTable } from "./params.ts";
 * const params = ParamTable.fromSpecs([["norm", [4]], ["layers.0.wq", [4, 4]]]);
 * withoutQuantized(params, ["layers.0.wq"]).names(); // ["norm"]
 * ```
 */
export function withoutQuantized(params: ParamTable, quantized: Iterable<string>): ParamTable {
  const drop = new Set(quantized);
  const specs: [string, number[]][] = params.names().filter((n) => !drop.has(n)).map((
    n,
  ) => [n, params.shape(n)]);
  const out = ParamTable.fromSpecs(specs);
  for (const n of out.names()) out.get(n).set(params.get(n));
  return out;
}
