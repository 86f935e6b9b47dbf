// Rotary embedding launchers: the inference rotation at the chunk positions of a step uniform
// (WebGpuOps.rope delegates here), the training rotation over a batch of windows, and its backward (the
// inverse rotation); plus the rotary frequency tables all rotary kernels read. CPU references:
// ropeForward (src/model/ops.ts), ropeBackward (ops_backward.ts).
//
// Dimension legend: T tokens of a chunk or window, B windows, R = B·T rows, hs head size, width = heads·hs.

import { createStorageBuffer } from "../device.ts";
import { checkInt, type Dispatcher, type GpuView, MAX_GRID, offsetOf, strideOf } from "../dispatch.ts";
import { KERNELS } from "../kernels.gen.ts";
import { compileJobs, type JobOptions, type KernelJob, type StepUniform, WG } from "./common.ts";

/** Arguments of {@link RopeOps.forward} (WebGpuOps.rope). */
export interface RopeArgs {
  /** The chunk's positions: row t sits at pos0 + t, t < T (a GpuStep). */
  step: StepUniform;
  /** (T, qWidth) queries, rotated in place. */
  q: GpuView;
  qWidth: number;
  /** (T, kWidth) keys, rotated in place (one dispatch with q when they share a buffer). */
  k?: GpuView;
  kWidth?: number;
  headSize: number;
  /** Rotary base (10000 in llama2.c). */
  theta: number;
}

/** Arguments of {@link RopeOps.forwardTrain} and {@link RopeOps.backward}. */
export interface RopeTrainArgs {
  /** (R, qWidth) queries (or their gradient), rotated in place. */
  q: GpuView;
  qWidth: number;
  /** (R, kWidth) keys (or their gradient), rotated in place (one dispatch with q when they share a buffer). */
  k?: GpuView;
  kWidth?: number;
  /** R = B·window rows: B windows of `window` consecutive rows. */
  rows: number;
  /** Rows per window: row t sits at position pos0 + (t mod window). Default: rows (one window). */
  window?: number;
  /** Position of each window's first row (default 0). */
  pos0?: number;
  headSize: number;
  /** Rotary base (10000 in llama2.c). */
  theta: number;
}

/** Truncates f > 0 to 8 significant bits (so that pos · result is exact in f32 for pos < 2^16). */
function top8Bits(f: number): number {
  if (f === 0) return 0;
  let scale = 2 ** (7 - Math.floor(Math.log2(f)));
  let k = Math.floor(f * scale);
  while (k >= 256) k = Math.floor(f * (scale /= 2));
  while (k < 128) k = Math.floor(f * (scale *= 2));
  return k / scale;
}

/**
 * Rotary frequencies in turns per position, f_j = theta^(−2j/hs) / 2π for j < hs/2, each split into
 * (a, b, c, 0) with a and b of 8 significant bits and c = f − a − b rounded to f32 (see rope.wgsl).
 *
 * @example
 * ```ts
 * import { ropeFrequencyTable } from "./rope.ts";
 * const table = ropeFrequencyTable(4, 10000); // 2 pairs × vec4
 * console.log(table.length); // 8
 * ```
 */
export function ropeFrequencyTable(hs: number, theta: number): Float32Array {
  const out = new Float32Array(2 * hs);
  for (let j = 0; j < hs / 2; j++) {
    const f = 1 / Math.pow(theta, (2 * j) / hs) / (2 * Math.PI);
    const a = top8Bits(f);
    const b = top8Bits(f - a);
    out.set([a, b, f - a - b, 0], 4 * j);
  }
  return out;
}

interface Segment {
  view: GpuView;
  width: number;
}

/**
 * Rotary launchers on one Dispatcher, with a cache of frequency tables (one small buffer per head size
 * and base, freed by {@link dispose}).
 *
 * @example
 * ```ts ignore
 * const rope = new RopeOps(new Dispatcher(ctx, "train"));
 * await rope.prepare();
 * rope.forwardTrain(pass, { q, qWidth: D, k, kWidth: kvD, rows: B * T, window: T, headSize: hs, theta });
 * rope.backward(pass, { q: dQ, qWidth: D, k: dK, kWidth: kvD, rows: B * T, window: T, headSize: hs, theta });
 * ```
 */
export class RopeOps {
  readonly d: Dispatcher;
  readonly #tables = new Map<string, GPUBuffer>();

  /** Launchers recording through `d`; compile them with {@link prepare}. */
  constructor(d: Dispatcher) {
    this.d = d;
  }

  /** The pipelines `options` names. */
  jobs(options: JobOptions = {}): KernelJob[] {
    const jobs: KernelJob[] = [];
    if (options.inference ?? true) jobs.push(["rope", KERNELS.rope, { WG }]);
    if (options.training ?? true) jobs.push(["rope_train", KERNELS.rope_train, { WG }]);
    return jobs;
  }

  /** Compiles the pipelines `options` names (default: all). */
  async prepare(options: JobOptions = {}): Promise<void> {
    await compileJobs(this.d, this.jobs(options));
  }

  /** The frequency table (hs / 2 vec4, see {@link ropeFrequencyTable}) for `hs` and `theta`, cached. */
  frequencies(hs: number, theta: number): GPUBuffer {
    const key = `${hs}|${theta}`;
    let b = this.#tables.get(key);
    if (!b) {
      b = createStorageBuffer(this.d.ctx, `rope:freqs:hs${hs}:theta${theta}`, ropeFrequencyTable(hs, theta));
      this.#tables.set(key, b);
    }
    return b;
  }

