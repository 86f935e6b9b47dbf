// `quantize` with training on the real model, as a user runs it: the JSON summary, a .rabit that loads
// and evaluates on both backends, refused options, and a run killed with SIGKILL that leaves its last
// checkpoint loadable, no output, and resumes to the same losses as a run never stopped.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { evalCli, lastJson, runCli, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH } from "./_data.ts";
import { readCheckpoint } from "../src/train/checkpoint.ts";
import { readRabit } from "../src/io/rabit_format.ts";
import { openModel } from "../src/io/load_model.ts";
import { quantize, readsText } from "../src/train/quantize.ts";

/** A few steps of a tiny run, for the methods that calibrate nothing (quantize refuses --calib-tokens there). */
const TINY_UNCALIBRATED = ["--steps", "3", "--batch", "1", "--seq", "32", "--json"];
/** The same, calibrating the preconditioning on few tokens (rabit, freeze, standard by default). */
const TINY = [...TINY_UNCALIBRATED, "--calib-tokens", "512"];

Deno.test("quantize --method rabit trains, reports every loss, and its .rabit evaluates on cpu and webgpu", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.dir}/r.rabit`;
  const q = await runCli(["quantize", "--out", out, "--method", "rabit", "--min-lr-ratio", "0", ...TINY]);
  assert.equal(q.code, 0, q.stderr);
  const s = lastJson(q.stdout);
  assert.equal(s.method, "rabit");
  assert.equal(s.options.minLrRatio, 0);
  assert.equal(s.finalLr, 0); // the cosine decay ends at the floor given
  assert.ok(["cpu", "webgpu"].includes(s.backend), s.backend); // auto: the faster one here
  assert.equal(s.steps, 3);
  assert.equal(s.losses.length, 3);
  assert.ok(s.losses.every((x: number) => Number.isFinite(x) && x > 0));
  assert.ok(s.seconds > 0);
  const info = lastJson((await runCli(["inspect", out, "--json"])).stdout);
  assert.equal(info.method, "rabit");
  const ppl: number[] = [];
  for (const backend of ["cpu", "webgpu"] as const) {
    ppl.push((await evalCli(out, DEV_TEXT_PATH, { maxWindows: 1, backend })).ppl);
  }
  assert.ok(Math.abs(ppl[1] / ppl[0] - 1) < 1e-3, `cpu ${ppl[0]}, webgpu ${ppl[1]}`);
  assert.ok(ppl[0] < 200, `${ppl[0]}`);
  // The held-out end of the text (what training never saw) is scored alone with --holdout.
  const h = await evalCli(out, DEV_TEXT_PATH, { holdout: 0.1 });
  assert.equal(h.holdout, 0.1);
  assert.ok(h.tokens > 20000 && h.tokens < 30000, `${h.tokens} held-out tokens`);
});

Deno.test("every baseline trains a few steps into a valid .rabit that says its method", async () => {
  await using tmp = await tempDir();
  for (const [method, k] of [["freeze", 2], ["dbllm", 2], ["onebit", 1], ["standard", 2]] as const) {
    const out = `${tmp.dir}/${method}.rabit`;
    const extra = method === "standard"
      ? ["--init", "none", "--precondition", "0"]
      : method === "onebit"
      ? ["--preset", "quality", "--teacher-tokens", "600"] // explicit options win over the preset
      : [];
    const q = await runCli([
      "quantize",
      "--out",
      out,
      "--method",
      method,
      "--backend",
      "cpu",
      ...extra,
      ...(method === "freeze" ? TINY : TINY_UNCALIBRATED),
    ]);
    assert.equal(q.code, 0, q.stderr);
    const s = lastJson(q.stdout);
    assert.equal(s.method, method);
    assert.equal(s.paths, k);
    assert.equal(s.losses.length, 3);
    const file = await readRabit(out);
    assert.equal(file.method, method);
    assert.ok([...file.model.quantized.values()].every((l) => l.k === k));
    if (method === "standard") assert.equal(s.options.init, "none");
    // Each method's tuned scale lr multiplier (experiments/tuning.json) is its default.
    assert.equal(s.options.scaleLrMultiplier, { freeze: 3, dbllm: 0.3, onebit: 1, standard: 3 }[method]);
    if (method === "onebit") {
      // Explicit --steps 3 and --teacher-tokens 600 win over the preset.
      assert.equal(s.options.preset, "quality");
      assert.equal(s.options.teacherTokens, 600);
      // onebit keeps its own tuned lr under the preset.
      assert.equal(s.options.lr, 8e-3);
      assert.equal(s.options.steps, 3);
    }
  }
});

Deno.test("quantize --preset quality is the default run with twice the windows per step", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.dir}/q.rabit`;
  // TINY without its --batch, so the preset's shows.
  const args = ["--steps", "3", "--seq", "32", "--calib-tokens", "512", "--json"];
  const q = await runCli(["quantize", "--out", out, "--preset", "quality", "--backend", "cpu", ...args]);
  assert.equal(q.code, 0, q.stderr);
  const s = lastJson(q.stdout);
  assert.equal(s.options.preset, "quality");
  // Every setting but the batch is the default's.
  const defaults = { lr: 3e-3, tokenNoise: 0.1, teacherTokens: 0, minLrRatio: 0, gamma: 0.1 };
  for (const [key, value] of Object.entries(defaults)) assert.equal(s.options[key], value, key);
  assert.equal(s.options.batch, 4);
  assert.equal(s.options.lateBatch, undefined, "4 windows every step: the default's late batch of 3 is off");
  assert.equal(s.options.steps, 3); // explicit --steps wins over the default's 2400
  assert.equal(s.losses.length, 3);
});

