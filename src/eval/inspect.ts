// A description of a model file: format, config, parameter count, bytes by tensor group, and for packed
// files bits per weight and the per-layer reconstruction error recorded when it was quantized.

import type { LlamaConfig } from "../model/config.ts";
import type { OpenedModel } from "../io/load_model.ts";
import { rabitSummary } from "../io/rabit_format.ts";

/** Values and bytes of one group of tensors. */
export interface TensorGroup {
  group: string;
  /** Weights represented (for sign planes: the weights they encode). */
  parameters: number;
  bytes: number;
  bitsPerWeight: number;
}

/** One binarized layer as stored. */
export interface LayerInfo {
  name: string;
  out: number;
  in: number;
  k: number;
  bitsPerWeight: number;
  /** ||W − What|| / ||W|| recorded at quantization time, when known. */
  relError?: number;
}

/** What `inspect` reports. */
export interface ModelReport {
  path: string;
  format: string;
  config: LlamaConfig;
  parameters: number;
  bytes: number;
  tokenizer?: string;
  groups: TensorGroup[];
  /** Packed files: method, its options, bits per weight of the binarized layers, and each layer. */
  method?: string;
  options?: Record<string, unknown>;
  bitsPerWeight?: number;
  layers?: LayerInfo[];
}

function groupOf(name: string): string {
  if (name === "tok_embeddings") return "embeddings";
  if (name === "output") return "classifier";
  if (name.endsWith("norm")) return "norms";
  return "linears";
}

/** Counts parameters and bytes per group of an opened model file. */
export function inspectModel(opened: OpenedModel): ModelReport {
  const { model } = opened;
  const base = {
    path: opened.path,
    format: opened.format,
    config: model.config,
    tokenizer: opened.tokenizer ? `${opened.tokenizer.vocabSize} tokens` : undefined,
  };
  if (opened.rabit) {
    const s = rabitSummary(opened.rabit);
    const recorded = new Map<string, number>();
    const layersMeta = opened.rabit.metadata.layers;
    if (Array.isArray(layersMeta)) {
      for (const l of layersMeta) {
        if (l && typeof l.name === "string") recorded.set(l.name, Number(l.relError));
      }
    }
    return {
      ...base,
      parameters: s.parameters,
      bytes: s.tensorBytes,
      groups: s.groups.filter((g) => g.elements > 0).map((g) => ({
        group: g.group,
        parameters: g.elements,
        bytes: g.bytes,
        bitsPerWeight: (8 * g.bytes) / g.elements,
      })),
      method: opened.rabit.method,
      options: opened.rabit.options,
      bitsPerWeight: s.binarized.bitsPerWeight,
      layers: s.layers.map((l) => ({ ...l, relError: recorded.get(l.name) })),
    };
  }
  const groups = new Map<string, { parameters: number; bytes: number }>();
  for (const name of model.params.names()) {
    const n = model.params.entry(name).size;
    const e = groups.get(groupOf(name)) ?? { parameters: 0, bytes: 0 };
    e.parameters += n;
    e.bytes += 4 * n;
    groups.set(groupOf(name), e);
  }
  const list = [...groups].map(([group, e]) => ({
    group,
    ...e,
    bitsPerWeight: (8 * e.bytes) / e.parameters,
  }));
  return {
    ...base,
    parameters: list.reduce((a, g) => a + g.parameters, 0),
    bytes: list.reduce((a, g) => a + g.bytes, 0),
    groups: list,
  };
}
