// The `rabit` bin of the built npm package under Node, as `npx rabit ...` runs it: help and exit codes,
// the golden greedy text streamed by `generate`, --json contracts, and errors that name the file.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test, { after } from "node:test";
import { fileURLToPath } from "node:url";
import {
  binPath,
  DEV_TEXT_PATH,
  GOLDEN_GREEDY,
  GOLDEN_TEXT,
  MODEL_PATH,
  rabitCli,
  TOKENIZER_PATH,
} from "./_package.mjs";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Exit code, stdout and stderr of `node <bin> ...args`, run from the repository root. */
function rabit(args) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [binPath, ...args],
      { cwd: repoRoot, env: { ...process.env, NO_COLOR: "1" }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? error.code ?? 1 : 0, stdout, stderr }),
    );
  });
}

const lastJson = (stdout) => JSON.parse(stdout.trim().split("\n").at(-1));

// A slice of the dev text: tokenizing the whole megabyte would dominate these tests' time.
const dir = await mkdtemp(join(tmpdir(), "rabit-node-cli-"));
after(() => rm(dir, { recursive: true }));
const textPath = join(dir, "dev.txt");
await writeFile(textPath, (await readFile(DEV_TEXT_PATH, "utf8")).slice(0, 20_000));

test("help exits 0, no command and an unknown one exit 2", async () => {
  const help = await rabit(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Commands:/);
  assert.match((await rabit(["generate", "--help"])).stdout, /Usage: rabit generate/);
  assert.equal((await rabit([])).code, 2);
  const bad = await rabit(["frobnicate"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command "frobnicate"/);
  assert.equal(typeof rabitCli.main, "function"); // the "./cli" export
});

test("generate streams the golden greedy text; --json reports ids", async () => {
  const r = await rabit([
    "generate",
    ...["--steps", String(GOLDEN_GREEDY.length), "--model", MODEL_PATH, "--tokenizer", TOKENIZER_PATH],
    ...["--backend", "cpu"],
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${GOLDEN_TEXT}\n`);
  // No --model: the default ../shared/data/stories260K.bin from the working directory; --backend auto.
  const j = await rabit(["generate", "--steps", "4", "--prompt", "Once upon a time", "--json"]);
  assert.equal(j.code, 0, j.stderr);
  assert.deepEqual(lastJson(j.stdout).ids, [1, 403, 407, 261, 378, ...GOLDEN_GREEDY.slice(4, 8)]);
});

test("eval --json and inspect --json", async () => {
  const e = await rabit([
    "eval",
    ...["--text", textPath, "--backend", "wasm"],
    "--context",
    "128",
    "--max-windows",
    "4",
    "--json",
  ]);
  assert.equal(e.code, 0, e.stderr);
  const obj = lastJson(e.stdout);
  assert.equal(obj.windows, 4);
  assert.ok(obj.ppl > 1 && obj.ppl < 20, `ppl ${obj.ppl}`);
  const i = await rabit(["inspect", MODEL_PATH, "--json"]);
  assert.equal(i.code, 0, i.stderr);
  assert.equal(lastJson(i.stdout).parameters, 260032);
});

test("a missing file is a one-line error naming it, exit 1", async () => {
  const r = await rabit(["eval", "--model", "/nonexistent.bin", "--text", textPath]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), "error: Model file not found: /nonexistent.bin");
  const t = await rabit(["eval", "--text", "/nonexistent.txt"]);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /Text file not found: \/nonexistent\.txt/);
});

test("quantize --method rtn2 writes a .rabit that eval reads", async () => {
  const out = join(dir, "m.rabit");
  const q = await rabit(["quantize", "--method", "rtn2", "--out", out, "--json"]); // no calibration: fast
  assert.equal(q.code, 0, q.stderr);
  assert.ok((await stat(out)).size > 0);
  const e = await rabit(["eval", "--model", out, "--text", textPath, "--max-windows", "2", "--json"]);
  assert.equal(e.code, 0, e.stderr);
});
