// Whole-model inference on WebGPU: every weight resident on the device, one compute pass per chunk of
// tokens (embedding → blocks → final norm → logits) with no readback until the logits.
//
// Dimension legend: T tokens in a chunk (≤ maxChunk), D model width, H hidden, V vocabulary,
// kvD key/value width, C = seqLen cache rows.

import type { InferenceSession, RunOptions } from "../backend.ts";
import { headSize, kvDim, type LlamaConfig } from "../../model/config.ts";
import { createStorageBuffer, type GpuContext, readF32, requestGpu } from "./device.ts";
import { type GpuStep, type GpuView, WebGpuOps } from "./ops.ts";
import { type GpuLinear, MatmulEngine } from "./matmul.ts";
import { shapeClass } from "./matmul_geometry.ts";
import { FOLDED_NORM, type GpuModelWeights, uploadModel, type UploadOptions } from "./weights.ts";
import type { PackedModel } from "../../quant/residual_binary.ts";
import { BLOCK_LINEARS } from "../../model/params.ts";
import { checkOptionKeys, optionKeys } from "../../util/option_keys.ts";

/** Options of {@link WebGpuSession.create}. */
export interface WebGpuSessionOptions extends UploadOptions {
  /** An open device; by default one is requested. */
  ctx?: GpuContext;
  /** Largest chunk of tokens one pass processes (default min(seqLen, 512)); longer runs are split. */
  maxChunk?: number;
  /**
   * Autotune the decode GEMV geometry of every linear shape before the first step (default false):
   * `true` remembers the choices in the per-user cache file (matmul_tune.ts), a string names the file.
   * Tuning a 1B-parameter model's shapes takes a minute or two on a software adapter, then is cached.
   */
  tune?: boolean | string;
}

const WEBGPU_SESSION_OPTION_KEYS = optionKeys<WebGpuSessionOptions>({
  ctx: true,
  maxChunk: true,
  tune: true,
  denseDtype: true,
  classifierDtype: true,
});

/** Where a decode step's time goes (milliseconds, medians). */
export interface StepProfile {
  /** The whole step: every dispatch in one pass, submit, wait. */
  allMs: number;
  /** Only the weight matmuls (block linears and the classifier). */
  linearsMs: number;
  /** Only the other kernels (embedding, norms, rotary, KV write, attention, SwiGLU). */
  othersMs: number;
  /** Dispatches of the whole step. */
  dispatches: number;
  /**
   * Fixed cost of that many dispatches: the same count of 1-element dispatches (the `add` kernel) in one
   * pass, timed the same way. The rest of allMs is kernel work.
   */
  dispatchOverheadMs: number;
}

/** Activation buffers sized for the largest chunk. */
interface Activations {
  ids: GPUBuffer; // (maxChunk) u32
  x: GPUBuffer; // (maxChunk, D) residual stream
  xn: GPUBuffer; // (maxChunk, D) normed
  q: GPUBuffer; // (maxChunk, D)
  k: GPUBuffer; // (maxChunk, kvD)
  v: GPUBuffer; // (maxChunk, kvD)
  att: GPUBuffer; // (maxChunk, D)
  h1: GPUBuffer; // (maxChunk, H)
  h3: GPUBuffer; // (maxChunk, H)
  logits: GPUBuffer; // (maxChunk, V)
  kCache: GPUBuffer[]; // per layer (C, kvD)
  vCache: GPUBuffer[]; // per layer (C, kvD)
}

/**
 * A model resident on a WebGPU device: one compute pass per chunk of tokens, packed linears computed
 * straight from their sign bits. Create with {@link WebGpuSession.create}.
 *
 * @example
 * ```ts
 * import { WebGpuSession } from "./session.ts";
 * import { requestGpu } from "./device.ts";
 * import { openModel } from "../../io/load_model.ts";
 * import { argmax } from "../../eval/sampling.ts";
 * const ctx = await requestGpu();
 * if (ctx) {
 *   const { model } = await openModel("../shared/data/stories260K.bin");
 *   const session = await WebGpuSession.create(model, { ctx });
 *   argmax(await session.run([1, 403], 0, { lastOnly: true })); // 407, as on the CPU
 *   session.dispose();
 * }
 * ```
 */
