// The library from the built npm package under Node: the real model's golden greedy text, its perplexity
// on a slice of tinystories_dev.txt (pinned from the Deno run), a .rabit round trip (ptq → write → read →
// the same logits), loading from bytes, checkpoints, and file errors that name the file.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";
import {
  DEV_TEXT_PATH,
  GOLDEN_GREEDY,
  GOLDEN_TEXT,
  MODEL_PATH,
  pkg,
  rabit,
  TOKENIZER_PATH,
} from "./_package.mjs";

const { model, tokenizer, format } = await rabit.openModel(MODEL_PATH, { requireTokenizer: true });
const modelBytes = await readFile(MODEL_PATH); // a Node Buffer, what Node users have
const text = (await readFile(DEV_TEXT_PATH, "utf8")).slice(0, 20_000);
const ids = rabit.perplexityTokens((t) => tokenizer.encode(t), text);

test("openModel reads the llama2.c checkpoint and finds its tokenizer", () => {
  assert.equal(format, "llama2c-legacy");
  assert.equal(model.config.vocabSize, 512);
  assert.deepEqual(tokenizer.encode("Once upon a time"), [403, 407, 261, 378]);
});

test("greedy decoding from BOS gives the golden tokens and text (CPU reference and wasm)", async () => {
  for (const session of [new rabit.CpuSession(model), await rabit.WasmSession.create(model)]) {
    const r = await rabit.generate(session, tokenizer, { steps: GOLDEN_GREEDY.length });
    assert.deepEqual(r.generated, GOLDEN_GREEDY, session.backend);
    assert.equal(r.text, GOLDEN_TEXT, session.backend);
    session.dispose();
  }
});

test("perplexity on the first 20,000 characters of tinystories_dev.txt is the Deno run's", async () => {
  const r = await rabit.perplexity(new rabit.CpuSession(model), ids, { context: 256, maxWindows: 8 });
  assert.equal(r.tokens, 9603);
  assert.equal(r.windows, 8);
  assert.equal(r.predicted, 8 * 255);
  assert.equal(r.ppl.toFixed(4), "3.9787"); // deno: 3.978686954825341
  assert.ok(Math.abs(r.nll - 1.3809519) < 1e-5, `mean NLL ${r.nll}`);
});

