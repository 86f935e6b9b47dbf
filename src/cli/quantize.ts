// `rabit quantize`: turn a full-precision model into a packed `.rabit` file, by post-training
// quantization (ptq, rtn2) or quantization-aware training (rabit and the baselines standard, freeze, dbllm,
// onebit). Calls the library's quantize().

import { choiceOption, numberOption, parseCommand, printJson, UsageError } from "./args.ts";
import { readTextOrThrow } from "./text.ts";
import { openModel } from "../io/load_model.ts";
import { resolveModelPath } from "../io/model_paths.ts";
import { vocabDtypes, writeRabit } from "../io/rabit_format.ts";
import {
  MIXED_PATHS_METHODS,
  quantize,
  QUANTIZE_DEFAULTS,
  QUANTIZE_METHODS,
  QUANTIZE_PRESETS,
  type QuantizeMethodName,
  QuantizeOptionError,
  readsText,
  TRAINED_METHODS,
} from "../train/quantize.ts";
import { parsePathsBy, type PathsBy } from "../quant/layer_paths.ts";
import { Progress } from "../util/progress.ts";
import { stat } from "../io/fs.ts";
import { dirname, join } from "node:path";

const D = QUANTIZE_DEFAULTS;

export const QUANTIZE_HELP =
  `rabit quantize — turn a model's block linears into k residual-binary paths and write a .rabit file

Usage: rabit quantize [--model M] --out F.rabit [--method NAME] [--paths K] [--paths-by KIND=K,...]
                      [--init svid|greedy|none]
                      [--preset default|quality] [--teacher-tokens N] [--shift-windows on|off] [--token-noise P]
                      [--steps N] [--batch B] [--late-batch B [--late-batch-from F]] [--seq S] [--lr X]
                      [--min-lr-ratio R] [--lr-schedule S] [--scale-lr M] [--ste-clip C|none]
                      [--latent-mix A [--latent-mix-until F]]
                      [--optimizer adamw|muon] [--momentum M] [--weight-decay D] [--gamma G]
                      [--gamma-final G] [--label-weight A] [--train-float WHICH] [--vocab-dtype D]
                      [--data F ...] [--checkpoint F [--checkpoint-every N]] [--resume F]
                      [--backend auto|cpu|webgpu] [--seed N] [--json]

Methods:
  rabit     RaBiT (METHOD.md §2–§4): function-aware init, then quantization-aware training of one latent
            per layer whose k paths are derived in sequence (coupled residual forward), distilled from
            the full-precision model (KL + γ·hidden-state MSE)
  standard  the same training with k independent latents, one per path (the "standard QAT" baseline)
  freeze    path freezing (MBOK): greedy residual init, then only the last path's latent and all scales
            train; earlier paths' signs stay fixed (k ≥ 2)
  dbllm     dual binarization (DB-LLM): a per-row 2-bit uniform code split into two binary planes,
            trained with the STE on the code (clipped to its range); k = 2, no SVID or preconditioning
  onebit    OneBit: one path (k = 1) from SVID of W, then the same training
  ptq       the function-aware initialization alone (METHOD.md §3), no training
  rtn2      plain 2-bit symmetric round-to-nearest per row (the naive reference point), k = 2

Options:
  --model M            full-precision model: llama2.c .bin, GGUF (F32/F16/BF16) or a Hugging Face directory
                       (default: $RABIT_MODEL, then ../shared/data/stories260K.bin)
  --tokenizer T        tokenizer.bin or tokenizer.json (default: from the model file or found next to it);
                       embedded in the output file
  --out F              output .rabit file (required); written atomically
  --method NAME        ${QUANTIZE_METHODS.join(" | ")} (default rabit)
  --paths K            binary paths per layer, 1..4 (default ${D.paths}; onebit 1)
  --paths-by LIST      k per layer kind, block or layer, overriding --paths there (rabit, standard, freeze,
                       ptq): KEY=K pairs, KEY a kind wq wk wv wo w1 w2 w3 (every block), a block layers.L
                       (its seven linears; wins over a kind) or a layer layers.L.KIND (wins over both),
                       e.g. "wk=3,layers.0=1,layers.0.w2=2"; --json reports planesPerWeight. On
                       stories260K "layers.1=3,layers.0=1" keeps the bits and scored 1.8 % better;
                       experiments/paths_screen.ts finds a model's trade (docs/evidence.md)
  --preset NAME        default | quality: the training budget (default: ${D.steps} steps of ${D.batch} windows, ${D.lateBatch}
                       in the second half, 19 to 50 minutes on 2 CPU cores; quality: ${QUANTIZE_PRESETS.quality.batch} windows every
                       step, about 1.4 times as long); explicit options win
  --init NAME          how the paths start: svid (greedy residual SVID + --svid-rounds refits), greedy
                       (no refits), none (sign and mean-absolute scales, no SVID); for rabit, standard,
                       freeze, onebit (and svid|greedy for ptq). Default svid; freeze: greedy
  --data F             training and calibration text; repeat for several files (default:
                       tinystories_dev.txt next to the model). The last --holdout of each file is never
                       trained or calibrated on, so it can measure the result. rtn2, and ptq with
                       --precondition 0, read no text and refuse --data and --holdout
  --holdout P          held-back fraction at the end of each data file (default ${D.holdout})
  --teacher-tokens N|auto  also train on N tokens of stories sampled from the full-precision model itself
                       (temperature 1, seeded by --seed; on all cores; default ${D.teacherTokens}). auto: what the run reads
                       beyond the text, steps × batch × seq − text tokens, so no window repeats (0 when the
                       text covers the run), at most what 2e12 FLOPs of sampling buy (3.8M tokens for
                       stories260K, about nothing for a billion-parameter model: pass N there)
  --train-float WHICH  float tensors trained besides the binarized layers: norms (the RMSNorm weights),
                       all (norms, token embedding and classifier; they stay floating point in the
                       file), or none (default ${D.trainFloat})
  --shift-windows on|off  lay each later epoch's windows at a seeded offset into the text, so repeated
                       epochs read it in new windows (default ${D.shiftWindows ? "on" : "off"})
  --token-noise P      each epoch after the first replaces every input token with probability P by one drawn
                       from the text's own tokens; teacher and student read the same window (default ${D.tokenNoise})
  --steps N            optimizer steps (default ${D.steps})
  --batch B            windows per step (default ${D.batch})
  --late-batch B       windows per step from --late-batch-from on, where the decaying lr settles the signs
                       (default ${D.lateBatch} with the default --batch; with --batch or a preset given: that
                       batch, the same throughout)
  --late-batch-from F  where --late-batch starts, as a fraction of --steps, 0 ≤ F < 1 (default ${D.lateBatchFrom})
  --seq S              tokens per window (default ${D.seq})
  --lr X               peak learning rate, warmup then --lr-schedule decay (default ${D.lr}; standard, dbllm 0.002;
                       freeze 0.004; onebit 0.008: each method's tuned value)
  --min-lr-ratio R     where the decay ends, as a fraction of the peak lr, 0..1 (default ${D.minLrRatio})
  --lr-schedule S      cosine | linear: the shape of the decay after the warmup (default ${D.lrSchedule})
  --optimizer NAME     adamw | muon for the latents; scales and norms use AdamW (default ${D.optimizer})
  --scale-lr M         learning rate of the scales and norms as a multiple of --lr (default ${D.scaleLrMultiplier};
                       standard and freeze 3, dbllm 0.3: each method's tuned value)
  --momentum M         Muon's momentum for the latents, 0 ≤ M < 1 (default ${D.momentum}; --optimizer muon only)
  --weight-decay D     decoupled weight decay of the latents, w ← w·(1 − lr·D) each step, with either
                       optimizer (default ${D.weightDecay})
  --gamma G            weight of the hidden-state MSE against the KL term (default ${D.gamma}; standard,
                       freeze, dbllm 1)
  --gamma-final G      γ at the last step: the MSE weight goes from --gamma to G as the lr decays (same
                       shape as --lr-schedule; default: --gamma throughout)
  --label-weight A     share α of the KL term given to the cross-entropy on the text's own next tokens:
                       (1 − α)·KL + α·CE + γ·MSE, 0 ≤ A ≤ 1 (default ${D.labelWeight}: pure distillation)
  --checkpoint F       write the training state here every --checkpoint-every steps and at the end
  --checkpoint-every N (default 50; with --checkpoint)
  --resume F           continue from checkpoint F (same options; continues to the same --steps)
  --backend NAME       auto | cpu | webgpu: where training runs (default auto)
  --seed N             seed of the window order (default ${D.seed})
  --ste-clip C|none    clipped straight-through estimator: no latent gradient where |W| exceeds C times the
                       largest magnitude the paths can give (default: identity STE; dbllm 4/3, the code's
                       range); none: the identity STE, also for dbllm
  --latent-mix A       start the layers as (1 − A)·(binary paths) + A·(latent), the latent being the teacher's
                       weight at first, and take A on a line to 0 by --latent-mix-until: a homotopy from full
                       precision to 2 bits (rabit, dbllm with --ste-clip none, onebit; 0 ≤ A < 1; default 0: off)
  --latent-mix-until F where the latent mix reaches 0, as a fraction of --steps, 0 < F ≤ 1 (default 0.5)
  --svid-rounds T      Gauss–Seidel refit rounds of the init (default ${D.svidRounds}; 0 = greedy residual SVID;
                       --init svid only)
  --precondition A     I/O channel-importance exponent a_in = a_out of the init (default ${D.precondition}; 0 disables;
                       onebit 0; dbllm and rtn2 take none)
  --calib-tokens N     calibration tokens for the preconditioning (default ${D.calibTokens}; only where a run
                       calibrates: --precondition > 0, not dbllm or rtn2)
  --calib-text F       same as --data (kept for scripts written for ptq; not with --data)
  --vocab-dtype D      storage of the token embedding and the classifier in the file: f32 (default), f16, or
                       i8 (int8 codes with one scale per row: a quarter of f32's bytes; every backend then
                       runs the classifier with its int8 kernel)
  --json               print one JSON object as the last line (method, backend, steps, losses, seconds, …)
  -h, --help           show this help`;

