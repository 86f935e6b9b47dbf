// The one definition of the packed sign layout (METHOD.md §8); every kernel and file format follows it.
//
// Layout of one binary plane B (out, in) with entries in {-1,+1}:
//   row-major u32 words, shape (out, wordsPerRow(in)) with wordsPerRow(in) = ceil(in / 32);
//   bit j (value 1 << j) of word w in row r holds column 32*w + j; bit 1 means +1, bit 0 means -1;
//   padding bits (columns >= in in the last word) are 0, and kernels pad x with zeros there, so a
//   padding bit contributes -0 = 0.
// A k-path layer stores its planes one after another: (k, out, wordsPerRow(in)).

/**
 * Number of u32 words per packed row of `cols` columns.
 *
 * @example
 * ```ts
 * import { wordsPerRow } from "./bitpack.ts";
 * wordsPerRow(64); // 2
 * wordsPerRow(172); // 6 (the last word holds 12 columns and 20 zero padding bits)
 * ```
 */
export function wordsPerRow(cols: number): number {
  return Math.ceil(cols / 32);
}

/**
 * Packs the signs of a row-major matrix (rows, cols): sign(0) = +1 (METHOD.md §2).
 * Returns (rows, wordsPerRow(cols)) u32 words.
 *
 * @example
 * ```ts
 * import { packSigns } from "./bitpack.ts";
 * packSigns(new Float32Array([0.5, -1, 0, -2]), 1, 4); // [0b0101] = [5]: bit j is column j, 1 = +1
 * ```
 */
export function packSigns(m: Float32Array, rows: number, cols: number): Uint32Array {
  if (m.length !== rows * cols) {
    throw new RangeError(`packSigns: expected ${rows}x${cols}=${rows * cols} values, found ${m.length}`);
  }
  const wpr = wordsPerRow(cols);
  const out = new Uint32Array(rows * wpr);
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    const dst = r * wpr;
    for (let c = 0; c < cols; c++) {
      if (m[src + c] >= 0) out[dst + (c >>> 5)] |= 1 << (c & 31);
    }
  }
  return out;
}

/**
 * Expands packed signs (rows, wordsPerRow(cols)) back to a (rows, cols) matrix of ±1.
 *
 * @example
 * ```ts
 * import { unpackSigns } from "./bitpack.ts";
 * unpackSigns(new Uint32Array([5]), 1, 4); // [1, -1, 1, -1]
 * ```
 */
export function unpackSigns(bits: Uint32Array, rows: number, cols: number): Float32Array {
  const wpr = wordsPerRow(cols);
  if (bits.length !== rows * wpr) {
    throw new RangeError(
      `unpackSigns: expected ${rows * wpr} words for ${rows}x${cols}, found ${bits.length}`,
    );
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      out[r * cols + c] = (bits[r * wpr + (c >>> 5)] >>> (c & 31)) & 1 ? 1 : -1;
    }
  }
  return out;
}
