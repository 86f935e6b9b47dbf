// Hugging Face Llama checkpoints: a directory with config.json, model.safetensors (or shards listed in
// model.safetensors.index.json) and tokenizer.json, read into the parameter table and written back.
//
// Tensor names (ours ← theirs; N a layer):
//   tok_embeddings ← model.embed_tokens.weight         norm ← model.norm.weight      output ← lm_head.weight
//   layers.N.attention_norm ← model.layers.N.input_layernorm.weight
//   layers.N.wq / wk / wv / wo ← model.layers.N.self_attn.q_proj / k_proj / v_proj / o_proj.weight
//   layers.N.ffn_norm ← model.layers.N.post_attention_layernorm.weight
//   layers.N.w1 / w2 / w3 ← model.layers.N.mlp.gate_proj / down_proj / up_proj.weight
// model.layers.N.self_attn.rotary_emb.inv_freq (a buffer older checkpoints carry) is ignored: rotary
// frequencies are recomputed from rope_theta. With tie_word_embeddings there is no output head; an
// lm_head.weight stored anyway is ignored, as transformers ties it to the embedding.
//
// Rotary layout: transformers' convert_llama_weights_to_hf.py permutes the q/k rows of Meta's weights,
// w.view(n_heads, hs/2, 2, in).transpose(1, 2), so that the rotate_half pairs (j, j + hs/2) of a head hold
// what Meta's adjacent pairs (2j, 2j + 1) held: HF row h·hs + c·hs/2 + j is Meta row h·hs + 2j + c
// (c ∈ {0, 1}). ops.ts's ropeForward pairs adjacent elements as Meta and llama2.c do, so loading applies
// the inverse permutation to wq (n_heads heads) and wk (n_kv_heads heads), and writing applies the
// permutation (tests/gguf.test.ts proves both conventions agree under it).

import { headSize, type LlamaConfig } from "../model/config.ts";
import { llamaParamCount, llamaParamSpecs, ParamTable } from "../model/params.ts";
import { FormatError, readFileOrThrow } from "./errors.ts";
import { isFileSync, mkdir, pathModule, stat } from "./fs.ts";
import { writeFileAtomic } from "./container.ts";
import { llamaTokenizerConfigJson, tokenizerJsonFromLlama2c } from "./hf_tokenizer.ts";
import { configProblem } from "./limits.ts";
import {
  decodeFloatTensor,
  FLOAT_DTYPES,
  parseSafetensors,
  type SafetensorOut,
  type SafetensorsHeader,
  serializeSafetensors,
  tensorBytes,
} from "./safetensors.ts";
import { isTokenizerJson, Llama2cTokenizer, type Tokenizer } from "./tokenizer.ts";
import { f32ToF16Bits } from "../util/fp16.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

const HINT = "Expected a Hugging Face Llama checkpoint (config.json, model.safetensors, tokenizer.json)";
/** Largest config.json or index accepted, in bytes. */
const MAX_JSON_BYTES = 64 << 20;
/** Metadata key under which a single-file export keeps its config.json. */
export const HF_CONFIG_METADATA_KEY = "config_json";

// ---------------------------------------------------------------------------------------------------
// Names and the rotary permutation.

