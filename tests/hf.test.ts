// Hugging Face Llama checkpoints: stories260K converted in the test as transformers' converter would (HF
// names, permuted q/k rows, config.json, safetensors, a tokenizer.json equivalent to tok512) gives the
// original's logits, perplexity and token ids; F16/BF16 within rounding; sharded checkpoints; tokenizer.json
// through @huggingface/tokenizers; refusals; `quantize --model DIR` and `eval --model DIR`.

import assert from "node:assert/strict";
import { join } from "node:path";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { FormatError } from "../src/io/errors.ts";
import {
  hfCheckpointFiles,
  hfConfigToLlama,
  hfRowOrder,
  hfSingleFile,
  loadHfModel,
  permuteRows,
} from "../src/io/hf.ts";
import { tokenizerJsonFromLlama2c } from "../src/io/hf_tokenizer.ts";
import { loadLlama2c } from "../src/io/llama2c.ts";
import { openModel } from "../src/io/load_model.ts";
import { readRabit } from "../src/io/rabit_format.ts";
import { parseSafetensors, tensorBytes } from "../src/io/safetensors.ts";
import { HfTokenizer, Llama2cTokenizer, Tokenizer } from "../src/io/tokenizer.ts";
import type { LlamaConfig } from "../src/model/config.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { ParamTable } from "../src/model/params.ts";
import { fromF16, toF16 } from "../src/util/fp16.ts";
import { evalCli, lastJson, runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH, randomModel, tinyConfig, TOKENIZER_PATH } from "./_data.ts";
import { toBf16 } from "./_gguf.ts";
import { hfConfigJson, hfPermute, hfTensorsByHand, writeSafetensorsByHand } from "./_hf.ts";
import { logitsOf } from "./_forward.ts";

const enc = new TextEncoder();

async function stories(): Promise<{ model: LlamaModel; tokenizer: Llama2cTokenizer }> {
  const ck = await loadLlama2c(MODEL_PATH);
  const model = { config: ck.config, params: ck.params, quantized: new Map() };
  return { model, tokenizer: await Llama2cTokenizer.load(TOKENIZER_PATH, ck.config.vocabSize) };
}

/** stories260K (or any model) as an HF checkpoint directory, written by hand in `dir`. */
async function writeHfByHand(
  dir: string,
  model: LlamaModel,
  options: { type?: "F32" | "F16" | "BF16"; tokenizer?: Llama2cTokenizer; config?: Record<string, unknown> } =
    {},
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify(options.config ?? hfConfigJson(model.config)),
  );
  const tensors = hfTensorsByHand(model.config, model.params, options.type);
  await Deno.writeFile(join(dir, "model.safetensors"), writeSafetensorsByHand(tensors, { format: "pt" }));
  if (options.tokenizer) {
    await Deno.writeTextFile(join(dir, "tokenizer.json"), tokenizerJsonFromLlama2c(options.tokenizer));
  }
}

