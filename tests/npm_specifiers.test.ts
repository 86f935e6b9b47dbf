// The specifier scanner of scripts/build_npm.ts: what the compiled package imports decides its package.json.

import assert from "node:assert/strict";
import { lineSpecifiers, packageName, rewriteDeclaration } from "../scripts/npm_specifiers.ts";

Deno.test("lineSpecifiers finds static, re-exported, side-effect and dynamic imports", () => {
  assert.deepStrictEqual(lineSpecifiers(`import { Packr } from "msgpackr";`), [{
    spec: "msgpackr",
    dynamic: false,
  }]);
  assert.deepStrictEqual(lineSpecifiers(`export * from './a.js';`), [{ spec: "./a.js", dynamic: false }]);
  assert.deepStrictEqual(lineSpecifiers(`import "./side.js";`), [{ spec: "./side.js", dynamic: false }]);
  assert.deepStrictEqual(lineSpecifiers(`const tf = await import("@tensorflow/tfjs-core");`), [
    { spec: "@tensorflow/tfjs-core", dynamic: true },
  ]);
  assert.deepStrictEqual(lineSpecifiers(`type T = typeof import("./x.js").X; import {a}from"b";`), [
    { spec: "./x.js", dynamic: true },
    { spec: "b", dynamic: false },
  ]);
});

Deno.test("lineSpecifiers ignores comments and words that only end in from or import", () => {
  // The CLI's option table once read as an import of ": { type: " and failed the npm build.
  assert.deepStrictEqual(lineSpecifiers(`    "late-batch-from": { type: "string" },`), []);
  assert.deepStrictEqual(lineSpecifiers(`const o = { from: "a", reimport("b"), x.import("c") };`), []);
  assert.deepStrictEqual(lineSpecifiers(` * import { openModel } from "./mod.ts";`), []);
  assert.deepStrictEqual(lineSpecifiers(`// await import("vega")`), []);
});

Deno.test("packageName keeps a scope and drops subpaths", () => {
  assert.deepStrictEqual(packageName("@huggingface/tokenizers/dist/x.js"), "@huggingface/tokenizers");
  assert.deepStrictEqual(packageName("vega-lite/build/src"), "vega-lite");
});

Deno.test("rewriteDeclaration rewrites relative .ts specifiers of code lines only", () => {
  const text = [
    `export { a } from "./a.ts";`,
    `import type { B } from "../b.d.ts";`,
    ` * import { c } from "./c.ts";`,
    `declare const k: { "late-batch-from": "./x.ts" };`,
  ].join("\n");
  assert.deepStrictEqual(
    rewriteDeclaration(text).split("\n"),
    [
      `export { a } from "./a.js";`,
      `import type { B } from "../b.d.ts";`,
      ` * import { c } from "./c.ts";`,
      `declare const k: { "late-batch-from": "./x.ts" };`,
    ],
  );
});
