// Tokenizers: what the pipeline needs of one (the abstract `Tokenizer`), and the llama2.c tokenizer —
// `tokenizer.bin` parsing, `encode` exactly as llama2.c's (dummy prefix, UTF-8 code points, byte fallback,
// highest-score merge first, leftmost on ties) in O(n log n) with a heap, and `decode` with byte-fallback
// tokens and the leading space after BOS. Hugging Face tokenizer.json files: io/hf_tokenizer.ts.
//
// tokenizer.bin: int32 max_token_length, then per token: f32 score, int32 length, `length` bytes.

import { Tokenizer as HfLibraryTokenizer } from "@huggingface/tokenizers";
import { FormatError, readFileOrThrow } from "./errors.ts";
import { isFileSync, pathModule, readFile } from "./fs.ts";
import { MAX_TOKEN_LENGTH } from "./limits.ts";

/**
 * Beginning of sequence: the token every llama2.c sequence starts with (id 1).
 *
 * @example
 * ```ts
 * import { BOS, Tokenizer } from "./tokenizer.ts";
 * const tok = await Tokenizer.load("../shared/data/tok512.bin", 512);
 * tok.encode("Hi", { bos: true })[0] === BOS; // true
 * ```
 */
export const BOS = 1;
/**
 * End of sequence (id 2): generation stops when the model picks it (or BOS).
 *
 * @example
 * ```ts
 * import { EOS, Tokenizer } from "./tokenizer.ts";
 * const tok = await Tokenizer.load("../shared/data/tok512.bin", 512);
 * tok.encode("Hi", { eos: true }).at(-1) === EOS; // true
 * ```
 */
export const EOS = 2;
/** Byte-fallback tokens <0x00>..<0xFF> start at this id. */
const BYTE_OFFSET = 3;

const utf8 = new TextEncoder();

/** The file format a tokenizer was read from: llama2.c's tokenizer.bin, or Hugging Face's tokenizer.json. */
export type TokenizerKind = "llama2c" | "hf";

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Prepend {@link BOS}. */
  bos?: boolean;
  /** Append {@link EOS}. */
  eos?: boolean;
}

/**
 * What the pipeline needs of a model's tokenizer (training data, perplexity, generation, packed files):
 * text to ids, ids back to text, a streaming decoder, and the file's bytes to embed. Implemented by
 * {@link Llama2cTokenizer} (llama2.c's tokenizer.bin) and {@link HfTokenizer} (Hugging Face's
 * tokenizer.json); both use {@link BOS} = 1 and {@link EOS} = 2, which the pipeline assumes. The static
 * `parse` and `load` read either file, told apart by its first bytes.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "./tokenizer.ts";
 * const tok: Tokenizer = await Tokenizer.load("../shared/data/tok512.bin", 512);
 * tok.kind; // "llama2c"
 * tok.decode(tok.encode("Once upon a time", { bos: true })); // "Once upon a time"
 * ```
 */
export abstract class Tokenizer {
  /** The format of {@link Tokenizer.bytes}. */
  abstract readonly kind: TokenizerKind;
  /** The file's bytes, unchanged, so a packed model file can embed the tokenizer. */
  abstract readonly bytes: Uint8Array;
  /** Number of tokens (ids are 0..vocabSize − 1). */
  abstract get vocabSize(): number;
  /** Token ids of `text`; special tokens only where `options` asks for them. */
  abstract encode(text: string, options?: EncodeOptions): number[];
  /** Text of a token sequence that follows `prev` (BOS/EOS produce no text; after BOS no leading space). */
  abstract decode(ids: number[], prev?: number): string;
  /** A streaming decoder: feed ids one at a time, get text as soon as it forms whole UTF-8 characters. */
  abstract decoder(prev?: number): (id: number) => string;

  /**
   * Parses a tokenizer file for a model of `vocabSize` tokens: a Hugging Face tokenizer.json (bytes that
   * start with "{" and are not a tokenizer.bin header) or else llama2.c's tokenizer.bin.
   */
  static parse(bytes: Uint8Array, vocabSize: number, path = "tokenizer"): Tokenizer {
    return isTokenizerJson(bytes)
      ? HfTokenizer.parse(bytes, vocabSize, path)
      : Llama2cTokenizer.parse(bytes, vocabSize, path);
  }

