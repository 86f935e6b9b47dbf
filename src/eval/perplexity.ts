// Perplexity by the protocol of METHOD.md §7 (GPTQ/QuIP#/QTIP tables): tokenize once without BOS/EOS,
// prepend one BOS, cut into non-overlapping windows of `context` tokens, drop the remainder; each window
// starts from an empty cache and predicts its tokens 1..context−1; ppl = exp(total NLL / predicted).

import type { InferenceSession } from "../backend/backend.ts";
import { BOS } from "../io/tokenizer.ts";
import { logProb } from "../model/ops.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

/** Options of {@link perplexity}. */
export interface PerplexityOptions {
  /** Window length in tokens; defaults to the model's seqLen. */
  context?: number;
  /** Evaluate at most this many windows (for quick checks); all by default. */
  maxWindows?: number;
  /** Called after each window with (windows done, windows total, that window's mean NLL in nats). */
  onWindow?: (done: number, total: number, windowNll: number) => void;
}

const PERPLEXITY_OPTION_KEYS = optionKeys<PerplexityOptions>({
  context: true,
  maxWindows: true,
  onWindow: true,
});

/** What {@link perplexity} measured. */
export interface PerplexityResult {
  /** exp(nll). */
  ppl: number;
  /** Mean negative log-likelihood per predicted token (nats). */
  nll: number;
  /** Tokens of the text including the one BOS. */
  tokens: number;
  /** Windows evaluated. */
  windows: number;
  /** Tokens per window. */
  context: number;
  /** Tokens predicted: windows × (context − 1). */
  predicted: number;
  /** Wall time of the forward passes. */
  seconds: number;
  /** Evaluated tokens (windows × context) per second. */
  tokensPerSecond: number;
}

/**
 * Token ids of a text for perplexity: one BOS, then the text's tokens.
 *
 * @example
 * ```ts
 * import { perplexityTokens } from "./perplexity.ts";
 * import { Tokenizer } from "../io/tokenizer.ts";
 * const tok = await Tokenizer.load("../shared/data/tok512.bin", 512);
 * perplexityTokens((t) => tok.encode(t), "Once upon a time"); // [1, …the text's ids]
 * ```
 */
export function perplexityTokens(encode: (text: string) => number[], text: string): number[] {
  if (text.length === 0) throw new RangeError("Evaluation text is empty: expected some text to score");
  return [BOS, ...encode(text)];
}

/**
 * Perplexity of `ids` (BOS already prepended) under the session's model: non-overlapping windows of
 * `context` tokens, each from an empty cache (the protocol at the top of this file).
 *
 * @example
 * ```ts
 * import { perplexity, perplexityTokens } from "./perplexity.ts";
 * import { CpuSession } from "../backend/cpu/session.ts";
 * import { openModel } from "../io/load_model.ts";
 * const { model, tokenizer } = await openModel("../shared/data/stories260K.bin", { requireTokenizer: true });
 * const text = (await Deno.readTextFile("../shared/data/tinystories_dev.txt")).slice(0, 4000);
 * const ids = perplexityTokens((t) => tokenizer!.encode(t), text);
 * const r = await perplexity(new CpuSession(model), ids, { context: 128, maxWindows: 2 });
 * r.windows; // 2
 * r.ppl; // ≈ 4.1: stories260K predicts TinyStories well
 * ```
 */
export async function perplexity(
  session: InferenceSession,
  ids: number[],
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  checkOptionKeys("perplexity", options, PERPLEXITY_OPTION_KEYS);
  const context = options.context ?? session.config.seqLen;
  if (!Number.isInteger(context) || context < 2 || context > session.config.seqLen) {
    throw new RangeError(
      `Context must be an integer in 2..${session.config.seqLen} (the model's seq_len), found ${context}`,
    );
  }
  let windows = Math.floor(ids.length / context);
  if (windows === 0) {
    throw new RangeError(
      `The text has ${ids.length} tokens, fewer than one window of ${context}: use a longer text or --context ${
        Math.max(2, ids.length)
      }`,
    );
  }
  if (options.maxWindows !== undefined) windows = Math.min(windows, options.maxWindows);
  const V = session.config.vocabSize;
  const start = performance.now();
  let total = 0;
  for (let w = 0; w < windows; w++) {
    const win = ids.slice(w * context, (w + 1) * context);
    const logits = await session.run(win, 0); // (context, V)
    let windowTotal = 0;
    for (let t = 0; t + 1 < context; t++) {
      windowTotal -= logProb(logits.subarray(t * V, (t + 1) * V), win[t + 1]);
    }
    total += windowTotal;
    options.onWindow?.(w + 1, windows, windowTotal / (context - 1));
  }
  const seconds = (performance.now() - start) / 1000;
  const predicted = windows * (context - 1);
  const nll = total / predicted;
  if (!Number.isFinite(nll)) {
    throw new RangeError(`Perplexity is not finite (mean NLL ${nll}): the model produced NaN or Inf`);
  }
  return {
    ppl: Math.exp(nll),
    nll,
    tokens: ids.length,
    windows,
    context,
    predicted,
    seconds,
    tokensPerSecond: (windows * context) / seconds,
  };
}
