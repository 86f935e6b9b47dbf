// `rabit export`, `rabit export-state`, `rabit import-state`: models and training states as safetensors
// (docs/safetensors.md), for PyTorch, NumPy and Hugging Face transformers.

import { choiceOption, numberOption, parseCommand, printJson, UsageError } from "./args.ts";
import { writeFileAtomic } from "../io/container.ts";
import { readFileOrThrow } from "../io/errors.ts";
import { hfLargestTensor, hfSingleFile, type HfWeightDtype, writeHfModel } from "../io/hf.ts";
import { type OpenedModel, openModel } from "../io/load_model.ts";
import { DENSE_LAYOUT, dequantizedModel, PACKED_LAYOUT, packedSafetensors } from "../io/rabit_safetensors.ts";
import { readCheckpoint, writeCheckpoint } from "../train/checkpoint.ts";
import { exportTrainState, importTrainState } from "../train/state_safetensors.ts";
import { stat } from "../io/fs.ts";
import { type RabitFile, vocabDtypes, writeRabit } from "../io/rabit_format.ts";

export const EXPORT_HELP =
  `rabit export — write a model as safetensors (packed planes and scales, or dense for transformers)

Usage: rabit export MODEL --out F.safetensors [--json]
       rabit export MODEL --out F.rabit --vocab-dtype f32|f16|i8 [--json]
       rabit export MODEL --out DIR|F.safetensors --dequantize [--dtype f32|f16|bf16] [--shard-bytes N] [--json]

MODEL is any model rabit opens (.rabit, llama2.c .bin, GGUF, a Hugging Face directory).

Without --dequantize: one safetensors file (layout "${PACKED_LAYOUT}", docs/safetensors.md) with, per
binarized layer M (Hugging Face names), M.planes (U8 sign bits: bit b of byte i of a row is column 8i+b,
1 = +1), M.g and M.h (the scales, F16 or F32 as the .rabit stores them), every other tensor as stored,
and in __metadata__ the config, config_json (transformers' config.json), method, options, metadata and
the tokenizer. q_proj/k_proj rows are in Hugging Face's order. "rabit eval --model F.safetensors" runs it.

With --out F.rabit: the same model as a .rabit file whose token embedding and classifier are stored as
--vocab-dtype (i8: int8 codes with one scale per row, a quarter of f32's bytes; every backend then runs
the classifier with its int8 kernel). Packed layers, scales, method, options and metadata are kept.

With --dequantize: the dense model the packed one computes (What = Σ g_i ⊙ B_i ⊙ h_i) as a Hugging Face
Llama checkpoint: into directory DIR config.json, model.safetensors (or shards with an index),
tokenizer.json and tokenizer_config.json; or one F.safetensors file with the config and tokenizer in its
__metadata__. transformers' LlamaForCausalLM.from_pretrained(DIR) loads the directory.

Options:
  --out P            output file (*.safetensors) or, with --dequantize, a directory (required)
  --dequantize       write dense weights for transformers instead of planes and scales
  --vocab-dtype D    with --out F.rabit: f32 | f16 | i8, storage of the token embedding and classifier
  --dtype T          f32 | f16 | bf16: storage of the dense 2-D weights (default f32; norms stay f32)
  --shard-bytes N    split a dense directory export into shards of at most N bytes of tensor data, with
                     an index (tensors are not split: N must be at least the largest tensor's bytes)
  --tokenizer T      tokenizer file, when the model carries none (default: embedded or next to it)
  --json             print one JSON object as the last line
  -h, --help         show this help`;

export const EXPORT_STATE_HELP =
  `rabit export-state — write a training checkpoint as safetensors (latents, scales, optimizer moments)

Usage: rabit export-state CHECKPOINT --out F.safetensors [--json]

Writes the trainable table of a quantize --checkpoint file (per layer <layer>.w, .g, .h, trained norms),
the optimizer moments optimizer.m.<name> and optimizer.v.<name>, all F32, and in __metadata__ the step,
layout, teacher, options and log (layout "rabit-train-state-v1", docs/safetensors.md). import-state turns
it back into a checkpoint that quantize --resume continues.

Options:
  --out F        output .safetensors file (required)
  --json         print one JSON object as the last line
  -h, --help     show this help`;

