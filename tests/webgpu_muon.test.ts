// Muon on WebGPU (src/train/webgpu_muon.ts) against the CPU reference muonStep (src/train/muon.ts) over
// several steps: wide, tall and square ragged shapes, strided views at offsets, two tensors sharing the
// scratch in one pass, a learning-rate change between submits. Fails (does not skip) without a WebGPU
// adapter: CI has llvmpipe.

import assert from "node:assert/strict";
import { createStorageBuffer, type GpuContext, readF32, requestGpu } from "../src/backend/webgpu/device.ts";
import type { GpuView } from "../src/backend/webgpu/dispatch.ts";
import { type GpuMuonArgs, WebGpuMuon } from "../src/train/webgpu_muon.ts";
import { muonStep } from "../src/train/muon.ts";
import { Rng } from "../src/util/rng.ts";

const gpu = await requestGpu();
const muonPromise = gpu ? WebGpuMuon.create(gpu) : null;

async function setup(): Promise<{ ctx: GpuContext; muon: WebGpuMuon }> {
  if (!gpu || !muonPromise) {
    throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; see ENGINEERING.md §1)");
  }
  return { ctx: gpu, muon: await muonPromise };
}

/** One (rows, cols) tensor on both sides: CPU arrays and strided GPU views at offsets (NaN padding). */
class Tensor {
  readonly w: Float32Array;
  readonly m: Float32Array;
  readonly w0: Float32Array;
  readonly views: { w: GpuView; g: GpuView; m: GpuView };
  constructor(ctx: GpuContext, rng: Rng, readonly rows: number, readonly cols: number, readonly pad: number) {
    this.w = rng.normals(rows * cols, 0.1);
    this.w0 = Float32Array.from(this.w);
    this.m = new Float32Array(rows * cols);
    const view = (label: string, data: Float32Array, offset: number): GpuView => {
      const stride = cols + pad;
      const all = new Float32Array(offset + rows * stride + 3).fill(NaN);
      for (let r = 0; r < rows; r++) all.set(data.subarray(r * cols, (r + 1) * cols), offset + r * stride);
      return { buffer: createStorageBuffer(ctx, label, all), offset, stride };
    };
    this.views = {
      w: view("w", this.w, 5),
      g: view("g", new Float32Array(rows * cols), 2),
      m: view("m", this.m, 7),
    };
  }

  /** Writes gradient g (rows, cols) into the GPU view. */
  setGradient(ctx: GpuContext, grad: Float32Array): void {
    const g = Float32Array.from(grad);
    const { buffer, offset = 0, stride = this.cols } = this.views.g;
    for (let r = 0; r < this.rows; r++) {
      ctx.device.queue.writeBuffer(buffer, (offset + r * stride) * 4, g, r * this.cols, this.cols);
    }
  }

  /** Reads a (rows, cols) view back. */
  async read(ctx: GpuContext, v: GpuView): Promise<Float32Array> {
    const { offset = 0, stride = this.cols } = v;
    const all = await readF32(ctx, v.buffer, offset + this.rows * stride);
    const out = new Float32Array(this.rows * this.cols);
    for (let r = 0; r < this.rows; r++) {
      out.set(all.subarray(offset + r * stride, offset + r * stride + this.cols), r * this.cols);
    }
    for (let r = 0; r < this.rows && stride > this.cols; r++) {
      assert.ok(Number.isNaN(all[offset + r * stride + this.cols]), "padding between rows was written");
    }
    return out;
  }

  destroy(): void {
    for (const v of Object.values(this.views)) v.buffer.destroy();
  }
}

/** max |got − want| / max |want| (at least 1e-12). */
function rel(got: Float32Array, want: Float32Array): number {
  let scale = 1e-12, err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    const e = Math.abs(got[i] - want[i]);
    err = Number.isNaN(e) ? Infinity : Math.max(err, e);
  }
  return err / scale;
}

/** Checks momentum and the accumulated weight change (w − w0) of a tensor against the CPU. */
async function compare(ctx: GpuContext, t: Tensor, what: string, tol = 1e-4): Promise<number> {
  const [w, m] = [await t.read(ctx, t.views.w), await t.read(ctx, t.views.m)];
  const em = rel(m, t.m);
  const dGot = w.map((v, i) => v - t.w0[i]), dWant = t.w.map((v, i) => v - t.w0[i]);
  const ew = rel(dGot, dWant);
  assert.ok(em < 1e-5, `${what}: momentum relative error ${em}`);
  assert.ok(ew < tol, `${what}: weight-update relative error ${ew}`);
  return ew;
}

