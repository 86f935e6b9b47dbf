// The module specifiers of compiled JavaScript and declaration lines, for scripts/build_npm.ts: which ones
// to rewrite from ".ts" to ".js" and which bare packages the package.json must list.

/** Lines of code, not of comments: JSDoc examples keep their `./mod.ts` imports as written. */
export const isComment = (line: string): boolean => /^\s*(\*|\/\/|\/\*)/.test(line);

// Specifiers in import/export declarations, `import("...")` types and calls, and side-effect imports.
// `from` and `import(` count only as words of code: not after "-", "." or a letter, so an option name
// such as "late-batch-from": { type: … } in an object literal is not read as `from "…"`.
const SPECIFIER = /((?<![-\w$.])from\s*|(?<![-\w$.])import\s*\(\s*|^\s*import\s+)(["'])([^"'\n]+)\2/g;

/** One specifier of a line: its text, and whether it is a dynamic `import(…)`. */
export interface Specifier {
  spec: string;
  dynamic: boolean;
}

/** The specifiers a non-comment line imports or re-exports from. */
export function lineSpecifiers(line: string): Specifier[] {
  if (isComment(line)) return [];
  return [...line.matchAll(SPECIFIER)].map(([, lead, , spec]) => ({ spec, dynamic: lead.includes("(") }));
}

/** The package a bare specifier names ("@scope/pkg/sub" → "@scope/pkg", "pkg/sub" → "pkg"). */
export function packageName(spec: string): string {
  return spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
}

/** Rewrites relative "./x.ts" specifiers of non-comment lines to "./x.js" (declarations keep .ts). */
export function rewriteDeclaration(text: string): string {
  return text.split("\n").map((line) =>
    isComment(line) ? line : line.replace(
      SPECIFIER,
      (all, lead: string, q: string, spec: string) =>
        /^\.\.?\//.test(spec) && spec.endsWith(".ts") && !spec.endsWith(".d.ts")
          ? `${lead}${q}${spec.slice(0, -3)}.js${q}`
          : all,
    )
  ).join("\n");
}
