// A Hugging Face checkpoint written by hand for tests, independently of src/io/hf.ts and safetensors.ts:
// transformers' names, its q/k permutation as convert_llama_weights_to_hf.py computes it (Python reshapes),
// config.json and a minimal safetensors writer.

import type { LlamaConfig } from "../src/model/config.ts";
import type { ParamTable } from "../src/model/params.ts";
import { tensorBytes as ggufTensorBytes } from "./_gguf.ts";

/** View a (rows, cols) matrix as (nH, a, b, cols) and swap the middle axes, as torch's transpose(1, 2). */
function swapMiddle(w: Float32Array, nH: number, a: number, b: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < nH; h++) {
    for (let i = 0; i < a; i++) {
      for (let j = 0; j < b; j++) {
        const src = ((h * a + i) * b + j) * cols, dst = ((h * b + j) * a + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** convert_llama_weights_to_hf.py's permute: w.view(nH, hs/2, 2, cols).transpose(1, 2).reshape(rows, cols). */
export const hfPermute = (w: Float32Array, nH: number, hs: number, cols: number): Float32Array =>
  swapMiddle(w, nH, hs / 2, 2, cols);

/** transformers' name of each of our tensors, written out. */
export function hfName(ours: string): string {
  const fixed: Record<string, string> = {
    tok_embeddings: "model.embed_tokens.weight",
    norm: "model.norm.weight",
    output: "lm_head.weight",
  };
  if (fixed[ours]) return fixed[ours];
  const [, l, kind] = /^layers\.(\d+)\.(\w+)$/.exec(ours)!;
  const sub: Record<string, string> = {
    attention_norm: "input_layernorm",
    wq: "self_attn.q_proj",
    wk: "self_attn.k_proj",
    wv: "self_attn.v_proj",
    wo: "self_attn.o_proj",
    ffn_norm: "post_attention_layernorm",
    w1: "mlp.gate_proj",
    w2: "mlp.down_proj",
    w3: "mlp.up_proj",
  };
  return `model.layers.${l}.${sub[kind]}.weight`;
}

/** One tensor for {@link writeSafetensorsByHand}. */
export interface HandTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Safetensors bytes in file order, as the format's README describes it (no alignment games). */
export function writeSafetensorsByHand(tensors: HandTensor[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.data.length] };
    at += t.data.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const t of tensors) out.set(t.data, p), p += t.data.length;
  return out;
}

/** config.json as transformers writes it for a Llama model. */
export function hfConfigJson(c: LlamaConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.sharedClassifier,
    hidden_act: "silu",
    torch_dtype: "float32",
    transformers_version: "4.44.0",
    ...extra,
  };
}

/** The tensors of an HF checkpoint of a llama2.c-order model: HF names, q/k permuted, norms F32. */
export function hfTensorsByHand(
  c: LlamaConfig,
  params: ParamTable,
  type: "F32" | "F16" | "BF16" = "F32",
): HandTensor[] {
  const hs = c.dim / c.nHeads;
  return params.names().map((name) => {
    let w = params.get(name);
    if (/\.wq$/.test(name)) w = hfPermute(w, c.nHeads, hs, c.dim);
    if (/\.wk$/.test(name)) w = hfPermute(w, c.nKvHeads, hs, c.dim);
    const shape = params.shape(name);
    const t = shape.length === 1 ? "F32" : type;
    return { name: hfName(name), dtype: t, shape, data: ggufTensorBytes(w, t) };
  });
}