export class WebGpuSession implements InferenceSession {
  /** Always "webgpu". */
  readonly backend = "webgpu";
  /** The adapter's description. */
  readonly device: string;
  /** The model's hyper-parameters. */
  readonly config: LlamaConfig;
  /** The device the session runs on. */
  readonly ctx: GpuContext;
  /**
   * The model's weights on the device (norms folded into the linears).
   *
   * @ignore
   */
  readonly weights: GpuModelWeights;
  /** Most tokens one compute pass processes; longer runs are split. */
  readonly maxChunk: number;
  readonly #ops: WebGpuOps;
  readonly #mm: MatmulEngine;
  readonly #step: GpuStep;
  readonly #act: Activations;
  #disposed = false;

  private constructor(
    ctx: GpuContext,
    weights: GpuModelWeights,
    ops: WebGpuOps,
    mm: MatmulEngine,
    maxChunk: number,
  ) {
    this.ctx = ctx;
    this.config = weights.config;
    this.weights = weights;
    this.device = ctx.adapterDescription;
    this.maxChunk = maxChunk;
    this.#ops = ops;
    this.#mm = mm;
    this.#step = ops.createStep("session.step");
    const c = this.config, T = maxChunk, kv = kvDim(c);
    // UNIFORM usage too: decode GEMVs read their x through a uniform binding (matmul.ts).
    const buf = (label: string, floats: number) =>
      createStorageBuffer(ctx, `session.${label}`, floats * 4, GPUBufferUsage.UNIFORM);
    this.#act = {
      ids: buf("ids", T),
      x: buf("x", T * c.dim),
      xn: buf("xn", T * c.dim),
      q: buf("q", T * c.dim),
      k: buf("k", T * kv),
      v: buf("v", T * kv),
      att: buf("att", T * c.dim),
      h1: buf("h1", T * c.hiddenDim),
      h3: buf("h3", T * c.hiddenDim),
      logits: buf("logits", T * c.vocabSize),
      kCache: Array.from({ length: c.nLayers }, (_, l) => buf(`k_cache.${l}`, c.seqLen * kv)),
      vCache: Array.from({ length: c.nLayers }, (_, l) => buf(`v_cache.${l}`, c.seqLen * kv)),
    };
  }

  /** Uploads a model (float or residual-binary linears) and compiles the kernels it needs. */
  static async create(model: PackedModel, options: WebGpuSessionOptions = {}): Promise<WebGpuSession> {
    checkOptionKeys("WebGpuSession.create", options, WEBGPU_SESSION_OPTION_KEYS);
    const ctx = options.ctx ?? await requestGpu();
    if (!ctx) throw new Error("No WebGPU adapter is available: run with --backend cpu");
    return WebGpuSession.fromWeights(ctx, uploadModel(ctx, model, options), options);
  }

  /**
   * A session over weights already on the device (e.g. random weights for benchmarks).
   *
   * @ignore
   */
  static async fromWeights(
    ctx: GpuContext,
    weights: GpuModelWeights,
    options: Pick<WebGpuSessionOptions, "maxChunk" | "tune"> = {},
  ): Promise<WebGpuSession> {
    const c = weights.config;
    const ops = await WebGpuOps.create(ctx, {
      headSizes: [headSize(c)],
      embeddingDtypes: [weights.embeddingDtype],
    });
    const mm = await MatmulEngine.create(ctx);
    const linears = [
      ...weights.layers.flatMap((L) => BLOCK_LINEARS.map((name) => L[name])),
      weights.classifier,
    ];
    if (options.tune) {
      const tuned = new Set<string>();
      for (const lin of linears) {
        const cls = shapeClass("gemv", lin.kind, lin); // what the tuner keys its choice by
        if (tuned.has(cls)) continue;
        tuned.add(cls);
        await mm.tune(lin, { cacheFile: options.tune });
      }
    }
    // Decode pipelines compiled before the first step; the linears after a norm fuse it (weights.ts).
    for (const L of weights.layers) {
      for (const name of BLOCK_LINEARS) {
        await mm.prepare(L[name], 1, undefined, { norm: FOLDED_NORM[name] !== null });
      }
    }
    await mm.prepare(weights.classifier, 1, undefined, { norm: true });
    const maxChunk = Math.min(options.maxChunk ?? 512, c.seqLen);
    return new WebGpuSession(ctx, weights, ops, mm, maxChunk);
  }

  /** Logits of `tokens` at positions pos0…, see {@link InferenceSession.run}. */
  async run(tokens: ArrayLike<number>, pos0: number, options: RunOptions = {}): Promise<Float32Array> {
    if (this.#disposed) throw new Error("WebGpuSession: used after dispose()");
    const c = this.config;
    const n = tokens.length;
    if (n === 0) throw new RangeError("run: expected at least one token, found none");
    if (!Number.isInteger(pos0) || pos0 < 0 || pos0 + n > c.seqLen) {
      throw new RangeError(`run: positions ${pos0}..${pos0 + n - 1} exceed the model's seq_len ${c.seqLen}`);
    }
    for (let i = 0; i < n; i++) {
      const id = tokens[i];
      if (!(Number.isInteger(id) && id >= 0 && id < c.vocabSize)) {
        throw new RangeError(
          `Token id ${id} at position ${pos0 + i} is outside the vocabulary 0..${c.vocabSize - 1}`,
        );
      }
    }
    const lastOnly = options.lastOnly === true;
    const out = new Float32Array((lastOnly ? 1 : n) * c.vocabSize);
    for (let start = 0; start < n; start += this.maxChunk) {
      const T = Math.min(this.maxChunk, n - start);
      const isLast = start + T === n;
      const logitRows = lastOnly ? (isLast ? 1 : 0) : T;
      this.#encodeChunk(
        Uint32Array.from({ length: T }, (_, i) => tokens[start + i]),
        pos0 + start,
        logitRows,
      );
      if (logitRows > 0) {
        const firstRow = T - logitRows;
        const values = await readF32(
          this.ctx,
          this.#act.logits,
          logitRows * c.vocabSize,
          firstRow * c.vocabSize,
        );
        out.set(values, lastOnly ? 0 : start * c.vocabSize);
      }
    }
    // No onSubmittedWorkDone: the last chunk always reads logits, and that mapping completes after all
    // earlier submissions (each wait costs a ~10 ms polling tick in Deno).
    return out;
  }

  /**
   * Where one decode step's time goes at position pos0: the whole step, the weight matmuls alone, the
   * other kernels alone (each recorded into one pass and timed to onSubmittedWorkDone), the count of
   * dispatches and their fixed cost. The KV cache must hold positions < pos0 (their values do not change
   * the timing); the step's results, the residual stream and the KV cache row at pos0 are clobbered.
   */
  async profileStep(pos0: number, reps = 3): Promise<StepProfile> {
    const time = async (part: "all" | "linears" | "others") => {
      const samples: number[] = [];
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        this.#encodeChunk(new Uint32Array([1]), pos0, 1, part);
        await this.ctx.device.queue.onSubmittedWorkDone();
        samples.push(performance.now() - t0);
      }
      return samples.sort((x, y) => x - y)[Math.floor(reps / 2)];
    };
    const allMs = await time("all");
    const dispatches = this.#dispatches;
    const linearsMs = await time("linears");
    const othersMs = await time("others");
    const samples: number[] = [];
    for (let r = 0; r < reps; r++) {
      const enc = this.ctx.device.createCommandEncoder({ label: "profile.overhead" });
      const pass = enc.beginComputePass({ label: "profile.overhead" });
      const x = { buffer: this.#act.x }, y = { buffer: this.#act.xn };
      for (let i = 0; i < dispatches; i++) this.#ops.add(pass, { x, y, rows: 1, cols: 1 });
      pass.end();
      const t0 = performance.now();
      this.ctx.device.queue.submit([enc.finish()]);
      await this.ctx.device.queue.onSubmittedWorkDone();
      samples.push(performance.now() - t0);
    }
    const dispatchOverheadMs = samples.sort((a, b) => a - b)[Math.floor(reps / 2)];
    return { allMs, linearsMs, othersMs, dispatches, dispatchOverheadMs };
  }

  #dispatches = 0;

  /**
   * Records and submits one chunk: T tokens at pos0, logits for the last `logitRows` rows. `part` records
   * only the weight matmuls or only the other kernels (for profileStep; the result is then meaningless).
   */
  #encodeChunk(
    ids: Uint32Array,
    pos0: number,
    logitRows: number,
    part: "all" | "linears" | "others" = "all",
  ): void {
    const c = this.config, a = this.#act, w = this.weights, ops = this.#ops;
    const T = ids.length, D = c.dim, kv = kvDim(c), hs = headSize(c);
    const { device } = this.ctx;
    device.queue.writeBuffer(a.ids, 0, ids as Uint32Array<ArrayBuffer>);
    this.#step.set(pos0, T);
    const step = this.#step;
    const v = (buffer: GPUBuffer, offset = 0): GpuView => ({ buffer, offset });
    const enc = device.createCommandEncoder({ label: `chunk@${pos0}` });
    const pass = enc.beginComputePass({ label: `chunk@${pos0}` });
    const withOps = part !== "linears", withLinears = part !== "others";
    let dispatches = 0;
    const op = <A>(launch: (pass: GPUComputePassEncoder, args: A) => void, args: A) => {
      if (!withOps) return;
      launch.call(ops, pass, args);
      dispatches++;
    };
    const linear = (
      lin: GpuLinear,
      x: GpuView,
      y: GpuView,
      rows: number,
      options: { accumulate?: boolean; normEps?: number } = {},
    ) => {
      if (!withLinears) return;
      this.#mm.encode(pass, lin, x, y, rows, options);
      dispatches += lin.chunks.length;
    };
    // The input of the linears after an RMSNorm: one token reads the raw stream and the GEMV fuses the
    // norm; several tokens are normalized with unit weight first (the norm weights are folded).
    const normed = (x: GpuView, rows: number): [GpuView, { normEps?: number }] => {
      if (rows === 1) return [x, { normEps: c.normEps }];
      op(ops.rmsnorm, { x, weight: v(w.unitNorm), out: v(a.xn, x.offset), rows, dim: D, eps: c.normEps });
      return [v(a.xn, x.offset), {}];
    };
    op(ops.embedding, {
      step,
      ids: v(a.ids),
      table: v(w.embedding),
      dtype: w.embeddingDtype,
      vocab: c.vocabSize,
      dim: D,
      out: v(a.x),
    });
    for (let l = 0; l < c.nLayers; l++) {
      const L = w.layers[l];
      const [attIn, attNorm] = normed(v(a.x), T);
      linear(L.wq, attIn, v(a.q), T, attNorm);
      linear(L.wk, attIn, v(a.k), T, attNorm);
      linear(L.wv, attIn, v(a.v), T, attNorm);
      op(ops.ropeKvWrite, {
        step,
        q: v(a.q),
        qWidth: D,
        k: v(a.k),
        v: v(a.v),
        kCache: v(a.kCache[l]),
        vCache: v(a.vCache[l]),
        kvDim: kv,
        headSize: hs,
        theta: c.ropeTheta,
        capacity: c.seqLen,
      });
      op(ops.attention, {
        step,
        q: v(a.q),
        kCache: v(a.kCache[l]),
        vCache: v(a.vCache[l]),
        out: v(a.att),
        nHeads: c.nHeads,
        nKvHeads: c.nKvHeads,
        headSize: hs,
        capacity: c.seqLen,
      });
      linear(L.wo, v(a.att), v(a.x), T, { accumulate: true }); // x += wo · att
      const [ffnIn, ffnNorm] = normed(v(a.x), T);
      linear(L.w1, ffnIn, v(a.h1), T, ffnNorm);
      linear(L.w3, ffnIn, v(a.h3), T, ffnNorm);
      op(ops.swiglu, { a: v(a.h1), b: v(a.h3), rows: T, cols: c.hiddenDim });
      linear(L.w2, v(a.h1), v(a.x), T, { accumulate: true }); // x += w2 · h
    }
    if (logitRows > 0) {
      const first = T - logitRows;
      const [headIn, headNorm] = normed(v(a.x, first * D), logitRows);
      linear(w.classifier, headIn, v(a.logits, first * c.vocabSize), logitRows, headNorm);
    }
    pass.end();
    device.queue.submit([enc.finish()]);
    this.#dispatches = dispatches;
  }

  /** Frees the session's buffers and weights (the device stays open: it may be shared). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    const a = this.#act;
    for (
      const b of [a.ids, a.x, a.xn, a.q, a.k, a.v, a.att, a.h1, a.h3, a.logits, ...a.kCache, ...a.vCache]
    ) {
      b.destroy();
    }
    this.weights.dispose();
    this.#ops.dispose();
    this.#mm.dispose(); // its cached bind groups' parameter uniforms
  }
}
