// experiments/excess_profile.ts: per-position losses from hand-built logits, the groups' shares adding up to
// the whole, and the script on a packed model agreeing with eval's perplexities; bad calls exit 2 (also for
// fit_gap.ts, which shares the command line).

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  excessProfile,
  type PositionLoss,
  positionLosses,
  targetClass,
  TEMPERATURE_SCALES,
} from "../experiments/excess_profile.ts";
import { Rng } from "../src/util/rng.ts";
import { evalCli, runCli, runScript, tempDir } from "./_cli.ts";
import { DEV_TEXT_PATH, MODEL_PATH } from "./_data.ts";

const near = (a: number, b: number, tol = 1e-9) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

Deno.test("positionLosses: NLLs and KL of softmax rows, position t predicts token t + 1", () => {
  // V = 3, context 3: two predicted tokens. The logits are float32, hence the tolerance.
  const teacher = new Float32Array([0, 0, 0, Math.log(2), 0, 0, 9, 9, 9]);
  const student = new Float32Array([0, Math.log(3), 0, 0, 0, 0, 9, 9, 9]);
  const rows = positionLosses(teacher, student, [5, 1, 0], 3);
  assert.equal(rows.length, 2);
  assert.deepEqual(rows.map((r) => [r.position, r.target]), [[0, 1], [1, 0]]);
  // Position 0: teacher uniform, student (1, 3, 1)/5; target 1.
  assert.ok(near(rows[0].teacherNll, Math.log(3), 1e-6));
  assert.ok(near(rows[0].studentNll, Math.log(5 / 3), 1e-6));
  const q = [0.2, 0.6, 0.2];
  assert.ok(near(rows[0].kl, q.reduce((s, qi) => s + (1 / 3) * Math.log((1 / 3) / qi), 0), 1e-6));
  // Position 1: teacher (2, 1, 1)/4, student uniform; target 0.
  assert.ok(near(rows[1].teacherNll, Math.log(2), 1e-6));
  assert.ok(near(rows[1].studentNll, Math.log(3), 1e-6));
  const s1 = TEMPERATURE_SCALES.indexOf(1);
  assert.ok(near(rows[1].teacherScaledNll[s1], rows[1].teacherNll, 1e-6));
  // Logits × 0.7: teacher (2^0.7, 1, 1)/(2^0.7 + 2).
  const half = TEMPERATURE_SCALES.indexOf(0.7);
  const w = Math.exp(0.7 * Math.log(2));
  assert.ok(near(rows[1].teacherScaledNll[half], -Math.log(w / (w + 2)), 1e-6));
  assert.throws(
    () => positionLosses(teacher, student.subarray(3), [5, 1, 0], 3),
    /expected logits of 3 × 3 = 9 values, found 9 \(teacher\) and 6 \(student\)/,
  );
});

Deno.test("excessProfile: shares add up to 1, means and ratio from the rows, top targets by total excess", () => {
  const rng = new Rng(11);
  const rows: PositionLoss[] = Array.from({ length: 500 }, (_, i) => {
    const teacherNll = rng.next() * 6;
    const studentNll = teacherNll + rng.normal() * 0.3 + (i % 7 === 0 ? 0.8 : 0.1);
    return {
      target: i % 7 === 0 ? 42 : i % 13,
      position: i % 511,
      teacherNll,
      studentNll,
      kl: rng.next(),
      teacherScaledNll: TEMPERATURE_SCALES.map((s) => teacherNll * s),
      studentScaledNll: TEMPERATURE_SCALES.map((s) => studentNll * s),
    };
  });
  const p = excessProfile(rows, 3);
  const mean = (f: (r: PositionLoss) => number) => rows.reduce((s, r) => s + f(r), 0) / rows.length;
  assert.equal(p.positions, 500);
  assert.ok(near(p.ratio, Math.exp(mean((r) => r.studentNll - r.teacherNll))));
  assert.ok(near(p.teacherPpl, Math.exp(mean((r) => r.teacherNll))));
  assert.ok(near(p.meanKl, mean((r) => r.kl)));
  for (const bins of [p.byTeacherNll, p.byPosition]) {
    assert.ok(near(bins.reduce((s, b) => s + b.positionShare, 0), 1));
    assert.ok(near(bins.reduce((s, b) => s + b.excessShare, 0), 1));
    assert.equal(bins.at(-1)!.to, Infinity);
    // A bin's share of the excess is its positions' share times its mean over the overall mean.
    const overall = mean((r) => r.studentNll - r.teacherNll);
    for (const b of bins) assert.ok(near(b.excessShare, b.positionShare * b.meanExcess / overall));
  }
  assert.equal(p.topTargets.length, 3);
  assert.equal(p.topTargets[0].target, 42); // every 7th row, with the largest excess
  assert.ok(p.topTargets[0].excessShare >= p.topTargets[1].excessShare);
  const of42 = rows.filter((r) => r.target === 42);
  assert.equal(p.topTargets[0].count, of42.length);
  assert.ok(
    near(p.topTargets[0].meanExcess, of42.reduce((s, r) => s + r.studentNll - r.teacherNll, 0) / of42.length),
  );
  const at1 = p.calibration[TEMPERATURE_SCALES.indexOf(1)];
  assert.ok(near(at1.studentPpl, p.studentPpl) && near(at1.teacherPpl, p.teacherPpl));
  assert.throws(() => excessProfile([]), /expected at least one predicted token, found none/);
  assert.deepEqual(p.byTargetClass, []); // no classOf, no kinds
  // Kinds: the two with target 42 (every 7th row) against the rest, each kind's own means and ratio.
  const kinds = excessProfile(rows, 3, (t) => (t === 42 ? "odd" : "text")).byTargetClass;
  assert.deepEqual(kinds.map((k) => k.name), ["odd", "text"]); // in order of first appearance
  assert.ok(near(kinds[0].positionShare, of42.length / rows.length));
  const meanOf = (rs: PositionLoss[], f: (r: PositionLoss) => number) =>
    rs.reduce((s, r) => s + f(r), 0) / rs.length;
  const rest = rows.filter((r) => r.target !== 42);
  assert.ok(near(kinds[1].teacherNll, meanOf(rest, (r) => r.teacherNll)));
  assert.ok(near(kinds[1].ratio, Math.exp(meanOf(rest, (r) => r.studentNll - r.teacherNll))));
  assert.ok(near(kinds[0].studentNll, meanOf(of42, (r) => r.studentNll)));
});