type Hyper = Omit<GpuMuonArgs, "w" | "g" | "m" | "rows" | "cols">;

Deno.test("webgpu muon matches muonStep over 3 steps on ragged wide, tall and square shapes", async () => {
  const { ctx, muon } = await setup();
  const rng = new Rng(21);
  const cases: [number, number, Hyper][] = [
    [7, 13, {}],
    [64, 172, { weightDecay: 0.1 }],
    [172, 64, {}],
    [13, 7, { nesterov: false, momentum: 0.9, nsSteps: 2 }],
    [33, 33, {}],
    [1, 5, { nsSteps: 0 }],
  ];
  const errs: string[] = [];
  for (const [rows, cols, hyper] of cases) {
    const t = new Tensor(ctx, rng, rows, cols, rows === 1 ? 0 : 3);
    const lrs = [0.02, 0.02, 0.005];
    for (let step = 0; step < lrs.length; step++) {
      const g = rng.normals(rows * cols, 0.05 + 0.1 * step);
      t.setGradient(ctx, g);
      muon.setLearningRate(lrs[step]);
      const enc = ctx.device.createCommandEncoder({ label: "muon test" });
      const pass = enc.beginComputePass({ label: "muon test" });
      muon.step(pass, { ...t.views, rows, cols, ...hyper });
      pass.end();
      ctx.device.queue.submit([enc.finish()]);
      muonStep(t.w, g, t.m, rows, cols, { lr: lrs[step], ...hyper });
    }
    errs.push(
      `${rows}×${cols} ${
        (await compare(ctx, t, `${rows}×${cols} ${JSON.stringify(hyper)}`)).toExponential(1)
      }`,
    );
    t.destroy();
  }
  console.log(`webgpu muon vs CPU, weight-update relative error after 3 steps: ${errs.join(", ")}`);
});

Deno.test("webgpu muon: two tensors share the scratch in one pass; cached bind groups stay constant", async () => {
  const { ctx, muon } = await setup();
  const rng = new Rng(8);
  const ts = [new Tensor(ctx, rng, 40, 24, 0), new Tensor(ctx, rng, 24, 40, 2)];
  muon.setLearningRate(0.01);
  let groups = 0;
  for (let step = 0; step < 3; step++) {
    const enc = ctx.device.createCommandEncoder({ label: "muon test" });
    const pass = enc.beginComputePass({ label: "muon test" });
    for (const t of ts) {
      const g = rng.normals(t.rows * t.cols);
      t.setGradient(ctx, g);
      muon.step(pass, { ...t.views, rows: t.rows, cols: t.cols });
      muonStep(t.w, g, t.m, t.rows, t.cols, { lr: 0.01 });
    }
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
    if (step === 1) groups = muon.cachedBindGroups + muon.gemm.cachedBindGroups;
  }
  assert.equal(
    muon.cachedBindGroups + muon.gemm.cachedBindGroups,
    groups,
    "steady state creates no bind groups",
  );
  for (const t of ts) {
    await compare(ctx, t, `${t.rows}×${t.cols} in a shared pass`);
    t.destroy();
  }
  // Argument checks.
  const enc = ctx.device.createCommandEncoder({ label: "checks" });
  const pass = enc.beginComputePass({ label: "checks" });
  const b = createStorageBuffer(ctx, "b", 64);
  assert.throws(
    () => muon.step(pass, { w: { buffer: b }, g: { buffer: b }, m: { buffer: b }, rows: 2, cols: 2 }),
    {
      name: "TypeError",
      message: /written and bound twice/,
    },
  );
  const m = createStorageBuffer(ctx, "m", 64);
  assert.throws(
    () => muon.step(pass, { w: { buffer: b }, g: { buffer: b }, m: { buffer: m }, rows: 4, cols: 5 }),
    { name: "RangeError", message: /needs 80 bytes/ },
  );
  assert.throws(
    () =>
      muon.step(pass, { w: { buffer: b }, g: { buffer: b, stride: 1 }, m: { buffer: m }, rows: 2, cols: 2 }),
    /expected g.stride to be an integer ≥ 2, found 1/,
  );
  assert.throws(() => muon.setLearningRate(-1), RangeError);
  pass.end();
  enc.finish();
  b.destroy();
  m.destroy();
});

