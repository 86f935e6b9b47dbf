// `rabit generate`: continue a prompt, streaming text as it is produced.

import { numberOption, parseCommand, printJson, UsageError } from "./args.ts";
import { BACKEND_HELP, openSession } from "./session.ts";
import { generate } from "../eval/generate.ts";
import { writeStdout } from "../util/process.ts";

export const GENERATE_HELP = `rabit generate — generate text from a prompt, streaming tokens as they come

Usage: rabit generate [--model M] [--tokenizer T] [--prompt S] [--steps N] [--temperature X] [--top-p P] [--seed N]

Options:
  --model M          llama2.c .bin, GGUF (F32/F16/BF16), .rabit, .safetensors file or Hugging Face
                     directory (default: $RABIT_MODEL, then ../shared/data/stories260K.bin)
  --tokenizer T      llama2.c tokenizer.bin or Hugging Face tokenizer.json (default: embedded in the model
                     file, or found next to the model)
  --prompt S         text to continue (default: empty, start from BOS)
  --steps N          new tokens at most (default 256; stops at BOS/EOS or the model's seq_len)
  --temperature X    0 = greedy (default 0); higher samples more freely
  --top-p P          nucleus sampling threshold in (0, 1] (default 0.9; only with temperature > 0)
  --seed N           random seed for sampling (default: time-based; only with temperature > 0)
  --backend B        ${BACKEND_HELP}
  --json             print one JSON object as the last line (ids, text, tokens/s)
  -h, --help         show this help`;

/** Runs `generate` with argv (after the command name). */
export async function runGenerate(argv: string[]): Promise<void> {
  const { values } = parseCommand("generate", argv, {
    model: { type: "string" },
    tokenizer: { type: "string" },
    prompt: { type: "string" },
    steps: { type: "string" },
    temperature: { type: "string" },
    "top-p": { type: "string" },
    seed: { type: "string" },
    backend: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) return console.log(GENERATE_HELP);
  const steps = numberOption(values, "steps", { integer: true, min: 0 }) ?? 256;
  const temperature = numberOption(values, "temperature", { min: 0 }) ?? 0;
  const topP = numberOption(values, "top-p", { min: 1e-6, max: 1 }) ?? 0.9;
  const seed = numberOption(values, "seed", { integer: true, min: 0, max: 2 ** 32 - 1 }); // a 32-bit seed
  if (temperature === 0) {
    // Greedy decoding draws nothing: a seed or nucleus given for it would be silently ignored.
    for (const key of ["seed", "top-p"] as const) {
      if (values[key] !== undefined) {
        throw new UsageError(
          `generate: --${key} applies to sampling; add --temperature X (X > 0, e.g. 0.8), or leave --${key} out ` +
            "for the greedy text (temperature 0, the default)",
        );
      }
    }
  }
  const { session, tokenizer } = await openSession(values);
  try {
    const prompt = values.prompt ?? "";
    if (!values.json) writeStdout(prompt);
    const r = await generate(session, tokenizer, {
      prompt,
      steps,
      temperature,
      topP,
      seed,
      onToken: values.json ? undefined : (_id, text) => writeStdout(text),
    });
    if (values.json) {
      return printJson({
        backend: session.backend,
        prompt,
        text: r.text,
        ids: r.ids,
        promptTokens: r.promptTokens,
        generatedTokens: r.generated.length,
        tokensPerSecond: r.tokensPerSecond,
        prefillSeconds: r.prefillSeconds,
      });
    }
    console.log();
    console.error(
      `[${r.generated.length} tokens, ${r.tokensPerSecond.toFixed(1)} tokens/s on ${session.backend}, ` +
        `prompt ${r.promptTokens} tokens in ${(r.prefillSeconds * 1000).toFixed(0)} ms]`,
    );
  } finally {
    session.dispose();
  }
}