/** Runs `quantize` with argv (after the command name). */
export async function runQuantize(argv: string[]): Promise<void> {
  const { values } = parseCommand("quantize", argv, {
    model: { type: "string" },
    tokenizer: { type: "string" },
    out: { type: "string" },
    method: { type: "string" },
    paths: { type: "string" },
    "paths-by": { type: "string" },
    init: { type: "string" },
    preset: { type: "string" },
    data: { type: "string", multiple: true },
    holdout: { type: "string" },
    "teacher-tokens": { type: "string" },
    "shift-windows": { type: "string" },
    "token-noise": { type: "string" },
    "train-float": { type: "string" },
    steps: { type: "string" },
    batch: { type: "string" },
    "late-batch": { type: "string" },
    "late-batch-from": { type: "string" },
    seq: { type: "string" },
    lr: { type: "string" },
    "min-lr-ratio": { type: "string" },
    "lr-schedule": { type: "string" },
    optimizer: { type: "string" },
    "scale-lr": { type: "string" },
    momentum: { type: "string" },
    "weight-decay": { type: "string" },
    gamma: { type: "string" },
    "gamma-final": { type: "string" },
    "label-weight": { type: "string" },
    checkpoint: { type: "string" },
    "checkpoint-every": { type: "string" },
    resume: { type: "string" },
    backend: { type: "string" },
    seed: { type: "string" },
    "calib-text": { type: "string" },
    "calib-tokens": { type: "string" },
    "svid-rounds": { type: "string" },
    precondition: { type: "string" },
    "ste-clip": { type: "string" },
    "latent-mix": { type: "string" },
    "latent-mix-until": { type: "string" },
    "vocab-dtype": { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) return console.log(QUANTIZE_HELP);
  if (!values.out) {
    throw new UsageError("quantize: --out F.rabit is required (where to write the packed model)");
  }
  const method: QuantizeMethodName = choiceOption(values, "method", QUANTIZE_METHODS, "rabit");
  const vocabDtype = choiceOption(values, "vocab-dtype", ["f32", "f16", "i8"] as const, "f32");
  const paths = numberOption(values, "paths", { integer: true, min: 1, max: 4 });
  if ((method === "rtn2" || method === "dbllm") && paths !== undefined && paths !== 2) {
    throw new UsageError(`quantize: ${method} is a 2-bit quantizer: --paths must be 2`);
  }
  if (method === "onebit" && paths !== undefined && paths !== 1) {
    throw new UsageError("quantize: onebit has one path: --paths must be 1");
  }
  let pathsBy: PathsBy | undefined;
  if (values["paths-by"] !== undefined) {
    if (!MIXED_PATHS_METHODS.includes(method)) {
      throw new UsageError(
        `quantize: --paths-by sets k per layer for rabit, standard, freeze and ptq; ${method} has a fixed k: drop --paths-by`,
      );
    }
    try {
      pathsBy = parsePathsBy(values["paths-by"]);
    } catch (e) {
      throw e instanceof RangeError ? new UsageError(`quantize: --paths-by: ${e.message}`) : e;
    }
  }
  const v = values as Record<string, unknown>;
  const options = {
    method,
    paths,
    pathsBy,
    preset: values.preset === undefined
      ? undefined
      : choiceOption(values, "preset", ["default", "quality"] as const, "default"),
    init: values.init === undefined
      ? undefined
      : choiceOption(values, "init", ["svid", "greedy", "none"] as const, "svid"),
    holdout: numberOption(v, "holdout", { min: 0, max: 0.9 }),
    teacherTokens: teacherTokensOption(values["teacher-tokens"]),
    trainFloat: values["train-float"] === undefined
      ? undefined
      : choiceOption(values, "train-float", ["norms", "none", "all"] as const, "norms"),
    shiftWindows: values["shift-windows"] === undefined
      ? undefined
      : choiceOption(values, "shift-windows", ["on", "off"] as const, "off") === "on",
    tokenNoise: numberOption(v, "token-noise", { min: 0, max: 0.5 }),
    steps: numberOption(v, "steps", { integer: true, min: 1 }),
    batch: numberOption(v, "batch", { integer: true, min: 1, max: 4096 }),
    lateBatch: numberOption(v, "late-batch", { integer: true, min: 1, max: 4096 }),
    lateBatchFrom: numberOption(v, "late-batch-from", { min: 0, max: 0.999999 }),
    seq: numberOption(v, "seq", { integer: true, min: 2 }),
    lr: numberOption(v, "lr", { min: 1e-12, max: 10 }),
    minLrRatio: numberOption(v, "min-lr-ratio", { min: 0, max: 1 }),
    lrSchedule: values["lr-schedule"] === undefined
      ? undefined
      : choiceOption(values, "lr-schedule", ["cosine", "linear"] as const, "cosine"),
    optimizer: values.optimizer === undefined
      ? undefined
      : choiceOption(values, "optimizer", ["adamw", "muon"] as const, "adamw"),
    gamma: numberOption(v, "gamma", { min: 0, max: 1e6 }),
    gammaFinal: numberOption(v, "gamma-final", { min: 0, max: 1e6 }),
    labelWeight: numberOption(v, "label-weight", { min: 0, max: 1 }),
    scaleLrMultiplier: numberOption(v, "scale-lr", { min: 1e-6, max: 1e6 }),
    momentum: numberOption(v, "momentum", { min: 0, max: 0.999999 }),
    weightDecay: numberOption(v, "weight-decay", { min: 0, max: 100 }),
    checkpointEvery: numberOption(v, "checkpoint-every", { integer: true, min: 1 }) ?? 50,
    seed: numberOption(v, "seed", { integer: true, min: 0, max: 2 ** 32 - 1 }),
    calibTokens: numberOption(v, "calib-tokens", { integer: true, min: 1 }),
    svidRounds: numberOption(v, "svid-rounds", { integer: true, min: 0, max: 100 }),
    precondition: numberOption(v, "precondition", { min: 0, max: 4 }),
    steClip: v["ste-clip"] === "none" ? null : numberOption(v, "ste-clip", { min: 1e-6, max: 1e6 }),
    latentMix: numberOption(v, "latent-mix", { min: 0, max: 0.999999 }),
    latentMixUntil: numberOption(v, "latent-mix-until", { min: 1e-6, max: 1 }),
    backend: choiceOption(values, "backend", ["auto", "cpu", "webgpu"] as const, "auto"),
    checkpoint: values.checkpoint,
    resume: values.resume,
  };
  const trains = TRAINED_METHODS.includes(method);
  if (!trains) {
    const trainingOnly = [
      "steps",
      "batch",
      "late-batch",
      "late-batch-from",
      "seq",
      "lr",
      "min-lr-ratio",
      "lr-schedule",
      "optimizer",
      "gamma",
      "gamma-final",
      "label-weight",
      "checkpoint",
      "checkpoint-every",
      "resume",
      "teacher-tokens",
      "shift-windows",
      "token-noise",
      "train-float",
      "preset",
      "scale-lr",
      "momentum",
      "weight-decay",
      "ste-clip",
      "latent-mix",
      "latent-mix-until",
    ] as const;
    for (const key of trainingOnly) {
      if (values[key] !== undefined) {
        throw new UsageError(
          `quantize: --${key} applies to the training methods (${TRAINED_METHODS.join(", ")}), not ${method}`,
        );
      }
    }
  }
  if (values["checkpoint-every"] !== undefined && values.checkpoint === undefined) {
    throw new UsageError(
      "quantize: --checkpoint-every sets how often --checkpoint F is written, but no --checkpoint was given: " +
        "add --checkpoint F (or drop --checkpoint-every)",
    );
  }
  // rtn2, and ptq without preconditioning, quantize from the weights alone: a text would change nothing.
  const textRead = readsText(method, options.precondition);
  if (!textRead) {
    const why = method === "rtn2"
      ? "it rounds the weights to its 2-bit grid"
      : "with --precondition 0 nothing is calibrated";
    for (const key of ["data", "calib-text", "holdout"] as const) {
      if (values[key] !== undefined) {
        throw new UsageError(
          `quantize: --${key} is about the text a run trains or calibrates on, but --method ${method} reads ` +
            `none (${why}): drop --${key}`,
        );
      }
    }
  }
  if (values["calib-text"] !== undefined && values.data !== undefined) {
    throw new UsageError(
      "quantize: --calib-text is another name for --data, and both were given: pass every text with --data",
    );
  }
  const start = performance.now();
  const modelPath = resolveModelPath(values.model);
  const opened = await openModel(modelPath, { tokenizer: values.tokenizer, requireTokenizer: true });
  if (opened.model.quantized.size > 0) {
    throw new UsageError(
      `quantize: ${modelPath} is already quantized; start from a full-precision checkpoint`,
    );
  }
  const tokenizer = opened.tokenizer!;
  const dataPaths = values.data ?? (values["calib-text"] ? [values["calib-text"]] : [
    join(dirname(modelPath), "tinystories_dev.txt"),
  ]);
  const data = [];
  if (textRead) {
    for (const path of dataPaths) {
      data.push({ name: path, text: await readTextOrThrow(path) });
    }
  }
  const log = (line: string) => values.json ? console.error(line) : console.log(line);

  let calibBar: Progress | undefined, initBar: Progress | undefined, trainBar: Progress | undefined;
  let sampleBar: Progress | undefined, sampled = 0;
  const result = await quantize(opened.model, {
    ...options,
    tokenizer,
    data: textRead ? data : undefined,
    onCalibrate: (done, total) => {
      calibBar ??= new Progress("calibrate", total, "win");
      calibBar.tick();
      if (done === total) calibBar.finish();
    },
    onTeacherText: (done, total) => {
      sampleBar ??= new Progress("teacher text", total, "tok");
      sampleBar.tick(done - sampled);
      sampled = done;
      if (done === total) sampleBar.finish();
    },
    onInitLayer: (_name, i, n) => {
      initBar ??= new Progress("initialize", n, "layer");
      initBar.tick();
      if (i + 1 === n) initBar.finish();
    },
    onStep: (s) => {
      trainBar ??= new Progress("train", s.steps - s.step + 1, "step");
      trainBar.tick(
        1,
        `loss ${s.loss.toFixed(4)} KL ${s.kl.toFixed(4)}${
          s.ce === undefined ? "" : ` CE ${s.ce.toFixed(4)}`
        } MSE ${s.mse.toFixed(4)} ${s.tokensPerSecond.toFixed(0)} tok/s`,
      );
      if (s.step === s.steps) trainBar.finish();
    },
  }).catch((e) => {
    // An option the library refuses before any work is a usage error like those refused above (exit 2).
    throw e instanceof QuantizeOptionError ? new UsageError(e.message) : e;
  });
  await writeRabit(values.out, {
    model: result.model,
    tokenizerBytes: tokenizer.bytes,
    method,
    options: result.options,
    metadata: { source: modelPath, data: dataPaths, ...result.metadata },
    dtypes: vocabDtypes(result.model.config.sharedClassifier, vocabDtype),
  });
  const bytes = (await stat(values.out)).size;
  const layers = [...result.model.quantized.values()];
  const weights = layers.reduce((a, l) => a + l.out * l.in, 0);
  const scaleBits = layers.reduce((a, l) => a + l.k * (l.out + l.in) * 16, 0);
  const signBits = layers.reduce((a, l) => a + l.k * l.out * Math.ceil(l.in / 32) * 32, 0);
  const layerErrors = (result.metadata.layers as { name: string; relError: number }[] | undefined) ?? [];
  const summary = {
    out: values.out,
    method,
    backend: result.backend,
    // One k for every layer, else null (mixed k: options.pathsBy says which, planesPerWeight how many).
    paths: layers.every((l) => l.k === layers[0].k) ? layers[0]?.k ?? null : null,
    planesPerWeight: layers.reduce((a, l) => a + l.k * l.out * l.in, 0) / weights,
    steps: result.log.losses.length,
    losses: result.log.losses,
    finalLoss: result.log.losses.at(-1) ?? null,
    finalLr: result.log.lr.at(-1) ?? null,
    options: result.options,
    bitsPerWeight: (signBits + scaleBits) / weights,
    optimizerStateBytes: result.optimizerStateBytes,
    fileBytes: bytes,
    seconds: (performance.now() - start) / 1000,
    meanRelError: layerErrors.length
      ? layerErrors.reduce((a, l) => a + l.relError, 0) / layerErrors.length
      : null,
    layers: layerErrors,
  };
  if (values.json) return printJson(summary);
  log(
    `wrote ${values.out}: ${bytes} bytes, ${
      summary.bitsPerWeight.toFixed(3)
    } bits/weight in the binarized layers` +
      (trains
        ? `, ${summary.steps} steps on ${result.backend}, final loss ${summary.finalLoss?.toFixed(4)}`
        : "") +
      `, ${summary.seconds.toFixed(1)} s`,
  );
}

/** --teacher-tokens: "auto", or an integer in [0, 1e8]; the error names both forms. */
function teacherTokensOption(raw: string | undefined): number | "auto" | undefined {
  if (raw === undefined || raw === "auto") return raw;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < 0 || n > 1e8) {
    throw new UsageError(`--teacher-tokens must be auto or an integer in [0, 100000000], found "${raw}"`);
  }
  return n;
}