test(".rabit round trip: ptq quantize, write, read (path and bytes) give the same logits", async () => {
  const q = await rabit.quantize(model, {
    method: "ptq",
    tokenizer,
    data: [{ name: "dev", text }],
    precondition: 0,
    svidRounds: 0,
  });
  const dir = await mkdtemp(join(tmpdir(), "rabit-node-"));
  try {
    const path = join(dir, "m.rabit");
    const file = {
      model: q.model,
      tokenizerBytes: tokenizer.bytes,
      method: q.method,
      options: q.options,
      metadata: q.metadata,
    };
    await rabit.writeRabit(path, file);
    await assert.rejects(rabit.writeRabit(join(dir, "missing", "m.rabit"), file), (e) => {
      assert.equal(e.code, "ENOENT");
      assert.match(e.message, /Cannot write .*missing\/m\.rabit: its directory does not exist/);
      return true;
    });
    const read = await rabit.readRabit(path);
    assert.match(read.created.runtime, /^node /);
    const opened = await rabit.openModel(path, { requireTokenizer: true });
    const fromBytes = rabit.openModelBytes(await readFile(path), { requireTokenizer: true });
    assert.equal(opened.format, "rabit");
    assert.equal(fromBytes.format, "rabit");
    const probe = ids.slice(0, 32);
    const want = await new rabit.CpuSession(q.model).run(probe, 0);
    for (const m of [read.model, opened.model, fromBytes.model]) {
      assert.deepEqual(await new rabit.CpuSession(m).run(probe, 0), want);
    }
    // Packed 2-bit: worse than the float model, far better than chance (vocabulary 512).
    const r = await rabit.perplexity(new rabit.CpuSession(read.model), ids, { context: 256, maxWindows: 4 });
    assert.ok(r.ppl > 4 && r.ppl < 200, `ptq perplexity ${r.ppl}`);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("openModelBytes takes the model and tokenizer as bytes, as a browser would", async () => {
  const opened = rabit.openModelBytes(modelBytes, {
    tokenizerBytes: await readFile(TOKENIZER_PATH),
    name: "stories260K.bin",
  });
  assert.equal(opened.format, "llama2c-legacy");
  assert.deepEqual(opened.tokenizer.encode("Once upon a time"), [403, 407, 261, 378]);
  const r = await rabit.generate(new rabit.CpuSession(opened.model), opened.tokenizer, { steps: 8 });
  assert.deepEqual(r.generated, GOLDEN_GREEDY.slice(0, 8));
  assert.throws(
    () => rabit.openModelBytes(modelBytes, { requireTokenizer: true, name: "m.bin" }),
    /No tokenizer for m\.bin: pass tokenizerBytes/,
  );
});

test("checkpoints: written atomically, read back, and as bytes", async () => {
  const table = rabit.ParamTable.fromSpecs([["norm", [64]]]);
  table.data.fill(0.5);
  const ck = {
    teacher: { config: model.config, crc: rabit.paramsCrc(model.params) },
    options: { method: "rabit" },
    step: 2,
    layout: rabit.layoutOf(table),
    state: { params: table.data, m: new Float32Array(64), v: new Float32Array(64).fill(1) },
    log: { losses: [2, 1], kl: [2, 1], mse: [0, 0], lr: [1e-3, 1e-3], gradNorm: [1, 1] },
    seconds: 1.5,
  };
  const dir = await mkdtemp(join(tmpdir(), "rabit-node-"));
  try {
    await rabit.writeCheckpoint(join(dir, "run.ckpt"), ck);
    const back = await rabit.readCheckpoint(join(dir, "run.ckpt"));
    assert.equal(back.step, 2);
    assert.deepEqual(back.state.params, table.data);
    assert.deepEqual(back.log, ck.log);
    assert.deepEqual(rabit.parseCheckpoint(rabit.serializeCheckpoint(ck), "mem").state.v, ck.state.v);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("file errors name the file and carry Node's ENOENT code", async () => {
  await assert.rejects(rabit.openModel("/nonexistent/model.bin"), (e) => {
    assert.equal(e.code, "ENOENT");
    assert.equal(e.message, "Model file not found: /nonexistent/model.bin");
    return true;
  });
  await assert.rejects(
    rabit.readRabit("/nonexistent/m.rabit"),
    /Packed model not found: \/nonexistent\/m\.rabit/,
  );
  await assert.rejects(rabit.readCheckpoint("/nonexistent/c.ckpt"), /Checkpoint not found/);
  await assert.rejects(rabit.readRabit(tmpdir()), /Packed model must be a file, found a directory/);
  const dir = await mkdtemp(join(tmpdir(), "rabit-node-"));
  try {
    await writeFile(join(dir, "bad.bin"), new Uint8Array(3));
    await assert.rejects(rabit.openModel(join(dir, "bad.bin")), (e) => e instanceof rabit.FormatError);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("the library's static imports reach no node: module, so a browser (with a bundler) can load it", async () => {
  // Files go through process.getBuiltinModule (src/io/fs.ts), worker threads through a dynamic import.
  const seen = new Set();
  const external = [];
  const visit = async (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = await readFile(file, "utf8");
    for (const m of source.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)"|^import\s*"([^"]+)"/gm)) {
      const spec = m[1] ?? m[2];
      if (spec.startsWith(".")) await visit(resolve(dirname(file), spec));
      else external.push(`${spec} (${file})`);
    }
  };
  await visit(fileURLToPath(new URL(`../../npm/${pkg.exports["."].default}`, import.meta.url)));
  assert.ok(seen.size > 50, `${seen.size} modules`);
  assert.deepEqual(external.filter((s) => s.startsWith("node:")), []);
});
