// The WebAssembly SIMD kernels (AssemblyScript in wasm/kernels.ts, embedded by scripts/build_wasm.ts) behind
// LinearLayer: dense fp32 and fp16-storage GEMV/GEMM, and the packed residual-binary product with T-MAC
// lookup tables: int8 tables read by i8x16.swizzle (fastest), int16 tables split into high and low bytes
// (two swizzles each; within 1e-4 of the reference), or f32 tables read by scalar loads (exact, slow).
//
// Layouts in this module's memory (all offsets 64-byte aligned):
//   dense fp32  W (out, in) f32 row-major, as in the parameter table
//   dense fp16  W (out, in) u16 bit patterns; the kernel wants x·2^56 and returns W·x·2^-56 (F16_X_SCALE)
//   packed i8   planes repacked (ceil(out/16), k, 4·ceil(in/32), 16) bytes: 16 rows' byte b side by side, so
//               one v128 holds 8 columns of 16 rows and each nibble indexes one 16-entry table; g (k, outPad)
//   packed f32  planes in the file layout (k, out, ceil(in/32)) u32 (METHOD.md §8); g (k, out)
//   tables      int8 (T, k, G, 16) or int16 as high and low bytes (T, k, G, 32), with f32 scales
//               (T, k, blocks); or f32 (T, k, G, 16); G = 8·ceil(in/32)
// Dimension legend: T tokens, in/out features, k sign planes, outPad = 16·ceil(out/16).
// With threads (WasmKernels.load), products large enough to repay waking the workers are split
// by rows (16-row tiles for the packed kernels); tables are built once by the calling thread.

import { decodeBase64 } from "./base64.ts";
import { WASM_BASE64, WASM_SHARED_BASE64 } from "./kernels.gen.ts";
import { type ScratchArg, WasmThreadPool } from "./threads.ts";
import { wordsPerRow } from "../../quant/bitpack.ts";
import { type ResidualBinaryLinear, validateResidualBinary } from "../../quant/residual_binary.ts";
import { checkInput, type LinearLayer } from "../../model/linear.ts";
import { type Int8Rows, validateInt8Rows } from "../../quant/int8_rows.ts";
import { toF16 } from "../../util/fp16.ts";

/** What the compiled module exports (byte offsets into its memory; see wasm/kernels.ts). */
interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  gemvF32(w: number, x: number, y: number, inF: number, T: number, ldy: number, r0: number, r1: number): void;
  gemvF16(w: number, x: number, y: number, inF: number, T: number, ldy: number, r0: number, r1: number): void;
  tablesF32(x: number, h: number, inF: number, k: number, T: number, xs: number, tables: number): void;
  tablesI8(
    x: number,
    h: number,
    inF: number,
    k: number,
    T: number,
    BW: number,
    xs: number,
    tables: number,
    scales: number,
    wide: number,
  ): void;
  repackI8(planes: number, out: number, inF: number, k: number, dst: number): void;
  gemmI8(
    wq: number,
    g: number,
    tables: number,
    scales: number,
    y: number,
    out: number,
    inF: number,
    k: number,
    T: number,
    BW: number,
    ldy: number,
    facc: number,
    tile0: number,
    tile1: number,
  ): void;
  gemmI16(
    wq: number,
    g: number,
    tables: number,
    scales: number,
    y: number,
    out: number,
    inF: number,
    k: number,
    T: number,
    BW: number,
    ldy: number,
    facc: number,
    tile0: number,
    tile1: number,
  ): void;
  quantX16(x: number, T: number, inF: number, inPad: number, xq: number, xs: number): void;
  gemvQ8(
    wq: number,
    scales: number,
    xq: number,
    xs: number,
    y: number,
    inPad: number,
    T: number,
    ldy: number,
    r0: number,
    r1: number,
  ): void;
  gemmF32Lut(
    planes: number,
    g: number,
    tables: number,
    y: number,
    out: number,
    inF: number,
    k: number,
    T: number,
    ldy: number,
    r0: number,
    r1: number,
  ): void;
}

