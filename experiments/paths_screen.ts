// Where sign planes buy most in a model: the short screen behind `quantize --paths-by` (docs/evidence.md,
// "Sign planes per layer (mixed k)"). Each unit (a block layers.L, or a kind wq … w3 in every block) is
// trained once with one plane more and once with one plane less than the run's k, for a few hundred steps on
// the first part of the text, and scored on the held-back part against the same run with k everywhere. Per
// run, "per plane" is the change in ln(perplexity) over the sign planes per weight moved, so units of
// different sizes compare; the suggested trade pairs the unit whose added plane buys most with the unit whose
// removed plane costs least, at about the run's planes per weight (exactly, for blocks of one shape).
//
// On stories260K by block (300 steps, seed 1) the screen suggested layers.1=3,layers.0=1, which held at the
// full budget (test tail 1.215× against 1.237×); by kind its best trade reversed there. A screen is a
// prediction from short runs: check the trade at your full budget on the held-back text before adopting it.
//
//   deno run -A experiments/paths_screen.ts --data F [--holdout 0.1111111111111111] [--by block|kind]
//       [--units U,…] [--steps 300] [--seed 1] [--jobs 1] [--max-windows N] [--work DIR] [--json]
//       [-- quantize options]
//
// The quantize options after "--" apply to every run (e.g. --model, --paths, --method, --batch); the script
// sets --data, --holdout, --steps, --seed, --paths-by, --out and --json itself. Scores: `eval --model R.rabit
// --text F --holdout P --backend cpu`, the part of F that quantize held back.

import { parseArgs } from "node:util";
import { openModel } from "../src/io/load_model.ts";
import { resolveModelPath } from "../src/io/model_paths.ts";
import { BLOCK_LINEARS } from "../src/model/params.ts";
import {
  cli,
  type Json,
  parseOrExit,
  passedOptionValue,
  positiveIntOrExit,
  runPool,
  show,
  splitAtDash,
  usageExit,
} from "./_run.ts";

const SCRIPT = "paths_screen";
const USAGE = "Usage: deno run -A experiments/paths_screen.ts --data F [--holdout P] [--by block|kind] " +
  "[--units U,...] [--steps N] [--seed N] [--jobs N] [--max-windows N] [--work DIR] [--json] " +
  "[-- quantize options]";
/** quantize options the script sets for every run. */
const OWN_OPTIONS = [
  "--data",
  "--holdout",
  "--steps",
  "--seed",
  "--paths-by",
  "--out",
  "--json",
  "--calib-text",
];

/** One screened run: the unit moved (null for the base run), its k there, and what it scored. */
export interface ScreenRun {
  unit: string | null;
  k: number;
  devPpl: number;
  planesPerWeight: number;
  bitsPerWeight: number;
}

/**
 * A run's effect against the base: Δ ln(ppl), Δ planes per weight (negative for a plane taken away), and
 * Δ ln(ppl) per plane moved (|Δ planes|): below zero a gain, above a cost, whichever way the plane went.
 */
export interface ScreenEffect extends ScreenRun {
  change: number;
  planes: number;
  perPlane: number;
}

/** The suggested trade: `--paths-by` for it, its planes per weight, and the sum of its two runs' changes. */
export interface ScreenTrade {
  pathsBy: string;
  up: string;
  down: string;
  planesPerWeight: number;
  predictedChange: number;
}

/** Each moved run's effect against the base run (the one with `unit` null). */
export function screenEffects(runs: readonly ScreenRun[]): ScreenEffect[] {
  const base = runs.find((r) => r.unit === null);
  if (!base) throw new RangeError("screenEffects: expected a base run (unit null) among the runs");
  return runs.filter((r) => r.unit !== null).map((r) => {
    const change = Math.log(r.devPpl / base.devPpl), planes = r.planesPerWeight - base.planesPerWeight;
    return { ...r, change, planes, perPlane: change / Math.abs(planes) };
  });
}

