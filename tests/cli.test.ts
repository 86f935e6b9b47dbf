// The CLI as a user meets it: help on every command, --json contracts, and bad input.

import assert from "node:assert/strict";
import { join } from "node:path";
import { writeRabit } from "../src/io/rabit_format.ts";
import { packedSafetensors } from "../src/io/rabit_safetensors.ts";
import { quantizeModel } from "../src/quant/quantize_model.ts";
import { runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH, randomModel, tinyConfig, TOKENIZER_PATH } from "./_data.ts";

for (const cmd of ["quantize", "eval", "generate", "inspect", "bench", "demo"]) {
  Deno.test(`${cmd} --help prints usage and exits 0`, async () => {
    const r = await runCli([cmd, "--help"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Usage: rabit ${cmd}`));
  });
}

Deno.test("no command prints the command list and exits 2; unknown command exits 2", async () => {
  const none = await runCli([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /Commands:/);
  const bad = await runCli(["frobnicate"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command "frobnicate"/);
});

Deno.test("eval --json: last stdout line is one object with the protocol fields", async () => {
  const r = await runCli([
    "eval",
    "--text",
    DEV_TEXT_PATH,
    "--context",
    "128",
    "--max-windows",
    "4",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const obj = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  for (const key of ["ppl", "nll", "tokens", "windows", "context"]) assert.ok(key in obj, key);
  assert.equal(obj.windows, 4);
  assert.equal(obj.context, 128);
  assert.ok(obj.ppl > 1 && obj.ppl < 20);
});

Deno.test("generate streams the golden greedy text; --json reports ids", async () => {
  const r = await runCli(["generate", "--steps", "12", "--model", MODEL_PATH, "--tokenizer", TOKENIZER_PATH]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Once upon a time, there was a little girl/);
  const j = await runCli(["generate", "--steps", "4", "--prompt", "Once upon a time", "--json"]);
  assert.deepEqual(JSON.parse(j.stdout.trim().split("\n").at(-1)!).ids, [
    1,
    403,
    407,
    261,
    378,
    432,
    383,
    286,
    261,
  ]);
});

Deno.test("sampling with a seed is reproducible", async () => {
  const args = ["generate", "--steps", "20", "--temperature", "1", "--top-p", "0.9", "--seed", "5", "--json"];
  const a = JSON.parse((await runCli(args)).stdout.trim().split("\n").at(-1)!);
  const b = JSON.parse((await runCli(args)).stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(a.ids, b.ids);
});

Deno.test("inspect reports format, config and parameter count", async () => {
  const r = await runCli(["inspect", MODEL_PATH, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const obj = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.equal(obj.format, "llama2c-legacy");
  assert.equal(obj.parameters, 260032);
  assert.equal(obj.config.nLayers, 5);
});

Deno.test("bad input: a one-line reason and a non-zero exit", async () => {
  await using tmp = await tempDir();
  const good = await Deno.readFile(MODEL_PATH);
  const truncated = `${tmp.dir}/truncated.bin`;
  await Deno.writeFile(truncated, good.subarray(0, 5000));
  const badVersion = `${tmp.dir}/badversion.bin`;
  const v = new Uint8Array(300);
  new DataView(v.buffer).setUint32(0, 0x616b3432, true);
  new DataView(v.buffer).setInt32(4, 9, true);
  await Deno.writeFile(badVersion, v);
  const empty = `${tmp.dir}/empty.txt`;
  await Deno.writeTextFile(empty, "");
  const short = `${tmp.dir}/short.txt`;
  await Deno.writeTextFile(short, "Once upon a time there was a cat.");
  const otherTok = `${tmp.dir}/tok.bin`;
  await Deno.writeFile(otherTok, firstTokens(await Deno.readFile(TOKENIZER_PATH), 256));
  const cases: [string[], RegExp, number][] = [
    [
      ["eval", "--model", "/nonexistent.bin", "--text", DEV_TEXT_PATH],
      /Model file not found: \/nonexistent.bin/,
      1,
    ],
    [
      ["eval", "--model", truncated, "--text", DEV_TEXT_PATH],
      /truncated: the header .* implies 1056540 bytes, found 5000/,
      1,
    ],
    [["inspect", badVersion], /unsupported llama2.c version 9/, 1],
    [
      ["eval", "--tokenizer", otherTok, "--text", DEV_TEXT_PATH],
      /file ends after 256 tokens but the model expects 512/,
      1,
    ],
    [["eval", "--text", empty], /Evaluation text is empty/, 1],
    [["eval", "--text", short], /fewer than one window of 512: use a longer text or --context/, 1],
    [["eval", "--text", DEV_TEXT_PATH, "--bogus"], /Unknown option '--bogus'/, 2],
    [
      ["eval", "--text", DEV_TEXT_PATH, "--context", "abc"],
      /--context must be an integer ≥ 2, found "abc"/,
      2,
    ],
    [["eval"], /--text F is required/, 2],
    [
      ["eval", "--text", DEV_TEXT_PATH, "--holdout", "0"],
      /--holdout 0 would score nothing; leave --holdout out to score the whole text/,
      2,
    ],
    [
      ["eval", "--text", DEV_TEXT_PATH, "--holdout", "0.95"],
      /--holdout must be a number from 1e-9 to 0.9/,
      2,
    ],
    [["generate", "--top-p", "1.5"], /--top-p must be a number/, 2],
    [["generate", "--seed", "3"], /--seed applies to sampling; add --temperature X/, 2],
    [["generate", "--top-p", "0.5", "--temperature", "0"], /--top-p applies to sampling/, 2],
    [["inspect"], /expected one FILE/, 2],
    // bench refuses an option its kind of run would ignore, before measuring anything.
    [["bench", "--train-steps", "2"], /--train-steps applies to --train, not to the WebGPU bench/, 2],
    [["bench", "--train", "--shapes", "64x64"], /--shapes applies to the WebGPU bench and --backend wasm/, 2],
    [
      ["bench", "--backend", "wasm", "--iters", "3"],
      /--iters applies to the WebGPU bench, not to --backend wasm/,
      2,
    ],
    [["bench", "--train", "--model", "m.bin"], /--model applies to --backend wasm, not to --train/, 2],
  ];
  for (const [args, pattern, code] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(" "));
    // One error line; a backend notice ("note: ...") may precede it.
    const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("note: "));
    assert.equal(lines.length, 1, `one line for ${args.join(" ")}: ${r.stderr}`);
    assert.match(lines[0], /^error: /);
  }
});

Deno.test("bench refuses, before measuring anything, what would change nothing or lose a result", async () => {
  await using tmp = await tempDir();
  const packed = quantizeModel(randomModel(tinyConfig()), { method: "rtn2" }).model;
  const rabit = join(tmp.dir, "q.rabit"), exported = join(tmp.dir, "q.safetensors");
  await writeRabit(rabit, { model: packed, method: "rtn2", options: {}, metadata: {} });
  await Deno.writeFile(
    exported,
    packedSafetensors({ model: packed, method: "rtn2", options: {}, metadata: {} }),
  );
  const skipped = (name: string) =>
    new RegExp(
      `^error: bench: --${name} applies to the decode measurement, which --no-decode skips; drop one of them$`,
    );
  const fullPrecision = (named: string, found: string) =>
    new RegExp(
      `^error: bench: ${named} must be a full-precision model \\(bench packs its own copy\\); found ${found}: ` +
        "pass the \\.bin/GGUF/HF model it came from$",
    );
  const cases: [string[], RegExp, Record<string, string>?][] = [
    // --no-decode skips every option of the decode measurement: WebGPU's three, wasm's two.
    [["bench", "--no-decode", "--decode-layers", "2"], skipped("decode-layers")],
    [["bench", "--no-decode", "--decode-steps", "3"], skipped("decode-steps")],
    [["bench", "--no-decode", "--fp32-decode"], skipped("fp32-decode")],
    [["bench", "--backend", "wasm", "--no-decode", "--model", MODEL_PATH], skipped("model")],
    [["bench", "--backend", "wasm", "--no-decode", "--decode-layers", "2"], skipped("decode-layers")],
    // --json keys results by shape: a repeated one would be measured twice and reported once.
    [
      ["bench", "--shapes", "64x63,64x64,64x64"],
      /^error: bench: --shapes lists 64x64 twice; list each shape once$/,
    ],
    [
      ["bench", "--backend", "wasm", "--shapes", "64x64,64x064,64x64", "--no-decode"],
      /^error: bench: --shapes lists 64x64 3 times; list each shape once$/,
    ],
    // bench packs its own copy of the decode model: a packed one is refused before the GEMVs, not after.
    [
      ["bench", "--backend", "wasm", "--shapes", "64x64", "--model", rabit],
      fullPrecision("--model", "a quantized \\.rabit file"),
    ],
    [
      ["bench", "--backend", "wasm", "--shapes", "64x64", "--model", exported],
      fullPrecision("--model", "a packed \\.safetensors export"),
    ],
    [
      ["bench", "--backend", "wasm", "--shapes", "64x64"],
      fullPrecision("\\$RABIT_MODEL \\(\\S+q\\.rabit\\)", "a quantized \\.rabit file"),
      { RABIT_MODEL: rabit },
    ],
  ];
  for (const [args, pattern, env] of cases) {
    const r = await runCli(args, env);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "", `nothing measured for ${args.join(" ")}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `one line for ${args.join(" ")}: ${r.stderr}`);
    assert.match(lines[0], pattern, args.join(" "));
  }
});

/** The first `n` token records of a tokenizer.bin: a valid tokenizer for a smaller vocabulary. */
function firstTokens(bytes: Uint8Array, n: number): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  let at = 4;
  for (let i = 0; i < n; i++) at += 8 + view.getInt32(at + 4, true);
  return bytes.slice(0, at);
}
