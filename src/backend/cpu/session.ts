// The CPU reference backend: the plain TypeScript forward of src/model behind the session interface.

import type { InferenceSession, RunOptions } from "../backend.ts";
import { createKvCache, forwardChunk, type KvCache } from "../../model/forward.ts";
import type { LlamaModel } from "../../model/model.ts";
import type { LinearLayer } from "../../model/linear.ts";
import { classifierInt8Rows, Int8RowsLinear } from "../../quant/int8_rows.ts";
import type { LlamaConfig } from "../../model/config.ts";

/**
 * Runs a model (float or packed) with the reference TypeScript forward.
 *
 * @example
 * ```ts
 * import { CpuSession } from "./session.ts";
 * import { openModel } from "../../io/load_model.ts";
 * import { argmax } from "../../eval/sampling.ts";
 * const { model } = await openModel("../shared/data/stories260K.bin");
 * const session = new CpuSession(model);
 * const logits = await session.run([1, 403], 0, { lastOnly: true }); // (512) after BOS, 403
 * argmax(logits); // 407
 * session.dispose();
 * ```
 */
export class CpuSession implements InferenceSession {
  /** Always "cpu". */
  readonly backend = "cpu";
  /** Always "CPU (TypeScript reference)". */
  readonly device = "CPU (TypeScript reference)";
  /** The model it runs (not copied). */
  readonly model: LlamaModel;
  #cache: KvCache;
  /** The int8 classifier when the model stores it so (model.classifierStorage "i8"), else the float one. */
  readonly #classifier?: LinearLayer;

  /** A session with an empty KV cache of the model's seqLen. */
  constructor(model: LlamaModel) {
    this.model = model;
    this.#cache = createKvCache(model);
    if (model.classifierStorage === "i8") this.#classifier = new Int8RowsLinear(classifierInt8Rows(model));
  }

  /** The model's hyper-parameters. */
  get config(): LlamaConfig {
    return this.model.config;
  }

  /** Logits of `tokens` at positions pos0…, see {@link InferenceSession.run}. */
  run(tokens: ArrayLike<number>, pos0: number, options: RunOptions = {}): Promise<Float32Array> {
    const { logits } = forwardChunk(this.model, tokens, pos0, this.#cache, {
      lastLogitsOnly: options.lastOnly,
      classifier: this.#classifier,
    });
    return Promise.resolve(logits);
  }

  /** Nothing to free: the cache is garbage-collected. */
  dispose(): void {}
}