/**
 * The trade of one plane up on the unit where it buys most per plane (its change below zero) against one plane
 * down on a different unit where it costs least per plane, when the two changes sum below zero; else null.
 * Its planes per weight are the base's plus the two runs' moves (the base's exactly when the units are the
 * same size), and its predicted change is the sum of theirs, as the screen's rows have added up (an
 * assumption the full-budget run has to check).
 *
 * @example
 * ```ts
 * import { suggestTrade } from "./paths_screen.ts";
 * const run = (unit: string | null, k: number, devPpl: number, planesPerWeight: number) =>
 *   ({ unit, k, devPpl, planesPerWeight, bitsPerWeight: 0 });
 * suggestTrade([run(null, 2, 10, 2), run("layers.0", 3, 9.9, 2.5), run("layers.0", 1, 10.3, 1.5),
 *   run("layers.1", 3, 9.5, 2.5), run("layers.1", 1, 11, 1.5)], 2)?.pathsBy; // "layers.1=3,layers.0=1"
 * ```
 */
export function suggestTrade(runs: readonly ScreenRun[], k: number): ScreenTrade | null {
  const base = runs.find((r) => r.unit === null)!;
  const effects = screenEffects(runs);
  const ups = effects.filter((e) => e.k === k + 1 && e.change < 0).sort((a, b) => a.perPlane - b.perPlane);
  const downs = effects.filter((e) => e.k === k - 1).sort((a, b) => a.perPlane - b.perPlane);
  const up = ups[0];
  const down = up && downs.find((d) => d.unit !== up.unit); // the cheapest other unit
  if (!down || up.change + down.change >= 0) return null;
  return {
    pathsBy: `${up.unit}=${up.k},${down.unit}=${down.k}`,
    up: up.unit!,
    down: down.unit!,
    planesPerWeight: base.planesPerWeight + up.planes + down.planes,
    predictedChange: up.change + down.change,
  };
}

function fail(message: string): never {
  usageExit(SCRIPT, USAGE, message);
}

const positiveInt = (name: string, text: string) => positiveIntOrExit(SCRIPT, USAGE, name, text);

/** A quantize option's value from the options after "--", if given. */
const optionValue = (options: readonly string[], name: string) =>
  passedOptionValue(SCRIPT, USAGE, options, name);

