// Text generation: prefill the prompt in one chunk, then decode one token at a time, streaming text.

import type { InferenceSession } from "../backend/backend.ts";
import { BOS, EOS, type Tokenizer } from "../io/tokenizer.ts";
import { Sampler, type SamplingOptions } from "./sampling.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

/** Options of {@link generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** Text to continue; empty starts from BOS alone. */
  prompt?: string;
  /** New tokens to produce at most (stops earlier at BOS/EOS or the model's seq_len). */
  steps?: number;
  /** Called with each new token id and its text as soon as it is known. */
  onToken?: (id: number, text: string) => void;
}

const GENERATE_OPTION_KEYS = optionKeys<GenerateOptions>({
  prompt: true,
  steps: true,
  onToken: true,
  temperature: true,
  topP: true,
  seed: true,
});

/** What {@link generate} produced. */
export interface GenerateResult {
  /** Prompt ids (BOS first) followed by the generated ids. */
  ids: number[];
  /** Length of the prompt in tokens, BOS included. */
  promptTokens: number;
  /** The new ids only. */
  generated: number[];
  /** Text of the new ids. */
  text: string;
  /** Seconds for the prompt prefill. */
  prefillSeconds: number;
  /** Seconds for the decode steps. */
  decodeSeconds: number;
  /** Generated tokens per second over the decode steps. */
  tokensPerSecond: number;
}

/**
 * Generates text from a prompt with the given session and tokenizer: the prompt in one chunk, then one
 * token per step until `steps` tokens, BOS/EOS, or the model's seq_len.
 *
 * @example
 * ```ts
 * import { generate } from "./generate.ts";
 * import { CpuSession } from "../backend/cpu/session.ts";
 * import { openModel } from "../io/load_model.ts";
 * const { model, tokenizer } = await openModel("../shared/data/stories260K.bin", { requireTokenizer: true });
 * const r = await generate(new CpuSession(model), tokenizer!, { prompt: "Once upon a time", steps: 12 });
 * r.generated.length; // 12 (greedy: temperature 0 by default)
 * console.log(`Once upon a time${r.text}`);
 * ```
 */
export async function generate(
  session: InferenceSession,
  tokenizer: Tokenizer,
  options: GenerateOptions = {},
): Promise<GenerateResult> {
  checkOptionKeys("generate", options, GENERATE_OPTION_KEYS);
  const steps = options.steps ?? 256;
  if (!Number.isInteger(steps) || steps < 0) {
    throw new RangeError(`steps must be an integer ≥ 0, found ${steps}`);
  }
  const prompt = [BOS, ...tokenizer.encode(options.prompt ?? "")];
  const seqLen = session.config.seqLen;
  if (prompt.length >= seqLen) {
    throw new RangeError(
      `The prompt has ${prompt.length} tokens; the model's seq_len is ${seqLen}: shorten it`,
    );
  }
  const sampler = new Sampler({ temperature: options.temperature, topP: options.topP, seed: options.seed });
  const decode = tokenizer.decoder();
  for (const id of prompt) decode(id); // the streamed text starts after the prompt
  const t0 = performance.now();
  let logits = await session.run(prompt, 0, { lastOnly: true });
  const t1 = performance.now();
  const generated: number[] = [];
  let text = "";
  let pos = prompt.length;
  while (generated.length < steps) {
    const next = sampler.sample(logits);
    if (next === BOS || next === EOS) break;
    generated.push(next);
    const piece = decode(next);
    text += piece;
    options.onToken?.(next, piece);
    if (pos >= seqLen || generated.length >= steps) break;
    logits = await session.run([next], pos, { lastOnly: true });
    pos++;
  }
  const t2 = performance.now();
  const decodeSeconds = (t2 - t1) / 1000;
  return {
    ids: [...prompt, ...generated],
    promptTokens: prompt.length,
    generated,
    text,
    prefillSeconds: (t1 - t0) / 1000,
    decodeSeconds,
    tokensPerSecond: generated.length / Math.max(decodeSeconds, 1e-9),
  };
}