const LAYER_NAMES: Record<string, string> = {
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
const GLOBAL_NAMES: Record<string, string> = {
  tok_embeddings: "model.embed_tokens",
  norm: "model.norm",
  output: "lm_head",
};

/**
 * The Hugging Face module name of one of our parameters (without ".weight").
 *
 * @example
 * ```ts
 * import { hfModuleName } from "./hf.ts";
 * hfModuleName("layers.3.w1"); // "model.layers.3.mlp.gate_proj"
 * hfModuleName("output"); // "lm_head"
 * ```
 */
export function hfModuleName(param: string): string {
  if (Object.hasOwn(GLOBAL_NAMES, param)) return GLOBAL_NAMES[param];
  const m = /^layers\.(\d+)\.(\w+)$/.exec(param);
  if (!m || !Object.hasOwn(LAYER_NAMES, m[2])) {
    throw new RangeError(`hfModuleName: unknown parameter "${param}"`);
  }
  return `model.layers.${m[1]}.${LAYER_NAMES[m[2]]}`;
}

/**
 * The Hugging Face tensor name of one of our parameters.
 *
 * @example
 * ```ts
 * import { hfTensorName } from "./hf.ts";
 * hfTensorName("layers.0.wq"); // "model.layers.0.self_attn.q_proj.weight"
 * hfTensorName("tok_embeddings"); // "model.embed_tokens.weight"
 * ```
 */
export function hfTensorName(param: string): string {
  return `${hfModuleName(param)}.weight`;
}

/** Heads whose rows the rotary permutation reorders: wq (n_heads), wk (n_kv_heads); undefined for others. */
export function rotaryHeads(param: string, c: LlamaConfig): number | undefined {
  if (/^layers\.\d+\.wq$/.test(param)) return c.nHeads;
  if (/^layers\.\d+\.wk$/.test(param)) return c.nKvHeads;
  return undefined;
}

/**
 * For each Hugging Face row of a q/k projection with `nHeads` heads of size `hs`, the Meta (llama2.c)
 * row it holds: HF row h·hs + c·hs/2 + j is Meta row h·hs + 2j + c.
 *
 * @example
 * ```ts
 * import { hfRowOrder } from "./hf.ts";
 * [...hfRowOrder(1, 4)]; // [0, 2, 1, 3]
 * ```
 */
export function hfRowOrder(nHeads: number, hs: number): Int32Array {
  const order = new Int32Array(nHeads * hs);
  for (let h = 0; h < nHeads; h++) {
    for (let c = 0; c < 2; c++) {
      for (let j = 0; j < hs / 2; j++) order[h * hs + c * (hs / 2) + j] = h * hs + 2 * j + c;
    }
  }
  return order;
}

/**
 * Rows of a row-major (rows, rowLength) array reordered: "toHf" takes Meta order to Hugging Face order
 * (out row r = in row order[r]), "toMeta" the inverse. Any element type (f32 weights, u32 sign words).
 *
 * @example
 * ```ts
 * import { hfRowOrder, permuteRows } from "./hf.ts";
 * const order = hfRowOrder(1, 4);
 * permuteRows(new Float32Array([0, 1, 2, 3]), 1, order, "toHf"); // Float32Array [0, 2, 1, 3]
 * ```
 */
export function permuteRows<T extends Float32Array | Uint32Array>(
  src: T,
  rowLength: number,
  order: Int32Array,
  direction: "toHf" | "toMeta",
): T {
  if (src.length !== order.length * rowLength) {
    throw new RangeError(
      `permuteRows: expected ${order.length} rows of ${rowLength}, found ${src.length} values`,
    );
  }
  const out = new (src.constructor as { new (n: number): T })(src.length);
  for (let r = 0; r < order.length; r++) {
    const from = direction === "toHf" ? order[r] : r, to = direction === "toHf" ? r : order[r];
    out.set(src.subarray(from * rowLength, (from + 1) * rowLength), to * rowLength);
  }
  return out;
}

/** The Meta/llama2.c-order weight of `param` from its Hugging Face-order values (a copy when permuted). */
function toMetaOrder(param: string, c: LlamaConfig, values: Float32Array): Float32Array {
  const heads = rotaryHeads(param, c);
  if (heads === undefined) return values;
  return permuteRows(values, c.dim, hfRowOrder(heads, headSize(c)), "toMeta");
}

/**
 * The Hugging Face-order weight of `param` from our (Meta/llama2.c-order) values (a copy when permuted).
 *
 * @example
 * ```ts
 * import { toHfOrder } from "./hf.ts";
 * const c = { dim: 4, hiddenDim: 8, nLayers: 1, nHeads: 1, nKvHeads: 1, vocabSize: 4, seqLen: 4,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * toHfOrder("layers.0.wq", c, new Float32Array(16).map((_, i) => Math.floor(i / 4)))[4]; // 2: row 1 is Meta row 2
 * ```
 */
export function toHfOrder(param: string, c: LlamaConfig, values: Float32Array): Float32Array {
  const heads = rotaryHeads(param, c);
  if (heads === undefined) return values;
  return permuteRows(values, c.dim, hfRowOrder(heads, headSize(c)), "toHf");
}

// ---------------------------------------------------------------------------------------------------
// config.json

function describe(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);
  return `${typeof v} ${String(v)}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseJson(bytes: Uint8Array, path: string, what: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new FormatError(path, `${what} is not valid JSON (${(e as Error).message})`, HINT);
  }
  if (!isRecord(json)) {
    throw new FormatError(path, `expected ${what} to be a JSON object, found ${describe(json)}`, HINT);
  }
  return json;
}

/**
 * The Llama config a Hugging Face config.json describes. Refused, each by name: another model_type or
 * architecture, rope_scaling (or rope_parameters other than the default rotary), an activation other than
 * silu, attention or MLP biases, a head_dim other than hidden_size / num_attention_heads, and sizes beyond
 * the loaders' limits. Defaults are transformers' LlamaConfig's (rope_theta 10000, rms_norm_eps 1e-6,
 * max_position_embeddings 2048, num_key_value_heads = num_attention_heads, untied embeddings).
 *
 * @example
 * ```ts
 * import { hfConfigToLlama } from "./hf.ts";
 * const c = hfConfigToLlama({ model_type: "llama", hidden_size: 64, intermediate_size: 172,
 *   num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512,
 *   max_position_embeddings: 512, rms_norm_eps: 1e-5, tie_word_embeddings: true });
 * c.nKvHeads; // 4
 * c.sharedClassifier; // true
 * ```
 */
export function hfConfigToLlama(json: Record<string, unknown>, path = "config.json"): LlamaConfig {
  const fail = (problem: string) => new FormatError(path, problem, HINT);
  if (json.model_type !== "llama") {
    throw fail(`model_type is ${describe(json.model_type)}; this loader reads "llama" models only`);
  }
  if (json.architectures !== undefined && json.architectures !== null) {
    const a = json.architectures;
    if (!Array.isArray(a) || a.length !== 1 || a[0] !== "LlamaForCausalLM") {
      throw fail(
        `architectures is ${JSON.stringify(a)?.slice(0, 80)}; this loader reads ["LlamaForCausalLM"]`,
      );
    }
  }
  const int = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) {
      throw fail(`expected ${key} to be an integer, found ${describe(json[key])}`);
    }
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw fail(`expected ${key} to be a positive number, found ${describe(json[key])}`);
    }
    return v;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = json[key] ?? fallback;
    if (typeof v !== "boolean") throw fail(`expected ${key} to be a boolean, found ${describe(json[key])}`);
    return v;
  };
  const act = json.hidden_act ?? "silu";
  if (act !== "silu") throw fail(`hidden_act is ${describe(act)}; Llama's SwiGLU needs "silu"`);
  if (json.rope_scaling !== undefined && json.rope_scaling !== null) {
    const type = isRecord(json.rope_scaling)
      ? json.rope_scaling.rope_type ?? json.rope_scaling.type
      : undefined;
    throw fail(`rope_scaling is set (type ${describe(type)}): scaled rotary embeddings are not supported`);
  }
  let ropeTheta = num("rope_theta", 10000);
  if (json.rope_parameters !== undefined && json.rope_parameters !== null) {
    const p = json.rope_parameters;
    if (!isRecord(p) || (p.rope_type ?? "default") !== "default") {
      throw fail(
        `rope_parameters has rope_type ${describe(isRecord(p) ? p.rope_type : p)}: only the default ` +
          "rotary embedding is supported",
      );
    }
    if (p.rope_theta !== undefined) {
      if (typeof p.rope_theta !== "number" || !(p.rope_theta > 0) || !Number.isFinite(p.rope_theta)) {
        throw fail(
          `expected rope_parameters.rope_theta to be a positive number, found ${describe(p.rope_theta)}`,
        );
      }
      ropeTheta = p.rope_theta;
    }
  }
  for (const key of ["attention_bias", "mlp_bias"]) {
    if (flag(key, false)) throw fail(`${key} is true: Llama layers with biases are not supported`);
  }
  const nHeads = int("num_attention_heads");
  const config: LlamaConfig = {
    dim: int("hidden_size"),
    hiddenDim: int("intermediate_size"),
    nLayers: int("num_hidden_layers"),
    nHeads,
    nKvHeads: int("num_key_value_heads", nHeads),
    vocabSize: int("vocab_size"),
    seqLen: int("max_position_embeddings", 2048),
    sharedClassifier: flag("tie_word_embeddings", false),
    normEps: num("rms_norm_eps", 1e-6),
    ropeTheta,
  };
  const problem = configProblem(config);
  if (problem) throw fail(`bad config: ${problem}`);
  if (json.head_dim !== undefined && json.head_dim !== null && json.head_dim !== headSize(config)) {
    throw fail(
      `head_dim is ${describe(json.head_dim)} but hidden_size / num_attention_heads is ${
        headSize(config)
      }: ` +
        "unequal head sizes are not supported",
    );
  }
  return config;
}

