// experiments/text_profile.ts: parts' perplexities from window NLLs, and the script's single part is eval's
// perplexity of the whole text; bad calls exit 2.

import assert from "node:assert/strict";
import { partPerplexities } from "../experiments/text_profile.ts";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { openModel } from "../src/io/load_model.ts";
import { runScript, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH } from "./_data.ts";

Deno.test("partPerplexities: each part's windows averaged in log space; parts in range", () => {
  const nlls = [Math.log(2), Math.log(2), Math.log(4), Math.log(4), Math.log(8)];
  const near = (a: number[], b: number[]) => a.every((x, i) => Math.abs(x - b[i]) < 1e-12);
  assert.ok(near(partPerplexities(nlls, 1), [Math.exp(Math.log(2 * 2 * 4 * 4 * 8) / 5)]));
  assert.ok(near(partPerplexities(nlls, 2), [2, Math.exp(Math.log(4 * 4 * 8) / 3)]));
  assert.ok(near(partPerplexities(nlls, 5), [2, 2, 4, 4, 8]));
  assert.throws(() => partPerplexities(nlls, 0), /parts must be an integer from 1 to the 5 windows, found 0/);
  assert.throws(() => partPerplexities(nlls, 6), /found 6/);
});

Deno.test("text_profile.ts: one part is eval's perplexity of the text; bad calls exit 2", async () => {
  await using tmp = await tempDir();
  const text = `${tmp.dir}/short.txt`;
  await Deno.writeTextFile(text, (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 5000));
  const ok = await runScript("experiments/text_profile.ts", [text, "--parts", "1", "--json"]);
  assert.equal(ok.code, 0, ok.stderr);
  const report = JSON.parse(ok.stdout.trim().split("\n").at(-1)!);
  const { model, tokenizer } = await openModel(MODEL_PATH, { requireTokenizer: true });
  const ids = perplexityTokens((t) => tokenizer!.encode(t), await Deno.readTextFile(text));
  const whole = await perplexity(new CpuSession(model), ids, {});
  assert.ok(report.windows >= 2, `${report.windows} windows`);
  assert.ok(Math.abs(report.parts[0] - whole.ppl) < 1e-6 * whole.ppl, `${report.parts[0]} vs ${whole.ppl}`);
  const refused = [
    [[], /expected one TEXT, found 0 arguments/],
    [[text, "--parts", "0"], /--parts expects an integer ≥ 1, found "0"/],
    [[text, "--parts", "99"], /--parts 99 is more than the text's \d+ windows/],
    [["/nonexistent/t.txt"], /cannot read \/nonexistent\/t\.txt/],
    [[text, "--part", "2"], /Unknown option '--part'/],
  ] as const;
  for (const [args, message] of refused) {
    const bad = await runScript("experiments/text_profile.ts", [...args]);
    assert.equal(bad.code, 2, args.join(" "));
    assert.match(bad.stderr, message);
    assert.match(bad.stderr, /Usage: deno run -A experiments\/text_profile\.ts/);
  }
});
