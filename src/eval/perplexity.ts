// Perplexity by the protocol of METHOD.md §7 (GPTQ/QuIP#/QTIP tables): tokenize once without BOS/EOS,
// prepend one BOS, cut into non-overlapping windows of `context` tokens, drop the remainder; each window
// starts from an empty cache and predicts its tokens 1..context−1; ppl = exp(total NLL / predicted).

import type { InferenceSession } from "../backend/backend.ts";
import { BOS } from "../io/tokenizer.ts";
import { logProb } from "../model/ops.ts";

/** Options of {@link perplexity}. */
export interface PerplexityOptions {
  /** Window length in tokens; defaults to the model's seqLen. */
  context?: number;
  /** Evaluate at most this many windows (for quick checks); all by default. */
  maxWindows?: number;
  /** Called after each window with (windows done, windows total). */
  onWindow?: (done: number, total: number) => void;
}

/** What {@link perplexity} measured. */
export interface PerplexityResult {
  ppl: number;
  /** Mean negative log-likelihood per predicted token (nats). */
  nll: number;
  /** Tokens of the text including the one BOS. */
  tokens: number;
  windows: number;
  context: number;
  /** Tokens predicted: windows × (context − 1). */
  predicted: number;
  seconds: number;
  /** Evaluated tokens (windows × context) per second. */
  tokensPerSecond: number;
}

/** Token ids of a text for perplexity: one BOS, then the text's tokens. */
export function perplexityTokens(encode: (text: string) => number[], text: string): number[] {
  if (text.length === 0) throw new RangeError("Evaluation text is empty: expected some text to score");
  return [BOS, ...encode(text)];
}

/** Perplexity of `ids` (BOS already prepended) under the session's model. */
export async function perplexity(
  session: InferenceSession,
  ids: number[],
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
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
    for (let t = 0; t + 1 < context; t++) total -= logProb(logits.subarray(t * V, (t + 1) * V), win[t + 1]);
    options.onWindow?.(w + 1, windows);
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
