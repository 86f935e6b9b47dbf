// The training kernels of the decoder ops (src/backend/webgpu/ops/) against the CPU references
// (src/model/ops.ts forwards, src/model/ops_backward.ts backwards) on ragged shapes, batches of windows,
// GQA, views with offsets and strides (and 4-word aligned ones, for the vec4 loads of the serial kernels),
// accumulate and overwrite; RMSNorm and attention in both kernel families (serial, parallel) whatever
// the adapter. Fails (does not skip) without a WebGPU adapter: CI has llvmpipe.
//
// Dimension legend: B windows, T rows per window, R = B·T rows, D width, V vocabulary, nH / nKV heads,
// hs head size, U distinct token ids.

import assert from "node:assert/strict";
import { createStorageBuffer, type GpuContext, readF32, requestGpu } from "../src/backend/webgpu/device.ts";
import { Dispatcher, type GpuView } from "../src/backend/webgpu/dispatch.ts";
import {
  attentionSerialSlots,
  type AttentionTile,
  attentionTrainGeometry,
  AttentionTrainOps,
} from "../src/backend/webgpu/ops/attention_train.ts";
import {
  bucketTokenIds,
  EmbeddingOps,
  maxTokenBucketWords,
  uploadTokenBuckets,
} from "../src/backend/webgpu/ops/embedding.ts";
import { RmsnormOps } from "../src/backend/webgpu/ops/rmsnorm.ts";
import { RopeOps } from "../src/backend/webgpu/ops/rope.ts";
import { SwigluOps } from "../src/backend/webgpu/ops/swiglu.ts";
import { attentionForward, rmsnormForward, ropeForward, swigluForward } from "../src/model/ops.ts";
import {
  attentionBackward,
  rmsnormBackward,
  ropeBackward,
  swigluBackward,
} from "../src/model/ops_backward.ts";
import { Rng } from "../src/util/rng.ts";
import { record } from "./_gpu.ts";

const HEAD_SIZES = [4, 8, 16];
// Non-default tiles for hs 16 (4 vec4 per row): more threads per row than vec4s (lanes with none), 3
// threads per row (2 vec4 per thread, the second past the row for some lanes), tiles of other sizes.
const ODD_TILES: { forward: AttentionTile; dq: AttentionTile; dkv: AttentionTile } = {
  forward: { rows: 4, cols: 4, threads: 8 },
  dq: { rows: 2, cols: 12, threads: 3 },
  dkv: { rows: 5, cols: 4, threads: 3 },
};

const gpu = await requestGpu();

interface Kit {
  ctx: GpuContext;
  rms: RmsnormOps;
  rmsPar: RmsnormOps;
  rmsGpu: RmsnormOps;
  rmsOne: RmsnormOps;
  rope: RopeOps;
  swiglu: SwigluOps;
  emb: EmbeddingOps;
  att: AttentionTrainOps;
  attPar: AttentionTrainOps;
  attGpu: AttentionTrainOps;
  attOdd: AttentionTrainOps;
  attSlots: AttentionTrainOps;
}

async function create(ctx: GpuContext): Promise<Kit> {
  const d = new Dispatcher(ctx, "train-test");
  const kit: Kit = {
    ctx,
    // The serial kernels (an invocation per row or column: CPU adapters) and the parallel ones with
    // compact (64-thread rows) and GPU geometry (256-thread rows, 32 × 8 weight-gradient blocks).
    rms: new RmsnormOps(d, { kernel: "serial" }),
    rmsPar: new RmsnormOps(d, { kernel: "parallel", compact: true }),
    rmsGpu: new RmsnormOps(d, { compact: false }),
    // Serial with one row per workgroup: more workgroups than one grid row holds.
    rmsOne: new RmsnormOps(d, { kernel: "serial", serialThreads: 1 }),
    rope: new RopeOps(d),
    swiglu: new SwigluOps(d),
    emb: new EmbeddingOps(d),
    // The serial kernels with their default slots (CPU adapters).
    att: new AttentionTrainOps(d, { kernel: "serial" }),
    // The parallel kernels with compact tiles (8 × 8), the GPU tiles (16 × 32, 4 threads per row at hs 8),
    // and odd tiles.
    attPar: new AttentionTrainOps(d, { kernel: "parallel", compact: true }),
    attGpu: new AttentionTrainOps(d, { compact: false }),
    attOdd: new AttentionTrainOps(d, { kernel: "parallel", tiles: ODD_TILES }),
    // Serial with other slots and a workgroup of 3: two query heads per invocation where the group allows.
    attSlots: new AttentionTrainOps(d, {
      kernel: "serial",
      slots: { forward: 2, dq: 1, dkv: 2 },
      serialThreads: 3,
    }),
  };
  for (const rms of [kit.rms, kit.rmsPar, kit.rmsGpu, kit.rmsOne]) await rms.prepare();
  await kit.rope.prepare({ inference: false });
  await kit.swiglu.prepare({ inference: false });
  await kit.emb.prepare({ inference: false });
  await kit.att.prepare({ headSizes: HEAD_SIZES });
  await kit.attPar.prepare({ headSizes: [8] });
  await kit.attGpu.prepare({ headSizes: [8] });
  await kit.attOdd.prepare({ headSizes: [16] });
  await kit.attSlots.prepare({ headSizes: [8] });
  return kit;
}

const kitPromise = gpu ? create(gpu) : null;

