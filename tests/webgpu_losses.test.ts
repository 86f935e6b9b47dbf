// The loss kernels (kl_div, cross_entropy, mse) against the CPU references (klDivergence,
// meanSquaredError in src/train/losses.ts; crossEntropySoftmaxBackward in src/model/ops_backward.ts) on
// ragged shapes (V = 1, 7, 512, 4097; rows 1..33), strided views, gradient separate / in place / none,
// accumulate, unscored and invalid targets; both kernel families (parallel, and serial with scalar and
// vec4 loads). Fails (does not skip) without a WebGPU adapter.
//
// Dimension legend: rows = positions, V = vocabulary, D = hidden width.

import assert from "node:assert/strict";
import {
  createStorageBuffer,
  type GpuContext,
  readBuffer,
  requestGpu,
} from "../src/backend/webgpu/device.ts";
import { type GpuView, WebGpuLosses } from "../src/backend/webgpu/losses.ts";
import { crossEntropySoftmaxBackward } from "../src/model/ops_backward.ts";
import { klDivergence, meanSquaredError } from "../src/train/losses.ts";
import { Rng } from "../src/util/rng.ts";
import { record } from "./_gpu.ts";

const gpu = await requestGpu();
// The serial kernels (one invocation per row; what CPU adapters get), whatever the adapter.
const lossesPromise = gpu ? WebGpuLosses.create(gpu, { kernel: "serial" }) : null;
// The geometry real GPUs get (parallel, 256 threads per row), whatever the adapter.
const widePromise = gpu ? WebGpuLosses.create(gpu, { compact: false }) : null;
// Serial with one row per workgroup (a 2-D grid past 65535 rows), and parallel with compact workgroups.
const onePromise = gpu ? WebGpuLosses.create(gpu, { kernel: "serial", serialThreads: 1 }) : null;
const narrowPromise = gpu ? WebGpuLosses.create(gpu, { kernel: "parallel", compact: true }) : null;

interface Kit {
  ctx: GpuContext;
  losses: WebGpuLosses;
  wide: WebGpuLosses;
  one: WebGpuLosses;
  narrow: WebGpuLosses;
}

async function setup(): Promise<Kit> {
  if (!gpu || !lossesPromise || !widePromise || !onePromise || !narrowPromise) {
    throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; see ENGINEERING.md §1)");
  }
  const [losses, wide, one, narrow] = await Promise.all([
    lossesPromise,
    widePromise,
    onePromise,
    narrowPromise,
  ]);
  return { ctx: gpu, losses, wide, one, narrow };
}

/**
 * The shapes, each three times: the serial kernels with unaligned views (scalar loads), the parallel
 * kernels, and the serial kernels with every view 4-word aligned (vec4 loads where V % 4 = 0).
 */
function cases(kit: Kit): { rows: number; width: number; losses: WebGpuLosses; aligned: boolean }[] {
  return [0, 1, 2].flatMap((pass) =>
    SHAPES.map(([rows, width]) => ({
      rows,
      width,
      losses: pass === 1 ? kit.wide : kit.losses,
      aligned: pass === 2,
    }))
  );
}

/** (offset, stride) of a (rows, width) view: `offset` and `width + extra`, or both rounded up to 4 words. */
function at(aligned: boolean, offset: number, width: number, extra: number): [number, number] {
  const up = (n: number) => Math.ceil(n / 4) * 4;
  return aligned ? [up(offset), up(width + extra)] : [offset, width + extra];
}

const SENTINEL = 0x7fc00123; // a NaN: stray reads poison results, stray writes change it
const SHAPES: [number, number][] = [[1, 1], [33, 1], [5, 7], [1, 512], [17, 512], [3, 4097], [33, 7]];

type Placed = GpuView & { words: Uint32Array; rows: number; width: number };

/** `data` (rows, width) at `offset` with row `stride` in a buffer of sentinels. */
function place(
  ctx: GpuContext,
  label: string,
  data: Float32Array | Int32Array,
  rows: number,
  width: number,
  offset: number,
  stride: number,
): Placed {
  const words = new Uint32Array(offset + (rows - 1) * stride + width + 2).fill(SENTINEL);
  const src = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let r = 0; r < rows; r++) words.set(src.subarray(r * width, (r + 1) * width), offset + r * stride);
  return { buffer: createStorageBuffer(ctx, label, words), offset, stride, words, rows, width };
}