Deno.test("targetClass: line breaks, non-ASCII pieces (mojibake, byte fallback, U+FFFD), the rest text", () => {
  assert.equal(targetClass("\n"), "newline");
  assert.equal(targetClass(".\n\n"), "newline");
  assert.equal(targetClass("â"), "non-ASCII");
  assert.equal(targetClass("€"), "non-ASCII");
  assert.equal(targetClass("\ufffd"), "non-ASCII");
  assert.equal(targetClass(" the"), "text");
  assert.equal(targetClass("ing"), "text");
});

Deno.test("excess_profile.ts agrees with eval on a packed model; it and fit_gap.ts refuse bad calls", async () => {
  await using tmp = await tempDir();
  const model = `${tmp.dir}/ptq.rabit`, text = `${tmp.dir}/t.txt`;
  await Deno.writeTextFile(text, (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 12000));
  const q = await runCli(["quantize", "--method", "ptq", "--calib-tokens", "256", "--out", model]);
  assert.equal(q.code, 0, q.stderr);
  const script = fileURLToPath(new URL("../experiments/excess_profile.ts", import.meta.url));
  const r = await runScript(script, [model, text, "--holdout", "0.5", "--top", "4", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.ok(report.windows >= 2, `${report.windows} windows`);
  assert.equal(report.positions, report.windows * 511);
  const student = await evalCli(model, text, { holdout: 0.5, backend: "cpu" });
  const teacher = await evalCli(MODEL_PATH, text, { holdout: 0.5, backend: "cpu" });
  assert.equal(student.windows, report.windows);
  assert.ok(near(report.studentPpl, student.ppl, 1e-5), `${report.studentPpl} vs ${student.ppl}`);
  assert.ok(near(report.teacherPpl, teacher.ppl, 1e-5), `${report.teacherPpl} vs ${teacher.ppl}`);
  assert.equal(report.topTargets.length, 4);
  assert.equal(typeof report.topTargets[0].piece, "string");
  assert.match(r.stderr, /by the teacher's NLL of the target/);
  // The kinds of target cover every position, and the ratio of their means is the whole ratio.
  const kinds = report.byTargetClass as { positionShare: number; teacherNll: number; studentNll: number }[];
  assert.ok(near(kinds.reduce((s, k) => s + k.positionShare, 0), 1));
  const excess = kinds.reduce((s, k) => s + k.positionShare * (k.studentNll - k.teacherNll), 0);
  assert.ok(near(Math.exp(excess), report.ratio, 1e-9), `${Math.exp(excess)} vs ${report.ratio}`);
  for (
    const [file, args, reason] of [
      ["excess_profile", [model], /expected STUDENT\.rabit and TEXT, found 1 arguments/],
      ["excess_profile", [model, text, "--bogus"], /Unknown option '--bogus'/],
      ["excess_profile", [model, text, "--top", "0"], /--top expects an integer ≥ 1, found "0"/],
      [
        "excess_profile",
        [model, text, "--holdout", "1"],
        /--holdout expects a fraction in \(0, 1\), found "1"/,
      ],
      ["excess_profile", [model, text, "--holdout", "0.01"], /fewer than one window of 512/],
      ["excess_profile", [`${tmp.dir}/none.rabit`, text], /cannot open .*none\.rabit/],
      ["excess_profile", [model, `${tmp.dir}/none.txt`], /cannot read .*none\.txt/],
      ["fit_gap", [model, text, "--windows", "0"], /--windows expects an integer ≥ 1, found "0"/],
    ] as const
  ) {
    const path = fileURLToPath(new URL(`../experiments/${file}.ts`, import.meta.url));
    const bad = await runScript(path, [...args]);
    assert.equal(bad.code, 2, args.join(" "));
    assert.match(bad.stderr, reason);
    assert.match(bad.stderr, new RegExp(`Usage: deno run -A experiments/${file}\\.ts STUDENT\\.rabit TEXT`));
  }
});
