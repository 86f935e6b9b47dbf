// `rabit demo`: the main job end to end on the real model — load, generate, measure perplexity, then
// quantize it to 2-bit residual-binary paths twice (post-training, and a short RaBiT training run) and
// show the three side by side.

import type { BackendName } from "../backend/backend.ts";
import { numberOption, parseCommand, UsageError } from "./args.ts";
import { BACKEND_HELP, openSession } from "./session.ts";
import { generate } from "../eval/generate.ts";
import { perplexity, perplexityTokens } from "../eval/perplexity.ts";
import { readTextOrThrow } from "./text.ts";
import { Progress } from "../util/progress.ts";
import { createSession } from "../backend/create.ts";
import type { InferenceSession } from "../backend/backend.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import { splitHoldout } from "../train/data.ts";
import { quantize, type TrainBackendName } from "../train/quantize.ts";
import type { PackedModel } from "../quant/residual_binary.ts";
import { dirname, join } from "node:path";

export const DEMO_HELP = `rabit demo — a short end-to-end run on the real model

Usage: rabit demo [--model M] [--tokenizer T] [--text F] [--steps N] [--windows N] [--backend B]

Loads the model (default ../shared/data/stories260K.bin), generates greedily and reports perplexity on
the held-out end of the text (the last 10 %, never trained or calibrated on); then quantizes it to k = 2
residual-binary paths twice — post-training (ptq) and with a short RaBiT training run on the rest of the
text — and shows the three models side by side: perplexity and greedy text.

Options:
  --model M      full-precision model: llama2.c .bin, GGUF or Hugging Face (default: $RABIT_MODEL, then
                 ../shared/data/stories260K.bin); a quantized .rabit is refused
  --tokenizer T  tokenizer file, when the model carries none (default: embedded or next to the model)
  --text F       text to train on and evaluate on its held-out end (default: tinystories_dev.txt next
                 to the model)
  --steps N      training steps of the RaBiT run (default 150: a few minutes on two CPU cores)
  --windows N    held-out windows of seq_len tokens to score (default: all)
  --backend B    ${BACKEND_HELP}
                 Training runs on cpu with cpu or wasm (it has no wasm path), on webgpu with webgpu, and
                 with auto where quantize's auto puts it
  -h, --help     show this help`;

/** Where the RaBiT run trains for an inference --backend: training has no wasm path, so wasm trains on cpu. */
export function demoTrainBackend(backend: BackendName): TrainBackendName {
  return backend === "wasm" ? "cpu" : backend;
}

async function greedy(session: InferenceSession, tokenizer: Tokenizer): Promise<string> {
  const r = await generate(session, tokenizer, { steps: 60, temperature: 0 });
  return r.text.replace(/\s+/g, " ").trim();
}

async function score(session: InferenceSession, ids: number[], windows: number | undefined, label: string) {
  const total = Math.min(windows ?? Infinity, Math.floor(ids.length / session.config.seqLen));
  const bar = new Progress(`perplexity ${label}`, total, "win");
  const r = await perplexity(session, ids, { maxWindows: windows, onWindow: () => bar.tick() });
  bar.finish();
  return r.ppl;
}

/** Runs `demo` with argv (after the command name). */
export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseCommand("demo", argv, {
    model: { type: "string" },
    tokenizer: { type: "string" },
    text: { type: "string" },
    steps: { type: "string" },
    windows: { type: "string" },
    backend: { type: "string" },
  });
  if (values.help) return console.log(DEMO_HELP);
  const windows = numberOption(values, "windows", { integer: true, min: 1 });
  const steps = numberOption(values, "steps", { integer: true, min: 1 }) ?? 150;
  const { session, tokenizer, opened, backend } = await openSession(values, (model) => {
    // Nothing to quantize, and no full-precision model to compare with: refused before any scoring.
    if (model.model.quantized.size > 0) {
      throw new UsageError(
        `demo: --model ${model.path} is already quantized; demo quantizes a full-precision model: ` +
          "pass a llama2.c .bin, GGUF or Hugging Face model",
      );
    }
  });
  const textPath = values.text ?? join(dirname(opened.path), "tinystories_dev.txt");
  const text = await readTextOrThrow(textPath);
  const heldOut = splitHoldout(text, 0.1).heldOut;
  const ids = perplexityTokens((t) => tokenizer.encode(t), heldOut);
  const rows: { label: string; ppl: number; text: string; seconds: number }[] = [];
  try {
    console.log(`# ${opened.path} (${opened.format}) on ${session.backend}: ${session.device}`);
    const ppl = await score(session, ids, windows, "fp32");
    rows.push({ label: "full precision", ppl, text: await greedy(session, tokenizer), seconds: 0 });
    console.log(`full precision: perplexity ${ppl.toFixed(3)} on the held-out end of ${textPath}`);
  } finally {
    session.dispose();
  }
  const data = [{ name: textPath, text }];
  const runs: [string, () => Promise<{ model: PackedModel; seconds: number; backend: string }>][] = [
    ["2-bit ptq", () => quantize(opened.model, { method: "ptq", tokenizer, data })],
    [`2-bit rabit, ${steps} steps`, () => {
      let bar: Progress | undefined;
      return quantize(opened.model, {
        method: "rabit",
        tokenizer,
        data,
        steps,
        backend: demoTrainBackend(backend),
        onStep: (s) => {
          bar ??= new Progress("train", s.steps, "step");
          bar.tick(
            1,
            `loss ${s.loss.toFixed(3)} KL ${s.kl.toFixed(3)} ${s.tokensPerSecond.toFixed(0)} tok/s`,
          );
          if (s.step === s.steps) bar.finish();
        },
      });
    }],
  ];
  for (const [label, run] of runs) {
    console.log(`\n# ${label}`);
    const r = await run();
    const packed = await createSession(r.model, { backend: session.backend as BackendName });
    try {
      const ppl = await score(packed, ids, windows, label);
      rows.push({ label, ppl, text: await greedy(packed, tokenizer), seconds: r.seconds });
      const trained = r.backend === "none" ? "" : `, trained on ${r.backend}`;
      console.log(`${label}: perplexity ${ppl.toFixed(3)} (${r.seconds.toFixed(0)} s${trained})`);
    } finally {
      packed.dispose();
    }
  }
  console.log(`\n# side by side (held-out perplexity; greedy text from BOS)`);
  for (const r of rows) {
    console.log(
      `\n${r.label.padEnd(26)} ppl ${r.ppl.toFixed(3).padStart(8)}  (${(r.ppl / rows[0].ppl).toFixed(2)}×)`,
    );
    console.log(`  ${r.text}`);
  }
}
