// A packed (.rabit) model as a safetensors file, and back: sign planes, scales and float tensors under
// Hugging Face names and row order, the config, method and options in `__metadata__`
// (layout "rabit-packed-v1", docs/safetensors.md), so PyTorch or NumPy can read a quantized model without
// rabit; and a dequantized (dense f32 What) Hugging Face checkpoint of it.
//
// Per binarized layer M (a Hugging Face module name, e.g. model.layers.0.self_attn.q_proj):
//   M.planes  U8 (k, out, 4·ceil(in/32)): the u32 words of METHOD.md §8 as little-endian bytes, so bit b
//             of byte i of a row holds column 8i + b (NumPy: unpackbits(…, bitorder="little")); 1 = +1,
//             0 = −1, padding bits 0
//   M.g       F16|F32 (k, out) row scales        M.h  F16|F32 (k, in) column scales
// Float tensors: M.weight (and norms) as stored in the .rabit file (F32 or F16). Rows of q_proj/k_proj
// (their planes, g and weight) are in Hugging Face's order (hf.ts), so What = Σ_i g_i ⊙ B_i ⊙ h_i is
// exactly what LlamaForCausalLM expects in M.weight.

import { headSize, type LlamaConfig } from "../model/config.ts";
import { llamaParamSpecs, ParamTable } from "../model/params.ts";
import { wordsPerRow } from "../quant/bitpack.ts";
import {
  dequantize,
  PackedLinear,
  type PackedModel,
  validateResidualBinary,
} from "../quant/residual_binary.ts";
import { FormatError } from "./errors.ts";
import {
  encodeHfTensor,
  HF_CONFIG_METADATA_KEY,
  hfModuleName,
  hfRowOrder,
  hfTensorName,
  llamaToHfConfig,
  permuteRows,
  rotaryHeads,
  tokenizerBytesOfMetadata,
  tokenizerMetadata,
} from "./hf.ts";
import { configProblem } from "./limits.ts";
import type { LoadedRabit, RabitFile } from "./rabit_format.ts";
import {
  decodeFloatTensor,
  parseSafetensors,
  type SafetensorOut,
  type SafetensorsHeader,
  serializeSafetensors,
  tensorBytes,
} from "./safetensors.ts";
import { decodeU32, encodeU32, type FpDtype } from "./tensor_codec.ts";
import { Tokenizer } from "./tokenizer.ts";

/** `__metadata__["rabit_layout"]` of a packed export. */
export const PACKED_LAYOUT = "rabit-packed-v1";
/** `__metadata__["rabit_layout"]` of a dequantized (dense) export. */
export const DENSE_LAYOUT = "rabit-dense-hf-v1";

const HINT = `Expected a packed model exported by rabit export (metadata rabit_layout "${PACKED_LAYOUT}")`;
const DTYPE_NAME: Record<FpDtype, string> = { f32: "F32", f16: "F16" };

/** The config's fields in LlamaConfig order (checkpoints compare configs as JSON text). */
function configRecord(c: LlamaConfig): LlamaConfig {
  return {
    dim: c.dim,
    hiddenDim: c.hiddenDim,
    nLayers: c.nLayers,
    nHeads: c.nHeads,
    nKvHeads: c.nKvHeads,
    vocabSize: c.vocabSize,
    seqLen: c.seqLen,
    sharedClassifier: c.sharedClassifier,
    normEps: c.normEps,
    ropeTheta: c.ropeTheta,
  };
}

/**
 * A packed model as safetensors bytes (layout at the top of this file): binarized layers as U8 sign planes
 * and F16/F32 scales, other tensors as the file stores them (`file.dtypes`, default f32 tensors and f16
 * scales; int8-stored vocabulary tensors as F32, their dequantized values), q/k rows in Hugging Face order; metadata: rabit_layout, config (ours, JSON), config_json
 * (transformers' config.json), method, options, metadata (JSON), the tokenizer.
 *
 * @example
 * ```ts
 * import { packedSafetensors, parsePackedSafetensors } from "./rabit_safetensors.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const bytes = packedSafetensors({ model: { config, params, quantized: new Map() }, method: "none",
 *   options: {}, metadata: {} });
 * parsePackedSafetensors(bytes).model.params.count; // 260032
 * ```
 */