async function setup(): Promise<Kit> {
  if (!kitPromise) {
    throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; see ENGINEERING.md §1)");
  }
  return await kitPromise;
}

const maxErrors = new Map<string, number>();

/**
 * Asserts max |got − want| ≤ tol · max(max |want|, floor, 1e-6) and records the relative error under
 * `name`. `floor`: the size of the terms that cancel into `want`, where they do.
 */
function close(name: string, got: Float32Array, want: Float32Array, tol: number, what = "", floor = 0): void {
  assert.equal(got.length, want.length, `${name}: length`);
  let scale = Math.max(1e-6, floor), err = 0, at = -1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= err)) err = e, at = i;
  }
  const rel = err / scale;
  maxErrors.set(name, Math.max(maxErrors.get(name) ?? 0, rel));
  assert.ok(rel <= tol, `${name} ${what}: relative error ${rel} at ${at} (got ${got[at]}, want ${want[at]})`);
}

/** A (rows, width) view at `offset` with row stride `stride` in a new buffer, NaN elsewhere (stray reads). */
function uploadView(
  ctx: GpuContext,
  label: string,
  data: Float32Array,
  rows: number,
  width: number,
  offset = 0,
  stride = width,
): GpuView {
  const words = new Float32Array(offset + (rows - 1) * stride + width + 3).fill(NaN);
  for (let r = 0; r < rows; r++) words.set(data.subarray(r * width, (r + 1) * width), offset + r * stride);
  return { buffer: createStorageBuffer(ctx, label, words), offset, stride };
}

/** Reads rows × width elements of a strided view. */
async function readView(ctx: GpuContext, v: GpuView, rows: number, width: number): Promise<Float32Array> {
  const stride = v.stride ?? width, off = v.offset ?? 0;
  const all = await readF32(ctx, v.buffer, off + (rows - 1) * stride + width);
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(all.subarray(off + r * stride, off + r * stride + width), r * width);
  return out;
}

/** Records `f` into a pass that is ended and finished but never submitted (for launchers that throw). */
function attempt(ctx: GpuContext, f: (pass: GPUComputePassEncoder) => void): void {
  const enc = ctx.device.createCommandEncoder({ label: "rejected" });
  const pass = enc.beginComputePass();
  try {
    f(pass);
  } finally {
    pass.end();
    enc.finish();
  }
}

Deno.test("webgpu rmsnorm forward, training forward and backward match rmsnormForward / rmsnormBackward", async () => {
  const { ctx, rms, rmsPar, rmsGpu } = await setup();
  const rng = new Rng(1);
  const eps = 1e-5;
  let n = 0;
  for (const D of [1, 7, 64, 130]) {
    for (const R of [1, 5, 33]) {
      // Serial with unaligned views (scalar loads) and aligned ones (vec4 loads when D % 4 = 0), parallel.
      const variants: [RmsnormOps, boolean][] = [[rms, false], [rms, true], [rmsPar, false]];
      if (D === 130) variants.push([rmsGpu, false]);
      for (const [ops, aligned] of variants) {
        const accumulate = n++ % 2 === 0;
        const what = `D ${D} R ${R} accumulate ${accumulate} ${ops.kernel} rowThreads ${ops.rowThreads}` +
          (aligned ? " aligned" : "");
        const x = rng.normals(R * D, 2), w = rng.normals(D), dOut = rng.normals(R * D);
        const dX0 = accumulate ? rng.normals(R * D) : new Float32Array(R * D);
        const dW0 = accumulate ? rng.normals(D) : new Float32Array(D);
        const wantOut = new Float32Array(R * D), wantR = new Float32Array(R);
        rmsnormForward(x, w, R, D, eps, wantOut, wantR);
        const wantDX = dX0.slice(), wantDW = dW0.slice();
        rmsnormBackward(dOut, x, w, wantR, R, D, wantDX, wantDW);

        // (offset, stride) of each view: odd ones, or multiples of 4 words.
        const up = (k: number) => aligned ? Math.ceil(k / 4) * 4 : k;
        const xV = uploadView(ctx, "x", x, R, D, up(5), up(D + 3));
        const wV = uploadView(ctx, "w", w, 1, D, up(2));
        const outV = uploadView(ctx, "out", new Float32Array(R * D), R, D, up(1), up(D + 1));
        const infV = uploadView(ctx, "inference out", new Float32Array(R * D), R, D, up(3), up(D));
        const rV = uploadView(ctx, "invRms", new Float32Array(R), 1, R, 7);
        const gV = uploadView(ctx, "dOut", dOut, R, D, up(3));
        // dX keeps NaN in the gaps of its strided rows: only its own elements may be written.
        const dxStride = D + (aligned ? 4 : 2);
        const dxV = uploadView(
          ctx,
          "dX",
          accumulate ? dX0 : new Float32Array(R * D).fill(NaN),
          R,
          D,
          4,
          dxStride,
        );
        const dwV = uploadView(ctx, "dW", accumulate ? dW0 : new Float32Array(D).fill(NaN), 1, D, up(9));
        record(ctx, (p) => {
          ops.forward(p, { x: xV, weight: wV, out: infV, rows: R, dim: D, eps });
          ops.forwardTrain(p, { x: xV, weight: wV, out: outV, invRms: rV, rows: R, dim: D, eps });
          ops.backward(p, {
            x: xV,
            weight: wV,
            invRms: rV,
            dOut: gV,
            dX: dxV,
            dWeight: dwV,
            rows: R,
            dim: D,
            accumulate,
          });
        });
        close("rmsnorm out", await readView(ctx, infV, R, D), wantOut, 1e-6, what);
        close("rmsnorm train out", await readView(ctx, outV, R, D), wantOut, 1e-6, what);
        close("rmsnorm invRms", await readView(ctx, rV, 1, R), wantR, 1e-6, what);
        // At D = 1, dX = r·w·g·(1 − x²r²) nearly cancels: measure against r·w·g.
        let terms = 0;
        for (let i = 0; i < R * D; i++) {
          terms = Math.max(terms, Math.abs(wantR[Math.floor(i / D)] * w[i % D] * dOut[i]));
        }
        close("rmsnorm dX", await readView(ctx, dxV, R, D), wantDX, 1e-5, what, terms);
        close("rmsnorm dW", await readView(ctx, dwV, 1, D), wantDW, 1e-5, what);
        const gaps = await readF32(ctx, dxV.buffer, 4 + (R - 1) * dxStride + D);
        for (let r = 0; r + 1 < R; r++) {
          assert.ok(Number.isNaN(gaps[4 + r * dxStride + D]), `dX gap, ${what}`);
        }
      }
    }
  }
  // Only one of the gradients, and the rejections.
  const D = 7, R = 3;
  const x = rng.normals(R * D), w = rng.normals(D), dOut = rng.normals(R * D);
  const r = new Float32Array(R);
  rmsnormForward(x, w, R, D, eps, undefined, r);
  const wantDW = new Float32Array(D);
  rmsnormBackward(dOut, x, w, r, R, D, new Float32Array(R * D), wantDW);
  const views = {
    x: uploadView(ctx, "x", x, R, D),
    weight: uploadView(ctx, "w", w, 1, D),
    invRms: uploadView(ctx, "r", r, 1, R),
    dOut: uploadView(ctx, "g", dOut, R, D),
  };
  const dwV = uploadView(ctx, "dW", new Float32Array(D).fill(NaN), 1, D);
  record(ctx, (p) => rms.backward(p, { ...views, dWeight: dwV, rows: R, dim: D, accumulate: false }));
  close("rmsnorm dW", await readView(ctx, dwV, 1, D), wantDW, 1e-5, "dW only");
  attempt(ctx, (p) => assert.throws(() => rms.backward(p, { ...views, rows: R, dim: D }), TypeError));
  attempt(
    ctx,
    (p) => assert.throws(() => rms.backward(p, { ...views, dX: views.dOut, rows: R, dim: D }), TypeError),
  );
  attempt(
    ctx,
    (p) => assert.throws(() => rms.backward(p, { ...views, dX: dwV, rows: R, dim: D }), RangeError),
  );
});