  /** Loads a tokenizer file (see {@link Tokenizer.parse}); a tokenizer.json takes the tokenizer_config.json next to it. */
  static async load(path: string, vocabSize: number): Promise<Tokenizer> {
    const bytes = await readFileOrThrow(path, "Tokenizer");
    return isTokenizerJson(bytes)
      ? HfTokenizer.parse(bytes, vocabSize, path, await tokenizerConfigNear(path))
      : Llama2cTokenizer.parse(bytes, vocabSize, path);
  }
}

/**
 * True when tokenizer bytes are a JSON object (a Hugging Face tokenizer.json) rather than llama2.c's
 * tokenizer.bin, whose int32 max_token_length (1..1024) makes bytes 1..3 zero after a "{" (123).
 *
 * @example
 * ```ts
 * import { isTokenizerJson } from "./tokenizer.ts";
 * isTokenizerJson(new TextEncoder().encode('{"model": {}}')); // true
 * isTokenizerJson(new Uint8Array([123, 0, 0, 0])); // false: max_token_length 123
 * ```
 */
export function isTokenizerJson(bytes: Uint8Array): boolean {
  let i = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3; // UTF-8 byte order mark
  while (
    i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)
  ) i++;
  if (bytes[i] !== 0x7b) return false;
  return !(i === 0 && bytes.length >= 4 && bytes[1] === 0 && bytes[2] === 0 && bytes[3] === 0);
}

/**
 * A llama2.c vocabulary with scores: encodes text exactly as llama2.c does and decodes ids back.
 *
 * @example
 * ```ts
 * import { Llama2cTokenizer } from "./tokenizer.ts";
 * const tok = await Llama2cTokenizer.load("../shared/data/tok512.bin", 512);
 * const ids = tok.encode("Once upon a time", { bos: true }); // [1, …]
 * tok.decode(ids); // "Once upon a time"
 * ```
 */
export class Llama2cTokenizer extends Tokenizer {
  /** Always "llama2c". */
  readonly kind: TokenizerKind = "llama2c";
  /** Raw bytes of each token, by id. */
  readonly pieces: Uint8Array[];
  /** Merge score of each token, by id (higher merges first). */
  readonly scores: Float32Array;
  /** The longest token in bytes, as the file's header states it. */
  readonly maxTokenLength: number;
  /** The file's bytes, kept so a packed model file can embed the tokenizer unchanged. */
  readonly bytes: Uint8Array;
  readonly #ids = new Map<string, number>();
  readonly #byteValue: Int16Array; // per id: the byte a <0xXX> token stands for, or -1