/** The products a thread pool may run (row range appended). */
type ProductName = "gemvF32" | "gemvF16" | "gemvQ8" | "gemmI8" | "gemmI16" | "gemmF32Lut";
const PRODUCTS: ProductName[] = ["gemvF32", "gemvF16", "gemvQ8", "gemmI8", "gemmI16", "gemmF32Lut"];

/** x is scaled by this before the fp16 kernel, and y by it again after (see wasm/kernels.ts halvesLo). */
const F16_X_SCALE = 2 ** 56;
/** Tokens whose tables are built at once by a packed layer (bounds the table scratch). */
const TOKEN_CHUNK = 32;

/** Multiply-adds below which a product stays on the calling thread (waking workers costs ~10–50 µs). */
export const MIN_PARALLEL_WORK = 1 << 20;

let moduleBytes: Uint8Array<ArrayBuffer> | undefined;
let compiled: WebAssembly.Module | undefined;
let compiledShared: WebAssembly.Module | undefined;

function bytes(): Uint8Array<ArrayBuffer> {
  return moduleBytes ??= decodeBase64(WASM_BASE64);
}

/**
 * Whether this engine runs the kernels: WebAssembly with the fixed-width SIMD proposal (every current
 * browser, Deno and Node ≥ 16.4). Validates the embedded module itself, so a missing feature shows here.
 *
 * @example
 * ```ts
 * import { wasmSimdSupported } from "./kernels.ts";
 * typeof wasmSimdSupported(); // "boolean"
 * ```
 */
export function wasmSimdSupported(): boolean {
  try {
    return typeof WebAssembly === "object" && WebAssembly.validate(bytes());
  } catch {
    return false;
  }
}

/**
 * Which tables a packed layer multiplies with: "i8" (one swizzle per 4 columns × 16 rows; each entry rounded
 * to 1/254 of its block's largest), "i16" (two swizzles; 1/65534) or "f32" (scalar loads; float rounding).
 */
export type PackedTables = "i8" | "i16" | "f32";

/** Options of {@link WasmKernels.packed}. */
export interface PackedOptions {
  /** The tables (default {@link DEFAULT_PACKED_TABLES}). */
  tables?: PackedTables;
  /** Words (32 columns) sharing one table scale (int8, int16), 1..32 (default 4: 128 columns). */
  blockWords?: number;
}

/**
 * The default tables: int8, the fastest (T-MAC's choice). At 4096x4096, k = 2, one thread (`rabit bench
 * --backend wasm`, 2-core EPYC under load): int8 5.5×, int16 3.6×, f32 tables 1.3× the speed of the fp32
 * SIMD GEMV. What int8 rounding costs: on a trained 2-bit stories260K (1,200 steps, γ 1) (held-out TinyStories, context 512)
 * perplexity 10.4646 against the reference's 10.4629 (+1.6e-4; int16 10.4629); on an untrained PTQ copy,
 * whose activations are rougher, a few 1e-3 (tests/wasm_session.test.ts). Greedy text is the reference's.
 */
export const DEFAULT_PACKED_TABLES: PackedTables = "i8";
/** Default columns per table scale block, in words (128 columns; larger is a few % faster, less exact). */
export const DEFAULT_BLOCK_WORDS = 4;

/**
 * One instance of the kernel module with its own memory: weights are copied in once, activations and
 * tables go through scratch regions reused by every call (single-threaded, calls never overlap).
 *
 * @example
 * ```ts
 * import { WasmKernels } from "./kernels.ts";
 * const kernels = WasmKernels.create();
 * const layer = kernels.dense(new Float32Array([1, 2, 3, 4]), 2, 2); // W = [[1, 2], [3, 4]]
 * layer.forward(new Float32Array([1, 1]), 1); // [3, 7]
 * ```
 */
export class WasmKernels {
  readonly exports: KernelExports;
  #top: number;
  #scratch = new Map<string, { ptr: number; bytes: number }>();
  #pool?: WasmThreadPool;

  private constructor(instance: WebAssembly.Instance, pool?: WasmThreadPool) {
    this.exports = instance.exports as unknown as KernelExports;
    this.#top = align(this.exports.heapBase());
    this.#pool = pool;
  }