Deno.test("webgpu rmsnorm serial kernels: 2-D grids, loops near llvmpipe's limit; options", async () => {
  const { ctx, rms, rmsOne } = await setup();
  const rng = new Rng(11);
  const eps = 1e-5;
  // One row per workgroup: 65537 workgroups, a 2-D grid. The weight gradient loops over all rows: past
  // llvmpipe's 65535 loop iterations per invocation at 65537 rows (the launcher records the parallel
  // kernel), within them at 59000. Rows of 29000 and 30001 scalars: the same for the row kernels.
  for (
    const [ops, R, D] of [[rmsOne, 65537, 4], [rms, 59000, 3], [rms, 2, 29000], [rms, 3, 30001]] as const
  ) {
    const what = `R ${R} D ${D} serialThreads ${ops.serialThreads}`;
    const x = rng.normals(R * D), w = rng.normals(D), dOut = rng.normals(R * D);
    const wantOut = new Float32Array(R * D), wantR = new Float32Array(R), wantDX = new Float32Array(R * D);
    rmsnormForward(x, w, R, D, eps, wantOut, wantR);
    rmsnormBackward(dOut, x, w, wantR, R, D, wantDX);
    const wantDW = new Float32Array(D); // in f64: a long f32 sum would be the less accurate side
    for (let i = 0; i < D; i++) {
      let sum = 0;
      for (let t = 0; t < R; t++) sum += dOut[t * D + i] * x[t * D + i] * wantR[t];
      wantDW[i] = sum;
    }
    const views = {
      x: uploadView(ctx, "x", x, R, D),
      weight: uploadView(ctx, "w", w, 1, D),
      invRms: uploadView(ctx, "r", new Float32Array(R), 1, R),
      dOut: uploadView(ctx, "g", dOut, R, D),
      rows: R,
      dim: D,
    };
    const outV = uploadView(ctx, "out", new Float32Array(R * D), R, D);
    const dxV = uploadView(ctx, "dX", new Float32Array(R * D), R, D);
    const dwV = uploadView(ctx, "dW", new Float32Array(D), 1, D);
    record(ctx, (p) => {
      ops.forwardTrain(p, { ...views, out: outV, eps });
      ops.backward(p, { ...views, dX: dxV, dWeight: dwV, accumulate: false });
    });
    close("rmsnorm train out", await readView(ctx, outV, R, D), wantOut, 1e-6, what);
    close("rmsnorm invRms", await readView(ctx, views.invRms, 1, R), wantR, 1e-6, what);
    close("rmsnorm dX", await readView(ctx, dxV, R, D), wantDX, 1e-5, what, 1);
    close("rmsnorm dW", await readView(ctx, dwV, 1, D), wantDW, 1e-5, what, Math.sqrt(R));
    for (const v of [views.x, views.weight, views.invRms, views.dOut, outV, dxV, dwV]) v.buffer.destroy();
  }
  const d = new Dispatcher(ctx, "options");
  assert.equal(new RmsnormOps(d, { compact: true }).kernel, "serial");
  assert.equal(new RmsnormOps(d, { compact: false }).kernel, "parallel");
  assert.throws(() => new RmsnormOps(d, { kernel: "fast" as "serial" }), TypeError);
  assert.throws(() => new RmsnormOps(d, { serialThreads: 0 }), RangeError);
});

