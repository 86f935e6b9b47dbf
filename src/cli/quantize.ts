// `rabit quantize`: turn a full-precision model into a packed `.rabit` file with a post-training method.

import { choiceOption, numberOption, parseCommand, printJson, UsageError } from "./args.ts";
import { readTextOrThrow } from "./text.ts";
import { openModel } from "../io/load_model.ts";
import { resolveModelPath } from "../io/model_paths.ts";
import { writeRabit } from "../io/rabit_format.ts";
import { BOS } from "../io/tokenizer.ts";
import { calibrate, calibrationWindows } from "../quant/calibrate.ts";
import { quantizeModel } from "../quant/quantize_model.ts";
import { Progress } from "../util/progress.ts";
import { dirname, join } from "node:path";

export const QUANTIZE_HELP =
  `rabit quantize — quantize a model's block linears to residual-binary paths, write a .rabit file

Usage: rabit quantize [--model M] --out F.rabit [--method ptq|rtn2] [--paths K] [--calib-text F]
                      [--calib-tokens N] [--svid-rounds T] [--precondition A] [--json]

Methods:
  ptq    function-aware initialization alone (METHOD.md §3): preconditioned greedy residual SVID
         plus T Gauss–Seidel rounds; k paths
  rtn2   plain 2-bit symmetric round-to-nearest per row (the naive reference point), k = 2

Options:
  --model M          full-precision llama2.c checkpoint (default: $RABIT_MODEL, then ../shared/data/stories260K.bin)
  --tokenizer T      tokenizer (default: found next to the model); embedded in the output file
  --out F            output .rabit file (required); written atomically
  --method NAME      ptq | rtn2 (default ptq)
  --paths K          binary paths per layer, 1..4 (default 2; ptq only)
  --calib-text F     calibration text (default: tinystories_dev.txt next to the model); windows are
                     taken from the end of the text
  --calib-tokens N   calibration tokens (default 4096)
  --svid-rounds T    Gauss–Seidel refit rounds (default 4; 0 = greedy residual SVID)
  --precondition A   I/O channel-importance exponent a_in = a_out (default 0.5; 0 disables)
  --json             print one JSON object as the last line (per-layer errors, bits/weight, file size)
  -h, --help         show this help`;

/** Runs `quantize` with argv (after the command name). */
export async function runQuantize(argv: string[]): Promise<void> {
  const { values } = parseCommand("quantize", argv, {
    model: { type: "string" },
    tokenizer: { type: "string" },
    out: { type: "string" },
    method: { type: "string" },
    paths: { type: "string" },
    "calib-text": { type: "string" },
    "calib-tokens": { type: "string" },
    "svid-rounds": { type: "string" },
    precondition: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) return console.log(QUANTIZE_HELP);
  if (!values.out) {
    throw new UsageError("quantize: --out F.rabit is required (where to write the packed model)");
  }
  const method = choiceOption(values, "method", ["ptq", "rtn2"] as const, "ptq");
  const paths = numberOption(values, "paths", { integer: true, min: 1, max: 4 }) ?? 2;
  if (method === "rtn2" && paths !== 2) {
    throw new UsageError("quantize: rtn2 is a 2-bit quantizer: --paths must be 2");
  }
  const calibTokens = numberOption(values, "calib-tokens", { integer: true, min: 1 }) ?? 4096;
  const svidRounds = numberOption(values, "svid-rounds", { integer: true, min: 0, max: 100 }) ?? 4;
  const precondition = numberOption(values, "precondition", { min: 0, max: 4 }) ?? 0.5;
  const start = performance.now();
  const modelPath = resolveModelPath(values.model);
  const opened = await openModel(modelPath, { tokenizer: values.tokenizer, requireTokenizer: true });
  if (opened.model.quantized.size > 0) {
    throw new UsageError(
      `quantize: ${modelPath} is already quantized; start from a full-precision checkpoint`,
    );
  }
  const tokenizer = opened.tokenizer!;
  const log = (line: string) => values.json ? console.error(line) : console.log(line);

  let stats;
  let calibration: Record<string, unknown> = { used: false };
  if (method === "ptq" && precondition > 0) {
    const calibPath = values["calib-text"] ?? join(dirname(modelPath), "tinystories_dev.txt");
    const text = await readTextOrThrow(calibPath);
    const ids = [BOS, ...tokenizer.encode(text)];
    const window = Math.min(512, opened.model.config.seqLen);
    const windows = calibrationWindows(ids, calibTokens, window);
    const bar = new Progress("calibrate", windows.length, "win");
    stats = calibrate(opened.model, windows, { onWindow: () => bar.tick() });
    bar.finish();
    calibration = {
      used: true,
      text: calibPath,
      tokens: windows.length * window,
      windows: windows.length,
      window,
    };
    log(`calibrated on ${windows.length} windows of ${window} tokens from the end of ${calibPath}`);
  }

  const bar = new Progress("quantize", 7 * opened.model.config.nLayers, "layer");
  const result = quantizeModel(opened.model, {
    method,
    paths,
    svidRounds,
    precondition,
    stats,
    onLayer: (name, _i, _n, s) => bar.tick(1, `${name} err ${s.relError.toFixed(4)}`),
  });
  bar.finish();
  const options = method === "ptq" ? { paths, svidRounds, precondition, calibTokens } : { paths: 2 };
  await writeRabit(values.out, {
    model: result.model,
    tokenizerBytes: tokenizer.bytes,
    method,
    options,
    metadata: {
      source: modelPath,
      calibration,
      layers: result.layers.map(({ name, relError, preconditionedErrors }) => ({
        name,
        relError,
        preconditionedErrors,
      })),
      seconds: (performance.now() - start) / 1000,
    },
  });
  const bytes = (await Deno.stat(values.out)).size;
  const weights = result.layers.reduce((a, l) => a + l.out * l.in, 0);
  const scaleBits = result.layers.reduce((a, l) => a + l.k * (l.out + l.in) * 16, 0);
  const signBits = result.layers.reduce((a, l) => a + l.k * l.out * Math.ceil(l.in / 32) * 32, 0);
  const summary = {
    out: values.out,
    method,
    paths: method === "rtn2" ? 2 : paths,
    svidRounds,
    precondition,
    bitsPerWeight: (signBits + scaleBits) / weights,
    fileBytes: bytes,
    seconds: (performance.now() - start) / 1000,
    meanRelError: result.layers.reduce((a, l) => a + l.relError, 0) / result.layers.length,
    layers: result.layers.map(({ name, relError }) => ({ name, relError })),
  };
  if (values.json) return printJson(summary);
  console.log(
    `wrote ${values.out}: ${bytes} bytes, ${
      summary.bitsPerWeight.toFixed(3)
    } bits/weight in the binarized layers, ` +
      `mean relative error ${summary.meanRelError.toFixed(4)}, ${summary.seconds.toFixed(1)} s`,
  );
}