/** The view's rows, after asserting every word outside them is unchanged. */
async function take(ctx: GpuContext, v: Placed, what: string): Promise<Float32Array> {
  const all = new Uint32Array(await readBuffer(ctx, v.buffer, v.words.length * 4));
  const out = new Uint32Array(v.rows * v.width);
  const inside = new Uint8Array(all.length);
  for (let r = 0; r < v.rows; r++) {
    const o = v.offset! + r * v.stride!;
    out.set(all.subarray(o, o + v.width), r * v.width);
    inside.fill(1, o, o + v.width);
  }
  for (let i = 0; i < all.length; i++) {
    if (!inside[i]) assert.equal(all[i], v.words[i], `${what}: word ${i} outside the view was written`);
  }
  return new Float32Array(out.buffer);
}

const worst = new Map<string, number>();

/** |got − want| ≤ tol for every element; records the largest error under `name`. */
function close(name: string, got: Float32Array, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let j = 0; j < want.length; j++) {
    const e = Math.abs(got[j] - want[j]);
    worst.set(name, Math.max(worst.get(name) ?? 0, e / tol));
    assert.ok(e <= tol, `${what}[${j}]: ${got[j]} vs ${want[j]} (tolerance ${tol})`);
  }
}

type Mode = "separate" | "inPlace" | "none" | "accumulate";
const MODES: Mode[] = ["separate", "inPlace", "none", "accumulate"];

Deno.test("webgpu kl_div matches klDivergence per row and in gradient (V 1..4097, rows 1..33, all modes)", async () => {
  const kit = await setup();
  const { ctx } = kit;
  const rng = new Rng(31);
  for (const { rows, width: V, losses, aligned } of cases(kit)) {
    for (const mode of MODES) {
      const s = rng.normals(rows * V, 3), t = rng.normals(rows * V, 3);
      const scale = mode === "accumulate" ? 0.37 : 1 / rows;
      const want = klDivergence(s, t, rows, V); // dLogits at scale 1 / rows
      const wantRows = Array.from(
        { length: rows },
        (_, r) => klDivergence(s.subarray(r * V, (r + 1) * V), t.subarray(r * V, (r + 1) * V), 1, V).loss,
      );
      const init = rng.normals(rows * V);
      const sV = place(ctx, "s", s, rows, V, ...at(aligned, 3, V, 2));
      const tV = place(ctx, "t", t, rows, V, ...at(aligned, 1, V, 0));
      const lV = place(ctx, "loss", new Float32Array(rows).fill(NaN), 1, rows, 5, rows);
      const dV = place(
        ctx,
        "grad",
        mode === "accumulate" ? init : new Float32Array(rows * V).fill(NaN),
        rows,
        V,
        ...at(aligned, 2, V, 5),
      );
      record(ctx, (pass) =>
        losses.klDivergence(pass, {
          student: sV,
          teacher: tV,
          rows,
          vocab: V,
          loss: lV,
          grad: mode === "separate" || mode === "accumulate" ? dV : undefined,
          inPlace: mode === "inPlace",
          accumulate: mode === "accumulate",
          scale: mode === "accumulate" ? scale : undefined,
        }));
      const what = `KL ${rows}x${V} ${mode} ${losses.kernel}${aligned ? " aligned" : ""}`;
      const maxLogit = s.reduce((a, x) => Math.max(a, Math.abs(x)), 0) +
        t.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      close("kl loss", await take(ctx, lV, `${what} loss`), wantRows, 2e-6 * (1 + maxLogit), `${what} loss`);
      const gradWant = want.dLogits.map((d, j) => (mode === "accumulate" ? init[j] : 0) + d * rows * scale);
      // exp's error grows with |argument| (WGSL: 3 + 2|x| ulp): 4e-6 leaves room for GPUs' exp.
      const tol = 4e-6 * scale + (mode === "accumulate" ? 2 ** -23 * 4 : 0);
      if (mode === "inPlace") {
        close("kl grad", await take(ctx, sV, `${what} grad`), gradWant, tol, `${what} grad`);
      }
      if (mode === "separate" || mode === "accumulate") {
        close("kl grad", await take(ctx, dV, `${what} grad`), gradWant, tol, `${what} grad`);
      }
      if (mode !== "inPlace") {
        assert.deepEqual(await take(ctx, sV, `${what} student`), s, `${what}: student unchanged`);
      }
      for (const v of [sV, tV, lV, dV]) v.buffer.destroy();
    }
  }
  console.log(`  worst error / tolerance: ${[...worst].map(([k, e]) => `${k} ${e.toFixed(3)}`).join(", ")}`);
});