Deno.test("webgpu rope training forward and backward match ropeForward / ropeBackward (windows, q|k)", async () => {
  const { ctx, rope } = await setup();
  const rng = new Rng(2);
  const theta = 10000;
  let n = 0;
  for (const hs of HEAD_SIZES) {
    for (const B of [1, 3]) {
      for (const T of [1, 5, 33]) {
        const fused = n % 2 === 0, pos0 = n % 3 === 2 ? 7 : 0;
        n++;
        const R = B * T, qW = 2 * hs, kW = hs;
        const what = `hs ${hs} B ${B} T ${T} pos0 ${pos0} ${fused ? "q|k in one buffer" : "separate"}`;
        const q = rng.normals(R * qW), k = rng.normals(R * kW);
        const want = (v: Float32Array, width: number, inverse: boolean) => {
          const out = v.slice();
          for (let b = 0; b < B; b++) {
            const win = out.subarray(b * T * width, (b + 1) * T * width);
            if (inverse) ropeBackward(win, T, width, hs, pos0, theta);
            else ropeForward(win, T, width, hs, pos0, theta);
          }
          return out;
        };
        let qV: GpuView, kV: GpuView;
        if (fused) {
          // One (R, qW + kW + 1) buffer holding q | k | one spare column, from word 3.
          const W = qW + kW + 1;
          const all = new Float32Array(R * W);
          for (let r = 0; r < R; r++) {
            all.set(q.subarray(r * qW, (r + 1) * qW), r * W);
            all.set(k.subarray(r * kW, (r + 1) * kW), r * W + qW);
          }
          const buf = uploadView(ctx, "q|k", all, R, W, 3).buffer;
          qV = { buffer: buf, offset: 3, stride: W };
          kV = { buffer: buf, offset: 3 + qW, stride: W };
        } else {
          qV = uploadView(ctx, "q", q, R, qW, 2, qW + 2);
          kV = uploadView(ctx, "k", k, R, kW, 5);
        }
        const args = { q: qV, qWidth: qW, k: kV, kWidth: kW, rows: R, window: T, pos0, headSize: hs, theta };
        record(ctx, (p) => rope.forwardTrain(p, args));
        close("rope train", await readView(ctx, qV, R, qW), want(q, qW, false), 1e-5, `q ${what}`);
        close("rope train", await readView(ctx, kV, R, kW), want(k, kW, false), 1e-5, `k ${what}`);
        // The backward of the rotated values gives back the inputs; compare with the CPU backward too.
        const rq = want(q, qW, false), rk = want(k, kW, false);
        record(ctx, (p) => rope.backward(p, args));
        close("rope backward", await readView(ctx, qV, R, qW), want(rq, qW, true), 1e-5, `q ${what}`);
        close("rope backward", await readView(ctx, kV, R, kW), want(rk, kW, true), 1e-5, `k ${what}`);
        close("rope round trip", await readView(ctx, qV, R, qW), q, 1e-5, what);
      }
    }
  }
  const qV = uploadView(ctx, "q", rng.normals(12), 3, 4);
  const base = { q: qV, qWidth: 4, rows: 3, headSize: 4, theta };
  attempt(ctx, (p) => assert.throws(() => rope.backward(p, { ...base, window: 2 }), RangeError));
  attempt(ctx, (p) => assert.throws(() => rope.backward(p, { ...base, headSize: 3 }), RangeError));
});

