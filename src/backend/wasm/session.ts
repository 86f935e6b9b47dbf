// The WebAssembly SIMD backend: the reference forward of src/model/forward.ts with every block linear and the
// classifier replaced by kernels of src/backend/wasm/kernels.ts (packed layers by the lookup-table product,
// dense ones by the fp32 or fp16-storage GEMV/GEMM). Attention, norms and rotary stay the TypeScript
// reference, so there is one forward, and this backend differs from `cpu` only inside the matmuls.

import type { InferenceSession, RunOptions } from "../backend.ts";
import { createKvCache, forwardChunk, type KvCache } from "../../model/forward.ts";
import { DenseLinear, type LinearLayer } from "../../model/linear.ts";
import { classifierWeight, linearLayer, type LlamaModel } from "../../model/model.ts";
import type { LlamaConfig } from "../../model/config.ts";
import { BLOCK_LINEARS } from "../../model/params.ts";
import { classifierInt8Rows } from "../../quant/int8_rows.ts";
import { DEFAULT_PACKED_TABLES, MIN_PARALLEL_WORK, type PackedTables, WasmKernels } from "./kernels.ts";
import { checkOptionKeys, optionKeys } from "../../util/option_keys.ts";

/** Options of {@link WasmSession}. */
export interface WasmSessionOptions {
  /** Storage of dense block linears (those not packed): "f32" (default) or "f16" (halves, for benchmarks). */
  denseStorage?: "f32" | "f16";
  /** Tables of the packed product (default DEFAULT_PACKED_TABLES, "i8", the fastest; "i16" and "f32" are closer to the reference; see PackedTables). */
  packedTables?: PackedTables;
  /** Table scale block size in words (see PackedOptions.blockWords). */
  blockWords?: number;
  /**
   * Threads for large products, the caller's included (WasmSession.create; default
   * navigator.hardwareConcurrency when some product is large enough to split; 1 = none). The constructor
   * always runs on one thread.
   */
  threads?: number;
  /**
   * Storage of the classifier: "f32", "f16" or "i8" (int8 codes with per-row scales, quant/int8_rows.ts).
   * Default: "i8" when the model's file stored it so (model.classifierStorage), else "f32".
   */
  classifier?: "f32" | "f16" | "i8";
}

/** Every key of {@link WasmSessionOptions} (createSession checks its `wasm` option against them too). */
export const WASM_SESSION_OPTION_KEYS: readonly string[] = optionKeys<WasmSessionOptions>({
  denseStorage: true,
  packedTables: true,
  blockWords: true,
  threads: true,
  classifier: true,
});

/** A layer with the arrays of a packed residual-binary one (what .rabit models and quantizeModel give). */
function isPacked(layer: LinearLayer): layer is LinearLayer & {
  k: number;
  planes: Uint32Array;
  g: Float32Array;
  h: Float32Array;
} {
  const l = layer as unknown as Record<string, unknown>;
  return l.planes instanceof Uint32Array && l.g instanceof Float32Array && l.h instanceof Float32Array &&
    typeof l.k === "number";
}

/**
 * Runs a model (float or packed) with WebAssembly SIMD matmuls; same interface and results as CpuSession
 * (fp32, f32-table and int16-table kernels to float rounding or near it, int8 tables within their rounding).
 *
 * @example
 * ```ts
 * import { WasmSession } from "./session.ts";
 * import { loadLlama2c } from "../../io/llama2c.ts";
 * const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 * const session = await WasmSession.create({ config, params, quantized: new Map() }); // worker threads too
 * (await session.run([1], 0, { lastOnly: true })).length; // 512 logits
 * session.dispose(); // stops the workers
 * ```
 */
export class WasmSession implements InferenceSession {
  readonly backend = "wasm";
  readonly device: string;
  /** The model as the forward sees it: the source's parameters, wasm layers for every linear. */
  readonly model: LlamaModel;
  readonly #classifier: LinearLayer;
  #kernels?: WasmKernels;
  #cache: KvCache;

