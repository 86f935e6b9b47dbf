// Where a 2-bit student loses to its teacher, position by position: on held-out text, each predicted token's
// negative log-likelihood under both models and the KL(teacher ‖ student) there, summed up by how sure the
// teacher was of the token, by the position in the window, and by the token predicted. A student short of
// capacity could lose evenly, or mostly on rare hard tokens, or on the easy completions a small model
// memorizes; which one it is says what a better training recipe would have to buy (docs/evidence.md,
// "Where the student's excess loss sits"). It also splits both perplexities by the kind of target (line
// breaks, non-ASCII pieces such as mojibake, the text itself), because a teacher trained on clean stories can
// be far off on a scraped file's layout and encoding artifacts, which then weigh on the ratio. It also scans a
// temperature on the logits of both models, because a held-out text harder than the training text makes both
// over-confident, which perplexity ratios at τ = 1 include.
//
//   deno run -A experiments/excess_profile.ts STUDENT.rabit TEXT [--holdout P] [--windows N]
//                                             [--teacher M.bin] [--top 20] [--json]
//
// TEXT and --holdout as for eval (the held-out tail is scored, eval's windows: BOS first, the model's
// context, the first N windows). The test tail: TEXT = ../shared/data/tinystories_dev.txt, P = 0.1.

import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexityTokens } from "../src/eval/perplexity.ts";
import { splitHoldout } from "../src/train/data.ts";
import { studentExperimentArgs } from "./_student_args.ts";

/** One predicted token: what the teacher and the student paid for it. */
export interface PositionLoss {
  /** The token predicted (the text's next token). */
  target: number;
  /** Its position in the window of the token that predicts it (0 = the BOS or first token). */
  position: number;
  teacherNll: number;
  studentNll: number;
  /** KL(teacher ‖ student) over the whole vocabulary at this position (nats). */
  kl: number;
  /** NLL of the target with both models' logits multiplied by each of {@link TEMPERATURE_SCALES}. */
  teacherScaledNll: number[];
  studentScaledNll: number[];
}

/** Multipliers on the logits (1/τ) that the calibration scan tries. */
export const TEMPERATURE_SCALES = [0.7, 0.8, 0.9, 1, 1.1, 1.2];

/** log Σ exp(logits · scale) over the vocabulary (V). */
function logSumExp(logits: Float32Array, scale: number): number {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x * scale);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x * scale - max);
  return max + Math.log(sum);
}

/** log-softmax of `logits` (V). */
function logSoftmax(logits: Float32Array): Float64Array {
  const z = logSumExp(logits, 1);
  return Float64Array.from(logits, (x) => x - z);
}

/**
 * The losses of one window: `teacherLogits` and `studentLogits` are (context, V), `window` its context token
 * ids; positions 0..context−2 predict tokens 1..context−1, as perplexity counts them.
 */
export function positionLosses(
  teacherLogits: Float32Array,
  studentLogits: Float32Array,
  window: number[],
  vocabSize: number,
): PositionLoss[] {
  const context = window.length, V = vocabSize;
  if (teacherLogits.length !== context * V || studentLogits.length !== context * V) {
    throw new RangeError(
      `positionLosses: expected logits of ${context} × ${V} = ${context * V} values, found ` +
        `${teacherLogits.length} (teacher) and ${studentLogits.length} (student)`,
    );
  }
  const rows: PositionLoss[] = [];
  for (let t = 0; t + 1 < context; t++) {
    const lt = teacherLogits.subarray(t * V, (t + 1) * V), ls = studentLogits.subarray(t * V, (t + 1) * V);
    const a = logSoftmax(lt), b = logSoftmax(ls);
    let kl = 0;
    for (let v = 0; v < V; v++) kl += Math.exp(a[v]) * (a[v] - b[v]);
    const target = window[t + 1];
    rows.push({
      target,
      position: t,
      teacherNll: -a[target],
      studentNll: -b[target],
      kl,
      // One target per scale: its NLL is log Σ exp(s·logits) − s·logit[target], no V-sized row needed.
      teacherScaledNll: TEMPERATURE_SCALES.map((s) => logSumExp(lt, s) - lt[target] * s),
      studentScaledNll: TEMPERATURE_SCALES.map((s) => logSumExp(ls, s) - ls[target] * s),
    });
  }
  return rows;
}

/** A group of positions: its share of all positions and of the total excess NLL, and its means. */
export interface ExcessBin {
  from: number;
  /** Infinity for the last bin (null in --json output). */
  to: number;
  positionShare: number;
  /** Its part of Σ (studentNll − teacherNll); negative where the student beats the teacher. */
  excessShare: number;
  /** Mean studentNll − teacherNll over the group (nats). */
  meanExcess: number;
  meanKl: number;
}

