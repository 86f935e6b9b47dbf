// Export to safetensors and back: a packed .rabit as planes and scales (the same model, bit for bit, and
// the bit layout docs/safetensors.md documents), dequantized as a Hugging Face checkpoint (the .rabit's
// logits within fp rounding), and training states (export-state → import-state resumes to the losses of
// the original checkpoint). Through the library and the CLI.

import assert from "node:assert/strict";
import { join } from "node:path";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { FormatError } from "../src/io/errors.ts";
import { hfCheckpointFiles, hfLargestTensor, hfRowOrder, writeHfModel } from "../src/io/hf.ts";
import { loadLlama2c } from "../src/io/llama2c.ts";
import { openModel } from "../src/io/load_model.ts";
import { type LoadedRabit, parseRabit, serializeRabit, writeRabit } from "../src/io/rabit_format.ts";
import { packedSafetensors, parsePackedSafetensors } from "../src/io/rabit_safetensors.ts";
import { parseSafetensors, serializeSafetensors, tensorBytes } from "../src/io/safetensors.ts";
import { Llama2cTokenizer } from "../src/io/tokenizer.ts";
import { linearNames } from "../src/model/params.ts";
import { packSigns, unpackSigns, wordsPerRow } from "../src/quant/bitpack.ts";
import { PackedLinear } from "../src/quant/residual_binary.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { readCheckpoint } from "../src/train/checkpoint.ts";
import { CpuTrainingBackend } from "../src/train/cpu_backend.ts";
import { WindowSet } from "../src/train/data.ts";
import { initializeTable } from "../src/train/init.ts";
import { runTraining } from "../src/train/loop.ts";
import { exportTrainState, importTrainState } from "../src/train/state_safetensors.ts";
import { trainLayout } from "../src/train/trainable.ts";
import { Rng } from "../src/util/rng.ts";
import { evalCli, lastJson, runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH, randomModel, tinyConfig, TOKENIZER_PATH } from "./_data.ts";
import { logitsOf } from "./_forward.ts";
import { maxAbsDiff } from "./_numeric.ts";

/**
 * stories260K with every block linear packed into k = 2 random sign planes and positive scales (the
 * embedding stored as f16 too), written as a .rabit file and read back: a packed model whose every value
 * the file format represents exactly.
 */
async function packedStories(): Promise<LoadedRabit> {
  const ck = await loadLlama2c(MODEL_PATH);
  const rng = new Rng(17);
  const quantized = new Map<string, PackedLinear>();
  for (const name of linearNames(ck.config)) {
    const [out, inF] = ck.params.shape(name);
    const k = 2, wpr = wordsPerRow(inF);
    const planes = new Uint32Array(k * out * wpr);
    for (let p = 0; p < k; p++) {
      const signs = Float32Array.from({ length: out * inF }, () => rng.normal());
      planes.set(packSigns(signs, out, inF), p * out * wpr);
    }
    const g = Float32Array.from(
      { length: k * out },
      (_, i) => (i < out ? 0.05 : 0.02) * (1 + 0.5 * rng.next()),
    );
    const h = Float32Array.from({ length: k * inF }, () => 0.5 + rng.next());
    quantized.set(name, new PackedLinear({ out, in: inF, k, planes, g, h }, name));
  }
  const tokenizer = await Deno.readFile(TOKENIZER_PATH);
  const bytes = serializeRabit({
    model: { config: ck.config, params: ck.params, quantized },
    tokenizerBytes: tokenizer,
    method: "ptq",
    options: { paths: 2, note: "random planes" },
    metadata: { source: "test", layers: [{ name: "layers.0.wq", relError: 0.5 }] },
    dtypes: { tok_embeddings: "f16", "layers.1.w2.h": "f32" },
  });
  return parseRabit(bytes, "packed.rabit");
}

