// Token embedding launchers: the gather of table rows into the residual stream (WebGpuOps.embedding
// delegates here) and its backward, a scatter-add of gradient rows into the table gradient without
// atomics: the host knows the token ids, so it buckets them (bucketTokenIds), uploads the buckets
// (uploadTokenBuckets), and one workgroup column per distinct id sums its rows in a fixed order.
//
// Dimension legend: T tokens (N = B·T rows of a batch of windows), D model width, V vocabulary,
// U distinct token ids among the N.

import { createStorageBuffer, type GpuContext } from "../device.ts";
import { checkInt, type Dispatcher, type GpuView, MAX_GRID, offsetOf, strideOf } from "../dispatch.ts";
import { KERNELS } from "../kernels.gen.ts";
import { compileJobs, type JobOptions, type KernelJob, type StepUniform, WG } from "./common.ts";

/** Element type of an embedding table: f32, or fp16 packed two per u32 word (low half first). */
export type EmbeddingDtype = "f32" | "f16";

/** Arguments of {@link EmbeddingOps.forward} (WebGpuOps.embedding). */
export interface EmbeddingArgs {
  /** T = step.tokens rows are gathered (a GpuStep; pos0 unused). */
  step: StepUniform;
  /** (T) token ids, u32. An id ≥ vocab yields a zero row: validate ids where they are written. */
  ids: GpuView;
  /** (V, D) row-major; `offset` in words, word-aligned for f16. Stride is always D. */
  table: GpuView;
  dtype?: EmbeddingDtype;
  vocab: number;
  dim: number;
  /** (T, D) output rows. */
  out: GpuView;
}

/**
 * Token ids grouped by value, for the embedding backward: bucket u gathers the rows
 * rows[starts[u] .. starts[u + 1]) whose token is ids[u].
 */
export interface TokenBuckets {
  /** (U) the distinct ids, ascending. */
  ids: Uint32Array;
  /** (U + 1) bucket boundaries into `rows`; starts[0] = 0, starts[U] = N. */
  starts: Uint32Array;
  /** (N) row indices 0..N−1 grouped by id, ascending within a bucket (a deterministic summation order). */
  rows: Uint32Array;
}

/** Buckets uploaded by {@link uploadTokenBuckets}: where they live and their sizes. */
export interface GpuTokenBuckets {
  /** The words [ids (U) | starts (U + 1) | rows (N)] from `view`'s offset. */
  view: GpuView;
  /** U, the distinct ids. */
  unique: number;
  /** N, the gradient rows. */
  rows: number;
}

/** Arguments of {@link EmbeddingOps.backward}. */
export interface EmbeddingBackwardArgs {
  /** The token ids of the N rows of dOut, bucketed and uploaded. */
  buckets: GpuTokenBuckets;
  /** (N, D) gradient of the gathered rows. */
  dOut: GpuView;
  /** (V, D) gradient of the table (f32; any row stride ≥ D); rows of absent ids are left as they are. */
  dTable: GpuView;
  vocab: number;
  dim: number;
  /** Add into dTable (default true) rather than overwrite the rows of the ids present. */
  accumulate?: boolean;
}

/** Options of {@link EmbeddingOps}. */
export interface EmbeddingOptions {
  /**
   * Cap on one storage binding of an embedding table, in bytes (default the adapter's
   * maxStorageBufferBindingSize); lower it to exercise the split-table path on small tables.
   */
  maxTableBindingBytes?: number;
}

/** Which pipelines {@link EmbeddingOps.prepare} compiles. */
export interface EmbeddingJobOptions extends JobOptions {
  /** Table element types of the inference gather (default ["f32"]). */
  embeddingDtypes?: EmbeddingDtype[];
}

/**
 * Groups the positions of `tokens` (N ids, each < vocab) by id: the host half of the embedding backward.
 * O(N log N).
 *
 * @example
 * ```ts
 * import { bucketTokenIds } from "./embedding.ts";
 * const b = bucketTokenIds([5, 2, 5, 7], 8);
 * // b.ids = [2, 5, 7], b.starts = [0, 1, 3, 4], b.rows = [1, 0, 2, 3]
 * ```
 */
export function bucketTokenIds(tokens: ArrayLike<number>, vocab: number): TokenBuckets {
  const N = tokens.length;
  checkInt("bucketTokenIds", "vocab", vocab);
  // Keys id · N + row sort by id, then row: exact in f64 for any realistic V · N (< 2^53).
  const keys = new Float64Array(N);
  for (let t = 0; t < N; t++) {
    const id = tokens[t];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new RangeError(`bucketTokenIds: expected token ids in [0, ${vocab}), found ${id} at row ${t}`);
    }
    keys[t] = id * N + t;
  }
  keys.sort();
  const rows = new Uint32Array(N);
  const ids: number[] = [];
  const starts: number[] = [];
  for (let p = 0; p < N; p++) {
    const id = Math.floor(keys[p] / N);
    rows[p] = keys[p] - id * N;
    if (ids.length === 0 || ids[ids.length - 1] !== id) ids.push(id), starts.push(p);
  }
  starts.push(N);
  return { ids: Uint32Array.from(ids), starts: Uint32Array.from(starts), rows };
}