  /** A vocabulary from parsed parts; use {@link Tokenizer.parse} or {@link Tokenizer.load} to read a file. */
  constructor(bytes: Uint8Array, pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    super();
    this.bytes = bytes;
    this.pieces = pieces;
    this.scores = scores;
    this.maxTokenLength = maxTokenLength;
    this.#byteValue = new Int16Array(pieces.length).fill(-1);
    for (let id = 0; id < pieces.length; id++) {
      const key = latin1Key(pieces[id]); // not TextDecoder("latin1"): that is windows-1252
      // llama2.c looks tokens up by binary search over a sorted vocabulary; with duplicate strings the
      // first id in sorted (stable) order wins, which is the lowest id.
      if (!this.#ids.has(key)) this.#ids.set(key, id);
      const m = /^<0x([0-9A-F]{2})>$/.exec(key);
      if (m) this.#byteValue[id] = parseInt(m[1], 16);
    }
  }

  /** Number of tokens. */
  get vocabSize(): number {
    return this.pieces.length;
  }

  /** Parses tokenizer.bin bytes for a vocabulary of `vocabSize` tokens (the model's). */
  static override parse(bytes: Uint8Array, vocabSize: number, path = "tokenizer"): Llama2cTokenizer {
    const hint = "Expected a llama2.c tokenizer.bin matching the model (e.g. tok512.bin for stories260K)";
    if (!Number.isInteger(vocabSize) || vocabSize < 1) {
      throw new RangeError(
        `Tokenizer.parse: expected vocabSize to be a positive integer, found ${vocabSize}`,
      );
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 4) {
      throw new FormatError(path, `file is ${bytes.byteLength} bytes, too short`, hint);
    }
    const maxTokenLength = view.getInt32(0, true);
    if (maxTokenLength <= 0 || maxTokenLength > MAX_TOKEN_LENGTH) {
      throw new FormatError(
        path,
        `bad max_token_length ${maxTokenLength} (expected 1..${MAX_TOKEN_LENGTH})`,
        hint,
      );
    }
    // Every record is read against the file's end before anything is taken from it; the file's length
    // bounds the number of tokens (8 bytes each at least).
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let at = 4;
    while (at < bytes.byteLength) {
      if (at + 8 > bytes.byteLength) {
        throw new FormatError(
          path,
          `truncated inside the record of token ${pieces.length}: its 8-byte score and length start at ` +
            `byte ${at}, the file ends at ${bytes.byteLength}`,
          hint,
        );
      }
      const score = view.getFloat32(at, true);
      const len = view.getInt32(at + 4, true);
      at += 8;
      if (len < 0 || len > maxTokenLength) {
        throw new FormatError(
          path,
          `token ${pieces.length} has bad length ${len} at byte ${at - 4} (expected 0..${maxTokenLength}, ` +
            `the file's max_token_length)`,
          hint,
        );
      }
      if (Number.isNaN(score)) {
        throw new FormatError(path, `token ${pieces.length} has score NaN at byte ${at - 8}`, hint);
      }
      if (at + len > bytes.byteLength) {
        throw new FormatError(
          path,
          `truncated inside the record of token ${pieces.length}: ${len} bytes of text from byte ${at}, ` +
            `the file ends at ${bytes.byteLength}`,
          hint,
        );
      }
      pieces.push(bytes.slice(at, at + len));
      scores.push(score);
      at += len;
    }
    if (pieces.length < vocabSize) {
      throw new FormatError(
        path,
        `file ends after ${pieces.length} tokens but the model expects ${vocabSize}: truncated, or a tokenizer for another model`,
        hint,
      );
    }
    if (pieces.length !== vocabSize) {
      throw new FormatError(
        path,
        `vocabulary has ${pieces.length} tokens but the model expects ${vocabSize}`,
        "Use the tokenizer the model was trained with",
      );
    }
    return new Llama2cTokenizer(bytes, pieces, new Float32Array(scores), maxTokenLength);
  }

  /** Loads tokenizer.bin from disk. */
  static override async load(path: string, vocabSize: number): Promise<Llama2cTokenizer> {
    return Llama2cTokenizer.parse(await readFileOrThrow(path, "Tokenizer"), vocabSize, path);
  }

  /** Id of a token given as latin1-keyed bytes, or -1. */
  lookup(bytes: Uint8Array): number {
    return this.lookupKey(latin1Key(bytes));
  }

  /** Id of a token given as a latin1 string of its bytes, or -1. */
  lookupKey(key: string): number {
    return this.#ids.get(key) ?? -1;
  }

  /**
   * Token ids of `text`, exactly as llama2.c's `encode(text, bos, eos)`.
   * A priority queue of adjacent pairs keyed by (merge score desc, position asc) makes it O(n log n).
   */
  encode(text: string, options: EncodeOptions & { stats?: EncodeStats } = {}): number[] {
    const initial = this.initialTokens(utf8.encode(text));
    const merged = mergeWithHeap(this, initial, options.stats);
    if (options.bos) merged.unshift(BOS);
    if (options.eos) merged.push(EOS);
    return merged;
  }

  /** The tokens before any merge: dummy prefix, then one token per UTF-8 code point or byte fallback. */
  initialTokens(bytes: Uint8Array): number[] {
    const out: number[] = [];
    if (bytes.length === 0) return out;
    const space = this.lookup(utf8.encode(" "));
    if (space >= 0) out.push(space);
    // Split into code points the way llama2.c does: a code point is a non-continuation byte followed
    // by at most 3 continuation bytes.
    let i = 0;
    while (i < bytes.length) {
      let j = i + 1;
      while (j < bytes.length && (bytes[j] & 0xc0) === 0x80 && j - i < 4) j++;
      const cp = bytes.subarray(i, j);
      const id = this.lookup(cp);
      if (id >= 0) out.push(id);
      else for (const b of cp) out.push(b + BYTE_OFFSET);
      i = j;
    }
    return out;
  }

  /** Raw bytes of token `id` as it follows `prev` (llama2.c strips the leading space after BOS). */
  pieceBytes(prev: number, id: number): Uint8Array {
    if (id < 0 || id >= this.pieces.length) {
      throw new RangeError(`Token id ${id} is outside the vocabulary 0..${this.pieces.length - 1}`);
    }
    const b = this.#byteValue[id];
    if (b >= 0) return Uint8Array.of(b);
    const piece = this.pieces[id];
    if (prev === BOS && piece[0] === 0x20) return piece.subarray(1);
    return piece;
  }

  /** Text of a token sequence (BOS/EOS produce no text). */
  decode(ids: number[], prev = BOS): string {
    const dec = new TextDecoder();
    let out = "";
    for (const id of ids) {
      if (id !== BOS && id !== EOS) out += dec.decode(this.pieceBytes(prev, id), { stream: true });
      prev = id;
    }
    return out + dec.decode();
  }

  /** A streaming decoder: feed ids one at a time, get text as soon as it forms whole UTF-8 characters. */
  decoder(prev = BOS): (id: number) => string {
    const dec = new TextDecoder();
    return (id: number) => {
      const text = id === BOS || id === EOS ? "" : dec.decode(this.pieceBytes(prev, id), { stream: true });
      prev = id;
      return text;
    };
  }
}

function latin1Key(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function concatKey(tok: Llama2cTokenizer, a: number, b: number): string {
  return latin1Key(tok.pieces[a]) + latin1Key(tok.pieces[b]);
}

/** Work counters of one encode (what makes its cost O(n log n), checkable without timing it). */
export interface EncodeStats {
  /** Tokens before any merge. */
  initialTokens: number;
  /** Adjacent pairs looked up as merge candidates (≤ 3 per initial token: n − 1, then 2 per merge). */
  candidates: number;
}

/** Max-heap of candidate merges ordered by (score desc, left position asc), over typed columns. */
class PairHeap {
  score = new Float64Array(64);
  left = new Int32Array(64);
  right = new Int32Array(64);
  merged = new Int32Array(64);
  size = 0;
  #before(i: number, j: number): boolean {
    return this.score[i] > this.score[j] || (this.score[i] === this.score[j] && this.left[i] < this.left[j]);
  }
  #move(from: number, to: number): void {
    this.score[to] = this.score[from];
    this.left[to] = this.left[from];
    this.right[to] = this.right[from];
    this.merged[to] = this.merged[from];
  }
  #grow(): void {
    const n = this.score.length * 2;
    const copy = <A extends Float64Array | Int32Array>(a: A, b: A) => (b.set(a), b);
    this.score = copy(this.score, new Float64Array(n));
    this.left = copy(this.left, new Int32Array(n));
    this.right = copy(this.right, new Int32Array(n));
    this.merged = copy(this.merged, new Int32Array(n));
  }
  push(score: number, left: number, right: number, merged: number): void {
    if (this.size + 1 >= this.score.length) this.#grow();
    // Slot `size` is scratch: sift the hole up, then drop the entry in.
    const tmp = this.score.length - 1;
    this.score[tmp] = score, this.left[tmp] = left, this.right[tmp] = right, this.merged[tmp] = merged;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#before(tmp, p)) break;
      this.#move(p, i);
      i = p;
    }
    this.#move(tmp, i);
  }
  /** Removes the best entry and returns its fields. */
  pop(): { left: number; right: number; merged: number } {
    const top = { left: this.left[0], right: this.right[0], merged: this.merged[0] };
    const last = --this.size;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = last;
      if (l < last && this.#before(l, m)) m = l;
      if (r < last && this.#before(r, m)) m = r;
      if (m === last) break;
      this.#move(m, i);
      i = m;
    }
    if (last > 0) this.#move(last, i);
    return top;
  }
}

