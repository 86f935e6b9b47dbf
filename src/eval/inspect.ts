// A description of a model in memory: parameter counts and storage bytes by tensor group.

import type { LlamaConfig } from "../model/config.ts";
import type { OpenedModel } from "../io/load_model.ts";
import { wordsPerRow } from "../quant/bitpack.ts";

/** Parameters and bytes of one group of tensors. */
export interface TensorGroup {
  group: string;
  parameters: number;
  bytes: number;
  bitsPerWeight: number;
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
}

function groupOf(name: string): string {
  if (name === "tok_embeddings") return "embeddings";
  if (name === "output") return "classifier";
  if (name.endsWith("norm")) return "norms";
  if (/\.w[qkvo]$/.test(name)) return "attention";
  return "ffn";
}

/** Counts parameters and bytes per group (fp tensors at 4 bytes, binarized layers as packed). */
export function inspectModel(
  opened: OpenedModel,
  fpBytesPerValue: (name: string) => number = () => 4,
): ModelReport {
  const { model } = opened;
  const groups = new Map<string, { parameters: number; bytes: number }>();
  const add = (g: string, parameters: number, bytes: number) => {
    const e = groups.get(g) ?? { parameters: 0, bytes: 0 };
    e.parameters += parameters;
    e.bytes += bytes;
    groups.set(g, e);
  };
  for (const name of model.params.names()) {
    const n = model.params.entry(name).size;
    add(groupOf(name), n, n * fpBytesPerValue(name));
  }
  for (const [name, q] of model.quantized) {
    const weights = q.out * q.in;
    add(groupOf(name), weights, q.k * q.out * wordsPerRow(q.in) * 4 + q.k * (q.out + q.in) * 2);
  }
  const list = [...groups].map(([group, e]) => ({
    group,
    ...e,
    bitsPerWeight: (8 * e.bytes) / e.parameters,
  }));
  return {
    path: opened.path,
    format: opened.format,
    config: model.config,
    parameters: list.reduce((a, g) => a + g.parameters, 0),
    bytes: list.reduce((a, g) => a + g.bytes, 0),
    tokenizer: opened.tokenizer ? `${opened.tokenizer.vocabSize} tokens` : undefined,
    groups: list,
  };
}
