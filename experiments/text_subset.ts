// Writes part of a text file's training part, for training on less text than it holds (the data-size curve
// of docs/evidence.md, "How much the text's size and place matter"), in whole paragraphs (blank-line
// separated, as quantize cuts):
//
//   deno run -A experiments/text_subset.ts TEXT OUT.txt --share S [--take start|spread|end] [--holdout 0.1]
//
// `quantize --data OUT.txt --holdout P` (P the same; 0.1 is quantize's default) then trains on about S of the
// part of TEXT that `quantize --data TEXT --holdout P` trains on, and never on TEXT's held-out tail, the test
// text. OUT is the kept paragraphs followed by unkept ones from the same training part, P of OUT's
// characters, which quantize holds back (unseen text for fit_gap.ts's held-out windows):
//   start   the first S of the training part, then the paragraphs after it (OUT = splitHoldout(TEXT, 1 − S)
//           .train, the first S of TEXT: its first 1 − P is S of the training part);
//   end     the last S of the training part, then paragraphs from just before it;
//   spread  S of its paragraphs spread evenly over it (paragraph i kept when ⌊(i + 1)·S⌋ > ⌊i·S⌋), then
//           unkept paragraphs spread evenly too.
// Only `spread` changes the size alone: the text is not uniform along the file (in tinystories_dev.txt the
// full-precision model's perplexity is about 4 over the first 70 % and 6.5 and 7.4 over the last two tenths,
// where the test tail is).

import { parseArgs } from "node:util";
import { writeFileAtomic } from "../src/io/container.ts";
import { splitHoldout } from "../src/train/data.ts";
import { parseOrExit, usageExit } from "./_run.ts";

const USAGE =
  "Usage: deno run -A experiments/text_subset.ts TEXT OUT.txt --share S [--take start|spread|end] [--holdout 0.1]";
const TAKES = ["start", "spread", "end"] as const;
export type Take = typeof TAKES[number];

/** Paragraphs of `from` (in order) until their characters reach `chars`. */
function takeChars(from: string[], chars: number): string[] {
  const out: string[] = [];
  let total = 0;
  for (const p of from) {
    if (total >= chars) break;
    out.push(p);
    total += p.length + 2;
  }
  return out;
}

/** Whether item i is among `share` of a list's items spread evenly: ⌊(i + 1)·share⌋ > ⌊i·share⌋. */
const spreadKeeps = (i: number, share: number) => Math.floor((i + 1) * share) > Math.floor(i * share);

/**
 * The subset file for `share` (0 < share ≤ 1 − holdout) of the part of `text` that a `holdout` split
 * trains on: the kept paragraphs, then about `holdout` of the file in unkept ones (see the header).
 */
export function textSubset(text: string, share: number, holdout: number, take: Take = "start"): string {
  if (!(holdout >= 0 && holdout < 1)) throw new RangeError(`holdout must be in [0, 1), found ${holdout}`);
  if (!(share > 0 && share <= 1 - holdout)) {
    throw new RangeError(
      `share must be in (0, ${1 - holdout}] (room for the held-back part), found ${share}`,
    );
  }
  if (take === "start") return splitHoldout(text, 1 - share).train;
  const train = splitHoldout(text, holdout).train, paragraphs = train.split(/\n\n+/);
  const keptChars = share * train.length, heldChars = keptChars * holdout / (1 - holdout);
  let kept: string[], held: string[];
  if (take === "end") {
    kept = takeChars([...paragraphs].reverse(), keptChars).reverse();
    held = takeChars(paragraphs.slice(0, paragraphs.length - kept.length).reverse(), heldChars).reverse();
  } else {
    kept = paragraphs.filter((_, i) => spreadKeeps(i, share));
    const rest = paragraphs.filter((_, i) => !spreadKeeps(i, share));
    const restShare = Math.min(1, heldChars / Math.max(1, train.length - keptChars));
    held = takeChars(rest.filter((_, i) => spreadKeeps(i, restShare)), heldChars);
  }
  return [...kept, ...held].join("\n\n");
}

if (import.meta.main) {
  const fail = (message: string): never => usageExit("text_subset", USAGE, message);
  const { values, positionals } = parseOrExit("text_subset", USAGE, () =>
    parseArgs({
      args: Deno.args,
      options: {
        share: { type: "string" },
        take: { type: "string", default: "start" },
        holdout: { type: "string", default: "0.1" },
      },
      allowPositionals: true,
    }));
  if (positionals.length !== 2) fail(`expected TEXT and OUT.txt, found ${positionals.length} arguments`);
  const share = Number(values.share), holdout = Number(values.holdout);
  if (!(holdout >= 0 && holdout < 1)) fail(`--holdout expects a number in [0, 1), found "${values.holdout}"`);
  if (values.share === undefined || !(share > 0 && share <= 1 - holdout)) {
    fail(`--share expects a number in (0, ${1 - holdout}], found "${values.share ?? ""}"`);
  }
  const take = values.take as Take;
  if (!TAKES.includes(take)) fail(`--take expects start, spread or end, found "${values.take}"`);
  const [textPath, outPath] = positionals;
  const text = await Deno.readTextFile(textPath).catch((e: Error) =>
    fail(`cannot read ${textPath}: ${e.message}`)
  );
  const subset = textSubset(text, share, holdout, take);
  await writeFileAtomic(outPath, new TextEncoder().encode(subset));
  console.error(`text_subset: ${outPath}: ${subset.length} of ${text.length} characters (${take})`);
}
