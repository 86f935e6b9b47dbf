// The full-precision reference for a run that trains on the text's own labels: the same objective as
// `quantize --label-weight A` ((1 − A)·KL to the original model + A·CE on the text's next tokens + γ·MSE of
// the block outputs; token noise on the inputs, clean targets), applied to the unquantized model itself, every
// tensor trained with AdamW on the CPU reference backward. With A > 0 a quantized student also adapts to the
// training text's domain; this measures how much of its gain the full-precision model would get from the same
// text, so that "ratio to fp32" can be read against the original model and against this one.
//
//   deno run -A experiments/finetune_fp32.ts [--steps N] [--batch B] [--lr X] [--label-weight A] [--gamma G]
//                                            [--seed N] [--json]
//
// Data and scoring are the test-tail protocol of docs/evidence.md: train on the first 90 % of
// tinystories_dev.txt, score its last 10 % (eval --holdout 0.1) and 200 windows of WikiText-2.

import { parseArgs } from "node:util";
import { parseOrExit } from "./_run.ts";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { openModel } from "../src/io/load_model.ts";
import { backwardChunk } from "../src/model/backward.ts";
import { createKvCache, forwardChunk } from "../src/model/forward.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { adamwStep } from "../src/train/adamw.ts";
import { splitHoldout, WindowSet } from "../src/train/data.ts";
import { batchLosses } from "../src/train/backend.ts";
import { windowLossSeeds } from "../src/train/losses.ts";
import { learningRate } from "../src/train/loop.ts";

const USAGE = "Usage: deno run -A experiments/finetune_fp32.ts [--steps N] [--batch B] [--lr X] " +
  "[--label-weight A] [--gamma G] [--seed N] [--json]";
const { values } = parseOrExit("finetune_fp32", USAGE, () =>
  parseArgs({
    args: Deno.args,
    options: {
      steps: { type: "string", default: "400" },
      batch: { type: "string", default: "2" },
      lr: { type: "string", default: "3e-4" },
      "label-weight": { type: "string", default: "0.5" },
      gamma: { type: "string", default: "0.1" },
      seed: { type: "string", default: "1" },
      json: { type: "boolean" },
    },
  }));
const steps = Number(values.steps), batch = Number(values.batch), lr = Number(values.lr);
const alpha = Number(values["label-weight"]), gamma = Number(values.gamma), seed = Number(values.seed);
for (const [name, v] of [["steps", steps], ["batch", batch], ["lr", lr], ["seed", seed]] as const) {
  if (!(Number.isFinite(v) && v > 0)) {
    throw new RangeError(`--${name}: expected a positive number, found ${v}`);
  }
}
if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`--label-weight: expected 0..1, found ${alpha}`);

const data = new URL("../../shared/data/", import.meta.url).pathname;
const teacher = await openModel(`${data}stories260K.bin`, { requireTokenizer: true });
const encode = (t: string) => teacher.tokenizer!.encode(t);
const text = await Deno.readTextFile(`${data}tinystories_dev.txt`);
const { train, heldOut } = splitHoldout(text, 0.1);
const windows = WindowSet.fromTexts([{ name: "train", text: train }], encode, 512, { noise: 0.1 });

// The student: a copy of every tensor, all trained.
const t0 = teacher.model;
const params = t0.params.zerosLike();
params.data.set(t0.params.data);
const student: LlamaModel = { config: t0.config, params, quantized: new Map() };
const grads = params.zerosLike();
const m = new Float32Array(params.count), v = new Float32Array(params.count);
const V = t0.config.vocabSize;
const start = performance.now();

for (let s = 1; s <= steps; s++) {
  const inputs = windows.batch(seed, s - 1, batch);
  const labels = windows.span(seed, (s - 1) * batch, batch, { clean: true });
  grads.data.fill(0);
  let kl = 0, ce = 0, mse = 0; // batch means
  inputs.forEach((w, b) => {
    const S = w.length;
    const t = forwardChunk(t0, w, 0, createKvCache(t0, S), { keepHidden: true });
    const r = forwardChunk(student, w, 0, createKvCache(student, S), {
      keepHidden: true,
      keepActivations: true,
    });
    const seeds = windowLossSeeds(
      { logits: r.logits, hidden: r.hidden! },
      { logits: t.logits, hidden: t.hidden! },
      V,
      { batch, gamma, labelWeight: alpha, label: labels[b] },
    );
    kl += seeds.kl / batch;
    ce += seeds.ce / batch;
    mse += seeds.mse / batch;
    backwardChunk(student, r.activations!, seeds.dLogits, { dHidden: seeds.dHidden, grads });
  });
  // Global-norm clipping at 1, as quantize's loop.
  let norm = 0;
  for (const g of grads.data) norm += g * g;
  norm = Math.sqrt(norm);
  if (norm > 1) { for (let i = 0; i < grads.data.length; i++) grads.data[i] /= norm; }
  adamwStep(params.data, grads.data, m, v, s, { lr: learningRate(s, { steps, lr }) });
  if (!values.json && (s % 20 === 0 || s === steps)) {
    const sec = (performance.now() - start) / 1000;
    const { loss } = batchLosses(kl, mse, gamma, alpha, ce);
    console.error(`step ${s}/${steps} loss ${loss.toFixed(4)} ${(sec / s).toFixed(2)} s/step`);
  }
}

const score = async (ids: number[], maxWindows?: number) =>
  (await perplexity(new CpuSession(student), ids, { maxWindows })).ppl;
const result = {
  what: "fp32 stories260K fine-tuned with quantize --label-weight's objective (every tensor, AdamW)",
  command: `deno run -A experiments/finetune_fp32.ts --steps ${steps} --batch ${batch} --lr ${lr} ` +
    `--label-weight ${alpha} --gamma ${gamma} --seed ${seed} --json`,
  steps,
  batch,
  lr,
  labelWeight: alpha,
  gamma,
  seed,
  testPpl: await score(perplexityTokens(encode, heldOut)),
  wikiPpl: await score(perplexityTokens(encode, await Deno.readTextFile(`${data}wikitext2_test.raw`)), 200),
  seconds: (performance.now() - start) / 1000,
};
console.log(values.json ? JSON.stringify(result) : result);