  /** A session on one thread, or on `kernels` (e.g. from WasmKernels.load). */
  constructor(
    model: LlamaModel,
    options: WasmSessionOptions = {},
    given?: WasmKernels,
  ) {
    checkOptionKeys("WasmSession", options, WASM_SESSION_OPTION_KEYS);
    const kernels = given ?? WasmKernels.create(); // after the check: a misspelt option compiles nothing
    const c = model.config;
    const quantized = new Map<string, LinearLayer>();
    let packed = 0;
    for (let l = 0; l < c.nLayers; l++) {
      for (const w of BLOCK_LINEARS) {
        const name = `layers.${l}.${w}`;
        const source = linearLayer(model, name);
        if (isPacked(source)) {
          packed++;
          quantized.set(
            name,
            kernels.packed(source, { tables: options.packedTables, blockWords: options.blockWords }, source),
          );
        } else if (source instanceof DenseLinear) {
          quantized.set(
            name,
            kernels.dense(source.w, source.out, source.in, options.denseStorage ?? "f32", source),
          );
        } else {
          quantized.set(name, source); // another kind of layer (e.g. a trainable one): its own forward
        }
      }
    }
    const classifier = options.classifier ?? (model.classifierStorage === "i8" ? "i8" : "f32");
    this.#classifier = classifier === "i8"
      ? kernels.int8Rows(classifierInt8Rows(model))
      : kernels.dense(classifierWeight(model), c.vocabSize, c.dim, classifier);
    this.model = { config: c, params: model.params, quantized };
    this.#kernels = kernels;
    this.#cache = createKvCache(model);
    const tables = options.packedTables ?? DEFAULT_PACKED_TABLES;
    const tableNames = { i8: "int8", i16: "int16", f32: "f32" } as const;
    this.device = `CPU (WebAssembly SIMD, ${kernels.threads} thread${kernels.threads > 1 ? "s" : ""}${
      packed ? `, packed layers with ${tableNames[tables]} lookup tables` : ""
    }${options.denseStorage === "f16" ? ", fp16 dense weights" : ""}${
      classifier === "f32" ? "" : `, ${classifier === "i8" ? "int8" : "fp16"} classifier`
    })`;
  }

  /**
   * A session with `options.threads` threads (default navigator.hardwareConcurrency) where available,
   * instantiated asynchronously (what a browser's main thread needs; the constructor compiles synchronously).
   */
  static async create(model: LlamaModel, options: WasmSessionOptions = {}): Promise<WasmSession> {
    checkOptionKeys("WasmSession.create", options, WASM_SESSION_OPTION_KEYS); // before any worker starts
    // Models whose every product is too small to split (e.g. stories260K) skip starting workers.
    const c = model.config;
    const largest = Math.max(c.vocabSize * c.dim, c.hiddenDim * c.dim, c.dim * c.dim);
    const threads = options.threads ??
      (largest < MIN_PARALLEL_WORK ? 1 : globalThis.navigator?.hardwareConcurrency ?? 1);
    const kernels = await WasmKernels.load({ threads });
    try {
      return new WasmSession(model, options, kernels);
    } catch (e) {
      kernels.dispose();
      throw e;
    }
  }

  /** Threads running the products. */
  get threads(): number {
    return this.#kernels?.threads ?? 0;
  }

  get config(): LlamaConfig {
    return this.model.config;
  }

  /** Bytes of this session's WebAssembly memory (weights, tables, scratch). */
  get memoryBytes(): number {
    return this.#kernels?.memoryBytes ?? 0;
  }

  run(tokens: ArrayLike<number>, pos0: number, options: RunOptions = {}): Promise<Float32Array> {
    if (!this.#kernels) return Promise.reject(new Error("WasmSession used after dispose"));
    try {
      const { logits } = forwardChunk(this.model, tokens, pos0, this.#cache, {
        lastLogitsOnly: options.lastOnly,
        classifier: this.#classifier,
      });
      return Promise.resolve(logits);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Stops the worker threads and drops the kernel instance (its memory goes with the last reference). */
  dispose(): void {
    this.#kernels?.dispose();
    this.#kernels = undefined;
    this.#cache = { k: [], v: [] };
  }
}
