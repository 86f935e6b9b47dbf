// Unknown option keys: the helper's message and suggestions, the compile-time tie of each key list to its
// interface, and one misspelt key refused by every public entry point that checks its options.

import assert from "node:assert/strict";
import { createSession } from "../src/backend/create.ts";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { WasmSession } from "../src/backend/wasm/session.ts";
import { requestGpu } from "../src/backend/webgpu/device.ts";
import { WebGpuSession } from "../src/backend/webgpu/session.ts";
import { pathDiagnostics } from "../src/eval/diagnostics.ts";
import { generate } from "../src/eval/generate.ts";
import { perplexity } from "../src/eval/perplexity.ts";
import { Sampler } from "../src/eval/sampling.ts";
import { hfCheckpointFiles, loadHfModel, writeHfModel } from "../src/io/hf.ts";
import { openModel } from "../src/io/load_model.ts";
import { openModelBytes } from "../src/io/open_bytes.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize_model.ts";
import { quantize } from "../src/train/quantize.ts";
import { checkOptionKeys, closestKey, editDistance, optionKeys } from "../src/util/option_keys.ts";
import { MODEL_PATH } from "./_data.ts";

/** An options object as plain JavaScript passes it: no compiler checks its keys. */
const js = <T>(options: Record<string, unknown>): T => options as T;

/** The TypeError (as String(error) reads) of one unknown `key`, with `guess` suggested or none. */
const unknownOption = (fn: string, key: string, guess?: string) =>
  new RegExp(
    `^TypeError: ${fn.replace(".", "\\.")}: unknown option "${key}"; expected one of: [^;(]*${
      guess ? `\\(did you mean "${guess}"\\?\\)` : ""
    }$`,
  );

Deno.test("checkOptionKeys names the unknown key, the keys expected and the likely one", () => {
  const known = ["steps", "seed", "maxWindows"];
  checkOptionKeys("f", { steps: 1, seed: undefined }, known);
  checkOptionKeys("f", {}, known);
  checkOptionKeys("f", undefined, known);
  assert.throws(() => checkOptionKeys("quantize", { stpes: 10 }, known), {
    name: "TypeError",
    message:
      'quantize: unknown option "stpes"; expected one of: steps, seed, maxWindows (did you mean "steps"?)',
  });
  // Whatever the value: a misspelt key set to undefined is still misspelt.
  assert.throws(() => checkOptionKeys("f", { maxWindow: undefined }, known), /did you mean "maxWindows"\?/);
  assert.throws(() => checkOptionKeys("f", { MAXWINDOWS: 2 }, known), /did you mean "maxWindows"\?/);
  assert.throws(() => checkOptionKeys("f", { temperature: 1 }, known), {
    message: 'f: unknown option "temperature"; expected one of: steps, seed, maxWindows',
  });
  assert.throws(() => checkOptionKeys("f", { stpes: 1, sede: 2, other: 3 }, known), {
    message: 'f: unknown options "stpes", "sede", "other"; expected one of: steps, seed, maxWindows ' +
      '(did you mean "steps" for "stpes", "seed" for "sede"?)',
  });
  assert.throws(() => checkOptionKeys("f", { a: 1 }, []), {
    message: 'f: unknown option "a"; expected no options',
  });
});

Deno.test("checkOptionKeys refuses what is not an options object", () => {
  for (
    const [value, found] of [[null, "null"], [[1], "an array"], [5, "number"], ["steps", "string"]] as const
  ) {
    assert.throws(() => checkOptionKeys("f", value as unknown as object, ["steps"]), {
      name: "TypeError",
      message: `f: expected an options object, found ${found}`,
    });
  }
});

Deno.test("closestKey suggests within about a third of the key's length in edits, ignoring case", () => {
  assert.equal(editDistance("stpes", "steps"), 1); // a swap is one edit
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(closestKey("stpes", ["seed", "steps"]), "steps");
  assert.equal(closestKey("requireTokeniser", ["tokenizer", "requireTokenizer"]), "requireTokenizer");
  assert.equal(closestKey("Context", ["context"]), "context");
  assert.equal(closestKey("seq", ["seed"]), undefined); // two edits of three letters: too far
  assert.equal(closestKey("lrr", ["lr", "seq"]), "lr");
  assert.equal(closestKey("tmp", ["steps", "seed"]), undefined);
});

