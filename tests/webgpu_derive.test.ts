// The derivation kernels, both families (parallel: coupled_forward, coupled_backward, _dg, _dh; serial:
// coupled_forward_serial, coupled_backward_serial, _dh) against the CPU reference src/quant/coupled.ts on
// ragged shapes, k = 1..4, both methods, views with offsets and strides: 4-aligned ones (the serial
// kernels' vec4 loads) and unaligned ones (the serial family's fallback to the parallel kernels).
// Fails (does not skip) without a WebGPU adapter: CI has llvmpipe.
//
// Dimension legend: out, in = the layer's rows and columns, k = paths, wpr = ceil(in / 32).

import assert from "node:assert/strict";
import {
  createStorageBuffer,
  type GpuContext,
  readBuffer,
  requestGpu,
} from "../src/backend/webgpu/device.ts";
import {
  type DeriveKernel,
  type DeriveMethod,
  type GpuView,
  WebGpuDerive,
} from "../src/backend/webgpu/derive.ts";
import { wordsPerRow } from "../src/quant/bitpack.ts";
import {
  coupledBackward,
  coupledForward,
  type PathScales,
  standardBackward,
  standardForward,
} from "../src/quant/coupled.ts";
import { packSignPlanes } from "../src/quant/matrix.ts";
import { Rng } from "../src/util/rng.ts";
import { record } from "./_gpu.ts";

const gpu = await requestGpu();
/** The launchers under test: every kernel family and geometry, whatever the adapter. */
interface Launchers {
  /** Serial kernels, default geometry (32 rows per invocation). */
  serial: WebGpuDerive;
  /** Serial kernels, 7 rows and 3 words per workgroup: several row blocks and partial workgroups. */
  serialBlocked: WebGpuDerive;
  /** Parallel kernels, the compact geometry. */
  parallel: WebGpuDerive;
  /** Parallel kernels with seven-row blocks: the two-pass column sums even on the small shapes. */
  blocked: WebGpuDerive;
  /** The geometry real GPUs get (parallel, 256 threads, 64-row blocks). */
  wide: WebGpuDerive;
}
const launchersPromise = gpu
  ? (async (): Promise<Launchers> => ({
    serial: await WebGpuDerive.create(gpu, { kernel: "serial" }),
    serialBlocked: await WebGpuDerive.create(gpu, { kernel: "serial", serialRows: 7, serialThreads: 3 }),
    parallel: await WebGpuDerive.create(gpu, { kernel: "parallel", compact: true }),
    blocked: await WebGpuDerive.create(gpu, {
      kernel: "parallel",
      compact: true,
      rowBlock: 7,
      threads: 32,
      reduceThreads: 32,
    }),
    wide: await WebGpuDerive.create(gpu, { compact: false }),
  }))()
  : null;

async function setup(): Promise<Launchers & { ctx: GpuContext }> {
  if (!gpu || !launchersPromise) {
    throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; see ENGINEERING.md §1)");
  }
  return { ctx: gpu, ...await launchersPromise };
}

// (out, in): ragged sizes; in % 4 = 0 for [3, 4] (one word, one vec4: dh and dg written directly by the
// serial kernel), [40, 32] (one word, several row blocks), [64, 172] (a ragged last word), [172, 64].
const SHAPES: [number, number][] = [[1, 1], [5, 33], [3, 4], [40, 32], [64, 172], [172, 64], [100, 257]];
const METHODS: DeriveMethod[] = ["coupled", "standard"];
const SENTINEL = 0x7fc00123; // a NaN: stray reads poison results, stray writes change it

/** x rounded to 12 significant bits: products of two such values are exact in f32. */
function short(x: number): number {
  const m = 2 ** (11 - Math.floor(Math.log2(Math.abs(x))));
  return Math.round(x * m) / m;
}

/** Scales like an initialized layer's (later paths smaller), optionally with 12-bit mantissas. */
function randomScales(rng: Rng, out: number, inF: number, k: number, exact: boolean): PathScales {
  const f = exact ? short : (x: number) => x;
  const g = Float32Array.from(
    { length: k * out },
    (_, j) => f((rng.next() < 0.1 ? -1 : 1) * (0.2 + rng.next()) * 0.5 ** Math.floor(j / out)),
  );
  const h = Float32Array.from({ length: k * inF }, () => f(0.2 + rng.next()));
  return { out, in: inF, k, g, h };
}

