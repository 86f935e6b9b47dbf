// The WebGPU training backend: the CPU backend's step (cpu_backend.ts, the definition) as WGSL kernels on
// one device — teacher and student forward over a batch of windows, KL + γ·MSE, the backward through every
// block, the straight-through derivation backward, gradient-norm clipping, AdamW and Muon. The trainable
// table, its gradient and the optimizer moments live in flat GPU buffers of the table's layout.
//
// Dimension legend: B windows, S tokens per window, N = B·S rows, D model width, H hidden width,
// V vocabulary, kvD key/value width, nH heads, out/in features of a linear layer, k paths.
// One step is four submits: teacher forward; student forward; losses (read back); backward; and the
// optimizer (after reading back the gradient norm).

import { headSize, kvDim, type LlamaConfig } from "../model/config.ts";
import type { LlamaModel } from "../model/model.ts";
import type { ParamTable } from "../model/params.ts";
import {
  createStorageBuffer,
  createUniformBuffer,
  type GpuContext,
  readF32,
  requestGpu,
} from "../backend/webgpu/device.ts";
import { Dispatcher, type GpuView } from "../backend/webgpu/dispatch.ts";
import { WebGpuGemm } from "../backend/webgpu/gemm.ts";
import { WebGpuDerive } from "../backend/webgpu/derive.ts";
import { type AdamWStep, WebGpuAdamW } from "./webgpu_adamw.ts";
import { WebGpuLosses } from "../backend/webgpu/losses.ts";
import { WebGpuMuon } from "./webgpu_muon.ts";
import { WebGpuReduce } from "../backend/webgpu/reduce.ts";
import { WebGpuOps } from "../backend/webgpu/ops.ts";
import { RmsnormOps } from "../backend/webgpu/ops/rmsnorm.ts";
import { RopeOps } from "../backend/webgpu/ops/rope.ts";
import { SwigluOps } from "../backend/webgpu/ops/swiglu.ts";
import {
  bucketTokenIds,
  EmbeddingOps,
  type GpuTokenBuckets,
  maxTokenBucketWords,
  uploadTokenBuckets,
} from "../backend/webgpu/ops/embedding.ts";
import { AttentionTrainOps } from "../backend/webgpu/ops/attention_train.ts";
import {
  type BatchLosses,
  batchLosses,
  checkGamma,
  checkLabels,
  checkTrainStateLengths,
  nextTokenTargets,
  type StepReport,
  type TrainingBackend,
  type TrainState,
  writeStateAsPromise,
} from "./backend.ts";
import type { BackendOptions } from "./cpu_backend.ts";
import { checkLatentMixFits, derivationOf, latentSlabs, type TrainLayout } from "./trainable.ts";
import { wordsPerRow } from "../quant/bitpack.ts";

/** Same-shaped latents `batch` words apart that one batched Muon step updates. */
interface MuonBatch {
  at: number;
  rows: number;
  cols: number;
  count: number;
  batch: number;
}

/** Where one binarized linear lives in the flat buffers. */
interface LinearSlot {
  name: string;
  out: number;
  in: number;
  /** Binary paths of this layer (the layout's; a mixed-k layout differs between layers). */
  k: number;
  /** Word offsets in the table (latent, g, h), in the What/dWhat buffer, and in the planes buffer. */
  w: number;
  g: number;
  h: number;
  wHat: number;
  planes: number;
}

/** Per-layer activation buffers of a forward (the student keeps them all; the teacher shares scratch). */
interface BlockBuffers {
  xnAtt: GPUBuffer; // (N, D)
  invAtt: GPUBuffer; // (N)
  q: GPUBuffer; // (N, D)
  k: GPUBuffer; // (N, kvD)
  v: GPUBuffer; // (N, kvD)
  att: GPUBuffer; // (N, D)
  lse: GPUBuffer; // (B, nH, S)
  mid: GPUBuffer; // (N, D)
  xnFfn: GPUBuffer; // (N, D)
  invFfn: GPUBuffer; // (N)
  h1: GPUBuffer; // (N, H)
  h3: GPUBuffer; // (N, H)
  hAct: GPUBuffer; // (N, H)
}

/** Where a forward reads its weights. */
interface WeightViews {
  linear(layer: number, kind: string): GpuView; // (out, in)
  /** A float tensor by model name: a norm (D), the embedding or the classifier (V, D). */
  float(name: string): GpuView;
}

/** Buffers sized for one batch shape (B, S). */
interface Activations {
  B: number;
  S: number;
  ids: GPUBuffer; // (N) u32
  /** Room for the token buckets of the embedding backward (maxTokenBucketWords(N) u32), when it trains. */
  bucketWords?: GPUBuffer;
  /** This step's buckets, uploaded by studentForward when the embedding trains. */
  buckets?: GpuTokenBuckets;
  step: { buffer: GPUBuffer; pos0: number; tokens: number };
  resid: GPUBuffer[]; // L + 1 × (N, D): the stream entering each block, then the last block's output
  tresid: GPUBuffer[]; // L + 1 × (N, D): the teacher's
  blocks: BlockBuffers[]; // student, per layer
  tblock: BlockBuffers; // teacher scratch
  xnF: GPUBuffer; // (N, D)
  invF: GPUBuffer; // (N)
  logits: GPUBuffer; // (N, V)
  tlogits: GPUBuffer; // (N, V)
  dLogits: GPUBuffer; // (N, V)
  rowLoss: GPUBuffer; // (N) KL per row
  targets: GPUBuffer; // (N) i32 next-token targets, −1 unscored (only with a label weight)
  ceLoss: GPUBuffer; // (N) cross-entropy per row (only with a label weight)
  mseLoss: GPUBuffer; // (L·N) Σ_d (s − t)² per layer and row
  dx: GPUBuffer; // (N, D)
  dXn: GPUBuffer; // (N, D)
  dHAct: GPUBuffer; // (N, H)
  dH1: GPUBuffer; // (N, H)
  dH3: GPUBuffer; // (N, H)
  dAtt: GPUBuffer; // (N, D)
  dQ: GPUBuffer; // (N, D)
  dK: GPUBuffer; // (N, kvD)
  dV: GPUBuffer; // (N, kvD)
  delta: GPUBuffer; // (B, nH, S)
  all: GPUBuffer[];
}

