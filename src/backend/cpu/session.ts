// The CPU reference backend: the plain TypeScript forward of src/model behind the session interface.

import type { InferenceSession, RunOptions } from "../backend.ts";
import { createKvCache, forwardChunk, type KvCache } from "../../model/forward.ts";
import type { LlamaModel } from "../../model/model.ts";
import type { LlamaConfig } from "../../model/config.ts";

/** Runs a model with the reference TypeScript forward. */
export class CpuSession implements InferenceSession {
  readonly backend = "cpu";
  readonly device = "CPU (TypeScript reference)";
  readonly model: LlamaModel;
  #cache: KvCache;

  constructor(model: LlamaModel) {
    this.model = model;
    this.#cache = createKvCache(model);
  }

  get config(): LlamaConfig {
    return this.model.config;
  }

  run(tokens: ArrayLike<number>, pos0: number, options: RunOptions = {}): Promise<Float32Array> {
    const { logits } = forwardChunk(this.model, tokens, pos0, this.#cache, {
      lastLogitsOnly: options.lastOnly,
    });
    return Promise.resolve(logits);
  }

  dispose(): void {}
}
