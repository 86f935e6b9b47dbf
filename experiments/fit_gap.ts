// Is a 2-bit model's gap to full precision a matter of data (it fits the windows it trained on, not new text)
// or of capacity (it cannot fit even those)? Scores the teacher and a student window by window on text the
// student trained on and on text it did not, and compares their ratios at matched teacher difficulty
// (windows sorted by the teacher's perplexity, in quartiles).
//
//   deno run -A experiments/fit_gap.ts STUDENT.rabit TEXT [--holdout P] [--windows N] [--json]
//
// TEXT and --holdout as the student was trained (quantize --data TEXT --holdout P): the first N windows of
// the trained part and the first N of the held-out part are scored (BOS first, 512 tokens, as eval does).
// With the dev protocol of experiments/full_budget_dev.json: TEXT = .tmp/ablation/train.txt, P = 1/9.

import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { studentExperimentArgs } from "./_student_args.ts";
import { splitHoldout } from "../src/train/data.ts";

const { studentPath, textPath, text, holdout, maxWindows, json, teacher, student } =
  await studentExperimentArgs(
    "fit_gap.ts",
  );
const sessions = [new CpuSession(teacher.model), new CpuSession(student.model)];

/** Mean NLL of each of the first windows (eval's windows) under the teacher and the student: (windows, 2). */
async function windowNlls(ids: number[]): Promise<[number, number][]> {
  const per = await Promise.all(sessions.map(async (session) => {
    const nlls: number[] = [];
    await perplexity(session, ids, { maxWindows, onWindow: (_done, _total, nll) => nlls.push(nll) });
    return nlls;
  }));
  return per[0].map((t, w) => [t, per[1][w]]);
}

const { train, heldOut } = splitHoldout(text, holdout);
const report: Record<string, unknown> = { student: studentPath, text: textPath, holdout };
for (const [name, part] of [["trained", train], ["heldOut", heldOut]] as const) {
  const rows = (await windowNlls(perplexityTokens((t) => teacher.tokenizer!.encode(t), part)))
    .sort((a, b) => a[0] - b[0]);
  const mean = (r: [number, number][], i: number) => r.reduce((s, x) => s + x[i], 0) / r.length;
  const per = Math.floor(rows.length / 4);
  const quartiles = [0, 1, 2, 3].map((q) => {
    const r = rows.slice(q * per, (q + 1) * per);
    return { teacherPpl: Math.exp(mean(r, 0)), ratio: Math.exp(mean(r, 1) - mean(r, 0)) };
  });
  const whole = {
    windows: rows.length,
    teacherPpl: Math.exp(mean(rows, 0)),
    ratio: Math.exp(mean(rows, 1) - mean(rows, 0)),
  };
  report[name] = { ...whole, quartiles };
  console.error(
    `${name.padEnd(8)} ${whole.windows} windows: teacher ppl ${
      whole.teacherPpl.toFixed(3)
    }, student/teacher ` +
      `${whole.ratio.toFixed(3)} | by teacher difficulty: ` +
      quartiles.map((q) => `${q.teacherPpl.toFixed(2)} → ${q.ratio.toFixed(3)}`).join(", "),
  );
}
if (json) console.log(JSON.stringify(report));