  /**
   * Instantiates the embedded module synchronously (Deno, Node, workers; a browser's main thread refuses
   * synchronous compilation of modules over 4 KB: use {@link WasmKernels.load} there). Throws when SIMD is
   * unsupported.
   */
  static create(): WasmKernels {
    if (!wasmSimdSupported()) {
      throw new Error("This engine does not validate WebAssembly SIMD: use the cpu backend instead");
    }
    compiled ??= new WebAssembly.Module(bytes());
    return new WasmKernels(new WebAssembly.Instance(compiled, {}));
  }

  /**
   * Instantiates the module asynchronously (fine on a browser's main thread), with `threads − 1` worker
   * threads on a shared memory when `threads` > 1 (e.g. navigator.hardwareConcurrency). Falls back to one
   * thread where shared memory or node:worker_threads (Deno, Node) are missing. Call dispose() to stop the
   * workers (they never keep a process alive).
   */
  static async load(options: { threads?: number } = {}): Promise<WasmKernels> {
    if (!wasmSimdSupported()) {
      throw new Error("This engine does not validate WebAssembly SIMD: use the cpu backend instead");
    }
    const threads = Math.floor(options.threads ?? 1);
    if (threads > 1 && typeof SharedArrayBuffer === "function") {
      try {
        compiledShared ??= await WebAssembly.compile(decodeBase64(WASM_SHARED_BASE64));
        const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
        const instance = await WebAssembly.instantiate(compiledShared, { env: { memory } });
        const pool = await WasmThreadPool.create(compiledShared, memory, threads - 1, PRODUCTS);
        if (pool) return new WasmKernels(instance, pool);
      } catch {
        // no shared memory here: one thread below
      }
    }
    compiled ??= await WebAssembly.compile(bytes());
    return new WasmKernels(await WebAssembly.instantiate(compiled, {}));
  }

  /** Threads that run products: the workers and the calling thread. */
  get threads(): number {
    return this.#pool?.size ?? 1;
  }

  /**
   * Runs product `fn(...args, start, end)` over rows (or tiles) [0, total): split among the threads in
   * multiples of `grain` when `work` (multiply-adds) repays it, else on this thread.
   */
  product(
    fn: ProductName,
    args: number[],
    total: number,
    grain: number,
    work: number,
    scratch?: ScratchArg,
  ): void {
    if (this.#pool && work >= MIN_PARALLEL_WORK) {
      this.#pool.run(this.exports as unknown as Record<string, unknown>, fn, args, total, grain, scratch);
    } else {
      (this.exports[fn] as (...a: number[]) => void)(...args, 0, total);
    }
  }

  /** Stops the worker threads, if any (the instance stays usable on this thread). */
  dispose(): void {
    this.#pool?.dispose();
    this.#pool = undefined;
  }

  /** Bytes of this instance's memory. */
  get memoryBytes(): number {
    return this.exports.memory.buffer.byteLength;
  }

  /** Reserves `n` bytes (64-byte aligned, zeroed), growing memory; returns the offset. Never freed. */
  alloc(n: number): number {
    const ptr = this.#top;
    const end = align(ptr + n);
    const have = this.exports.memory.buffer.byteLength;
    if (end > have) {
      // Grow by at least half the current size: each grow may copy the whole memory, so growing by exactly
      // what one layer needs makes loading a large model quadratic. Capped at wasm32's 65536 pages (4 GiB).
      const need = Math.ceil((end - have) / 65536), havePages = have / 65536;
      if (havePages + need > 65536) {
        throw new RangeError(
          `WasmKernels: ${end} bytes of weights and scratch exceed WebAssembly's 4 GiB memory; ` +
            `use a smaller model, packed layers, or the webgpu backend`,
        );
      }
      this.exports.memory.grow(Math.min(Math.max(need, havePages >> 1), 65536 - havePages));
    }
    this.#top = end;
    return ptr;
  }

  /** A scratch region of at least `n` bytes under `name`, reused across calls (grows by doubling). */
  scratch(name: string, n: number): number {
    const s = this.#scratch.get(name);
    if (s && s.bytes >= n) return s.ptr;
    const bytes = Math.max(n, 2 * (s?.bytes ?? 0));
    const ptr = this.alloc(bytes);
    this.#scratch.set(name, { ptr, bytes });
    return ptr;
  }

