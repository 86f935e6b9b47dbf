// experiments/paths_screen.ts, the screen of where sign planes buy most: its arithmetic on the session-31
// screen of stories260K's blocks (which suggested the trade that held at the full budget), a tiny real run
// whose files carry the k each run asked for, and the refusals of bad calls before anything runs.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { lastJson, runScript, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH } from "./_data.ts";
import { screenEffects, type ScreenRun, suggestTrade } from "../experiments/paths_screen.ts";
import { readRabit } from "../src/io/rabit_format.ts";

const SCRIPT = fileURLToPath(new URL("../experiments/paths_screen.ts", import.meta.url));
const screen = (args: string[]) => runScript(SCRIPT, args, { RABIT_PROGRESS: "0" });

const run = (unit: string | null, k: number, devPpl: number, planesPerWeight: number): ScreenRun => ({
  unit,
  k,
  devPpl,
  planesPerWeight,
  bitsPerWeight: 0,
});

/** docs/evidence.md, "Sign planes per layer": 300 steps, seed 1, each block of stories260K moved by one plane. */
const BLOCKS: ScreenRun[] = [
  run(null, 2, 10.049, 2),
  ...[9.896, 9.294, 9.691, 9.75, 9.593].map((ppl, l) => run(`layers.${l}`, 3, ppl, 2.2)),
  ...[10.632, 11.25, 11.007, 10.967, 11.213].map((ppl, l) => run(`layers.${l}`, 1, ppl, 1.8)),
];

Deno.test("paths_screen: per-plane effects, and the trade the stories260K block screen suggested", () => {
  const effects = screenEffects(BLOCKS);
  assert.equal(effects.length, 10);
  const up1 = effects.find((e) => e.unit === "layers.1" && e.k === 3)!;
  assert.ok(Math.abs(up1.change - Math.log(9.294 / 10.049)) < 1e-12);
  assert.ok(Math.abs(up1.planes - 0.2) < 1e-12);
  assert.ok(Math.abs(up1.perPlane - Math.log(9.294 / 10.049) / 0.2) < 1e-9); // −0.39, a gain
  const down0 = effects.find((e) => e.unit === "layers.0" && e.k === 1)!;
  assert.ok(Math.abs(down0.planes + 0.2) < 1e-12);
  assert.ok(Math.abs(down0.perPlane - Math.log(10.632 / 10.049) / 0.2) < 1e-9); // +0.28, a cost

  const trade = suggestTrade(BLOCKS, 2)!;
  assert.equal(trade.pathsBy, "layers.1=3,layers.0=1");
  assert.equal(trade.up, "layers.1");
  assert.equal(trade.down, "layers.0");
  assert.ok(Math.abs(trade.planesPerWeight - 2) < 1e-12); // equal planes: the blocks have one shape
  assert.ok(Math.abs(trade.predictedChange - Math.log((9.294 * 10.632) / (10.049 * 10.049))) < 1e-12);
});

/** The same screen by kind (session 31): each kind's share of the block weights moves one plane. */
const KIND_WEIGHTS = { wq: 4096, wk: 2048, wv: 2048, wo: 4096, w1: 11008, w2: 11008, w3: 11008 };
const KIND_UP = { wq: 10.088, wk: 9.729, wv: 9.989, wo: 9.947, w1: 9.712, w2: 9.693, w3: 9.71 };
const KIND_DOWN = { wq: 10.478, wk: 10.424, wv: 10.807, wo: 10.674, w1: 11.673, w2: 11.977, w3: 11.628 };
const KINDS: ScreenRun[] = [run(null, 2, 10.049, 2)];
for (const [kind, weights] of Object.entries(KIND_WEIGHTS)) {
  const share = weights / 45312;
  KINDS.push(run(kind, 3, KIND_UP[kind as keyof typeof KIND_UP], 2 + share));
  KINDS.push(run(kind, 1, KIND_DOWN[kind as keyof typeof KIND_DOWN], 2 - share));
}

Deno.test("paths_screen: the stories260K kind screen suggests no one-for-one trade (the kinds' equal-planes trade reversed at the full budget)", () => {
  const effects = screenEffects(KINDS);
  const best = effects.filter((e) => e.k === 3).sort((a, b) => a.perPlane - b.perPlane)[0];
  assert.equal(best.unit, "wk"); // −0.71 per plane
  const cheapest = effects.filter((e) => e.k === 1).sort((a, b) => a.perPlane - b.perPlane)[0];
  assert.equal(cheapest.unit, "wq"); // +0.46 per plane
  assert.equal(suggestTrade(KINDS, 2), null); // −3.2 % + 4.3 % > 0
});

