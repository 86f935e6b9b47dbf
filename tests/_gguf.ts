// A small GGUF writer for tests: any metadata and tensors (with offsets that may be forced, to build broken
// files), and a llama2.c model with its tokenizer written as llama.cpp's converter would.

import { ggufTensorName } from "../src/io/gguf.ts";
import { BOS, EOS, type Llama2cTokenizer } from "../src/io/tokenizer.ts";
import { headSize, type LlamaConfig } from "../src/model/config.ts";
import type { ParamTable } from "../src/model/params.ts";
import { toF16 } from "../src/util/fp16.ts";

/** Metadata value types by name (GGUF ids). */
export const T = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  str: 8,
  arr: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

/** ggml tensor type ids used by the tests. */
export const GGML = { F32: 0, F16: 1, Q4_0: 2, BF16: 30 } as const;

/** One metadata entry; arrays give their element type. */
export interface Kv {
  key: string;
  type: number;
  value: unknown;
  elementType?: number;
}

/** One tensor: dims as ggml's ne (fastest first), its raw bytes, optionally a forced data offset. */
export interface TensorOut {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
  offset?: number;
}

/** Options of {@link writeGguf}. */
export interface WriteOptions {
  version?: number;
  /** Alignment used for padding (written as general.alignment unless it is the default 32). */
  alignment?: number;
}

class Bytes {
  chunks: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  num(type: number, v: number | bigint): void {
    const size = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8][type];
    const b = new Uint8Array(size);
    const d = new DataView(b.buffer);
    if (type === T.u8 || type === T.bool) d.setUint8(0, Number(v));
    else if (type === T.i8) d.setInt8(0, Number(v));
    else if (type === T.u16) d.setUint16(0, Number(v), true);
    else if (type === T.i16) d.setInt16(0, Number(v), true);
    else if (type === T.u32) d.setUint32(0, Number(v), true);
    else if (type === T.i32) d.setInt32(0, Number(v), true);
    else if (type === T.f32) d.setFloat32(0, Number(v), true);
    else if (type === T.u64) d.setBigUint64(0, BigInt(v), true);
    else if (type === T.i64) d.setBigInt64(0, BigInt(v), true);
    else d.setFloat64(0, Number(v), true);
    this.push(b);
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.num(T.u64, b.length);
    this.push(b);
  }
  value(type: number, v: unknown, elementType?: number): void {
    if (type === T.str) return this.str(v as string);
    if (type === T.arr) {
      const items = v as unknown[];
      this.num(T.u32, elementType!);
      this.num(T.u64, items.length);
      for (const x of items) this.value(elementType!, x);
      return;
    }
    if (type > T.f64) return this.push(new Uint8Array(4)); // an unknown type, for refusal tests
    this.num(type, type === T.bool ? Number(v) : v as number);
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) out.set(c, at), at += c.length;
    return out;
  }
}

/** A GGUF file of the given metadata and tensors, laid out one after another at the alignment. */
export function writeGguf(kvs: Kv[], tensors: TensorOut[], options: WriteOptions = {}): Uint8Array {
  const alignment = options.alignment ?? 32;
  const all = alignment === 32 ? kvs : [...kvs, { key: "general.alignment", type: T.u32, value: alignment }];
  const head = new Bytes();
  head.push(new TextEncoder().encode("GGUF"));
  head.num(T.u32, options.version ?? 3);
  head.num(T.u64, tensors.length);
  head.num(T.u64, all.length);
  for (const kv of all) {
    head.str(kv.key);
    head.num(T.u32, kv.type);
    head.value(kv.type, kv.value, kv.elementType);
  }
  const pad = (n: number) => Math.ceil(n / alignment) * alignment;
  let at = 0;
  const offsets = tensors.map((t) => {
    const o = t.offset ?? pad(at);
    at = Math.max(at, o + t.data.length);
    return o;
  });
  tensors.forEach((t, i) => {
    head.str(t.name);
    head.num(T.u32, t.dims.length);
    for (const d of t.dims) head.num(T.u64, d);
    head.num(T.u32, t.type);
    head.num(T.u64, offsets[i]);
  });
  const dataStart = pad(head.length);
  const out = new Uint8Array(dataStart + pad(at));
  out.set(head.concat());
  tensors.forEach((t, i) => out.set(t.data, dataStart + offsets[i]));
  return out;
}

