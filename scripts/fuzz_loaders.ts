// Fuzzes every file loader with seeded mutations of valid files (tests/fuzz_util.ts): each input must be
// accepted or refused with the loader's own error within a second. Prints a summary; exits 1 on any
// failure, with the seed, case and mutation that reproduce it.
// Usage: deno task fuzz [--count 10000] [--seed 1]
//          [--format llama2c|tokenizer|rabit|checkpoint|safetensors|gguf]
//        deno task fuzz --format rabit --seed 1 --case 1234   (one case, with the loader's answer)

import { parseArgs } from "node:util";
import {
  buildTarget,
  formatFailure,
  FORMATS,
  type FuzzSummary,
  isLoaderError,
  makeCase,
  runFuzz,
} from "../tests/fuzz_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    count: { type: "string", default: "10000" },
    seed: { type: "string", default: "1" },
    format: { type: "string" },
    case: { type: "string" },
    "limit-ms": { type: "string", default: "1000" },
  },
});
const int = (name: string, text: string) => {
  const v = Number(text);
  if (!Number.isInteger(v) || v < 0) {
    throw new RangeError(`--${name}: expected an integer >= 0, found ${text}`);
  }
  return v;
};
const count = int("count", values.count);
const seed = int("seed", values.seed);
const limitMs = int("limit-ms", values["limit-ms"]);
const formats = values.format ? [values.format] : [...FORMATS];
const enc = new TextEncoder();
const tty = Deno.stderr.isTerminal();

if (values.case !== undefined) {
  // One case, verbose: what was generated and what the loader said.
  const target = await buildTarget(formats[0]);
  const c = makeCase(target, seed, int("case", values.case));
  console.log(`${target.name} case ${c.index} (seed ${seed}): ${c.bytes.byteLength} bytes\n  ${c.mutation}`);
  const start = performance.now();
  try {
    target.parse(c.bytes);
    console.log(`accepted in ${(performance.now() - start).toFixed(1)} ms`);
  } catch (e) {
    const ms = (performance.now() - start).toFixed(1);
    console.log(`refused in ${ms} ms (${isLoaderError(e) ? "the loader's own error" : "FOREIGN ERROR"}):`);
    console.log(e);
    if (!isLoaderError(e)) Deno.exit(1);
  }
  Deno.exit(0);
}

const summaries: FuzzSummary[] = [];
for (const format of formats) {
  const target = await buildTarget(format);
  const step = Math.max(1, Math.floor(count / 100));
  const s = runFuzz(target, {
    count,
    seed,
    limitMs,
    onProgress: (done, s) => {
      if (done % step !== 0 && done !== count) return;
      const line = `${format}: ${done}/${count} inputs, ${s.accepted} accepted, ${s.refused} refused, ` +
        `${s.failures.length} failures, slowest ${s.slowestMs.toFixed(1)} ms`;
      // On a terminal one line redrawn in place; in a log one line per 10%.
      if (tty) Deno.stderr.writeSync(enc.encode(`\r${line}\x1b[K`));
      else if (done % (step * 10) === 0 || done === count) console.error(line);
    },
  });
  if (tty) Deno.stderr.writeSync(enc.encode("\n"));
  summaries.push(s);
}

console.log(`\nseed ${seed}, ${count} inputs per format, limit ${limitMs} ms per input`);
console.log("format       inputs  accepted   refused  failures  slowest ms");
for (const s of summaries) {
  console.log(
    `${s.format.padEnd(10)} ${String(s.inputs).padStart(8)} ${String(s.accepted).padStart(9)} ` +
      `${String(s.refused).padStart(9)} ${String(s.failures.length).padStart(9)} ${
        s.slowestMs.toFixed(1).padStart(11)
      }`,
  );
}
for (const s of summaries) console.log(`slowest ${s.format}: case ${s.slowestIndex}: ${s.slowestMutation}`);
const failures = summaries.flatMap((s) => s.failures);
if (failures.length) {
  console.log(`\n${failures.length} failures:`);
  for (const f of failures.slice(0, 50)) console.log(formatFailure(f));
  if (failures.length > 50) console.log(`… and ${failures.length - 50} more`);
  Deno.exit(1);
}