Deno.test("paths_screen: no trade when nothing gains, when the sum costs, or when one unit is both ends", () => {
  assert.equal(
    suggestTrade([run(null, 2, 10, 2), run("wq", 3, 10.1, 2.1), run("wk", 1, 10.5, 1.9)], 2),
    null,
  );
  // wk's gain (−1 %) does not pay for wq's loss (+5 %): the kinds' trade that reversed at the full budget
  assert.equal(suggestTrade([run(null, 2, 10, 2), run("wk", 3, 9.9, 2.1), run("wq", 1, 10.5, 1.9)], 2), null);
  assert.equal(
    suggestTrade([run(null, 2, 10, 2), run("layers.0", 3, 9, 2.2), run("layers.0", 1, 10.1, 1.8)], 2),
    null,
  );
  // The cheapest down unit is the up unit itself: the next cheapest is taken.
  const t = suggestTrade(
    [run(null, 2, 10, 2), run("wk", 3, 9, 2.1), run("wk", 1, 10.1, 1.9), run("wv", 1, 10.3, 1.9)],
    2,
  )!;
  assert.equal(t.pathsBy, "wk=3,wv=1");
  assert.throws(() => screenEffects([run("wk", 3, 9, 2.1)]), /expected a base run/);
});

Deno.test("paths_screen.ts trains the base and each unit one plane up and down, and scores them", async () => {
  await using tmp = await tempDir();
  const r = await screen([
    "--data",
    DEV_TEXT_PATH,
    "--units",
    "layers.4",
    "--steps",
    "1",
    "--max-windows",
    "1",
    "--jobs",
    "2",
    "--work",
    tmp.dir,
    "--json",
    "--",
    "--batch",
    "1",
    "--seq",
    "32",
    "--calib-tokens",
    "256",
    "--backend",
    "cpu",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = lastJson(r.stdout);
  assert.equal(out.by, "block");
  assert.equal(out.base.planesPerWeight, 2);
  assert.deepEqual(out.effects.map((e: ScreenRun) => [e.unit, e.k]), [["layers.4", 3], ["layers.4", 1]]);
  assert.ok(Math.abs(out.effects[0].planesPerWeight - 2.2) < 1e-12); // one block of five
  assert.ok(Math.abs(out.effects[1].planesPerWeight - 1.8) < 1e-12);
  for (const e of [out.base, ...out.effects]) {
    assert.ok(Number.isFinite(e.devPpl) && e.devPpl > 1, `${e.devPpl}`);
  }
  assert.equal(out.trade, null); // one unit: nothing to trade against
  assert.equal(out.commands.length, 6);
  assert.match(out.commands[2], /--paths-by layers\.4=3 /);
  const up = await readRabit(`${tmp.dir}/layers.4_k3.rabit`);
  assert.equal(up.model.quantized.get("layers.4.w2")!.k, 3);
  assert.equal(up.model.quantized.get("layers.3.w2")!.k, 2);
  const down = await readRabit(`${tmp.dir}/layers.4_k1.rabit`);
  assert.equal(down.model.quantized.get("layers.4.wq")!.k, 1);
});

Deno.test("paths_screen.ts refuses bad calls by name with exit 2, before any run", async () => {
  await using tmp = await tempDir();
  const data = ["--data", DEV_TEXT_PATH, "--work", tmp.dir];
  const cases: [string[], RegExp][] = [
    [["--work", tmp.dir], /--data F is required/],
    [["--data", `${tmp.dir}/none.txt`], /--data .*none\.txt: no such file/],
    [[...data, "--by", "head"], /--by expects block or kind, got "head"/],
    [
      [...data, "--units", "layers.5"],
      /--units: expected some of layers\.0, .*layers\.4 \(--by block\), found "layers\.5"/,
    ],
    [[...data, "--by", "kind", "--units", "wq,wq"], /--units names a unit twice/],
    [[...data, "--steps", "0"], /--steps expects an integer ≥ 1, got "0"/],
    [[...data, "--holdout", "1"], /--holdout expects a fraction in \(0, 1\)/],
    [[...data, "--seed", "1.5"], /--seed expects an integer ≥ 0, got "1.5"/],
    [[...data, "--", "--steps", "5"], /--steps is set by the script for every run/],
    [[...data, "--", "--paths-by", "wq=3"], /--paths-by is set by the script/],
    [[...data, "--", "--paths", "5"], /--paths expects 1\.\.4, got "5"/],
    [[...data, "--jobs", "2", "--jobs", "3"], /--jobs given twice/],
    [[...data, "--bogus"], /Unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    const r = await screen(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(" "));
  }
  assert.deepEqual([...Deno.readDirSync(tmp.dir)], []); // nothing trained or written
});