/** bf16 bit patterns of f32 values, rounded to nearest even. */
export function toBf16(values: Float32Array): Uint16Array {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  return Uint16Array.from(u, (x) => (x + 0x7fff + ((x >>> 16) & 1)) >>> 16);
}

/** Options of {@link modelToGguf}. */
export interface ModelToGgufOptions {
  /** Storage of the 2-D weights (norms stay F32, as llama.cpp writes them). Default F32. */
  type?: "F32" | "F16" | "BF16";
  tokenizer?: Llama2cTokenizer;
  version?: number;
  alignment?: number;
  /** Metadata to add or replace, by key. */
  extra?: Kv[];
}

/** The bytes of one tensor in a storage type. */
export function tensorBytes(values: Float32Array, type: "F32" | "F16" | "BF16"): Uint8Array {
  const copy = values.slice();
  const raw = type === "F32" ? copy : type === "F16" ? toF16(copy) : toBf16(copy);
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** A llama2.c-layout model as llama.cpp's converter writes it: llama.* metadata, tensors, vocabulary. */
export function modelToGguf(
  config: LlamaConfig,
  params: ParamTable,
  options: ModelToGgufOptions = {},
): Uint8Array {
  const type = options.type ?? "F32";
  const kvs: Kv[] = [
    { key: "general.architecture", type: T.str, value: "llama" },
    { key: "general.name", type: T.str, value: "test" },
    { key: "llama.context_length", type: T.u32, value: config.seqLen },
    { key: "llama.embedding_length", type: T.u32, value: config.dim },
    { key: "llama.block_count", type: T.u32, value: config.nLayers },
    { key: "llama.feed_forward_length", type: T.u32, value: config.hiddenDim },
    { key: "llama.rope.dimension_count", type: T.u32, value: headSize(config) },
    { key: "llama.attention.head_count", type: T.u32, value: config.nHeads },
    { key: "llama.attention.head_count_kv", type: T.u32, value: config.nKvHeads },
    { key: "llama.attention.layer_norm_rms_epsilon", type: T.f32, value: config.normEps },
    { key: "llama.rope.freq_base", type: T.f32, value: config.ropeTheta },
  ];
  const tok = options.tokenizer;
  if (tok) {
    const dec = new TextDecoder("utf-8", { fatal: true });
    const tokens = tok.pieces.map((p, id) =>
      id === BOS ? "<s>" : id === EOS ? "</s>" : dec.decode(p).replaceAll(" ", "\u2581")
    );
    const types = tokens.map((_, id) => (id === 0 ? 2 : id <= 2 ? 3 : id <= 258 ? 6 : 1));
    kvs.push(
      { key: "tokenizer.ggml.model", type: T.str, value: "llama" },
      { key: "tokenizer.ggml.tokens", type: T.arr, elementType: T.str, value: tokens },
      { key: "tokenizer.ggml.scores", type: T.arr, elementType: T.f32, value: [...tok.scores] },
      { key: "tokenizer.ggml.token_type", type: T.arr, elementType: T.i32, value: types },
      { key: "tokenizer.ggml.bos_token_id", type: T.u32, value: BOS },
      { key: "tokenizer.ggml.eos_token_id", type: T.u32, value: EOS },
      { key: "tokenizer.ggml.unknown_token_id", type: T.u32, value: 0 },
    );
  }
  for (const kv of options.extra ?? []) {
    const i = kvs.findIndex((k) => k.key === kv.key);
    if (i >= 0) kvs[i] = kv;
    else kvs.push(kv);
  }
  const tensors: TensorOut[] = params.names().map((name) => {
    const shape = params.shape(name);
    const t = shape.length === 1 ? "F32" : type;
    return {
      name: ggufTensorName(name),
      dims: [...shape].reverse(),
      type: GGML[t],
      data: tensorBytes(params.get(name), t),
    };
  });
  return writeGguf(kvs, tensors, { version: options.version, alignment: options.alignment });
}
