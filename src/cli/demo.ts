// `rabit demo`: the main job end to end on the real model — load, generate, measure perplexity.

import { parseCommand } from "./args.ts";
import { openSession } from "./session.ts";
import { generate } from "../eval/generate.ts";
import { perplexity, perplexityTokens } from "../eval/perplexity.ts";
import { readTextOrThrow } from "./text.ts";
import { Progress } from "../util/progress.ts";
import { dirname, join } from "node:path";

export const DEMO_HELP = `rabit demo — a short end-to-end run on the real model

Usage: rabit demo [--model M] [--text F] [--windows N] [--backend B]

Loads the model (default ../shared/data/stories260K.bin), generates a few lines greedily and with
sampling, and reports perplexity on the first N windows (default 20) of the dev text.

Options:
  --model M      model file (default: $RABIT_MODEL, then ../shared/data/stories260K.bin)
  --text F       evaluation text (default: tinystories_dev.txt next to the model)
  --windows N    windows of seq_len tokens to score (default 20)
  --backend B    auto | webgpu | cpu (default auto)
  -h, --help     show this help`;

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
  const { session, tokenizer, opened } = await openSession(values);
  try {
    console.log(`# model ${opened.path} (${opened.format}) on ${session.backend}: ${session.device}`);
    const enc = new TextEncoder();
    for (
      const [label, opts] of [["greedy", { temperature: 0 }], ["sampled (T=0.8, top-p 0.9, seed 42)", {
        temperature: 0.8,
        topP: 0.9,
        seed: 42,
      }]] as const
    ) {
      console.log(`\n## ${label}`);
      const r = await generate(session, tokenizer, {
        steps: 120,
        ...opts,
        onToken: (_id, t) => Deno.stdout.writeSync(enc.encode(t)),
      });
      console.log(`\n[${r.generated.length} tokens at ${r.tokensPerSecond.toFixed(0)} tokens/s]`);
    }
    const textPath = values.text ?? join(dirname(opened.path), "tinystories_dev.txt");
    const text = await readTextOrThrow(textPath);
    const ids = perplexityTokens((t) => tokenizer.encode(t), text);
    const windows = Number(values.windows ?? 20);
    const bar = new Progress("perplexity", windows, "win");
    const r = await perplexity(session, ids, { maxWindows: windows, onWindow: () => bar.tick() });
    bar.finish();
    console.log(
      `\n## perplexity on the first ${r.windows} windows of ${textPath}: ${r.ppl.toFixed(4)} ` +
        `(${r.tokensPerSecond.toFixed(0)} tokens/s)`,
    );
  } finally {
    session.dispose();
  }
}