Deno.test("optionKeys lists every key of the interface, in order, and type-checks against it", () => {
  interface Options {
    steps?: number;
    seed?: number;
  }
  assert.deepEqual(optionKeys<Options>({ steps: true, seed: true }), ["steps", "seed"]);
  // @ts-expect-error: a key of the interface is missing from the list
  optionKeys<Options>({ steps: true });
  // @ts-expect-error: a key the interface lacks
  optionKeys<Options>({ steps: true, seed: true, stpes: true });
});

Deno.test("every public function that takes an options object refuses a misspelt key", async () => {
  const { model, tokenizer } = await openModel(MODEL_PATH, { requireTokenizer: true });
  const session = new CpuSession(model);
  const ids = [1, 403, 407, 261, 378];

  await assert.rejects(
    () => quantize(model, js({ method: "ptq", tokenizer, data: [], stpes: 10 })),
    unknownOption("quantize", "stpes", "steps"),
  );
  await assert.rejects(
    () => perplexity(session, ids, js({ context: 4, maxWindow: 2 })),
    unknownOption("perplexity", "maxWindow", "maxWindows"),
  );
  await assert.rejects(
    () => generate(session, tokenizer!, js({ steps: 1, temprature: 1 })),
    unknownOption("generate", "temprature", "temperature"),
  );
  assert.throws(() => new Sampler(js({ topp: 0.9 })), unknownOption("Sampler", "topp", "topP"));
  await assert.rejects(
    () => createSession(model, js({ backnd: "cpu" })),
    unknownOption("createSession", "backnd", "backend"),
  );
  await assert.rejects(
    () => createSession(model, { backend: "cpu", wasm: js({ thread: 2 }) }),
    unknownOption("createSession options.wasm", "thread", "threads"),
  );
  assert.throws(
    () => new WasmSession(model, js({ classifer: "f16" })),
    unknownOption("WasmSession", "classifer", "classifier"),
  );
  await assert.rejects(
    () => WasmSession.create(model, js({ treads: 1 })),
    unknownOption("WasmSession.create", "treads", "threads"),
  );
  await assert.rejects(
    () => WebGpuSession.create(model, js({ maxChunks: 8 })),
    unknownOption("WebGpuSession.create", "maxChunks", "maxChunk"),
  );
  await assert.rejects(
    () => requestGpu(js({ powerPrefrence: "low-power" })),
    unknownOption("requestGpu", "powerPrefrence", "powerPreference"),
  );
  await assert.rejects(
    () => openModel(MODEL_PATH, js({ requireTokeniser: true })),
    unknownOption("openModel", "requireTokeniser", "requireTokenizer"),
  );
  const bytes = await Deno.readFile(MODEL_PATH);
  assert.throws(
    () => openModelBytes(bytes, js({ tokenizerbytes: new Uint8Array() })),
    unknownOption("openModelBytes", "tokenizerbytes", "tokenizerBytes"),
  );
  assert.throws(
    () => pathDiagnostics({ student: model, teacher: model }, ids, js({ maxToken: 4 })),
    unknownOption("pathDiagnostics", "maxToken", "maxTokens"),
  );
  assert.throws(
    () => quantizeModel(model, js({ method: "rtn2", path: 2 })),
    unknownOption("quantizeModel", "path", "paths"),
  );
  // calibrate takes its windows ready-made: tokens and window belong to calibrationWindows.
  assert.throws(() => calibrate(model, [ids], js({ tokens: 64 })), unknownOption("calibrate", "tokens"));
  await assert.rejects(
    () => loadHfModel("/nonexistent", js({ byte: new Uint8Array() })),
    unknownOption("loadHfModel", "byte", "bytes"),
  );
  assert.throws(
    () => hfCheckpointFiles(model, js({ dtyp: "F16" })),
    unknownOption("hfCheckpointFiles", "dtyp", "dtype"),
  );
  await assert.rejects(
    () => writeHfModel("/nonexistent/rabit-never-written", model, js({ shardbytes: 1e6 })),
    unknownOption("writeHfModel", "shardbytes", "shardBytes"),
  );
});

Deno.test("generate passes only the sampling options to its sampler", async () => {
  const { model, tokenizer } = await openModel(MODEL_PATH, { requireTokenizer: true });
  const r = await generate(new CpuSession(model), tokenizer!, {
    prompt: "Once",
    steps: 2,
    temperature: 1,
    topP: 0.9,
    seed: 3,
    onToken: () => {},
  });
  assert.equal(r.generated.length, 2);
});