Deno.test("webgpu swiglu training forward and backward match swigluForward / swigluBackward", async () => {
  const { ctx, swiglu } = await setup();
  const rng = new Rng(3);
  let n = 0;
  for (const H of [1, 7, 64, 130]) {
    for (const R of [1, 5, 33]) {
      const fused = n % 2 === 0, accumulate = n % 3 !== 1;
      n++;
      const what = `H ${H} R ${R} ${fused ? "fused a|b, dA|dB" : "separate"} accumulate ${accumulate}`;
      const a = rng.normals(R * H, 3), b = rng.normals(R * H), g = rng.normals(R * H);
      a[0] = -120, a[R * H - 1] = 95; // σ saturates: still finite
      const dA0 = accumulate ? rng.normals(R * H) : new Float32Array(R * H);
      const dB0 = accumulate ? rng.normals(R * H) : new Float32Array(R * H);
      const wantA = dA0.slice(), wantB = dB0.slice();
      swigluBackward(g, a, b, wantA, wantB);
      let aV: GpuView, bV: GpuView, daV: GpuView, dbV: GpuView;
      const fill = (x: Float32Array) => accumulate ? x : new Float32Array(x.length).fill(NaN);
      if (fused) {
        // (R, 2H + 1) rows holding a | b (and dA | dB) from word 1.
        const pack = (x: Float32Array, y: Float32Array) => {
          const all = new Float32Array(R * (2 * H + 1));
          for (let r = 0; r < R; r++) {
            all.set(x.subarray(r * H, (r + 1) * H), r * (2 * H + 1));
            all.set(y.subarray(r * H, (r + 1) * H), r * (2 * H + 1) + H);
          }
          return uploadView(ctx, "fused", all, R, 2 * H + 1, 1).buffer;
        };
        const ab = pack(a, b), dab = pack(fill(dA0), fill(dB0));
        aV = { buffer: ab, offset: 1, stride: 2 * H + 1 };
        bV = { buffer: ab, offset: 1 + H, stride: 2 * H + 1 };
        daV = { buffer: dab, offset: 1, stride: 2 * H + 1 };
        dbV = { buffer: dab, offset: 1 + H, stride: 2 * H + 1 };
      } else {
        aV = uploadView(ctx, "a", a, R, H, 2, H + 1);
        bV = uploadView(ctx, "b", b, R, H);
        daV = uploadView(ctx, "dA", fill(dA0), R, H, 3);
        dbV = uploadView(ctx, "dB", fill(dB0), R, H, 0, H + 5);
      }
      const outV = uploadView(ctx, "out", new Float32Array(R * H), R, H, 6);
      const gV = uploadView(ctx, "dOut", g, R, H, 1);
      record(ctx, (p) => {
        swiglu.forwardTrain(p, { a: aV, b: bV, out: outV, rows: R, cols: H });
        swiglu.backward(p, { dOut: gV, a: aV, b: bV, dA: daV, dB: dbV, rows: R, cols: H, accumulate });
      });
      close("swiglu train", await readView(ctx, outV, R, H), swigluForward(a, b), 1e-6, what);
      close("swiglu dA", await readView(ctx, daV, R, H), wantA, 1e-6, what);
      close("swiglu dB", await readView(ctx, dbV, R, H), wantB, 1e-6, what);
      assert.deepEqual(await readView(ctx, aV, R, H), a, `a is left as it was, ${what}`);
    }
  }
  const v = uploadView(ctx, "v", new Float32Array(8), 2, 4);
  const w = uploadView(ctx, "w", new Float32Array(8), 2, 4);
  attempt(
    ctx,
    (p) => assert.throws(() => swiglu.forwardTrain(p, { a: v, b: w, out: v, rows: 2, cols: 4 }), TypeError),
  );
  attempt(ctx, (p) =>
    assert.throws(
      () => swiglu.backward(p, { dOut: w, a: w, b: w, dA: v, dB: w, rows: 2, cols: 4 }),
      TypeError,
    ));
});

/** Test reference of the embedding backward: dE[ids[t]] += dOut[t] (scatter-add). dOut (N, D), dE (V, D). */
function embeddingBackwardRef(dOut: Float32Array, ids: ArrayLike<number>, D: number, dE: Float32Array): void {
  for (let t = 0; t < ids.length; t++) {
    for (let i = 0; i < D; i++) dE[ids[t] * D + i] += dOut[t * D + i];
  }
}

Deno.test("embedding backward reference passes a finite-difference check; token bucketing", () => {
  // loss(E) = Σ_t Σ_i G[t, i] · E[ids[t], i], the gather's output dotted with a fixed G: its gradient
  // with respect to E is the scatter-add of G by id.
  const rng = new Rng(4);
  const V = 6, D = 3, ids = [4, 1, 4, 0, 4];
  const E = Array.from(rng.normals(V * D), Number), G = Array.from(rng.normals(ids.length * D), Number);
  const loss = (e: number[]) => {
    let s = 0;
    ids.forEach((id, t) => {
      for (let i = 0; i < D; i++) s += G[t * D + i] * e[id * D + i];
    });
    return s;
  };
  const dE = new Float32Array(V * D);
  embeddingBackwardRef(Float32Array.from(G), ids, D, dE);
  const h = 1e-3;
  for (let j = 0; j < V * D; j++) {
    const up = E.slice(), down = E.slice();
    up[j] += h, down[j] -= h;
    const fd = (loss(up) - loss(down)) / (2 * h);
    assert.ok(Math.abs(fd - dE[j]) <= 1e-5 * Math.max(1, Math.abs(fd)), `dE[${j}]: ${dE[j]} vs ${fd}`);
  }

  const b = bucketTokenIds([5, 2, 5, 7, 2, 5], 8);
  assert.deepEqual([...b.ids], [2, 5, 7]);
  assert.deepEqual([...b.starts], [0, 2, 5, 6]);
  assert.deepEqual([...b.rows], [1, 4, 0, 2, 5, 3]);
  const one = bucketTokenIds([3], 4);
  assert.deepEqual([[...one.ids], [...one.starts], [...one.rows]], [[3], [0, 1], [0]]);
  assert.throws(() => bucketTokenIds([1, 8], 8), RangeError);
  assert.throws(() => bucketTokenIds([1, -1], 8), RangeError);
  assert.throws(() => bucketTokenIds([0.5], 8), RangeError);
});