/** Refused with a FormatError matching `re`. */
async function refuses(path: string, re: RegExp): Promise<void> {
  await assert.rejects(loadHfModel(path), (e) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, found ${e}`);
    assert.match((e as Error).message, re);
    return true;
  });
}

/** The model with its 2-D weights passed through `round`, as 16-bit storage holds them. */
function rounded(model: LlamaModel, round: (v: Float32Array) => Float32Array): LlamaModel {
  const params = new ParamTable(model.params.entries, model.params.data.slice());
  for (const n of params.names()) if (params.shape(n).length === 2) params.get(n).set(round(params.get(n)));
  return { config: model.config, params, quantized: new Map() };
}

const fromBf16 = (v: Float32Array) => {
  const out = new Uint32Array(v.length);
  toBf16(v).forEach((h, i) => out[i] = h << 16);
  return new Float32Array(out.buffer);
};

Deno.test("stories260K as a Hugging Face checkpoint (F32): exactly its weights, logits, perplexity and token ids", async () => {
  const { model, tokenizer } = await stories();
  assert.ok(
    model.config.nKvHeads < model.config.nHeads,
    "grouped-query attention: wq and wk permute differently",
  );
  await using tmp = await tempDir();
  await writeHfByHand(tmp.dir, model, { tokenizer });
  const opened = await openModel(tmp.dir, { requireTokenizer: true });
  assert.equal(opened.format, "hf");
  assert.equal(JSON.stringify(opened.model.config), JSON.stringify(model.config)); // same keys, same order
  assert.deepEqual(opened.model.params.data, model.params.data);
  assert.deepEqual(logitsOf(opened.model), logitsOf(model));
  const tok = opened.tokenizer!;
  assert.ok(tok instanceof HfTokenizer);
  assert.equal(tok.vocabSize, 512);
  const text = (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 6000);
  const ids = perplexityTokens((t) => tokenizer.encode(t), text);
  assert.deepEqual(perplexityTokens((t) => tok.encode(t), text), ids, "tokenizer.json encodes as tok512.bin");
  assert.equal(tok.decode(ids), tokenizer.decode(ids));
  const want = await perplexity(new CpuSession(model), ids, { context: 256 });
  const got = await perplexity(new CpuSession(opened.model), ids, { context: 256 });
  assert.ok(want.windows >= 4);
  assert.equal(got.ppl, want.ppl);
  // Control: the same checkpoint read without undoing the permutation is far off.
  const c = model.config, hs = c.dim / c.nHeads;
  const unpermuted = new ParamTable(model.params.entries, model.params.data.slice());
  for (let l = 0; l < c.nLayers; l++) {
    unpermuted.get(`layers.${l}.wq`).set(hfPermute(model.params.get(`layers.${l}.wq`), c.nHeads, hs, c.dim));
    unpermuted.get(`layers.${l}.wk`).set(
      hfPermute(model.params.get(`layers.${l}.wk`), c.nKvHeads, hs, c.dim),
    );
  }
  const wrong = logitsOf({ config: c, params: unpermuted, quantized: new Map() });
  assert.ok(wrong.some((x, i) => Math.abs(x - logitsOf(model)[i]) > 0.1));
});

Deno.test("F16 and BF16 checkpoints: exactly the logits of the weights rounded so, perplexity within rounding", async () => {
  const { model, tokenizer } = await stories();
  const text = (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 6000);
  const ids = perplexityTokens((t) => tokenizer.encode(t), text);
  const base = await perplexity(new CpuSession(model), ids, { context: 256 });
  await using tmp = await tempDir();
  for (
    const [type, round, tol] of [
      ["F16", (v: Float32Array) => fromF16(toF16(v)), 2e-3],
      ["BF16", fromBf16, 3e-2],
    ] as const
  ) {
    const dir = join(tmp.dir, type);
    await writeHfByHand(dir, model, { type });
    const loaded = await loadHfModel(dir);
    const ref = rounded(model, round);
    assert.deepEqual(loaded.params.data, ref.params.data, type);
    const m = { config: loaded.config, params: loaded.params, quantized: new Map() };
    assert.deepEqual(logitsOf(m), logitsOf(ref), type);
    const r = await perplexity(new CpuSession(m), ids, { context: 256 });
    assert.ok(Math.abs(r.ppl / base.ppl - 1) < tol, `${type}: ppl ${r.ppl} vs ${base.ppl}`);
  }
});

Deno.test("the library's writer: the hand conversion's tensors; sharded with an index and one file load the same", async () => {
  const { model, tokenizer } = await stories();
  const files = hfCheckpointFiles(model, { tokenizer });
  const lib = parseSafetensors(files.get("model.safetensors")!);
  const hand = writeSafetensorsByHand(hfTensorsByHand(model.config, model.params));
  const byHand = parseSafetensors(hand);
  assert.deepEqual(lib.tensors.map((t) => t.name).sort(), byHand.tensors.map((t) => t.name).sort());
  for (const t of byHand.tensors) {
    assert.deepEqual(
      tensorBytes(files.get("model.safetensors")!, lib.byName.get(t.name)!),
      tensorBytes(hand, t),
      t.name,
    );
  }
  const config = hfConfigToLlama(JSON.parse(new TextDecoder().decode(files.get("config.json")!)));
  assert.equal(JSON.stringify(config), JSON.stringify(model.config));
  assert.equal(new TextDecoder().decode(files.get("tokenizer.json")!), tokenizerJsonFromLlama2c(tokenizer));

  await using tmp = await tempDir();
  const sharded = hfCheckpointFiles(model, { shardBytes: 300_000 });
  const shards = [...sharded.keys()].filter((n) => n.endsWith(".safetensors"));
  assert.ok(shards.length >= 3, `${shards.length} shards`);
  assert.ok(!sharded.has("model.safetensors") && sharded.has("model.safetensors.index.json"));
  for (const [name, bytes] of sharded) await Deno.writeFile(join(tmp.dir, name), bytes);
  const back = await loadHfModel(tmp.dir);
  assert.deepEqual(back.params.data, model.params.data);
  assert.equal(back.files.length, shards.length);
  // One file with the config in its metadata, the way export --dequantize writes it.
  const single = join(tmp.dir, "one", "m.safetensors");
  await Deno.mkdir(join(tmp.dir, "one"));
  await Deno.writeFile(single, hfSingleFile(model, { tokenizer }));
  const one = await openModel(single, { requireTokenizer: true });
  assert.equal(one.format, "hf");
  assert.deepEqual(one.model.params.data, model.params.data);
  assert.deepEqual(one.tokenizer!.encode("Once upon a time"), [403, 407, 261, 378]);
});

Deno.test("untied head, a stored tied head and rotary buffers; GQA rows permute per kv head", async () => {
  await using tmp = await tempDir();
  const untied = randomModel(tinyConfig({ sharedClassifier: false, nHeads: 4, nKvHeads: 2 }), 3);
  await writeHfByHand(join(tmp.dir, "u"), untied);
  const u = await loadHfModel(join(tmp.dir, "u"));
  assert.equal(u.config.sharedClassifier, false);
  assert.deepEqual(u.params.data, untied.params.data);
  // A tied model whose file also holds lm_head.weight and inv_freq buffers (older checkpoints do).
  const tied = randomModel(tinyConfig(), 4);
  const c = tied.config;
  const extra = [
    {
      name: "lm_head.weight",
      dtype: "F32",
      shape: [c.vocabSize, c.dim],
      data: new Uint8Array(4 * c.vocabSize * c.dim),
    },
    {
      name: "model.layers.0.self_attn.rotary_emb.inv_freq",
      dtype: "F32",
      shape: [2],
      data: new Uint8Array(8),
    },
  ];
  const dir = join(tmp.dir, "t");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(hfConfigJson(c)));
  await Deno.writeFile(
    join(dir, "model.safetensors"),
    writeSafetensorsByHand([...hfTensorsByHand(c, tied.params), ...extra]),
  );
  assert.deepEqual((await loadHfModel(dir)).params.data, tied.params.data);
  // The row order itself: HF row h·hs + c·hs/2 + j is Meta row h·hs + 2j + c.
  assert.deepEqual([...hfRowOrder(2, 4)], [0, 2, 1, 3, 4, 6, 5, 7]);
  const w = Float32Array.from({ length: 8 * 3 }, (_, i) => i);
  assert.deepEqual(permuteRows(w, 3, hfRowOrder(2, 4), "toHf"), hfPermute(w, 2, 4, 3));
});

Deno.test("tokenizer.json by hand: BPE merges by rank, byte fallback, unk, decode, streaming, BOS/EOS checks", () => {
  const json = {
    version: "1.0",
    added_tokens: [
      { id: 0, content: "<unk>", special: true },
      { id: 1, content: "<s>", special: true },
      { id: 2, content: "</s>", special: true },
    ],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "▁" }, {
        type: "Replace",
        pattern: { String: " " },
        content: "▁",
      }],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      unk_token: "<unk>",
      fuse_unk: true,
      byte_fallback: true,
      vocab: {
        "<unk>": 0,
        "<s>": 1,
        "</s>": 2,
        "▁": 3,
        "a": 4,
        "b": 5,
        "c": 6,
        "▁a": 7,
        "ab": 8,
        "▁ab": 9,
        "<0x0A>": 10,
        "<0x21>": 11,
      },
      merges: ["a b", "▁ a", "▁ ab"],
    },
  };
  const bytes = enc.encode(JSON.stringify(json));
  const tok = Tokenizer.parse(bytes, 16, "hand.json");
  assert.ok(tok instanceof HfTokenizer);
  assert.equal(tok.kind, "hf");
  assert.equal(tok.vocabSize, 12);
  assert.deepEqual(tok.encode("ab"), [9]); // a+b first (rank 0), then ▁+ab
  assert.deepEqual(tok.encode("abc a"), [9, 6, 7]);
  assert.deepEqual(tok.encode("a\n"), [7, 10]); // "\n" by byte fallback
  assert.deepEqual(tok.encode("!"), [3, 11]);
  assert.deepEqual(tok.encode("é"), [3, 0]); // no byte tokens for it: unk
  assert.deepEqual(tok.encode("ab", { bos: true, eos: true }), [1, 9, 2]);
  assert.deepEqual(tok.encode(""), []);
  assert.equal(tok.decode([1, 9, 6, 7, 10, 2]), "abc a\n");
  assert.equal(tok.decode([7], 9), " a"); // after another token, the space stays
  const d = tok.decoder();
  assert.deepEqual([1, 9, 6, 7, 2, 7].map(d), ["", "ab", "c", " a", "", " a"]);
  assert.throws(() => tok.decode([12]), /Token id 12 is outside the vocabulary 0\.\.11/);
  // The pipeline's BOS/EOS are 1 and 2: a vocabulary that puts them elsewhere is refused by name.
  const moved = structuredClone(json);
  moved.model.vocab["<s>"] = 5, moved.model.vocab["b"] = 1, moved.added_tokens[1].id = 5;
  assert.throws(
    () => Tokenizer.parse(enc.encode(JSON.stringify(moved)), 16, "moved.json"),
    /moved\.json: BOS "<s>" is token 5 and EOS "<\/s>" is token 2; the pipeline needs BOS = 1 and EOS = 2/,
  );
  assert.throws(
    () => HfTokenizer.parse(bytes, 16, "cfg.json", { bos_token: "<|begin_of_text|>" }),
    /BOS "<\|begin_of_text\|>" is token \(none\)/,
  );
  assert.throws(
    () => Tokenizer.parse(bytes, 8, "small.json"),
    /token id (8|9|10|11) is outside the model's vocabulary of 8/,
  );
  assert.throws(() => Tokenizer.parse(enc.encode('{"model": 3}'), 16, "m.json"), /expected a "model" object/);
  assert.throws(
    () => Tokenizer.parse(enc.encode('{"model": {"type": "BPE"'), 16, "j.json"),
    /j\.json: not valid UTF-8 JSON/,
  );
  assert.throws(
    () => Tokenizer.parse(enc.encode('{"model": {"type": "Nope", "vocab": {}}}'), 16, "n.json"),
    /n\.json: @huggingface\/tokenizers cannot run it/,
  );
});

Deno.test("refused: other models, scaled rotary, biases, head_dim, missing/extra/misshaped tensors, bad indexes", async () => {
  const model = randomModel(tinyConfig(), 2);
  const c: LlamaConfig = model.config;
  await using tmp = await tempDir();
  let n = 0;
  const withConfig = async (extra: Record<string, unknown>) => {
    const dir = join(tmp.dir, `c${n++}`);
    await writeHfByHand(dir, model, { config: hfConfigJson(c, extra) });
    return dir;
  };
  await refuses(
    await withConfig({ model_type: "mistral" }),
    /model_type is "mistral"; this loader reads "llama" models only/,
  );
  await refuses(await withConfig({ architectures: ["LlamaForSequenceClassification"] }), /architectures is/);
  await refuses(
    await withConfig({ rope_scaling: { rope_type: "llama3", factor: 8 } }),
    /rope_scaling is set \(type "llama3"\)/,
  );
  await refuses(
    await withConfig({ rope_parameters: { rope_type: "yarn" } }),
    /rope_parameters has rope_type "yarn"/,
  );
  await refuses(await withConfig({ hidden_act: "gelu" }), /hidden_act is "gelu"/);
  await refuses(await withConfig({ attention_bias: true }), /attention_bias is true/);
  await refuses(
    await withConfig({ head_dim: 8 }),
    /head_dim is number 8 but hidden_size \/ num_attention_heads is 4/,
  );
  await refuses(await withConfig({ num_attention_heads: 3 }), /bad config: .*not divisible by nHeads 3/);
  await refuses(await withConfig({ hidden_size: "16" }), /expected hidden_size to be an integer, found "16"/);
  await refuses(
    await withConfig({ num_hidden_layers: 1 }),
    /tensor model\.layers\.1\.input_layernorm\.weight is not part of a 1-layer Llama/,
  );
  await refuses(
    await withConfig({ num_hidden_layers: 3 }),
    /tensor model\.layers\.2\.input_layernorm\.weight \(our layers\.2\.attention_norm\) is missing/,
  );
  // Sizes the files cannot hold are refused before the table is allocated.
  await refuses(
    await withConfig({ num_hidden_layers: 100_000 }),
    /needs at least \d+ bytes of weights \(2 per value\), the weight files hold \d+/,
  );
  await refuses(await withConfig({ vocab_size: 33 }), /needs at least|has shape \[32, 16\] but the config/);
  // rope_parameters with the default rotary carries rope_theta (transformers ≥ 4.57).
  const theta = await loadHfModel(
    await withConfig({ rope_theta: undefined, rope_parameters: { rope_type: "default", rope_theta: 5e5 } }),
  );
  assert.equal(theta.config.ropeTheta, 5e5);

  const withTensors = async (edit: (ts: ReturnType<typeof hfTensorsByHand>) => void) => {
    const dir = join(tmp.dir, `t${n++}`);
    await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(hfConfigJson(c)));
    const ts = hfTensorsByHand(c, model.params);
    edit(ts);
    await Deno.writeFile(join(dir, "model.safetensors"), writeSafetensorsByHand(ts));
    return dir;
  };
  await refuses(
    await withTensors((ts) => ts.splice(3, 1)),
    /tensor model\.layers\.0\.self_attn\.q_proj\.weight \(our layers\.0\.wq\) is missing/,
  );
  await refuses(
    await withTensors((ts) => ts.push({ ...ts[1], name: "model.layers.0.self_attn.q_proj.bias" })),
    /tensor model\.layers\.0\.self_attn\.q_proj\.bias is not part of a 2-layer Llama model/,
  );
  await refuses(
    await withTensors((ts) => ts[3].shape = [8, 2]),
    /has shape \[8, 2\] but the config .* makes layers\.0\.wq \[16, 16\]|dtype F32 and shape/,
  );
  await refuses(
    await withTensors((ts) => new Float32Array(ts[1].data.buffer)[2] = Infinity),
    /non-finite weight Infinity in tensor model\.layers\.0\.input_layernorm\.weight at element 2/,
  );
  await refuses(
    await withTensors((ts) => ts[5] = { ...ts[5], dtype: "I32" }),
    /has dtype I32; this reader takes F32, F16, BF16/,
  );
  // Directory problems.
  const empty = join(tmp.dir, "empty");
  await Deno.mkdir(empty);
  await refuses(empty, /the directory has no config\.json/);
  await Deno.writeTextFile(join(empty, "config.json"), JSON.stringify(hfConfigJson(c)));
  await refuses(
    empty,
    /neither model\.safetensors nor model\.safetensors\.index\.json .*PyTorch \.bin weights are not read/,
  );
  await Deno.writeTextFile(join(empty, "config.json"), "{ not json");
  await refuses(empty, /config\.json is not valid JSON/);
  // Indexes: a name outside the directory, a shard that does not hold what the index says, an unlisted tensor.
  const sharded = join(tmp.dir, "s");
  await Deno.mkdir(sharded);
  const files = hfCheckpointFiles(model, { shardBytes: 2048 }); // the largest tensor: many shards
  for (const [name, bytes] of files) await Deno.writeFile(join(sharded, name), bytes);
  const index = JSON.parse(new TextDecoder().decode(files.get("model.safetensors.index.json")!));
  const writeIndex = (map: Record<string, string>) =>
    Deno.writeTextFile(join(sharded, "model.safetensors.index.json"), JSON.stringify({ weight_map: map }));
  const names = Object.keys(index.weight_map);
  await writeIndex({ ...index.weight_map, [names[0]]: "../escape.safetensors" });
  await refuses(
    sharded,
    /weight_map\["model\.embed_tokens\.weight"\] is "\.\.\/escape\.safetensors"; expected a file name in the same directory/,
  );
  const moved = { ...index.weight_map, [names[0]]: index.weight_map[names.at(-1)!] };
  await writeIndex(moved);
  await refuses(
    sharded,
    /tensor model\.embed_tokens\.weight is in this file but the index does not list it here|the index puts tensor model\.embed_tokens\.weight in this file, which does not hold it/,
  );
  await writeIndex({ ...index.weight_map, [names[0]]: "missing.safetensors" });
  await assert.rejects(loadHfModel(sharded), /Weight file not found: .*missing\.safetensors/);
});

Deno.test("CLI: quantize --method ptq and eval take a Hugging Face directory; the .rabit carries tokenizer.json", async () => {
  const { model, tokenizer } = await stories();
  await using tmp = await tempDir();
  const dir = join(tmp.dir, "stories-hf");
  await writeHfByHand(dir, model, { tokenizer });
  const data = join(tmp.dir, "data.txt"), out = join(tmp.dir, "hf.rabit");
  await Deno.writeTextFile(data, (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 20_000));
  const q = await runCli([
    "quantize",
    "--model",
    dir,
    "--method",
    "ptq",
    "--data",
    data,
    "--calib-tokens",
    "256",
    "--svid-rounds",
    "0",
    "--out",
    out,
    "--json",
  ]);
  assert.equal(q.code, 0, q.stderr);
  const packed = await readRabit(out);
  assert.equal(packed.model.quantized.size, 35);
  assert.equal(packed.tokenizer!.kind, "hf");
  assert.deepEqual(packed.tokenizerBytes, await Deno.readFile(join(dir, "tokenizer.json")));
  assert.deepEqual(packed.tokenizer!.encode("Once upon a time"), [403, 407, 261, 378]);
  const evalOptions = { context: 64, maxWindows: 2, backend: "cpu" } as const;
  assert.equal(
    (await evalCli(dir, data, evalOptions)).ppl,
    (await evalCli(MODEL_PATH, data, evalOptions)).ppl,
  );
  const gen = await runCli(["generate", "--model", dir, "--steps", "8", "--backend", "cpu", "--json"]);
  assert.equal(gen.code, 0, gen.stderr);
  const ins = await runCli(["inspect", dir, "--json"]);
  assert.equal(ins.code, 0, ins.stderr);
  assert.equal(lastJson(ins.stdout).format, "hf");
});

Deno.test("a tokenizer.json the pipeline cannot run leaves the checkpoint usable and says why when text is needed", async () => {
  await using tmp = await tempDir();
  const { model, tokenizer } = await stories();
  const json = JSON.parse(tokenizerJsonFromLlama2c(tokenizer));
  await writeHfByHand(tmp.dir, model);
  await Deno.writeTextFile(join(tmp.dir, "tokenizer.json"), JSON.stringify(json));
  await Deno.writeTextFile(
    join(tmp.dir, "tokenizer_config.json"),
    JSON.stringify({ bos_token: "<|begin_of_text|>" }),
  );
  const opened = await openModel(tmp.dir);
  assert.equal(opened.tokenizer, undefined);
  assert.deepEqual(opened.model.params.data, model.params.data);
  await assert.rejects(openModel(tmp.dir, { requireTokenizer: true }), (e: Error) => {
    assert.match(
      e.message,
      /^No tokenizer for .*: .*tokenizer\.json: BOS "<\|begin_of_text\|>" is token \(none\)/,
    );
    assert.match(e.message, /pass --tokenizer FILE/);
    return true;
  });
  const given = await openModel(tmp.dir, { tokenizer: TOKENIZER_PATH, requireTokenizer: true });
  assert.equal(given.tokenizer!.kind, "llama2c");
  // Without tokenizer_config.json the same file is fine (BOS from its post-processor: <s> = 1).
  await Deno.remove(join(tmp.dir, "tokenizer_config.json"));
  assert.equal((await openModel(tmp.dir, { requireTokenizer: true })).tokenizer!.kind, "hf");
});