/** The view layout of one run: unaligned offsets and strides, or all multiples of 4 (vec4 loads). */
type Layout = "unaligned" | "aligned";

/** `x` rounded up to a multiple of 4 when `layout` is aligned. */
function al(x: number, layout: Layout): number {
  return layout === "aligned" ? Math.ceil(x / 4) * 4 : x;
}

/** A buffer holding `rows` rows of `data` (row width `width`) at `offset` with `stride`, sentinel elsewhere. */
function place(
  ctx: GpuContext,
  label: string,
  data: Float32Array | Uint32Array,
  rows: number,
  width: number,
  offset: number,
  stride: number,
): GpuView & { words: Uint32Array } {
  const words = new Uint32Array(offset + (rows - 1) * stride + width + 3).fill(SENTINEL);
  const src = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let r = 0; r < rows; r++) words.set(src.subarray(r * width, (r + 1) * width), offset + r * stride);
  return { buffer: createStorageBuffer(ctx, label, words), offset, stride, words };
}

/** Reads a placed view back: its rows, and asserts every word outside them is unchanged. */
async function take(
  ctx: GpuContext,
  v: GpuView & { words: Uint32Array },
  rows: number,
  width: number,
  what: string,
): Promise<Uint32Array> {
  const all = new Uint32Array(await readBuffer(ctx, v.buffer, v.words.length * 4));
  const out = new Uint32Array(rows * width);
  const inside = new Uint8Array(all.length);
  for (let r = 0; r < rows; r++) {
    const o = v.offset! + r * v.stride!;
    out.set(all.subarray(o, o + width), r * width);
    inside.fill(1, o, o + width);
  }
  for (let i = 0; i < all.length; i++) {
    if (!inside[i]) assert.equal(all[i], v.words[i], `${what}: word ${i} outside the view was written`);
  }
  return out;
}

function f32(u: Uint32Array): Float32Array {
  return new Float32Array(u.buffer, u.byteOffset, u.length);
}

/** The family a launcher must record for views of `layout` with rows of `inF`: serial needs vec4 views. */
function expectedFamily(d: WebGpuDerive, layout: Layout, inF: number): DeriveKernel {
  return d.kernel === "serial" && layout === "aligned" && inF % 4 === 0 ? "serial" : "parallel";
}

/** The family of the one call recorded since `before`. */
function familyOf(d: WebGpuDerive, before: { serial: number; parallel: number }): DeriveKernel {
  const now = d.recorded;
  const serial = now.serial - before.serial, parallel = now.parallel - before.parallel;
  assert.equal(serial + parallel, 1, `one call recorded: ${JSON.stringify([before, now])}`);
  return serial ? "serial" : "parallel";
}

interface ForwardRun {
  wHat: Float32Array; // (out, in)
  planes: Uint32Array; // (k·out, wpr)
}

/** Runs the GPU forward on views with offsets and strides. */
async function gpuForward(
  ctx: GpuContext,
  derive: WebGpuDerive,
  method: DeriveMethod,
  w: Float32Array,
  s: PathScales,
  layout: Layout = "unaligned",
): Promise<ForwardRun> {
  const { out, in: inF, k } = s;
  const wpr = wordsPerRow(inF);
  const latentRows = method === "standard" ? k * out : out;
  const a = (x: number) => al(x, layout);
  const wV = place(ctx, "W", w, latentRows, inF, a(3), a(inF + 2));
  const gV = place(ctx, "g", s.g, k, out, 1, out + 1);
  const hV = place(ctx, "h", s.h, k, inF, a(2), a(inF + 5));
  const whV = place(ctx, "wHat", new Float32Array(out * inF).fill(NaN), out, inF, a(5), a(inF + 1));
  const pV = place(ctx, "planes", new Uint32Array(k * out * wpr).fill(0xdeadbeef), k * out, wpr, 1, wpr + 1);
  const before = derive.recorded;
  record(
    ctx,
    (pass) => derive.forward(pass, { method, out, in: inF, k, w: wV, g: gV, h: hV, wHat: whV, planes: pV }),
  );
  assert.equal(familyOf(derive, before), expectedFamily(derive, layout, inF), "the kernel family recorded");
  const wHat = f32(await take(ctx, whV, out, inF, "wHat"));
  const planes = await take(ctx, pV, k * out, wpr, "planes");
  for (const v of [wV, gV, hV, whV, pV]) v.buffer.destroy();
  return { wHat, planes };
}

