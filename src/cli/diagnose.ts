// The inter-path diagnostics (METHOD.md §6) as `inspect --diagnose` and `eval --teacher` run them:
// loading a teacher that fits the packed model, and printing the per-layer table and the means.

import { UsageError } from "./args.ts";
import type { OpenedModel } from "../io/load_model.ts";
import { openModel } from "../io/load_model.ts";
import { resolveModelPath } from "../io/model_paths.ts";
import type { LlamaModel } from "../model/model.ts";
import { configDifferences, type PathDiagnostics } from "../eval/diagnostics.ts";

/** Refuses a model file without binarized layers: it has no paths to diagnose. */
export function requirePacked(command: string, opened: OpenedModel): void {
  if (opened.model.quantized.size === 0) {
    throw new UsageError(
      `${command}: expected a .rabit file with binarized layers, found ${opened.path} ` +
        `(format ${opened.format}, no binarized layers); quantize it first with "rabit quantize"`,
    );
  }
}

/**
 * Opens the teacher for `student`: --teacher, else the default model ($RABIT_MODEL, then stories260K).
 * It must be full precision and have the student's config, or the comparison means nothing.
 */
export async function openTeacher(explicit: string | undefined, student: OpenedModel): Promise<LlamaModel> {
  const path = resolveModelPath(explicit);
  const { model } = await openModel(path);
  if (model.quantized.size > 0) {
    throw new UsageError(
      `--teacher ${path}: expected a full-precision model (a llama2.c .bin), found a quantized .rabit file`,
    );
  }
  const diff = configDifferences(student.model.config, model.config);
  if (diff.length) {
    throw new UsageError(
      `--teacher ${path}: expected the config of ${student.path}, found a different one ` +
        `(model vs teacher: ${diff.join(", ")}); pass the float model it was quantized from`,
    );
  }
  return model;
}

const fmt = (v: number | null, width = 8, digits = 4) =>
  (v === null ? "-" : v.toFixed(digits)).padStart(width);

/** The means, one line each; with `perLayer`, the per-layer table first. */
export function printDiagnostics(d: PathDiagnostics, perLayer: boolean): void {
  console.log(
    `path diagnostics (METHOD.md §6) on ${d.tokens} tokens (${d.windows} windows of ${d.context}), ` +
      `teacher layers fed the packed model's own inputs, ${d.seconds.toFixed(1)} s`,
  );
  if (perLayer) {
    const kMax = Math.max(...d.layers.map((l) => l.k));
    const later = kMax >= 3 ? "  align(y_i), i = 2..k" : "";
    console.log(
      `  ${"layer".padEnd(16)} ${"corr(y1,y2)".padStart(12)} ${"corr(yt-y1,y2)".padStart(15)} ` +
        `${"B2=B1".padStart(7)} ${"|p2/p1|".padStart(7)} ${"corr(A1,A2)".padStart(11)}${later}`,
    );
    for (const l of d.layers) {
      const rest = kMax >= 3 ? "  " + l.pathAlignments.map((v) => fmt(v)).join(" ") : "";
      console.log(
        `  ${l.name.padEnd(16)} ${fmt(l.pathCorrelation, 12)} ${fmt(l.residualAlignment, 15)} ` +
          `${fmt(l.outerShare, 7, 3)} ${fmt(l.scaleRatio, 7, 3)} ${fmt(l.weightCorrelation, 11)}${rest}`,
      );
    }
  }
  console.log(`mean path correlation   ${fmt(d.meanPathCorrelation, 0)}   corr(y_1, y_2)`);
  console.log(`mean residual alignment ${fmt(d.meanResidualAlignment, 0)}   corr(y_t − y_1, y_2)`);
  const frac = d.coAdaptedFraction === null ? "-" : d.coAdaptedFraction.toFixed(3);
  console.log(`co-adapted layers       ${frac}   fraction with alignment > 0.4 and correlation < 0`);
  console.log(
    `mean share B_2 = B_1    ${fmt(d.meanOuterShare, 0)}   weights where path 2 adds to path 1 ` +
      `(and subtracts on the rest)`,
  );
  console.log(`mean path-2/path-1 step ${fmt(d.meanScaleRatio, 0)}   Σ|g_2 h_2| / Σ|g_1 h_1| per layer`);
  console.log(
    `mean weight correlation ${fmt(d.meanWeightCorrelation, 0)}   corr(A_1, A_2) of the paths' matrices ` +
      `A_i = diag(g_i) B_i diag(h_i), weight by weight`,
  );
}