export function packedSafetensors(file: RabitFile): Uint8Array {
  const { model } = file;
  const c = model.config;
  const dtypes = file.dtypes ?? {};
  const tensors: SafetensorOut[] = [];
  for (const [name, shape] of llamaParamSpecs(c)) {
    const q = model.quantized.get(name);
    if (!q) {
      // An int8-stored tensor (the vocabulary ones) goes out as F32: its dequantized values, exactly.
      const stored = dtypes[name] ?? "f32";
      const t = DTYPE_NAME[stored === "i8" ? "f32" : stored];
      const values = model.params.get(name);
      const hf = rotaryHeads(name, c) === undefined
        ? values
        : permuteRows(values, c.dim, hfRowOrder(rotaryHeads(name, c)!, headSize(c)), "toHf");
      tensors.push({
        name: hfTensorName(name),
        dtype: t,
        shape,
        data: encodeHfTensor(hf, t as "F32" | "F16"),
      });
      continue;
    }
    validateResidualBinary(q, `packedSafetensors: quantized layer "${name}"`);
    const m = hfModuleName(name);
    const wpr = wordsPerRow(q.in);
    const heads = rotaryHeads(name, c);
    const order = heads === undefined ? undefined : hfRowOrder(heads, headSize(c));
    const planes = new Uint32Array(q.planes.length);
    const g = new Float32Array(q.g.length);
    for (let p = 0; p < q.k; p++) {
      const plane = q.planes.subarray(p * q.out * wpr, (p + 1) * q.out * wpr);
      const gp = q.g.subarray(p * q.out, (p + 1) * q.out);
      planes.set(order ? permuteRows(plane, wpr, order, "toHf") : plane, p * q.out * wpr);
      g.set(order ? permuteRows(gp, 1, order, "toHf") : gp, p * q.out);
    }
    const scaleDtype = (key: string) => DTYPE_NAME[(dtypes[key] ?? "f16") as FpDtype];
    const gType = scaleDtype(`${name}.g`), hType = scaleDtype(`${name}.h`);
    tensors.push(
      { name: `${m}.planes`, dtype: "U8", shape: [q.k, q.out, 4 * wpr], data: encodeU32(planes).slice() },
      { name: `${m}.g`, dtype: gType, shape: [q.k, q.out], data: encodeHfTensor(g, gType as "F32" | "F16") },
      { name: `${m}.h`, dtype: hType, shape: [q.k, q.in], data: encodeHfTensor(q.h, hType as "F32" | "F16") },
    );
  }
  const metadata: Record<string, string> = {
    format: "pt",
    rabit_layout: PACKED_LAYOUT,
    config: JSON.stringify(configRecord(c)),
    [HF_CONFIG_METADATA_KEY]: JSON.stringify(llamaToHfConfig(c)),
    method: file.method,
    options: JSON.stringify(file.options ?? {}),
    metadata: JSON.stringify(file.metadata ?? {}),
    row_order: "hf",
    sign_planes: "U8 (k, out, 4*ceil(in/32)): bit b of byte i of a row is column 8i+b; 1 = +1, 0 = -1",
    ...tokenizerMetadata(file.tokenizerBytes),
  };
  return serializeSafetensors(tensors, metadata);
}

/** True when a safetensors header is a packed export. */
export function isPackedSafetensors(header: SafetensorsHeader): boolean {
  return header.metadata.rabit_layout === PACKED_LAYOUT;
}

/**
 * Reads a packed export back into a model ready to run (the inverse of {@link packedSafetensors}): the
 * config from metadata, every tensor's name, dtype and shape against it, planes' padding bits, finite
 * scales; q/k rows back in Meta order. `path` only names the file in errors (FormatErrors).
 *
 * @example
 * ```ts
 * import { parsePackedSafetensors } from "./rabit_safetensors.ts";
 * import { serializeSafetensors } from "./safetensors.ts";
 * try {
 *   parsePackedSafetensors(serializeSafetensors([]), "m.safetensors");
 * } catch (e) {
 *   (e as Error).message; // "m.safetensors: metadata rabit_layout is nothing, expected \"rabit-packed-v1\". …"
 * }
 * ```
 */
