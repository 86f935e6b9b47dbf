// Text sampled from the full-precision teacher as an extra training source (data-free distillation as in
// LLM-QAT; METHOD.md §4 allows it). The teacher writes stories from BOS at temperature 1; a story ends
// where the teacher emits BOS or EOS (or the context fills), and the next one starts from BOS. The
// stream of stories is then cut into windows like any text, so the student is distilled on the
// distribution it is judged on without ever reading the held-out text.
//
// Dimension legend: V vocabulary, S window length.

import { BOS, EOS } from "../io/tokenizer.ts";
import { createKvCache, forwardChunk } from "../model/forward.ts";
import type { LlamaModel } from "../model/model.ts";
import { Sampler } from "../eval/sampling.ts";

/** Options of {@link sampleTeacherTokens}. */
export interface TeacherTextOptions {
  /** Tokens to produce in all (BOS separators included). */
  tokens: number;
  /** Seed of the sampler (the same seed gives the same text). */
  seed: number;
  /** Sampling temperature (default 1: the teacher's own distribution). */
  temperature?: number;
  /** Called after each story with the tokens produced so far. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Samples a token stream of `tokens` ids from `teacher`: stories separated by BOS, the first starting with
 * BOS. Runs the CPU reference forward one token at a time with a KV cache.
 *
 * @example
 * ```ts
 * import { openModel } from "../io/load_model.ts";
 * import { sampleTeacherTokens } from "./teacher_text.ts";
 * const { model } = await openModel("../shared/data/stories260K.bin");
 * sampleTeacherTokens(model, { tokens: 64, seed: 1 }).length; // 64
 * ```
 */
export function sampleTeacherTokens(teacher: LlamaModel, options: TeacherTextOptions): Int32Array {
  const { tokens, seed } = options;
  if (!(Number.isInteger(tokens) && tokens >= 1)) {
    throw new RangeError(`sampleTeacherTokens: expected tokens ≥ 1, found ${tokens}`);
  }
  if (teacher.quantized.size > 0) {
    throw new RangeError("sampleTeacherTokens: expected the full-precision teacher, found a quantized model");
  }
  const sampler = new Sampler({ temperature: options.temperature ?? 1, seed });
  const seqLen = teacher.config.seqLen;
  const out = new Int32Array(tokens);
  const cache = createKvCache(teacher, seqLen);
  let n = 0;
  while (n < tokens) {
    // One story: BOS, then tokens until BOS/EOS, the context's end, or the budget.
    out[n++] = BOS;
    let pos = 0;
    let next = BOS;
    while (n < tokens && pos < seqLen - 1) {
      const { logits } = forwardChunk(teacher, [next], pos, cache, { lastLogitsOnly: true });
      pos++;
      next = sampler.sample(logits);
      if (next === BOS || next === EOS) break;
      out[n++] = next;
    }
    options.onProgress?.(n, tokens);
  }
  return out;
}