Deno.test("webgpu cross_entropy matches crossEntropySoftmaxBackward (unscored and invalid targets, all modes)", async () => {
  const kit = await setup();
  const { ctx } = kit;
  const rng = new Rng(32);
  for (const { rows, width: V, losses, aligned } of cases(kit)) {
    for (const mode of MODES) {
      const x = rng.normals(rows * V, 3);
      const y = Int32Array.from(
        { length: rows },
        (_, r) => (r % 5 === 3 ? -1 : r % 7 === 5 ? V + 2 : rng.int(V)),
      );
      const scale = mode === "accumulate" ? 0.37 : 1 / rows;
      const init = rng.normals(rows * V);
      const xV = place(ctx, "logits", x, rows, V, ...at(aligned, 1, V, 3));
      const yV = place(ctx, "targets", y, 1, rows, 3, rows);
      const lV = place(ctx, "loss", new Float32Array(rows).fill(7), 1, rows, 0, rows);
      const dV = place(
        ctx,
        "grad",
        mode === "accumulate" ? init : new Float32Array(rows * V).fill(NaN),
        rows,
        V,
        ...at(aligned, 4, V, 0),
      );
      record(ctx, (pass) =>
        losses.crossEntropy(pass, {
          logits: xV,
          targets: { buffer: yV.buffer, offset: 3 },
          rows,
          vocab: V,
          loss: lV,
          grad: mode === "separate" || mode === "accumulate" ? dV : undefined,
          inPlace: mode === "inPlace",
          accumulate: mode === "accumulate",
          scale,
        }));
      const what = `CE ${rows}x${V} ${mode} ${losses.kernel}${aligned ? " aligned" : ""}`;
      const gotLoss = await take(ctx, lV, `${what} loss`);
      const gradWant = mode === "accumulate" ? init.slice() : new Float32Array(rows * V);
      for (let r = 0; r < rows; r++) {
        const row = x.subarray(r * V, (r + 1) * V);
        if (y[r] < 0) {
          assert.equal(gotLoss[r], 0, `${what}: unscored row ${r} has loss 0`);
        } else if (y[r] >= V) {
          assert.ok(Number.isNaN(gotLoss[r]), `${what}: target ${y[r]} ≥ V gives NaN, found ${gotLoss[r]}`);
        } else {
          const ref = crossEntropySoftmaxBackward(
            row,
            [y[r]],
            V,
            gradWant.subarray(r * V, (r + 1) * V),
            scale,
          );
          const maxLogit = row.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
          close(
            "ce loss",
            gotLoss.subarray(r, r + 1),
            [ref.loss],
            2e-6 * (1 + maxLogit),
            `${what} loss ${r}`,
          );
        }
      }
      // exp's error grows with |argument| (WGSL: 3 + 2|x| ulp): 4e-6 leaves room for GPUs' exp.
      const tol = 4e-6 * scale + (mode === "accumulate" ? 2 ** -23 * 4 : 0);
      if (mode === "inPlace") {
        close("ce grad", await take(ctx, xV, `${what} grad`), gradWant, tol, `${what} grad`);
      }
      if (mode === "separate" || mode === "accumulate") {
        close("ce grad", await take(ctx, dV, `${what} grad`), gradWant, tol, `${what} grad`);
      }
      for (const v of [xV, yV, lV, dV]) v.buffer.destroy();
    }
  }
  console.log(`  worst error / tolerance: ${[...worst].map(([k, e]) => `${k} ${e.toFixed(3)}`).join(", ")}`);
});

