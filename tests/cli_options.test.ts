// Options that would change nothing, or that name a value the run cannot use, are usage errors (exit 2)
// with one line that says how to fix the call, never silently ignored or clamped.

import assert from "node:assert/strict";
import { parseCommand, UsageError } from "../src/cli/args.ts";
import { runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH } from "./_data.ts";

Deno.test("parseCommand refuses an option given twice, but not a multiple one or --help", () => {
  const specs = {
    text: { type: "string" },
    data: { type: "string", multiple: true },
    json: { type: "boolean" },
  } as const;
  assert.throws(
    () => parseCommand("eval", ["--text", "a", "--text=b"], specs),
    (e: Error) =>
      e instanceof UsageError && e.message === 'eval: --text given twice ("a", "b"); give it once',
  );
  assert.throws(
    () => parseCommand("eval", ["--json", "--text", "a", "--json"], specs),
    (e: Error) => e instanceof UsageError && e.message === "eval: --json given twice; give it once",
  );
  const ok = parseCommand("quantize", ["--data", "a", "--data", "b", "-h", "--help"], specs);
  assert.deepEqual(ok.values.data, ["a", "b"]);
  assert.equal(ok.values.help, true);
});

Deno.test("eval, inspect and generate refuse options the run would ignore or clamp, with one line", async () => {
  await using tmp = await tempDir();
  const packed = `${tmp.dir}/p.rabit`;
  const q = await runCli(["quantize", "--method", "ptq", "--calib-tokens", "256", "--out", packed]);
  assert.equal(q.code, 0, q.stderr);
  const cases: [string[], RegExp][] = [
    [
      ["eval", "--text", "/nonexistent-a.txt", "--text", DEV_TEXT_PATH],
      /eval: --text given twice \("\/nonexistent-a\.txt", ".*"\); give it once/,
    ],
    [["quantize", "--out", `${tmp.dir}/x.rabit`, "--lr", "1e-3", "--lr", "2e-3"], /--lr given twice/],
    // The backend is checked before the model loads: a missing model does not hide the typo.
    [
      ["eval", "--model", "/nonexistent.bin", "--text", DEV_TEXT_PATH, "--backend", "cuda"],
      /--backend must be one of/,
    ],
    [
      ["eval", "--text", DEV_TEXT_PATH, "--context", "9999"],
      /eval: --context must be from 2 to 512 \(the model's seq_len\), found 9999/,
    ],
    [
      ["eval", "--model", packed, "--text", DEV_TEXT_PATH, "--teacher", MODEL_PATH, "--diagnose"],
      /--teacher M already runs the diagnostics .*; drop --diagnose/,
    ],
    [
      [
        "eval",
        "--model",
        packed,
        "--text",
        DEV_TEXT_PATH,
        "--diagnose",
        "--max-windows",
        "1",
        "--diag-tokens",
        "3000",
      ],
      /--diag-tokens 3000 is more than the 512 tokens this run scores \(1 window\); lower --diag-tokens or raise --max-windows/,
    ],
    [
      ["inspect", packed, "--diagnose", "--text", DEV_TEXT_PATH, "--tokens", "40", "--context", "256"],
      /--context 256 is longer than --tokens 40, so no window of it fits; lower --context or raise --tokens/,
    ],
    [
      ["inspect", packed, "--diagnose", "--text", DEV_TEXT_PATH, "--context", "600"],
      /inspect: --context must be from 1 to 512 \(the model's seq_len\), found 600/,
    ],
    [
      ["generate", "--temperature", "1", "--seed", "4294967296"],
      /--seed must be an integer from 0 to 4294967295/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("note: "));
    assert.equal(lines.length, 1, `one line for ${args.join(" ")}: ${r.stderr}`);
    assert.match(lines[0], pattern, args.join(" "));
  }
  assert.deepEqual([...Deno.readDirSync(tmp.dir)].map((e) => e.name), ["p.rabit"]);
});
