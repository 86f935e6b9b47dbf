// Inter-path diagnostics (METHOD.md §6): closed-form cases, a dense float64 reference, the student's own
// layer inputs, and `inspect --diagnose` / `eval --teacher` on the real stories260K with a PTQ model.

import assert from "node:assert/strict";
import { LayerPathStats } from "../src/eval/path_stats.ts";
import { pathDiagnostics } from "../src/eval/diagnostics.ts";
import { DenseLinear } from "../src/model/linear.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { linearNames } from "../src/model/params.ts";
import { packSigns, unpackSigns } from "../src/quant/bitpack.ts";
import { calibrate, calibrationWindows } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize_model.ts";
import { dequantize, type ResidualBinaryLinear } from "../src/quant/residual_binary.ts";
import { loadLlama2c, serializeLlama2cLegacy } from "../src/io/llama2c.ts";
import { writeRabit } from "../src/io/rabit_format.ts";
import { BOS, Tokenizer } from "../src/io/tokenizer.ts";
import { Rng } from "../src/util/rng.ts";
import { lastJson, runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH, randomModel, tinyConfig, TOKENIZER_PATH } from "./_data.ts";

/** Values that float32 sums hold exactly (multiples of 1/8 in [-2, 2]), so every product order agrees. */
function dyadic(rng: Rng, n: number, positive = false): Float32Array {
  return Float32Array.from({ length: n }, () => {
    const v = (1 + rng.int(16)) / 8;
    return positive || rng.next() < 0.5 ? v : -v;
  });
}

/** A k-path layer with random signs and the given value generator for scales. */
function randomLayer(
  rng: Rng,
  out: number,
  inF: number,
  k: number,
  values: (n: number) => Float32Array,
): ResidualBinaryLinear {
  const planes = Array.from({ length: k }, () => packSigns(rng.normals(out * inF), out, inF));
  const all = new Uint32Array(planes.reduce((a, p) => a + p.length, 0));
  planes.forEach((p, i) => all.set(p, i * p.length));
  return { out, in: inF, k, planes: all, g: values(k * out), h: values(k * inF) };
}

/** y_i (T, out) of every path, densely in float64: g_i ⊙ B_i ⊙ h_i times x. */
function densePathOutputs(layer: ResidualBinaryLinear, x: Float32Array, T: number): Float64Array[] {
  const { out, in: inF, k } = layer;
  const words = layer.planes.length / k;
  return Array.from({ length: k }, (_, p) => {
    const b = unpackSigns(layer.planes.subarray(p * words, (p + 1) * words), out, inF);
    const y = new Float64Array(T * out);
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < out; r++) {
        let s = 0;
        for (let c = 0; c < inF; c++) {
          s += layer.g[p * out + r] * b[r * inF + c] * layer.h[p * inF + c] * x[t * inF + c];
        }
        y[t * out + r] = s;
      }
    }
    return y;
  });
}

/** Two-pass Pearson correlation in float64. */
function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) ma += a[i] / n, mb += b[i] / n;
  let cov = 0, va = 0, vb = 0;
  for (let i = 0; i < n; i++) {
    cov += (a[i] - ma) * (b[i] - mb);
    va += (a[i] - ma) ** 2;
    vb += (b[i] - mb) ** 2;
  }
  return cov / Math.sqrt(va * vb);
}

/** y (T, out) = x · Wᵀ in float64. */
function denseMatmul(w: Float32Array, x: Float32Array, T: number, out: number, inF: number): Float64Array {
  const y = new Float64Array(T * out);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < out; r++) {
      let s = 0;
      for (let c = 0; c < inF; c++) s += w[r * inF + c] * x[t * inF + c];
      y[t * out + r] = s;
    }
  }
  return y;
}