/** What {@link excessProfile} finds. */
export interface ExcessProfile {
  positions: number;
  teacherPpl: number;
  studentPpl: number;
  /** studentPpl / teacherPpl = exp(mean excess). */
  ratio: number;
  meanKl: number;
  /** Grouped by the teacher's NLL of the target: how sure the teacher was (0.1 nats ≈ 90 % probability). */
  byTeacherNll: ExcessBin[];
  /** Grouped by the predicting token's position in its window. */
  byPosition: ExcessBin[];
  /** The targets carrying the most excess: count, share of the excess, mean excess, the teacher's mean NLL. */
  topTargets: {
    target: number;
    count: number;
    excessShare: number;
    meanExcess: number;
    teacherNll: number;
  }[];
  /** Perplexity of each model with its logits scaled by each of {@link TEMPERATURE_SCALES}. */
  calibration: { scale: number; teacherPpl: number; studentPpl: number }[];
  /**
   * Grouped by the kind of target `classOf` gives (none without it): each kind's share of the positions, both
   * models' mean NLL on it, and the student/teacher perplexity ratio on it alone.
   */
  byTargetClass: {
    name: string;
    positionShare: number;
    teacherNll: number;
    studentNll: number;
    ratio: number;
  }[];
}

/**
 * The kind of a target token by its text: "newline" (contains a line break: the text's layout), "non-ASCII"
 * (a byte or character outside ASCII: mojibake, byte-fallback pieces, the replacement character), else "text".
 * A model trained on clean stories can be far off on the first two in a scraped file, which weighs on both
 * models' perplexity without saying anything about the stories.
 */
export function targetClass(piece: string): string {
  if (piece.includes("\n")) return "newline";
  // deno-lint-ignore no-control-regex
  return /[^\x00-\x7f]/.test(piece) ? "non-ASCII" : "text";
}

/** Bin edges of {@link excessProfile}'s groups (the last bin is open above). */
export const TEACHER_NLL_EDGES = [0, 0.1, 0.5, 1, 2, 3, 5];
export const POSITION_EDGES = [0, 8, 64, 256];

/** Sums `rows` into the groups of {@link ExcessProfile}; `top` targets by total excess. */
export function excessProfile(
  rows: PositionLoss[],
  top = 20,
  classOf?: (target: number) => string,
): ExcessProfile {
  if (rows.length === 0) {
    throw new RangeError("excessProfile: expected at least one predicted token, found none");
  }
  const n = rows.length;
  const excess = rows.map((r) => r.studentNll - r.teacherNll);
  const total = excess.reduce((a, b) => a + b, 0);
  const mean = (f: (r: PositionLoss) => number) => rows.reduce((s, r) => s + f(r), 0) / n;
  const bins = (edges: number[], key: (r: PositionLoss) => number): ExcessBin[] =>
    edges.map((from, i) => {
      const to = edges[i + 1] ?? Infinity;
      const members = rows.flatMap((r, j) => (key(r) >= from && key(r) < to ? [j] : []));
      const sum = members.reduce((s, j) => s + excess[j], 0);
      return {
        from,
        to,
        positionShare: members.length / n,
        excessShare: sum / total,
        meanExcess: members.length ? sum / members.length : 0,
        meanKl: members.length ? members.reduce((s, j) => s + rows[j].kl, 0) / members.length : 0,
      };
    });
  const byTarget = new Map<number, { count: number; excess: number; teacherNll: number }>();
  rows.forEach((r, j) => {
    const t = byTarget.get(r.target) ?? { count: 0, excess: 0, teacherNll: 0 };
    t.count++, t.excess += excess[j], t.teacherNll += r.teacherNll;
    byTarget.set(r.target, t);
  });
  const teacherNll = mean((r) => r.teacherNll), studentNll = mean((r) => r.studentNll);
  return {
    positions: n,
    teacherPpl: Math.exp(teacherNll),
    studentPpl: Math.exp(studentNll),
    ratio: Math.exp(studentNll - teacherNll),
    meanKl: mean((r) => r.kl),
    byTeacherNll: bins(TEACHER_NLL_EDGES, (r) => r.teacherNll),
    byPosition: bins(POSITION_EDGES, (r) => r.position),
    topTargets: [...byTarget.entries()]
      .sort((a, b) => b[1].excess - a[1].excess)
      .slice(0, top)
      .map(([target, t]) => ({
        target,
        count: t.count,
        excessShare: t.excess / total,
        meanExcess: t.excess / t.count,
        teacherNll: t.teacherNll / t.count,
      })),
    byTargetClass: classOf ? targetClasses(rows, classOf) : [],
    calibration: TEMPERATURE_SCALES.map((scale, i) => ({
      scale,
      teacherPpl: Math.exp(mean((r) => r.teacherScaledNll[i])),
      studentPpl: Math.exp(mean((r) => r.studentScaledNll[i])),
    })),
  };
}

