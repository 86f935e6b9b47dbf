// experiments/text_subset.ts: quantize's own split of a subset file trains on about S of the training part,
// from where --take says, never on the held-out tail; bad calls exit 2.

import assert from "node:assert/strict";
import { textSubset } from "../experiments/text_subset.ts";
import { splitHoldout } from "../src/train/data.ts";
import { runScript, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH } from "./_data.ts";

// 200 paragraphs of uneven length, each named by its index.
const PARAGRAPHS = Array.from({ length: 200 }, (_, i) => `Paragraph ${i} ${"word ".repeat(5 + (i % 7))}.`);
const TEXT = PARAGRAPHS.join("\n\n");
const TRAIN = splitHoldout(TEXT, 0.1).train;
const TRAIN_PARAGRAPHS = TRAIN.split("\n\n").length;

/** The indices of the paragraphs that `quantize --data OUT --holdout 0.1` trains on. */
const trainedIndices = (out: string) =>
  splitHoldout(out, 0.1).train.split("\n\n").map((p) => Number(p.split(" ")[1]));

Deno.test("textSubset: quantize's split of the file trains on about S of the training part, from where --take says", () => {
  for (const share of [0.1, 0.25, 0.45, 0.9]) {
    for (const take of ["start", "end", "spread"] as const) {
      const out = textSubset(TEXT, share, 0.1, take);
      const trained = trainedIndices(out);
      assert.ok(trained.every((i) => i < TRAIN_PARAGRAPHS), `${take} ${share}: inside the training part`);
      assert.equal(new Set(trained).size, trained.length, `${take} ${share}: no paragraph twice`);
      const chars = splitHoldout(out, 0.1).train.length;
      assert.ok(Math.abs(chars / TRAIN.length - share) < 0.03, `${take} ${share}: ${chars / TRAIN.length}`);
      const first = Math.min(...trained), last = Math.max(...trained);
      if (take === "start") assert.equal(first, 0);
      if (take === "end") {
        // Quantize's cut, by characters, may take a held-back paragraph or two (from just before) as well.
        const before = trained.filter((i) => i < TRAIN_PARAGRAPHS * (1 - share) - 2);
        assert.ok(before.length <= 2, `end ${share}: ${before}`);
      }
      if (take === "spread") {
        assert.ok(first < 20 && last > TRAIN_PARAGRAPHS - 25, `spread ${share}: ${first}..${last}`);
      }
    }
  }
  assert.equal(textSubset(TEXT, 0.45, 0.1), splitHoldout(TEXT, 0.55).train);
  assert.throws(() => textSubset(TEXT, 0, 0.1), /share must be in \(0, 0\.9\]/);
  assert.throws(() => textSubset(TEXT, 0.95, 0.1), /share must be in \(0, 0\.9\] \(room for the held-back/);
  assert.throws(() => textSubset(TEXT, 0.5, 1), /holdout must be in \[0, 1\), found 1/);
});

Deno.test("text_subset.ts writes the real text's subset; refuses bad calls with exit 2", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.dir}/subset.txt`;
  const args = [DEV_TEXT_PATH, out, "--share", "0.1125", "--take", "spread"];
  const ok = await runScript("experiments/text_subset.ts", args);
  assert.equal(ok.code, 0, ok.stderr);
  const whole = await Deno.readTextFile(DEV_TEXT_PATH);
  assert.equal(await Deno.readTextFile(out), textSubset(whole, 0.1125, 0.1, "spread"));
  const refused = [
    [[DEV_TEXT_PATH, out], /--share expects a number in \(0, 0\.9\], found ""/],
    [[DEV_TEXT_PATH, out, "--share", "0.95"], /--share expects a number in \(0, 0\.9\], found "0\.95"/],
    [[DEV_TEXT_PATH, out, "--share", "0.5", "--holdout", "1"], /--holdout expects a number in \[0, 1\)/],
    [[DEV_TEXT_PATH, out, "--share", "0.5", "--take", "middle"], /--take expects start, spread or end/],
    [[DEV_TEXT_PATH], /expected TEXT and OUT\.txt, found 1 arguments/],
    [["/nonexistent/t.txt", out, "--share", "0.5"], /cannot read \/nonexistent\/t\.txt/],
    [[DEV_TEXT_PATH, out, "--fraction", "0.5"], /Unknown option '--fraction'/],
  ] as const;
  for (const [badArgs, message] of refused) {
    const bad = await runScript("experiments/text_subset.ts", [...badArgs]);
    assert.equal(bad.code, 2, badArgs.join(" "));
    assert.match(bad.stderr, message);
    assert.match(bad.stderr, /Usage: deno run -A experiments\/text_subset\.ts/);
  }
});
