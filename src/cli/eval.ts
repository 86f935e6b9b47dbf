// `rabit eval`: perplexity of a model on a text file by the protocol of METHOD.md §7.

import { numberOption, parseCommand, printJson, UsageError } from "./args.ts";
import { BACKEND_HELP, openSession } from "./session.ts";
import { perplexity, perplexityTokens } from "../eval/perplexity.ts";
import { readTextOrThrow } from "./text.ts";
import { Progress } from "../util/progress.ts";
import { splitHoldout } from "../train/data.ts";
import { DIAGNOSTICS_TOKENS, pathDiagnostics } from "../eval/diagnostics.ts";
import { openTeacher, printDiagnostics, requirePacked } from "./diagnose.ts";

export const EVAL_HELP = `rabit eval — perplexity of a model on a text file (METHOD.md §7)

Usage: rabit eval [--model M] [--tokenizer T] --text F [--context N] [--holdout P] [--json]
       rabit eval --model M.rabit --text F --teacher M.bin [--diag-tokens N] [--json]

Options:
  --model M        llama2.c .bin, GGUF, .rabit, .safetensors file or Hugging Face directory (default:
                   $RABIT_MODEL, then ../shared/data/stories260K.bin)
  --tokenizer T    llama2.c tokenizer.bin or Hugging Face tokenizer.json (default: embedded in the model
                   file, or found next to the model)
  --text F         text file to score (required)
  --context N      window length in tokens (default: the model's seq_len)
  --max-windows N  score only the first N windows (quick checks)
  --holdout P      score only the held-out end of the text: the part quantize --holdout P never trains or
                   calibrates on (the same paragraph-boundary split)
  --backend B      ${BACKEND_HELP}
  --teacher M      .rabit models: also run the inter-path diagnostics (METHOD.md §6) against this
                   full-precision llama2.c .bin (same config) on the scored text; prints the means,
                   and --json adds "diagnostics" with every layer (inspect --diagnose prints the table)
  --diagnose       the same with the default teacher ($RABIT_MODEL, then ../shared/data/stories260K.bin)
  --diag-tokens N  diagnostics run on at most the first N scored tokens (default ${DIAGNOSTICS_TOKENS})
  --json           print one JSON object as the last line: ppl, nll, tokens, windows, context, ...
  -h, --help       show this help`;

/** Runs `eval` with argv (after the command name). */
export async function runEval(argv: string[]): Promise<void> {
  const { values } = parseCommand("eval", argv, {
    model: { type: "string" },
    tokenizer: { type: "string" },
    text: { type: "string" },
    context: { type: "string" },
    "max-windows": { type: "string" },
    holdout: { type: "string" },
    backend: { type: "string" },
    teacher: { type: "string" },
    diagnose: { type: "boolean" },
    "diag-tokens": { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) return console.log(EVAL_HELP);
  if (!values.text) throw new UsageError("eval: --text F is required (the file to score)");
  const context = numberOption(values, "context", { integer: true, min: 2 });
  const maxWindows = numberOption(values, "max-windows", { integer: true, min: 1 });
  // quantize --holdout 0 trains on the whole file; here 0 would score nothing, so say what to do instead.
  if (values.holdout !== undefined && String(values.holdout).trim() !== "" && Number(values.holdout) === 0) {
    throw new UsageError(
      "eval: --holdout 0 would score nothing; leave --holdout out to score the whole text",
    );
  }
  const holdout = numberOption(values, "holdout", { min: 1e-9, max: 0.9 });
  if (values.diagnose === true && values.teacher !== undefined) {
    throw new UsageError("eval: --teacher M already runs the diagnostics (against M); drop --diagnose");
  }
  const diagnose = values.diagnose === true || values.teacher !== undefined;
  const diagTokens = numberOption(values, "diag-tokens", { integer: true, min: 1 });
  if (diagTokens !== undefined && !diagnose) {
    throw new UsageError("eval: --diag-tokens applies only with --teacher M or --diagnose");
  }
  const whole = await readTextOrThrow(values.text);
  const text = holdout === undefined ? whole : splitHoldout(whole, holdout).heldOut;
  const { session, tokenizer, opened } = await openSession(values);
  try {
    if (context !== undefined && context > session.config.seqLen) {
      throw new UsageError(
        `eval: --context must be from 2 to ${session.config.seqLen} (the model's seq_len), found ${context}`,
      );
    }
    if (diagnose) requirePacked(`eval ${values.teacher !== undefined ? "--teacher" : "--diagnose"}`, opened);
    // Loaded before scoring so that a teacher that does not fit fails at once.
    const teacher = diagnose ? await openTeacher(values.teacher, opened) : undefined;
    const ids = perplexityTokens((t) => tokenizer.encode(t), text);
    const windowsTotal = Math.min(
      Math.floor(ids.length / (context ?? session.config.seqLen)),
      maxWindows ?? Infinity,
    );
    const scoredTokens = windowsTotal * (context ?? session.config.seqLen);
    if (diagTokens !== undefined && windowsTotal > 0 && diagTokens > scoredTokens) {
      throw new UsageError(
        `eval: --diag-tokens ${diagTokens} is more than the ${scoredTokens} tokens this run scores ` +
          `(${windowsTotal} window${windowsTotal === 1 ? "" : "s"}); lower --diag-tokens` +
          (maxWindows !== undefined ? " or raise --max-windows" : ""),
      );
    }
    const bar = new Progress("eval", windowsTotal, "win");
    const r = await perplexity(session, ids, { context, maxWindows, onWindow: () => bar.tick() });
    bar.finish();
    // The CPU reference forward of the same packed model on the start of the tokens just scored
    // (never more than were scored, so --max-windows keeps a quick check quick).
    const maxTokens = Math.min(diagTokens ?? DIAGNOSTICS_TOKENS, r.windows * r.context);
    const diagnostics = teacher
      ? pathDiagnostics({ student: opened.model, teacher }, ids, { context: r.context, maxTokens })
      : undefined;
    const result = {
      model: opened.path,
      text: values.text,
      holdout: holdout ?? null,
      backend: session.backend,
      ...r,
      ...(diagnostics ? { diagnostics } : {}),
    };
    if (values.json) return printJson(result);
    console.log(`model      ${opened.path} (${opened.format}, ${session.backend}: ${session.device})`);
    const part = holdout === undefined ? "" : ` (held-out last ${holdout})`;
    console.log(`text       ${values.text}${part}: ${r.tokens} tokens, ${r.windows} windows of ${r.context}`);
    console.log(`perplexity ${r.ppl.toFixed(4)}   mean NLL ${r.nll.toFixed(5)}`);
    console.log(`speed      ${r.tokensPerSecond.toFixed(0)} tokens/s (${r.seconds.toFixed(1)} s)`);
    if (diagnostics) printDiagnostics(diagnostics, false);
  } finally {
    session.dispose();
  }
}
