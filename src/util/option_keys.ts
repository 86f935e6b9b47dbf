// Refuses option keys a function does not know: plain JavaScript callers (Node, browsers) have no compiler
// to catch `{ stpes: 10 }`, which would otherwise be ignored silently.

/**
 * The keys of the options interface `T`, each named once in an object literal: one missing from it, or one
 * that `T` lacks, fails `deno check`, so the runtime list cannot drift from the interface.
 *
 * @example
 * ```ts
 * import { optionKeys } from "./option_keys.ts";
 * interface Options {
 *   steps?: number;
 *   seed?: number;
 * }
 * optionKeys<Options>({ steps: true, seed: true }); // ["steps", "seed"]
 * ```
 */
export function optionKeys<T extends object>(keys: Record<keyof T, true>): readonly string[] {
  return Object.freeze(Object.keys(keys));
}

/**
 * Throws a TypeError when `options` has an own enumerable key outside `known` (whatever its value:
 * `{ stpes: undefined }` is as misspelt as `{ stpes: 10 }`), naming the keys expected and, where a known
 * key is close, the likely one. `undefined` passes; anything else that is not a plain options object
 * (null, an array, a number) throws.
 *
 * @example
 * ```ts
 * import { checkOptionKeys } from "./option_keys.ts";
 * checkOptionKeys("run", { steps: 2 }, ["steps", "seed"]); // passes
 * try {
 *   checkOptionKeys("run", { stpes: 2 }, ["steps", "seed"]);
 * } catch (e) {
 *   (e as TypeError).message; // 'run: unknown option "stpes"; expected one of: steps, seed (did you mean "steps"?)'
 * }
 * ```
 */
export function checkOptionKeys(fn: string, options: object | undefined, known: readonly string[]): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    const found = options === null ? "null" : Array.isArray(options) ? "an array" : typeof options;
    throw new TypeError(`${fn}: expected an options object, found ${found}`);
  }
  const unknown = Object.keys(options).filter((key) => !known.includes(key));
  if (unknown.length === 0) return;
  const quoted = unknown.map((key) => JSON.stringify(key));
  const guesses = unknown.flatMap((key) => {
    const guess = closestKey(key, known);
    return guess === undefined ? [] : [{ key, guess }];
  });
  let hint = "";
  if (unknown.length === 1 && guesses.length === 1) {
    hint = ` (did you mean ${JSON.stringify(guesses[0].guess)}?)`;
  } else if (guesses.length > 0) {
    hint = ` (did you mean ${
      guesses.map(({ key, guess }) => `${JSON.stringify(guess)} for ${JSON.stringify(key)}`).join(", ")
    }?)`;
  }
  throw new TypeError(
    `${fn}: unknown option${unknown.length > 1 ? "s" : ""} ${quoted.join(", ")}; ` +
      `expected ${known.length ? `one of: ${known.join(", ")}` : "no options"}${hint}`,
  );
}

/**
 * The known key nearest to `key`, ignoring case, when it is within about a third of the key's length in
 * edits (rustc's bound for its suggestions); ties go to the earlier key.
 *
 * @example
 * ```ts
 * import { closestKey } from "./option_keys.ts";
 * closestKey("stpes", ["seed", "steps"]); // "steps"
 * closestKey("MaxWindows", ["context", "maxWindows"]); // "maxWindows"
 * closestKey("temp", ["context", "maxWindows"]); // undefined
 * ```
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const bound = Math.floor(Math.max(key.length, 3) / 3);
  let best: string | undefined, bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d <= bound && d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/**
 * Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`: the optimal string
 * alignment distance, so a transposition such as "stpes" → "steps" costs one.
 *
 * @example
 * ```ts
 * import { editDistance } from "./option_keys.ts";
 * editDistance("stpes", "steps"); // 1
 * editDistance("seq", "seed"); // 2
 * ```
 */
export function editDistance(a: string, b: string): number {
  // d[i][j]: distance between a's first i characters and b's first j, one row of (b.length + 1) per i.
  const w = b.length + 1;
  const d = new Array<number>((a.length + 1) * w);
  for (let i = 0; i <= a.length; i++) {
    for (let j = 0; j <= b.length; j++) {
      if (i === 0 || j === 0) {
        d[i * w + j] = i + j;
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1, d[(i - 1) * w + j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, d[(i - 2) * w + j - 2] + 1);
      }
      d[i * w + j] = v;
    }
  }
  return d[a.length * w + b.length];
}
