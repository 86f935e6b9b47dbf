// Training data: text files tokenized into fixed-length windows, a held-out tail kept out of training,
// and a seeded order of windows per epoch, so step s always sees the same batch (which is what makes
// --resume exact without saving any random state).
//
// Dimension legend: S window length in tokens (seq), B windows per step (batch).

import { BOS } from "../io/tokenizer.ts";
import { Rng } from "../util/rng.ts";

/**
 * Splits text at a paragraph boundary so that about `fraction` of its characters (the end) are held back:
 * the training part is text[0, cut), the held-out part text[cut, end). The cut is the first blank line at
 * or after (1 − fraction) of the length (or the raw position when there is none). fraction 0 holds nothing.
 *
 * @example
 * ```ts
 * import { splitHoldout } from "./data.ts";
 * splitHoldout("one\n\ntwo\n\nthree", 0.3); // { train: "one\n\ntwo", heldOut: "three" }
 * ```
 */
export function splitHoldout(text: string, fraction: number): { train: string; heldOut: string } {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new RangeError(`splitHoldout: expected a held-out fraction in [0, 1), found ${fraction}`);
  }
  if (fraction === 0) return { train: text, heldOut: "" };
  const at = Math.floor(text.length * (1 - fraction));
  const blank = text.indexOf("\n\n", at);
  if (blank < 0) return { train: text.slice(0, at), heldOut: text.slice(at) };
  let start = blank;
  while (start < text.length && text[start] === "\n") start++;
  return { train: text.slice(0, blank), heldOut: text.slice(start) };
}

/**
 * Non-overlapping windows of S tokens over several token streams (each stream starts with BOS), and the
 * seeded batches a training run reads from them.
 *
 * With `shift`, every epoch after the first lays its grid of windows at a seeded offset into each stream
 * (epoch 0 keeps offset 0), wrapping round to the stream's start so every epoch has the same number of
 * windows. A token is then predicted from a different stretch of context in each epoch: on a few hundred
 * windows read five or more times, this is data augmentation the teacher's logits follow for free
 * (the student fits the exact windows it trained on far better than unseen text of the same difficulty).
 *
 * With `noise` p > 0, every epoch after the first also replaces each input token but the first with
 * probability p by a token drawn from the windows' own tokens (their unigram distribution), seeded by
 * (seed, window position in the run). Teacher and student read the same perturbed window, so the KL still
 * has an exact target: distillation on contexts the text does not contain, against memorizing the windows.
 *
 * @example
 * ```ts
 * import { WindowSet } from "./data.ts";
 * const w = WindowSet.fromStreams([{ name: "a", ids: [1, 5, 6, 7, 8, 9, 10] }, { name: "b", ids: [1, 4, 4] }], 3);
 * w.count; // 3: [1, 5, 6], [7, 8, 9] and [1, 4, 4] (a's remainder 10 is dropped)
 * w.batch(1, 0, 2).length; // 2 windows for step 0 with seed 1, the same on every run
 * ```
 */
export class WindowSet {
  /** (count, S) token ids of epoch 0's grid, window after window. */
  readonly tokens: Int32Array;
  /** Tokens per window S. */
  readonly seq: number;
  /** Number of windows (in every epoch). */
  readonly count: number;
  /** Whether epochs after the first shift their grid (see the class comment). */
  readonly shift: boolean;
  /** Probability that an epoch after the first replaces an input token (see the class comment). */
  readonly noise: number;
  /** The streams whole (remainders included), kept only with `shift`, for the shifted grids. */
  private readonly streams: Int32Array[];
  /** Windows of stream i in each epoch: floor(length / S). */
  private readonly perStream: number[];

  private constructor(tokens: Int32Array, seq: number, streams: Int32Array[], shift: boolean, noise: number) {
    this.tokens = tokens;
    this.seq = seq;
    this.count = tokens.length / seq;
    this.streams = streams;
    this.perStream = streams.map((s) => Math.floor(s.length / seq));
    this.shift = shift;
    this.noise = noise;
  }

  /**
   * Tokenizes each text (one BOS in front, as perplexity does) and cuts it into windows of `seq` tokens,
   * dropping each text's remainder. Throws when no text yields a whole window.
   */
  static fromTexts(
    texts: { name: string; text: string }[],
    encode: (t: string) => number[],
    seq: number,
    options: { shift?: boolean; noise?: number } = {},
  ): WindowSet {
    return WindowSet.fromStreams(
      texts.map(({ name, text }) => ({ name, ids: [BOS, ...encode(text)] })),
      seq,
      options,
    );
  }

