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
import { type GpuModelWeights, uploadModel, type UploadOptions } from "./weights.ts";
import type { LlamaModel } from "../../model/model.ts";

/** Options of {@link WebGpuSession.create}. */
export interface WebGpuSessionOptions extends UploadOptions {
  /** An open device; by default one is requested. */
  ctx?: GpuContext;
  /** Largest chunk of tokens one pass processes (default min(seqLen, 512)); longer runs are split. */
  maxChunk?: number;
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

/** A model resident on a WebGPU device. */
export class WebGpuSession implements InferenceSession {
  readonly backend = "webgpu";
  readonly device: string;
  readonly config: LlamaConfig;
  readonly ctx: GpuContext;
  readonly weights: GpuModelWeights;
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
    const buf = (label: string, floats: number) => createStorageBuffer(ctx, `session.${label}`, floats * 4);
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
  static async create(model: LlamaModel, options: WebGpuSessionOptions = {}): Promise<WebGpuSession> {
    const ctx = options.ctx ?? await requestGpu();
    if (!ctx) throw new Error("No WebGPU adapter is available: run with --backend cpu");
    return WebGpuSession.fromWeights(ctx, uploadModel(ctx, model, options), options);
  }

  /** A session over weights already on the device (e.g. random weights for benchmarks). */
  static async fromWeights(
    ctx: GpuContext,
    weights: GpuModelWeights,
    options: Pick<WebGpuSessionOptions, "maxChunk"> = {},
  ): Promise<WebGpuSession> {
    const c = weights.config;
    const ops = await WebGpuOps.create(ctx, {
      headSizes: [headSize(c)],
      embeddingDtypes: [weights.embeddingDtype],
    });
    const mm = await MatmulEngine.create(ctx);
    const maxChunk = Math.min(options.maxChunk ?? 512, c.seqLen);
    return new WebGpuSession(ctx, weights, ops, mm, maxChunk);
  }

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
    await this.ctx.device.queue.onSubmittedWorkDone();
    return out;
  }

  /** Records and submits one chunk: T tokens at pos0, logits for the last `logitRows` rows. */
  #encodeChunk(ids: Uint32Array, pos0: number, logitRows: number): void {
    const c = this.config, a = this.#act, w = this.weights, ops = this.#ops;
    const T = ids.length, D = c.dim, kv = kvDim(c), hs = headSize(c);
    const { device } = this.ctx;
    device.queue.writeBuffer(a.ids, 0, ids as Uint32Array<ArrayBuffer>);
    this.#step.set(pos0, T);
    const step = this.#step;
    const v = (buffer: GPUBuffer, offset = 0): GpuView => ({ buffer, offset });
    const enc = device.createCommandEncoder({ label: `chunk@${pos0}` });
    const pass = enc.beginComputePass({ label: `chunk@${pos0}` });
    ops.embedding(pass, {
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
      ops.rmsnorm(pass, {
        x: v(a.x),
        weight: v(L.attentionNorm),
        out: v(a.xn),
        rows: T,
        dim: D,
        eps: c.normEps,
      });
      this.#linear(pass, L.wq, a.xn, a.q, T);
      this.#linear(pass, L.wk, a.xn, a.k, T);
      this.#linear(pass, L.wv, a.xn, a.v, T);
      ops.rope(pass, { step, q: v(a.q), qWidth: D, k: v(a.k), kWidth: kv, headSize: hs, theta: c.ropeTheta });
      ops.kvWrite(pass, {
        step,
        k: v(a.k),
        v: v(a.v),
        kCache: v(a.kCache[l]),
        vCache: v(a.vCache[l]),
        kvDim: kv,
        capacity: c.seqLen,
      });
      ops.attention(pass, {
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
      this.#linear(pass, L.wo, a.att, a.x, T, true); // x += wo · att
      ops.rmsnorm(pass, { x: v(a.x), weight: v(L.ffnNorm), out: v(a.xn), rows: T, dim: D, eps: c.normEps });
      this.#linear(pass, L.w1, a.xn, a.h1, T);
      this.#linear(pass, L.w3, a.xn, a.h3, T);
      ops.swiglu(pass, { a: v(a.h1), b: v(a.h3), rows: T, cols: c.hiddenDim });
      this.#linear(pass, L.w2, a.h1, a.x, T, true); // x += w2 · h
    }
    if (logitRows > 0) {
      const first = T - logitRows;
      ops.rmsnorm(pass, {
        x: v(a.x, first * D),
        weight: v(w.norm),
        out: v(a.xn, first * D),
        rows: logitRows,
        dim: D,
        eps: c.normEps,
      });
      this.#mm.encode(pass, w.classifier, { buffer: a.xn, offset: first * D }, {
        buffer: a.logits,
        offset: first * c.vocabSize,
      }, logitRows);
    }
    pass.end();
    device.queue.submit([enc.finish()]);
  }

  #linear(
    pass: GPUComputePassEncoder,
    lin: GpuLinear,
    x: GPUBuffer,
    y: GPUBuffer,
    T: number,
    accumulate = false,
  ) {
    this.#mm.encode(pass, lin, { buffer: x }, { buffer: y }, T, { accumulate });
  }

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
  }
}