  /** A view of `n` floats at `ptr` (views die when memory grows: take a new one after any alloc). */
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.exports.memory.buffer, ptr, n);
  }

  /** Copies `data` into newly allocated memory; returns the offset. */
  upload(data: Float32Array | Uint32Array | Uint16Array | Int8Array): number {
    const ptr = this.alloc(data.byteLength);
    new Uint8Array(this.exports.memory.buffer, ptr, data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    return ptr;
  }

  /** Copies x into the "x" scratch; returns its offset. */
  putInput(x: Float32Array, scale = 1): number {
    const ptr = this.scratch("x", x.byteLength);
    const view = this.f32(ptr, x.length);
    if (scale === 1) view.set(x);
    else for (let i = 0; i < x.length; i++) view[i] = x[i] * scale;
    return ptr;
  }

  /** A dense (out, in) layer stored as fp32 or fp16 (`w` is copied); `source` serves its backward. */
  dense(
    w: Float32Array,
    out: number,
    inF: number,
    storage: "f32" | "f16" = "f32",
    source?: LinearLayer,
  ): WasmDenseLinear {
    return new WasmDenseLinear(this, w, out, inF, storage, source);
  }

  /** An int8 layer with per-row scales (codes copied, rows padded to 16 columns), e.g. the classifier. */
  int8Rows(rows: Int8Rows): WasmInt8Linear {
    return new WasmInt8Linear(this, rows);
  }

  /** A packed residual-binary layer (arrays copied, planes repacked for the swizzle kernels); `source` serves its backward. */
  packed(layer: ResidualBinaryLinear, options: PackedOptions = {}, source?: LinearLayer): WasmPackedLinear {
    return new WasmPackedLinear(this, layer, options, source);
  }
}

function align(n: number): number {
  return Math.ceil(n / 64) * 64;
}

/**
 * A dense layer y = x · Wᵀ on {@link WasmKernels}; `backward` runs on `source` (the reference layer) when
 * given, since the session only runs forward.
 */
export class WasmDenseLinear implements LinearLayer {
  readonly out: number;
  readonly in: number;
  readonly storage: "f32" | "f16";
  /** Bytes of weights in wasm memory. */
  readonly bytes: number;
  readonly #k: WasmKernels;
  readonly #w: number;
  #source?: LinearLayer;

  constructor(
    kernels: WasmKernels,
    w: Float32Array,
    out: number,
    inF: number,
    storage: "f32" | "f16" = "f32",
    source?: LinearLayer,
  ) {
    if (w.length !== out * inF) {
      throw new RangeError(
        `WasmDenseLinear: expected W of ${out}x${inF}=${out * inF} values, found ${w.length}`,
      );
    }
    this.#k = kernels;
    this.out = out;
    this.in = inF;
    this.storage = storage;
    const data = storage === "f16" ? toF16(w) : w;
    this.bytes = data.byteLength;
    this.#w = kernels.upload(data);
    this.#source = source;
  }

