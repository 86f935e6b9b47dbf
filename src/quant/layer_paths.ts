// Binary paths chosen per block linear (mixed k): one k for the model, overridden by kind (every block's
// wq, …), by block ("layers.L", its seven linears) or by full layer name ("layers.L.w1"), so that the
// planes a model can afford go where they buy most. The file format, the packed kernels and the training
// table already carry k per layer; this is how a run says which k each layer gets.
//
// Dimension legend: out/in features of a linear layer, k paths.

import type { LlamaConfig } from "../model/config.ts";
import { BLOCK_LINEARS, linearNames, llamaParamSpecs } from "../model/params.ts";

/**
 * Paths by layer: a kind of block linear ("wq" … "w3", every block), a block ("layers.L", every kind in
 * it) or a full name ("layers.L.wq") → k (1..4). The most specific key wins: a full name over its block,
 * a block over a kind (a block is a place in the model, a kind a role in every block); layers named by none
 * take the run's k.
 */
export type PathsBy = Record<string, number>;

/**
 * Parses "KIND=K[,KIND=K…]" (the CLI's `--paths-by`), e.g. "wq=3,w2=1,layers.0.w1=3"; the keys are
 * checked against a model later by {@link resolvePaths}. Throws a RangeError naming what was expected.
 *
 * @example
 * ```ts
 * import { parsePathsBy } from "./layer_paths.ts";
 * parsePathsBy("wq=3,w2=1"); // { wq: 3, w2: 1 }
 * ```
 */
export function parsePathsBy(spec: string): PathsBy {
  const out: PathsBy = {};
  for (const part of spec.split(",")) {
    const m = /^\s*([A-Za-z0-9_.]+)\s*=\s*([0-9]+)\s*$/.exec(part);
    if (!m) {
      throw new RangeError(
        `expected KIND=K pairs separated by commas (e.g. "wq=3,w2=1"), found ${JSON.stringify(part)}`,
      );
    }
    if (Object.hasOwn(out, m[1])) throw new RangeError(`"${m[1]}" is given twice in ${JSON.stringify(spec)}`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/**
 * Checks `pathsBy` against `config` and returns k for every block linear name (in model order). Keys must
 * be a kind (wq, wk, wv, wo, w1, w2, w3), an existing block "layers.L" or an existing "layers.L.kind";
 * every k an integer 1..4.
 *
 * @example
 * ```ts
 * import { resolvePaths } from "./layer_paths.ts";
 * const c = { dim: 8, hiddenDim: 16, nLayers: 2, nHeads: 2, nKvHeads: 2, vocabSize: 10, seqLen: 8,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * const k = resolvePaths(c, 2, { wq: 3, "layers.1.wq": 1, "layers.1": 4 });
 * [k.get("layers.0.wq"), k.get("layers.1.wq"), k.get("layers.0.w1"), k.get("layers.1.w1")]; // [3, 1, 2, 4]
 * ```
 */
export function resolvePaths(config: LlamaConfig, k: number, pathsBy: PathsBy = {}): Map<string, number> {
  checkPaths(k, "the default paths");
  const names = linearNames(config);
  const known = new Set(names);
  for (let l = 0; l < config.nLayers; l++) known.add(`layers.${l}`);
  for (const [key, value] of Object.entries(pathsBy)) {
    if (!(BLOCK_LINEARS as readonly string[]).includes(key) && !known.has(key)) {
      throw new RangeError(
        `paths by layer: expected a kind (${
          BLOCK_LINEARS.join(", ")
        }), a block layers.L or a layer name layers.L.kind with L in ` +
          `0..${config.nLayers - 1}, found ${JSON.stringify(key)}`,
      );
    }
    checkPaths(value, `paths of ${key}`);
  }
  const out = new Map<string, number>();
  for (const name of names) {
    const dot = name.lastIndexOf(".");
    const block = name.slice(0, dot), kind = name.slice(dot + 1);
    out.set(name, pathsBy[name] ?? pathsBy[block] ?? pathsBy[kind] ?? k);
  }
  return out;
}

/**
 * k of layer `name` under `paths`: one k for every layer, or a k per layer name (what {@link resolvePaths}
 * returns). Throws a RangeError naming `who` when the map has no entry for the layer.
 *
 * @example
 * ```ts
 * import { pathsOfLayer } from "./layer_paths.ts";
 * pathsOfLayer(2, "layers.0.wq", "example"); // 2
 * pathsOfLayer(new Map([["layers.0.wq", 3]]), "layers.0.wq", "example"); // 3
 * ```
 */
export function pathsOfLayer(paths: number | Map<string, number>, name: string, who: string): number {
  const k = typeof paths === "number" ? paths : paths.get(name);
  if (k === undefined) throw new RangeError(`${who}: no paths given for ${name}`);
  return k;
}

/**
 * Sign planes per weight over every block linear: Σ k·out·in / Σ out·in (2 for a uniform k = 2; what
 * mixed k keeps equal when it moves planes between layers).
 *
 * @example
 * ```ts
 * import { meanPaths, resolvePaths } from "./layer_paths.ts";
 * const c = { dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 10, seqLen: 8,
 *   sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
 * meanPaths(c, resolvePaths(c, 2)); // 2
 * ```
 */
export function meanPaths(config: LlamaConfig, paths: Map<string, number>): number {
  const shapes = new Map(llamaParamSpecs(config));
  let planes = 0, weights = 0;
  for (const [name, k] of paths) {
    const [out, inF] = shapes.get(name)!;
    planes += k * out * inF;
    weights += out * inF;
  }
  return weights ? planes / weights : 0;
}

function checkPaths(k: number, what: string): void {
  if (!Number.isInteger(k) || k < 1 || k > 4) throw new RangeError(`${what}: expected 1..4, found ${k}`);
}