function reference(method: DeriveMethod, w: Float32Array, s: PathScales) {
  return method === "standard" ? standardForward(w, s) : coupledForward(w, s);
}

Deno.test("webgpu derive forward equals coupledForward/standardForward bit for bit (exact-product scales)", async () => {
  const { ctx, serial, serialBlocked, parallel, blocked, wide } = await setup();
  const rng = new Rng(11);
  for (const method of METHODS) {
    for (const [out, inF] of SHAPES) {
      for (let k = 1; k <= 4; k++) {
        const s = randomScales(rng, out, inF, k, true);
        const w = rng.normals((method === "standard" ? k : 1) * out * inF, 0.8);
        if (out * inF > 4) w[3] = 0; // sign(0) = +1
        const want = reference(method, w, s);
        // The serial kernels (two geometries), and by turns the serial family's fallback to the parallel
        // kernel and the parallel family's three geometries.
        const runs: [WebGpuDerive, Layout][] = [
          [k % 2 ? serial : serialBlocked, "aligned"],
          [[serial, parallel, blocked, wide][k - 1], "unaligned"],
        ];
        for (const [d, layout] of runs) {
          const got = await gpuForward(ctx, d, method, w, s, layout);
          const what = `${method} ${out}x${inF} k=${k} ${d.kernel} ${layout} threads ${d.threads}`;
          assert.deepEqual(got.planes, packSignPlanes(want.signs, k, s), `${what}: planes`);
          assert.deepEqual(
            new Uint32Array(got.wHat.buffer),
            new Uint32Array(want.wHat.buffer),
            `${what}: What bits`,
          );
        }
      }
    }
  }
});

Deno.test("webgpu derive forward with full-precision scales: What within rounding, signs flip only at residual ≈ 0", async () => {
  const { ctx, serial, parallel } = await setup();
  const rng = new Rng(12);
  let flips = 0, checked = 0;
  for (const method of METHODS) {
    for (const [out, inF] of SHAPES) {
      for (let k = 1; k <= 4; k++) {
        const s = randomScales(rng, out, inF, k, false);
        const w = rng.normals((method === "standard" ? k : 1) * out * inF, 0.8);
        const want = reference(method, w, s);
        const got = k % 2
          ? await gpuForward(ctx, serial, method, w, s, "aligned")
          : await gpuForward(ctx, parallel, method, w, s, "unaligned");
        const gotSigns = new Int8Array(k * out * inF);
        const wpr = wordsPerRow(inF);
        for (let pr = 0; pr < k * out; pr++) {
          for (let c = 0; c < inF; c++) {
            gotSigns[pr * inF + c] = (got.planes[pr * wpr + (c >>> 5)] >>> (c & 31)) & 1 ? 1 : -1;
          }
        }
        assert.deepEqual(got.planes, packSignPlanes(gotSigns, k, s), "padding bits are 0");
        const n = out * inF;
        for (let r = 0; r < out; r++) {
          for (let c = 0; c < inF; c++) {
            const idx = r * inF + c;
            // The reference residual before each path, in f64; a flip is allowed only where it is
            // within a few f32 roundings of the terms that formed it (and then later paths differ).
            let res = w[idx], size = Math.abs(w[idx]), flipped = false, mag = 0;
            for (let i = 0; i < k && !flipped; i++) {
              if (method === "standard") res = w[i * n + idx], size = Math.abs(res);
              if (gotSigns[i * n + idx] !== want.signs[i * n + idx]) {
                assert.ok(
                  Math.abs(res) <= 2 ** -21 * size,
                  `${method} ${out}x${inF} k=${k} (${r},${c}) path ${i}: sign flipped at residual ${res}`,
                );
                flipped = true;
                flips++;
              }
              const p = s.g[i * out + r] * s.h[i * inF + c];
              res -= want.signs[i * n + idx] * p;
              size += Math.abs(p);
              mag += Math.abs(p);
            }
            checked++;
            if (!flipped) {
              const err = Math.abs(got.wHat[idx] - want.wHat[idx]);
              assert.ok(
                err <= 2 ** -22 * mag,
                `${method} ${out}x${inF} k=${k} What(${r},${c}): ${got.wHat[idx]} vs ${want.wHat[idx]}`,
              );
            }
          }
        }
      }
    }
  }
  console.log(`  sign flips at residual ≈ 0: ${flips} of ${checked} entries`);
});