/**
 * Words the buckets of N rows can take at most: ids (U) + starts (U + 1) + rows (N) with U ≤ N, so 3N + 1.
 * The size of a reusable upload target.
 */
export function maxTokenBucketWords(rows: number): number {
  return 3 * rows + 1;
}

/**
 * Uploads buckets as the words [ids | starts | rows]: into `target` with queue.writeBuffer (steady
 * state: reuse one buffer of {@link maxTokenBucketWords} words), or into a new buffer the caller owns.
 */
export function uploadTokenBuckets(
  ctx: GpuContext,
  buckets: TokenBuckets,
  target?: GpuView,
): GpuTokenBuckets {
  const U = buckets.ids.length, N = buckets.rows.length;
  if (buckets.starts.length !== U + 1 || buckets.starts[U] !== N) {
    throw new RangeError(
      `uploadTokenBuckets: expected ${
        U + 1
      } starts ending at ${N}, found ${buckets.starts.length} ending at ` +
        `${buckets.starts[buckets.starts.length - 1]}`,
    );
  }
  const words = new Uint32Array(2 * U + 1 + N);
  words.set(buckets.ids, 0);
  words.set(buckets.starts, U);
  words.set(buckets.rows, 2 * U + 1);
  if (!target) {
    return { view: { buffer: createStorageBuffer(ctx, "embedding:buckets", words) }, unique: U, rows: N };
  }
  const offset = offsetOf(target);
  if ((offset + words.length) * 4 > target.buffer.size) {
    throw new RangeError(
      `uploadTokenBuckets: expected a buffer of at least ${(offset + words.length) * 4} bytes, found ` +
        `${target.buffer.size}`,
    );
  }
  ctx.device.queue.writeBuffer(target.buffer, offset * 4, words);
  return { view: { buffer: target.buffer, offset }, unique: U, rows: N };
}

/**
 * Embedding gather (inference and training forward) and scatter-add backward on one Dispatcher.
 *
 * @example
 * ```ts ignore
 * const emb = new EmbeddingOps(new Dispatcher(ctx, "train"));
 * await emb.prepare();
 * const buckets = uploadTokenBuckets(ctx, bucketTokenIds(tokens, V), { buffer: bucketBuffer });
 * emb.backward(pass, { buckets, dOut: dX, dTable: dE, vocab: V, dim: D });
 * ```
 */
export class EmbeddingOps {
  readonly d: Dispatcher;
  readonly #maxTableBinding: number;

  /** Launchers recording through `d`; compile them with {@link prepare}. */
  constructor(d: Dispatcher, options: EmbeddingOptions = {}) {
    this.d = d;
    const limit = d.ctx.limits.maxStorageBufferBindingSize;
    this.#maxTableBinding = Math.min(options.maxTableBindingBytes ?? limit, limit);
    if (this.#maxTableBinding < 256) {
      throw new RangeError(
        `EmbeddingOps: expected maxTableBindingBytes ≥ 256, found ${this.#maxTableBinding}`,
      );
    }
  }

  /** The pipelines `options` names. */
  jobs(options: EmbeddingJobOptions = {}): KernelJob[] {
    const jobs: KernelJob[] = [];
    if (options.inference ?? true) {
      for (const dtype of options.embeddingDtypes ?? ["f32"]) {
        jobs.push([`embedding:${dtype}`, KERNELS.embedding, { WG, F16: dtype === "f16" ? 1 : 0 }]);
      }
    }
    if (options.training ?? true) jobs.push(["embedding_backward", KERNELS.embedding_backward, { WG }]);
    return jobs;
  }

  /** Compiles the pipelines `options` names (default: all, f32 tables). */
  async prepare(options: EmbeddingJobOptions = {}): Promise<void> {
    await compileJobs(this.d, this.jobs(options));
  }