async function main(): Promise<void> {
  const { own: ownArgs, passed: quantizeOptions } = splitAtDash(Deno.args);
  const { values } = parseOrExit(SCRIPT, USAGE, () =>
    parseArgs({
      args: ownArgs,
      options: {
        data: { type: "string" },
        holdout: { type: "string", default: "0.1111111111111111" },
        by: { type: "string", default: "block" },
        units: { type: "string" },
        steps: { type: "string", default: "300" },
        seed: { type: "string", default: "1" },
        jobs: { type: "string", default: "1" },
        "max-windows": { type: "string" },
        work: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
      },
    }), ownArgs);
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.data) {
    fail("--data F is required: the text to train on (its last --holdout part scores the runs)");
  }
  const holdout = Number(values.holdout);
  if (!(holdout > 0 && holdout < 1)) fail(`--holdout expects a fraction in (0, 1), got "${values.holdout}"`);
  if (values.by !== "block" && values.by !== "kind") fail(`--by expects block or kind, got "${values.by}"`);
  const steps = positiveInt("steps", values.steps!);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) fail(`--seed expects an integer ≥ 0, got "${values.seed}"`);
  const jobs = positiveInt("jobs", values.jobs!);
  const maxWindows = values["max-windows"] === undefined
    ? undefined
    : positiveInt("max-windows", values["max-windows"]);
  const own = quantizeOptions.find((a) => OWN_OPTIONS.includes(a.split("=")[0]));
  if (own) fail(`${own.split("=")[0]} is set by the script for every run; drop it from the quantize options`);
  const kText = optionValue(quantizeOptions, "--paths") ?? "2";
  const k = Number(kText);
  if (!Number.isInteger(k) || k < 1 || k > 4) fail(`--paths expects 1..4, got "${kText}"`);
  try {
    await Deno.stat(values.data);
  } catch {
    fail(`--data ${values.data}: no such file`);
  }

  // The units: the model's blocks or the seven kinds (the teacher is opened only for its number of blocks).
  const modelPath = resolveModelPath(optionValue(quantizeOptions, "--model"));
  const all = values.by === "kind" ? [...BLOCK_LINEARS] : Array.from(
    { length: (await openModel(modelPath)).model.config.nLayers },
    (_, l) => `layers.${l}`,
  );
  const units = values.units === undefined ? all : values.units.split(",").map((u) => u.trim());
  for (const u of units) {
    if (!all.includes(u)) {
      fail(`--units: expected some of ${all.join(", ")} (--by ${values.by}), found "${u}"`);
    }
  }
  if (new Set(units).size !== units.length) fail(`--units names a unit twice: "${values.units}"`);

  const work = values.work ?? await Deno.makeTempDir({ prefix: "paths_screen_" });
  await Deno.mkdir(work, { recursive: true });
  const plan: { unit: string | null; k: number }[] = [{ unit: null, k }];
  for (const unit of units) {
    if (k < 4) plan.push({ unit, k: k + 1 });
    if (k > 1) plan.push({ unit, k: k - 1 });
  }
  const jobsPlan = plan.map(({ unit, k: kHere }) => {
    const name = unit === null ? "base" : `${unit}_k${kHere}`;
    const out = `${work}/${name}.rabit`;
    const train = [
      "quantize",
      "--data",
      values.data!,
      "--holdout",
      String(holdout),
      "--steps",
      String(steps),
      "--seed",
      String(seed),
      ...(unit === null ? [] : ["--paths-by", `${unit}=${kHere}`]),
      ...quantizeOptions,
      "--out",
      out,
      "--json",
    ];
    const score = [
      "eval",
      "--model",
      out,
      "--text",
      values.data!,
      "--holdout",
      String(holdout),
      ...(maxWindows === undefined ? [] : ["--max-windows", String(maxWindows)]),
      "--backend",
      "cpu",
      "--json",
    ];
    return { unit, k: kHere, name, train, score };
  });
  const commands = jobsPlan.flatMap((j) => [show(j.train), show(j.score)]);
  const runs = await runPool(
    jobsPlan,
    jobs,
    async ({ unit, k: kHere, name, train, score }): Promise<ScreenRun> => {
      const q: Json = await cli(train);
      const e: Json = await cli(score);
      const run = {
        unit,
        k: kHere,
        devPpl: e.ppl as number,
        planesPerWeight: q.planesPerWeight as number,
        bitsPerWeight: q.bitsPerWeight as number,
      };
      console.error(
        `${SCRIPT}: ${name}: dev ppl ${run.devPpl.toFixed(3)}, ${run.bitsPerWeight.toFixed(3)} bits/weight`,
      );
      return run;
    },
  );
  const effects = screenEffects(runs);
  const trade = suggestTrade(runs, k);
  const base = runs[0];
  if (values.json) {
    console.log(JSON.stringify({ by: values.by, k, steps, seed, base, effects, trade, work, commands }));
    return;
  }
  console.log(
    `base (k = ${k} everywhere): dev ppl ${base.devPpl.toFixed(3)}, ${base.bitsPerWeight.toFixed(3)} bits`,
  );
  console.log("unit         k   dev ppl    change   per plane   bits/weight");
  for (const e of effects) {
    console.log(
      `${e.unit!.padEnd(12)} ${e.k}  ${e.devPpl.toFixed(3).padStart(8)}  ${
        (100 * (Math.exp(e.change) - 1)).toFixed(1).padStart(6)
      } %  ${e.perPlane.toFixed(3).padStart(9)}   ${e.bitsPerWeight.toFixed(3)}`,
    );
  }
  console.log(
    trade
      ? `suggested: --paths-by ${trade.pathsBy} (${trade.planesPerWeight.toFixed(3)} planes per weight, ` +
        `predicted ${
          (100 * (Math.exp(trade.predictedChange) - 1)).toFixed(1)
        } %); check it at the full budget`
      : "no trade of one plane up against one plane down is predicted to help",
  );
  console.log(`models: ${work}`);
}

if (import.meta.main) await main();