  forward(x: Float32Array, T: number): Float32Array {
    checkInput("WasmDenseLinear", x, T, this.in);
    const k = this.#k;
    const f16 = this.storage === "f16";
    const xp = k.putInput(x, f16 ? F16_X_SCALE : 1);
    const yp = k.scratch("y", T * this.out * 4);
    k.product(
      f16 ? "gemvF16" : "gemvF32",
      [this.#w, xp, yp, this.in, T, this.out],
      this.out,
      4,
      T * this.out * this.in,
    );
    const y = k.f32(yp, T * this.out).slice();
    if (f16) { for (let i = 0; i < y.length; i++) y[i] *= F16_X_SCALE; }
    return y;
  }

  backward(x: Float32Array, dY: Float32Array, T: number, dX: Float32Array, dW?: Float32Array): void {
    if (!this.#source) throw new Error("WasmDenseLinear: inference only (no source layer for the backward)");
    this.#source.backward(x, dY, T, dX, dW);
  }
}

/**
 * An int8 layer with per-row scales (quant/int8_rows.ts) on {@link WasmKernels}: x is quantized per token
 * to int16 and the product runs on integers (gemvQ8 in wasm/kernels.ts); within ~1e-4 of the
 * Int8RowsLinear reference relative to the output's scale. Inference only.
 */
export class WasmInt8Linear implements LinearLayer {
  readonly out: number;
  readonly in: number;
  /** Bytes of codes and scales in wasm memory. */
  readonly bytes: number;
  readonly #kn: WasmKernels;
  readonly #inPad: number;
  readonly #q: number;
  readonly #scales: number;

  constructor(kernels: WasmKernels, rows: Int8Rows) {
    validateInt8Rows(rows, "WasmInt8Linear");
    const { out, in: inF } = rows;
    this.#kn = kernels;
    this.out = out;
    this.in = inF;
    const inPad = this.#inPad = Math.ceil(inF / 16) * 16;
    let q = rows.q;
    if (inPad !== inF) {
      q = new Int8Array(out * inPad);
      for (let r = 0; r < out; r++) q.set(rows.q.subarray(r * inF, (r + 1) * inF), r * inPad);
    }
    this.#q = kernels.upload(q);
    this.#scales = kernels.upload(rows.scales);
    this.bytes = q.byteLength + rows.scales.byteLength;
  }

  forward(x: Float32Array, T: number): Float32Array {
    checkInput("WasmInt8Linear", x, T, this.in);
    const kn = this.#kn;
    const inPad = this.#inPad;
    const xp = kn.putInput(x);
    const xq = kn.scratch("xq", T * inPad * 2);
    const xs = kn.scratch("xs8", T * 4);
    const yp = kn.scratch("y", T * this.out * 4);
    kn.exports.quantX16(xp, T, this.in, inPad, xq, xs);
    // An integer multiply-add costs about a quarter of a float one here (7 instructions per 16 columns).
    kn.product(
      "gemvQ8",
      [this.#q, this.#scales, xq, xs, yp, inPad, T, this.out],
      this.out,
      4,
      T * this.out * inPad / 4,
    );
    return kn.f32(yp, T * this.out).slice();
  }

  backward(): void {
    throw new Error("WasmInt8Linear: inference only (int8 storage is applied after training)");
  }
}

/**
 * A packed residual-binary layer y = Σ_i g_i ⊙ (B_i (h_i ⊙ x)) on {@link WasmKernels}. The int8 and int16
 * variants round each table entry with one scale per block of 32·blockWords columns; the f32 variant
 * matches the reference to float rounding. `backward` runs on `source` when given.
 */
export class WasmPackedLinear implements LinearLayer {
  readonly out: number;
  readonly in: number;
  readonly k: number;
  readonly tables: PackedTables;
  readonly blockWords: number;
  /** Bytes of planes and scales in wasm memory (as the file stores them: planes plus fp32 g and h). */
  readonly bytes: number;
  readonly #kn: WasmKernels;
  readonly #planes: number;
  readonly #g: number;
  readonly #h: number;
  #source?: LinearLayer;

  constructor(
    kernels: WasmKernels,
    layer: ResidualBinaryLinear,
    options: PackedOptions = {},
    source?: LinearLayer,
  ) {
    validateResidualBinary(layer, "WasmPackedLinear");
    const { out, in: inF, k } = layer;
    this.#kn = kernels;
    this.out = out;
    this.in = inF;
    this.k = k;
    this.tables = options.tables ?? DEFAULT_PACKED_TABLES;
    if (!["i8", "i16", "f32"].includes(this.tables)) {
      throw new RangeError(`WasmPackedLinear: expected tables "i8", "i16" or "f32", found "${this.tables}"`);
    }
    this.blockWords = options.blockWords ?? DEFAULT_BLOCK_WORDS;
    if (!(Number.isInteger(this.blockWords) && this.blockWords >= 1 && this.blockWords <= 32)) {
      // 32 words = 256 entries of at most 127 (int8, int16 high bytes) or 255 (int16 low bytes, read as
      // unsigned) per i16 lane: the accumulators cannot overflow.
      throw new RangeError(`WasmPackedLinear: expected blockWords in 1..32, found ${this.blockWords}`);
    }
    this.#source = source;
    this.#h = kernels.upload(layer.h);
    if (this.tables === "f32") {
      this.#planes = kernels.upload(layer.planes);
      this.#g = kernels.upload(layer.g);
    } else {
      const outPad = Math.ceil(out / 16) * 16;
      const g = new Float32Array(k * outPad);
      for (let p = 0; p < k; p++) g.set(layer.g.subarray(p * out, (p + 1) * out), p * outPad);
      this.#g = kernels.upload(g);
      this.#planes = kernels.alloc(k * outPad * wordsPerRow(inF) * 4);
      // The file-layout planes pass through a scratch region shared by every layer's repacking.
      const src = kernels.scratch("repack", layer.planes.byteLength);
      new Uint32Array(kernels.exports.memory.buffer, src, layer.planes.length).set(layer.planes);
      kernels.exports.repackI8(src, out, inF, k, this.#planes);
    }
    this.bytes = layer.planes.byteLength + layer.g.byteLength + layer.h.byteLength;
  }

  forward(x: Float32Array, T: number): Float32Array {
    checkInput("WasmPackedLinear", x, T, this.in);
    const kn = this.#kn, e = kn.exports;
    const { out, in: inF, k } = this;
    const work = out * inF * k / 8; // the int8 product costs about an eighth of a multiply-add per weight
    const G = wordsPerRow(inF) * 8;
    const y = new Float32Array(T * out);
    const chunk = Math.min(T, TOKEN_CHUNK);
    const xs = kn.scratch("xs", G * 16);
    if (this.tables === "f32") {
      const tables = kn.scratch("tables", chunk * k * G * 64);
      const yp = kn.scratch("y", chunk * out * 4);
      for (let t0 = 0; t0 < T; t0 += chunk) {
        const n = Math.min(chunk, T - t0);
        const xp = kn.putInput(x.subarray(t0 * inF, (t0 + n) * inF));
        e.tablesF32(xp, this.#h, inF, k, n, xs, tables);
        kn.product(
          "gemmF32Lut",
          [this.#planes, this.#g, tables, yp, out, inF, k, n, out],
          out,
          4,
          n * work * 2,
        );
        y.set(kn.f32(yp, n * out), t0 * out);
      }
      return y;
    }
    const BW = this.blockWords;
    const outPad = Math.ceil(out / 16) * 16;
    const blocks = Math.ceil(wordsPerRow(inF) / BW);
    const wide = this.tables === "i16";
    const tables = kn.scratch("tables", chunk * k * G * (wide ? 32 : 16));
    const scales = kn.scratch("scales", chunk * k * blocks * 4);
    const facc = kn.scratch("facc", 256 * kn.threads); // up to 4 tokens × 16 rows of f32 per thread
    const yp = kn.scratch("y", chunk * outPad * 4);
    for (let t0 = 0; t0 < T; t0 += chunk) {
      const n = Math.min(chunk, T - t0);
      const xp = kn.putInput(x.subarray(t0 * inF, (t0 + n) * inF));
      e.tablesI8(xp, this.#h, inF, k, n, BW, xs, tables, scales, wide ? 1 : 0);
      kn.product(
        wide ? "gemmI16" : "gemmI8",
        [this.#planes, this.#g, tables, scales, yp, out, inF, k, n, BW, outPad, facc],
        outPad / 16,
        1,
        n * work * (wide ? 2 : 1),
        { arg: 11, stride: 256 },
      );
      const ys = kn.f32(yp, n * outPad);
      if (outPad === out) y.set(ys, t0 * out);
      else for (let t = 0; t < n; t++) y.set(ys.subarray(t * outPad, t * outPad + out), (t0 + t) * out);
    }
    return y;
  }

  backward(x: Float32Array, dY: Float32Array, T: number, dX: Float32Array, dW?: Float32Array): void {
    if (!this.#source) throw new Error("WasmPackedLinear: inference only (no source layer for the backward)");
    this.#source.backward(x, dY, T, dX, dW);
  }
}
