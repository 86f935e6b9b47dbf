// Model weights on a WebGPU device: embeddings as an f32 buffer, each block linear as a dense (f32 or
// fp16-storage) or residual-binary packed GPU linear, and the classifier as a dense linear or as int8
// codes with per-row scales (a model whose file stores it so: LlamaModel.classifierStorage). The RMSNorm
// weights are folded into the columns of the linears that read the normalized stream (wq, wk, wv by
// attention_norm; w1, w3 by ffn_norm; the classifier by norm, into h when it is int8, so that its codes
// stay the file's): decode GEMVs then fuse the normalization, and a prefill normalizes with a unit weight
// (`unitNorm`) before its GEMMs.

import type { LlamaConfig } from "../../model/config.ts";
import { classifierWeight } from "../../model/model.ts";
import { classifierInt8Rows } from "../../quant/int8_rows.ts";
import type { PackedModel } from "../../quant/residual_binary.ts";
import { BLOCK_LINEARS, type BlockLinear } from "../../model/params.ts";
import { createStorageBuffer, type GpuContext } from "./device.ts";
import type { EmbeddingDtype } from "./ops.ts";
import { foldNormWeight, type GpuLinear, type LinearWeights, uploadLinear } from "./matmul.ts";

/** One block's weights on the device (norm weights folded into the linears). */
export type GpuLayer = Record<BlockLinear, GpuLinear>;

/** The RMSNorm whose weight is folded into each block linear's columns, if any. */
export const FOLDED_NORM: Record<BlockLinear, "attention_norm" | "ffn_norm" | null> = {
  wq: "attention_norm",
  wk: "attention_norm",
  wv: "attention_norm",
  wo: null,
  w1: "ffn_norm",
  w2: null,
  w3: "ffn_norm",
};

/** All weights of a model on the device, with the bytes actually allocated. */
export interface GpuModelWeights {
  config: LlamaConfig;
  embedding: GPUBuffer; // (V, D)
  embeddingDtype: EmbeddingDtype;
  layers: GpuLayer[];
  /** (D) ones: the weight of the unit RMSNorm before prefill GEMMs (the real weights are folded). */
  unitNorm: GPUBuffer;
  classifier: GpuLinear; // (V, D), final norm folded in
  normEps: number;
  /** Bytes of the block linears' buffers, and of everything. */
  linearBytes: number;
  totalBytes: number;
  /** Weights in the block linears (for bits per weight). */
  linearWeights: number;
  dispose(): void;
}

/** Options of {@link uploadModel}. */
export interface UploadOptions {
  /** Storage of float linears on the device: "f32" (default) or "f16" (two halves per u32). */
  denseDtype?: "f32" | "f16";
  /**
   * Storage of the classifier: "i8" (int8 codes with per-row scales, from `quantizeRowsInt8` of the
   * classifier weight) or a float dtype. Default: "i8" when `model.classifierStorage` is "i8" (its params
   * then hold the dequantized values, whose codes are recovered exactly), else `denseDtype`.
   */
  classifierDtype?: "f32" | "f16" | "i8";
}

/** Builds device weights from a source of per-tensor data (a model in memory, or a random generator). */
export function buildWeights(
  ctx: GpuContext,
  config: LlamaConfig,
  source: {
    fp(name: string): Float32Array;
    linear(name: string): LinearWeights;
    classifier(): LinearWeights;
  },
): GpuModelWeights {
  const owned: GPUBuffer[] = [];
  const linears: GpuLinear[] = [];
  const fp = (name: string) => {
    const b = createStorageBuffer(ctx, name, source.fp(name));
    owned.push(b);
    return b;
  };
  let linearBytes = 0, linearWeights = 0;
  const layers: GpuLayer[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const norms = {
      attention_norm: source.fp(`layers.${l}.attention_norm`),
      ffn_norm: source.fp(`layers.${l}.ffn_norm`),
    };
    const layer = {} as GpuLayer;
    for (const kind of BLOCK_LINEARS) {
      const name = `layers.${l}.${kind}`;
      const norm = FOLDED_NORM[kind];
      const host = source.linear(name);
      const lin = uploadLinear(ctx, name, norm ? foldNormWeight(host, norms[norm]) : host);
      linears.push(lin);
      linearBytes += lin.bytes;
      linearWeights += lin.out * lin.in;
      layer[kind] = lin;
    }
    layers.push(layer);
  }
  const classifier = uploadLinear(ctx, "classifier", foldNormWeight(source.classifier(), source.fp("norm")));
  linears.push(classifier);
  const embedding = fp("tok_embeddings");
  const unitNorm = createStorageBuffer(ctx, "unit_norm", new Float32Array(config.dim).fill(1));
  owned.push(unitNorm);
  const fpBytes = owned.reduce((a, b) => a + b.size, 0);
  return {
    config,
    embedding,
    embeddingDtype: "f32",
    layers,
    unitNorm,
    classifier,
    normEps: config.normEps,
    linearBytes,
    linearWeights,
    totalBytes: fpBytes + linears.reduce((a, l) => a + l.bytes, 0),
    dispose() {
      for (const b of owned) b.destroy();
      for (const l of linears) l.destroy();
    },
  };
}

/**
 * Uploads a model: residual-binary linears packed, float linears as `denseDtype`, the classifier as
 * `classifierDtype`.
 */
export function uploadModel(
  ctx: GpuContext,
  model: PackedModel,
  options: UploadOptions = {},
): GpuModelWeights {
  const dense = options.denseDtype ?? "f32";
  const head = options.classifierDtype ?? (model.classifierStorage === "i8" ? "i8" : dense);
  const c = model.config;
  return buildWeights(ctx, c, {
    fp: (name) => model.params.get(name),
    linear: (name) => {
      const q = model.quantized.get(name);
      if (q) return { kind: "packed", layer: q };
      const [out, inF] = model.params.shape(name);
      return { kind: dense, w: model.params.get(name), out, in: inF };
    },
    classifier: () =>
      head === "i8"
        ? { kind: "i8", rows: classifierInt8Rows(model) }
        : { kind: head, w: classifierWeight(model), out: c.vocabSize, in: c.dim },
  });
}
