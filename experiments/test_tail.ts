// The full-budget protocol of docs/evidence.md as one command: train a model per seed with `cli.ts quantize`
// (its defaults plus the options given after `--`), then score it on the test tail of tinystories_dev.txt
// (the last 10 %, which quantize never trains or calibrates on and no choice saw), on WikiText-2, and take
// its inter-path diagnostics on the test tail (METHOD.md §6). Each seed's row is written into the results
// file under KEY.seedN as soon as it finishes; seeds already there are skipped, so an interrupted run
// continues where it stopped.
//
//   deno run -A experiments/test_tail.ts --key NAME [--seeds 1,2] [--jobs N] [--what TEXT]
//                                        [--results F] [--wiki-windows 200] [--work DIR]
//                                        -- [quantize options]
//
// --results: the JSON file the rows go into (default experiments/full_budget_dev.json); --work: where the
// models and the test tail's text are written (default .tmp/test_tail).
//
// e.g. the coupled forward without its initialization, three seeds trained at once:
//   deno run -A experiments/test_tail.ts --key testOfCoupledOnly --seeds 2,3,5 --jobs 3 -- \
//     --method rabit --init none --precondition 0

import { parseArgs } from "node:util";
import { writeFileAtomic } from "../src/io/container.ts";
import { splitHoldout } from "../src/train/data.ts";
import {
  cli,
  type Json,
  parseOrExit,
  passedOptionValue,
  positiveIntOrExit,
  readJson,
  ROOT,
  runPool,
  show,
  splitAtDash,
  TEXT,
  usageExit,
  WIKI,
  writeJson,
} from "./_run.ts";

const USAGE =
  "Usage: deno run -A experiments/test_tail.ts --key NAME [--seeds 1,2] [--jobs N] [--what TEXT] " +
  "[--results F] [--wiki-windows N] [--work DIR] -- [quantize options]";
/** Options the script sets itself for every seed, so they cannot come after `--`. */
const OWN_OPTIONS = ["--seed", "--out", "--json", "--holdout"];

const fail: (message: string) => never = (message) => usageExit("test_tail", USAGE, message);

/** Integers ≥ 0 from "1,2,5"; refuses anything else (an empty item included) by name. */
function parseSeeds(text: string): number[] {
  const items = text.split(",").map((s) => s.trim());
  const seeds = items.map(Number);
  if (items.some((s) => s === "") || seeds.some((s) => !Number.isInteger(s) || s < 0)) {
    fail(`--seeds expects comma-separated integers ≥ 0, got "${text}"`);
  }
  return seeds;
}

const parsePositiveInt = (name: string, text: string) => positiveIntOrExit("test_tail", USAGE, name, text);

const { own: ownArgs, passed: quantizeOptions } = splitAtDash(Deno.args);
const { values } = parseOrExit("test_tail", USAGE, () =>
  parseArgs({
    args: ownArgs,
    options: {
      key: { type: "string" },
      seeds: { type: "string", default: "1" },
      jobs: { type: "string", default: "1" },
      what: { type: "string" },
      results: { type: "string", default: `${ROOT}experiments/full_budget_dev.json` },
      "wiki-windows": { type: "string", default: "200" },
      work: { type: "string", default: `${ROOT}.tmp/test_tail` },
      help: { type: "boolean", short: "h" },
    },
  }));
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (!values.key) fail("--key NAME is required: the results file's key for these runs");
const own = quantizeOptions.find((a) => OWN_OPTIONS.includes(a.split("=")[0]));
if (own) fail(`${own.split("=")[0]} is set by the script for every seed; drop it from the quantize options`);
const key = values.key;
const seeds = parseSeeds(values.seeds!);
const jobs = parsePositiveInt("jobs", values.jobs!);
const wikiWindows = parsePositiveInt("wiki-windows", values["wiki-windows"]!);
const resultsPath = values.results!;

// The teacher: quantize's own --model when given, else its default (stories260K next to the data).
const teacherModel = passedOptionValue("test_tail", USAGE, quantizeOptions, "--model", "a model path");
const teacherArgs = teacherModel === undefined ? [] : ["--model", teacherModel];

const work = values.work!;
await Deno.mkdir(work, { recursive: true });
// The text eval --holdout 0.1 scores, for the diagnostics: written atomically under a temporary name of its
// own, so two test_tail runs started together over one --work never see it half-written or race on one name.
const testText = `${work}/test.txt`;
await writeFileAtomic(
  testText,
  new TextEncoder().encode(splitHoldout(await Deno.readTextFile(TEXT), 0.1).heldOut),
);

const tail = (
  model: string[],
) => ["eval", ...model, "--text", TEXT, "--holdout", "0.1", "--backend", "cpu", "--json"];
const wiki = (model: string[]) => [
  "eval",
  ...model,
  "--text",
  WIKI,
  "--max-windows",
  String(wikiWindows),
  "--backend",
  "cpu",
  "--json",
];

