// The WGSL template preprocessor (src/backend/webgpu/wgsl_template.ts): includes, conditionals, unrolled
// loops with substitutions, and errors that name the kernel and line.

import assert from "node:assert/strict";
import { expandWgsl } from "../src/backend/webgpu/wgsl_template.ts";

Deno.test("expandWgsl: for loops unroll with ${var} and $var substitutions, nested and bounded by values", () => {
  const code = [
    "//#for r in 0..RPT",
    "  //#for p in 1..K",
    "var a_${p}_${r} = ${r}u + $p;",
    "  //#end",
    "//#end",
    "let n = $RPT;",
  ].join("\n");
  assert.equal(
    expandWgsl(code, { values: { RPT: 2, K: 3 } }),
    [
      "var a_1_0 = 0u + 1;",
      "var a_2_0 = 0u + 2;",
      "var a_1_1 = 1u + 1;",
      "var a_2_1 = 1u + 2;",
      "let n = 2;",
    ].join("\n"),
  );
  // An empty range emits nothing; negative values are parenthesized.
  assert.equal(expandWgsl("//#for i in 0..0\nx\n//#end\ny = $N;", { values: { N: -3 } }), "y = (-3);");
});

Deno.test("expandWgsl: //#if and //#else keep one branch; skipped branches may use unknown loop bounds", () => {
  const code = "//#if U\nuniform\n//#else\nstorage\n//#for i in 0..MISSING\n//#end\n//#end\nend";
  assert.equal(expandWgsl(code, { values: { U: 1 } }).includes("uniform"), true);
  assert.equal(expandWgsl(code, { values: { U: 1 } }).includes("storage"), false);
  assert.throws(() => expandWgsl(code, { values: { U: 0 } }), /unknown template value "MISSING"/);
  assert.equal(expandWgsl("//#if A\na\n//#end\nb", { values: { A: 0 } }), "b");
});

Deno.test("expandWgsl: //#include inlines fragments recursively and refuses cycles and unknown names", () => {
  const frags: Record<string, string> = {
    f: "fn f() {}\n//#include g",
    g: "fn g() -> u32 { return $N; }",
    loop: "//#include loop",
  };
  const got = expandWgsl("//#include f\nfn main() {}", { values: { N: 7 }, include: (n) => frags[n] });
  assert.equal(got, "fn f() {}\nfn g() -> u32 { return 7; }\nfn main() {}");
  assert.throws(
    () => expandWgsl("//#include nope", { include: (n) => frags[n], name: "k" }),
    /WGSL template k, line 1: unknown fragment "nope"/,
  );
  assert.throws(() => expandWgsl("//#include loop", { include: (n) => frags[n] }), /includes itself/);
});

Deno.test("expandWgsl: malformed directives and unknown values are errors naming the kernel and line", () => {
  assert.throws(
    () => expandWgsl("a\n//#for r in 0..2\nb", { name: "gemv" }),
    /WGSL template gemv, line 2: \/\/#for without \/\/#end/,
  );
  assert.throws(() => expandWgsl("//#end", { name: "gemv" }), /unmatched \/\/#end/);
  assert.throws(() => expandWgsl("//#for r from 0 to 2\n//#end"), /expected "\/\/#for VAR in A\.\.B"/);
  assert.throws(() => expandWgsl("let a = $B;", { name: "k" }), /line 1: unknown template value "B"/);
  assert.throws(() => expandWgsl("//#if X\n", {}), /unknown template value "X"/);
  assert.throws(() => expandWgsl("let a = $F;", { values: { F: 0.5 } }), /expected an integer/);
});