  /** Rotary embedding in place on q (T, qWidth) and k (T, kWidth) at positions pos0 + t of `step`. */
  forward(pass: GPUComputePassEncoder, args: RopeArgs): void {
    const op = "rope";
    const { step, q, qWidth, k, headSize: hs, theta } = args;
    const segs = this.#segments(op, q, qWidth, k, args.kWidth, hs, theta);
    const freqs = this.frequencies(hs, theta);
    for (const group of this.#groups(segs)) {
      const T = step.tokens;
      const { binding, seg } = this.#bindSegments(op, group, T);
      const params = new Uint32Array([hs / 2, ...seg(0), ...seg(1), 0]);
      const resources = [{ buffer: step.buffer }, { buffer: freqs }, binding];
      this.#launchPairs(pass, "rope", params, resources, T, group);
    }
  }

  /**
   * The training rotation in place on q (R, qWidth) and k (R, kWidth): row t at position
   * pos0 + (t mod window). One thread per rotated pair.
   */
  forwardTrain(pass: GPUComputePassEncoder, args: RopeTrainArgs): void {
    this.#train("ropeTrain", pass, args, 1);
  }

  /**
   * Backward of {@link forwardTrain}: the inverse rotation (by −angle) in place on the gradients
   * dQ (R, qWidth) and dK (R, kWidth), passed as `q` and `k`.
   */
  backward(pass: GPUComputePassEncoder, args: RopeTrainArgs): void {
    this.#train("ropeBackward", pass, args, -1);
  }

  /** Frees the frequency tables. */
  dispose(): void {
    for (const b of this.#tables.values()) b.destroy();
    this.#tables.clear();
  }

  #train(op: string, pass: GPUComputePassEncoder, args: RopeTrainArgs, sign: 1 | -1): void {
    const { q, qWidth, k, rows, headSize: hs, theta } = args;
    const window = args.window ?? rows;
    const pos0 = args.pos0 ?? 0;
    checkInt(op, "rows", rows);
    checkInt(op, "window", window);
    if (rows % window !== 0) {
      throw new RangeError(`${op}: expected rows to be a multiple of window ${window}, found ${rows}`);
    }
    checkInt(op, "pos0", pos0, 0, 2 ** 24 - window);
    const segs = this.#segments(op, q, qWidth, k, args.kWidth, hs, theta);
    const freqs = this.frequencies(hs, theta);
    for (const group of this.#groups(segs)) {
      const { binding, seg } = this.#bindSegments(op, group, rows);
      const params = new Uint32Array([hs / 2, ...seg(0), ...seg(1), rows, window, pos0, 0, 0]);
      new Float32Array(params.buffer)[10] = sign;
      this.#launchPairs(pass, "rope_train", params, [{ buffer: freqs }, binding], rows, group);
    }
  }

  #segments(
    op: string,
    q: GpuView,
    qWidth: number,
    k: GpuView | undefined,
    kWidth: number | undefined,
    hs: number,
    theta: number,
  ): Segment[] {
    checkInt(op, "headSize", hs, 2);
    if (hs % 2 !== 0) throw new RangeError(`${op}: expected an even headSize, found ${hs}`);
    if (!(theta > 1)) throw new RangeError(`${op}: expected theta > 1, found ${theta}`);
    const segs: Segment[] = [{ view: q, width: qWidth }];
    if (k) segs.push({ view: k, width: kWidth ?? NaN });
    for (const s of segs) {
      checkInt(op, "width", s.width);
      if (s.width % hs !== 0) {
        throw new RangeError(`${op}: expected a width divisible by headSize ${hs}, found ${s.width}`);
      }
    }
    return segs;
  }

  /** One dispatch for q and k in one buffer (one read-write binding), else one each. */
  #groups(segs: Segment[]): Segment[][] {
    return segs.length > 1 && segs[1].view.buffer === segs[0].view.buffer ? [segs] : segs.map((s) => [s]);
  }

  /** Binds the segments of one buffer as one binding; seg(i) = [pairs, offset, stride] of segment i. */
  #bindSegments(op: string, segs: Segment[], rows: number) {
    const buffer = segs[0].view.buffer;
    let first = Infinity, end = 0;
    for (const s of segs) {
      first = Math.min(first, offsetOf(s.view));
      end = Math.max(end, offsetOf(s.view) + (rows - 1) * strideOf(s.view, s.width) + s.width);
    }
    const xB = this.d.bind(op, segs.length > 1 ? "q/k" : "x", { buffer, offset: first }, end);
    const seg = (i: number) => {
      const s = segs[i];
      if (!s) return [0, 0, 0];
      return [s.width / 2, offsetOf(s.view) - first + xB.shift, strideOf(s.view, s.width)];
    };
    return { binding: xB.binding, seg };
  }

  #launchPairs(
    pass: GPUComputePassEncoder,
    key: string,
    params: Uint32Array,
    resources: GPUBufferBinding[],
    rows: number,
    segs: Segment[],
  ): void {
    const pairs = rows * segs.reduce((n, s) => n + s.width / 2, 0);
    const groups = Math.ceil(pairs / WG);
    const gx = Math.min(groups, MAX_GRID);
    this.d.pipeline(key, "compile it first: await prepare()");
    this.d.launch(pass, key, params, resources, gx, Math.ceil(groups / gx));
  }
}