/**
 * llama2.c's merge loop (repeatedly merge the best-scoring adjacent pair, leftmost on ties) with a heap.
 * Symbols form a linked list; a heap entry is valid while both its symbols are alive, adjacent and
 * unchanged (a merged symbol keeps the left position, so its id is compared).
 */
function mergeWithHeap(tok: Llama2cTokenizer, tokens: number[], stats?: EncodeStats): number[] {
  const n = tokens.length;
  const id = tokens.slice();
  const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
  const prev = Array.from({ length: n }, (_, i) => i - 1);
  const alive = new Uint8Array(n).fill(1);
  const heap = new PairHeap();
  const consider = (l: number) => {
    const r = next[l];
    if (l < 0 || r < 0) return;
    const m = tok.lookupKey(concatKey(tok, id[l], id[r]));
    if (m >= 0) heap.push(tok.scores[m], l, r, m);
    if (stats) stats.candidates++;
  };
  for (let i = 0; i + 1 < n; i++) consider(i);
  while (heap.size > 0) {
    const { left, right, merged } = heap.pop();
    if (!alive[left] || !alive[right] || next[left] !== right) continue;
    if (concatKey(tok, id[left], id[right]) !== latin1Key(tok.pieces[merged])) continue;
    id[left] = merged;
    alive[right] = 0;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    consider(prev[left]);
    consider(left);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0 && i < n; i = next[i]) out.push(id[i]);
  if (stats) stats.initialTokens += n;
  return out;
}

