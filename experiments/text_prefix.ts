// Writes the start of a text file, for training on less text than it holds (the data-size curve of
// docs/evidence.md, "How much text two sign planes hold"): the first --share of the part that
// `quantize --holdout P` trains on, cut at a paragraph boundary as quantize cuts its held-out part.
//
//   deno run -A experiments/text_prefix.ts TEXT OUT.txt --share S [--holdout 0.1]
//
// OUT is the first (1 − P)·S of TEXT (splitHoldout(TEXT, 1 − (1 − P)·S).train): S of TEXT's training part.
// `quantize --data OUT.txt` then holds back OUT's own last P as usual, so it trains on the first (1 − P)·S
// of the training part, and OUT's last P is unseen text from the same stretch (fit_gap.ts's held-out
// windows). A prefix never reaches TEXT's held-out tail, the test text.

import { parseArgs } from "node:util";
import { splitHoldout } from "../src/train/data.ts";
import { parseOrExit, usageExit } from "./_run.ts";

const USAGE = "Usage: deno run -A experiments/text_prefix.ts TEXT OUT.txt --share S [--holdout 0.1]";

/** The first `share` (0 < share ≤ 1) of the part of `text` that a `holdout` split trains on. */
export function textPrefix(text: string, share: number, holdout: number): string {
  if (!(share > 0 && share <= 1)) throw new RangeError(`share must be in (0, 1], found ${share}`);
  if (!(holdout >= 0 && holdout < 1)) throw new RangeError(`holdout must be in [0, 1), found ${holdout}`);
  return splitHoldout(text, 1 - (1 - holdout) * share).train;
}

if (import.meta.main) {
  const fail = (message: string): never => usageExit("text_prefix", USAGE, message);
  const { values, positionals } = parseOrExit("text_prefix", USAGE, () =>
    parseArgs({
      args: Deno.args,
      options: { share: { type: "string" }, holdout: { type: "string", default: "0.1" } },
      allowPositionals: true,
    }));
  if (positionals.length !== 2) fail(`expected TEXT and OUT.txt, found ${positionals.length} arguments`);
  const share = Number(values.share), holdout = Number(values.holdout);
  if (values.share === undefined || !(share > 0 && share <= 1)) {
    fail(`--share expects a number in (0, 1], found "${values.share ?? ""}"`);
  }
  if (!(holdout >= 0 && holdout < 1)) fail(`--holdout expects a number in [0, 1), found "${values.holdout}"`);
  const [textPath, outPath] = positionals;
  let text: string;
  try {
    text = await Deno.readTextFile(textPath);
  } catch (e) {
    fail(`cannot read ${textPath}: ${(e as Error).message}`);
  }
  const prefix = textPrefix(text!, share, holdout);
  await Deno.writeTextFile(`${outPath}.tmp`, prefix);
  await Deno.rename(`${outPath}.tmp`, outPath);
  console.error(`text_prefix: ${outPath}: ${prefix.length} of ${text!.length} characters`);
}
