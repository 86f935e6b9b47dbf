// Averaging the latents over the last steps (Polyak / SWA-style): packs the mean of several training
// checkpoints of one run into a .rabit, as quantize packs its last step (trainable.ts's packTable), and
// reports how many sign bits differ from the last checkpoint's model. A run writes one checkpoint file and
// replaces it every --checkpoint-every steps, so copy it aside as it changes.
// Measured on the dev split (experiments/full_budget_dev.json, session21Dev.latentAveraging): every average
// is worse than the last step's model (dev 8.525): steps 2100–2400 8.721, 1800–2400 8.873, latents only of
// steps 2300 and 2400 8.685. Even at the end of the cosine the last sign flips improve the model, and an
// average of paths and scales that co-adapted is not one of their co-adapted states.
//
//   deno run -A experiments/checkpoint_average.ts --out M.rabit [--latents-only] [--model TEACHER] CK...
//
// --latents-only averages the latent matrices and keeps the last checkpoint's scales and float tensors.

import { parseArgs } from "node:util";
import { parseOrExit } from "./_run.ts";
import { openModel } from "../src/io/load_model.ts";
import { writeRabit } from "../src/io/rabit_format.ts";
import { type Checkpoint, paramsCrc, readCheckpoint } from "../src/train/checkpoint.ts";
import { packTable, type TrainFloat, trainLayout, type TrainMethod } from "../src/train/trainable.ts";

const USAGE =
  "Usage: deno run -A experiments/checkpoint_average.ts --out M.rabit [--latents-only] [--model TEACHER] CK...";
const { values, positionals } = parseOrExit("checkpoint_average", USAGE, () =>
  parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      out: { type: "string" },
      "latents-only": { type: "boolean" },
      model: {
        type: "string",
        default: new URL("../../shared/data/stories260K.bin", import.meta.url).pathname,
      },
      help: { type: "boolean", short: "h" },
    },
  }));
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (!values.out || positionals.length === 0) {
  console.error(
    `${USAGE}\nexpected --out and at least one checkpoint, found ${positionals.length} checkpoints`,
  );
  Deno.exit(2);
}

const teacher = await openModel(values.model!, { requireTokenizer: true });
const cks: Checkpoint[] = [];
for (const path of positionals) cks.push(await readCheckpoint(path));
cks.sort((a, b) => a.step - b.step);
const last = cks.at(-1)!;
const crc = paramsCrc(teacher.model.params);
for (const [i, ck] of cks.entries()) {
  if (ck.teacher.crc !== crc) {
    throw new Error(`${positionals[i]}: written for another teacher than ${values.model}`);
  }
  if (JSON.stringify(ck.options) !== JSON.stringify(last.options)) {
    throw new Error(
      `${positionals[i]}: expected checkpoints of one run (the same options), found other options`,
    );
  }
}
const o = last.options as { method: TrainMethod; paths: number; trainFloat: TrainFloat };
const layout = trainLayout(teacher.model.config, o.paths, o.method, o.trainFloat);
const n = layout.table.count;
const sum = new Float64Array(n); // (table) Σ over checkpoints, in float64
for (const ck of cks) {
  if (ck.state.params.length !== n) {
    throw new Error(`expected tables of ${n} values, found ${ck.state.params.length}`);
  }
  for (let i = 0; i < n; i++) sum[i] += ck.state.params[i];
}
const averaged = (i: number) =>
  values["latents-only"] && i >= layout.latentEnd ? last.state.params[i] : sum[i] / cks.length;
for (let i = 0; i < n; i++) layout.table.data[i] = averaged(i);
const model = packTable(teacher.model, layout, o.method, o.paths);
layout.table.data.set(last.state.params);
const final = packTable(teacher.model, layout, o.method, o.paths);

let differing = 0, bits = 0;
for (const [name, q] of model.quantized) {
  const a = q.planes, b = final.quantized.get(name)!.planes;
  for (let i = 0; i < a.length; i++) {
    for (let x = a[i] ^ b[i]; x; x &= x - 1) differing++;
    bits += 32;
  }
}
await writeRabit(values.out, {
  model,
  tokenizerBytes: teacher.tokenizer!.bytes,
  method: o.method,
  options: { ...last.options, averagedSteps: cks.map((c) => c.step), latentsOnly: !!values["latents-only"] },
  metadata: { source: values.model, checkpoints: positionals },
});
console.log(
  JSON.stringify({
    out: values.out,
    steps: cks.map((c) => c.step),
    signBitsDiffering: differing,
    signBits: bits,
  }),
);