Deno.test("webgpu embedding backward matches the scatter-add (ragged D, repeats, strided views)", async () => {
  const { ctx, emb } = await setup();
  const rng = new Rng(5);
  // A reused upload target with an offset, as a trainer would keep one.
  const target = {
    buffer: createStorageBuffer(ctx, "buckets", (3 + maxTokenBucketWords(99)) * 4),
    offset: 3,
  };
  let n = 0;
  for (const D of [1, 7, 64, 130]) {
    for (const [V, N] of [[7, 1], [7, 15], [50, 99]]) {
      const accumulate = n++ % 2 === 0;
      const what = `D ${D} V ${V} N ${N} accumulate ${accumulate}`;
      // Skewed ids: a few repeat many times (as frequent tokens do), some never appear.
      const ids = Array.from({ length: N }, () => (rng.next() < 0.5 ? rng.int(3) : rng.int(V)));
      const dOut = rng.normals(N * D);
      const dE0 = rng.normals(V * D);
      const want = dE0.slice();
      if (!accumulate) {
        for (const id of new Set(ids)) want.fill(0, id * D, (id + 1) * D);
      }
      embeddingBackwardRef(dOut, ids, D, want);
      const buckets = uploadTokenBuckets(ctx, bucketTokenIds(ids, V), n % 3 === 0 ? undefined : target);
      const gV = uploadView(ctx, "dOut", dOut, N, D, 2, D + 1);
      const eV = uploadView(ctx, "dE", dE0, V, D, 5, D + 3);
      record(ctx, (p) => emb.backward(p, { buckets, dOut: gV, dTable: eV, vocab: V, dim: D, accumulate }));
      close("embedding dE", await readView(ctx, eV, V, D), want, 1e-6, what);
    }
  }
  const buckets = uploadTokenBuckets(ctx, bucketTokenIds([1, 2], 4));
  const g = uploadView(ctx, "g", new Float32Array(8), 2, 4);
  attempt(
    ctx,
    (p) => assert.throws(() => emb.backward(p, { buckets, dOut: g, dTable: g, vocab: 4, dim: 4 }), TypeError),
  );
  const small = uploadView(ctx, "dE", new Float32Array(8), 2, 4);
  attempt(
    ctx,
    (p) =>
      assert.throws(() => emb.backward(p, { buckets, dOut: g, dTable: small, vocab: 4, dim: 4 }), RangeError),
  );
  assert.throws(
    () => uploadTokenBuckets(ctx, bucketTokenIds([1, 2, 3], 4), { buffer: small.buffer, offset: 2 }),
    RangeError,
  );
});

interface AttentionCase {
  hs: number;
  nH: number;
  nKV: number;
  T: number;
  B: number;
}

/** Log-sum-exp of each query's scaled causal scores, (B, nH, T), in f64: the reference for lse. */
function attentionLse(q: Float32Array, k: Float32Array, c: AttentionCase): Float32Array {
  const { hs, nH, nKV, T, B } = c;
  const qD = nH * hs, kvD = nKV * hs, group = nH / nKV, scale = 1 / Math.sqrt(hs);
  const out = new Float32Array(B * nH * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nH; h++) {
      const kh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < hs; i++) {
            dot += q[(b * T + t) * qD + h * hs + i] * k[(b * T + s) * kvD + kh * hs + i];
          }
          scores.push(dot * scale);
        }
        const m = Math.max(...scores);
        out[(b * nH + h) * T + t] = m + Math.log(scores.reduce((a, x) => a + Math.exp(x - m), 0));
      }
    }
  }
  return out;
}