/** llama2.c's quadratic merge loop, literally: the slow reference `encode` is tested against. */
export function encodeSlow(tok: Llama2cTokenizer, text: string): number[] {
  const tokens = tok.initialTokens(utf8.encode(text));
  for (;;) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const m = tok.lookupKey(concatKey(tok, tokens[i], tokens[i + 1]));
      if (m !== -1 && tok.scores[m] > bestScore) {
        bestScore = tok.scores[m];
        bestId = m;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------------------
// Hugging Face tokenizer.json, run by @huggingface/tokenizers (the pure-JS port of `tokenizers` that
// transformers.js uses): the pipeline's conventions on top of it (no special tokens unless asked, BOS = 1
// and EOS = 2 produce no text, no leading space after BOS, streaming that holds back partial UTF-8).

/** Largest tokenizer.json accepted, in bytes (Llama 3's is 9 MB). */
export const MAX_TOKENIZER_JSON_BYTES: number = 64 << 20;

const HF_HINT = "Expected a Hugging Face tokenizer.json (as tokenizers' Tokenizer.save writes it)";

/** tokenizer_config.json next to a tokenizer.json, when there is one (its BOS/EOS names are checked). */
async function tokenizerConfigNear(path: string): Promise<Record<string, unknown> | undefined> {
  const near = pathModule().join(pathModule().dirname(path), "tokenizer_config.json");
  if (!isFileSync(near)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await readFile(near)));
  } catch (e) {
    throw new FormatError(near, `not valid JSON (${(e as Error).message})`, "Expected tokenizer_config.json");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new FormatError(near, "expected a JSON object", "Expected tokenizer_config.json");
  }
  return json as Record<string, unknown>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A special token's text as tokenizer_config.json gives it: a string or {content}. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isRecord(v) && typeof v.content === "string") return v.content;
  return undefined;
}

/** Decoding state of one stream: a window of ids decoded twice per token, as text-generation-inference does. */
class HfStream {
  ids: number[] = [];
  prefix = 0;
  read = 0;
  constructor(readonly decodeIds: (ids: number[]) => string) {}
  /** The ids as context only: their text is not emitted (the stream continues after them). */
  context(ids: number[]): void {
    this.ids = ids.slice();
    this.prefix = 0;
    this.read = ids.length;
  }
  #text(from: number, to: number): string {
    return to > from ? this.decodeIds(this.ids.slice(from, to)) : "";
  }
  push(id: number): string {
    this.ids.push(id);
    const before = this.#text(this.prefix, this.read);
    const after = this.#text(this.prefix, this.ids.length);
    // A window ending inside a UTF-8 character decodes to U+FFFD at the end: wait for the rest.
    if (after.length <= before.length || after.endsWith("\uFFFD")) return "";
    this.prefix = this.read;
    this.read = this.ids.length;
    return after.slice(before.length);
  }
  /** Whatever is held back (an incomplete character), as the replacement characters it decodes to. */
  flush(): string {
    const before = this.#text(this.prefix, this.read);
    const after = this.#text(this.prefix, this.ids.length);
    this.prefix = this.read = this.ids.length;
    return after.length > before.length ? after.slice(before.length) : "";
  }
}