export function parsePackedSafetensors(bytes: Uint8Array, path = "model.safetensors"): LoadedRabit {
  const header = parseSafetensors(bytes, path, { dtypes: ["F32", "F16", "U8"] });
  const fail = (problem: string) => new FormatError(path, problem, HINT);
  const meta = header.metadata;
  if (meta.rabit_layout !== PACKED_LAYOUT) {
    throw fail(
      `metadata rabit_layout is ${
        meta.rabit_layout === undefined ? "nothing" : JSON.stringify(meta.rabit_layout)
      }, expected "${PACKED_LAYOUT}"`,
    );
  }
  const json = (key: string): Record<string, unknown> => {
    let v: unknown;
    try {
      v = JSON.parse(meta[key] ?? "");
    } catch {
      throw fail(`metadata ${key} is ${meta[key] === undefined ? "missing" : "not valid JSON"}`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw fail(`metadata ${key} is not a JSON object`);
    }
    return v as Record<string, unknown>;
  };
  const cm = json("config");
  const config = configRecord(cm as unknown as LlamaConfig);
  for (const [key, v] of Object.entries(config)) {
    const ok = key === "sharedClassifier"
      ? typeof v === "boolean"
      : typeof v === "number" && Number.isFinite(v);
    if (!ok) throw fail(`metadata config.${key} is ${v === undefined ? "missing" : JSON.stringify(v)}`);
  }
  const problem = configProblem(config);
  if (problem) throw fail(`bad config: ${problem}`);
  if (!(config.normEps > 0) || !(config.ropeTheta > 0)) {
    throw fail("bad config: normEps and ropeTheta must be > 0");
  }
  const method = meta.method;
  if (typeof method !== "string" || method.length === 0) throw fail("metadata method is missing");
  const hs = headSize(config);

  // Every tensor named, typed and shaped as the config implies, before anything is allocated.
  const specs = llamaParamSpecs(config);
  const expected = new Set<string>();
  const quantizedNames: string[] = [];
  const kOf = new Map<string, number>();
  const dtypes: Record<string, FpDtype> = {};
  const get = (name: string) => {
    const t = header.byName.get(name);
    if (!t) throw fail(`tensor ${name} is missing`);
    expected.add(name);
    return t;
  };
  const fpDtype = (name: string, dtype: string): FpDtype => {
    if (dtype === "F32") return "f32";
    if (dtype === "F16") return "f16";
    throw fail(`tensor ${name} has dtype ${dtype}, expected F32 or F16`);
  };
  const shaped = (name: string, shape: number[], want: number[]) => {
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
      throw fail(`tensor ${name} has shape [${shape.join(", ")}], the config implies [${want.join(", ")}]`);
    }
  };
  for (const [name, shape] of specs) {
    const m = /^layers\.\d+\.w[qkvo123]$/.test(name) ? hfModuleName(name) : undefined;
    if (m && header.byName.has(`${m}.planes`)) {
      const planes = get(`${m}.planes`);
      if (planes.dtype !== "U8") throw fail(`tensor ${m}.planes has dtype ${planes.dtype}, expected U8`);
      const k = planes.shape[0];
      if (!(Number.isInteger(k) && k >= 1 && k <= 4)) {
        throw fail(`tensor ${m}.planes has k = ${k} paths, expected 1..4`);
      }
      const [out, inF] = shape;
      shaped(`${m}.planes`, planes.shape, [k, out, 4 * wordsPerRow(inF)]);
      const g = get(`${m}.g`), h = get(`${m}.h`);
      dtypes[`${name}.g`] = fpDtype(g.name, g.dtype);
      dtypes[`${name}.h`] = fpDtype(h.name, h.dtype);
      shaped(g.name, g.shape, [k, out]);
      shaped(h.name, h.shape, [k, inF]);
      quantizedNames.push(name);
      kOf.set(name, k);
    } else {
      const t = get(hfTensorName(name));
      dtypes[name] = fpDtype(t.name, t.dtype);
      shaped(t.name, t.shape, shape);
    }
  }
  for (const t of header.tensors) {
    if (!expected.has(t.name)) {
      throw fail(`unexpected tensor ${t.name}: not part of this config's packed model`);
    }
  }

  const floats = (name: string, dst?: Float32Array): Float32Array => {
    const t = header.byName.get(name)!;
    const values = decodeFloatTensor(
      tensorBytes(bytes, t),
      t.dtype,
      dst ?? new Float32Array(t.shape.reduce((a, d) => a * d, 1)),
    );
    const bad = values.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw fail(`tensor ${name} holds a non-finite value ${values[bad]} at index ${bad}`);
    return values;
  };
  const quantizedSet = new Set(quantizedNames);
  const fp = specs.filter(([name]) => !quantizedSet.has(name));
  const params = ParamTable.fromSpecs(fp);
  for (const [name] of fp) {
    const heads = rotaryHeads(name, config);
    const values = floats(hfTensorName(name), heads === undefined ? params.get(name) : undefined);
    if (heads !== undefined) {
      params.get(name).set(permuteRows(values, config.dim, hfRowOrder(heads, hs), "toMeta"));
    }
  }
  const quantized = new Map<string, PackedLinear>();
  for (const name of quantizedNames) {
    const m = hfModuleName(name), k = kOf.get(name)!;
    const [out, inF] = specs.find(([n]) => n === name)![1];
    const wpr = wordsPerRow(inF);
    const raw = decodeU32(tensorBytes(bytes, header.byName.get(`${m}.planes`)!));
    const gRaw = floats(`${m}.g`);
    const heads = rotaryHeads(name, config);
    const order = heads === undefined ? undefined : hfRowOrder(heads, hs);
    const planes = order ? new Uint32Array(raw.length) : raw;
    const g = order ? new Float32Array(gRaw.length) : gRaw;
    if (order) {
      for (let p = 0; p < k; p++) {
        planes.set(
          permuteRows(raw.subarray(p * out * wpr, (p + 1) * out * wpr), wpr, order, "toMeta"),
          p * out * wpr,
        );
        g.set(permuteRows(gRaw.subarray(p * out, (p + 1) * out), 1, order, "toMeta"), p * out);
      }
    }
    const tail = inF % 32;
    if (tail) {
      for (let r = 0; r < k * out; r++) {
        if (planes[r * wpr + wpr - 1] >>> tail !== 0) {
          throw fail(`tensor ${m}.planes: padding bits of plane ${Math.floor(r / out)} are not 0`);
        }
      }
    }
    quantized.set(name, new PackedLinear({ out, in: inF, k, planes, g, h: floats(`${m}.h`) }, `${m}`));
  }
  const tokenizerBytes = tokenizerBytesOfMetadata(meta, path);
  const tokenizer = tokenizerBytes
    ? Tokenizer.parse(tokenizerBytes, config.vocabSize, `${path} (metadata tokenizer)`)
    : undefined;
  return {
    model: { config, params, quantized },
    tokenizerBytes,
    tokenizer,
    method,
    options: json("options"),
    metadata: json("metadata"),
    dtypes,
    created: { at: "", by: `safetensors export (${PACKED_LAYOUT})` },
    fileBytes: bytes.byteLength,
  };
}

/**
 * The dense model a packed one computes: every binarized layer replaced by its What = Σ_i g_i ⊙ B_i ⊙ h_i
 * in f32 (what `export --dequantize` writes as a Hugging Face checkpoint).
 *
 * @example
 * ```ts
 * import { dequantizedModel } from "./rabit_safetensors.ts";
 * import { loadLlama2c } from "./llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * dequantizedModel({ config, params, quantized: new Map() }).params.count; // 260032
 * ```
 */
export function dequantizedModel(model: PackedModel): { config: LlamaConfig; params: ParamTable } {
  const params = ParamTable.fromSpecs(llamaParamSpecs(model.config));
  for (const name of params.names()) {
    const q = model.quantized.get(name);
    params.get(name).set(q ? dequantize(q) : model.params.get(name));
  }
  return { config: model.config, params };
}