  /** x (T, D) = rows ids[t] of the table (V, D). Dispatch (ceil(D / 256), T). */
  forward(pass: GPUComputePassEncoder, args: EmbeddingArgs): void {
    const op = "embedding";
    const { step, ids, table, vocab: V, dim: D, out } = args;
    const dtype = args.dtype ?? "f32";
    const T = step.tokens;
    const d = this.d;
    checkInt(op, "dim", D);
    checkInt(op, "vocab", V);
    if (dtype !== "f32" && dtype !== "f16") {
      throw new TypeError(`${op}: expected dtype "f32" or "f16", found ${JSON.stringify(dtype)}`);
    }
    d.distinct(op, [out], [ids, table]);
    const idsB = d.bind(op, "ids", ids, offsetOf(ids) + T);
    const outStride = strideOf(out, D);
    const outB = d.bind(op, "out", out, offsetOf(out) + (T - 1) * outStride + D);
    // The table may exceed one binding: up to four bindings of chunkWords words each.
    const perWord = dtype === "f16" ? 2 : 1;
    const align = d.ctx.limits.minStorageBufferOffsetAlignment;
    const startBytes = offsetOf(table) * 4;
    const base = Math.floor(startBytes / align) * align;
    const lead = (startBytes - base) / 4; // words before E[0, 0] in chunk 0
    const totalWords = lead + Math.ceil((V * D) / perWord);
    if (lead * perWord + V * D >= 2 ** 32) {
      throw new RangeError(`${op}: a table of ${V} × ${D} exceeds 2^32 elements`);
    }
    const need = base + totalWords * 4;
    if (need > table.buffer.size) {
      const what = `(${V}, ${D}) ${dtype} at word offset ${offsetOf(table)}`;
      throw new RangeError(
        `${op}: expected a table buffer of at least ${need} bytes for ${what}, found ${table.buffer.size}`,
      );
    }
    const chunkWords = Math.floor(this.#maxTableBinding / 256) * 64;
    const chunks = Math.ceil(totalWords / chunkWords);
    if (chunks > 4) {
      const hint = dtype === "f32" ? "store it as f16 or split the vocabulary" : "split the vocabulary";
      throw new RangeError(
        `${op}: the (${V}, ${D}) ${dtype} table needs ${chunks} bindings of ${chunkWords * 4} bytes, ` +
          `at most 4 are supported; ${hint}`,
      );
    }
    const tableB: GPUBufferBinding[] = [];
    for (let c = 0; c < 4; c++) {
      const cc = c < chunks ? c : 0;
      const offset = base + cc * chunkWords * 4;
      tableB.push({
        buffer: table.buffer,
        offset,
        size: Math.min(chunkWords, totalWords - cc * chunkWords) * 4,
      });
    }
    const params = new Uint32Array([D, V, idsB.shift, lead * perWord, chunkWords, outB.shift, outStride, 0]);
    checkInt(op, "T", T, 1, MAX_GRID);
    const key = `embedding:${dtype}`;
    d.pipeline(key, `compile it first: await prepare({ embeddingDtypes: ["${dtype}"] })`);
    d.launch(
      pass,
      key,
      params,
      [{ buffer: step.buffer }, idsB.binding, ...tableB, outB.binding],
      Math.ceil(D / WG),
      T,
    );
  }

  /**
   * dTable[id] (+)= Σ of the dOut rows whose token is id, for every distinct id of the buckets: one
   * workgroup per (256 columns, id), summing that id's rows in ascending order (deterministic, no
   * atomics). Dispatch (ceil(D / 256), min(U, 65535), ceil(U / 65535)).
   */
  backward(pass: GPUComputePassEncoder, args: EmbeddingBackwardArgs): void {
    const op = "embeddingBackward";
    const { buckets, dOut, dTable, vocab: V, dim: D } = args;
    const { unique: U, rows: N } = buckets;
    checkInt(op, "dim", D);
    checkInt(op, "vocab", V);
    checkInt(op, "buckets.rows", N);
    checkInt(op, "buckets.unique", U, 1, Math.min(N, V));
    const d = this.d;
    d.distinct(op, [dTable], [buckets.view, dOut]);
    const bB = d.bind(op, "buckets", buckets.view, offsetOf(buckets.view) + 2 * U + 1 + N);
    const gB = d.bindRows(op, "dOut", dOut, N, D);
    const eB = d.bindRows(op, "dTable", dTable, V, D);
    const params = new Uint32Array([
      D,
      U,
      bB.shift,
      bB.shift + U,
      bB.shift + 2 * U + 1,
      gB.shift,
      strideOf(dOut, D),
      eB.shift,
      strideOf(dTable, D),
      (args.accumulate ?? true) ? 1 : 0,
      0,
      0,
    ]);
    const y = Math.min(U, MAX_GRID);
    checkInt(op, "dim / 256", Math.ceil(D / WG), 1, MAX_GRID);
    d.pipeline("embedding_backward", "compile it first: await prepare()");
    d.launch(
      pass,
      "embedding_backward",
      params,
      [bB.binding, gB.binding, eB.binding],
      Math.ceil(D / WG),
      y,
      Math.ceil(U / y),
    );
  }
}
