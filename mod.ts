/**
 * rabit: residual-aware binarization (RaBiT) of Llama models and bit-packed inference.
 *
 * @example
 * ```ts
 * import { CpuSession, generate, openModel } from "./mod.ts";
 * const { model, tokenizer } = await openModel("../shared/data/stories260K.bin", { requireTokenizer: true });
 * const out = await generate(new CpuSession(model), tokenizer!, { steps: 8 });
 * console.log(out.text);
 * ```
 * @module
 */

export type { LlamaConfig } from "./src/model/config.ts";
export { headSize, kvDim, validateConfig } from "./src/model/config.ts";
export { BLOCK_LINEARS, linearNames, llamaParamSpecs, ParamTable } from "./src/model/params.ts";
export type { ParamEntry } from "./src/model/params.ts";
export type { LlamaModel } from "./src/model/model.ts";
export { createKvCache, forwardChunk } from "./src/model/forward.ts";
export type { ForwardOptions, ForwardResult, KvCache } from "./src/model/forward.ts";
export { loadLlama2c, parseLlama2c, serializeLlama2cLegacy, serializeLlama2cV1 } from "./src/io/llama2c.ts";
export { BOS, EOS, Tokenizer } from "./src/io/tokenizer.ts";
export { openModel } from "./src/io/load_model.ts";
export type { OpenedModel, OpenModelOptions } from "./src/io/load_model.ts";
export { FormatError } from "./src/io/errors.ts";
export type { BackendName, InferenceSession, RunOptions } from "./src/backend/backend.ts";
export { CpuSession } from "./src/backend/cpu/session.ts";
export { createSession } from "./src/backend/create.ts";
export { perplexity, perplexityTokens } from "./src/eval/perplexity.ts";
export type { PerplexityOptions, PerplexityResult } from "./src/eval/perplexity.ts";
export { generate } from "./src/eval/generate.ts";
export type { GenerateOptions, GenerateResult } from "./src/eval/generate.ts";
export { pathDiagnostics } from "./src/eval/diagnostics.ts";
export type { DiagnosticsModels, PathDiagnostics, PathDiagnosticsOptions } from "./src/eval/diagnostics.ts";
export { LayerPathStats } from "./src/eval/path_stats.ts";
export type { LayerPathDiagnostics } from "./src/eval/path_stats.ts";
export { argmax, Sampler } from "./src/eval/sampling.ts";
export type { SamplingOptions } from "./src/eval/sampling.ts";
export type { ResidualBinaryLinear } from "./src/quant/residual_binary.ts";
export { dequantize, residualBinaryMatmul } from "./src/quant/residual_binary.ts";
export { packSigns, unpackSigns, wordsPerRow } from "./src/quant/bitpack.ts";
export type { LinearLayer } from "./src/model/linear.ts";
export { DenseLinear } from "./src/model/linear.ts";
export type { PackedModel } from "./src/quant/residual_binary.ts";
export { PackedLinear } from "./src/quant/residual_binary.ts";
export { readRabit, writeRabit } from "./src/io/rabit_format.ts";
export type { RabitFile } from "./src/io/rabit_format.ts";
export { quantize, QUANTIZE_DEFAULTS } from "./src/train/quantize.ts";
export type { QuantizeMethodName, QuantizeOptions, QuantizeResult } from "./src/train/quantize.ts";
export type { BatchLosses, TrainingBackend, TrainState } from "./src/train/backend.ts";
export { CpuTrainingBackend } from "./src/train/cpu_backend.ts";
export { WebGpuTrainingBackend } from "./src/train/webgpu_backend.ts";
export { trainLayout } from "./src/train/trainable.ts";
export { readCheckpoint } from "./src/train/checkpoint.ts";