/**
 * A Hugging Face tokenizer.json, run by `@huggingface/tokenizers`. Encoding adds no special tokens unless
 * asked; BOS must be token 1 and EOS token 2 (Llama 1/2 vocabularies; others are refused by name).
 *
 * @example
 * ```ts
 * import { HfTokenizer, Llama2cTokenizer } from "./tokenizer.ts";
 * import { tokenizerJsonFromLlama2c } from "./hf_tokenizer.ts";
 * const tok512 = await Llama2cTokenizer.load("../shared/data/tok512.bin", 512);
 * const hf = HfTokenizer.parse(new TextEncoder().encode(tokenizerJsonFromLlama2c(tok512)), 512);
 * hf.encode("Once upon a time"); // [403, 407, 261, 378], as tok512.encode gives
 * hf.decode([1, 403, 407]); // "Once upon"
 * ```
 */
export class HfTokenizer extends Tokenizer {
  /** Always "hf". */
  readonly kind: TokenizerKind = "hf";
  /** The tokenizer.json bytes, unchanged. */
  readonly bytes: Uint8Array;
  readonly #tok: HfLibraryTokenizer;
  readonly #size: number;

  private constructor(bytes: Uint8Array, tok: HfLibraryTokenizer, size: number) {
    super();
    this.bytes = bytes;
    this.#tok = tok;
    this.#size = size;
  }