interface BackwardCase {
  method: DeriveMethod;
  out: number;
  in: number;
  k: number;
  clip?: number;
  chainScales?: boolean;
  accumulate?: boolean;
  /** dW, dg and dh in one flat gradient buffer (forces the two-pass column sums). */
  flat?: boolean;
  /** The views' layout (default unaligned). */
  layout?: Layout;
}

/** Σ|terms| of dg and dh (the error scale of f32 sums) in f64. */
function termSizes(dWHat: Float32Array, s: PathScales): { g: Float64Array; h: Float64Array } {
  const { out, in: inF, k } = s;
  const g = new Float64Array(k * out), h = new Float64Array(k * inF);
  for (let i = 0; i < k; i++) {
    for (let r = 0; r < out; r++) {
      for (let c = 0; c < inF; c++) {
        const d = Math.abs(dWHat[r * inF + c]);
        g[i * out + r] += d * Math.abs(s.h[i * inF + c]);
        h[i * inF + c] += d * Math.abs(s.g[i * out + r]);
      }
    }
  }
  return { g, h };
}

function closeSums(
  got: Float32Array,
  want: Float32Array,
  size: Float64Array,
  init: Float32Array | null,
  what: string,
) {
  for (let j = 0; j < want.length; j++) {
    const base = init ? init[j] : 0;
    const tol = 1e-6 * size[j] + 2 ** -23 * Math.abs(base + want[j]) + 1e-30;
    assert.ok(
      Math.abs(got[j] - (base + want[j])) <= tol,
      `${what}[${j}]: ${got[j]} vs ${base + want[j]} (tol ${tol})`,
    );
  }
}

