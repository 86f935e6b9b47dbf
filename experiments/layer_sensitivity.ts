// Does a trained 2-bit student approximate the teacher layer by layer, or as a whole? Restores one kind of
// binarized layer (wq, wk, wv, wo, w1, w2, w3 in every block), or one whole block, to the teacher's
// full-precision weights inside the student (its own trained RMSNorm weights kept) and scores held-out
// text. Were the layers independent approximations, each restoration would close part of the gap
// ("gap closed" > 0). Measured on a full-budget dev model (`--scale-lr 3`, dev 9.81 = 1.54× the teacher's
// 6.35): every restoration makes it worse, by 6 % (block 3) to 55 % (every w1) of the gap: the layers have
// co-adapted to each other's binarization errors, so the gap is a property of the whole network rather than
// of one layer kind, and no single kind of layer is where extra bits would obviously go.
//
//   deno run -A experiments/layer_sensitivity.ts STUDENT.rabit TEXT [--holdout P] [--windows N] [--json]
//
// TEXT and --holdout as for eval (the held-out tail is scored). With the dev protocol of
// experiments/full_budget_dev.json: TEXT = .tmp/ablation/train.txt, P = 1/9.

import { CpuSession } from "../src/backend/cpu/session.ts";
import { perplexity, perplexityTokens } from "../src/eval/perplexity.ts";
import { studentExperimentArgs } from "./_student_args.ts";
import type { LlamaModel } from "../src/model/model.ts";
import { splitHoldout } from "../src/train/data.ts";

const { studentPath, textPath, text, holdout, maxWindows, json, teacher, student } =
  await studentExperimentArgs(
    "layer_sensitivity.ts",
  );
const { heldOut } = splitHoldout(text, holdout);
const ids = perplexityTokens((t) => teacher.tokenizer!.encode(t), heldOut);

/** The student with the binarized layers `restore` picks replaced by the teacher's dense weights. */
function restored(restore: (name: string) => boolean): LlamaModel {
  const params = teacher.model.params.zerosLike();
  params.data.set(teacher.model.params.data);
  // The student's trained float tensors (norms; embeddings when trained) replace the teacher's.
  for (const name of student.model.params.names()) {
    if (!student.model.quantized.has(name)) params.get(name).set(student.model.params.get(name));
  }
  const quantized = new Map([...student.model.quantized].filter(([name]) => !restore(name)));
  return { config: student.model.config, params, quantized };
}

const score = async (model: LlamaModel) => (await perplexity(new CpuSession(model), ids, { maxWindows })).ppl;

const names = [...student.model.quantized.keys()];
const kinds = [...new Set(names.map((n) => n.split(".").at(-1)!))];
const blocks = [...new Set(names.map((n) => n.split(".").slice(0, 2).join(".")))];
const fp = await score(teacher.model);
const all = await score(restored(() => false));
const rows: { restored: string; ppl: number; gapClosed: number }[] = [];
const row = async (label: string, pick: (name: string) => boolean) => {
  const ppl = await score(restored(pick));
  rows.push({
    restored: label,
    ppl,
    gapClosed: (Math.log(all) - Math.log(ppl)) / (Math.log(all) - Math.log(fp)),
  });
  if (!json) {
    console.log(
      `${label.padEnd(12)} ppl ${ppl.toFixed(3)}  gap closed ${(100 * rows.at(-1)!.gapClosed).toFixed(1)} %`,
    );
  }
};
if (!json) {
  console.log(`teacher ${fp.toFixed(3)}, student ${all.toFixed(3)} (${(all / fp).toFixed(3)}×)`);
}
for (const kind of kinds) await row(kind, (n) => n.endsWith(`.${kind}`));
for (const block of blocks) await row(block, (n) => n.startsWith(`${block}.`));
if (json) {
  console.log(
    JSON.stringify({ student: studentPath, text: textPath, teacherPpl: fp, studentPpl: all, rows }),
  );
}