Deno.test("packed export: the same model bit for bit, the same .rabit back, and the documented bit layout", async () => {
  const rabit = await packedStories();
  const bytes = packedSafetensors(rabit);
  const back = parsePackedSafetensors(bytes, "p.safetensors");
  assert.deepEqual(back.model.config, rabit.model.config);
  assert.deepEqual(back.model.params.data, rabit.model.params.data);
  for (const [name, q] of rabit.model.quantized) {
    const b = back.model.quantized.get(name)!;
    assert.deepEqual([b.k, b.out, b.in], [q.k, q.out, q.in], name);
    assert.deepEqual(b.planes, q.planes, name);
    assert.deepEqual(b.g, q.g, name);
    assert.deepEqual(b.h, q.h, name);
  }
  assert.deepEqual(logitsOf(back.model), logitsOf(rabit.model));
  // Everything a .rabit holds comes back: writing it again gives the same file (creation info aside).
  assert.deepEqual(back.dtypes, rabit.dtypes);
  assert.deepEqual(serializeRabit({ ...back, created: rabit.created }), serializeRabit(rabit));
  assert.equal(back.tokenizer!.kind, "llama2c");

  // The layout as docs/safetensors.md states it, read with nothing but the header: U8 planes whose bit b of
  // byte i in a row is column 8i + b, rows of q/k in Hugging Face order; scales as stored.
  const h = parseSafetensors(bytes, "p", { dtypes: ["F32", "F16", "U8"] });
  assert.equal(h.metadata.rabit_layout, "rabit-packed-v1");
  assert.equal(h.metadata.method, "ptq");
  assert.deepEqual(JSON.parse(h.metadata.config), rabit.model.config);
  const c = rabit.model.config, hs = c.dim / c.nHeads;
  for (
    const [name, module, order] of [
      ["layers.0.wk", "model.layers.0.self_attn.k_proj", hfRowOrder(c.nKvHeads, hs)],
      ["layers.2.w2", "model.layers.2.mlp.down_proj", undefined],
    ] as const
  ) {
    const q = rabit.model.quantized.get(name)!;
    const t = h.byName.get(`${module}.planes`)!;
    assert.equal(t.dtype, "U8");
    assert.deepEqual(t.shape, [2, q.out, 4 * wordsPerRow(q.in)]);
    const raw = tensorBytes(bytes, t);
    const rowBytes = t.shape[2];
    for (let p = 0; p < q.k; p++) {
      const wpr = wordsPerRow(q.in);
      const meta = unpackSigns(q.planes.subarray(p * q.out * wpr, (p + 1) * q.out * wpr), q.out, q.in);
      for (let r = 0; r < q.out; r++) {
        const metaRow = order ? order[r] : r;
        for (let col = 0; col < q.in; col++) {
          const byte = raw[(p * q.out + r) * rowBytes + (col >> 3)];
          const bit = (byte >> (col & 7)) & 1;
          assert.equal(bit ? 1 : -1, meta[metaRow * q.in + col], `${name} plane ${p} row ${r} col ${col}`);
        }
      }
    }
    assert.equal(h.byName.get(`${module}.g`)!.dtype, "F16");
  }
  assert.equal(h.byName.get("model.layers.1.mlp.down_proj.h")!.dtype, "F32");
  assert.equal(h.byName.get("model.embed_tokens.weight")!.dtype, "F16");
});

Deno.test("packed import refuses files that are not a packed export or do not fit their config", async () => {
  const rabit = await packedStories();
  const bytes = packedSafetensors(rabit);
  const h = parseSafetensors(bytes, "p", { dtypes: ["F32", "F16", "U8"] });
  const rebuild = (
    edit: (
      ts: { name: string; dtype: string; shape: number[]; data: Uint8Array }[],
      meta: Record<string, string>,
    ) => void,
  ) => {
    const ts = h.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      data: tensorBytes(bytes, t),
    }));
    const meta = { ...h.metadata };
    edit(ts, meta);
    return serializeSafetensors(ts, meta);
  };
  const refuses = (b: Uint8Array, re: RegExp) =>
    assert.throws(() => parsePackedSafetensors(b, "x.safetensors"), (e) => {
      assert.ok(e instanceof FormatError, `${e}`);
      assert.match((e as Error).message, re);
      return true;
    });
  refuses(
    rebuild((_, m) => delete m.rabit_layout),
    /metadata rabit_layout is nothing, expected "rabit-packed-v1"/,
  );
  refuses(rebuild((_, m) => m.config = "{"), /metadata config is not valid JSON/);
  refuses(
    rebuild((_, m) => m.config = JSON.stringify({ ...rabit.model.config, nLayers: 4 })),
    /unexpected tensor model\.layers\.4/,
  );
  refuses(
    rebuild((ts) => ts.splice(ts.findIndex((t) => t.name.endsWith("q_proj.g")), 1)),
    /tensor model\.layers\.\d\.self_attn\.q_proj\.g is missing/,
  );
  refuses(
    rebuild((ts) => {
      const t = ts.find((t) => t.name === "model.layers.0.mlp.down_proj.planes")!;
      t.data = t.data.slice();
      t.data[23] = 0xff; // the last byte of row 0's last word: padding columns 172..191
    }),
    /tensor model\.layers\.0\.mlp\.down_proj\.planes: padding bits of plane 0 are not 0/,
  );
  refuses(
    rebuild((ts) => {
      const t = ts.find((t) => t.name === "model.layers.0.mlp.up_proj.planes")!;
      t.shape = [4, t.shape[1] / 2, t.shape[2]];
    }),
    /has shape \[4, 86, 8\], the config implies \[4, 172, 8\]/,
  );
});

