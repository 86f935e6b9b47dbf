/**
 * rabit: residual-aware binarization (RaBiT) of Llama models and bit-packed inference on the CPU and
 * WebGPU. The whole pipeline is here: open a model, calibrate and initialize (`ptq`), train
 * (`quantize`, or the pieces of its loop), pack, read and write `.rabit` files and checkpoints, run
 * sessions, and measure perplexity, generation and path diagnostics.
 *
 * Runs in Deno and in Node ≥ 20.16 (the npm package `rabit`, built by `deno task build:npm`): files are
 * read and written through node:fs, which both implement. A browser has no files: it passes bytes
 * (`openModelBytes`, `parseRabit`, `parseCheckpoint`, `Tokenizer.parse`) and takes bytes back
 * (`serializeRabit`, `serializeCheckpoint`).
 *
 * @example Generate from a float model
 * ```ts
 * import { CpuSession, generate, openModel } from "./mod.ts";
 * const { model, tokenizer } = await openModel("../shared/data/stories260K.bin", { requireTokenizer: true });
 * const out = await generate(new CpuSession(model), tokenizer!, { steps: 8 });
 * console.log(out.text);
 * ```
 *
 * @example Quantize, save, load and evaluate
 * ```ts
 * import { CpuSession, openModel, perplexity, perplexityTokens, quantize, readRabit, writeRabit } from "./mod.ts";
 * const { model, tokenizer } = await openModel("../shared/data/stories260K.bin", { requireTokenizer: true });
 * const text = (await Deno.readTextFile("../shared/data/tinystories_dev.txt")).slice(0, 20_000);
 * const q = await quantize(model, { method: "ptq", tokenizer: tokenizer!, data: [{ name: "dev", text }],
 *   precondition: 0, svidRounds: 0 });
 * const dir = await Deno.makeTempDir();
 * await writeRabit(`${dir}/model.rabit`, { model: q.model, tokenizerBytes: tokenizer!.bytes, method: q.method,
 *   options: q.options, metadata: q.metadata });
 * const packed = await readRabit(`${dir}/model.rabit`);
 * const ids = perplexityTokens((t) => packed.tokenizer!.encode(t), text.slice(0, 2000));
 * const { ppl } = await perplexity(new CpuSession(packed.model), ids, { context: 64, maxWindows: 2 });
 * console.log(ppl); // above the float model's, far below the vocabulary size 512
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */

// Model: hyper-parameters, the flat parameter table, linear layers, the reference forward.
export type { LlamaConfig } from "./src/model/config.ts";
export { headSize, kvDim, validateConfig } from "./src/model/config.ts";
export { BLOCK_LINEARS, linearNames, llamaParamSpecs, ParamTable } from "./src/model/params.ts";
export type { BlockLinear, ParamEntry } from "./src/model/params.ts";
export type { LlamaModel } from "./src/model/model.ts";
export { withoutQuantized } from "./src/model/model.ts";
export type { LinearLayer } from "./src/model/linear.ts";
export { DenseLinear } from "./src/model/linear.ts";
export { createKvCache, forwardChunk } from "./src/model/forward.ts";
export type {
  BlockActivations,
  ChunkActivations,
  ForwardOptions,
  ForwardResult,
  KvCache,
} from "./src/model/forward.ts";

// Open: llama2.c checkpoints, GGUF files, the tokenizer, any supported model file.
export { loadLlama2c, parseLlama2c, serializeLlama2cLegacy, serializeLlama2cV1 } from "./src/io/llama2c.ts";
export type { LoadedCheckpoint } from "./src/io/llama2c.ts";
export { isGguf, loadGgufModel, parseGguf, parseGgufModel } from "./src/io/gguf.ts";
export type {
  GgmlType,
  GgufFile,
  GgufNumericArray,
  GgufTensorInfo,
  GgufValue,
  LoadedGguf,
} from "./src/io/gguf.ts";
export { BOS, EOS, HfTokenizer, isTokenizerJson, Llama2cTokenizer, Tokenizer } from "./src/io/tokenizer.ts";
export type { EncodeOptions, EncodeStats, TokenizerKind } from "./src/io/tokenizer.ts";
export { tokenizerJsonFromLlama2c } from "./src/io/hf_tokenizer.ts";
export { openModel } from "./src/io/load_model.ts";
export type { OpenedModel, OpenModelOptions } from "./src/io/load_model.ts";
export { openModelBytes } from "./src/io/open_bytes.ts";
export type { OpenModelBytesOptions } from "./src/io/open_bytes.ts";
export { FormatError } from "./src/io/errors.ts";

// Safetensors: the strict reader and writer, Hugging Face Llama checkpoints, exports of packed models.
export {
  decodeFloatTensor,
  MAX_SAFETENSORS_HEADER_BYTES,
  parseSafetensors,
  parseSafetensorsHeader,
  serializeSafetensors,
} from "./src/io/safetensors.ts";
export type {
  SafetensorInfo,
  SafetensorOut,
  SafetensorsHeader,
  SafetensorsReadOptions,
} from "./src/io/safetensors.ts";
export {
  hfCheckpointFiles,
  hfConfigToLlama,
  hfSingleFile,
  hfTensorName,
  llamaToHfConfig,
  loadHfModel,
  writeHfModel,
} from "./src/io/hf.ts";
export type { HfWeightDtype, HfWriteOptions, LoadedHf, LoadHfOptions } from "./src/io/hf.ts";
export { dequantizedModel, packedSafetensors, parsePackedSafetensors } from "./src/io/rabit_safetensors.ts";
export { exportTrainState, importTrainState } from "./src/train/state_safetensors.ts";

