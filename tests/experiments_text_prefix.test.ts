// experiments/text_prefix.ts: the prefix is S of the training part, cut where quantize cuts, never reaching
// the held-out tail; quantize's own split of the prefix trains on its first (1 − P); bad calls exit 2.

import assert from "node:assert/strict";
import { textPrefix } from "../experiments/text_prefix.ts";
import { splitHoldout } from "../src/train/data.ts";
import { runScript, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH } from "./_data.ts";

const PARAGRAPHS = Array.from({ length: 40 }, (_, i) => `Paragraph ${i} ${"word ".repeat(5 + (i % 7))}.`);
const TEXT = PARAGRAPHS.join("\n\n");

Deno.test("textPrefix: whole paragraphs, about S of the training part, inside it", () => {
  const { train } = splitHoldout(TEXT, 0.1);
  for (const share of [0.05, 0.25, 0.5, 1]) {
    const prefix = textPrefix(TEXT, share, 0.1);
    assert.ok(train.startsWith(prefix), `share ${share}: a prefix of the training part`);
    assert.ok(prefix.endsWith("."), `share ${share}: ends on a whole paragraph`);
    // Cut at the first paragraph end at or after S of the training part's characters (its length ± one).
    assert.ok(prefix.length >= Math.floor(TEXT.length * 0.9 * share), `share ${share}: ${prefix.length}`);
    assert.ok(prefix.length <= TEXT.length * 0.9 * share + 40, `share ${share}: ${prefix.length}`);
  }
  assert.equal(textPrefix(TEXT, 1, 0.1), train);
  assert.equal(textPrefix(TEXT, 1, 0), TEXT);
  assert.throws(() => textPrefix(TEXT, 0, 0.1), /share must be in \(0, 1\], found 0/);
  assert.throws(() => textPrefix(TEXT, 0.5, 1), /holdout must be in \[0, 1\), found 1/);
});

Deno.test("text_prefix.ts writes the real text's prefix; refuses bad calls with exit 2", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.dir}/prefix.txt`;
  const ok = await runScript("experiments/text_prefix.ts", [DEV_TEXT_PATH, out, "--share", "0.125"]);
  assert.equal(ok.code, 0, ok.stderr);
  const whole = await Deno.readTextFile(DEV_TEXT_PATH);
  assert.equal(await Deno.readTextFile(out), textPrefix(whole, 0.125, 0.1));
  const refused = [
    [[DEV_TEXT_PATH, out], /--share expects a number in \(0, 1\], found ""/],
    [[DEV_TEXT_PATH, out, "--share", "1.5"], /--share expects a number in \(0, 1\], found "1\.5"/],
    [[DEV_TEXT_PATH, out, "--share", "0.5", "--holdout", "1"], /--holdout expects a number in \[0, 1\)/],
    [[DEV_TEXT_PATH], /expected TEXT and OUT\.txt, found 1 arguments/],
    [["/nonexistent/t.txt", out, "--share", "0.5"], /cannot read \/nonexistent\/t\.txt/],
    [[DEV_TEXT_PATH, out, "--fraction", "0.5"], /Unknown option '--fraction'/],
  ] as const;
  for (const [args, message] of refused) {
    const bad = await runScript("experiments/text_prefix.ts", [...args]);
    assert.equal(bad.code, 2, args.join(" "));
    assert.match(bad.stderr, message);
    assert.match(bad.stderr, /Usage: deno run -A experiments\/text_prefix\.ts/);
  }
});