Deno.test("webgpu muon: a batched step equals separate steps per matrix (wide, tall, ragged; strided rows)", async () => {
  const { ctx, muon } = await setup();
  const rng = new Rng(12);
  for (
    const [rows, cols, count, pad, gap] of [[13, 7, 3, 2, 5], [7, 13, 2, 0, 0], [64, 172, 3, 0, 4], [
      172,
      64,
      2,
      1,
      3,
    ]]
  ) {
    const stride = cols + pad, extent = (rows - 1) * stride + cols, batch = extent + gap;
    // Matrix z of w, g, m at offset + z · batch, rows `stride` apart; NaN in the padding and the gaps.
    const layout = (offset: number, mats: Float32Array[]) => {
      const all = new Float32Array(offset + (count - 1) * batch + extent + 3).fill(NaN);
      mats.forEach((x, z) => {
        for (let r = 0; r < rows; r++) {
          all.set(x.subarray(r * cols, (r + 1) * cols), offset + z * batch + r * stride);
        }
      });
      return all;
    };
    const ws = Array.from({ length: count }, () => rng.normals(rows * cols, 0.1));
    const w0 = ws.map((w) => Float32Array.from(w));
    const ms = Array.from({ length: count }, () => new Float32Array(rows * cols));
    const wBuf = createStorageBuffer(ctx, "w", layout(3, ws));
    const gBuf = createStorageBuffer(ctx, "g", layout(1, ms));
    const mBuf = createStorageBuffer(ctx, "m", layout(6, ms));
    const views = {
      w: { buffer: wBuf, offset: 3, stride },
      g: { buffer: gBuf, offset: 1, stride },
      m: { buffer: mBuf, offset: 6, stride },
    };
    for (const lr of [0.02, 0.01]) {
      const gs = Array.from({ length: count }, () => rng.normals(rows * cols, 0.1));
      ctx.device.queue.writeBuffer(gBuf, 0, layout(1, gs));
      muon.setLearningRate(lr);
      const enc = ctx.device.createCommandEncoder({ label: "muon batch test" });
      const pass = enc.beginComputePass({ label: "muon batch test" });
      muon.step(pass, { ...views, rows, cols, count, batch, weightDecay: 0.05 });
      pass.end();
      ctx.device.queue.submit([enc.finish()]);
      for (let z = 0; z < count; z++) muonStep(ws[z], gs[z], ms[z], rows, cols, { lr, weightDecay: 0.05 });
    }
    const [wAll, mAll] = [await readF32(ctx, wBuf, wBuf.size / 4), await readF32(ctx, mBuf, mBuf.size / 4)];
    const want = layout(3, ws);
    for (let z = 0; z < count; z++) {
      const what = `${count}× ${rows}×${cols} matrix ${z}`;
      const pick = (all: Float32Array, offset: number) => {
        const x = new Float32Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          x.set(
            all.subarray(offset + z * batch + r * stride, offset + z * batch + r * stride + cols),
            r * cols,
          );
        }
        return x;
      };
      const dGot = pick(wAll, 3).map((v, i) => v - w0[z][i]), dWant = ws[z].map((v, i) => v - w0[z][i]);
      assert.ok(rel(dGot, dWant) < 1e-4, `${what}: weight-update relative error ${rel(dGot, dWant)}`);
      assert.ok(rel(pick(mAll, 6), ms[z]) < 1e-5, `${what}: momentum`);
    }
    // The padding and the gaps between matrices were not written.
    wAll.forEach((v, i) =>
      assert.equal(Number.isNaN(v), Number.isNaN(want[i]), `${rows}×${cols}: word ${i} of w`)
    );
    for (const b of [wBuf, gBuf, mBuf]) b.destroy();
  }
  // A batch needs its stride, at least one matrix's extent.
  const enc = ctx.device.createCommandEncoder({ label: "checks" });
  const pass = enc.beginComputePass({ label: "checks" });
  const [w, g, m] = ["w", "g", "m"].map((l) => ({ buffer: createStorageBuffer(ctx, l, 4096) }));
  assert.throws(() => muon.step(pass, { w, g, m, rows: 4, cols: 4, count: 2 }), /needs batch/);
  assert.throws(() => muon.step(pass, { w, g, m, rows: 4, cols: 4, count: 2, batch: 15 }), /batch .*\[16,/);
  pass.end();
  enc.finish();
});