// Rows are read, changed and written one at a time: in this process through a promise chain, and across
// processes (several keys trained at once into one file) under a lock file created exclusively.
let writes = Promise.resolve();
function update(change: (entry: Json) => void): Promise<void> {
  writes = writes.then(() =>
    withLock(`${resultsPath}.lock`, async () => {
      const state = await readJson(resultsPath);
      const entry = (state[key] ?? {}) as Json;
      change(entry);
      state[key] = entry;
      await writeJson(resultsPath, state);
    })
  );
  return writes;
}

/** Runs `body` while holding `lock` (a file only one process can create); waits up to a minute for it. */
async function withLock(lock: string, body: () => Promise<void>): Promise<void> {
  for (let waited = 0;; waited += 100) {
    try {
      (await Deno.open(lock, { createNew: true, write: true })).close();
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      if (waited >= 60_000) {
        throw new Error(`${lock} has been held for a minute; if no other test_tail.ts is writing, delete it`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    await body();
  } finally {
    await Deno.remove(lock);
  }
}

const existing = ((await readJson(resultsPath))[key] ?? {}) as Json;
const pending = seeds.filter((seed) => existing[`seed${seed}`] === undefined);
for (const seed of seeds) {
  if (!pending.includes(seed)) console.error(`test_tail: ${key}.seed${seed} is there; skipped`);
}

// The full-precision model's score on the same text, for the ratio (only when something will train).
const fp32 = pending.length > 0 ? (await cli(tail(teacherArgs))).ppl as number : NaN;
if (pending.length > 0) {
  console.error(`test_tail: the full-precision model scores ${fp32.toFixed(4)} on the test tail`);
}

async function runSeed(seed: number): Promise<void> {
  const model = `${work}/${key}-s${seed}.rabit`;
  const train = ["quantize", ...quantizeOptions, "--seed", String(seed), "--out", model, "--json"];
  const started = performance.now();
  const trained = await cli(train);
  const wallSeconds = (performance.now() - started) / 1000;
  const score = tail(["--model", model]), scoreOffDomain = wiki(["--model", model]);
  const inspect = ["inspect", model, "--diagnose", "--text", testText, "--json"];
  const testPpl = (await cli(score)).ppl as number;
  const wikiPpl = (await cli(scoreOffDomain)).ppl as number;
  const diagnostics = (await cli(inspect)).diagnostics as Json;
  const losses = trained.losses as number[];
  const last = losses.slice(-100);
  const row: Json = {
    commands: [show(train), show(score), show(scoreOffDomain), show(inspect)],
    testPpl,
    ratio: testPpl / fp32,
    wikiPpl,
    backend: trained.backend,
    trainSeconds: trained.seconds,
    wallSecondsQuantize: wallSeconds,
    meanLossLast100: last.reduce((a, b) => a + b, 0) / last.length,
    bitsPerWeight: trained.bitsPerWeight,
    options: trained.options,
    diagnostics,
  };
  await update((entry) => {
    entry.what ??= values.what ?? `quantize ${quantizeOptions.join(" ")} --seed N (test_tail.ts)`;
    entry.fp32TestPpl = fp32;
    entry[`seed${seed}`] = row;
    const rows = Object.keys(entry).filter((k) => /^seed\d+$/.test(k)).map((k) => entry[k] as Json);
    const mean = rows.reduce((a, r) => a + (r.testPpl as number), 0) / rows.length;
    entry.meanTestPpl = mean;
    entry.meanRatio = mean / fp32;
    entry.seeds = rows.length;
  });
  console.error(
    `test_tail: ${key}.seed${seed}: test ${testPpl.toFixed(4)} (${(testPpl / fp32).toFixed(4)}× fp32), ` +
      `WikiText-2 ${wikiPpl.toFixed(2)}, path correlation ${diagnostics.meanPathCorrelation}, ` +
      `alignment ${diagnostics.meanResidualAlignment}`,
  );
}

await runPool(pending, jobs, runSeed);
// A summary line for scripts: each seed's scores and diagnostics means (the whole rows are in the file).
const done = ((await readJson(resultsPath))[key] ?? {}) as Json;
const summary: Json = {};
for (const [name, value] of Object.entries(done)) {
  if (!/^seed\d+$/.test(name)) continue;
  const row = value as Json, d = (row.diagnostics ?? {}) as Json;
  summary[name] = {
    testPpl: row.testPpl,
    ratio: row.ratio,
    wikiPpl: row.wikiPpl,
    meanPathCorrelation: d.meanPathCorrelation,
    meanResidualAlignment: d.meanResidualAlignment,
  };
}
console.log(JSON.stringify({
  key,
  results: resultsPath.replace(ROOT, ""),
  ...summary,
  meanTestPpl: done.meanTestPpl,
  meanRatio: done.meanRatio,
}));
