// A small preprocessor for the WGSL kernels, applied when a pipeline is built. WGSL has no includes,
// no conditional compilation and no way to force loop unrolling; the matmul kernels need all three:
// shared declarations live in one fragment, the storage of x and h (uniform or storage buffer) is
// picked per pipeline, and the per-row accumulators must be separate variables because a software
// adapter (llvmpipe) turns every dynamically indexed private array access into a per-lane
// gather/scatter loop — in the packed GEMV that cost more than the arithmetic (docs/kernels.md).
//
// Directives (each on its own line, leading spaces allowed):
//   //#include NAME          the text of fragment NAME (kernels/NAME.wgsl), itself expanded
//   //#if NAME   //#else   //#end      keep the first branch when the value NAME is non-zero
//   //#for VAR in A..B  ...  //#end    repeat the body for VAR = A .. B-1 (A, B: integers or value names)
//   $NAME or ${NAME}         the value NAME, or the current index of loop variable NAME, as a WGSL
//                            literal (the braces separate it from a following suffix: `${r}u`)
// `$` cannot appear in WGSL, so substitutions never collide with code. Unknown names are errors.

/** Values the template may test and substitute (integers; booleans as 0/1). */
export type TemplateValues = Readonly<Record<string, number>>;

/** Options of {@link expandWgsl}. */
export interface ExpandOptions {
  /** Values for `//#if`, loop bounds and `$NAME`. */
  values?: TemplateValues;
  /** Source of a fragment for `//#include NAME`. */
  include?: (name: string) => string | undefined;
  /** Name of the kernel, for error messages. */
  name?: string;
}

const DIRECTIVE = /^\s*\/\/#(include|if|else|end|for)\b\s*(.*)$/;

interface Line {
  text: string;
  no: number;
}

/** Expands the directives of a WGSL template (see the top of this file). */
export function expandWgsl(code: string, options: ExpandOptions = {}): string {
  const name = options.name ?? "kernel";
  const values = options.values ?? {};
  const fail = (no: number, why: string): never => {
    throw new SyntaxError(`WGSL template ${name}, line ${no}: ${why}`);
  };
  const lines = inlineIncludes(code, options, name, new Set());
  const out: string[] = [];
  let i = 0;

  const valueOf = (token: string, scope: Map<string, number>, no: number): number => {
    if (/^-?\d+$/.test(token)) return Number(token);
    const v = scope.get(token) ?? values[token];
    if (v === undefined) fail(no, `unknown template value "${token}"`);
    return v as number;
  };
  const substitute = (text: string, scope: Map<string, number>, no: number) =>
    text.replace(/\$\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)/g, (_, braced?: string, bare?: string) => {
      const id = (braced ?? bare)!;
      const v = valueOf(id, scope, no);
      if (!Number.isInteger(v)) fail(no, `value "${id}" is ${v}, expected an integer`);
      return v < 0 ? `(${v})` : `${v}`;
    });

  // Emits lines[i..] until an `//#else` or `//#end` at this nesting level (returned) or the end.
  const block = (scope: Map<string, number>, emit: boolean): "else" | "end" | "eof" => {
    while (i < lines.length) {
      const { text, no } = lines[i++];
      const m = DIRECTIVE.exec(text);
      if (!m) {
        if (emit) out.push(substitute(text, scope, no));
        continue;
      }
      const [, kind, rest] = m;
      if (kind === "else" || kind === "end") return kind;
      if (kind === "if") {
        const cond = emit ? valueOf(rest.trim(), scope, no) !== 0 : false;
        const first = block(scope, emit && cond);
        if (first === "else") {
          if (block(scope, emit && !cond) !== "end") fail(no, "//#if without //#end");
        } else if (first !== "end") fail(no, "//#if without //#end");
        continue;
      }
      // for VAR in A..B
      const f = /^([A-Za-z_]\w*)\s+in\s+(\S+)\.\.(\S+)$/.exec(rest.trim());
      if (!f) fail(no, `expected "//#for VAR in A..B", found "${text.trim()}"`);
      const [, v, a, b] = f!;
      const from = emit ? valueOf(a, scope, no) : 0, to = emit ? valueOf(b, scope, no) : 0;
      const start = i;
      if (!emit || to <= from) {
        i = start;
        if (block(scope, false) !== "end") fail(no, "//#for without //#end");
        continue;
      }
      for (let k = from; k < to; k++) {
        i = start;
        const inner = new Map(scope).set(v, k);
        if (block(inner, true) !== "end") fail(no, "//#for without //#end");
      }
    }
    return "eof";
  };

  const end = block(new Map(), true);
  if (end !== "eof") fail(lines[i - 1].no, `unmatched //#${end}`);
  return out.join("\n");
}

function inlineIncludes(code: string, options: ExpandOptions, name: string, seen: Set<string>): Line[] {
  const out: Line[] = [];
  code.split("\n").forEach((text, index) => {
    const m = DIRECTIVE.exec(text);
    if (!m || m[1] !== "include") {
      out.push({ text, no: index + 1 });
      return;
    }
    const frag = m[2].trim();
    const src = options.include?.(frag);
    if (src === undefined) {
      throw new SyntaxError(`WGSL template ${name}, line ${index + 1}: unknown fragment "${frag}"`);
    }
    if (seen.has(frag)) {
      throw new SyntaxError(`WGSL template ${name}, line ${index + 1}: fragment "${frag}" includes itself`);
    }
    out.push(...inlineIncludes(src, options, `${name} > ${frag}`, new Set([...seen, frag])));
  });
  return out;
}