/**
 * The config.json of a Llama config (what transformers' LlamaForCausalLM reads).
 *
 * @example
 * ```ts
 * import { llamaToHfConfig } from "./hf.ts";
 * const c = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * llamaToHfConfig(c).num_key_value_heads; // 4
 * ```
 */
export function llamaToHfConfig(c: LlamaConfig, dtype = "float32"): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: headSize(c),
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: c.sharedClassifier,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: dtype,
  };
}

// ---------------------------------------------------------------------------------------------------
// Reading.

/** A model read from a Hugging Face checkpoint. */
export interface LoadedHf {
  /** The config from config.json. */
  config: LlamaConfig;
  /** Every tensor in f32, under our names, q/k rows in Meta order. */
  params: ParamTable;
  /** config.json as read. */
  hfConfig: Record<string, unknown>;
  /** The weight files read, in order. */
  files: string[];
  /** `__metadata__` of the first weight file. */
  metadata: Record<string, string>;
}

/** Options of {@link loadHfModel}. */
export interface LoadHfOptions {
  /** The bytes of `path` when it is a .safetensors file the caller has read already. */
  bytes?: Uint8Array;
}

const LOAD_HF_OPTION_KEYS = optionKeys<LoadHfOptions>({ bytes: true });

/** One weight file to read: its path and, for a sharded checkpoint, the tensors the index puts in it. */
interface Shard {
  path: string;
  listed?: Set<string>;
}

