// Mixed k: a k per block linear (quant/layer_paths.ts), from the option's parsing to a trained .rabit whose
// layers carry their own k and run on every backend, and the refusals of what it cannot honour.

import assert from "node:assert/strict";
import { evalCli, lastJson, runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH } from "./_data.ts";
import { meanPaths, parsePathsBy, resolvePaths } from "../src/quant/layer_paths.ts";
import { readRabit } from "../src/io/rabit_format.ts";
import { openModel } from "../src/io/load_model.ts";
import { quantize } from "../src/train/quantize.ts";
import { layerPaths, trainLayout } from "../src/train/trainable.ts";

const config = {
  dim: 8,
  hiddenDim: 16,
  nLayers: 2,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: 10,
  seqLen: 8,
  sharedClassifier: true,
  normEps: 1e-5,
  ropeTheta: 10000,
};

Deno.test("paths by layer: parsed, resolved with names over kinds, counted per weight; bad specs refused", () => {
  assert.deepEqual(parsePathsBy("wq=3, w2 = 1,layers.1.w1=4"), { wq: 3, w2: 1, "layers.1.w1": 4 });
  const k = resolvePaths(config, 2, { wq: 3, w2: 1, "layers.1.w1": 4, "layers.1.wq": 1 });
  assert.deepEqual(
    [...k],
    [
      ["layers.0.wq", 3],
      ["layers.0.wk", 2],
      ["layers.0.wv", 2],
      ["layers.0.wo", 2],
      ["layers.0.w1", 2],
      ["layers.0.w2", 1],
      ["layers.0.w3", 2],
      ["layers.1.wq", 1], // the layer's own name wins over its kind
      ["layers.1.wk", 2],
      ["layers.1.wv", 2],
      ["layers.1.wo", 2],
      ["layers.1.w1", 4],
      ["layers.1.w2", 1],
      ["layers.1.w3", 2],
    ],
  );
  // Weights per block: wq 64, wk 32, wv 32, wo 64, w1 128, w2 128, w3 128 = 576.
  // Planes: block 0: 3·64 + 2·32 + 2·32 + 2·64 + 2·128 + 1·128 + 2·128 = 1088;
  //         block 1: 1·64 + 64 + 64 + 128 + 4·128 + 128 + 256 = 1216.
  assert.equal(meanPaths(config, k), (1088 + 1216) / 1152);
  assert.equal(meanPaths(config, resolvePaths(config, 3)), 3);
  for (
    const [spec, message] of [
      ["wq:3", /expected KIND=K pairs/],
      ["wq=3,", /expected KIND=K pairs/],
      ["wq=-1", /expected KIND=K pairs/],
      ["wq=3,wq=2", /"wq" is given twice/],
    ] as const
  ) assert.throws(() => parsePathsBy(spec), message, spec);
  assert.throws(
    () => resolvePaths(config, 2, { wx: 3 }),
    /expected a kind \(wq, wk, wv, wo, w1, w2, w3\).*"wx"/,
  );
  assert.throws(() => resolvePaths(config, 2, { "layers.2.wq": 3 }), /L in 0\.\.1, found "layers\.2\.wq"/);
  assert.throws(
    () => resolvePaths(config, 2, { "layers.2": 3 }),
    /a block layers\.L .*L in 0\.\.1, found "layers\.2"/,
  );
  assert.throws(() => resolvePaths(config, 2, { "layers.": 3 }), /found "layers\."/);
  assert.throws(
    () => resolvePaths(config, 2, { "layers.0": 0 }),
    /paths of layers\.0: expected 1\.\.4, found 0/,
  );
  assert.throws(() => resolvePaths(config, 2, { wq: 5 }), /paths of wq: expected 1\.\.4, found 5/);
  assert.throws(() => resolvePaths(config, 2, { wq: 1.5 }), /expected 1\.\.4, found 1\.5/);
  assert.throws(() => resolvePaths(config, 0), /the default paths: expected 1\.\.4/);
});