  /**
   * Parses tokenizer.json bytes for a model of `vocabSize` tokens (every id must be below it; a model may
   * have more rows than the tokenizer has tokens). `config`: tokenizer_config.json, whose bos_token and
   * eos_token, when given, must be tokens 1 and 2. Malformed or unusable files are FormatErrors.
   */
  static override parse(
    bytes: Uint8Array,
    vocabSize: number,
    path = "tokenizer.json",
    config: Record<string, unknown> = {},
  ): HfTokenizer {
    const fail = (problem: string) => new FormatError(path, problem, HF_HINT);
    if (!Number.isInteger(vocabSize) || vocabSize < 1) {
      throw new RangeError(
        `HfTokenizer.parse: expected vocabSize to be a positive integer, found ${vocabSize}`,
      );
    }
    if (bytes.byteLength > MAX_TOKENIZER_JSON_BYTES) {
      throw fail(`file is ${bytes.byteLength} bytes, beyond the limit of ${MAX_TOKENIZER_JSON_BYTES}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (e) {
      throw fail(`not valid UTF-8 JSON (${(e as Error).message})`);
    }
    if (!isRecord(json)) throw fail("expected a JSON object");
    const model = json.model;
    if (!isRecord(model) || typeof model.type !== "string") {
      throw fail('expected a "model" object with a string "type" (BPE, Unigram, WordPiece, …)');
    }
    const added = json.added_tokens ?? [];
    if (!Array.isArray(added) || !added.every((t) => isRecord(t) && typeof t.content === "string")) {
      throw fail('expected "added_tokens" to be an array of {id, content, …}');
    }
    // Every id below the model's vocabulary, checked before the library builds its tables from them.
    const ids: number[] = added.map((t) => t.id as number);
    if (Array.isArray(model.vocab)) ids.push(model.vocab.length - 1);
    else if (isRecord(model.vocab)) { for (const id of Object.values(model.vocab)) ids.push(id as number); }
    else throw fail('expected "model.vocab" to be an object (token → id) or an array');
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) {
        throw fail(`token id ${id === undefined ? "(missing)" : JSON.stringify(id)} is not an integer >= 0`);
      }
      if (id >= vocabSize) {
        throw fail(
          `token id ${id} is outside the model's vocabulary of ${vocabSize} tokens (embedding rows)`,
        );
      }
    }
    let tok: HfLibraryTokenizer;
    try {
      tok = new HfLibraryTokenizer({ ...json, added_tokens: added }, {
        ...config,
        clean_up_tokenization_spaces: false, // the text exactly as the tokens spell it, as llama2.c decodes
      });
      // A probe through every stage, so that a file the library accepts but cannot run fails here.
      tok.decode(tok.encode("Hello, world! 123 é\n", { add_special_tokens: false }).ids.concat(0));
    } catch (e) {
      // The library's own errors say what it met; an engine error from inside it (a field missing or of
      // another type) only that the file is malformed. The original stays as the cause.
      const engine = e instanceof TypeError || e instanceof RangeError;
      const why = engine
        ? "a field is missing or has the wrong type"
        : String((e as Error).message).replaceAll("undefined", "(missing)");
      throw Object.assign(fail(`@huggingface/tokenizers cannot run it: ${why}`), { cause: e });
    }
    const id = (text: string | undefined) => text === undefined ? undefined : tok.token_to_id(text);
    const template = isRecord(json.post_processor) && Array.isArray(json.post_processor.single)
      ? json.post_processor.single[0]
      : undefined;
    const templateBos = isRecord(template) && isRecord(template.SpecialToken)
      ? tokenText(template.SpecialToken.id)
      : undefined;
    const bosText = tokenText(config.bos_token) ?? templateBos ?? "<s>";
    const eosText = tokenText(config.eos_token) ?? "</s>";
    const bos = id(bosText), eos = id(eosText);
    if (bos !== BOS || eos !== EOS) {
      throw fail(
        `BOS ${JSON.stringify(bosText)} is token ${bos ?? "(none)"} and EOS ${JSON.stringify(eosText)} is ` +
          `token ${
            eos ?? "(none)"
          }; the pipeline needs BOS = ${BOS} and EOS = ${EOS} (Llama 1/2 vocabularies)`,
      );
    }
    let size = 0;
    for (const v of tok.get_vocab(true).values()) size = Math.max(size, v + 1);
    return new HfTokenizer(bytes, tok, size);
  }

  /** Loads a tokenizer.json (and the tokenizer_config.json next to it, when there is one). */
  static override async load(path: string, vocabSize: number): Promise<HfTokenizer> {
    const bytes = await readFileOrThrow(path, "Tokenizer");
    return HfTokenizer.parse(bytes, vocabSize, path, await tokenizerConfigNear(path));
  }

  /** Number of tokens: the largest id + 1 (added tokens included). */
  get vocabSize(): number {
    return this.#size;
  }

  /** Token ids of `text` (no special tokens unless `options` asks for BOS or EOS). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = text.length ? this.#tok.encode(text, { add_special_tokens: false }).ids : [];
    if (options.bos) ids.unshift(BOS);
    if (options.eos) ids.push(EOS);
    return ids;
  }

  #stream(prev: number): { push: (id: number) => string; flush: () => string } {
    const s = new HfStream((ids) => this.#tok.decode(ids, { skip_special_tokens: false }));
    // BOS starts a text (the decoder drops the first token's leading space); any other id is context.
    if (prev !== BOS) s.context([this.#checked(prev)]);
    return {
      push: (id: number) => {
        if (this.#checked(id) === BOS) return s.context([]), "";
        if (id === EOS) return s.context([EOS]), "";
        return s.push(id);
      },
      flush: () => s.flush(),
    };
  }

  #checked(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.#size) {
      throw new RangeError(`Token id ${id} is outside the vocabulary 0..${this.#size - 1}`);
    }
    return id;
  }

  /** Text of a token sequence that follows `prev` (BOS/EOS produce no text). */
  decode(ids: number[], prev: number = BOS): string {
    const s = this.#stream(prev);
    let out = "";
    for (const id of ids) out += s.push(id);
    return out + s.flush();
  }

  /** A streaming decoder: text as soon as it forms whole characters. */
  decoder(prev: number = BOS): (id: number) => string {
    const s = this.#stream(prev);
    return (id: number) => s.push(id);
  }
}