/** Dense float64 reference of every §6 statistic over chunks of x. */
function referenceStats(layer: ResidualBinaryLinear, w: Float32Array, chunks: [Float32Array, number][]) {
  const ys: number[][] = Array.from({ length: layer.k }, () => []);
  const yt: number[] = [];
  for (const [x, T] of chunks) {
    densePathOutputs(layer, x, T).forEach((y, i) => ys[i].push(...y));
    yt.push(...denseMatmul(w, x, T, layer.out, layer.in));
  }
  const aligns: number[] = [];
  const rest = yt.slice();
  for (let i = 1; i < layer.k; i++) {
    for (let e = 0; e < rest.length; e++) rest[e] -= ys[i - 1][e];
    aligns.push(pearson(rest, ys[i]));
  }
  return { pathCorrelation: pearson(ys[0], ys[1]), pathAlignments: aligns };
}

Deno.test("path correlation is exactly −1 when path 2 is −c times path 1", () => {
  const rng = new Rng(5);
  const out = 7, inF = 40, T = 9;
  const one = randomLayer(rng, out, inF, 1, (n) => rng.normals(n).map(Math.abs));
  const words = one.planes.length;
  // B_2 = −B_1 (every bit flipped, padding kept 0), h_2 = h_1, g_2 = 0.5 g_1: y_2 = −0.5 y_1.
  const planes = new Uint32Array(2 * words);
  planes.set(one.planes);
  const flipped = packSigns(unpackSigns(one.planes, out, inF).map((v) => -v), out, inF);
  planes.set(flipped, words);
  const g = Float32Array.from([...one.g, ...one.g.map((v) => 0.5 * v)]);
  const h = Float32Array.from([...one.h, ...one.h]);
  const layer = { out, in: inF, k: 2, planes, g, h };
  const stats = new LayerPathStats(layer, new DenseLinear(rng.normals(out * inF), out, inF));
  stats.add(rng.normals(T * inF), T);
  const r = stats.result();
  assert.ok(Math.abs(r.pathCorrelation! + 1) < 1e-9, `corr ${r.pathCorrelation}`);
  assert.equal(r.k, 2);
  assert.equal(r.pathAlignments.length, 1);
  assert.equal(r.residualAlignment, r.pathAlignments[0]);
});

Deno.test("residual alignment is exactly +1 when the teacher is the sum of the paths", () => {
  const rng = new Rng(6);
  for (const k of [2, 3]) {
    const out = 6, inF = 33, T = 11;
    const layer = randomLayer(rng, out, inF, k, (n) => dyadic(rng, n, true));
    // Teacher W = What, in dyadic values: y_t − Σ_{j<k} y_j = y_k with no rounding anywhere.
    const stats = new LayerPathStats(layer, new DenseLinear(dequantize(layer), out, inF), `k${k}`);
    stats.add(dyadic(rng, T * inF), T);
    const r = stats.result();
    assert.equal(r.pathAlignments.length, k - 1);
    assert.equal(r.pathAlignments.at(-1), 1, `k = ${k}: ${r.pathAlignments}`);
    if (k === 2) assert.equal(r.residualAlignment, 1);
  }
});

Deno.test("LayerPathStats matches a dense float64 computation over several chunks", () => {
  const rng = new Rng(7);
  for (const [k, out, inF] of [[2, 5, 37], [3, 9, 64], [4, 3, 70]]) {
    const chunks: [Float32Array, number][] = [[dyadic(rng, 4 * inF), 4], [dyadic(rng, 13 * inF), 13]];
    // Exactly representable values: the packed (add/subtract) and dense products agree to the bit, so the
    // comparison isolates the statistics.
    const layer = randomLayer(rng, out, inF, k, (n) => dyadic(rng, n));
    const w = dyadic(rng, out * inF);
    const stats = new LayerPathStats(layer, new DenseLinear(w, out, inF));
    for (const [x, T] of chunks) stats.add(x, T);
    const got = stats.result(), want = referenceStats(layer, w, chunks);
    const close = (a: number | null, b: number, what: string) =>
      assert.ok(a !== null && Math.abs(a - b) < 1e-9, `k=${k} ${what}: ${a} vs ${b}`);
    close(got.pathCorrelation, want.pathCorrelation, "path correlation");
    want.pathAlignments.forEach((v, i) => close(got.pathAlignments[i], v, `alignment ${i + 2}`));
    close(got.residualAlignment, want.pathAlignments[0], "residual alignment");
    // General float values: the same up to float32 rounding of the products.
    const fl = randomLayer(rng, out, inF, k, (n) => rng.normals(n));
    const wf = rng.normals(out * inF), xf = rng.normals(6 * inF);
    const sf = new LayerPathStats(fl, new DenseLinear(wf, out, inF));
    sf.add(xf, 6);
    const rf = referenceStats(fl, wf, [[xf, 6]]);
    assert.ok(Math.abs(sf.result().pathCorrelation! - rf.pathCorrelation) < 1e-5);
  }
});