/** Which of our parameters a Hugging Face tensor is, or "ignore" / undefined (not part of the model). */
function paramOf(name: string, c: LlamaConfig, ours: Map<string, string>): string | "ignore" | undefined {
  if (/^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name)) return "ignore";
  if (name === "lm_head.weight" && c.sharedClassifier) return "ignore";
  return ours.get(name);
}

/** The shards of a checkpoint from its index (file names checked, every tensor in one shard). */
function readIndex(json: Record<string, unknown>, dir: string, path: string): Shard[] {
  const fail = (problem: string) => new FormatError(path, problem, HINT);
  const map = json.weight_map;
  if (!isRecord(map)) {
    throw fail(`expected weight_map to be an object (tensor → file), found ${describe(map)}`);
  }
  const shards = new Map<string, Shard>();
  for (const [tensor, file] of Object.entries(map)) {
    if (typeof file !== "string" || !/^[^/\\]+$/.test(file) || file === "." || file === "..") {
      throw fail(`weight_map["${tensor}"] is ${describe(file)}; expected a file name in the same directory`);
    }
    let s = shards.get(file);
    if (!s) shards.set(file, s = { path: pathModule().join(dir, file), listed: new Set() });
    s.listed!.add(tensor);
  }
  if (shards.size === 0) throw fail("weight_map lists no tensors");
  return [...shards.values()];
}

async function readJsonFile(path: string, what: string): Promise<Record<string, unknown>> {
  const info = await stat(path).catch(() => undefined);
  if (info && info.size > MAX_JSON_BYTES) {
    throw new FormatError(path, `${what} is ${info.size} bytes, beyond the limit of ${MAX_JSON_BYTES}`, HINT);
  }
  return parseJson(await readFileOrThrow(path, what), path, what);
}

