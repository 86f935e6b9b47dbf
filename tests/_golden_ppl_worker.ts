// Worker for tests/golden.test.ts: the perplexity of stories260K on the windows it is sent, with the CPU
// reference. The pinned perplexity takes ~5 min on one core, the longest test by far, so the test splits
// its windows between two of these (windows are independent: each starts from an empty cache).

import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity } from "../src/eval/perplexity.ts";
import { openModel } from "../src/io/load_model.ts";
import { MODEL_PATH } from "./_data.ts";

/** What the test sends: whole windows of token ids, and the window length. */
export interface GoldenPplRequest {
  ids: number[];
  context: number;
}

/** What the worker answers: perplexity()'s counts for those windows. */
export interface GoldenPplReply {
  nll: number;
  windows: number;
  predicted: number;
}

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<GoldenPplRequest>) => void) | null;
  postMessage(value: GoldenPplReply): void;
};
// The handler is set before any await: a message that arrives while the module is still loading would
// otherwise find no handler and be dropped (the test would wait forever).
const opening = openModel(MODEL_PATH);
scope.onmessage = async (e) => {
  const opened = await opening;
  const r = await perplexity(new CpuSession(opened.model), e.data.ids, { context: e.data.context });
  const reply: GoldenPplReply = { nll: r.nll, windows: r.windows, predicted: r.predicted };
  scope.postMessage(reply);
};