Deno.test("paths by layer: a block sets its seven linears, under a layer name and over a kind", () => {
  const spec = parsePathsBy("layers.1=3,wq=1,layers.1.w2=4,wk=4");
  assert.deepEqual(spec, { "layers.1": 3, wq: 1, "layers.1.w2": 4, wk: 4 });
  const k = resolvePaths(config, 2, spec);
  assert.deepEqual(
    [...k],
    [
      ["layers.0.wq", 1], // kinds only in block 0
      ["layers.0.wk", 4],
      ["layers.0.wv", 2],
      ["layers.0.wo", 2],
      ["layers.0.w1", 2],
      ["layers.0.w2", 2],
      ["layers.0.w3", 2],
      ["layers.1.wq", 3], // the block wins over the kind
      ["layers.1.wk", 3],
      ["layers.1.wv", 3],
      ["layers.1.wo", 3],
      ["layers.1.w1", 3],
      ["layers.1.w2", 4], // the layer's own name wins over its block
      ["layers.1.w3", 3],
    ],
  );
  // A block up and a block down at equal planes: the mean stays 2.
  assert.equal(meanPaths(config, resolvePaths(config, 2, { "layers.0": 1, "layers.1": 3 })), 2);
});

Deno.test("a mixed-k training layout: each layer's scales and standard's stacked latents take its k", () => {
  const k = resolvePaths(config, 2, { wq: 3, "layers.1.w1": 1 });
  const rabit = trainLayout(config, k, "rabit", "norms");
  assert.deepEqual(rabit.table.shape("layers.0.wq.g"), [3, 8]);
  assert.deepEqual(rabit.table.shape("layers.1.w1.h"), [1, 8]);
  assert.deepEqual(rabit.table.shape("layers.1.w1.w"), [16, 8]); // one latent per layer, whatever k
  assert.equal(layerPaths(rabit, "layers.0.wk"), 2);
  const standard = trainLayout(config, k, "standard", "norms");
  assert.deepEqual(standard.table.shape("layers.0.wq.w"), [3 * 8, 8]);
  assert.deepEqual(standard.table.shape("layers.1.w1.w"), [16, 8]);
  // freeze: the first k − 1 latents of each layer never train, so the frozen range follows each layer's k.
  const freeze = trainLayout(config, resolvePaths(config, 2, { wq: 3 }), "freeze", "norms");
  const wq = freeze.table.entry("layers.0.wq.w"), wk = freeze.table.entry("layers.0.wk.w");
  assert.deepEqual(freeze.frozen[0], { offset: wq.offset, size: 2 * 8 * 8 });
  assert.deepEqual(freeze.frozen[1], { offset: wk.offset, size: 1 * 4 * 8 });
});

/** Two steps of a tiny run, calibrating the preconditioning on few tokens. */
const TINY = ["--steps", "2", "--batch", "1", "--seq", "32", "--calib-tokens", "512", "--json"];