async function checkAttention(
  kit: Kit,
  ops: AttentionTrainOps,
  c: AttentionCase,
  layout: "fused" | "separate" | "aligned",
  accumulate: boolean,
  rng: Rng,
): Promise<void> {
  const { ctx } = kit;
  const { hs, nH, nKV, T, B } = c;
  const R = B * T, qD = nH * hs, kvD = nKV * hs;
  const shape = { nHeads: nH, nKvHeads: nKV, headSize: hs };
  const what = `hs ${hs} nH ${nH} nKV ${nKV} T ${T} B ${B} ${layout} accumulate ${accumulate} ${ops.kernel}`;
  const q = rng.normals(R * qD), k = rng.normals(R * kvD), v = rng.normals(R * kvD);
  const dOut = rng.normals(R * qD);
  const init = () => [rng.normals(R * qD), rng.normals(R * kvD), rng.normals(R * kvD)];
  const [dQ0, dK0, dV0] = accumulate ? init() : [R * qD, R * kvD, R * kvD].map((n) => new Float32Array(n));
  // The reference, one window at a time.
  const wantOut = new Float32Array(R * qD);
  const [wantDQ, wantDK, wantDV] = [dQ0.slice(), dK0.slice(), dV0.slice()];
  for (let b = 0; b < B; b++) {
    const rows = (x: Float32Array, w: number) => x.subarray(b * T * w, (b + 1) * T * w);
    const probs = new Float32Array(nH * T * T);
    attentionForward(rows(q, qD), rows(k, kvD), rows(v, kvD), T, T, shape, rows(wantOut, qD), probs);
    attentionBackward(
      rows(dOut, qD),
      rows(q, qD),
      rows(k, kvD),
      rows(v, kvD),
      probs,
      T,
      T,
      shape,
      rows(wantDQ, qD),
      rows(wantDK, kvD),
      rows(wantDV, kvD),
    );
  }
  const wantLse = attentionLse(q, k, c);

  // Inputs and gradients: one fused (R, qD + 2 kvD + 1) buffer each from word 3 (the dK/dV pass then
  // writes both through one binding), or separate buffers with their own offsets and strides, or fused
  // (R, qD + 2 kvD + 4) buffers from word 4 (every view 4-word aligned: the serial kernels' vec4 loads).
  const views = (label: string, xs: Float32Array[], fill: boolean): GpuView[] => {
    const widths = [qD, kvD, kvD];
    const data = xs.map((x) => (fill ? x : new Float32Array(x.length).fill(NaN)));
    if (layout === "separate") {
      return data.map((x, i) => uploadView(ctx, `${label}${i}`, x, R, widths[i], 2 + i, widths[i] + i));
    }
    const [W, base] = layout === "aligned" ? [qD + 2 * kvD + 4, 4] : [qD + 2 * kvD + 1, 3];
    const all = new Float32Array(R * W);
    for (let r = 0; r < R; r++) {
      data.forEach((x, i) =>
        all.set(x.subarray(r * widths[i], (r + 1) * widths[i]), r * W + [0, qD, qD + kvD][i])
      );
    }
    const buffer = uploadView(ctx, label, all, R, W, base).buffer;
    return [0, qD, qD + kvD].map((at) => ({ buffer, offset: base + at, stride: W }));
  };
  const [qV, kV, vV] = views("qkv", [q, k, v], true);
  const [dqV, dkV, dvV] = views("dqkv", [dQ0, dK0, dV0], accumulate);
  const outV = layout === "aligned"
    ? uploadView(ctx, "out", new Float32Array(R * qD), R, qD, 8, qD + 4)
    : uploadView(ctx, "out", new Float32Array(R * qD), R, qD, 1, qD + 2);
  const gV = uploadView(ctx, "dOut", dOut, R, qD, 4);
  const lseV = uploadView(ctx, "lse", new Float32Array(B * nH * T), 1, B * nH * T, 6);
  const deltaV = uploadView(ctx, "delta", new Float32Array(B * nH * T), 1, B * nH * T, 2);
  const args = { q: qV, k: kV, v: vV, out: outV, lse: lseV, windows: B, tokens: T, ...shape };
  record(ctx, (p) => {
    ops.forward(p, args);
    ops.backward(p, { ...args, dOut: gV, delta: deltaV, dQ: dqV, dK: dkV, dV: dvV, accumulate });
  });
  close("attention train out", await readView(ctx, outV, R, qD), wantOut, 1e-5, what);
  close("attention lse", await readView(ctx, lseV, 1, B * nH * T), wantLse, 1e-5, what);
  // dS = P·(dP − D) cancels (to 0 exactly at T = 1): measure dQ, dK against terms of size ~1.
  close("attention dQ", await readView(ctx, dqV, R, qD), wantDQ, 1e-5, what, 1);
  close("attention dK", await readView(ctx, dkV, R, kvD), wantDK, 1e-5, what, 1);
  close("attention dV", await readView(ctx, dvV, R, kvD), wantDV, 1e-5, what);
}

const LAYOUTS = ["fused", "separate", "aligned"] as const;

Deno.test("webgpu training attention (serial kernels) matches attentionForward / attentionBackward", async () => {
  const kit = await setup();
  const rng = new Rng(6);
  let n = 0;
  for (const hs of HEAD_SIZES) {
    for (const [nH, nKV] of [[4, 2], [2, 2]]) {
      for (const T of [1, 5, 33]) {
        for (const B of [1, 3]) {
          // vec4 loads (aligned) at hs 8 only: each variant costs a cold LLVM compile on llvmpipe.
          const layout = hs === 8 ? LAYOUTS[n % 3] : LAYOUTS[n % 2];
          await checkAttention(kit, kit.att, { hs, nH, nKV, T, B }, layout, n++ % 4 !== 2, rng);
        }
      }
    }
  }
});

Deno.test("webgpu training attention: serial with other slots (GQA groups 1..4), parallel tiles", async () => {
  const kit = await setup();
  const rng = new Rng(7);
  assert.deepEqual(kit.att.slots(8), { forward: 16, dq: 16, dkv: 8 });
  assert.deepEqual(kit.attSlots.slots(8), { forward: 2, dq: 1, dkv: 2 });
  assert.deepEqual(kit.attGpu.geometry(8).dq, { rows: 16, cols: 32, threads: 4 });
  assert.deepEqual(kit.attOdd.geometry(16), ODD_TILES);
  assert.equal(kit.attPar.kernel, "parallel");
  for (const [i, [T, B]] of [[1, 1], [33, 3], [19, 2], [70, 1]].entries()) {
    const layout = LAYOUTS[i % 2];
    // Serial: groups of 4 (two heads per invocation), 3 (one head, several queries), 1 and 8.
    await checkAttention(kit, kit.attSlots, { hs: 8, nH: 8, nKV: 2, T, B }, layout, B !== 1, rng);
    await checkAttention(kit, kit.attSlots, { hs: 8, nH: 6, nKV: 2, T, B }, LAYOUTS[(i + 1) % 2], true, rng);
    await checkAttention(kit, kit.att, { hs: 8, nH: 3, nKV: 3, T, B }, LAYOUTS[(i + 2) % 3], B !== 2, rng);
    await checkAttention(kit, kit.att, { hs: 4, nH: 8, nKV: 1, T, B }, layout, false, rng);
    // Parallel: compact, GPU and odd tiles.
    await checkAttention(kit, kit.attPar, { hs: 8, nH: 4, nKV: 2, T, B }, layout, B !== 1, rng);
    await checkAttention(kit, kit.attGpu, { hs: 8, nH: 4, nKV: 2, T, B }, "fused", B !== 1, rng);
    await checkAttention(kit, kit.attOdd, { hs: 16, nH: 4, nKV: 1, T, B }, "separate", B !== 2, rng);
    await checkAttention(kit, kit.attOdd, { hs: 16, nH: 2, nKV: 2, T, B }, "fused", true, rng);
  }
});

