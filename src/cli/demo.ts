// `rabit demo`: the main job end to end on the real model — load, generate, measure perplexity, then
// quantize it to 2-bit residual-binary paths (function-aware PTQ) and compare.

import { numberOption, parseCommand } from "./args.ts";
import { openSession } from "./session.ts";
import { generate } from "../eval/generate.ts";
import { perplexity, perplexityTokens } from "../eval/perplexity.ts";
import { readTextOrThrow } from "./text.ts";
import { Progress } from "../util/progress.ts";
import { calibrate, calibrationWindows } from "../quant/calibrate.ts";
import { quantizeModel } from "../quant/quantize_model.ts";
import { createSession } from "../backend/create.ts";
import type { InferenceSession } from "../backend/backend.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import { dirname, join } from "node:path";

export const DEMO_HELP = `rabit demo — a short end-to-end run on the real model

Usage: rabit demo [--model M] [--text F] [--windows N] [--backend B]

Loads the model (default ../shared/data/stories260K.bin), generates a few lines greedily and with
sampling, reports perplexity on the first N windows of the dev text, then quantizes the model to k = 2
residual-binary paths (function-aware PTQ, calibrated on the end of the text) and does the same again.

Options:
  --model M      full-precision model file (default: $RABIT_MODEL, then ../shared/data/stories260K.bin)
  --text F       evaluation text (default: tinystories_dev.txt next to the model)
  --windows N    windows of seq_len tokens to score (default 20)
  --backend B    auto | webgpu | cpu (default auto)
  -h, --help     show this help`;

const enc = new TextEncoder();

async function showGeneration(session: InferenceSession, tokenizer: Tokenizer): Promise<void> {
  const samples = [
    ["greedy", { temperature: 0 }],
    ["sampled (T=0.8, top-p 0.9, seed 42)", { temperature: 0.8, topP: 0.9, seed: 42 }],
  ] as const;
  for (const [label, opts] of samples) {
    console.log(`\n## ${label}`);
    const r = await generate(session, tokenizer, {
      steps: 100,
      ...opts,
      onToken: (_id, t) => Deno.stdout.writeSync(enc.encode(t)),
    });
    console.log(`\n[${r.generated.length} tokens at ${r.tokensPerSecond.toFixed(0)} tokens/s]`);
  }
}

async function showPerplexity(session: InferenceSession, ids: number[], windows: number, label: string) {
  const bar = new Progress("perplexity", windows, "win");
  const r = await perplexity(session, ids, { maxWindows: windows, onWindow: () => bar.tick() });
  bar.finish();
  console.log(
    `\n## ${label}: perplexity ${r.ppl.toFixed(4)} on ${r.windows} windows (${
      r.tokensPerSecond.toFixed(0)
    } tokens/s)`,
  );
  return r.ppl;
}

/** Runs `demo` with argv (after the command name). */
export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseCommand("demo", argv, {
    model: { type: "string" },
    tokenizer: { type: "string" },
    text: { type: "string" },
    windows: { type: "string" },
    backend: { type: "string" },
  });
  if (values.help) return console.log(DEMO_HELP);
  const windows = numberOption(values, "windows", { integer: true, min: 1 }) ?? 20;
  const { session, tokenizer, opened } = await openSession(values);
  const textPath = values.text ?? join(dirname(opened.path), "tinystories_dev.txt");
  const ids = perplexityTokens((t) => tokenizer.encode(t), await readTextOrThrow(textPath));
  let fpPpl: number;
  try {
    console.log(`# ${opened.path} (${opened.format}) on ${session.backend}: ${session.device}`);
    await showGeneration(session, tokenizer);
    fpPpl = await showPerplexity(session, ids, windows, "full precision");
  } finally {
    session.dispose();
  }
  if (opened.model.quantized.size > 0) return; // already packed: nothing to compare against

  console.log(`\n# quantizing to 2 residual-binary paths (ptq: calibrate, preconditioned SVID, 4 rounds)`);
  const t0 = performance.now();
  const stats = calibrate(
    opened.model,
    calibrationWindows(ids, 4096, Math.min(512, opened.model.config.seqLen)),
  );
  const q = quantizeModel(opened.model, { method: "ptq", paths: 2, stats });
  console.log(`quantized ${q.layers.length} layers in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const packed = await createSession(q.model, { backend: session.backend as "cpu" | "webgpu" });
  try {
    await showGeneration(packed, tokenizer);
    const ppl = await showPerplexity(packed, ids, windows, "2-bit ptq");
    console.log(
      `\n# perplexity ${fpPpl.toFixed(3)} (fp32) -> ${ppl.toFixed(3)} (2-bit ptq, before any training)`,
    );
  } finally {
    packed.dispose();
  }
}