async function checkBackward(
  ctx: GpuContext,
  derive: WebGpuDerive,
  rng: Rng,
  t: BackwardCase,
): Promise<void> {
  const { method, out, in: inF, k } = t;
  const s = randomScales(rng, out, inF, k, false);
  const latentRows = method === "standard" ? k * out : out;
  const w = rng.normals(latentRows * inF, 0.8);
  const signs = reference(method, w, s).signs;
  const dWHat = rng.normals(out * inF, 0.01);
  const want = method === "standard"
    ? standardBackward(dWHat, { ...s, signs }, {
      clip: t.clip,
      ws: t.clip ? w : undefined,
      chainScales: t.chainScales,
    })
    : coupledBackward(dWHat, { ...s, signs }, { clip: t.clip, w: t.clip ? w : undefined });
  const wpr = wordsPerRow(inF);
  const init = t.accumulate
    ? { dW: rng.normals(latentRows * inF, 0.01), dg: rng.normals(k * out), dh: rng.normals(k * inF) }
    : null;
  const layout = t.layout ?? "unaligned";
  const a = (x: number) => al(x, layout);
  const dV = place(ctx, "dWHat", dWHat, out, inF, a(2), a(inF + 3));
  const pV = place(ctx, "planes", packSignPlanes(signs, k, s), k * out, wpr, 5, wpr);
  const gV = place(ctx, "g", s.g, k, out, 0, out + 2);
  const hV = place(ctx, "h", s.h, k, inF, a(1), a(inF));
  const wV = place(ctx, "W", w, latentRows, inF, a(6), a(inF + 1));
  const dW0 = init?.dW ?? new Float32Array(latentRows * inF).fill(NaN);
  const dg0 = init?.dg ?? new Float32Array(k * out).fill(NaN);
  const dh0 = init?.dh ?? new Float32Array(k * inF).fill(NaN);
  let dWV, dgV, dhV;
  if (t.flat) {
    // One gradient buffer: [pad 3][dW rows, stride in+1][pad 1][dg (k, out)][dh (k, in), stride in+2]
    // (aligned: pads, dh's offset and the strides rounded up to multiples of 4).
    const dWAt = a(3), dWStride = a(inF + 1), dgAt = dWAt + latentRows * dWStride + 1;
    const dhAt = a(dgAt + k * out), dhStride = a(inF + 2);
    const words = new Uint32Array(dhAt + k * dhStride + 2).fill(SENTINEL);
    const put = (src: Float32Array, rows: number, width: number, at: number, stride: number) => {
      for (let r = 0; r < rows; r++) {
        words.set(new Uint32Array(src.buffer, r * width * 4, width), at + r * stride);
      }
    };
    put(dW0, latentRows, inF, dWAt, dWStride);
    put(dg0, k, out, dgAt, out);
    put(dh0, k, inF, dhAt, dhStride);
    const buffer = createStorageBuffer(ctx, "grads", words);
    dWV = { buffer, offset: dWAt, stride: dWStride, words };
    dgV = { buffer, offset: dgAt, stride: out, words };
    dhV = { buffer, offset: dhAt, stride: dhStride, words };
  } else {
    dWV = place(ctx, "dW", dW0, latentRows, inF, a(1), a(inF + 4));
    dgV = place(ctx, "dg", dg0, k, out, 3, out + 1);
    dhV = place(ctx, "dh", dh0, k, inF, 0, a(inF + 1));
  }
  const before = derive.recorded;
  record(ctx, (pass) =>
    derive.backward(pass, {
      method,
      out,
      in: inF,
      k,
      dWHat: dV,
      planes: pV,
      g: gV,
      h: hV,
      dW: dWV,
      dg: dgV,
      dh: dhV,
      clip: t.clip,
      w: t.clip ? wV : undefined,
      chainScales: t.chainScales,
      accumulate: t.accumulate,
    }));
  const what = `${method} ${out}x${inF} k=${k}${t.clip ? ` clip ${t.clip}` : ""}${
    t.chainScales ? " chain" : ""
  }${t.accumulate ? " accumulate" : ""}${t.flat ? " flat" : ""} ${derive.kernel} ${layout}`;
  assert.equal(familyOf(derive, before), expectedFamily(derive, layout, inF), `${what}: the kernel family`);
  let dW: Float32Array, dg: Float32Array, dh: Float32Array;
  if (t.flat) {
    const all = new Float32Array(await readBuffer(ctx, dWV.buffer, dWV.words.length * 4));
    const rows = (at: number, n: number, width: number, stride: number) => {
      const o = new Float32Array(n * width);
      for (let r = 0; r < n; r++) o.set(all.subarray(at + r * stride, at + r * stride + width), r * width);
      return o;
    };
    dW = rows(dWV.offset!, latentRows, inF, dWV.stride!);
    dg = rows(dgV.offset!, k, out, out);
    dh = rows(dhV.offset!, k, inF, dhV.stride!);
  } else {
    dW = f32(await take(ctx, dWV, latentRows, inF, `${what} dW`));
    dg = f32(await take(ctx, dgV, k, out, `${what} dg`));
    dh = f32(await take(ctx, dhV, k, inF, `${what} dh`));
  }
  // dW: a copy (bit exact), a clipped copy (exact away from the clip boundary), or a product (≤ 2 ulp).
  for (let j = 0; j < want.dW.length; j++) {
    const base = init ? init.dW[j] : 0;
    const expect = Math.fround(base + want.dW[j]);
    if (dW[j] === expect) continue;
    // (with accumulate, the rounded product then its sum: up to an ulp of the result)
    const tolerance = t.chainScales ? 2 ** -22 * Math.abs(want.dW[j]) + 2 ** -23 * Math.abs(expect) : 0;
    if (Math.abs(dW[j] - expect) <= tolerance) continue;
    if (t.clip) {
      // A clip decision within rounding of its boundary may go either way.
      const i = Math.floor(j / (out * inF)), r = Math.floor(j / inF) % out, c = j % inF;
      let bound = 0;
      for (let p = 0; p < k; p++) {
        if (method === "coupled" || p === i) bound += Math.abs(s.g[p * out + r] * s.h[p * inF + c]);
      }
      if (Math.abs(Math.abs(w[j]) - t.clip * bound) <= 1e-6 * t.clip * bound) continue;
    }
    assert.fail(`${what} dW[${j}]: ${dW[j]} vs ${expect}`);
  }
  const size = termSizes(dWHat, s);
  closeSums(dg, want.dg, size.g, init?.dg ?? null, `${what} dg`);
  closeSums(dh, want.dh, size.h, init?.dh ?? null, `${what} dh`);
  for (const v of [dV, pV, gV, hV, wV, dWV, dgV, dhV]) v.buffer.destroy();
}

Deno.test("webgpu derive backward matches coupledBackward/standardBackward (identity STE, k = 1..4)", async () => {
  const { ctx, serial, parallel, wide } = await setup();
  const rng = new Rng(13);
  for (const method of METHODS) {
    for (const [out, inF] of SHAPES) {
      for (let k = 1; k <= 4; k++) {
        // The serial kernels, and by turns the serial family's fallback and the parallel geometries.
        const runs: [WebGpuDerive, Layout][] = [
          [serial, "aligned"],
          [[serial, parallel, wide, wide][k - 1], k === 4 ? "aligned" : "unaligned"],
        ];
        for (const [d, layout] of runs) await checkBackward(ctx, d, rng, { method, out, in: inF, k, layout });
      }
    }
  }
});