Deno.test("training attention geometry fits the limits; launchers reject bad shapes and aliasing", async () => {
  for (const hs of [4, 64, 128, 256]) {
    for (const [maxSharedBytes, maxInvocations] of [[16384, 256], [32768, 256], [49152, 1024]]) {
      for (const compact of [false, true]) {
        const g = attentionTrainGeometry(hs, { maxSharedBytes, maxInvocations, compact });
        for (const t of [g.forward, g.dq, g.dkv]) {
          const what = `hs ${hs} compact ${compact}: ${JSON.stringify(t)}`;
          assert.ok(t.rows * t.threads <= maxInvocations && t.cols % 4 === 0, what);
          assert.ok(Math.ceil(hs / 4 / t.threads) <= 4, what);
        }
      }
    }
  }
  // Compact tiles: as few threads per row as 4 vec4 per thread allow, 8 × 8 while within 8 KiB.
  const cpu = attentionTrainGeometry(64, { maxSharedBytes: 32768, maxInvocations: 256, compact: true });
  assert.deepEqual(cpu.forward, { rows: 8, cols: 8, threads: 4 });
  assert.deepEqual(cpu.dkv, { rows: 4, cols: 8, threads: 4 });
  const big = attentionTrainGeometry(64, { maxSharedBytes: 32768, maxInvocations: 256 });
  assert.deepEqual(big.forward, { rows: 16, cols: 32, threads: 16 });
  assert.throws(() => attentionTrainGeometry(6, { maxSharedBytes: 32768, maxInvocations: 256 }), RangeError);

  // Serial slots: within the budgets, powers of two ≤ 16.
  for (const hs of [4, 8, 16, 32, 64, 128, 256]) {
    const n = attentionSerialSlots(hs);
    for (const [kernel, budget] of [["forward", 256], ["dq", 128], ["dkv", 64]] as const) {
      assert.ok(
        [1, 2, 4, 8, 16].includes(n[kernel]) && (n[kernel] === 1 || n[kernel] * hs <= budget),
        `${hs} ${kernel}`,
      );
    }
  }
  assert.deepEqual(attentionSerialSlots(64), { forward: 4, dq: 2, dkv: 1 });
  assert.deepEqual(attentionSerialSlots(16), { forward: 16, dq: 8, dkv: 4 });
  assert.throws(() => attentionSerialSlots(6), RangeError);

  const { ctx, att, attPar } = await setup();
  const d = new Dispatcher(ctx, "options");
  assert.equal(new AttentionTrainOps(d, { compact: true }).kernel, "serial");
  assert.equal(new AttentionTrainOps(d, { compact: false }).kernel, "parallel");
  assert.throws(() => new AttentionTrainOps(d, { kernel: "fast" as "serial" }), TypeError);
  assert.throws(() => new AttentionTrainOps(d, { slots: { dq: 3 } }), RangeError);
  assert.throws(() => new AttentionTrainOps(d, { serialThreads: 1000 }), RangeError);
  const buf = (words: number) => ({ buffer: createStorageBuffer(ctx, "b", words * 4) });
  const [q, k, v, out, lse] = [buf(64), buf(64), buf(64), buf(64), buf(16)];
  const args = { q, k, v, out, lse, windows: 1, tokens: 2, nHeads: 2, nKvHeads: 1, headSize: 4 };
  for (const ops of [att, attPar]) {
    // attPar has no hs 4 pipelines: only the checks before the pipeline lookup apply to it.
    const ready = ops === att;
    if (ready) attempt(ctx, (p) => ops.forward(p, args)); // accepted
    attempt(ctx, (p) => assert.throws(() => ops.forward(p, { ...args, nKvHeads: 3, nHeads: 4 }), RangeError));
    attempt(ctx, (p) => assert.throws(() => ops.forward(p, { ...args, headSize: 12 }), /prepare/));
    attempt(ctx, (p) => assert.throws(() => ops.forward(p, { ...args, out: q }), TypeError));
    attempt(ctx, (p) => assert.throws(() => ops.forward(p, { ...args, tokens: 64 }), RangeError));
    const grads = { dOut: buf(64), delta: buf(16), dQ: buf(64), dK: buf(64), dV: buf(64) };
    if (ready) attempt(ctx, (p) => ops.backward(p, { ...args, ...grads })); // accepted
    attempt(ctx, (p) => assert.throws(() => ops.backward(p, { ...args, ...grads, delta: lse }), TypeError));
    if (ready) {
      attempt(ctx, (p) => assert.throws(() => ops.backward(p, { ...args, ...grads, dK: q }), TypeError));
    }
    await assert.rejects(ops.prepare({ headSizes: [6] }), RangeError);
  }
});

Deno.test("webgpu training ops: max relative errors per kernel", async () => {
  await setup();
  const rows = [...maxErrors].map(([k, v]) => `${k.padEnd(22)} ${v.toExponential(2)}`);
  console.log(`\n${rows.join("\n")}`);
  assert.ok(maxErrors.size > 0);
});