/** {@link ExcessProfile.byTargetClass}: the kinds in order of first appearance. */
function targetClasses(
  rows: PositionLoss[],
  classOf: (target: number) => string,
): ExcessProfile["byTargetClass"] {
  const sums = new Map<string, { n: number; teacher: number; student: number }>();
  for (const r of rows) {
    const name = classOf(r.target);
    const c = sums.get(name) ?? { n: 0, teacher: 0, student: 0 };
    c.n++, c.teacher += r.teacherNll, c.student += r.studentNll;
    sums.set(name, c);
  }
  return [...sums.entries()].map(([name, c]) => ({
    name,
    positionShare: c.n / rows.length,
    teacherNll: c.teacher / c.n,
    studentNll: c.student / c.n,
    ratio: Math.exp((c.student - c.teacher) / c.n),
  }));
}

if (import.meta.main) {
  const { studentPath, textPath, text, holdout, maxWindows, json, teacher, student, extra, fail } =
    await studentExperimentArgs("excess_profile.ts", { top: "20" }, "[--top 20]");
  const top = Number(extra.top);
  if (!(Number.isInteger(top) && top >= 1)) fail(`--top expects an integer ≥ 1, found "${extra.top}"`);
  const tokenizer = teacher.tokenizer!;
  const ids = perplexityTokens((t) => tokenizer.encode(t), splitHoldout(text, holdout).heldOut);
  const V = teacher.model.config.vocabSize, context = teacher.model.config.seqLen;
  if (student.model.config.vocabSize !== V || student.model.config.seqLen !== context) {
    fail(
      `the student (vocabulary ${student.model.config.vocabSize}, context ${student.model.config.seqLen}) ` +
        `is not a student of this teacher (vocabulary ${V}, context ${context})`,
    );
  }
  const windows = Math.min(maxWindows, Math.floor(ids.length / context));
  if (windows === 0) fail(`the held-out text has ${ids.length} tokens, fewer than one window of ${context}`);
  const sessions = [new CpuSession(teacher.model), new CpuSession(student.model)];
  const rows: PositionLoss[] = [];
  for (let w = 0; w < windows; w++) {
    const window = ids.slice(w * context, (w + 1) * context);
    const [lt, ls] = [await sessions[0].run(window, 0), await sessions[1].run(window, 0)]; // (context, V)
    rows.push(...positionLosses(lt, ls, window, V));
  }
  const profile = excessProfile(rows, top, (t) => targetClass(tokenizer.decode([t], 0)));
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const show = (b: ExcessBin) =>
    `  [${b.from}, ${b.to === Infinity ? "∞" : b.to}) ${pct(b.positionShare).padStart(7)} of positions, ${
      pct(b.excessShare).padStart(7)
    } of the excess, mean excess ${b.meanExcess.toFixed(3)}, mean KL ${b.meanKl.toFixed(3)}`;
  console.error(
    [
      `${windows} windows, ${profile.positions} predicted tokens: teacher ${
        profile.teacherPpl.toFixed(3)
      }, ` +
      `student ${profile.studentPpl.toFixed(3)} (${profile.ratio.toFixed(4)}×), mean KL ${
        profile.meanKl.toFixed(4)
      }`,
      "by the teacher's NLL of the target (nats):",
      ...profile.byTeacherNll.map(show),
      "by position in the window:",
      ...profile.byPosition.map(show),
      `the ${top} targets with the most excess:`,
      ...profile.topTargets.map((t) =>
        `  ${JSON.stringify(tokenizer.decode([t.target], 0)).padEnd(10)} ×${String(t.count).padEnd(5)} ` +
        `${pct(t.excessShare).padStart(6)} of the excess, mean ${t.meanExcess.toFixed(3)}, teacher NLL ${
          t.teacherNll.toFixed(3)
        }`
      ),
      "by the kind of target (mean NLL teacher / student, ratio on it alone):",
      ...profile.byTargetClass.map((c) =>
        `  ${c.name.padEnd(9)} ${pct(c.positionShare).padStart(7)} of positions: ${
          c.teacherNll.toFixed(3)
        } / ` +
        `${c.studentNll.toFixed(3)}, ${c.ratio.toFixed(4)}×`
      ),
      "logits × s (calibration): " +
      profile.calibration.map((c) => `s ${c.scale}: ${c.teacherPpl.toFixed(3)} / ${c.studentPpl.toFixed(3)}`)
        .join(", "),
    ].join("\n"),
  );
  if (json) {
    console.log(JSON.stringify({
      student: studentPath,
      text: textPath,
      holdout,
      windows,
      ...profile,
      topTargets: profile.topTargets.map((t) => ({ ...t, piece: tokenizer.decode([t.target], 0) })),
    }));
  }
}
