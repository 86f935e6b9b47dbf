// Fills a training table from a full-precision model (METHOD.md §3): function-aware initialization of
// every binarized layer's scales and the starting latents, and the trained float tensors.
//
// Latents (our choices, METHOD.md §3 and §5):
//   coupled (rabit, dbllm, onebit)  W = the original weight, so the first derivation gives B_1 = sign(W)
//             as the init did.
//   standard, freeze  W_i = B_i ⊙ |W − Σ_{j≠i} path_j|: the residual the init fitted path i to, with the
//             init's signs, so the first derivation gives exactly the init's paths and each latent's
//             magnitude says how far that sign is from flipping.
// Scales: dbllm starts from the uniform 2-bit grid (quant/rtn.ts dbllmInit: g = (Δ, Δ/2), h = 1); every
// other method from residualInit with the chosen start (`init`): "svid" = greedy residual SVID plus T
// Gauss–Seidel rounds, "greedy" = T = 0, "none" = sign and mean-absolute scales (no SVID), each on the
// preconditioned matrix when a > 0.
//
// Dimension legend: out/in features of a linear layer, k paths.

import type { LlamaModel } from "../model/model.ts";
import type { ChannelStats } from "../quant/calibrate.ts";
import { unpackSigns, wordsPerRow } from "../quant/bitpack.ts";
import { residualInit } from "../quant/residual_init.ts";
import { dbllmInit } from "../quant/rtn.ts";
import { derivationOf, layerPaths, type TrainLayout, type TrainMethod } from "./trainable.ts";

/** How the paths' signs and scales start (METHOD.md §3, the ablation's switches). */
export type InitKind = "svid" | "greedy" | "none";

/** Options of {@link initializeTable}. */
export interface InitOptions {
  /** The training method the table is for (the layout's). */
  method: TrainMethod;
  /**
   * Binary paths, when every layer has the same k (a check against the layout); each layer starts with the
   * paths its table holds (trainable.ts layerPaths), so a mixed-k layout needs none.
   */
  k?: number;
  /** The start (default "svid"; ignored by dbllm, which starts from its 2-bit grid). */
  init?: InitKind;
  /** Gauss–Seidel rounds T of the "svid" start (default 4). */
  svidRounds?: number;
  /** Preconditioning exponent a_in = a_out (default 0.5; 0 disables, and stats are then not needed). */
  precondition?: number;
  /** Channel statistics per layer (calibrate()); required when precondition > 0. */
  stats?: Map<string, ChannelStats>;
  /** Called after each layer. */
  onLayer?: (name: string, index: number, total: number) => void;
}

/**
 * Writes the initial latents, scales and float tensors of `layout.table` from `teacher`.
 *
 * @example
 * ```ts
 * import { initializeTable } from "./init.ts";
 * import { trainLayout } from "./trainable.ts";
 * import { calibrate, calibrationWindows } from "../quant/calibrate.ts";
 * import { openModel } from "../io/load_model.ts";
 * const { model, tokenizer } = await openModel("../shared/data/stories260K.bin", { requireTokenizer: true });
 * const text = (await Deno.readTextFile("../shared/data/tinystories_dev.txt")).slice(0, 2000);
 * const stats = calibrate(model, calibrationWindows(tokenizer!.encode(text), 64, 64));
 * const layout = trainLayout(model.config, 2, "rabit", "norms");
 * initializeTable(model, layout, { method: "rabit", k: 2, stats, svidRounds: 1 });
 * layout.table.get("layers.0.wq.w")[0] === model.params.get("layers.0.wq")[0]; // true: rabit's latent is W
 * ```
 */
export function initializeTable(teacher: LlamaModel, layout: TrainLayout, options: InitOptions): void {
  const { table } = layout;
  const dbllm = options.method === "dbllm";
  const a = dbllm ? 0 : options.precondition ?? 0.5;
  const init = options.init ?? "svid";
  if (!["svid", "greedy", "none"].includes(init)) {
    throw new TypeError(`initializeTable: expected init svid, greedy or none, found ${JSON.stringify(init)}`);
  }
  if (a > 0 && !options.stats) {
    throw new TypeError("initializeTable: preconditioning needs calibration statistics: pass stats, or 0");
  }
  layout.linears.forEach((name, index) => {
    const [out, inF] = teacher.params.shape(name);
    const k = layerPaths(layout, name);
    if (options.k !== undefined && options.k !== k) {
      throw new RangeError(`initializeTable: ${name} has ${k} paths in the layout, options say ${options.k}`);
    }
    const w = teacher.params.get(name); // (out, in)
    const s = options.stats?.get(name);
    const { layer } = dbllm ? dbllmInit(w, { out, in: inF }) : residualInit(w, { out, in: inF }, {
      k,
      rounds: init === "svid" ? options.svidRounds ?? 4 : 0,
      fit: init === "none" ? "meanAbs" : "svid",
      sIn: a > 0 ? s?.sIn : undefined,
      sOut: a > 0 ? s?.sOut : undefined,
      aIn: a,
      aOut: a,
    });
    table.get(`${name}.g`).set(layer.g);
    table.get(`${name}.h`).set(layer.h);
    const latent = table.get(`${name}.w`);
    if (derivationOf(options.method) === "coupled") latent.set(w);
    else standardLatents(w, layer, latent);
    options.onLayer?.(name, index, layout.linears.length);
  });
  for (const name of layout.floats) table.get(name).set(teacher.params.get(name));
}

/** W_i = B_i ⊙ |W − Σ_{j≠i} g_j ⊙ B_j ⊙ h_j| into `latents` (k, out, in). */
function standardLatents(
  w: Float32Array,
  layer: { out: number; in: number; k: number; planes: Uint32Array; g: Float32Array; h: Float32Array },
  latents: Float32Array,
): void {
  const { out, in: inF, k } = layer;
  const n = out * inF;
  const wpr = wordsPerRow(inF);
  const signs = Array.from(
    { length: k },
    (_, i) => unpackSigns(layer.planes.subarray(i * out * wpr, (i + 1) * out * wpr), out, inF),
  ); // k × (out, in) ±1
  const path = (i: number, r: number, c: number) =>
    layer.g[i * out + r] * signs[i][r * inF + c] * layer.h[i * inF + c];
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < inF; c++) {
      let all = 0;
      for (let i = 0; i < k; i++) all += path(i, r, c);
      for (let i = 0; i < k; i++) {
        const target = w[r * inF + c] - (all - path(i, r, c));
        latents[i * n + r * inF + c] = signs[i][r * inF + c] * Math.abs(target);
      }
    }
  }
}
