// The llama2.c tokenizer: known ids, round trips, equality with the quadratic reference, bad files.

import assert from "node:assert/strict";
import { BOS, encodeSlow, Llama2cTokenizer, Tokenizer } from "../src/io/tokenizer.ts";
import { Rng } from "../src/util/rng.ts";
import { DEV_TEXT_PATH, TOKENIZER_PATH } from "./_data.ts";

const tok = await Llama2cTokenizer.load(TOKENIZER_PATH, 512);
const dev = await Deno.readTextFile(DEV_TEXT_PATH);

Deno.test("encode gives the known ids", () => {
  assert.deepEqual(tok.encode("Once upon a time"), [403, 407, 261, 378]);
  assert.deepEqual(tok.encode("Once upon a time", { bos: true, eos: true }), [1, 403, 407, 261, 378, 2]);
  assert.deepEqual(tok.encode(""), []);
});

Deno.test("the whole dev text tokenizes to the documented count", () => {
  assert.equal(tok.encode(dev).length + 1, 234796); // + BOS, ENGINEERING.md §2
});

Deno.test("encode equals llama2.c's quadratic merge loop on random slices", () => {
  const rng = new Rng(11);
  for (let i = 0; i < 150; i++) {
    const start = rng.int(dev.length - 800);
    const slice = dev.slice(start, start + 1 + rng.int(800));
    assert.deepEqual(tok.encode(slice), encodeSlow(tok, slice), `slice at ${start}`);
  }
  for (const s of ["é ñ “quoted” — ’ € ™", "\u{1F600} emoji", "\x00\x01 control", "a\n\nb", "   spaces  "]) {
    assert.deepEqual(tok.encode(s), encodeSlow(tok, s), JSON.stringify(s));
  }
});

Deno.test("decode inverts encode (leading space after BOS, byte fallback)", () => {
  for (
    const s of [
      "Once upon a time",
      'Lily said, "Hi!"\nThe end.',
      "€ and 😀 fall back to bytes",
      dev.slice(0, 3000),
    ]
  ) {
    assert.equal(tok.decode([BOS, ...tok.encode(s)]), s);
  }
  const stream = tok.decoder();
  const ids = tok.encode("😀 ok");
  assert.equal(ids.map(stream).join(""), "😀 ok".replace(/^/, " ").slice(1));
});

Deno.test("a megabyte of text encodes with a linear number of merge candidates", () => {
  const big = dev + dev; // ~1 MB
  const stats = { initialTokens: 0, candidates: 0 };
  const ids = tok.encode(big, { stats });
  assert.ok(ids.length > 400000);
  assert.ok(stats.initialTokens > ids.length);
  // Each merge looks up at most two new pairs: candidates ≤ (n − 1) + 2·merges < 3n. llama2.c's loop
  // rescans every pair after each merge, about n²/2 lookups for n ≈ 10^6 initial tokens.
  assert.ok(stats.candidates < 3 * stats.initialTokens, `${stats.candidates} for ${stats.initialTokens}`);
  assert.ok(stats.candidates >= stats.initialTokens - 1);
});

Deno.test("refuses bad tokenizer files", async () => {
  const bytes = await Deno.readFile(TOKENIZER_PATH);
  assert.throws(
    () => Tokenizer.parse(bytes, 32000, "t"),
    /t: file ends after 512 tokens but the model expects 32000: .*another model/,
  );
  assert.throws(
    () => Tokenizer.parse(bytes.subarray(0, 100), 512, "t"),
    /t: file ends after 7 tokens .* truncated/,
  );
  assert.throws(
    () => Tokenizer.parse(bytes.subarray(0, 103), 512, "t"),
    /t: truncated inside the record of token 7/,
  );
  assert.throws(() => Tokenizer.parse(new Uint8Array(2), 512, "t"), /too short/);
  await assert.rejects(Tokenizer.load("/nonexistent/tok.bin", 512), /Tokenizer not found/);
});