Deno.test("webgpu derive backward: clipped STE, chainScales, accumulate, row blocks, one gradient buffer", async () => {
  const { ctx, serialBlocked, blocked } = await setup();
  const rng = new Rng(14);
  const runs: [WebGpuDerive, Layout][] = [[serialBlocked, "aligned"], [blocked, "unaligned"]];
  for (const [d, layout] of runs) {
    for (const method of METHODS) {
      for (const [out, inF] of [[1, 1], [5, 33], [3, 4], [64, 172], [100, 257]] as [number, number][]) {
        for (const k of [1, 3, 4]) {
          const base = { method, out, in: inF, k, layout };
          // Serial k = 4: the union of the options only (each option set is a pipeline that takes
          // seconds to compile on llvmpipe; k = 1 and 3 cover every set).
          const all = d.kernel === "parallel" || k < 4;
          if (all) await checkBackward(ctx, d, rng, { ...base, clip: 0.9 });
          if (all) await checkBackward(ctx, d, rng, { ...base, accumulate: true, flat: true });
          await checkBackward(ctx, d, rng, { ...base, clip: 1.1, accumulate: true });
          if (method === "standard") {
            await checkBackward(ctx, d, rng, { ...base, chainScales: true, flat: true, accumulate: !all });
          }
        }
      }
    }
  }
});

Deno.test("webgpu derive: clear errors for bad shapes, missing latent, aliasing, bad options", async () => {
  const { ctx, serial, parallel } = await setup();
  await assert.rejects(() => WebGpuDerive.create(ctx, { serialRows: 0 }), RangeError);
  await assert.rejects(() => WebGpuDerive.create(ctx, { serialRows: 60001 }), /serialRows/);
  await assert.rejects(() => WebGpuDerive.create(ctx, { serialThreads: 257 }), /serialThreads/);
  await assert.rejects(
    () => WebGpuDerive.create(ctx, { kernel: "fast" as "serial" }),
    /expected kernel "serial" or "parallel"/,
  );
  for (const derive of [serial, parallel]) checkErrors(ctx, derive);
});

function checkErrors(ctx: GpuContext, derive: WebGpuDerive): void {
  const buf = (label: string, words: number) => createStorageBuffer(ctx, label, words * 4);
  const w = buf("w", 40),
    g = buf("g", 8),
    h = buf("h", 40),
    wHat = buf("wHat", 40),
    planes = buf("planes", 8);
  const base = { out: 2, in: 20, k: 2, w: { buffer: w }, g: { buffer: g }, h: { buffer: h } };
  record(ctx, (pass) => {
    assert.throws(
      () => derive.forward(pass, { ...base, k: 5, wHat: { buffer: wHat }, planes: { buffer: planes } }),
      RangeError,
    );
    assert.throws(
      () => derive.forward(pass, { ...base, out: 3, wHat: { buffer: wHat }, planes: { buffer: planes } }),
      /needs 240 bytes of buffer "w"/,
    );
    assert.throws(
      () => derive.forward(pass, { ...base, wHat: { buffer: w }, planes: { buffer: planes } }),
      /written and bound twice/,
    );
    assert.throws(
      () =>
        derive.forward(pass, {
          ...base,
          method: "standard",
          wHat: { buffer: wHat },
          planes: { buffer: planes },
        }),
      /needs 320 bytes of buffer "w"/,
    );
    const back = {
      out: 2,
      in: 20,
      k: 2,
      dWHat: { buffer: wHat },
      planes: { buffer: planes },
      g: { buffer: g },
      h: { buffer: h },
      dW: { buffer: buf("dW", 40) },
      dg: { buffer: buf("dg", 4) },
      dh: { buffer: buf("dh", 40) },
    };
    assert.throws(() => derive.backward(pass, { ...back, clip: 1 }), /expected args.w/);
    assert.throws(() => derive.backward(pass, { ...back, clip: 0, w: { buffer: w } }), /clip > 0/);
    assert.throws(() => derive.backward(pass, { ...back, chainScales: true }), /standard/);
    assert.throws(
      () => derive.backward(pass, { ...back, dW: { buffer: back.dWHat.buffer } }),
      /written and bound twice/,
    );
  });
  for (const b of [w, g, h, wHat, planes]) b.destroy();
}
