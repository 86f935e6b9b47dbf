// The llama2.c checkpoint loader: real file, both layouts, and refusal of bad files.

import assert from "node:assert/strict";
import { loadLlama2c, parseLlama2c, serializeLlama2cLegacy, serializeLlama2cV1 } from "../src/io/llama2c.ts";
import { MODEL_PATH, randomModel, tinyConfig } from "./_data.ts";

Deno.test("loads stories260K with the documented config", async () => {
  const { config, params, format } = await loadLlama2c(MODEL_PATH);
  assert.equal(format, "llama2c-legacy");
  assert.deepEqual(
    [
      config.dim,
      config.hiddenDim,
      config.nLayers,
      config.nHeads,
      config.nKvHeads,
      config.vocabSize,
      config.seqLen,
    ],
    [64, 172, 5, 8, 4, 512, 512],
  );
  assert.equal(config.sharedClassifier, true);
  assert.equal(params.count, 260032);
  assert.deepEqual(params.shape("layers.4.w2"), [64, 172]);
});

for (const shared of [true, false]) {
  Deno.test(`v1 and legacy layouts round-trip (${shared ? "shared" : "separate"} classifier)`, () => {
    const model = randomModel(tinyConfig({ sharedClassifier: shared }), 7);
    for (
      const [bytes, format] of [
        [serializeLlama2cV1(model.config, model.params), "llama2c-v1"],
        [serializeLlama2cLegacy(model.config, model.params), "llama2c-legacy"],
      ] as const
    ) {
      const back = parseLlama2c(bytes, "mem");
      assert.equal(back.format, format);
      assert.deepEqual(back.config, model.config);
      assert.deepEqual(back.params.data, model.params.data);
    }
  });
}

Deno.test("the real legacy file re-exported as v1 loads to the same weights", async () => {
  const legacy = await loadLlama2c(MODEL_PATH);
  const v1 = parseLlama2c(serializeLlama2cV1(legacy.config, legacy.params), "v1");
  assert.deepEqual(v1.params.data, legacy.params.data);
});

Deno.test("refuses missing, truncated, too long and bad-header files with clear errors", async () => {
  await assert.rejects(
    loadLlama2c("/nonexistent/model.bin"),
    /Model checkpoint not found: \/nonexistent\/model.bin/,
  );
  const good = await Deno.readFile(MODEL_PATH);
  assert.throws(() => parseLlama2c(good.subarray(0, 12), "m"), /shorter than any llama2.c header/);
  assert.throws(
    () => parseLlama2c(good.subarray(0, good.length - 4), "m"),
    /m: truncated: .* implies 1056540 bytes, found 1056536/,
  );
  const longer = new Uint8Array(good.length + 8);
  longer.set(good);
  assert.throws(() => parseLlama2c(longer, "m"), /too long/);
  const badHeader = good.slice();
  new DataView(badHeader.buffer).setInt32(12, 7, true); // nHeads 7 does not divide dim 64
  assert.throws(() => parseLlama2c(badHeader, "m"), /bad header: .*not divisible by nHeads 7/);
  const model = randomModel(tinyConfig());
  const v1 = serializeLlama2cV1(model.config, model.params);
  new DataView(v1.buffer).setInt32(4, 2, true);
  assert.throws(() => parseLlama2c(v1, "m"), /unsupported llama2.c version 2 \(expected 1\)/);
  const nan = serializeLlama2cV1(model.config, model.params);
  new DataView(nan.buffer).setFloat32(256 + 8, NaN, true);
  assert.throws(() => parseLlama2c(nan, "m"), /non-finite weight NaN in tensor layers.0.attention_norm/);
});
