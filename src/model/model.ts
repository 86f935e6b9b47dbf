// A Llama model in memory: config, floating-point parameters, and the linear layers that were
// replaced by residual-binary ones (which are then absent from the parameter table).

import type { LlamaConfig } from "./config.ts";
import { ParamTable } from "./params.ts";
import { matmul } from "./ops.ts";
import { type ResidualBinaryLinear, residualBinaryMatmul } from "../quant/residual_binary.ts";

/** Config, fp tensors, and binarized linears by parameter name (e.g. "layers.0.wq"). */
export interface LlamaModel {
  config: LlamaConfig;
  params: ParamTable;
  quantized: Map<string, ResidualBinaryLinear>;
}

/** Shape [out, in] of a linear layer, whether dense or binarized. */
export function linearShape(model: LlamaModel, name: string): [number, number] {
  const q = model.quantized.get(name);
  if (q) return [q.out, q.in];
  const [out, inF] = model.params.shape(name);
  return [out, inF];
}

/** y (T, out) = layer(x (T, in)), dense or from packed bits. */
export function applyLinear(
  model: LlamaModel,
  name: string,
  x: Float32Array,
  T: number,
  y?: Float32Array,
): Float32Array {
  const q = model.quantized.get(name);
  if (q) {
    const r = residualBinaryMatmul(q, x, T);
    if (y) {
      y.set(r);
      return y;
    }
    return r;
  }
  const [out, inF] = model.params.shape(name);
  return matmul(x, model.params.get(name), T, inF, out, y);
}

/** The classifier weight (V, D): the output head, or the token embedding when shared. */
export function classifierWeight(model: LlamaModel): Float32Array {
  return model.config.sharedClassifier ? model.params.get("tok_embeddings") : model.params.get("output");
}

/** A parameter table holding only the tensors not binarized (what a packed model keeps in float). */
export function withoutQuantized(params: ParamTable, quantized: Iterable<string>): ParamTable {
  const drop = new Set(quantized);
  const specs: [string, number[]][] = params.names().filter((n) => !drop.has(n)).map((
    n,
  ) => [n, params.shape(n)]);
  const out = ParamTable.fromSpecs(specs);
  for (const n of out.names()) out.get(n).set(params.get(n));
  return out;
}