/**
 * The training step on WebGPU; create with {@link WebGpuTrainingBackend.create}. It gives the CPU
 * backend's losses (cpu_backend.ts, to 1e-3 relative) and is driven the same way (runTraining in loop.ts).
 *
 * @example
 * ```ts
 * import { WebGpuTrainingBackend } from "./webgpu_backend.ts";
 * import { initializeTable } from "./init.ts";
 * import { trainLayout } from "./trainable.ts";
 * import { requestGpu } from "../backend/webgpu/device.ts";
 * import { loadLlama2c } from "../io/llama2c.ts";
 * const ctx = await requestGpu();
 * if (ctx) {
 *   const { config, params } = await loadLlama2c("../shared/data/stories260K.bin");
 *   const teacher = { config, params, quantized: new Map() };
 *   const layout = trainLayout(config, 2, "rabit", "norms");
 *   initializeTable(teacher, layout, { method: "rabit", k: 2, precondition: 0, svidRounds: 0 });
 *   const options = { method: "rabit" as const, k: 2, gamma: 0.1, optimizer: "adamw" as const };
 *   const backend = await WebGpuTrainingBackend.create(teacher, layout, options, ctx);
 *   const batch = [Int32Array.from([1, 403, 407, 261, 378, 432, 383, 286])];
 *   await backend.teacherForward(batch);
 *   await backend.studentForward(batch);
 *   (await backend.losses()).loss; // what the CPU backend gives for this batch, to 1e-3
 *   await backend.backward();
 *   await backend.optimizerStep(1e-3, 1, 1);
 *   backend.dispose();
 * }
 * ```
 */
export class WebGpuTrainingBackend implements TrainingBackend {
  /** Always "webgpu". */
  readonly name = "webgpu";
  /** The table's layout; its values live on the device (read them with readState). */
  readonly table: ParamTable;
  /** The device it trains on. */
  readonly ctx: GpuContext;
  readonly #config: LlamaConfig;
  readonly #layout: TrainLayout;
  readonly #options: BackendOptions;
  /** The MSE weight of the next losses/backward (options.gamma until setGamma). */
  #gamma: number;
  /** The latent mix α of the next student forward and backward (0 until setLatentMix). */
  #mix = 0;
  readonly #slots = new Map<string, LinearSlot>();
  #muonPlan?: MuonBatch[];
  readonly #teacherParams: ParamTable;
  // Device state.
  readonly #tw: GPUBuffer; // teacher parameters, the model's flat layout
  readonly #p: GPUBuffer; // trainable table
  readonly #g: GPUBuffer; // its gradient
  readonly #m: GPUBuffer; // first moments / momentum
  readonly #v: GPUBuffer; // AdamW second moments (whole table, or its tail after the latents)
  readonly #vLength: number;
  readonly #wHat: GPUBuffer; // every layer's What
  readonly #dWHat: GPUBuffer; // every layer's dL/dWhat
  readonly #planes: GPUBuffer; // every layer's sign planes
  readonly #owned: GPUBuffer[] = [];
  #acts?: Activations;
  // Launchers.
  readonly #d: Dispatcher;
  readonly #gemm: WebGpuGemm;
  readonly #derive: WebGpuDerive;
  readonly #adamw: WebGpuAdamW;
  readonly #adamwLatent: AdamWStep;
  readonly #adamwRest: AdamWStep;
  readonly #muon: WebGpuMuon;
  readonly #losses: WebGpuLosses;
  readonly #reduce: WebGpuReduce;
  readonly #ops: WebGpuOps;
  readonly #rmsnorm: RmsnormOps;
  readonly #rope: RopeOps;
  readonly #swiglu: SwigluOps;
  readonly #embedding: EmbeddingOps;
  readonly #attention: AttentionTrainOps;
  #studentRan = false;