Deno.test("webgpu mse matches meanSquaredError (rows 1..33, D 1..4097, gradient separate / none / accumulate)", async () => {
  const kit = await setup();
  const { ctx } = kit;
  const rng = new Rng(33);
  for (const { rows, width: D, losses, aligned } of cases(kit)) {
    for (const mode of ["separate", "none", "accumulate"] as const) {
      const s = rng.normals(rows * D), t = rng.normals(rows * D);
      const n = rows * D;
      const scale = mode === "accumulate" ? 100 / n : 1 / n; // γ = 100 folded into the scale
      const want = meanSquaredError(s, t);
      const wantRows = Array.from(
        { length: rows },
        (_, r) => meanSquaredError(s.subarray(r * D, (r + 1) * D), t.subarray(r * D, (r + 1) * D)).loss * D,
      );
      const init = rng.normals(n);
      const sV = place(ctx, "s", s, rows, D, ...at(aligned, 0, D, 1));
      const tV = place(ctx, "t", t, rows, D, ...at(aligned, 2, D, 0));
      const lV = place(ctx, "loss", new Float32Array(rows).fill(NaN), 1, rows, 1, rows);
      const dV = place(
        ctx,
        "grad",
        mode === "accumulate" ? init : new Float32Array(n).fill(NaN),
        rows,
        D,
        ...at(aligned, 3, D, 2),
      );
      record(ctx, (pass) =>
        losses.meanSquaredError(pass, {
          student: sV,
          teacher: tV,
          rows,
          dim: D,
          loss: lV,
          grad: mode === "none" ? undefined : dV,
          accumulate: mode === "accumulate",
          scale: mode === "accumulate" ? scale : undefined,
        }));
      const what = `MSE ${rows}x${D} ${mode} ${losses.kernel}${aligned ? " aligned" : ""}`;
      const gotRows = await take(ctx, lV, `${what} loss`);
      close("mse loss", gotRows, wantRows, 1e-6 * (1 + Math.max(...wantRows)), `${what} loss`);
      const total = gotRows.reduce((a, v) => a + v, 0) / n;
      assert.ok(Math.abs(total - want.loss) <= 1e-6 * want.loss, `${what}: mean ${total} vs ${want.loss}`);
      if (mode !== "none") {
        const gradWant = want.dStudent.map((d, j) => (mode === "accumulate" ? init[j] : 0) + d * n * scale);
        const maxAbs = gradWant.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
        close("mse grad", await take(ctx, dV, `${what} grad`), gradWant, 1e-6 * maxAbs, `${what} grad`);
      } else {
        await take(ctx, { ...dV, rows: 0, width: 0 }, `${what}: no gradient written`);
      }
      for (const v of [sV, tV, lV, dV]) v.buffer.destroy();
    }
  }
  console.log(`  worst error / tolerance: ${[...worst].map(([k, e]) => `${k} ${e.toFixed(3)}`).join(", ")}`);
});

Deno.test("webgpu losses: long rows near llvmpipe's loop limit (serial below it, parallel past it)", async () => {
  const { ctx, losses } = await setup();
  const rng = new Rng(35);
  // llvmpipe ends an invocation's loops after 65535 iterations in all: a serial kernel walks a row twice
  // (KL, cross-entropy) or once (MSE), in vec4s when aligned, and the launcher takes the parallel kernel
  // past 60000 loops. Each length below sits just inside that or past 65535 (the serial kernel would be
  // wrong there: this test fails without the fallback).
  const rows = 2;
  for (
    const [kind, V, aligned] of [
      ["kl", 29000, false],
      ["kl", 33000, false],
      ["kl", 116000, true],
      ["ce", 29500, false],
      ["ce", 33000, false],
      ["mse", 59000, false],
      ["mse", 66000, false],
    ] as const
  ) {
    const what = `${kind} V ${V}${aligned ? " aligned" : ""}`;
    const s = rng.normals(rows * V, 3), t = rng.normals(rows * V, 3);
    const sV = place(ctx, "s", s, rows, V, ...at(aligned, 1, V, 1));
    const tV = place(ctx, "t", t, rows, V, ...at(aligned, 2, V, 0));
    const lV = place(ctx, "loss", new Float32Array(rows), 1, rows, 0, rows);
    const dV = place(ctx, "grad", new Float32Array(rows * V).fill(NaN), rows, V, ...at(aligned, 3, V, 0));
    const y = Int32Array.from([V - 1, 0]);
    const yV = place(ctx, "targets", y, 1, rows, 0, rows);
    const scale = 0.5;
    record(ctx, (pass) => {
      const out = { rows, loss: lV, grad: dV, scale };
      if (kind === "kl") losses.klDivergence(pass, { student: sV, teacher: tV, vocab: V, ...out });
      if (kind === "ce") {
        losses.crossEntropy(pass, { logits: sV, targets: { buffer: yV.buffer }, vocab: V, ...out });
      }
      if (kind === "mse") losses.meanSquaredError(pass, { student: sV, teacher: tV, dim: V, ...out });
    });
    const wantRows: number[] = [];
    const wantGrad = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) {
      const sr = s.subarray(r * V, (r + 1) * V), tr = t.subarray(r * V, (r + 1) * V);
      const g = wantGrad.subarray(r * V, (r + 1) * V);
      if (kind === "kl") {
        const k = klDivergence(sr, tr, 1, V);
        wantRows.push(k.loss);
        k.dLogits.forEach((d, j) => g[j] = d * scale);
      } else if (kind === "ce") {
        wantRows.push(crossEntropySoftmaxBackward(sr, [y[r]], V, g, scale).loss);
      } else {
        const m = meanSquaredError(sr, tr);
        wantRows.push(m.loss * V);
        m.dStudent.forEach((d, j) => g[j] = d * V * scale);
      }
    }
    const lossTol = kind === "mse" ? 1e-6 * Math.max(...wantRows) : 2e-6 * 20;
    close(`${kind} loss`, await take(ctx, lV, what), wantRows, lossTol, `${what} loss`);
    const maxGrad = wantGrad.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    close(
      `${kind} grad`,
      await take(ctx, dV, what),
      wantGrad,
      kind === "mse" ? 1e-6 * maxGrad : 4e-6 * scale,
      `${what} grad`,
    );
    for (const v of [sV, tV, lV, dV, yV]) v.buffer.destroy();
  }
});