Deno.test("quantize --paths-by trains a mixed-k .rabit that every backend runs alike; ptq takes it too", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.dir}/m.rabit`;
  const q = await runCli(["quantize", "--out", out, "--paths-by", "w2=1,wq=3,layers.0.w1=4", ...TINY]);
  assert.equal(q.code, 0, q.stderr);
  const s = lastJson(q.stdout);
  assert.equal(s.paths, null); // no single k
  assert.deepEqual(s.options.pathsBy, { "layers.0.w1": 4, w2: 1, wq: 3 }); // sorted
  const { model } = await openModel(MODEL_PATH);
  const expected = resolvePaths(model.config, 2, { w2: 1, wq: 3, "layers.0.w1": 4 });
  assert.ok(Math.abs(s.planesPerWeight - meanPaths(model.config, expected)) < 1e-12);
  const file = await readRabit(out);
  for (const [name, k] of expected) assert.equal(file.model.quantized.get(name)!.k, k, name);
  const ppl: number[] = [];
  for (const backend of ["cpu", "wasm", "webgpu"] as const) {
    ppl.push((await evalCli(out, DEV_TEXT_PATH, { maxWindows: 1, backend })).ppl);
  }
  // wasm's default int8 lookup tables round (README: a few 1e-3 on an untrained model).
  assert.ok(Math.abs(ppl[1] / ppl[0] - 1) < 1e-2, `cpu ${ppl[0]}, wasm ${ppl[1]}`);
  assert.ok(Math.abs(ppl[2] / ppl[0] - 1) < 1e-3, `cpu ${ppl[0]}, webgpu ${ppl[2]}`);

  const ptq = `${tmp.dir}/p.rabit`;
  const p = await runCli([
    "quantize",
    "--out",
    ptq,
    "--method",
    "ptq",
    "--paths-by",
    "wk=1,layers.4=3",
    "--json",
  ]);
  assert.equal(p.code, 0, p.stderr);
  assert.deepEqual(lastJson(p.stdout).options.pathsBy, { "layers.4": 3, wk: 1 });
  const pf = await readRabit(ptq);
  assert.equal(pf.model.quantized.get("layers.3.wk")!.k, 1);
  assert.equal(pf.model.quantized.get("layers.3.wq")!.k, 2);
  assert.equal(pf.model.quantized.get("layers.4.wk")!.k, 3); // the block wins over the kind
  assert.equal(pf.model.quantized.get("layers.4.w2")!.k, 3);

  // A checkpoint resumes only with the same k per layer (in any order of the list).
  const ck = `${tmp.dir}/ck`;
  const train = (name: string, ...args: string[]) =>
    runCli(["quantize", "--out", `${tmp.dir}/${name}.rabit`, ...args, ...TINY]);
  const a = await train("a", "--checkpoint", ck, "--paths-by", "wq=3,w2=1");
  assert.equal(a.code, 0, a.stderr);
  const same = await train("b", "--resume", ck, "--paths-by", "w2=1,wq=3");
  assert.equal(same.code, 0, same.stderr);
  const other = await train("c", "--resume", ck, "--paths-by", "wq=3");
  assert.equal(other.code, 1);
  assert.match(other.stderr, /other options: pathsBy = \{"w2":1,"wq":3\} there, \{"wq":3\} now/);
});

Deno.test("quantize --paths-by refuses what it cannot honour, before any work, and writes nothing", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.dir}/o.rabit`;
  const cases: [string[], RegExp][] = [
    [
      ["--method", "dbllm", "--paths-by", "wq=3"],
      /--paths-by sets k per layer for rabit, standard, freeze and ptq; dbllm/,
    ],
    [["--method", "onebit", "--paths-by", "wq=3"], /onebit has a fixed k/],
    [["--method", "rtn2", "--paths-by", "wq=3"], /rtn2 has a fixed k/],
    [["--paths-by", "wq:3"], /--paths-by: expected KIND=K pairs/],
    [
      ["--paths-by", "wx=3"],
      /expected a kind \(wq, wk, wv, wo, w1, w2, w3\), a block layers\.L or a layer name .* found "wx"/,
    ],
    [["--paths-by", "layers.5.wq=3"], /L in 0\.\.4, found "layers\.5\.wq"/],
    [["--paths-by", "layers.5=3"], /L in 0\.\.4, found "layers\.5"/],
    [["--paths-by", "wq=5"], /paths of wq: expected 1\.\.4, found 5/],
    [
      ["--method", "freeze", "--paths-by", "w2=1"],
      /freeze trains the last of several paths: every layer needs 2\.\.4, layers\.0\.w2 has 1/,
    ],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(["quantize", "--out", out, ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(" "));
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
  assert.deepEqual([...Deno.readDirSync(tmp.dir)], []);
});

Deno.test("the library's quantize refuses pathsBy for methods with a fixed k and an empty pathsBy", async () => {
  const { model, tokenizer } = await openModel(MODEL_PATH, { requireTokenizer: true });
  for (
    const [method, pathsBy, message] of [
      ["dbllm", { wq: 3 }, /pathsBy sets k per layer .* dbllm has a fixed k/],
      ["rabit", {}, /expected pathsBy to name at least one layer kind or layer/],
      ["rabit", { w9: 2 }, /found "w9"/],
    ] as const
  ) {
    await assert.rejects(
      quantize(model, { method, tokenizer: tokenizer!, pathsBy, steps: 1, precondition: 0 }),
      message,
    );
  }
});
