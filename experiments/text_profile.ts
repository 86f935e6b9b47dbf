// How hard a text is along its length: a model's perplexity over each of --parts consecutive stretches of the
// text's evaluation windows (eval's windows: BOS first, the model's context, the remainder dropped). A
// training text whose difficulty drifts along the file makes where a subset is taken from matter as much as
// its size (docs/evidence.md, "How much the text's size and place matter"): in tinystories_dev.txt the
// full-precision stories260K scores about 4 over the first seven tenths and 6.5 and 7.4 over the last two.
//
//   deno run -A experiments/text_profile.ts TEXT [--model M] [--parts 10] [--json]

import { parseArgs } from "node:util";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { openModel } from "../src/io/load_model.ts";
import { DATA, parseOrExit, usageExit } from "./_run.ts";

const USAGE = "Usage: deno run -A experiments/text_profile.ts TEXT [--model M] [--parts 10] [--json]";

/** Perplexity of each of `parts` consecutive, near-equal runs of windows, from each window's mean NLL. */
export function partPerplexities(windowNlls: number[], parts: number): number[] {
  if (!(Number.isInteger(parts) && parts >= 1 && parts <= windowNlls.length)) {
    throw new RangeError(
      `parts must be an integer from 1 to the ${windowNlls.length} windows, found ${parts}`,
    );
  }
  return Array.from({ length: parts }, (_, p) => {
    const from = Math.floor(p * windowNlls.length / parts),
      to = Math.floor((p + 1) * windowNlls.length / parts);
    const part = windowNlls.slice(from, to);
    return Math.exp(part.reduce((a, b) => a + b, 0) / part.length);
  });
}

if (import.meta.main) {
  const fail = (message: string): never => usageExit("text_profile", USAGE, message);
  const { values, positionals } = parseOrExit("text_profile", USAGE, () =>
    parseArgs({
      args: Deno.args,
      options: {
        model: { type: "string", default: `${DATA}/stories260K.bin` },
        parts: { type: "string", default: "10" },
        json: { type: "boolean", default: false },
      },
      allowPositionals: true,
    }));
  if (positionals.length !== 1) fail(`expected one TEXT, found ${positionals.length} arguments`);
  const parts = Number(values.parts);
  if (!Number.isInteger(parts) || parts < 1) fail(`--parts expects an integer ≥ 1, found "${values.parts}"`);
  const text = await Deno.readTextFile(positionals[0])
    .catch((e: Error) => fail(`cannot read ${positionals[0]}: ${e.message}`));
  const { model, tokenizer } = await openModel(values.model!, { requireTokenizer: true });
  const ids = perplexityTokens((t) => tokenizer!.encode(t), text);
  const nlls: number[] = [];
  await perplexity(new CpuSession(model), ids, { onWindow: (_done, _total, nll) => nlls.push(nll) });
  if (parts > nlls.length) fail(`--parts ${parts} is more than the text's ${nlls.length} windows`);
  const ppl = partPerplexities(nlls, parts);
  console.error(
    `text_profile: ${nlls.length} windows in ${parts} parts: ${ppl.map((p) => p.toFixed(2)).join(" ")}`,
  );
  if (values.json) {
    console.log(
      JSON.stringify({ text: positionals[0], model: values.model, windows: nlls.length, parts: ppl }),
    );
  }
}