export const IMPORT_STATE_HELP = `rabit import-state — turn an exported training state back into a checkpoint

Usage: rabit import-state F.safetensors --out CHECKPOINT [--json]

Reads a file written by export-state (possibly edited, same names and shapes) and writes a checkpoint
that "quantize --resume CHECKPOINT" continues with the same model and options.

Options:
  --out F        checkpoint to write (required)
  --json         print one JSON object as the last line
  -h, --help     show this help`;

function onePositional(command: string, positionals: string[], what: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(`${command}: expected one ${what}, found ${positionals.length} arguments`);
  }
  return positionals[0];
}

/** An opened model as the file it would be written as: a .rabit's method, options, metadata and dtypes kept. */
function packedFileOf(opened: OpenedModel, input: string): RabitFile {
  const r = opened.rabit;
  return {
    model: opened.model,
    tokenizerBytes: opened.tokenizer?.bytes,
    method: r?.method ?? "none",
    options: r?.options ?? {},
    metadata: r ? r.metadata : { source: input },
    dtypes: r?.dtypes,
  };
}

/** `export MODEL --out F.rabit --vocab-dtype D`: the model re-stored as .rabit with its vocabulary tensors as D. */
async function exportRabit(
  input: string,
  out: string,
  values: { "vocab-dtype"?: string; dequantize?: boolean; tokenizer?: string; json?: boolean },
): Promise<void> {
  if (values.dequantize) throw new UsageError("export: --dequantize writes safetensors, not a .rabit --out");
  if (values["vocab-dtype"] === undefined) {
    throw new UsageError("export: a .rabit --out needs --vocab-dtype f32|f16|i8 (what to change)");
  }
  const vocab = choiceOption(values, "vocab-dtype", ["f32", "f16", "i8"] as const, "f32");
  const opened = await openModel(input, { tokenizer: values.tokenizer });
  const file = packedFileOf(opened, input);
  const shared = opened.model.config.sharedClassifier;
  await writeRabit(out, { ...file, dtypes: { ...file.dtypes, ...vocabDtypes(shared, vocab) } });
  const bytes = (await stat(out)).size;
  if (values.json) printJson({ out, layout: "rabit", vocabDtype: vocab, bytes });
  else console.log(`wrote ${out} (${bytes} bytes; vocabulary tensors ${vocab})`);
}