// Calibrate and initialize: channel statistics, function-aware init, post-training quantization.
export { calibrate, calibrationWindows } from "./src/quant/calibrate.ts";
export type { CalibrateOptions, ChannelStats } from "./src/quant/calibrate.ts";
export { residualInit } from "./src/quant/residual_init.ts";
export type {
  ResidualInitDiagnostics,
  ResidualInitOptions,
  ResidualInitResult,
} from "./src/quant/residual_init.ts";
export { quantizeModel } from "./src/quant/quantize_model.ts";
export { meanPaths, parsePathsBy, resolvePaths } from "./src/quant/layer_paths.ts";
export type { PathsBy } from "./src/quant/layer_paths.ts";
export type { LayerReport, QuantizedModel, QuantizeModelOptions } from "./src/quant/quantize_model.ts";
export type { QuantizeMethod, QuantizeStats } from "./src/quant/quantize.ts";
export type { LayerShape } from "./src/quant/matrix.ts";
export type { SvidOptions } from "./src/quant/svid.ts";

// Train: `quantize` in one call, and the pieces of its loop for custom training.
export {
  autoTeacherTokens,
  METHOD_DEFAULTS,
  quantize,
  QUANTIZE_DEFAULTS,
  QUANTIZE_METHODS,
  QUANTIZE_PRESETS,
  QuantizeOptionError,
  TRAINED_METHODS,
} from "./src/train/quantize.ts";
export type {
  QuantizeMethodName,
  QuantizeOptions,
  QuantizePreset,
  QuantizeResult,
  TrainBackendName,
} from "./src/train/quantize.ts";
export { layerPaths, packTable, TRAIN_METHODS, TrainableLinear, trainLayout } from "./src/train/trainable.ts";
export type { TrainFloat, TrainLayout, TrainMethod } from "./src/train/trainable.ts";
export { initializeTable } from "./src/train/init.ts";
export type { InitKind, InitOptions } from "./src/train/init.ts";
export { splitHoldout, WindowSet } from "./src/train/data.ts";
export {
  sampleTeacherTokens,
  sampleTeacherTokensParallel,
  TEACHER_SHARD_TOKENS,
} from "./src/train/teacher_text.ts";
export type { TeacherTextOptions } from "./src/train/teacher_text.ts";
export type { BatchLosses, StepReport, TrainingBackend, TrainState } from "./src/train/backend.ts";
export { CpuTrainingBackend } from "./src/train/cpu_backend.ts";
export type { BackendOptions, LatentOptimizer } from "./src/train/cpu_backend.ts";
export { WebGpuTrainingBackend } from "./src/train/webgpu_backend.ts";
export { learningRate, NonFiniteError, runTraining } from "./src/train/loop.ts";
export type { LoopOptions, StepInfo } from "./src/train/loop.ts";
export {
  layoutOf,
  paramsCrc,
  parseCheckpoint,
  readCheckpoint,
  serializeCheckpoint,
  writeCheckpoint,
} from "./src/train/checkpoint.ts";
export type { Checkpoint, TrainLog } from "./src/train/checkpoint.ts";

// Pack: residual-binary layers, the sign-bit layout, the .rabit file.
export type { PackedModel, ResidualBinaryLinear } from "./src/quant/residual_binary.ts";
export { dequantize, PackedLinear, residualBinaryMatmul } from "./src/quant/residual_binary.ts";
export { packSigns, unpackSigns, wordsPerRow } from "./src/quant/bitpack.ts";
export { roundScalesF16 } from "./src/quant/scales.ts";
export { parseRabit, readRabit, serializeRabit, vocabDtypes, writeRabit } from "./src/io/rabit_format.ts";
export type { FpDtype, LoadedRabit, RabitCreated, RabitFile, StoredDtype } from "./src/io/rabit_format.ts";
export { Int8RowsLinear, quantizeRowsInt8 } from "./src/quant/int8_rows.ts";
export type { Int8Rows } from "./src/quant/int8_rows.ts";

// Run: inference sessions (CPU reference, WebGPU; createSession picks one, wasm included).
export type { BackendName, InferenceSession, RunOptions } from "./src/backend/backend.ts";
export { CpuSession } from "./src/backend/cpu/session.ts";
export { createSession } from "./src/backend/create.ts";
export type { CreateSessionOptions } from "./src/backend/create.ts";
export { WasmSession } from "./src/backend/wasm/session.ts";
export type { WasmSessionOptions } from "./src/backend/wasm/session.ts";
export { wasmSimdSupported } from "./src/backend/wasm/kernels.ts";
export type { PackedTables } from "./src/backend/wasm/kernels.ts";
export { WebGpuSession } from "./src/backend/webgpu/session.ts";
export type { StepProfile, WebGpuSessionOptions } from "./src/backend/webgpu/session.ts";
export type { UploadOptions } from "./src/backend/webgpu/weights.ts";
export { requestGpu } from "./src/backend/webgpu/device.ts";
export type { GpuContext, RequestGpuOptions } from "./src/backend/webgpu/device.ts";

// Evaluate: perplexity, generation and sampling, inter-path diagnostics.
export { perplexity, perplexityTokens } from "./src/eval/perplexity.ts";
export type { PerplexityOptions, PerplexityResult } from "./src/eval/perplexity.ts";
export { generate } from "./src/eval/generate.ts";
export type { GenerateOptions, GenerateResult } from "./src/eval/generate.ts";
export { argmax, Sampler } from "./src/eval/sampling.ts";
export type { SamplingOptions } from "./src/eval/sampling.ts";
export { pathDiagnostics } from "./src/eval/diagnostics.ts";
export type { DiagnosticsModels, PathDiagnostics, PathDiagnosticsOptions } from "./src/eval/diagnostics.ts";
export { LayerPathStats } from "./src/eval/path_stats.ts";
export type { LayerPathDiagnostics } from "./src/eval/path_stats.ts";