Deno.test("CLI export: packed file and dequantized Hugging Face checkpoint; both load, evaluate and match", async () => {
  const rabit = await packedStories();
  await using tmp = await tempDir();
  const m = join(tmp.dir, "m.rabit");
  await writeRabit(m, rabit);
  const p = join(tmp.dir, "m.safetensors");
  const ex = await runCli(["export", m, "--out", p, "--json"]);
  assert.equal(ex.code, 0, ex.stderr);
  assert.equal(lastJson(ex.stdout).layout, "rabit-packed-v1");
  assert.equal(lastJson(ex.stdout).binarizedLayers, 35);
  const packed = await openModel(p, { requireTokenizer: true });
  assert.equal(packed.format, "rabit-safetensors");
  assert.equal(packed.rabit!.method, "ptq");
  assert.deepEqual(logitsOf(packed.model), logitsOf(rabit.model));
  const text = (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 3000);
  const data = join(tmp.dir, "t.txt");
  await Deno.writeTextFile(data, text);
  const evalOf = async (model: string) =>
    (await evalCli(model, data, { context: 64, backend: "cpu" })).ppl as number;
  const pplRabit = await evalOf(m);
  assert.equal(await evalOf(p), pplRabit);

  // Dequantized: a transformers directory (config.json, weights, tokenizer.json) and one file.
  const dir = join(tmp.dir, "hf");
  const dq = await runCli(["export", m, "--out", dir, "--dequantize", "--json"]);
  assert.equal(dq.code, 0, dq.stderr);
  assert.deepEqual(
    [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
    ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"],
  );
  const dense = await openModel(dir, { requireTokenizer: true });
  assert.equal(dense.format, "hf");
  assert.equal(dense.tokenizer!.kind, "hf");
  const want = logitsOf(rabit.model), got = logitsOf(dense.model);
  const scale = Math.max(...want.map(Math.abs));
  assert.ok(maxAbsDiff(got, want) < 1e-5 * scale, `dequantized logits differ by ${maxAbsDiff(got, want)}`);
  const tok = await Llama2cTokenizer.load(TOKENIZER_PATH, 512);
  const ids = perplexityTokens((t) => tok.encode(t), text);
  assert.deepEqual(perplexityTokens((t) => dense.tokenizer!.encode(t), text), ids);
  const pplDense = await evalOf(dir);
  assert.ok(Math.abs(pplDense / pplRabit - 1) < 1e-4, `dense ${pplDense}, packed ${pplRabit}`);
  const direct = await perplexity(new CpuSession(dense.model), ids, { context: 64 });
  assert.equal(direct.ppl, pplDense);

  const one = join(tmp.dir, "dense.safetensors");
  const dq1 = await runCli(["export", m, "--out", one, "--dequantize", "--dtype", "bf16"]);
  assert.equal(dq1.code, 0, dq1.stderr);
  const bf = await openModel(one, { requireTokenizer: true });
  assert.ok(maxAbsDiff(logitsOf(bf.model), want) < 3e-2 * scale);
  const sharded = join(tmp.dir, "sharded");
  assert.equal(
    (await runCli(["export", m, "--out", sharded, "--dequantize", "--shard-bytes", "200000"])).code,
    0,
  );
  assert.deepEqual((await openModel(sharded)).model.params.data, dense.model.params.data);

  // Usage errors: exit code 2 and a one-line message.
  const toRabit = (...extra: string[]) => [
    "export",
    m,
    "--out",
    join(tmp.dir, "x.rabit"),
    "--vocab-dtype",
    "i8",
    ...extra,
  ];
  const onlyDense = (option: string) =>
    new RegExp(
      `^error: export: ${option} applies only with --dequantize \\(safetensors output\\); ` +
        "a \\.rabit --out takes --vocab-dtype\n$",
    );
  const usage: [string[], RegExp][] = [
    [["export", m, "--out", dir], /without --dequantize, --out must be a \.safetensors file/],
    [["export", m, "--out", p, "--dtype", "f16"], /--dtype applies only with --dequantize/],
    [["export", m], /--out is required/],
    [["export", "--out", p], /expected one MODEL, found 0 arguments/],
    // A .rabit --out: the dense-export options are refused, and a bad value is named as one first.
    [toRabit("--dtype", "f16"), onlyDense("--dtype")],
    [toRabit("--shard-bytes", "200000"), onlyDense("--shard-bytes")],
    [toRabit("--dtype", "f64"), /--dtype must be one of/],
    [toRabit("--shard-bytes", "0"), /--shard-bytes must be/],
    // Shards cannot be smaller than the largest tensor (never split): refused before anything is written.
    [
      ["export", m, "--out", join(tmp.dir, "tiny"), "--dequantize", "--shard-bytes", "1000"],
      /^error: export: --shard-bytes 1000 is smaller than the largest tensor \(131072 bytes, model\.embed_tokens\.weight\); use at least that\n$/,
    ],
    [
      [
        "export",
        m,
        "--out",
        join(tmp.dir, "tiny"),
        "--dequantize",
        "--dtype",
        "f16",
        "--shard-bytes",
        "65535",
      ],
      /--shard-bytes 65535 is smaller than the largest tensor \(65536 bytes, model\.embed_tokens\.weight\)/,
    ],
  ];
  for (const [args, re] of usage) {
    const r = await runCli([...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  assert.deepEqual([...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort(), [
    "dense.safetensors",
    "hf",
    "m.rabit",
    "m.safetensors",
    "sharded",
    "t.txt",
  ]);
});

Deno.test("hfCheckpointFiles: shards hold at most shardBytes of tensor data; a limit below the largest tensor throws", async () => {
  const { config, params } = await loadLlama2c(MODEL_PATH);
  const largest = hfLargestTensor(config, "F32");
  assert.deepEqual(largest, { name: "model.embed_tokens.weight", bytes: 512 * 64 * 4 });
  const files = hfCheckpointFiles({ config, params }, { shardBytes: largest.bytes });
  const shards = [...files].filter(([name]) => /^model-\d+-of-\d+\.safetensors$/.test(name));
  assert.ok(shards.length > 1);
  for (const [name, bytes] of shards) {
    const data = parseSafetensors(bytes, name).tensors.reduce((a, t) => a + t.byteLength, 0);
    assert.ok(data <= largest.bytes, `${name}: ${data} bytes of tensors`);
  }
  assert.throws(
    () => hfCheckpointFiles({ config, params }, { shardBytes: largest.bytes - 1 }),
    RangeError,
    `shardBytes ${
      largest.bytes - 1
    } is smaller than the largest tensor (${largest.bytes} bytes, model.embed_tokens.weight)`,
  );
  await using tmp = await tempDir();
  const dir = join(tmp.dir, "hf");
  await assert.rejects(() => writeHfModel(dir, { config, params }, { shardBytes: 1000 }), RangeError);
  await assert.rejects(() => Deno.stat(dir), Deno.errors.NotFound, "no directory is left behind");
});

// ---------------------------------------------------------------------------------------------------
// Training states.

const config = tinyConfig();

/** A tiny teacher, its table initialized, random windows and a CPU backend (as tests/train.test.ts). */
function setup(optimizer: "adamw" | "muon") {
  const teacher = randomModel(config, 11);
  const layout = trainLayout(config, 2, "rabit", "norms");
  const rng = new Rng(5);
  const raw = Array.from({ length: 6 }, () => Array.from({ length: 12 }, () => rng.int(config.vocabSize)));
  initializeTable(teacher, layout, { method: "rabit", k: 2, stats: calibrate(teacher, raw.slice(0, 2)) });
  const backend = new CpuTrainingBackend(teacher, layout, { method: "rabit", k: 2, gamma: 0.5, optimizer });
  const windows = WindowSet.fromTexts(
    raw.map((_, i) => ({ name: `w${i}`, text: String(i) })),
    (t) => raw[Number(t)].slice(1),
    12,
  );
  return { backend, windows, layout };
}

for (const optimizer of ["adamw", "muon"] as const) {
  Deno.test(`${optimizer}: checkpoint → export-state → import-state resumes to the same losses`, async () => {
    await using tmp = await tempDir();
    const path = join(tmp.dir, "ck");
    const identity = { teacher: { config, crc: 7 }, options: { a: 1 } };
    const opts = { batch: 2, lr: 3e-3, seed: 9, identity };
    const a = setup(optimizer);
    await runTraining(a.backend, a.windows, { ...opts, steps: 6, stopAfter: 3, checkpointPath: path });
    const ck = await readCheckpoint(path);
    const bytes = exportTrainState(ck);
    const h = parseSafetensors(bytes, "s");
    assert.equal(h.metadata.rabit_layout, "rabit-train-state-v1");
    assert.deepEqual(h.byName.get("layers.0.wq.w")!.shape, [16, 16]);
    assert.deepEqual(h.byName.get("layers.1.w2.g")!.shape, [2, 16]);
    assert.ok(h.byName.has("optimizer.m.layers.0.wq.w"));
    // AdamW keeps second moments for every entry; Muon only for the scales and norms.
    assert.equal(h.byName.has("optimizer.v.layers.0.wq.w"), optimizer === "adamw");
    assert.ok(h.byName.has("optimizer.v.layers.0.wq.g"));
    const imported = importTrainState(bytes, "s.safetensors");
    assert.deepEqual(imported, ck);
    const resumeWith = async (c: typeof ck) => {
      const b = setup(optimizer);
      b.layout.table.data.fill(0);
      return (await runTraining(b.backend, b.windows, { ...opts, steps: 6, resume: c })).log.losses;
    };
    const fromOriginal = await resumeWith(ck);
    assert.deepEqual(await resumeWith(imported), fromOriginal);
    const straight = setup(optimizer);
    assert.deepEqual(
      (await runTraining(straight.backend, straight.windows, { ...opts, steps: 6 })).log.losses,
      fromOriginal,
    );
    // An edited state (the latents of one layer scaled) resumes from the edit, not from the original.
    const edited = parseSafetensors(bytes, "s");
    const ts = edited.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      data: tensorBytes(bytes, t).slice(),
    }));
    const w = ts.find((t) => t.name === "layers.0.wq.w")!;
    new Float32Array(w.data.buffer).forEach((x, i, arr) => arr[i] = -x);
    const changed = await resumeWith(importTrainState(serializeSafetensors(ts, edited.metadata)));
    assert.notDeepEqual(changed.slice(3), fromOriginal.slice(3));
    assert.deepEqual(changed.slice(0, 3), fromOriginal.slice(0, 3)); // the log of steps 1..3 is kept
  });
}

Deno.test("import-state refuses states that do not match their layout", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.dir, "ck");
  const a = setup("adamw");
  await runTraining(a.backend, a.windows, {
    batch: 2,
    lr: 3e-3,
    seed: 9,
    steps: 2,
    checkpointPath: path,
    identity: { teacher: { config, crc: 7 }, options: {} },
  });
  const bytes = exportTrainState(await readCheckpoint(path));
  const h = parseSafetensors(bytes, "s");
  const rebuild = (
    edit: (
      ts: { name: string; dtype: string; shape: number[]; data: Uint8Array }[],
      m: Record<string, string>,
    ) => void,
  ) => {
    const ts = h.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      data: tensorBytes(bytes, t),
    }));
    const meta = { ...h.metadata };
    edit(ts, meta);
    return serializeSafetensors(ts, meta);
  };
  const refuses = (b: Uint8Array, re: RegExp) =>
    assert.throws(() => importTrainState(b, "s.safetensors"), (e) => {
      assert.ok(e instanceof FormatError, `${e}`);
      assert.match((e as Error).message, re);
      return true;
    });
  refuses(rebuild((ts) => ts.splice(0, 1)), /tensor layers\.0\.wq\.w is missing/);
  refuses(rebuild((ts) => ts.push({ ...ts[0], name: "extra" })), /unexpected tensor extra/);
  refuses(
    rebuild((ts) => ts[0].shape = [8, 32]),
    /tensor layers\.0\.wq\.w has shape \[8, 32\], the layout says \[16, 16\]/,
  );
  refuses(rebuild((_, m) => m.step = "-1"), /expected metadata step to be an integer >= 0/);
  refuses(rebuild((_, m) => m.step = "9"), /expected metadata log to hold .* at least 9 numbers/);
  refuses(rebuild((_, m) => delete m.teacher), /metadata teacher is missing/);
  refuses(rebuild((_, m) => m.rabit_layout = "x"), /metadata rabit_layout is "x"/);
});