  private constructor(
    ctx: GpuContext,
    teacher: LlamaModel,
    layout: TrainLayout,
    options: BackendOptions,
    launchers: {
      gemm: WebGpuGemm;
      derive: WebGpuDerive;
      adamw: WebGpuAdamW;
      muon: WebGpuMuon;
      losses: WebGpuLosses;
      reduce: WebGpuReduce;
      ops: WebGpuOps;
      d: Dispatcher;
      rmsnorm: RmsnormOps;
      rope: RopeOps;
      swiglu: SwigluOps;
      embedding: EmbeddingOps;
      attention: AttentionTrainOps;
    },
  ) {
    this.ctx = ctx;
    this.#config = teacher.config;
    this.#layout = layout;
    this.#options = options;
    this.#gamma = checkGamma(options.gamma);
    this.table = layout.table;
    this.#teacherParams = teacher.params;
    this.#gemm = launchers.gemm;
    this.#derive = launchers.derive;
    this.#adamw = launchers.adamw;
    this.#muon = launchers.muon;
    this.#losses = launchers.losses;
    this.#reduce = launchers.reduce;
    this.#ops = launchers.ops;
    this.#d = launchers.d;
    this.#rmsnorm = launchers.rmsnorm;
    this.#rope = launchers.rope;
    this.#swiglu = launchers.swiglu;
    this.#embedding = launchers.embedding;
    this.#attention = launchers.attention;
    this.#adamwLatent = this.#adamw.createStep("adamw:latents");
    this.#adamwRest = this.#adamw.createStep("adamw:scales");

    const own = (b: GPUBuffer) => (this.#owned.push(b), b);
    this.#tw = own(createStorageBuffer(ctx, "train:teacher", teacher.params.data));
    this.#p = own(createStorageBuffer(ctx, "train:params", layout.table.data));
    const n = layout.table.count;
    this.#g = own(createStorageBuffer(ctx, "train:grads", n * 4));
    this.#m = own(createStorageBuffer(ctx, "train:m", n * 4));
    this.#vLength = options.optimizer === "muon" ? n - layout.latentEnd : n;
    this.#v = own(createStorageBuffer(ctx, "train:v", Math.max(1, this.#vLength) * 4));
    let wHat = 0, planes = 0;
    for (const name of layout.linears) {
      const [k, out] = layout.table.shape(`${name}.g`);
      if (options.k !== undefined && options.k !== k) {
        throw new RangeError(
          `WebGPU training: ${name} has ${k} paths in the layout, options say ${options.k}`,
        );
      }
      const inF = layout.table.shape(`${name}.h`)[1];
      this.#slots.set(name, {
        name,
        out,
        in: inF,
        k,
        w: layout.table.entry(`${name}.w`).offset,
        g: layout.table.entry(`${name}.g`).offset,
        h: layout.table.entry(`${name}.h`).offset,
        wHat,
        planes,
      });
      wHat += out * inF;
      planes += k * out * wordsPerRow(inF);
    }
    this.#wHat = own(createStorageBuffer(ctx, "train:wHat", wHat * 4));
    this.#dWHat = own(createStorageBuffer(ctx, "train:dWHat", wHat * 4));
    this.#planes = own(createStorageBuffer(ctx, "train:planes", planes * 4));
  }

  /** Opens (or takes) a device, compiles every kernel the step needs, and uploads teacher and table. */
  static async create(
    teacher: LlamaModel,
    layout: TrainLayout,
    options: BackendOptions,
    ctx?: GpuContext,
  ): Promise<WebGpuTrainingBackend> {
    const gpu = ctx ?? await requestGpu();
    if (!gpu) {
      throw new Error("WebGPU training: no WebGPU adapter is available here; use --backend cpu");
    }
    const c = teacher.config;
    const hs = headSize(c);
    const gemm = await WebGpuGemm.create(gpu);
    const d = new Dispatcher(gpu, "train");
    const rmsnorm = new RmsnormOps(d);
    const rope = new RopeOps(d);
    const swiglu = new SwigluOps(d);
    const embedding = new EmbeddingOps(d);
    const attention = new AttentionTrainOps(d);
    await Promise.all([
      rmsnorm.prepare(),
      rope.prepare(),
      swiglu.prepare(),
      embedding.prepare(),
      attention.prepare({ headSizes: [hs] }),
    ]);
    const launchers = {
      gemm,
      derive: await WebGpuDerive.create(gpu),
      adamw: await WebGpuAdamW.create(gpu),
      muon: await WebGpuMuon.create(gpu, { gemm }),
      losses: await WebGpuLosses.create(gpu),
      reduce: await WebGpuReduce.create(gpu),
      ops: await WebGpuOps.create(gpu),
      d,
      rmsnorm,
      rope,
      swiglu,
      embedding,
      attention,
    };
    return new WebGpuTrainingBackend(gpu, teacher, layout, options, launchers);
  }

  get optimizerStateBytes(): number {
    return (this.table.count + this.#vLength) * 4;
  }

  // ---------------------------------------------------------------------------------------------
  // Buffers.

  #activations(windows: Int32Array[]): Activations {
    const B = windows.length, S = windows[0].length;
    if (windows.some((w) => w.length !== S)) {
      throw new RangeError(`WebGPU training: expected windows of equal length ${S}`);
    }
    if (this.#acts && this.#acts.B === B && this.#acts.S === S) return this.#acts;
    this.#freeActivations();
    const c = this.#config;
    const N = B * S, D = c.dim, H = c.hiddenDim, kvD = kvDim(c), V = c.vocabSize, L = c.nLayers;
    const alpha = this.#options.labelWeight ?? 0;
    const all: GPUBuffer[] = [];
    const f = (label: string, floats: number) => {
      const b = createStorageBuffer(this.ctx, `train:${label}`, Math.max(1, floats) * 4);
      all.push(b);
      return b;
    };
    const block = (p: string): BlockBuffers => ({
      xnAtt: f(`${p}xnAtt`, N * D),
      invAtt: f(`${p}invAtt`, N),
      q: f(`${p}q`, N * D),
      k: f(`${p}k`, N * kvD),
      v: f(`${p}v`, N * kvD),
      att: f(`${p}att`, N * D),
      lse: f(`${p}lse`, B * c.nHeads * S),
      mid: f(`${p}mid`, N * D),
      xnFfn: f(`${p}xnFfn`, N * D),
      invFfn: f(`${p}invFfn`, N),
      h1: f(`${p}h1`, N * H),
      h3: f(`${p}h3`, N * H),
      hAct: f(`${p}hAct`, N * H),
    });
    const stepData = new Uint32Array([0, N, 0, 0]);
    const stepBuffer = createUniformBuffer(this.ctx, "train:step", stepData);
    all.push(stepBuffer);
    this.#acts = {
      B,
      S,
      ids: f("ids", N),
      bucketWords: this.#layout.floats.includes("tok_embeddings")
        ? f("buckets", maxTokenBucketWords(N))
        : undefined,
      step: { buffer: stepBuffer, pos0: 0, tokens: N },
      resid: Array.from({ length: L + 1 }, (_, l) => f(`resid${l}`, N * D)),
      tresid: Array.from({ length: L + 1 }, (_, l) => f(`tresid${l}`, N * D)),
      blocks: Array.from({ length: L }, (_, l) => block(`L${l}.`)),
      tblock: block("teacher."),
      xnF: f("xnF", N * D),
      invF: f("invF", N),
      logits: f("logits", N * V),
      tlogits: f("tlogits", N * V),
      dLogits: f("dLogits", N * V),
      rowLoss: f("rowLoss", N),
      targets: f("targets", alpha > 0 ? N : 1),
      ceLoss: f("ceLoss", alpha > 0 ? N : 1),
      mseLoss: f("mseLoss", L * N),
      dx: f("dx", N * D),
      dXn: f("dXn", N * D),
      dHAct: f("dHAct", N * H),
      dH1: f("dH1", N * H),
      dH3: f("dH3", N * H),
      dAtt: f("dAtt", N * D),
      dQ: f("dQ", N * D),
      dK: f("dK", N * kvD),
      dV: f("dV", N * kvD),
      delta: f("delta", B * c.nHeads * S),
      all,
    };
    return this.#acts;
  }

  #freeActivations(): void {
    if (!this.#acts) return;
    // Cached bind groups reference these buffers: drop them before the buffers go.
    this.#d.clearCache();
    this.#gemm.clearCache();
    for (const b of this.#acts.all) b.destroy();
    this.#acts = undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Forward.

  #teacherWeights(): WeightViews {
    const t = this.#teacherParams;
    return {
      linear: (l, kind) => ({ buffer: this.#tw, offset: t.entry(`layers.${l}.${kind}`).offset }),
      float: (name) => ({ buffer: this.#tw, offset: t.entry(name).offset }),
    };
  }

  #studentWeights(): WeightViews {
    const t = this.#teacherParams;
    const trained = new Set(this.#layout.floats);
    return {
      linear: (l, kind) => ({ buffer: this.#wHat, offset: this.#slots.get(`layers.${l}.${kind}`)!.wHat }),
      float: (name) =>
        trained.has(name)
          ? { buffer: this.#p, offset: this.table.entry(name).offset }
          : { buffer: this.#tw, offset: t.entry(name).offset },
    };
  }

  /** y (N, out) = x (N, in) · Wᵀ. */
  #linear(
    pass: GPUComputePassEncoder,
    x: GPUBuffer,
    w: GpuView,
    y: GPUBuffer,
    N: number,
    out: number,
    inF: number,
  ) {
    this.#gemm.gemm(pass, { a: { buffer: x }, b: w, c: { buffer: y }, M: N, N: out, K: inF, transB: true });
  }

  /** Embedding, every block, the final norm and the classifier, into `resid`, `blocks` and `logits`. */
  #forward(
    pass: GPUComputePassEncoder,
    a: Activations,
    weights: WeightViews,
    resid: GPUBuffer[],
    blockOf: (l: number) => BlockBuffers,
    logits: GPUBuffer,
  ): void {
    const c = this.#config;
    const N = a.B * a.S, D = c.dim, H = c.hiddenDim, kvD = kvDim(c), hs = headSize(c), V = c.vocabSize;
    this.#embedding.forward(pass, {
      step: a.step,
      ids: { buffer: a.ids },
      table: weights.float("tok_embeddings"),
      vocab: V,
      dim: D,
      out: { buffer: resid[0] },
    });
    for (let l = 0; l < c.nLayers; l++) {
      const b = blockOf(l);
      const p = `layers.${l}.`;
      this.#rmsnorm.forwardTrain(pass, {
        x: { buffer: resid[l] },
        weight: weights.float(p + "attention_norm"),
        out: { buffer: b.xnAtt },
        invRms: { buffer: b.invAtt },
        rows: N,
        dim: D,
        eps: c.normEps,
      });
      this.#linear(pass, b.xnAtt, weights.linear(l, "wq"), b.q, N, D, D);
      this.#linear(pass, b.xnAtt, weights.linear(l, "wk"), b.k, N, kvD, D);
      this.#linear(pass, b.xnAtt, weights.linear(l, "wv"), b.v, N, kvD, D);
      this.#rope.forwardTrain(pass, {
        q: { buffer: b.q },
        qWidth: D,
        k: { buffer: b.k },
        kWidth: kvD,
        rows: N,
        window: a.S,
        headSize: hs,
        theta: c.ropeTheta,
      });
      this.#attention.forward(pass, {
        q: { buffer: b.q },
        k: { buffer: b.k },
        v: { buffer: b.v },
        out: { buffer: b.att },
        lse: { buffer: b.lse },
        windows: a.B,
        tokens: a.S,
        nHeads: c.nHeads,
        nKvHeads: c.nKvHeads,
        headSize: hs,
      });
      this.#linear(pass, b.att, weights.linear(l, "wo"), b.mid, N, D, D);
      this.#ops.add(pass, { x: { buffer: b.mid }, y: { buffer: resid[l] }, rows: N, cols: D });
      this.#rmsnorm.forwardTrain(pass, {
        x: { buffer: b.mid },
        weight: weights.float(p + "ffn_norm"),
        out: { buffer: b.xnFfn },
        invRms: { buffer: b.invFfn },
        rows: N,
        dim: D,
        eps: c.normEps,
      });
      this.#linear(pass, b.xnFfn, weights.linear(l, "w1"), b.h1, N, H, D);
      this.#linear(pass, b.xnFfn, weights.linear(l, "w3"), b.h3, N, H, D);
      this.#swiglu.forwardTrain(pass, {
        a: { buffer: b.h1 },
        b: { buffer: b.h3 },
        out: { buffer: b.hAct },
        rows: N,
        cols: H,
      });
      this.#linear(pass, b.hAct, weights.linear(l, "w2"), resid[l + 1], N, D, H);
      this.#ops.add(pass, { x: { buffer: resid[l + 1] }, y: { buffer: b.mid }, rows: N, cols: D });
    }
    this.#rmsnorm.forwardTrain(pass, {
      x: { buffer: resid[c.nLayers] },
      weight: weights.float("norm"),
      out: { buffer: a.xnF },
      invRms: { buffer: a.invF },
      rows: N,
      dim: D,
      eps: c.normEps,
    });
    this.#gemm.gemm(pass, {
      a: { buffer: a.xnF },
      b: weights.float(this.#classifierName()),
      c: { buffer: logits },
      M: N,
      N: V,
      K: D,
      transB: true,
    });
  }

  #classifierName(): string {
    return this.#config.sharedClassifier ? "tok_embeddings" : "output";
  }

  /** Checks and uploads the batch's token ids; returns them (N) for the embedding backward's buckets. */
  #uploadIds(a: Activations, windows: Int32Array[]): Uint32Array {
    const ids = new Uint32Array(a.B * a.S);
    windows.forEach((w, b) => {
      for (let t = 0; t < a.S; t++) {
        const id = w[t];
        if (!(id >= 0 && id < this.#config.vocabSize)) {
          throw new RangeError(
            `Token id ${id} of window ${b} is outside the vocabulary 0..${this.#config.vocabSize - 1}`,
          );
        }
        ids[b * a.S + t] = id;
      }
    });
    this.ctx.device.queue.writeBuffer(a.ids, 0, ids);
    return ids;
  }

  teacherForward(windows: Int32Array[]): Promise<void> {
    const a = this.#activations(windows);
    this.#uploadIds(a, windows);
    this.#record("teacher forward", (pass) => {
      this.#forward(pass, a, this.#teacherWeights(), a.tresid, () => a.tblock, a.tlogits);
    });
    return Promise.resolve();
  }

  studentForward(windows: Int32Array[]): Promise<void> {
    const a = this.#activations(windows);
    const ids = this.#uploadIds(a, windows);
    if (a.bucketWords) {
      a.buckets = uploadTokenBuckets(this.ctx, bucketTokenIds(ids, this.#config.vocabSize), {
        buffer: a.bucketWords,
      });
    }
    this.#record("student forward", (pass) => {
      this.#deriveAll(pass);
      if (this.#mix > 0) this.#mixAll(pass);
      this.#forward(pass, a, this.#studentWeights(), a.resid, (l) => a.blocks[l], a.logits);
    });
    this.#studentRan = true;
    return Promise.resolve();
  }

  /** Signs and What of every layer from the current latents and scales. */
  #deriveAll(pass: GPUComputePassEncoder): void {
    const { method } = this.#options;
    for (const s of this.#slots.values()) {
      this.#derive.forward(pass, {
        method: derivationOf(method),
        out: s.out,
        in: s.in,
        k: s.k,
        w: { buffer: this.#p, offset: s.w },
        g: { buffer: this.#p, offset: s.g },
        h: { buffer: this.#p, offset: s.h },
        wHat: { buffer: this.#wHat, offset: s.wHat },
        planes: { buffer: this.#planes, offset: s.planes },
      });
    }
  }

  /** What ← What + α·(W − What) for every layer (the latent mix; the coupled derivation's W is (out, in)). */
  #mixAll(pass: GPUComputePassEncoder): void {
    for (const s of this.#slots.values()) {
      this.#reduce.lerp(
        pass,
        { buffer: this.#wHat, offset: s.wHat },
        { buffer: this.#p, offset: s.w },
        s.out * s.in,
        this.#mix,
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Losses and backward.

  async losses(labels?: Int32Array[]): Promise<BatchLosses> {
    const a = this.#acts;
    if (!a || !this.#studentRan) throw new Error("losses: run teacherForward and studentForward first");
    const c = this.#config;
    const N = a.B * a.S;
    const alpha = this.#options.labelWeight ?? 0;
    checkLabels(alpha, labels, a.B);
    if (alpha > 0) this.ctx.device.queue.writeBuffer(a.targets, 0, nextTokenTargets(labels!, a.S));
    this.#record("losses", (pass) => {
      this.#losses.klDivergence(pass, {
        student: { buffer: a.logits },
        teacher: { buffer: a.tlogits },
        rows: N,
        vocab: c.vocabSize,
        loss: { buffer: a.rowLoss },
        grad: { buffer: a.dLogits },
        scale: (1 - alpha) / N,
      });
      if (alpha > 0) {
        // Added to the KL's gradient: the mean over the B·(S − 1) scored positions, times α.
        this.#losses.crossEntropy(pass, {
          logits: { buffer: a.logits },
          targets: { buffer: a.targets },
          rows: N,
          vocab: c.vocabSize,
          loss: { buffer: a.ceLoss },
          grad: { buffer: a.dLogits },
          accumulate: true,
          scale: alpha / (N - a.B),
        });
      }
      for (let l = 0; l < c.nLayers; l++) {
        this.#losses.meanSquaredError(pass, {
          student: { buffer: a.resid[l + 1] },
          teacher: { buffer: a.tresid[l + 1] },
          rows: N,
          dim: c.dim,
          loss: { buffer: a.mseLoss, offset: l * N },
        });
      }
    });
    const [rows, mses, ces] = await Promise.all([
      readF32(this.ctx, a.rowLoss, N),
      readF32(this.ctx, a.mseLoss, c.nLayers * N),
      alpha > 0 ? readF32(this.ctx, a.ceLoss, N) : undefined,
    ]);
    let kl = 0, mse = 0;
    for (const x of rows) kl += x;
    for (const x of mses) mse += x;
    kl /= N;
    mse /= N * c.dim;
    let ce = 0;
    for (const x of ces ?? []) ce += x; // unscored rows hold 0
    return batchLosses(kl, mse, this.#gamma, alpha, ce / (N - a.B));
  }

  setGamma(gamma: number): void {
    this.#gamma = checkGamma(gamma);
  }

  setLatentMix(alpha: number): void {
    this.#mix = checkLatentMixFits(alpha, this.#options.method, this.#options.steClip);
  }

  backward(): Promise<void> {
    const a = this.#acts;
    if (!a || !this.#studentRan) throw new Error("backward: run studentForward and losses first");
    const c = this.#config;
    const N = a.B * a.S, D = c.dim, H = c.hiddenDim, kvD = kvDim(c), hs = headSize(c), V = c.vocabSize;
    const w = this.#studentWeights();
    const gFloat = (name: string): GpuView | undefined =>
      this.#layout.floats.includes(name)
        ? { buffer: this.#g, offset: this.table.entry(name).offset }
        : undefined;
    const gamma = this.#gamma;
    const encoder = this.ctx.device.createCommandEncoder({ label: "train:backward" });
    encoder.clearBuffer(this.#g);
    encoder.clearBuffer(a.dx);
    const pass = encoder.beginComputePass({ label: "train:backward" });
    // dX (N, in) = dY · W (+= when acc), dW (out, in) = dYᵀ · x.
    const linearBack = (
      l: number,
      kind: string,
      x: GPUBuffer,
      dY: GPUBuffer,
      dX: GPUBuffer,
      acc: boolean,
    ) => {
      const slot = this.#slots.get(`layers.${l}.${kind}`)!;
      const { out, in: inF } = slot;
      this.#gemm.gemm(pass, {
        a: { buffer: dY },
        b: w.linear(l, kind),
        c: { buffer: dX },
        M: N,
        N: inF,
        K: out,
        beta: acc ? 1 : 0,
      });
      this.#gemm.gemm(pass, {
        a: { buffer: dY },
        b: { buffer: x },
        c: { buffer: this.#dWHat, offset: slot.wHat },
        M: out,
        N: inF,
        K: N,
        transA: true,
      });
    };
    // Classifier and final norm: dXn (N, D) = dLogits · Wcls; a trained classifier also gets
    // dWcls (V, D) = dLogitsᵀ · xn (written first: a shared one's embedding gradient is added below).
    const cls = this.#classifierName();
    this.#gemm.gemm(pass, {
      a: { buffer: a.dLogits },
      b: w.float(cls),
      c: { buffer: a.dXn },
      M: N,
      N: D,
      K: V,
    });
    const dCls = gFloat(cls);
    if (dCls) {
      this.#gemm.gemm(pass, {
        a: { buffer: a.dLogits },
        b: { buffer: a.xnF },
        c: dCls,
        M: V,
        N: D,
        K: N,
        transA: true,
      });
    }
    this.#rmsnorm.backward(pass, {
      x: { buffer: a.resid[c.nLayers] },
      weight: w.float("norm"),
      invRms: { buffer: a.invF },
      dOut: { buffer: a.dXn },
      dX: { buffer: a.dx },
      dWeight: gFloat("norm"),
      rows: N,
      dim: D,
    });
    for (let l = c.nLayers - 1; l >= 0; l--) {
      const b = a.blocks[l];
      const p = `layers.${l}.`;
      if (gamma !== 0) {
        this.#losses.meanSquaredError(pass, {
          student: { buffer: a.resid[l + 1] },
          teacher: { buffer: a.tresid[l + 1] },
          rows: N,
          dim: D,
          loss: { buffer: a.mseLoss, offset: l * N },
          grad: { buffer: a.dx },
          accumulate: true,
          scale: gamma / (N * D),
        });
      }
      linearBack(l, "w2", b.hAct, a.dx, a.dHAct, false);
      this.#swiglu.backward(pass, {
        dOut: { buffer: a.dHAct },
        a: { buffer: b.h1 },
        b: { buffer: b.h3 },
        dA: { buffer: a.dH1 },
        dB: { buffer: a.dH3 },
        rows: N,
        cols: H,
        accumulate: false,
      });
      linearBack(l, "w1", b.xnFfn, a.dH1, a.dXn, false);
      linearBack(l, "w3", b.xnFfn, a.dH3, a.dXn, true);
      this.#rmsnorm.backward(pass, {
        x: { buffer: b.mid },
        weight: w.float(p + "ffn_norm"),
        invRms: { buffer: b.invFfn },
        dOut: { buffer: a.dXn },
        dX: { buffer: a.dx },
        dWeight: gFloat(p + "ffn_norm"),
        rows: N,
        dim: D,
      });
      linearBack(l, "wo", b.att, a.dx, a.dAtt, false);
      this.#attention.backward(pass, {
        q: { buffer: b.q },
        k: { buffer: b.k },
        v: { buffer: b.v },
        out: { buffer: b.att },
        lse: { buffer: b.lse },
        dOut: { buffer: a.dAtt },
        delta: { buffer: a.delta },
        dQ: { buffer: a.dQ },
        dK: { buffer: a.dK },
        dV: { buffer: a.dV },
        accumulate: false,
        windows: a.B,
        tokens: a.S,
        nHeads: c.nHeads,
        nKvHeads: c.nKvHeads,
        headSize: hs,
      });
      this.#rope.backward(pass, {
        q: { buffer: a.dQ },
        qWidth: D,
        k: { buffer: a.dK },
        kWidth: kvD,
        rows: N,
        window: a.S,
        headSize: hs,
        theta: c.ropeTheta,
      });
      linearBack(l, "wq", b.xnAtt, a.dQ, a.dXn, false);
      linearBack(l, "wk", b.xnAtt, a.dK, a.dXn, true);
      linearBack(l, "wv", b.xnAtt, a.dV, a.dXn, true);
      this.#rmsnorm.backward(pass, {
        x: { buffer: a.resid[l] },
        weight: w.float(p + "attention_norm"),
        invRms: { buffer: b.invAtt },
        dOut: { buffer: a.dXn },
        dX: { buffer: a.dx },
        dWeight: gFloat(p + "attention_norm"),
        rows: N,
        dim: D,
      });
    }
    // A trained embedding: its rows gather dResid₀ (now in dx), added to a shared classifier's gradient.
    const dEmb = gFloat("tok_embeddings");
    if (dEmb) {
      this.#embedding.backward(pass, {
        buckets: a.buckets!,
        dOut: { buffer: a.dx },
        dTable: dEmb,
        vocab: V,
        dim: D,
        accumulate: true,
      });
    }
    // Straight-through: dWhat → latent, dg, dh.
    const { method, steClip } = this.#options;
    for (const s of this.#slots.values()) {
      this.#derive.backward(pass, {
        method: derivationOf(method),
        out: s.out,
        in: s.in,
        k: s.k,
        dWHat: { buffer: this.#dWHat, offset: s.wHat },
        planes: { buffer: this.#planes, offset: s.planes },
        g: { buffer: this.#p, offset: s.g },
        h: { buffer: this.#p, offset: s.h },
        dW: { buffer: this.#g, offset: s.w },
        dg: { buffer: this.#g, offset: s.g },
        dh: { buffer: this.#g, offset: s.h },
        ...(steClip !== undefined ? { clip: steClip, w: { buffer: this.#p, offset: s.w } } : {}),
      });
      // The latent mix: the binary part carries (1 − α) of What, so of the scales' gradients too.
      if (this.#mix > 0) {
        this.#reduce.scale(pass, { buffer: this.#g, offset: s.g }, s.k * s.out, 1 - this.#mix);
        this.#reduce.scale(pass, { buffer: this.#g, offset: s.h }, s.k * s.in, 1 - this.#mix);
      }
    }
    pass.end();
    // Frozen ranges (freeze's earlier latents, dbllm's h) get no gradient: they keep their initial values.
    for (const { offset, size } of this.#layout.frozen) encoder.clearBuffer(this.#g, offset * 4, size * 4);
    this.ctx.device.queue.submit([encoder.finish()]);
    this.#studentRan = false;
    return Promise.resolve();
  }

  // ---------------------------------------------------------------------------------------------
  // Optimizer.

  async optimizerStep(lr: number, step: number, maxNorm: number): Promise<StepReport> {
    const n = this.table.count;
    this.#record("gradient norm", (pass) => this.#reduce.sumSquares(pass, { buffer: this.#g }, n));
    const gradNorm = Math.sqrt(await this.#reduce.readSumSquares(n));
    if (!Number.isFinite(gradNorm)) {
      throw new RangeError(`optimizer step ${step}: the gradient is not finite (norm ${gradNorm})`);
    }
    const o = this.#options;
    const wd = o.weightDecay ?? 0;
    const end = this.#layout.latentEnd;
    this.#adamwRest.set(step, { lr: lr * (o.scaleLrMultiplier ?? 1) });
    if (o.optimizer === "adamw") this.#adamwLatent.set(step, { lr, weightDecay: wd });
    else this.#muon.setLearningRate(lr);
    this.#record("optimizer", (pass) => {
      if (maxNorm > 0 && gradNorm > maxNorm) {
        this.#reduce.scale(pass, { buffer: this.#g }, n, maxNorm / gradNorm);
      }
      if (n > end) {
        this.#adamw.update(pass, {
          step: this.#adamwRest,
          p: { buffer: this.#p, offset: end },
          g: { buffer: this.#g, offset: end },
          m: { buffer: this.#m, offset: end },
          v: { buffer: this.#v, offset: o.optimizer === "muon" ? 0 : end },
          length: n - end,
        });
      }
      if (o.optimizer === "adamw") {
        this.#adamw.update(pass, {
          step: this.#adamwLatent,
          p: { buffer: this.#p },
          g: { buffer: this.#g },
          m: { buffer: this.#m },
          v: { buffer: this.#v },
          length: end,
        });
        return;
      }
      for (const b of this.#muonBatches()) {
        this.#muon.step(pass, {
          w: { buffer: this.#p, offset: b.at },
          g: { buffer: this.#g, offset: b.at },
          m: { buffer: this.#m, offset: b.at },
          rows: b.rows,
          cols: b.cols,
          weightDecay: wd,
          momentum: o.momentum,
          count: b.count,
          batch: b.batch,
        });
      }
    });
    return { gradNorm };
  }

  /**
   * The latents Muon updates, as batches of same-shaped matrices evenly spaced in the table (one layer
   * kind and path across the layers: the table lays the layers out alike), so that one batched step
   * (~24 dispatches) serves every layer instead of one step per matrix (stories260K: 161 dispatches instead
   * of 805; 1.15–1.17× on llvmpipe in interleaved rounds, where the Newton–Schulz products, not the
   * dispatches, are most of Muon's time: docs/kernels.md).
   */
  #muonBatches(): MuonBatch[] {
    if (this.#muonPlan) return this.#muonPlan;
    const o = this.#options;
    const runs = new Map<string, { at: number; rows: number; cols: number }[]>();
    for (const [name, s] of this.#slots) {
      const slabs = latentSlabs(o.method, s.k);
      for (let i = 0; i < slabs; i++) {
        if (o.method === "freeze" && i < slabs - 1) continue; // frozen paths: zero gradient, no update
        const key = `${name.replace(/^layers\.\d+\./, "")}:${i}`;
        if (!runs.has(key)) runs.set(key, []);
        runs.get(key)!.push({ at: s.w + i * s.out * s.in, rows: s.out, cols: s.in });
      }
    }
    const plan: MuonBatch[] = [];
    for (const run of runs.values()) {
      run.sort((x, y) => x.at - y.at);
      // Greedy: extend a batch while the next matrix is one more stride on.
      let first = 0;
      while (first < run.length) {
        const { at, rows, cols } = run[first];
        const batch = first + 1 < run.length ? run[first + 1].at - at : 0;
        let count = 1;
        while (first + count < run.length && run[first + count].at === at + count * batch) count++;
        plan.push({ at, rows, cols, count, batch: count > 1 ? batch : 0 });
        first += count;
      }
    }
    this.#muonPlan = plan;
    return plan;
  }

  // ---------------------------------------------------------------------------------------------
  // State.

  async readState(): Promise<TrainState> {
    const n = this.table.count;
    const [params, m, v] = await Promise.all([
      readF32(this.ctx, this.#p, n),
      readF32(this.ctx, this.#m, n),
      readF32(this.ctx, this.#v, this.#vLength),
    ]);
    return { params, m, v };
  }

  writeState(state: TrainState): Promise<void> {
    return writeStateAsPromise(() => this.#writeState(state));
  }

  #writeState(state: TrainState): void {
    checkTrainStateLengths(state, this.table.count, this.table.count, this.#vLength);
    const q = this.ctx.device.queue;
    const put = (b: GPUBuffer, a: Float32Array) =>
      q.writeBuffer(b, 0, a.buffer as ArrayBuffer, a.byteOffset, a.byteLength);
    put(this.#p, state.params);
    put(this.#m, state.m);
    if (this.#vLength > 0) put(this.#v, state.v);
  }

  /** Peak bytes of GPU buffers this backend holds (table, moments, derived weights, activations). */
  get deviceBytes(): number {
    let bytes = 0;
    for (const b of this.#owned) bytes += b.size;
    for (const b of this.#acts?.all ?? []) bytes += b.size;
    return bytes;
  }

  dispose(): void {
    this.#freeActivations();
    for (const b of this.#owned.splice(0)) b.destroy();
    this.#gemm.dispose();
    this.#derive.dispose();
    this.#adamw.dispose();
    this.#muon.dispose();
    this.#losses.dispose();
    this.#reduce.dispose();
    this.#ops.dispose();
    this.#d.dispose();
  }

  /** Records one compute pass and submits it. */
  #record(label: string, body: (pass: GPUComputePassEncoder) => void): void {
    const encoder = this.ctx.device.createCommandEncoder({ label: `train:${label}` });
    const pass = encoder.beginComputePass({ label: `train:${label}` });
    body(pass);
    pass.end();
    this.ctx.device.queue.submit([encoder.finish()]);
  }
}
