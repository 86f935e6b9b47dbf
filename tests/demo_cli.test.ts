// `rabit demo` as a user meets it: its help, the refusal of an already quantized model, and the training
// step running on the backend --backend names (the smallest run: one step, one window).

import assert from "node:assert/strict";
import { join } from "node:path";
import { demoTrainBackend } from "../src/cli/demo.ts";
import { runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH } from "./_data.ts";

Deno.test("demo --help lists --tokenizer and where training runs for each --backend", async () => {
  const r = await runCli(["demo", "--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Usage: rabit demo \[--model M\] \[--tokenizer T\]/);
  assert.match(r.stdout, /^ {2}--tokenizer T {2}tokenizer file/m);
  assert.match(
    r.stdout,
    /Training runs on cpu with cpu or wasm \(it has no wasm path\), on webgpu with webgpu/,
  );
});

Deno.test("demoTrainBackend: wasm trains on cpu, every other backend on itself", () => {
  assert.deepEqual(
    (["auto", "cpu", "wasm", "webgpu"] as const).map(demoTrainBackend),
    ["auto", "cpu", "cpu", "webgpu"],
  );
});

Deno.test("demo refuses an already quantized --model with one line, before scoring anything", async () => {
  await using tmp = await tempDir();
  const packed = join(tmp.dir, "r.rabit");
  const q = await runCli(["quantize", "--method", "rtn2", "--out", packed]);
  assert.equal(q.code, 0, q.stderr);
  const r = await runCli(["demo", "--model", packed, "--steps", "3"]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr,
    `error: demo: --model ${packed} is already quantized; demo quantizes a full-precision model: ` +
      "pass a llama2.c .bin, GGUF or Hugging Face model\n",
  );
  assert.equal(r.stdout, "");
});

/** The end of the demo's RaBiT line: "(N s, trained on B)". */
async function demoTrainedOn(backend: string, dir: string): Promise<string> {
  // A short text keeps the held-out windows and the training windows few.
  const text = join(dir, "t.txt");
  await Deno.writeTextFile(text, (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 20000));
  const r = await runCli(["demo", "--text", text, "--steps", "1", "--windows", "1", "--backend", backend]);
  assert.equal(r.code, 0, r.stderr);
  const m = r.stdout.match(/^2-bit rabit, 1 steps: perplexity [\d.]+ \(\d+ s, trained on (\w+)\)$/m);
  assert.ok(m, `no training line in:\n${r.stdout}`);
  return m[1];
}

Deno.test("demo --backend wasm trains on cpu (training has no wasm path)", async () => {
  await using tmp = await tempDir();
  assert.equal(await demoTrainedOn("wasm", tmp.dir), "cpu");
});

// Every WebGPU test here needs an adapter; CI has llvmpipe, so this one runs there too.
Deno.test("demo --backend webgpu trains on webgpu", async () => {
  await using tmp = await tempDir();
  assert.equal(await demoTrainedOn("webgpu", tmp.dir), "webgpu");
});