Deno.test("CLI: export-state and import-state; quantize --resume accepts the imported checkpoint", async () => {
  await using tmp = await tempDir();
  const data = join(tmp.dir, "d.txt");
  await Deno.writeTextFile(data, (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 30_000));
  const opts = [
    "--method",
    "rabit",
    "--data",
    data,
    "--steps",
    "2",
    "--batch",
    "1",
    "--seq",
    "32",
    "--calib-tokens",
    "256",
    "--svid-rounds",
    "0",
    "--backend",
    "cpu",
    "--json",
  ];
  const ck = join(tmp.dir, "ck"), a = join(tmp.dir, "a.rabit");
  const run = await runCli(["quantize", "--out", a, "--checkpoint", ck, ...opts]);
  assert.equal(run.code, 0, run.stderr);
  const st = join(tmp.dir, "state.safetensors"), ck2 = join(tmp.dir, "ck2");
  const ex = await runCli(["export-state", ck, "--out", st, "--json"]);
  assert.equal(ex.code, 0, ex.stderr);
  assert.equal(lastJson(ex.stdout).step, 2);
  const im = await runCli(["import-state", st, "--out", ck2, "--json"]);
  assert.equal(im.code, 0, im.stderr);
  assert.deepEqual(await readCheckpoint(ck2), await readCheckpoint(ck));
  const b = join(tmp.dir, "b.rabit");
  const resumed = await runCli(["quantize", "--out", b, "--resume", ck2, ...opts]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(lastJson(resumed.stdout).losses, lastJson(run.stdout).losses);
  const [ra, rb] = [parseRabit(await Deno.readFile(a)), parseRabit(await Deno.readFile(b))];
  for (const [name, q] of ra.model.quantized) {
    assert.deepEqual(rb.model.quantized.get(name)!.planes, q.planes, name);
  }
  const bad = await runCli(["import-state", a, "--out", ck2]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: .*a\.rabit: /);
});

Deno.test("CLI export --out F.rabit --vocab-dtype i8: int8 vocabulary, packed layers kept, refusals", async () => {
  const rabit = await packedStories();
  await using tmp = await tempDir();
  const m = join(tmp.dir, "m.rabit");
  await writeRabit(m, rabit);
  const out = join(tmp.dir, "m8.rabit");
  const r = await runCli(["export", m, "--out", out, "--vocab-dtype", "i8", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(lastJson(r.stdout).vocabDtype, "i8");
  const back = await openModel(out, { requireTokenizer: true });
  assert.equal(back.rabit!.dtypes.tok_embeddings, "i8");
  assert.equal(back.rabit!.method, "ptq");
  assert.equal(back.model.classifierStorage, "i8");
  for (const [name, q] of rabit.model.quantized) {
    assert.deepEqual(back.model.quantized.get(name)!.planes, q.planes);
  }
  assert.ok((await Deno.stat(out)).size < (await Deno.stat(m)).size);
  // A float model converts too.
  const f = await runCli(["export", MODEL_PATH, "--out", join(tmp.dir, "f8.rabit"), "--vocab-dtype", "i8"]);
  assert.equal(f.code, 0, f.stderr);
  for (
    const [args, re] of [
      [["--out", join(tmp.dir, "x.rabit")], /a \.rabit --out needs --vocab-dtype/],
      [
        ["--out", join(tmp.dir, "x.safetensors"), "--vocab-dtype", "i8"],
        /--vocab-dtype applies only to a \.rabit/,
      ],
      [["--out", join(tmp.dir, "x.rabit"), "--vocab-dtype", "i4"], /vocab-dtype/],
    ] as const
  ) {
    const bad = await runCli(["export", m, ...args]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, re);
  }
  assert.deepEqual([...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort(), [
    "f8.rabit",
    "m.rabit",
    "m8.rabit",
  ]);
});