/** Runs `export` with argv (after the command name). */
export async function runExport(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand("export", argv, {
    out: { type: "string" },
    dequantize: { type: "boolean" },
    dtype: { type: "string" },
    "shard-bytes": { type: "string" },
    "vocab-dtype": { type: "string" },
    tokenizer: { type: "string" },
    json: { type: "boolean" },
  }, true);
  if (values.help) return console.log(EXPORT_HELP);
  const input = onePositional("export", positionals, "MODEL");
  const out = values.out;
  if (!out) {
    throw new UsageError("export: --out is required (a .safetensors file, or a directory with --dequantize)");
  }
  // Values first, so a bad one is named as such whatever the output.
  const dtype = choiceOption(values, "dtype", ["f32", "f16", "bf16"] as const, "f32");
  const shardBytes = numberOption(values, "shard-bytes", { integer: true, min: 1 });
  if (out.endsWith(".rabit")) {
    for (const key of ["dtype", "shard-bytes"] as const) {
      if (values[key] !== undefined) {
        throw new UsageError(
          `export: --${key} applies only with --dequantize (safetensors output); a .rabit --out takes --vocab-dtype`,
        );
      }
    }
    return await exportRabit(input, out, values);
  }
  if (values["vocab-dtype"] !== undefined) {
    throw new UsageError("export: --vocab-dtype applies only to a .rabit --out");
  }
  const single = out.endsWith(".safetensors");
  if (!values.dequantize) {
    if (!single) throw new UsageError("export: without --dequantize, --out must be a .safetensors file");
    for (const key of ["dtype", "shard-bytes"] as const) {
      if (values[key] !== undefined) throw new UsageError(`export: --${key} applies only with --dequantize`);
    }
  }
  if (single && shardBytes !== undefined) {
    throw new UsageError("export: --shard-bytes needs a directory --out (shards and an index)");
  }
  const opened = await openModel(input, { tokenizer: values.tokenizer });
  const hfDtype = dtype.toUpperCase() as HfWeightDtype;
  if (shardBytes !== undefined) {
    // A tensor is never split: a smaller limit could not be kept. Known from the config, before any work.
    const largest = hfLargestTensor(opened.model.config, hfDtype);
    if (shardBytes < largest.bytes) {
      throw new UsageError(
        `export: --shard-bytes ${shardBytes} is smaller than the largest tensor (${largest.bytes} bytes, ` +
          `${largest.name}); use at least that`,
      );
    }
  }
  const tokenizer = opened.tokenizer;
  let files: string[];
  let layout: string;
  if (!values.dequantize) {
    const bytes = packedSafetensors(packedFileOf(opened, input));
    await writeFileAtomic(out, bytes);
    files = [out];
    layout = PACKED_LAYOUT;
  } else {
    const dense = dequantizedModel(opened.model);
    layout = DENSE_LAYOUT;
    const meta = { rabit_layout: DENSE_LAYOUT, method: opened.rabit?.method ?? "none" };
    if (single) {
      await writeFileAtomic(out, hfSingleFile(dense, { dtype: hfDtype, tokenizer, metadata: meta }));
      files = [out];
    } else {
      files = await writeHfModel(out, dense, { dtype: hfDtype, shardBytes, tokenizer, metadata: meta });
    }
  }
  let bytes = 0;
  for (const f of files) bytes += (await stat(f)).size;
  const summary = {
    input,
    format: opened.format,
    method: opened.rabit?.method ?? "none",
    layout,
    files,
    bytes,
    binarizedLayers: opened.model.quantized.size,
    tokenizer: tokenizer ? tokenizer.kind : null,
  };
  if (values.json) return printJson(summary);
  console.log(
    `wrote ${files.join(", ")}: ${bytes} bytes (${layout}, ${summary.binarizedLayers} binarized layers)`,
  );
}

/** Runs `export-state` with argv (after the command name). */
export async function runExportState(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand("export-state", argv, {
    out: { type: "string" },
    json: { type: "boolean" },
  }, true);
  if (values.help) return console.log(EXPORT_STATE_HELP);
  const input = onePositional("export-state", positionals, "CHECKPOINT");
  if (!values.out) throw new UsageError("export-state: --out F.safetensors is required");
  const ck = await readCheckpoint(input);
  const bytes = exportTrainState(ck);
  await writeFileAtomic(values.out, bytes);
  const summary = {
    input,
    out: values.out,
    step: ck.step,
    tensors: ck.layout.length,
    bytes: bytes.byteLength,
  };
  if (values.json) return printJson(summary);
  console.log(
    `wrote ${values.out}: step ${ck.step}, ${ck.layout.length} table entries, ${bytes.byteLength} bytes`,
  );
}

/** Runs `import-state` with argv (after the command name). */
export async function runImportState(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand("import-state", argv, {
    out: { type: "string" },
    json: { type: "boolean" },
  }, true);
  if (values.help) return console.log(IMPORT_STATE_HELP);
  const input = onePositional("import-state", positionals, "F.safetensors");
  if (!values.out) throw new UsageError("import-state: --out CHECKPOINT is required");
  const ck = importTrainState(await readFileOrThrow(input, "Training state"), input);
  await writeCheckpoint(values.out, ck);
  const summary = { input, out: values.out, step: ck.step, tensors: ck.layout.length };
  if (values.json) return printJson(summary);
  console.log(`wrote ${values.out}: a checkpoint at step ${ck.step} (${ck.layout.length} table entries)`);
}
