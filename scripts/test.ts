// `deno task test`: builds the npm package (scripts/build_npm.ts), runs the Node suite against it
// (node --test tests/node/*.test.mjs), then the Deno suite. Deno's runs last, so its summary is the last
// "ok | N passed" line (what .ci/run parses); every part runs even when an earlier one failed (the Node
// suite needs the build), and the task exits 1 when any part failed.
// Usage: deno run -A scripts/test.ts [deno test targets...]   (default: tests/ src/ mod.ts)

const root = decodeURIComponent(new URL("../", import.meta.url).pathname);

/** Runs a command with inherited output; its exit code and seconds. */
async function run(cmd: string, args: string[]): Promise<{ code: number; seconds: number }> {
  const t0 = performance.now();
  let code: number;
  try {
    code =
      (await new Deno.Command(cmd, { args, cwd: root, stdout: "inherit", stderr: "inherit" }).output()).code;
  } catch (e) {
    console.error(`test: could not run ${cmd}: ${(e as Error).message}`);
    code = 127;
  }
  return { code, seconds: (performance.now() - t0) / 1000 };
}

const failed: string[] = [];
const build = await run(Deno.execPath(), ["run", "-A", "scripts/build_npm.ts"]);
if (build.code !== 0) failed.push("build:npm");

let node = { code: 0, seconds: 0 };
if (build.code === 0) {
  const files: string[] = [];
  for await (const e of Deno.readDir(`${root}tests/node`)) {
    if (e.isFile && e.name.endsWith(".test.mjs")) files.push(`tests/node/${e.name}`);
  }
  node = await run("node", ["--test", ...files.sort()]);
  if (node.code !== 0) failed.push("node --test tests/node/");
}
console.error(
  `test: build:npm ${build.seconds.toFixed(1)} s, node --test ${node.seconds.toFixed(1)} s` +
    `${failed.length ? ` (failed: ${failed.join(", ")})` : ""}; now deno test`,
);

const targets = Deno.args.length ? Deno.args : ["tests/", "src/", "mod.ts"];
// tests/_exit_guard.ts ends the process with deno test's exit code before library destructors run: see
// there for the glvnd race it stops (a SIGABRT at exit, after every test passed, on CI's llvmpipe).
const deno = await run(Deno.execPath(), [
  "test",
  "-A",
  "--parallel",
  "--doc",
  "tests/_exit_guard.ts",
  ...targets,
]);
if (deno.code !== 0) failed.push("deno test");
if (failed.length) {
  console.error(`test: failed: ${failed.join(", ")}`);
  Deno.exit(1);
}