Deno.test("outerShare and scaleRatio match a direct count over the unpacked signs, ragged shapes", () => {
  const rng = new Rng(12);
  for (const [k, out, inF] of [[2, 5, 37], [3, 4, 64], [2, 3, 1], [4, 6, 70]]) {
    const layer = randomLayer(rng, out, inF, k, (n) => rng.normals(n));
    const n = out * inF, words = layer.planes.length / k;
    const b1 = unpackSigns(layer.planes.subarray(0, words), out, inF);
    const b2 = unpackSigns(layer.planes.subarray(words, 2 * words), out, inF);
    const same = b1.filter((v, e) => v === b2[e]).length;
    let step1 = 0, step2 = 0; // Σ over every entry of |g_i h_i|, without the factoring
    for (let r = 0; r < out; r++) {
      for (let c = 0; c < inF; c++) {
        step1 += Math.abs(layer.g[r] * layer.h[c]);
        step2 += Math.abs(layer.g[out + r] * layer.h[inF + c]);
      }
    }
    const ratio = step2 / step1;
    const stats = new LayerPathStats(layer, new DenseLinear(rng.normals(n), out, inF));
    const r = stats.result(); // weight-level: no input needed
    assert.equal(r.outerShare, same / n, `k=${k} ${out}x${inF}`);
    assert.ok(Math.abs(r.scaleRatio! - ratio) < 1e-9 * ratio, `${r.scaleRatio} vs ${ratio}`);
    // The weight correlation from the dense path matrices A_i = diag(g_i) B_i diag(h_i).
    let a12 = 0, a11 = 0, a22 = 0;
    for (let r = 0; r < out; r++) {
      for (let c = 0; c < inF; c++) {
        const a1 = layer.g[r] * b1[r * inF + c] * layer.h[c];
        const a2 = layer.g[out + r] * b2[r * inF + c] * layer.h[inF + c];
        a12 += a1 * a2, a11 += a1 * a1, a22 += a2 * a2;
      }
    }
    const corr = a12 / Math.sqrt(a11 * a22);
    assert.ok(Math.abs(r.weightCorrelation! - corr) < 1e-9, `${r.weightCorrelation} vs ${corr}`);
  }
  // Path 2 with path 1's signs (or their opposite) and proportional scales: +1 (or −1). With other scales
  // flipping path 2's signs only flips the sign of the correlation. 45 columns: a ragged second word.
  const base = randomLayer(rng, 3, 45, 2, (n) => rng.normals(n));
  const words = base.planes.length / 2;
  const withPlane2 = (flip: boolean, proportional: boolean) => {
    const l = { ...base, planes: base.planes.slice(), g: base.g.slice(), h: base.h.slice() };
    for (let w = 0; w < words; w++) l.planes[words + w] = flip ? ~base.planes[w] : base.planes[w];
    if (proportional) {
      for (let r = 0; r < 3; r++) l.g[3 + r] = 0.5 * l.g[r];
      for (let c = 0; c < 45; c++) l.h[45 + c] = -0.3 * l.h[c];
    }
    return new LayerPathStats(l, new DenseLinear(new Float32Array(3 * 45), 3, 45)).result()
      .weightCorrelation!;
  };
  assert.ok(Math.abs(withPlane2(false, true) + 1) < 1e-9); // h_2 = −0.3·h_1: the same signs give −1
  assert.ok(Math.abs(withPlane2(true, true) - 1) < 1e-9);
  assert.ok(Math.abs(withPlane2(true, false) + withPlane2(false, false)) < 1e-9);
  assert.ok(Math.abs(withPlane2(false, false)) < 1);
  // Hand-built: B_2 = B_1 on 3 of 4 entries, path 2 a quarter of path 1's step everywhere. Padding bits
  // set in one plane only do not count (a layer built in memory: parseRabit refuses files with such bits).
  const layer = {
    out: 1,
    in: 4,
    k: 2,
    planes: new Uint32Array([0b0101, 0b1111_0111]),
    g: new Float32Array([2, -1]),
    h: new Float32Array([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5]),
  };
  const r = new LayerPathStats(layer, new DenseLinear(new Float32Array(4), 1, 4)).result();
  assert.equal(r.outerShare, 0.75);
  assert.equal(r.scaleRatio, 0.25);
  // (2·−1)·(0.5·(3 agreeing − 1 opposing)) / √(2²·4 · 1²·4·0.25) = −2 / 4.
  assert.equal(r.weightCorrelation, -0.5);
  // An all-zero path 1 leaves the ratio undefined rather than infinite.
  const zero = { ...layer, g: new Float32Array([0, 1]) };
  assert.equal(
    new LayerPathStats(zero, new DenseLinear(new Float32Array(4), 1, 4)).result().scaleRatio,
    null,
  );
});