/**
 * Reads a Hugging Face Llama checkpoint: `path` is a directory (config.json, then model.safetensors or
 * model.safetensors.index.json with its shards) or one .safetensors file (config from its metadata
 * `config_json`, as `rabit export --dequantize` writes it, else config.json next to it). Tensors may be
 * F32, F16 or BF16; every tensor name, shape and range is checked (names, shapes and the shards' total
 * size against the config before the table is allocated); q/k rows are put into Meta order.
 *
 * @example
 * ```ts
 * import { loadHfModel, writeHfModel } from "./hf.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const dir = await Deno.makeTempDir();
 * await writeHfModel(dir, { config, params });
 * const back = await loadHfModel(dir);
 * back.params.get("layers.0.wq")[5] === params.get("layers.0.wq")[5]; // true
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadHfModel(path: string, options: LoadHfOptions = {}): Promise<LoadedHf> {
  checkOptionKeys("loadHfModel", options, LOAD_HF_OPTION_KEYS);
  const p = pathModule();
  const info = await stat(path).catch(() => undefined);
  if (!info) await readFileOrThrow(path, "Model"); // the "not found" error, naming the path
  let dir: string, shards: Shard[], hfConfig: Record<string, unknown> | undefined, configPath: string;
  if (info!.isDirectory) {
    dir = path;
    configPath = p.join(dir, "config.json");
    if (!isFileSync(configPath)) {
      throw new FormatError(path, "the directory has no config.json", HINT);
    }
    hfConfig = await readJsonFile(configPath, "config.json");
    const single = p.join(dir, "model.safetensors"), indexPath = p.join(dir, "model.safetensors.index.json");
    if (isFileSync(single)) shards = [{ path: single }];
    else if (isFileSync(indexPath)) {
      shards = readIndex(await readJsonFile(indexPath, "the index"), dir, indexPath);
    } else {
      throw new FormatError(
        path,
        "the directory has neither model.safetensors nor model.safetensors.index.json " +
          "(PyTorch .bin weights are not read: save them with safe_serialization=True)",
        HINT,
      );
    }
  } else {
    dir = p.dirname(path);
    configPath = p.join(dir, "config.json");
    shards = [{ path }];
  }
  const files: string[] = [];
  let metadata: Record<string, string> | undefined;
  let config: LlamaConfig | undefined;
  let params: ParamTable | undefined;
  let wanted: Map<string, string> | undefined; // HF name → our name
  const seen = new Map<string, string>(); // HF name → the file it came from
  // Bytes the shards hold in all, against what the config implies, before the table is allocated.
  let totalBytes = 0;
  for (const s of shards) {
    const size = (await stat(s.path).catch(() => undefined))?.size;
    if (size === undefined) await readFileOrThrow(s.path, "Weight file"); // the "not found" error
    totalBytes += size ?? 0;
  }
  for (const shard of shards) {
    const bytes = options.bytes && shard.path === path
      ? options.bytes
      : await readFileOrThrow(shard.path, "Weight file");
    const header = parseSafetensors(bytes, shard.path, { dtypes: FLOAT_DTYPES });
    files.push(shard.path);
    metadata ??= header.metadata;
    if (!config) {
      if (!hfConfig) {
        const fromMeta = header.metadata[HF_CONFIG_METADATA_KEY];
        if (fromMeta !== undefined) {
          hfConfig = parseJson(
            new TextEncoder().encode(fromMeta),
            shard.path,
            `metadata ${HF_CONFIG_METADATA_KEY}`,
          );
          configPath = `${shard.path} (metadata ${HF_CONFIG_METADATA_KEY})`;
        } else if (isFileSync(configPath)) {
          hfConfig = await readJsonFile(configPath, "config.json");
        } else {
          throw new FormatError(
            shard.path,
            `no config: the file's metadata has no ${HF_CONFIG_METADATA_KEY} and there is no config.json next to it`,
            HINT,
          );
        }
      }
      config = hfConfigToLlama(hfConfig, configPath);
      const need = 2 * llamaParamCount(config);
      if (need > totalBytes) {
        throw new FormatError(
          configPath,
          `the config (dim ${config.dim}, hidden ${config.hiddenDim}, ${config.nLayers} layers, vocab ` +
            `${config.vocabSize}) needs at least ${need} bytes of weights (2 per value), the weight files ` +
            `hold ${totalBytes}`,
          HINT,
        );
      }
      wanted = new Map(llamaParamSpecs(config).map(([name]) => [hfTensorName(name), name]));
    }
    checkShard(header, shard, config, wanted!, seen);
    params ??= ParamTable.fromSpecs(llamaParamSpecs(config));
    for (const t of header.tensors) {
      const ours = paramOf(t.name, config, wanted!);
      if (ours === "ignore" || ours === undefined) continue;
      const dst = params.get(ours);
      if (rotaryHeads(ours, config) === undefined) decodeFloatTensor(tensorBytes(bytes, t), t.dtype, dst);
      else dst.set(toMetaOrder(ours, config, decodeFloatTensor(tensorBytes(bytes, t), t.dtype, dst.slice())));
      const bad = dst.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) {
        throw new FormatError(
          shard.path,
          `non-finite weight ${dst[bad]} in tensor ${t.name} at element ${bad}`,
          HINT,
        );
      }
      seen.set(t.name, shard.path);
    }
  }
  for (const [hfName, ours] of wanted!) {
    if (!seen.has(hfName)) {
      throw new FormatError(
        shards.length > 1 ? p.join(dir, "model.safetensors.index.json") : shards[0].path,
        `tensor ${hfName} (our ${ours}) is missing`,
        HINT,
      );
    }
  }
  return { config: config!, params: params!, hfConfig: hfConfig!, files, metadata: metadata! };
}

/** Checks one shard's tensors: known names, right shapes, each in one shard, as the index lists them. */
function checkShard(
  header: SafetensorsHeader,
  shard: Shard,
  c: LlamaConfig,
  wanted: Map<string, string>,
  seen: Map<string, string>,
): void {
  const fail = (problem: string) => new FormatError(shard.path, problem, HINT);
  const shapes = new Map(llamaParamSpecs(c));
  for (const t of header.tensors) {
    const ours = paramOf(t.name, c, wanted);
    if (ours === undefined) {
      throw fail(
        `tensor ${t.name} is not part of a ${c.nLayers}-layer Llama model as this loader maps it ` +
          "(model.embed_tokens, model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, " +
          "post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head; .weight)",
      );
    }
    if (shard.listed && !shard.listed.has(t.name)) {
      throw fail(`tensor ${t.name} is in this file but the index does not list it here`);
    }
    if (seen.has(t.name)) throw fail(`tensor ${t.name} is also in ${seen.get(t.name)}`);
    if (ours === "ignore") continue;
    const want = shapes.get(ours)!;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw fail(
        `tensor ${t.name} has shape [${
          t.shape.join(", ")
        }] but the config (dim ${c.dim}, hidden ${c.hiddenDim}, ` +
          `${c.nHeads} heads, ${c.nKvHeads} kv heads, vocab ${c.vocabSize}) makes ${ours} [${
            want.join(", ")
          }]`,
      );
    }
  }
  for (const name of shard.listed ?? []) {
    if (!header.byName.has(name)) {
      throw fail(`the index puts tensor ${name} in this file, which does not hold it`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Writing.

/** Storage of the 2-D weights in a written checkpoint (norms always F32, as transformers keeps them). */
export type HfWeightDtype = "F32" | "F16" | "BF16";

/** Options of {@link hfCheckpointFiles} and {@link writeHfModel}. */
export interface HfWriteOptions {
  /** Storage of the 2-D weights (default F32). */
  dtype?: HfWeightDtype;
  /**
   * Split the weights into shards of at most this many bytes of tensor data, with an index (default: one
   * file). Tensors are not split, so it must be at least {@link hfLargestTensor}'s bytes.
   */
  shardBytes?: number;
  /** The tokenizer: written as tokenizer.json (a llama2.c vocabulary converted) and tokenizer_config.json. */
  tokenizer?: Tokenizer;
  /** Extra `__metadata__` of every weight file (besides {"format": "pt"}). */
  metadata?: Record<string, string>;
}

const HF_WRITE_OPTION_KEYS = optionKeys<HfWriteOptions>({
  dtype: true,
  shardBytes: true,
  tokenizer: true,
  metadata: true,
});

/** f32 values (finite) as the little-endian bytes of an F32, F16 or BF16 tensor (rounded to nearest even). */
export function encodeHfTensor(values: Float32Array, dtype: HfWeightDtype): Uint8Array {
  if (dtype === "F32") return new Uint8Array(values.slice().buffer);
  const out = new Uint16Array(values.length);
  if (dtype === "F16") { for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]); }
  else {
    const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < values.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

/** A model's tensors under Hugging Face names, q/k rows in Hugging Face order. */
export function hfTensors(
  model: { config: LlamaConfig; params: ParamTable },
  dtype: HfWeightDtype = "F32",
): SafetensorOut[] {
  const c = model.config;
  return llamaParamSpecs(c).map(([name, shape]) => {
    const t = shape.length === 1 ? "F32" : dtype;
    return {
      name: hfTensorName(name),
      dtype: t,
      shape,
      data: encodeHfTensor(toHfOrder(name, c, model.params.get(name)), t),
    };
  });
}

/**
 * The largest tensor of a Hugging Face checkpoint of a model with `config` whose 2-D weights are stored as
 * `dtype` (norms stay F32): its name and bytes, the smallest shard {@link hfCheckpointFiles} can keep to
 * its limit. The first of equal ones.
 *
 * @example
 * ```ts
 * import { hfLargestTensor } from "./hf.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config } = await loadLlama2c("../shared/data/stories260K.bin");
 * hfLargestTensor(config, "F16"); // { name: "model.embed_tokens.weight", bytes: 65536 }
 * ```
 */
export function hfLargestTensor(
  config: LlamaConfig,
  dtype: HfWeightDtype = "F32",
): { name: string; bytes: number } {
  let best = { name: "", bytes: 0 };
  for (const [name, shape] of llamaParamSpecs(config)) {
    const bytes = shape.reduce((a, d) => a * d, 1) * (shape.length === 1 || dtype === "F32" ? 4 : 2);
    if (bytes > best.bytes) best = { name: hfTensorName(name), bytes };
  }
  return best;
}

/**
 * The files of a Hugging Face checkpoint of `model`, by name: config.json, model.safetensors (or
 * model-0000i-of-0000n.safetensors shards and model.safetensors.index.json), and with a tokenizer
 * tokenizer.json and tokenizer_config.json.
 *
 * @example
 * ```ts
 * import { hfCheckpointFiles } from "./hf.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * [...hfCheckpointFiles({ config, params }, { dtype: "F16" }).keys()]; // ["config.json", "model.safetensors"]
 * ```
 */
export function hfCheckpointFiles(
  model: { config: LlamaConfig; params: ParamTable },
  options: HfWriteOptions = {},
): Map<string, Uint8Array> {
  checkOptionKeys("hfCheckpointFiles", options, HF_WRITE_OPTION_KEYS);
  const enc = new TextEncoder();
  const dtype = options.dtype ?? "F32";
  const files = new Map<string, Uint8Array>();
  const torchDtype = { F32: "float32", F16: "float16", BF16: "bfloat16" }[dtype];
  files.set("config.json", enc.encode(JSON.stringify(llamaToHfConfig(model.config, torchDtype), null, 2)));
  const tensors = hfTensors(model, dtype);
  const metadata = { format: "pt", ...options.metadata };
  const limit = options.shardBytes;
  if (limit === undefined) {
    files.set("model.safetensors", serializeSafetensors(tensors, metadata));
  } else {
    if (!(limit > 0)) throw new RangeError(`hfCheckpointFiles: shardBytes must be positive, found ${limit}`);
    const largest = hfLargestTensor(model.config, dtype);
    if (limit < largest.bytes) {
      // A tensor is never split, so a shard of it alone would exceed the limit.
      throw new RangeError(
        `hfCheckpointFiles: shardBytes ${limit} is smaller than the largest tensor (${largest.bytes} bytes, ` +
          `${largest.name}); use at least that`,
      );
    }
    const groups: SafetensorOut[][] = [[]];
    let size = 0;
    for (const t of tensors) {
      if (size > 0 && size + t.data.byteLength > limit) groups.push([]), size = 0;
      groups.at(-1)!.push(t);
      size += t.data.byteLength;
    }
    const weightMap: Record<string, string> = {};
    const n = String(groups.length).padStart(5, "0");
    groups.forEach((g, i) => {
      const name = `model-${String(i + 1).padStart(5, "0")}-of-${n}.safetensors`;
      files.set(name, serializeSafetensors(g, metadata));
      for (const t of g) weightMap[t.name] = name;
    });
    const total = tensors.reduce((a, t) => a + t.data.byteLength, 0);
    files.set(
      "model.safetensors.index.json",
      enc.encode(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)),
    );
  }
  const tok = options.tokenizer;
  if (tok) {
    const json = tok instanceof Llama2cTokenizer ? enc.encode(tokenizerJsonFromLlama2c(tok)) : tok.bytes;
    files.set("tokenizer.json", json);
    files.set("tokenizer_config.json", enc.encode(llamaTokenizerConfigJson(model.config.seqLen)));
  }
  return files;
}

/**
 * Writes a Hugging Face checkpoint of `model` into directory `dir` (created when missing), each file
 * atomically (see {@link hfCheckpointFiles}); returns the paths written.
 *
 * @example
 * ```ts
 * import { writeHfModel } from "./hf.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * import { Tokenizer } from "./tokenizer.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const tokenizer = await Tokenizer.load("../shared/data/tok512.bin", 512);
 * const dir = await Deno.makeTempDir();
 * (await writeHfModel(dir, { config, params }, { dtype: "BF16", tokenizer })).length; // 4 files
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeHfModel(
  dir: string,
  model: { config: LlamaConfig; params: ParamTable },
  options: HfWriteOptions = {},
): Promise<string[]> {
  checkOptionKeys("writeHfModel", options, HF_WRITE_OPTION_KEYS);
  const files = hfCheckpointFiles(model, options); // throws on bad options before anything is created
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, bytes] of files) {
    const path = pathModule().join(dir, name);
    await writeFileAtomic(path, bytes);
    written.push(path);
  }
  return written;
}

// ---------------------------------------------------------------------------------------------------
// Tokenizers in `__metadata__` (single-file exports carry theirs).

/**
 * A tokenizer as safetensors metadata: `tokenizer_kind` and `tokenizer` (a tokenizer.json as its text, a
 * llama2.c tokenizer.bin as base64); `asJson` converts a llama2.c vocabulary to tokenizer.json first.
 *
 * @example
 * ```ts
 * import { tokenizerMetadata } from "./hf.ts";
 * tokenizerMetadata(new TextEncoder().encode("{}")); // { tokenizer_kind: "hf", tokenizer: "{}" }
 * ```
 */
export function tokenizerMetadata(
  tokenizer: Tokenizer | Uint8Array | undefined,
  asJson = false,
): Record<string, string> {
  if (!tokenizer) return {};
  if (asJson && tokenizer instanceof Llama2cTokenizer) {
    return { tokenizer_kind: "hf", tokenizer: tokenizerJsonFromLlama2c(tokenizer) };
  }
  const bytes = tokenizer instanceof Uint8Array ? tokenizer : tokenizer.bytes;
  if (isTokenizerJson(bytes)) return { tokenizer_kind: "hf", tokenizer: new TextDecoder().decode(bytes) };
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { tokenizer_kind: "llama2c", tokenizer: btoa(s) };
}

/** The tokenizer bytes `__metadata__` holds (see {@link tokenizerMetadata}), or undefined. */
export function tokenizerBytesOfMetadata(meta: Record<string, string>, path: string): Uint8Array | undefined {
  const kind = meta.tokenizer_kind, text = meta.tokenizer;
  if (kind === undefined && text === undefined) return undefined;
  if (kind === "hf" && text !== undefined) return new TextEncoder().encode(text);
  if (kind === "llama2c" && text !== undefined) {
    try {
      return Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
    } catch {
      throw new FormatError(path, "metadata tokenizer is not valid base64", HINT);
    }
  }
  throw new FormatError(
    path,
    `metadata tokenizer_kind is ${JSON.stringify(kind)} (expected "hf" or "llama2c")`,
    HINT,
  );
}

/**
 * A Hugging Face checkpoint of `model` in one safetensors file: the weights as {@link hfCheckpointFiles}
 * writes them, config.json in `__metadata__` `config_json`, the tokenizer as tokenizer.json text in
 * `tokenizer`; {@link loadHfModel} and openModel read it back.
 *
 * @example
 * ```ts
 * import { hfSingleFile, loadHfModel } from "./hf.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/m.safetensors`, hfSingleFile({ config, params }));
 * (await loadHfModel(`${dir}/m.safetensors`)).config.dim; // 64
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function hfSingleFile(
  model: { config: LlamaConfig; params: ParamTable },
  options: Omit<HfWriteOptions, "shardBytes"> = {},
): Uint8Array {
  const dtype = options.dtype ?? "F32";
  const torchDtype = { F32: "float32", F16: "float16", BF16: "bfloat16" }[dtype];
  return serializeSafetensors(hfTensors(model, dtype), {
    format: "pt",
    ...options.metadata,
    [HF_CONFIG_METADATA_KEY]: JSON.stringify(llamaToHfConfig(model.config, torchDtype)),
    ...tokenizerMetadata(options.tokenizer, true),
  });
}
