// Shared by the Node suite (tests/node/*.test.mjs, run by `deno task test` after `deno task build:npm`):
// the BUILT npm package in npm/, imported through its package.json exports, and the real data paths.

import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const npmDir = new URL("../../npm/", import.meta.url);

/** npm/package.json; a clear failure when the package has not been built. */
export const pkg = await readFile(new URL("package.json", npmDir), "utf8").then(JSON.parse, (e) => {
  throw new Error(`npm/package.json is missing: run \`deno task build:npm\` first (${e.message})`);
});

/** What `import "rabit"` gives (the "." export). */
export const rabit = await import(new URL(pkg.exports["."].default, npmDir).href);

/** What `import "rabit/cli"` gives. */
export const rabitCli = await import(new URL(pkg.exports["./cli"].default, npmDir).href);

/** The `rabit` bin's file. */
export const binPath = fileURLToPath(new URL(pkg.bin.rabit, npmDir));

const shared = (name) => fileURLToPath(new URL(`../../../shared/data/${name}`, import.meta.url));
export const MODEL_PATH = shared("stories260K.bin");
export const TOKENIZER_PATH = shared("tok512.bin");
export const DEV_TEXT_PATH = shared("tinystories_dev.txt");

/** GOLDEN_GREEDY of tests/_data.ts (the one list the Deno golden test pins), read from its source. */
export const GOLDEN_GREEDY = await readFile(new URL("../_data.ts", import.meta.url), "utf8").then((src) => {
  const m = /GOLDEN_GREEDY = \[([\d,\s]+)\]/.exec(src);
  if (!m) throw new Error("tests/_data.ts: GOLDEN_GREEDY not found");
  return m[1].split(",").map((s) => s.trim()).filter(Boolean).map(Number);
});

/** The greedy text of GOLDEN_GREEDY (what `generate` returns for 24 steps from BOS under Deno). */
export const GOLDEN_TEXT = "Once upon a time, there was a little girl named Lily. She loved to play outsid";