Deno.test("one path: no correlation to report", () => {
  const rng = new Rng(8);
  const layer = randomLayer(rng, 4, 8, 1, (n) => rng.normals(n));
  const stats = new LayerPathStats(layer, new DenseLinear(rng.normals(32), 4, 8));
  stats.add(rng.normals(16), 2);
  assert.deepEqual(stats.result(), {
    name: "layer",
    k: 1,
    pathCorrelation: null,
    residualAlignment: null,
    pathAlignments: [],
    outerShare: null,
    scaleRatio: null,
    weightCorrelation: null,
  });
  assert.throws(
    () => new LayerPathStats(layer, new DenseLinear(rng.normals(36), 4, 9), "layers.0.wq"),
    /layers\.0\.wq: expected a teacher layer of shape 4x8, found 4x9/,
  );
});

Deno.test("pathDiagnostics sees each layer's input from the student's own forward", () => {
  const config = tinyConfig();
  const teacher = randomModel(config, 3);
  const student = quantizeModel(teacher, { method: "ptq", paths: 3, precondition: 0, svidRounds: 1 }).model;
  const rng = new Rng(9);
  const ids = Array.from({ length: 40 }, () => rng.int(config.vocabSize));
  const d = pathDiagnostics({ student, teacher }, ids, { maxTokens: 20, context: 10 });
  assert.deepEqual([d.tokens, d.windows, d.context], [20, 2, 10]);
  assert.deepEqual(d.layers.map((l) => l.name), linearNames(config));

  // The same statistics from the inputs the student's forward keeps for its backward.
  const inputOf = {
    wq: "xnAtt",
    wk: "xnAtt",
    wv: "xnAtt",
    wo: "attOut",
    w1: "xnFfn",
    w3: "xnFfn",
    w2: "hAct",
  };
  const stats = new Map(
    linearNames(config).map((n) => {
      const [out, inF] = teacher.params.shape(n);
      return [
        n,
        new LayerPathStats(student.quantized.get(n)!, new DenseLinear(teacher.params.get(n), out, inF), n),
      ];
    }),
  );
  for (const win of [ids.slice(0, 10), ids.slice(10, 20)]) {
    const acts = forwardChunk(student, win, 0, createKvCache(student, 10), { keepActivations: true })
      .activations!;
    for (const [name, s] of stats) {
      const [, l, w] = name.split(".");
      const block = acts.blocks[Number(l)];
      s.add(block[inputOf[w as keyof typeof inputOf] as "xnAtt"], win.length);
    }
  }
  for (const got of d.layers) assert.deepEqual(got, stats.get(got.name)!.result());
  const corrs = d.layers.map((l) => l.pathCorrelation!);
  assert.ok(Math.abs(d.meanPathCorrelation! - corrs.reduce((a, v) => a + v) / corrs.length) < 1e-12);
  const coAdapted = d.layers.filter((l) => l.residualAlignment! > 0.4 && l.pathCorrelation! < 0).length;
  assert.equal(d.coAdaptedFraction, coAdapted / d.layers.length);
  const shares = d.layers.map((l) => l.outerShare!);
  assert.ok(Math.abs(d.meanOuterShare! - shares.reduce((a, v) => a + v) / shares.length) < 1e-12);
  const ratios = d.layers.map((l) => l.scaleRatio!);
  assert.ok(Math.abs(d.meanScaleRatio! - ratios.reduce((a, v) => a + v) / ratios.length) < 1e-12);
  const weights = d.layers.map((l) => l.weightCorrelation!);
  assert.ok(Math.abs(d.meanWeightCorrelation! - weights.reduce((a, v) => a + v) / weights.length) < 1e-12);

  // Short texts give one shorter window; a teacher of another shape is refused.
  assert.deepEqual(
    [
      pathDiagnostics({ student, teacher }, ids.slice(0, 7)).tokens,
      pathDiagnostics({ student, teacher }, ids).tokens,
    ],
    [7, 32],
  );
  const other = randomModel(tinyConfig({ hiddenDim: 32 }));
  assert.throws(
    () => pathDiagnostics({ student, teacher: other }, ids),
    /expected a teacher with the student's config, found \(student vs teacher\) hiddenDim 24 vs 32/,
  );
  assert.throws(() => pathDiagnostics({ student: teacher, teacher }, ids), /binarized layers, found none/);
});