Deno.test("the default batch takes 3 windows a step in the run's second half; an explicit --batch, the same throughout", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.dir}/d.rabit`;
  const base = [
    "quantize",
    "--out",
    out,
    "--backend",
    "cpu",
    "--seq",
    "32",
    "--calib-tokens",
    "512",
    "--json",
  ];
  const defaults = lastJson((await runCli([...base, "--steps", "4"])).stdout);
  assert.deepEqual([defaults.options.batch, defaults.options.lateBatch, defaults.options.lateBatchFrom], [
    2,
    3,
    0.5,
  ]);
  const explicit = lastJson((await runCli([...base, "--steps", "4", "--batch", "2"])).stdout);
  assert.equal(explicit.options.lateBatch, undefined);
  const moved = lastJson((await runCli([...base, "--steps", "4", "--late-batch-from", "0.75"])).stdout);
  assert.deepEqual([moved.options.lateBatch, moved.options.lateBatchFrom], [3, 0.75]);
  // The same first half, then other windows: the losses part where the batches do.
  assert.deepEqual(defaults.losses.slice(0, 2), explicit.losses.slice(0, 2));
  assert.notDeepEqual(defaults.losses.slice(2), explicit.losses.slice(2));
  assert.deepEqual(moved.losses.slice(0, 3), explicit.losses.slice(0, 3));
});

Deno.test("quantize --teacher-tokens auto samples what the run reads beyond the text, and none when it is covered", async () => {
  await using tmp = await tempDir();
  // A short text (about 170 tokens after the 10 % holdout); 3 steps × 2 windows × 64 tokens read 384.
  const text = `${tmp.dir}/short.txt`;
  const story = "Tom had a red ball. He liked to throw it to his dog. The dog ran fast and brought it back.";
  await Deno.writeTextFile(text, Array(5).fill(story).join("\n\n"));
  const run = async (extra: string[]) => {
    const q = await runCli([
      "quantize",
      "--out",
      `${tmp.dir}/a.rabit`,
      "--data",
      text,
      "--backend",
      "cpu",
      "--steps",
      "3",
      "--batch",
      "2",
      "--seq",
      "64",
      "--calib-tokens",
      "32",
      "--json",
      ...extra,
    ]);
    assert.equal(q.code, 0, q.stderr);
    return lastJson(q.stdout);
  };
  const auto = await run(["--teacher-tokens", "auto"]);
  const sampled = auto.options.teacherTokens as number;
  assert.ok(sampled > 150 && sampled < 300, `auto sampled ${sampled} tokens`);
  // The default data covers a short run: nothing sampled.
  const covered = await runCli([
    "quantize",
    "--out",
    `${tmp.dir}/c.rabit`,
    "--backend",
    "cpu",
    "--teacher-tokens",
    "auto",
    ...TINY,
  ]);
  assert.equal(covered.code, 0, covered.stderr);
  assert.equal(lastJson(covered.stdout).options.teacherTokens, 0);
});

/** Runs `quantize` on the CPU and on WebGPU with the same options; their --json summaries, CPU first. */
async function quantizeOnBothBackends(dir: string, args: string[]) {
  const runs: { backend: string; losses: number[]; options: Record<string, number | undefined> }[] = [];
  for (const backend of ["cpu", "webgpu"]) {
    const r = await runCli(["quantize", "--out", `${dir}/${backend}.rabit`, "--backend", backend, ...args]);
    assert.equal(r.code, 0, r.stderr);
    runs.push(lastJson(r.stdout));
  }
  assert.equal(runs[1].backend, "webgpu");
  runs[0].losses.forEach((l: number, i: number) => {
    assert.ok(
      Math.abs(runs[1].losses[i] / l - 1) < 1e-3,
      `step ${i + 1}: cpu ${l}, webgpu ${runs[1].losses[i]}`,
    );
  });
  return runs;
}

Deno.test("quantize --backend webgpu trains on the GPU and gives the CPU's losses", async () => {
  await using tmp = await tempDir();
  await quantizeOnBothBackends(tmp.dir, TINY);
});

Deno.test("quantize --label-weight mixes the text's cross-entropy into the loss, the same on both backends", async () => {
  await using tmp = await tempDir();
  // Token noise on from the second epoch (3 steps of 1 window = 3 epochs of this one-window text): the
  // cross-entropy must score the text as written, which both backends then agree on.
  const text = `${tmp.dir}/story.txt`;
  const story = (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 120); // one window of 32 tokens
  await Deno.writeTextFile(text, story);
  const runs = await quantizeOnBothBackends(tmp.dir, [
    ...["--label-weight", "0.5", "--data", text, "--holdout", "0", "--token-noise", "0.3"],
    ...TINY,
  ]);
  assert.equal(runs[0].options.labelWeight, 0.5);
});

Deno.test("quantize --gamma-final and --weight-decay reach the run's options, the same on both backends", async () => {
  await using tmp = await tempDir();
  const runs = await quantizeOnBothBackends(tmp.dir, [
    ...["--gamma", "0.5", "--gamma-final", "0", "--weight-decay", "0.1"],
    ...TINY,
  ]);
  assert.deepEqual([runs[0].options.gamma, runs[0].options.gammaFinal, runs[0].options.weightDecay], [
    0.5,
    0,
    0.1,
  ]);
  // Without the schedule the options keep no gammaFinal (so older checkpoints still resume).
  const plain = lastJson(
    (await runCli(["quantize", "--out", `${tmp.dir}/p.rabit`, "--backend", "cpu", ...TINY])).stdout,
  );
  assert.equal("gammaFinal" in plain.options, false);
  assert.equal(plain.options.weightDecay, 0);
});

Deno.test("quantize --ste-clip none gives dbllm the identity STE over its 4/3; a bound reaches rabit's options", async () => {
  await using tmp = await tempDir();
  const run = async (args: string[], tiny = TINY) =>
    lastJson(
      (await runCli(["quantize", "--out", `${tmp.dir}/m.rabit`, "--backend", "cpu", ...args, ...tiny]))
        .stdout,
    );
  const dbllm = await run(["--method", "dbllm"], TINY_UNCALIBRATED);
  const identity = await run(["--method", "dbllm", "--ste-clip", "none"], TINY_UNCALIBRATED);
  assert.equal(dbllm.options.steClip, 4 / 3);
  assert.equal(identity.options.steClip, null);
  // The clip zeroes the latent gradient beyond 4/3 of the grid's range, which the identity STE keeps.
  assert.notDeepEqual(identity.losses, dbllm.losses);
  assert.equal(identity.losses[0], dbllm.losses[0]); // the first forward is before any update
  assert.equal((await run(["--ste-clip", "1.5"])).options.steClip, 1.5);
  assert.equal((await run([])).options.steClip, null);
});

Deno.test("quantize --latent-mix: recorded in the options, the first steps closer to the teacher, α 0 at the end", async () => {
  await using tmp = await tempDir();
  const run = async (args: string[]) =>
    lastJson(
      (await runCli(["quantize", "--out", `${tmp.dir}/m.rabit`, "--backend", "cpu", ...args, ...TINY]))
        .stdout,
    );
  const plain = await run([]);
  const mixed = await run(["--latent-mix", "0.7", "--latent-mix-until", "1"]);
  assert.equal("latentMix" in plain.options, false); // older checkpoints still resume
  assert.deepEqual([mixed.options.latentMix, mixed.options.latentMixUntil], [0.7, 1]);
  assert.equal((await run(["--latent-mix", "0.7"])).options.latentMixUntil, 0.5);
  // 70 % of the teacher's weights in every layer at step 1: a far smaller KL than the binary layers'.
  assert.ok(mixed.losses[0] < 0.5 * plain.losses[0], `${mixed.losses[0]} vs ${plain.losses[0]}`);
  assert.equal(mixed.losses.length, 3);
});

Deno.test("the library's quantize refuses a steClip that is not > 0 and finite, before any work", async () => {
  const { model, tokenizer } = await openModel(MODEL_PATH, { requireTokenizer: true });
  const data = [{ name: "story", text: "Once upon a time there was a cat." }];
  for (const steClip of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(
      () => quantize(model, { method: "rabit", tokenizer: tokenizer!, data, steClip }),
      /expected steClip > 0 \(the clipped STE's bound in units of the paths' range\) or null, found/,
      String(steClip),
    );
  }
});

Deno.test("quantize refuses bad training options with one clear error and writes nothing", async () => {
  await using tmp = await tempDir();
  const tiny = `${tmp.dir}/tiny.txt`;
  await Deno.writeTextFile(tiny, "Once upon a time there was a cat.");
  const out = `${tmp.dir}/o.rabit`;
  const cases: [string[], RegExp][] = [
    [["--paths", "0"], /--paths/],
    [["--method", "magic"], /--method/],
    [["--steps", "0"], /--steps/],
    [["--optimizer", "sgd"], /--optimizer/],
    [["--data", tiny, "--seq", "64"], /at least one window of 64 tokens/],
    [["--method", "ptq", "--steps", "5"], /--steps applies to the training methods/],
    [["--method", "dbllm", "--paths", "3"], /dbllm is a 2-bit quantizer/],
    [["--method", "onebit", "--paths", "2"], /onebit has one path/],
    [["--method", "freeze", "--paths", "1"], /freeze trains the last of several paths/],
    [["--method", "dbllm", "--init", "svid"], /init applies to the SVID-initialized methods/],
    [["--method", "dbllm", "--precondition", "0.5"], /precondition must be 0/],
    [["--init", "random"], /--init must be one of svid, greedy, none/],
    [["--preset", "fast"], /--preset must be one of default, quality/],
    [["--scale-lr", "0"], /--scale-lr/],
    [["--momentum", "1"], /--momentum/],
    [["--optimizer", "adamw", "--momentum", "0.9"], /momentum is Muon's/],
    [["--method", "ptq", "--momentum", "0.9"], /--momentum applies to the training methods/],
    [["--label-weight", "1.5"], /--label-weight must be a number from 0 to 1/],
    [["--label-weight", "nan"], /--label-weight/],
    [["--method", "rtn2", "--label-weight", "0.3"], /--label-weight applies to the training methods/],
    [["--method", "ptq", "--preset", "quality"], /--preset applies to the training methods/],
    [["--late-batch", "0"], /--late-batch must be an integer from 1 to 4096/],
    [
      ["--late-batch", "4", "--late-batch-from", "1"],
      /--late-batch-from must be a number from 0 to 0\.999999/,
    ],
    [
      ["--batch", "4", "--late-batch-from", "0.5"],
      /lateBatchFrom places the late batch, but this run has none/,
    ],
    [["--method", "ptq", "--late-batch", "4"], /--late-batch applies to the training methods/],
    [["--teacher-tokens", "lots"], /--teacher-tokens must be auto or an integer in \[0, 100000000\]/],
    [["--teacher-tokens", "1.5"], /--teacher-tokens must be auto or an integer/],
    [["--train-float", "some"], /--train-float must be one of norms, none, all/],
    [["--shift-windows", "yes"], /--shift-windows must be one of on, off/],
    [["--token-noise", "0.6"], /--token-noise/],
    [["--min-lr-ratio", "1.5"], /--min-lr-ratio/],
    [["--method", "ptq", "--min-lr-ratio", "0"], /--min-lr-ratio applies to the training methods/],
    [["--lr-schedule", "step"], /--lr-schedule must be one of cosine, linear/],
    [["--method", "ptq", "--lr-schedule", "linear"], /--lr-schedule applies to the training methods/],
    [["--method", "ptq", "--token-noise", "0.1"], /--token-noise applies to the training methods/],
    [["--method", "ptq", "--train-float", "all"], /--train-float applies to the training methods/],
    [["--gamma-final=-1"], /--gamma-final must be a number from 0 to 1000000/],
    [["--gamma-final", "x"], /--gamma-final/],
    [["--method", "ptq", "--gamma-final", "0"], /--gamma-final applies to the training methods/],
    [["--weight-decay", "nan"], /--weight-decay/],
    [["--method", "rtn2", "--weight-decay", "0.1"], /--weight-decay applies to the training methods/],
    [["--ste-clip", "0"], /--ste-clip must be a number from 0\.000001 to 1000000/],
    [["--ste-clip", "never"], /--ste-clip must be a number/],
    [["--method", "ptq", "--ste-clip", "1.5"], /--ste-clip applies to the training methods/],
    [["--latent-mix", "1"], /--latent-mix must be a number from 0 to 0\.999999/],
    [
      ["--latent-mix", "-0.5"],
      /--latent-mix takes a value, .* write --latent-mix=VALUE for a value that starts/,
    ],
    [["--latent-mix=-0.5"], /--latent-mix must be a number from 0 to 0\.999999/],
    [
      ["--latent-mix", "0.5", "--latent-mix-until", "0"],
      /--latent-mix-until must be a number from 0\.000001 to 1/,
    ],
    [["--latent-mix-until", "0.5"], /latentMixUntil places the end of a latent mix, but this run has none/],
    [
      ["--method", "standard", "--latent-mix", "0.5"],
      /a latent mix needs one latent per layer .*not standard/,
    ],
    [["--method", "freeze", "--latent-mix", "0.5"], /a latent mix needs one latent per layer .*not freeze/],
    [
      ["--method", "dbllm", "--latent-mix", "0.5"],
      /needs the identity STE, found steClip 1\.3+ \(dbllm's default/,
    ],
    [["--ste-clip", "1.5", "--latent-mix", "0.5"], /a latent mix needs the identity STE, found steClip 1\.5/],
    [["--method", "ptq", "--latent-mix", "0.5"], /--latent-mix applies to the training methods/],
    // Options that would change nothing in the run are refused, not ignored.
    [
      ["--method", "dbllm", "--calib-tokens", "512"],
      /calibTokens .* calibrates nothing: dbllm starts from its 2-bit grid; drop calibTokens/,
    ],
    [
      ["--method", "onebit", "--calib-tokens", "512"],
      /precondition is 0 \(onebit's default\); drop calibTokens/,
    ],
    [
      ["--precondition", "0", "--calib-tokens", "512"],
      /calibrates nothing: precondition is 0; drop calibTokens/,
    ],
    [["--method", "rtn2", "--calib-tokens", "512"], /rtn2 starts from its 2-bit grid; drop calibTokens/],
    [["--init", "greedy", "--svid-rounds", "2"], /svidRounds .* none: init is greedy; drop svidRounds/],
    [["--method", "freeze", "--svid-rounds", "2"], /init is greedy \(freeze's default\)/],
    [["--method", "dbllm", "--svid-rounds", "2"], /dbllm starts from its 2-bit grid; drop svidRounds/],
    [
      ["--checkpoint-every", "5"],
      /--checkpoint-every sets how often --checkpoint F is written, but no --checkpoint/,
    ],
    [["--method", "ptq", "--checkpoint-every", "5"], /--checkpoint-every applies to the training methods/],
    [["--calib-text", tiny, "--data", tiny], /--calib-text is another name for --data, and both were given/],
    [
      ["--method", "rtn2", "--data", tiny],
      /--data is about the text a run trains or calibrates on, but --method rtn2 reads none \(it rounds the weights to its 2-bit grid\): drop --data/,
    ],
    [["--method", "rtn2", "--holdout", "0.2"], /--method rtn2 reads none .*: drop --holdout/],
    [
      ["--method", "ptq", "--precondition", "0", "--calib-text", tiny],
      /--method ptq reads none \(with --precondition 0 nothing is calibrated\): drop --calib-text/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCli(["quantize", "--out", out, ...args]);
    // Every refused option is a usage error (exit 2), whether the CLI or the library finds it; a text too
    // short for one window is the input's fault (exit 1).
    assert.equal(
      r.code,
      /at least one window/.test(String(pattern)) ? 1 : 2,
      `${args.join(" ")}: ${r.stderr}`,
    );
    const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("note: "));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], pattern);
  }
  assert.deepEqual([...Deno.readDirSync(tmp.dir)].map((e) => e.name), ["tiny.txt"]);
});

Deno.test("a checkpoint resumes only with its model and options", async () => {
  await using tmp = await tempDir();
  const ck = `${tmp.dir}/ck`;
  const r = await runCli(["quantize", "--out", `${tmp.dir}/a.rabit`, "--checkpoint", ck, ...TINY]);
  assert.equal(r.code, 0, r.stderr);
  // Another model: the same file with one weight changed.
  const bytes = await Deno.readFile(MODEL_PATH);
  new DataView(bytes.buffer).setFloat32(28 + 4 * 1000, 0.5, true);
  const other = `${tmp.dir}/other.bin`;
  await Deno.writeFile(other, bytes);
  await Deno.copyFile(
    fileURLToPath(new URL("../../shared/data/tok512.bin", import.meta.url)),
    `${tmp.dir}/tok512.bin`,
  );
  await Deno.copyFile(DEV_TEXT_PATH, `${tmp.dir}/tinystories_dev.txt`);
  const wrongModel = await runCli([
    "quantize",
    "--model",
    other,
    "--out",
    `${tmp.dir}/b.rabit`,
    "--resume",
    ck,
    ...TINY,
  ]);
  assert.equal(wrongModel.code, 1);
  assert.match(wrongModel.stderr, /written for another model/);
  const wrongOptions = await runCli([
    "quantize",
    "--out",
    `${tmp.dir}/c.rabit`,
    "--resume",
    ck,
    ...TINY,
    "--lr",
    "0.01",
  ]);
  assert.equal(wrongOptions.code, 1);
  assert.match(wrongOptions.stderr, /other options: lr = 0\.003 there, 0\.01 now/);
  const notCk = await runCli(["quantize", "--out", `${tmp.dir}/d.rabit`, "--resume", other, ...TINY]);
  assert.equal(notCk.code, 1);
  assert.match(notCk.stderr, /not a checkpoint file/);
});

Deno.test("SIGKILL mid-training leaves the last checkpoint loadable and no output; resume matches", async () => {
  await using tmp = await tempDir();
  const ck = `${tmp.dir}/ck`;
  const out = `${tmp.dir}/k.rabit`;
  // One backend for both runs: "auto" probes and may choose differently under load (equal only to 1e-3).
  const opts = [
    "--steps",
    "8",
    "--batch",
    "2",
    "--seq",
    "128",
    "--calib-tokens",
    "512",
    "--backend",
    "cpu",
    "--json",
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      fileURLToPath(new URL("../cli.ts", import.meta.url)),
      "quantize",
      "--out",
      out,
      "--checkpoint",
      ck,
      "--checkpoint-every",
      "1",
      ...opts,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Kill it as soon as a checkpoint exists (it writes one after every step).
  for (let i = 0; i < 600; i++) {
    try {
      await Deno.stat(ck);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  child.kill("SIGKILL");
  const status = await child.status;
  if (status.success) {
    // The whole run finished before the kill landed: nothing to check about interruption.
    throw new Error("training finished before SIGKILL; make the run longer");
  }
  const saved = await readCheckpoint(ck);
  assert.ok(saved.step >= 1 && saved.step < 8, `step ${saved.step}`);
  assert.equal(saved.log.losses.length, saved.step);
  const names = [...Deno.readDirSync(tmp.dir)].map((e) => e.name);
  assert.ok(!names.includes("k.rabit"), names.join(", "));

  const resumed = await runCli(["quantize", "--out", out, "--checkpoint", ck, "--resume", ck, ...opts]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const straight = await runCli(["quantize", "--out", `${tmp.dir}/s.rabit`, ...opts]);
  assert.equal(straight.code, 0, straight.stderr);
  assert.deepEqual(lastJson(resumed.stdout).losses, lastJson(straight.stdout).losses);
  const [a, b] = await Promise.all([readRabit(out), readRabit(`${tmp.dir}/s.rabit`)]);
  assert.deepEqual(a.model.params.data, b.model.params.data);
  for (const [name, layer] of a.model.quantized) {
    const other = b.model.quantized.get(name)!;
    assert.deepEqual([layer.planes, layer.g, layer.h], [other.planes, other.g, other.h], name);
  }
});

Deno.test("the library's quantize needs data only where the run reads text", async () => {
  const { model, tokenizer } = await openModel(MODEL_PATH, { requireTokenizer: true });
  const data = [{ name: "story", text: "Once upon a time there was a cat." }];
  assert.deepEqual(
    [readsText("rtn2"), readsText("ptq"), readsText("ptq", 0), readsText("ptq", 0.5), readsText("dbllm")],
    [false, true, false, true, true],
  );
  // rtn2 and ptq at precondition 0 quantize from the weights alone: no data needed, and data given is unread.
  const bare = await quantize(model, { method: "rtn2", tokenizer: tokenizer! });
  assert.equal(bare.model.quantized.size, 35);
  const withText = await quantize(model, { method: "rtn2", tokenizer: tokenizer!, data });
  for (const [name, layer] of bare.model.quantized) {
    assert.deepEqual(withText.model.quantized.get(name), layer, name);
  }
  assert.equal(
    (await quantize(model, { method: "ptq", precondition: 0, tokenizer: tokenizer! })).method,
    "ptq",
  );
  // Where text is read it is required.
  await assert.rejects(
    () => quantize(model, { method: "ptq", tokenizer: tokenizer! }),
    /expected at least one data text/,
  );
  await assert.rejects(
    () => quantize(model, { method: "rabit", tokenizer: tokenizer!, data: [] }),
    /expected at least one data text/,
  );
});

Deno.test("the library's quantize refuses a teacherTokens that is not auto or an integer in [0, 1e8]", async () => {
  const { model, tokenizer } = await openModel(MODEL_PATH, { requireTokenizer: true });
  const data = [{ name: "story", text: "Once upon a time there was a cat." }];
  for (const teacherTokens of [-1, 1.5, 1e8 + 1, Number.NaN]) {
    await assert.rejects(
      () => quantize(model, { method: "rabit", tokenizer: tokenizer!, data, teacherTokens }),
      /expected teacherTokens "auto" or an integer in \[0, 1e8\], found/,
      String(teacherTokens),
    );
  }
});