  /**
   * Cuts token streams (each already starting with BOS, e.g. text sampled from the teacher) into windows
   * of `seq` tokens, dropping each stream's remainder. Throws when no stream yields a whole window.
   */
  static fromStreams(
    streams: { name: string; ids: ArrayLike<number> }[],
    seq: number,
    options: { shift?: boolean; noise?: number } = {},
  ): WindowSet {
    if (!Number.isInteger(seq) || seq < 2) {
      throw new RangeError(`WindowSet: expected a window length ≥ 2, found ${seq}`);
    }
    const noise = options.noise ?? 0;
    if (!(noise >= 0 && noise <= 0.5)) {
      throw new RangeError(`WindowSet: expected a token noise probability in [0, 0.5], found ${noise}`);
    }
    const short: string[] = [];
    let count = 0;
    for (const { name, ids } of streams) {
      const n = Math.floor(ids.length / seq);
      if (n === 0) short.push(`${name} (${ids.length} tokens)`);
      count += n;
    }
    if (count === 0) {
      throw new RangeError(
        `Training data: expected at least one window of ${seq} tokens, found only ${short.join(", ")}; ` +
          `give more text (--data) or a shorter --seq`,
      );
    }
    const tokens = new Int32Array(count * seq); // (count, S)
    let at = 0;
    for (const { ids } of streams) {
      const n = Math.floor(ids.length / seq);
      for (let i = 0; i < n * seq; i++) tokens[at++] = ids[i];
    }
    // Only shifted grids read the streams whole; without shift epoch 0's grid is all there is.
    const shift = options.shift === true;
    const kept = shift
      ? streams.filter(({ ids }) => ids.length >= seq).map(({ ids }) => Int32Array.from(ids))
      : [];
    return new WindowSet(tokens, seq, kept, shift, noise);
  }

  /** Window i (S) of epoch 0's grid, as a view. */
  window(i: number): Int32Array {
    return this.tokens.subarray(i * this.seq, (i + 1) * this.seq);
  }

  /** The grid offset of epoch e in tokens: 0 for epoch 0 or without `shift`, else seeded in [0, S). */
  epochOffset(seed: number, epoch: number): number {
    if (!this.shift || epoch === 0) return 0;
    const rng = new Rng((Math.imul(seed >>> 0, 0x27d4eb2f) ^ Math.imul(epoch + 1, 0x165667b1)) >>> 0);
    return rng.int(this.seq);
  }

  /** Window i (S) of the grid at `offset`: stream tokens offset + j·S … onwards, wrapping round. */
  shiftedWindow(i: number, offset: number): Int32Array {
    if (offset === 0) return this.window(i);
    let stream = 0;
    while (i >= this.perStream[stream]) i -= this.perStream[stream++];
    const ids = this.streams[stream];
    const out = new Int32Array(this.seq); // (S)
    let at = (offset + i * this.seq) % ids.length;
    for (let t = 0; t < this.seq; t++) {
      out[t] = ids[at];
      if (++at === ids.length) at = 0;
    }
    return out;
  }

  /** The order of windows in epoch e: a Fisher–Yates shuffle seeded by (seed, e). */
  epochOrder(seed: number, epoch: number): Int32Array {
    const order = new Int32Array(this.count);
    for (let i = 0; i < order.length; i++) order[i] = i;
    const rng = new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return order;
  }

  /**
   * The B windows of step s (0-based): positions s·B … s·B + B − 1 of the concatenated epoch orders.
   * A pure function of (seed, s, B), so a resumed run sees exactly the batches the first run would have.
   */
  batch(seed: number, step: number, batch: number): Int32Array[] {
    return this.span(seed, step * batch, batch);
  }

  /**
   * Windows `first` … `first + count − 1` of the run's stream (the concatenated epoch orders of `seed`), as
   * {@link batch} deals them: what a loop whose windows per step change (loop.ts's lateBatch) reads.
   * `clean`: the same windows without the token noise (the text as written: the targets of a hard-label loss).
   */
  span(seed: number, first: number, count: number, options: { clean?: boolean } = {}): Int32Array[] {
    const out: Int32Array[] = [];
    let cachedEpoch = -1;
    let order: Int32Array | undefined;
    let offset = 0;
    for (let j = 0; j < count; j++) {
      const pos = first + j;
      const epoch = Math.floor(pos / this.count);
      if (epoch !== cachedEpoch) {
        order = this.epochOrder(seed, epoch);
        offset = this.epochOffset(seed, epoch);
        cachedEpoch = epoch;
      }
      const w = this.shiftedWindow(order![pos % this.count], offset);
      out.push(epoch > 0 && this.noise > 0 && !options.clean ? this.perturbed(w, seed, pos) : w);
    }
    return out;
  }

  /**
   * A copy of window w (S) with each token but the first replaced, with probability `noise`, by the token
   * at a uniformly drawn position of epoch 0's grid; a pure function of (w, seed, pos).
   */
  perturbed(w: Int32Array, seed: number, pos: number): Int32Array {
    const rng = new Rng((Math.imul(seed >>> 0, 0x2c1b3c6d) ^ Math.imul(pos + 1, 0x297a2d39)) >>> 0);
    const out = Int32Array.from(w); // (S)
    for (let t = 1; t < out.length; t++) {
      if (rng.next() < this.noise) out[t] = this.tokens[rng.int(this.tokens.length)];
    }
    return out;
  }
}
