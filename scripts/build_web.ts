// Bundles the library for browsers: examples/web/entry.ts (what the example page uses: openModelBytes,
// createSession, generate) with everything it imports, the npm packages (msgpackr, @huggingface/tokenizers)
// and the embedded kernels included, into one ES module, examples/web/rabit.js (git-ignored), by
// `deno bundle --platform browser` (esbuild inside Deno). The page then needs only static files.
// Usage: deno run -A scripts/build_web.ts [--out examples/web/rabit.js] [--no-minify]   (`deno task build:web`)
//
// Checks the bundle: no import but the two optional dynamic ones of the Node paths, node:worker_threads (wasm
// threads) and webgpu (Dawn), never reached in a browser, and none of the report/CLI dependencies (vega).

import { resolve } from "node:path";
import { parseArgs } from "node:util";

const rootPath = decodeURIComponent(new URL("../", import.meta.url).pathname);
const { values } = parseArgs({
  args: Deno.args,
  options: { out: { type: "string" }, "no-minify": { type: "boolean", default: false } },
});
const out = resolve(values.out ?? `${rootPath}examples/web/rabit.js`);
const ENTRY = "examples/web/entry.ts";
const OPTIONAL = new Set(["node:worker_threads", "webgpu"]);

const t0 = performance.now();
const args = ["bundle", "--platform", "browser", "--format", "esm", "--output", out, ENTRY];
if (!values["no-minify"]) args.splice(1, 0, "--minify");
const r = await new Deno.Command(Deno.execPath(), {
  args,
  cwd: rootPath,
  stdout: "piped",
  stderr: "piped",
  env: { NO_COLOR: "1" },
}).output();
if (r.code !== 0) {
  throw new Error(
    `build:web: deno ${args.join(" ")} exited ${r.code}:\n${new TextDecoder().decode(r.stderr)}`,
  );
}

const text = await Deno.readTextFile(out);
const problems: string[] = [];
// Module specifiers left in the bundle: static `from "x"` / `import "x"` and dynamic `import("x")`.
for (const [, spec] of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s*)["']([^"'\n]+)["']/g)) {
  if (!OPTIONAL.has(spec)) problems.push(`import of "${spec}"`);
}
if (/\bvega\b/.test(text)) {
  problems.push("vega is in the bundle (the entry must not reach src/report or src/cli)");
}
if (problems.length) throw new Error(`build:web: ${out}:\n  ${problems.join("\n  ")}`);

const seconds = ((performance.now() - t0) / 1000).toFixed(1);
console.log(`build:web: ${out} (${(text.length / 1024).toFixed(0)} KiB) in ${seconds} s`);
