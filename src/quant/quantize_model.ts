// Quantizes every block linear of a model (wq, wk, wv, wo, w1, w2, w3 of each layer) with one method,
// using calibration statistics where the method wants them; embeddings, norms and the head stay float.

import type { LlamaModel } from "../model/model.ts";
import { linearNames } from "../model/params.ts";
import { pathsOfLayer } from "./layer_paths.ts";
import { withoutQuantized } from "../model/model.ts";
import type { ChannelStats } from "./calibrate.ts";
import { quantizeLayer, type QuantizeMethod, type QuantizeStats } from "./quantize.ts";
import { PackedLinear, type PackedModel } from "./residual_binary.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

/** Options of {@link quantizeModel}. Defaults are METHOD.md §3's. */
export interface QuantizeModelOptions {
  /** "ptq" (function-aware init), "rtn2" (2-bit round-to-nearest) or "dbllm" (DB-LLM start). */
  method: QuantizeMethod;
  /**
   * Paths k (1..4) for ptq, one for every layer or a k per layer name (layer_paths.ts resolvePaths); rtn2
   * and dbllm are always 2.
   */
  paths?: number | Map<string, number>;
  /** Gauss–Seidel rounds T (default 4). */
  svidRounds?: number;
  /** Preconditioning exponent used for both a_in and a_out (default 0.5; 0 disables). */
  precondition?: number;
  /** Per-layer channel statistics (from calibrate); needed for preconditioning. */
  stats?: Map<string, ChannelStats>;
  /** Called after each layer with (name, index, total, stats). */
  onLayer?: (name: string, index: number, total: number, stats: QuantizeStats) => void;
}

const QUANTIZE_MODEL_OPTION_KEYS = optionKeys<QuantizeModelOptions>({
  method: true,
  paths: true,
  svidRounds: true,
  precondition: true,
  stats: true,
  onLayer: true,
});

/** One layer's outcome. */
export interface LayerReport {
  /** Parameter name, e.g. "layers.0.wq". */
  name: string;
  /** Output features. */
  out: number;
  /** Input features. */
  in: number;
  /** Binary paths. */
  k: number;
  /** ||W − What|| / ||W|| after fp16 rounding of the scales. */
  relError: number;
  /** Preconditioned errors after the greedy start and each round (ptq only). */
  preconditionedErrors?: number[];
}

/** A quantized copy of the model and per-layer reports. */
export interface QuantizedModel {
  /** Every block linear packed; the other tensors copied. */
  model: PackedModel;
  /** One report per block linear, in model order. */
  layers: LayerReport[];
}

/**
 * Quantizes all block linears; the input model is left unchanged.
 *
 * @example
 * ```ts
 * import { quantizeModel } from "./quantize_model.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const q = quantizeModel({ config, params, quantized: new Map() }, { method: "rtn2" });
 * q.model.quantized.size; // 35
 * q.layers[0].relError; // ||W − What|| / ||W|| of layers.0.wq
 * ```
 */
export function quantizeModel(model: LlamaModel, options: QuantizeModelOptions): QuantizedModel {
  checkOptionKeys("quantizeModel", options, QUANTIZE_MODEL_OPTION_KEYS);
  const names = linearNames(model.config);
  const usePrecondition = (options.precondition ?? 0.5) > 0;
  if (options.method === "ptq" && usePrecondition && !options.stats) {
    throw new TypeError(
      "ptq with preconditioning needs calibration statistics: pass stats, or precondition 0",
    );
  }
  const quantized = new Map<string, PackedLinear>();
  const layers: LayerReport[] = [];
  const paths = options.paths ?? 2;
  names.forEach((name, index) => {
    const [out, inF] = model.params.shape(name);
    const k = pathsOfLayer(paths, name, "quantizeModel");
    const w = model.params.get(name);
    const s = options.stats?.get(name);
    const a = options.precondition ?? 0.5;
    const { layer, stats } = options.method === "ptq"
      ? quantizeLayer(w, { out, in: inF }, {
        method: "ptq",
        k,
        rounds: options.svidRounds ?? 4,
        sIn: usePrecondition ? s?.sIn : undefined,
        sOut: usePrecondition ? s?.sOut : undefined,
        aIn: a,
        aOut: a,
      })
      : quantizeLayer(w, { out, in: inF }, { method: options.method } as { method: "rtn2" | "dbllm" });
    quantized.set(name, new PackedLinear(layer, name));
    layers.push({
      name,
      out,
      in: inF,
      k: layer.k,
      relError: stats.relError,
      preconditionedErrors: stats.init?.preconditionedErrors,
    });
    options.onLayer?.(name, index, names.length, stats);
  });
  return {
    model: { config: model.config, params: withoutQuantized(model.params, names), quantized },
    layers,
  };
}