/** PTQ k = 2 of stories260K (calibrated on 1024 tokens from the end of the dev text) as a .rabit file. */
async function writePtqRabit(path: string): Promise<void> {
  const { config, params } = await loadLlama2c(MODEL_PATH);
  const fp: LlamaModel = { config, params, quantized: new Map() };
  const tok = await Tokenizer.load(TOKENIZER_PATH, config.vocabSize);
  const text = await Deno.readTextFile(DEV_TEXT_PATH);
  const ids = [BOS, ...tok.encode(text.slice(-20000))];
  const stats = calibrate(fp, calibrationWindows(ids, 1024, 512));
  const q = quantizeModel(fp, { method: "ptq", paths: 2, stats });
  await writeRabit(path, {
    model: q.model,
    tokenizerBytes: tok.bytes,
    method: "ptq",
    options: {},
    metadata: {},
  });
}

Deno.test("inspect --diagnose and eval --teacher on a PTQ stories260K", async (t) => {
  await using tmp = await tempDir();
  const rabit = `${tmp.dir}/ptq.rabit`;
  await writePtqRabit(rabit);
  const inRange = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= -1 && v <= 1;

  await t.step("inspect --diagnose --json", async () => {
    const args = ["inspect", rabit, "--diagnose", "--text", DEV_TEXT_PATH, "--teacher", MODEL_PATH];
    const r = await runCli([...args, "--tokens", "1024", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const d = lastJson(r.stdout).diagnostics;
    assert.deepEqual([d.tokens, d.windows, d.context], [1024, 2, 512]);
    assert.equal(d.layers.length, 35);
    assert.equal(d.layers[1].name, "layers.0.wk");
    for (const l of d.layers) {
      assert.equal(l.k, 2);
      assert.ok(inRange(l.pathCorrelation) && inRange(l.residualAlignment), JSON.stringify(l));
      assert.deepEqual(l.pathAlignments, [l.residualAlignment]);
    }
    assert.ok(inRange(d.meanPathCorrelation) && inRange(d.meanResidualAlignment));
    assert.ok(d.coAdaptedFraction >= 0 && d.coAdaptedFraction <= 1);
    // Greedy residual fitting: path 2 is fitted to what path 1 left, so it aligns with the residual.
    assert.ok(d.meanResidualAlignment > 0.5, `${d.meanResidualAlignment}`);
    // ... and its sign is set by what path 1 left: below path 1's step (|W| < |g_1 h_1|) it subtracts,
    // which a least-squares step makes the majority (a Gaussian: 58 %).
    assert.ok(d.meanOuterShare > 0.3 && d.meanOuterShare < 0.5, `${d.meanOuterShare}`);
    // So the paths' matrices anti-correlate (stories260K's PTQ: −0.26).
    assert.ok(d.meanWeightCorrelation < -0.1 && d.meanWeightCorrelation > -0.5, `${d.meanWeightCorrelation}`);

    const text = await runCli([...args, "--tokens", "512"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /layers\.0\.wq +-?\d\.\d{4} +-?\d\.\d{4} +0\.\d{3} +\d\.\d{3} +-?\d\.\d{4}\n/);
    assert.match(text.stdout, /mean share B_2 = B_1 +0\.\d{4}/);
    assert.match(text.stdout, /mean weight correlation +-0\.\d{4}/);
    assert.match(text.stdout, /mean path correlation +-?\d\.\d{4}/);
    assert.match(text.stdout, /mean residual alignment +-?\d\.\d{4}/);
  });

  await t.step("eval --teacher adds diagnostics on the scored tokens", async () => {
    const args = [
      "eval",
      "--model",
      rabit,
      "--text",
      DEV_TEXT_PATH,
      "--max-windows",
      "1",
      "--backend",
      "cpu",
    ];
    const r = await runCli([...args, "--teacher", MODEL_PATH, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = lastJson(r.stdout);
    assert.ok(out.ppl > 1);
    assert.equal(out.diagnostics.tokens, 512);
    assert.ok(inRange(out.diagnostics.meanPathCorrelation));
    const text = await runCli([...args, "--diagnose", "--diag-tokens", "256"], { RABIT_MODEL: MODEL_PATH });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /on 256 tokens/);
    assert.match(text.stdout, /mean residual alignment +-?\d\.\d{4}/);
    assert.equal(lastJson((await runCli([...args, "--json"])).stdout).diagnostics, undefined);
  });

  await t.step("usage errors", async () => {
    const tiny = `${tmp.dir}/tiny.bin`;
    const small = randomModel(tinyConfig());
    await Deno.writeFile(tiny, serializeLlama2cLegacy(small.config, small.params));
    const cases: [string[], RegExp][] = [
      [["inspect", rabit, "--diagnose"], /--diagnose needs --text F/],
      [["inspect", rabit, "--text", DEV_TEXT_PATH], /--text applies only with --diagnose/],
      [
        ["inspect", MODEL_PATH, "--diagnose", "--text", DEV_TEXT_PATH],
        /inspect --diagnose: expected a \.rabit file with binarized layers, found .*stories260K\.bin \(format llama2c-legacy/,
      ],
      [
        ["inspect", rabit, "--diagnose", "--text", DEV_TEXT_PATH, "--teacher", tiny],
        /--teacher .*tiny\.bin: expected the config of .*ptq\.rabit, found a different one \(model vs teacher: dim 64 vs 16, /,
      ],
      [
        ["inspect", rabit, "--diagnose", "--text", DEV_TEXT_PATH, "--teacher", rabit],
        /expected a full-precision model \(a llama2\.c \.bin\), found a quantized \.rabit file/,
      ],
      [
        ["eval", "--model", MODEL_PATH, "--text", DEV_TEXT_PATH, "--teacher", MODEL_PATH],
        /eval --teacher: expected a \.rabit file with binarized layers/,
      ],
      [
        ["eval", "--model", rabit, "--text", DEV_TEXT_PATH, "--diag-tokens", "9"],
        /--diag-tokens applies only/,
      ],
    ];
    for (const [argv, pattern] of cases) {
      const r = await runCli(argv);
      assert.equal(r.code, 2, `${argv.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
    }
  });
});
