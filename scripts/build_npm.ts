// Builds the npm package in npm/ (git-ignored), as dnt would: mod.ts, cli.ts and the `rabit` bin with
// everything they import (embedded kernels included) compiled to ESM JavaScript plus .d.ts declarations by
// the TypeScript compiler (npm `typescript`, run by Node), relative ".ts" specifiers rewritten to ".js",
// and a package.json whose dependencies are the packages the emitted code imports.
// Usage: deno run -A scripts/build_npm.ts [--out npm/]   (`deno task build:npm`)
//
// Types are checked by `deno check` (deno task check), not here: tsc runs with --noCheck, which only
// transpiles and emits declarations, so the build stays a few seconds.

import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { isComment, lineSpecifiers, packageName, rewriteDeclaration } from "./npm_specifiers.ts";

const root = new URL("../", import.meta.url);
const rootPath = decodeURIComponent(root.pathname);
const { values } = parseArgs({ args: Deno.args, options: { out: { type: "string" } } });
const outDir = resolve(values.out ?? `${rootPath}npm`);
const esmDir = `${outDir}/esm`;

/** The package's entry points (relative to the repository root) and where they land in the package. */
const ENTRIES = { mod: "mod.ts", cli: "cli.ts", bin: "src/cli/bin.ts" };
const js = (ts: string) => `./esm/${ts.replace(/\.ts$/, ".js")}`;
const dts = (ts: string) => `./esm/${ts.replace(/\.ts$/, ".d.ts")}`;
const inPackage = (rel: string) => `${outDir}/${rel.replace(/^\.\//, "")}`;

interface PackageJson {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))) as { version: string };
const rootPackage = JSON.parse(await Deno.readTextFile(new URL("package.json", root))) as PackageJson & {
  description: string;
  license: string;
};

async function run(cmd: string, args: string[]): Promise<void> {
  const r = await new Deno.Command(cmd, { args, cwd: rootPath, stdout: "inherit", stderr: "inherit" })
    .output();
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}`);
}

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(path);
    else if (e.isFile) yield path;
  }
}

const t0 = performance.now();
await Deno.remove(outDir, { recursive: true }).catch(() => {});
await run("node", [
  "node_modules/typescript/bin/tsc",
  ...Object.values(ENTRIES),
  ...["--outDir", esmDir, "--rootDir", "."],
  ...["--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext"],
  ...["--lib", "ES2023,DOM,DOM.Iterable", "--types", "node"],
  ...["--declaration", "--rewriteRelativeImportExtensions", "--noCheck", "--skipLibCheck"],
  ...["--newLine", "lf", "--pretty", "false"],
]);

// Declarations: relative .ts specifiers to .js. JavaScript: tsc has rewritten them; check, and collect
// the bare specifiers the package needs at run time.
const staticImports = new Set<string>(), dynamicImports = new Set<string>();
const problems: string[] = [], denoUses: string[] = [];
let files = 0;
for await (const path of walk(esmDir)) {
  files++;
  const rel = path.slice(esmDir.length + 1);
  if (path.endsWith(".d.ts")) {
    const text = await Deno.readTextFile(path);
    const rewritten = rewriteDeclaration(text);
    if (rewritten !== text) await Deno.writeTextFile(path, rewritten);
    continue;
  }
  if (!path.endsWith(".js")) continue;
  const lines = (await Deno.readTextFile(path)).split("\n");
  lines.forEach((line, i) => {
    if (isComment(line)) return;
    for (const { spec, dynamic } of lineSpecifiers(line)) {
      if (/^\.\.?\//.test(spec)) {
        if (!spec.endsWith(".js")) problems.push(`${rel}:${i + 1}: relative import "${spec}" is not .js`);
      } else if (!spec.startsWith("node:")) {
        (dynamic ? dynamicImports : staticImports).add(packageName(spec));
      }
    }
    // Deno's global does not exist under Node; library code goes through src/io/fs.ts, src/util/process.ts.
    if (/(?<![.\w"'`])Deno\./.test(line)) denoUses.push(`${rel}:${i + 1}: ${line.trim()}`);
  });
}
if (problems.length) throw new Error(`build:npm: specifiers tsc left unrewritten:\n${problems.join("\n")}`);

// Static imports must be dependencies; dynamic ones of dev packages (tfjs, for `bench`) are optional peers.
const dependencies: Record<string, string> = {};
const peerDependencies: Record<string, string> = {};
for (const name of [...staticImports, ...dynamicImports].sort()) {
  const version = rootPackage.dependencies?.[name] ?? rootPackage.optionalDependencies?.[name];
  if (version) {
    if (!rootPackage.optionalDependencies?.[name]) dependencies[name] = version;
  } else if (!staticImports.has(name) && rootPackage.devDependencies?.[name]) {
    peerDependencies[name] = rootPackage.devDependencies[name];
  } else {
    throw new Error(
      `build:npm: the code imports "${name}", which package.json does not list as a dependency`,
    );
  }
}
const peerDependenciesMeta = Object.fromEntries(
  Object.keys(peerDependencies).map((n) => [n, { optional: true }]),
);

const pkg = {
  name: "rabit",
  version: denoJson.version,
  description: rootPackage.description,
  license: rootPackage.license,
  type: "module",
  engines: { node: ">=20.16" }, // process.getBuiltinModule (src/io/fs.ts)
  main: js(ENTRIES.mod),
  types: dts(ENTRIES.mod),
  exports: {
    ".": { types: dts(ENTRIES.mod), default: js(ENTRIES.mod) },
    "./cli": { types: dts(ENTRIES.cli), default: js(ENTRIES.cli) },
  },
  bin: { rabit: js(ENTRIES.bin) },
  dependencies,
  // WebGPU under Node (Dawn); without it Node runs the wasm and CPU backends.
  optionalDependencies: rootPackage.optionalDependencies ?? {},
  ...(Object.keys(peerDependencies).length ? { peerDependencies, peerDependenciesMeta } : {}),
};
await Deno.writeTextFile(inPackage("package.json"), JSON.stringify(pkg, null, 2) + "\n");
for (const name of ["README.md", "LICENSE"]) await Deno.copyFile(new URL(name, root), inPackage(name));
await Deno.chmod(inPackage(js(ENTRIES.bin)), 0o755);

const seconds = ((performance.now() - t0) / 1000).toFixed(1);
console.log(`build:npm: ${outDir} (${files} files, rabit@${pkg.version}) in ${seconds} s`);
if (denoUses.length) {
  console.warn(
    `build:npm: warning: the Deno global is used in code that Node runs; route it through src/io/fs.ts or ` +
      `src/util/process.ts:\n${denoUses.map((l) => `  ${l}`).join("\n")}`,
  );
}