Deno.test("webgpu losses: more workgroups than one grid row; options and clear errors", async () => {
  const { ctx, losses, one, narrow } = await setup();
  const rows = 65537, V = 2;
  const rng = new Rng(34);
  const x = rng.normals(rows * V);
  const y = Int32Array.from({ length: rows }, () => rng.int(V));
  const xB = createStorageBuffer(ctx, "x", x), yB = createStorageBuffer(ctx, "y", y);
  const lB = createStorageBuffer(ctx, "loss", rows * 4);
  // A workgroup per row (parallel) or a row per workgroup of one (serial): 65537 workgroups, a 2-D grid.
  for (const l of [narrow, one]) {
    record(
      ctx,
      (pass) =>
        l.crossEntropy(pass, {
          logits: { buffer: xB },
          targets: { buffer: yB },
          rows,
          vocab: V,
          loss: { buffer: lB },
        }),
    );
    const got = new Float32Array(await readBuffer(ctx, lB, rows * 4));
    for (const r of [0, 1, 65534, 65535, 65536]) {
      const want = crossEntropySoftmaxBackward(x.subarray(r * V, (r + 1) * V), [y[r]], V).loss;
      assert.ok(Math.abs(got[r] - want) < 1e-5, `${l.kernel}: row ${r}: ${got[r]} vs ${want}`);
    }
  }
  assert.equal(losses.kernel, "serial");
  assert.equal(narrow.kernel, "parallel");
  await assert.rejects(WebGpuLosses.create(ctx, { kernel: "fast" as "serial" }), TypeError);
  await assert.rejects(WebGpuLosses.create(ctx, { kernel: "serial", serialThreads: 0 }), RangeError);
  record(ctx, (pass) => {
    const base = {
      student: { buffer: xB },
      teacher: { buffer: xB },
      rows: 4,
      vocab: 2,
      loss: { buffer: lB },
    };
    assert.throws(() => losses.klDivergence(pass, { ...base, inPlace: true }), /written and bound twice/);
    assert.throws(
      () => losses.klDivergence(pass, { ...base, grad: { buffer: yB }, inPlace: true }),
      /either grad or inPlace/,
    );
    assert.throws(() => losses.klDivergence(pass, { ...base, accumulate: true }), /accumulate needs a grad/);
    assert.throws(() => losses.klDivergence(pass, { ...base, vocab: 0 }), RangeError);
    assert.throws(
      () => losses.meanSquaredError(pass, { ...base, teacher: { buffer: yB }, dim: 1e6 }),
      /needs 16000000 bytes of buffer "x"/,
    );
    assert.throws(
      () =>
        losses.crossEntropy(pass, {
          logits: { buffer: xB },
          targets: { buffer: yB, stride: 2 },
          rows: 4,
          vocab: 2,
          loss: { buffer: lB },
        }),
      /stride 1/,
    );
  });
  for (const b of [xB, yB, lB]) b.destroy();
});
