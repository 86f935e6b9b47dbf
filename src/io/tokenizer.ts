// The llama2.c tokenizer: `tokenizer.bin` parsing, `encode` exactly as llama2.c's (dummy prefix, UTF-8
// code points, byte fallback, highest-score merge first, leftmost on ties) in O(n log n) with a heap,
// and `decode` with byte-fallback tokens and the leading space after BOS.
//
// tokenizer.bin: int32 max_token_length, then per token: f32 score, int32 length, `length` bytes.

import { FormatError, readFileOrThrow } from "./errors.ts";
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

/**
 * A llama2.c vocabulary with scores: encodes text exactly as llama2.c does and decodes ids back.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "./tokenizer.ts";
 * const tok = await Tokenizer.load("../shared/data/tok512.bin", 512);
 * const ids = tok.encode("Once upon a time", { bos: true }); // [1, …]
 * tok.decode(ids); // "Once upon a time"
 * ```
 */
export class Tokenizer {
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
  static parse(bytes: Uint8Array, vocabSize: number, path = "tokenizer"): Tokenizer {
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
    return new Tokenizer(bytes, pieces, new Float32Array(scores), maxTokenLength);
  }

  /** Loads tokenizer.bin from disk. */
  static async load(path: string, vocabSize: number): Promise<Tokenizer> {
    return Tokenizer.parse(await readFileOrThrow(path, "Tokenizer"), vocabSize, path);
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
  encode(text: string, options: { bos?: boolean; eos?: boolean; stats?: EncodeStats } = {}): number[] {
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

function concatKey(tok: Tokenizer, a: number, b: number): string {
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
function mergeWithHeap(tok: Tokenizer, tokens: number[], stats?: EncodeStats): number[] {
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
export function encodeSlow(tok: Tokenizer, text: string): number[] {
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
