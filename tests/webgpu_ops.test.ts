// The decoder's WebGPU kernels against the CPU reference operators (src/model/ops.ts) on ragged shapes,
// views with offsets and strides, GQA, multi-split decode and chained decode steps in one pass.
// Fails (does not skip) without a WebGPU adapter: CI has llvmpipe.

import assert from "node:assert/strict";
import {
  createStorageBuffer,
  type GpuContext,
  readBuffer,
  readF32,
  requestGpu,
} from "../src/backend/webgpu/device.ts";
import { type GpuView, type RopeKvWriteArgs, WebGpuOps } from "../src/backend/webgpu/ops.ts";
import {
  addInPlace,
  attentionForward,
  rmsnormForward,
  ropeForward,
  swigluForward,
} from "../src/model/ops.ts";
import { f16BitsToF32, f32ToF16Bits } from "../src/util/fp16.ts";
import { Rng } from "../src/util/rng.ts";
import { record } from "./_gpu.ts";

const gpu = await requestGpu();
const HEAD_SIZES = [4, 8, 64];
// `ops` has the adapter's defaults (on llvmpipe: compact, the serial decode kernel); the others force a
// decode kernel: the GPU-shaped one at its compact split (64) and at 16 positions per split.
const opsPromise = gpu
  ? WebGpuOps.create(gpu, { headSizes: HEAD_SIZES, embeddingDtypes: ["f32", "f16"] })
  : null;
const opsParallelPromise = gpu
  ? WebGpuOps.create(gpu, { headSizes: HEAD_SIZES, decodeKernel: "parallel" })
  : null;
const ops64Promise = gpu
  ? WebGpuOps.create(gpu, { headSizes: HEAD_SIZES, decodeKernel: "parallel", decodeSplit: 16 })
  : null;

async function setup(): Promise<
  { ctx: GpuContext; ops: WebGpuOps; opsParallel: WebGpuOps; ops64: WebGpuOps }
> {
  if (!gpu || !opsPromise || !opsParallelPromise || !ops64Promise) {
    throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; see ENGINEERING.md §1)");
  }
  return {
    ctx: gpu,
    ops: await opsPromise,
    opsParallel: await opsParallelPromise,
    ops64: await ops64Promise,
  };
}

/** Asserts max |got − want| ≤ tol · max(max |want|, 1e-6). */
function close(name: string, got: Float32Array, want: Float32Array, tol: number, what = ""): void {
  assert.equal(got.length, want.length, `${name}: length`);
  let scale = 1e-6, err = 0, at = -1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= err)) err = e, at = i;
  }
  const rel = err / scale;
  assert.ok(rel <= tol, `${name} ${what}: relative error ${rel} at ${at} (got ${got[at]}, want ${want[at]})`);
}

function upload(
  ctx: GpuContext,
  label: string,
  data: Float32Array | Uint32Array,
  lead = 0,
  tail = 0,
): GPUBuffer {
  const words = new Uint32Array(lead + data.length + tail).fill(0x7fc00000); // NaN padding catches stray reads
  words.set(new Uint32Array(data.buffer, data.byteOffset, data.length), lead);
  return createStorageBuffer(ctx, label, words);
}

/** Reads rows × width elements of a strided view. */
async function readView(ctx: GpuContext, v: GpuView, rows: number, width: number): Promise<Float32Array> {
  const stride = v.stride ?? width, off = v.offset ?? 0;
  const all = await readF32(ctx, v.buffer, off + (rows - 1) * stride + width);
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(all.subarray(off + r * stride, off + r * stride + width), r * width);
  return out;
}

Deno.test("webgpu embedding gathers f32 and f16 rows (ragged D, split tables, out-of-range ids)", async () => {
  const { ctx, ops } = await setup();
  const rng = new Rng(1);
  const split = await WebGpuOps.create(ctx, { maxTableBindingBytes: 256, embeddingDtypes: ["f32", "f16"] });
  const step = ops.createStep("emb step");
  for (const [V, D] of [[37, 13], [19, 13], [5, 300]]) {
    const E = rng.normals(V * D);
    const halves = new Uint16Array(Math.ceil((V * D) / 2) * 2);
    for (let i = 0; i < V * D; i++) halves[i] = f32ToF16Bits(E[i]);
    const E16 = Float32Array.from(halves.subarray(0, V * D), f16BitsToF32);
    const tables = {
      f32: upload(ctx, "E f32", E, 3, 1),
      f16: upload(ctx, "E f16", new Uint32Array(halves.buffer), 3, 1),
    };
    for (const T of [1, 3, 17]) {
      const ids = Uint32Array.from({ length: T }, (_, t) => (t === 2 ? V + 4 : rng.int(V)));
      const idsBuf = upload(ctx, "ids", ids, 2);
      const out = { buffer: createStorageBuffer(ctx, "x", (5 + T * (D + 3)) * 4), offset: 5, stride: D + 3 };
      step.set(7, T);
      for (const dtype of ["f32", "f16"] as const) {
        const src = dtype === "f32" ? E : E16;
        const want = new Float32Array(T * D);
        for (let t = 0; t < T; t++) {
          if (ids[t] < V) want.set(src.subarray(ids[t] * D, (ids[t] + 1) * D), t * D);
        }
        for (const o of [ops, split]) {
          if (o === split && 3 + Math.ceil((V * D) / (dtype === "f16" ? 2 : 1)) > 4 * 64) {
            assert.throws(
              () =>
                record(
                  ctx,
                  (p) =>
                    o.embedding(p, {
                      step,
                      ids: { buffer: idsBuf, offset: 2 },
                      table: { buffer: tables[dtype], offset: 3 },
                      dtype,
                      vocab: V,
                      dim: D,
                      out,
                    }),
                ),
              RangeError,
            );
            continue;
          }
          record(ctx, (p) =>
            o.embedding(p, {
              step,
              ids: { buffer: idsBuf, offset: 2 },
              table: { buffer: tables[dtype], offset: 3 },
              dtype,
              vocab: V,
              dim: D,
              out,
            }));
          close(`embedding ${dtype}`, await readView(ctx, out, T, D), want, 0, `V ${V} D ${D} T ${T}`);
        }
      }
    }
  }
});

Deno.test("webgpu rmsnorm matches rmsnormForward (D 1..8192, T 1/3/17, strided views)", async () => {
  const { ctx, ops } = await setup();
  const rng = new Rng(2);
  for (const D of [1, 7, 13, 257, 1000, 8192]) {
    for (const T of [1, 3, 17]) {
      const x = rng.normals(T * D, 3);
      const w = rng.normals(D);
      const xs = D + 2;
      const xPadded = new Float32Array(T * xs);
      for (let t = 0; t < T; t++) xPadded.set(x.subarray(t * D, (t + 1) * D), t * xs);
      const xv = { buffer: upload(ctx, "x", xPadded, 9), offset: 9, stride: xs };
      const wv = { buffer: upload(ctx, "w", w, 1), offset: 1 };
      const out = { buffer: createStorageBuffer(ctx, "out", (T * D + 4) * 4), offset: 4 };
      record(ctx, (p) => ops.rmsnorm(p, { x: xv, weight: wv, out, rows: T, dim: D }));
      close(
        "rmsnorm",
        await readView(ctx, out, T, D),
        rmsnormForward(x, w, T, D, 1e-5),
        2e-6,
        `D ${D} T ${T}`,
      );
    }
  }
});

Deno.test("webgpu rope matches ropeForward (hs 4/8/64, q and k fused or apart, pos up to 30000)", async () => {
  const { ctx, ops } = await setup();
  const rng = new Rng(3);
  const step = ops.createStep("rope step");
  for (const hs of HEAD_SIZES) {
    for (const [nH, nKV] of [[4, 4], [8, 2]]) {
      const qD = nH * hs, kvD = nKV * hs;
      for (const T of [1, 3, 17]) {
        for (const pos0 of [0, 5, 283, 2047, 30000]) {
          const q = rng.normals(T * qD), k = rng.normals(T * kvD);
          const wantQ = q.slice(), wantK = k.slice();
          ropeForward(wantQ, T, qD, hs, pos0, 10000);
          ropeForward(wantK, T, kvD, hs, pos0, 10000);
          step.set(pos0, T);
          // Fused (T, qD + kvD) rows: one dispatch rotates both segments.
          const fused = new Float32Array(T * (qD + kvD));
          for (let t = 0; t < T; t++) {
            fused.set(q.subarray(t * qD, (t + 1) * qD), t * (qD + kvD));
            fused.set(k.subarray(t * kvD, (t + 1) * kvD), t * (qD + kvD) + qD);
          }
          const fb = upload(ctx, "qk", fused, 2);
          const qv = { buffer: fb, offset: 2, stride: qD + kvD },
            kv = { buffer: fb, offset: 2 + qD, stride: qD + kvD };
          record(
            ctx,
            (p) => ops.rope(p, { step, q: qv, qWidth: qD, k: kv, kWidth: kvD, headSize: hs, theta: 10000 }),
          );
          const tol = 2e-6;
          const what = `hs ${hs} T ${T} pos0 ${pos0}`;
          close("rope", await readView(ctx, qv, T, qD), wantQ, tol, what);
          close("rope", await readView(ctx, kv, T, kvD), wantK, tol, what);
          // Separate buffers: one dispatch each.
          const qb = { buffer: upload(ctx, "q", q) }, kb = { buffer: upload(ctx, "k", k) };
          record(
            ctx,
            (p) => ops.rope(p, { step, q: qb, qWidth: qD, k: kb, kWidth: kvD, headSize: hs, theta: 10000 }),
          );
          close("rope", await readF32(ctx, qb.buffer, T * qD), wantQ, tol, what);
          close("rope", await readF32(ctx, kb.buffer, T * kvD), wantK, tol, what);
        }
      }
    }
  }
});

Deno.test("webgpu kvWrite appends rows at pos0 of strided caches (separate or one shared buffer)", async () => {
  const { ctx, ops } = await setup();
  const rng = new Rng(4);
  const step = ops.createStep();
  const kvD = 12, C = 40, cs = 13;
  for (const shared of [false, true]) {
    // Shared: K rows interleaved with V rows in one buffer (row stride 2·kvD), V after K in each pair.
    const both = createStorageBuffer(ctx, "kv", (3 + 2 * C * kvD) * 4);
    const kc = shared
      ? { buffer: both, offset: 3, stride: 2 * kvD }
      : { buffer: createStorageBuffer(ctx, "kc", (3 + C * cs) * 4), offset: 3, stride: cs };
    const vc = shared
      ? { buffer: both, offset: 3 + kvD, stride: 2 * kvD }
      : { buffer: createStorageBuffer(ctx, "vc", C * kvD * 4) };
    const wantK = new Float32Array(C * kvD), wantV = new Float32Array(C * kvD);
    for (const [pos0, T] of [[0, 3], [3, 1], [4, 17], [21, 19]]) {
      const k = rng.normals(T * kvD), v = rng.normals(T * kvD);
      wantK.set(k, pos0 * kvD);
      wantV.set(v, pos0 * kvD);
      step.set(pos0, T);
      // k and v as one fused (T, 2·kvD) source, to read two views of one buffer.
      const kv = new Float32Array(2 * T * kvD);
      for (let t = 0; t < T; t++) {
        kv.set(k.subarray(t * kvD, (t + 1) * kvD), 2 * t * kvD);
        kv.set(v.subarray(t * kvD, (t + 1) * kvD), (2 * t + 1) * kvD);
      }
      const src = upload(ctx, "kv new", kv, 1);
      const kb = { buffer: src, offset: 1, stride: 2 * kvD },
        vb = { buffer: src, offset: 1 + kvD, stride: 2 * kvD };
      record(
        ctx,
        (p) => ops.kvWrite(p, { step, k: kb, v: vb, kCache: kc, vCache: vc, kvDim: kvD, capacity: C }),
      );
    }
    close("kvWrite", await readView(ctx, kc, C, kvD), wantK, 0, `shared ${shared}`);
    close("kvWrite", await readView(ctx, vc, C, kvD), wantV, 0, `shared ${shared}`);
    step.set(30, 11);
    const args = {
      step,
      k: { buffer: kc.buffer },
      v: { buffer: kc.buffer },
      kCache: kc,
      vCache: vc,
      kvDim: kvD,
    };
    assert.throws(() => record(ctx, (p) => ops.kvWrite(p, { ...args, capacity: C })), RangeError);
    step.set(0, 1);
    assert.throws(() => record(ctx, (p) => ops.kvWrite(p, { ...args, capacity: C })), TypeError);
  }
});

/**
 * Asserts `got` equals `want` bit for bit (NaN padding included) outside the words flagged in `approx`,
 * and within {@link close}'s tolerance on them: a whole-buffer image, so stray writes fail too.
 */
function closeImage(
  name: string,
  got: Float32Array,
  want: Float32Array,
  approx: Uint8Array,
  tol: number,
  what: string,
): void {
  assert.equal(got.length, want.length, `${name}: length`);
  const gotBits = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const wantBits = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const gotA: number[] = [], wantA: number[] = [];
  for (let i = 0; i < want.length; i++) {
    if (approx[i]) {
      gotA.push(got[i]), wantA.push(want[i]);
    } else if (gotBits[i] !== wantBits[i]) {
      assert.fail(`${name} ${what}: word ${i} is ${got[i]}, want ${want[i]} (exact)`);
    }
  }
  close(name, Float32Array.from(gotA), Float32Array.from(wantA), tol, what);
}

/** Whole contents of several buffers through one staging buffer and one map (each map waits ~10 ms). */
async function readAll(ctx: GpuContext, buffers: GPUBuffer[]): Promise<Float32Array[]> {
  const at = buffers.map((_, i) => buffers.slice(0, i).reduce((n, b) => n + b.size, 0));
  const total = at[at.length - 1] + buffers[buffers.length - 1].size;
  const usage = GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
  const staging = ctx.device.createBuffer({ label: "readAll", size: total, usage });
  const enc = ctx.device.createCommandEncoder({ label: "readAll" });
  buffers.forEach((b, i) => enc.copyBufferToBuffer(b, 0, staging, at[i], b.size));
  ctx.device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const all = staging.getMappedRange().slice(0);
  staging.destroy();
  return buffers.map((b, i) => new Float32Array(all, at[i], b.size / 4));
}

/**
 * The (T, width) tensors of `parts` side by side in each row of one NaN-padded image: `lead` words first,
 * then rows of stride Σ width + 1. Returns the image and each part's view offset and stride.
 */
function sideBySide(
  parts: { data: Float32Array; width: number }[],
  T: number,
  lead: number,
): { image: Float32Array; views: { offset: number; stride: number }[] } {
  const stride = parts.reduce((n, p) => n + p.width, 0) + 1;
  const image = new Float32Array(lead + T * stride).fill(NaN);
  let col = lead;
  const views = parts.map((p) => {
    for (let t = 0; t < T; t++) image.set(p.data.subarray(t * p.width, (t + 1) * p.width), col + t * stride);
    col += p.width;
    return { offset: col - p.width, stride };
  });
  return { image, views };
}

/** Sets rows r0.. of a (rows, width) strided view inside `image` from `data`, flagging them in `mask`. */
function setRows(
  image: Float32Array,
  mask: Uint8Array | null,
  view: { offset: number; stride: number },
  r0: number,
  data: Float32Array,
  width: number,
): void {
  for (let r = 0; r < data.length / width; r++) {
    const at = view.offset + (r0 + r) * view.stride;
    image.set(data.subarray(r * width, (r + 1) * width), at);
    mask?.fill(1, at, at + width);
  }
}

Deno.test("webgpu ropeKvWrite matches ropeForward + the cache write (GQA, odd T, cache end, any aliasing)", async () => {
  // Every (T, ·) activation layout the launcher binds differently: q, k, v in three buffers, in one, or
  // two sharing (groups below name each one's buffer); caches apart (strided) or in one buffer with K and
  // V rows interleaved. Each chunk is checked against the CPU (ropeForward; v copied) on whole-buffer
  // images, and bit for bit against the unfused rope → kvWrite path on the same inputs.
  const { ctx, ops } = await setup();
  const rng = new Rng(11);
  const step = ops.createStep("ropeKvWrite step");
  const groupings = [[0, 1, 2], [0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]];
  const short = [[0, 3], [3, 1], [4, 17], [21, 19]]; // C = 40: the last chunk ends at the cache end
  const cases = HEAD_SIZES.flatMap((hs) => [
    { hs, nH: 4, nKV: 4, C: 40, chunks: short, layouts: groupings.length },
    { hs, nH: 8, nKV: 2, C: 40, chunks: short, layouts: groupings.length },
    { hs, nH: 2, nKV: 1, C: 30005, chunks: [[29990, 15]], layouts: 2 }, // long context: angle accuracy
  ]);
  const tol = 2e-6;
  for (const { hs, nH, nKV, C, chunks, layouts } of cases) {
    const qD = nH * hs, kvD = nKV * hs;
    for (let layout = 0; layout < layouts; layout++) {
      const groups = groupings[layout];
      const sharedCache = layout % 2 === 1; // independent of the grouping in the kernel: alternate
      const what = (pos0: number, T: number) =>
        `hs ${hs} nH ${nH} nKV ${nKV} q/k/v buffers ${groups} shared cache ${sharedCache} pos0 ${pos0} T ${T}`;
      // Cache images (NaN where nothing was written) and their views.
      const cacheViews = sharedCache
        ? [{ offset: 5, stride: 2 * kvD + 2 }, { offset: 5 + kvD, stride: 2 * kvD + 2 }]
        : [{ offset: 3, stride: kvD + 1 }, { offset: 0, stride: kvD }];
      const cacheWords = sharedCache ? [5 + C * (2 * kvD + 2)] : [3 + C * (kvD + 1), C * kvD];
      const wantCaches = cacheWords.map((n) => new Float32Array(n).fill(NaN));
      const kMask = new Uint8Array(cacheWords[0]);
      const cacheBuffers = (label: string) => wantCaches.map((img) => upload(ctx, label, img));
      const fusedCaches = cacheBuffers("kv cache"), refCaches = cacheBuffers("kv cache (unfused)");
      const cacheArgs = (b: GPUBuffer[]) => ({
        kCache: { buffer: b[0], ...cacheViews[0] },
        vCache: { buffer: b[sharedCache ? 0 : 1], ...cacheViews[1] },
        kvDim: kvD,
        capacity: C,
      });
      for (const [pos0, T] of chunks) {
        const q = rng.normals(T * qD), k = rng.normals(T * kvD), v = rng.normals(T * kvD);
        const roles = [{ data: q, width: qD }, { data: k, width: kvD }, { data: v, width: kvD }];
        // One NaN-padded image per buffer, holding its roles side by side.
        const images: Float32Array[] = [];
        const roleView: { group: number; offset: number; stride: number }[] = [];
        for (let g = 0; g <= Math.max(...groups); g++) {
          const members = [0, 1, 2].filter((r) => groups[r] === g);
          const { image, views } = sideBySide(members.map((r) => roles[r]), T, 2 + g);
          members.forEach((r, i) => (roleView[r] = { group: g, ...views[i] }));
          images.push(image);
        }
        const bind = (b: GPUBuffer[]) =>
          roleView.map((r) => ({ buffer: b[r.group], offset: r.offset, stride: r.stride }));
        const fused = images.map((img) => upload(ctx, "q/k/v", img));
        const ref = images.map((img) => upload(ctx, "q/k/v (unfused)", img));
        const [fq, fk, fv] = bind(fused), [rq, rk, rv] = bind(ref);
        step.set(pos0, T);
        const shape = { qWidth: qD, headSize: hs, theta: 10000 };
        record(
          ctx,
          (p) => ops.ropeKvWrite(p, { step, q: fq, k: fk, v: fv, ...shape, ...cacheArgs(fusedCaches) }),
        );
        record(ctx, (p) => {
          ops.rope(p, { step, q: rq, k: rk, kWidth: kvD, ...shape });
          ops.kvWrite(p, { step, k: rk, v: rv, ...cacheArgs(refCaches) });
        });
        // CPU: q rotated in place, k and v untouched; rotated k and v in cache rows pos0..pos0+T−1.
        const wantQ = q.slice(), wantK = k.slice();
        ropeForward(wantQ, T, qD, hs, pos0, 10000);
        ropeForward(wantK, T, kvD, hs, pos0, 10000);
        const wantImages = images.map((img) => img.slice());
        const qMask = new Uint8Array(wantImages[0].length);
        setRows(wantImages[0], qMask, roleView[0], 0, wantQ, qD);
        setRows(wantCaches[0], kMask, cacheViews[0], pos0, wantK, kvD);
        setRows(wantCaches[sharedCache ? 0 : 1], null, cacheViews[1], pos0, v, kvD);
        const n = images.length, nc = wantCaches.length;
        const got = await readAll(ctx, [...fused, ref[0], ...fusedCaches, ...refCaches]);
        const none = (len: number) => new Uint8Array(len); // no approximate words: exact everywhere
        for (let g = 0; g < n; g++) {
          const mask = g === 0 ? qMask : none(got[g].length);
          closeImage("ropeKvWrite", got[g], wantImages[g], mask, tol, what(pos0, T));
        }
        for (let c = 0; c < nc; c++) {
          const mask = c === 0 ? kMask : none(cacheWords[c]);
          closeImage("ropeKvWrite", got[n + 1 + c], wantCaches[c], mask, tol, `cache ${c} ${what(pos0, T)}`);
          const unfused = got[n + 1 + nc + c];
          closeImage(
            "ropeKvWrite=unfused",
            got[n + 1 + c],
            unfused,
            none(cacheWords[c]),
            0,
            `cache ${c} ${what(pos0, T)}`,
          );
        }
        // q bit for bit as the unfused rope leaves it (not k: rope rotates k in place, ropeKvWrite does not).
        const qRows = (image: Float32Array) => {
          const { offset, stride } = roleView[0];
          return Float32Array.from(
            { length: T * qD },
            (_, i) => image[offset + Math.floor(i / qD) * stride + (i % qD)],
          );
        };
        closeImage(
          "ropeKvWrite=unfused",
          qRows(got[0]),
          qRows(got[n]),
          none(T * qD),
          0,
          `q ${what(pos0, T)}`,
        );
        for (const b of [...fused, ...ref]) b.destroy();
      }
      for (const b of [...fusedCaches, ...refCaches]) b.destroy();
    }
  }
});

Deno.test("webgpu ropeKvWrite rejects bad shapes and aliasing, and reuses its bind group across steps", async () => {
  const { ctx, ops } = await setup();
  const step = ops.createStep();
  const hs = 8, qD = 32, kvD = 16, C = 10;
  const qkv = { buffer: createStorageBuffer(ctx, "qkv", 4 * (qD + 2 * kvD) * 4) };
  const cache = { buffer: createStorageBuffer(ctx, "cache", 2 * C * kvD * 4) };
  const args: RopeKvWriteArgs = {
    step,
    q: { ...qkv, stride: qD + 2 * kvD },
    k: { ...qkv, offset: qD, stride: qD + 2 * kvD },
    v: { ...qkv, offset: qD + kvD, stride: qD + 2 * kvD },
    qWidth: qD,
    kCache: cache,
    vCache: { ...cache, offset: C * kvD },
    kvDim: kvD,
    headSize: hs,
    theta: 10000,
    capacity: C,
  };
  const run = (a: RopeKvWriteArgs) => record(ctx, (p) => ops.ropeKvWrite(p, a));
  step.set(7, 4);
  assert.throws(() => run(args), /exceed the cache capacity 10/);
  step.set(0, 4);
  assert.throws(() => run({ ...args, qWidth: 36 }), RangeError);
  assert.throws(() => run({ ...args, headSize: 7 }), RangeError);
  assert.throws(() => run({ ...args, kvDim: 12 }), RangeError);
  assert.throws(() => run({ ...args, theta: 1 }), RangeError);
  assert.throws(() => run({ ...args, vCache: { ...qkv, offset: 0 } }), TypeError);
  assert.throws(
    () => run({ ...args, vCache: { buffer: createStorageBuffer(ctx, "small", 64) } }),
    RangeError,
  );
  // Positions live in the step uniform only: other steps of the same T reuse the bind group.
  run(args);
  const groups = ops.cachedBindGroups;
  step.set(6, 4);
  run(args);
  step.set(3, 4);
  run(args);
  assert.equal(ops.cachedBindGroups, groups);
  await ctx.device.queue.onSubmittedWorkDone();
});

interface AttentionCase {
  hs: number;
  nH: number;
  nKV: number;
  T: number;
  S: number;
  /** Cache rows beyond the visible positions, C − S (default 5; 0: the last position is the cache's last). */
  slack?: number;
  /** Padding words after each cache row (default 0: stride kvD); V then starts at an odd word. */
  pad?: number;
}

async function checkAttention(ctx: GpuContext, ops: WebGpuOps, c: AttentionCase, rng: Rng, name: string) {
  const { hs, nH, nKV, T, S } = c;
  const pad = c.pad ?? 0;
  const qD = nH * hs, kvD = nKV * hs, C = S + (c.slack ?? 5), ks = kvD + pad;
  const vOff = C * ks + (pad ? 1 : 0);
  const q = rng.normals(T * qD, 2);
  const k = rng.normals(S * kvD, 2), v = rng.normals(S * kvD);
  // K and V of the layer in one buffer: K rows at word 8, V rows after the K region. With `pad`, rows are
  // kvD + pad words apart and everything but the visible rows is NaN, so reading it poisons the result.
  const kvAll = new Float32Array(vOff + C * ks).fill(pad ? NaN : 0);
  for (let s = 0; s < S; s++) {
    kvAll.set(k.subarray(s * kvD, (s + 1) * kvD), s * ks);
    kvAll.set(v.subarray(s * kvD, (s + 1) * kvD), vOff + s * ks);
  }
  const cache = upload(ctx, "kv cache", kvAll, 8);
  const out = { buffer: createStorageBuffer(ctx, "att", (T * (qD + 1) + 3) * 4), offset: 3, stride: qD + 1 };
  const step = ops.createStep();
  step.set(S - T, T);
  const args = {
    step,
    q: { buffer: upload(ctx, "q", q, 5), offset: 5 },
    kCache: { buffer: cache, offset: 8, stride: ks },
    vCache: { buffer: cache, offset: 8 + vOff, stride: ks },
    out,
    nHeads: nH,
    nKvHeads: nKV,
    headSize: hs,
    capacity: C,
  };
  const t0 = performance.now();
  record(ctx, (p) => (name === "attention prefill" ? ops.attentionPrefill(p, args) : ops.attention(p, args)));
  const want = attentionForward(q, k, v, T, S, { nHeads: nH, nKvHeads: nKV, headSize: hs });
  const got = await readView(ctx, out, T, qD);
  if (Deno.env.get("PROF")) console.log(name, JSON.stringify(c), performance.now() - t0);
  close(name, got, want, 1e-5, JSON.stringify(c));
}

Deno.test("webgpu attention decode matches attentionForward (S 1..300, GQA, one and several splits)", async () => {
  // The GPU-shaped kernel (attention_decode), forced: llvmpipe's default is the serial one (below).
  const { ctx, opsParallel, ops64 } = await setup();
  assert.equal(opsParallel.decodeKernel, "parallel");
  assert.equal(opsParallel.decodeSplit(8), 64);
  const rng = new Rng(5);
  for (const hs of HEAD_SIZES) {
    for (const [nH, nKV] of [[2, 2], [8, 2]]) {
      for (const S of [1, 2, 63, 64, 65, 200, 256, 257, 300]) {
        await checkAttention(ctx, opsParallel, { hs, nH, nKV, T: 1, S }, rng, "attention decode");
        await checkAttention(ctx, ops64, { hs, nH, nKV, T: 1, S }, rng, "attention decode");
      }
    }
  }
});

Deno.test("webgpu serial attention decode matches attentionForward (hs 4/8/64, MHA/GQA, splits, strides)", async () => {
  // attention_decode_serial: one invocation per split and set of query heads sharing a KV head. Default
  // geometry (256 positions per split: S ≤ 256 writes out directly, 300 goes through the reduce), 16 and 5
  // positions per split (S = 17, 129, 300 are not multiples: a short last split), and one head per
  // invocation; MHA and GQA groups of 4, 8 (8 heads per invocation at hs 4 and 8, 4 at hs 64) and 3 (3 of
  // the head slots used); the last position at the cache's end (slack 0); strided, oddly aligned K/V rows.
  const { ctx, ops } = await setup();
  const serial = await WebGpuOps.create(ctx, { headSizes: HEAD_SIZES, decodeKernel: "serial" });
  const split16 = await WebGpuOps.create(ctx, {
    headSizes: HEAD_SIZES,
    decodeKernel: "serial",
    decodeSplit: 16,
  });
  const perHead = await WebGpuOps.create(ctx, {
    headSizes: HEAD_SIZES,
    decodeKernel: "serial",
    decodeSplit: 5,
    decodeHeads: 1,
  });
  if (ops.compact) assert.equal(ops.decodeKernel, "serial", "compact ops default to the serial kernel");
  assert.equal(serial.decodeSplit(64), 256);
  assert.deepEqual(HEAD_SIZES.map((hs) => serial.decodeHeads(hs)), [8, 8, 4]);
  assert.equal(perHead.decodeHeads(64), 1);
  const rng = new Rng(11);
  const name = "decode serial";
  for (const hs of HEAD_SIZES) {
    for (const [nH, nKV] of [[2, 2], [8, 2], [6, 2], [8, 1]]) {
      for (const S of [1, 2, 17, 129, 300]) {
        for (const o of [serial, split16, perHead]) {
          await checkAttention(ctx, o, { hs, nH, nKV, T: 1, S }, rng, name);
        }
      }
      for (const S of [17, 129]) {
        await checkAttention(ctx, serial, { hs, nH, nKV, T: 1, S, slack: 0, pad: 3 }, rng, name);
        await checkAttention(ctx, split16, { hs, nH, nKV, T: 1, S, slack: 0, pad: 3 }, rng, name);
        await checkAttention(ctx, perHead, { hs, nH, nKV, T: 1, S, slack: 1, pad: 1 }, rng, name);
      }
    }
  }
  // Rescaling when the running max grows late: the largest score at the last position of a split.
  const hs = 8, nH = 4, nKV = 2, S = 40, qD = nH * hs, kvD = nKV * hs;
  const q = rng.normals(qD), k = rng.normals(S * kvD, 0.1), v = rng.normals(S * kvD);
  for (let d = 0; d < kvD; d++) k[(S - 1) * kvD + d] = 4 * Math.sign(q[d] || 1);
  for (const o of [serial, split16]) {
    const step = o.createStep();
    step.set(S - 1, 1);
    const kc = { buffer: upload(ctx, "k", k) }, vc = { buffer: upload(ctx, "v", v) };
    const out = { buffer: createStorageBuffer(ctx, "att", qD * 4) };
    record(ctx, (p) =>
      o.attention(p, {
        step,
        q: { buffer: upload(ctx, "q", q) },
        kCache: kc,
        vCache: vc,
        out,
        nHeads: nH,
        nKvHeads: nKV,
        headSize: hs,
        capacity: S,
      }));
    const want = attentionForward(q, k, v, 1, S, { nHeads: nH, nKvHeads: nKV, headSize: hs });
    close(name, await readF32(ctx, out.buffer, qD), want, 1e-5, "late maximum");
  }
  for (const o of [serial, split16, perHead]) o.dispose();
});

Deno.test("webgpu attention prefill matches attentionForward (T 1/3/17, pos0 offset, GQA)", async () => {
  const { ctx, ops } = await setup();
  const rng = new Rng(6);
  for (const hs of HEAD_SIZES) {
    for (const [nH, nKV] of [[2, 2], [8, 2]]) {
      for (const [T, S] of [[1, 1], [1, 40], [3, 3], [3, 50], [17, 17], [17, 300], [40, 299]]) {
        await checkAttention(ctx, ops, { hs, nH, nKV, T, S }, rng, "attention prefill");
        if (T > 1) await checkAttention(ctx, ops, { hs, nH, nKV, T, S }, rng, "attention (auto)");
      }
    }
  }
});

Deno.test("webgpu swiglu and add match swigluForward and addInPlace (ragged, strided)", async () => {
  const { ctx, ops } = await setup();
  const rng = new Rng(7);
  for (const cols of [1, 13, 300, 1000]) {
    for (const rows of [1, 3, 17]) {
      const a = rng.normals(rows * cols, 4), b = rng.normals(rows * cols);
      const padded = new Float32Array(rows * (cols + 1));
      for (let r = 0; r < rows; r++) padded.set(a.subarray(r * cols, (r + 1) * cols), r * (cols + 1));
      const av = { buffer: upload(ctx, "a", padded, 2), offset: 2, stride: cols + 1 };
      const bv = { buffer: upload(ctx, "b", b, 1), offset: 1 };
      record(ctx, (p) => ops.swiglu(p, { a: av, b: bv, rows, cols }));
      close("swiglu", await readView(ctx, av, rows, cols), swigluForward(a, b), 2e-6, `${rows}×${cols}`);
      // Fused (rows, 2·cols) w1|w3 output: a and b are two views of one buffer.
      const ab = new Float32Array(2 * rows * cols);
      for (let r = 0; r < rows; r++) {
        ab.set(a.subarray(r * cols, (r + 1) * cols), 2 * r * cols);
        ab.set(b.subarray(r * cols, (r + 1) * cols), (2 * r + 1) * cols);
      }
      const abBuf = upload(ctx, "a|b", ab, 5);
      const fa = { buffer: abBuf, offset: 5, stride: 2 * cols },
        fb = { buffer: abBuf, offset: 5 + cols, stride: 2 * cols };
      record(ctx, (p) => ops.swiglu(p, { a: fa, b: fb, rows, cols }));
      close(
        "swiglu",
        await readView(ctx, fa, rows, cols),
        swigluForward(a, b),
        2e-6,
        `fused ${rows}×${cols}`,
      );
      close("swiglu", await readView(ctx, fb, rows, cols), b, 0, `fused b untouched ${rows}×${cols}`);
      const xv = { buffer: upload(ctx, "x", a, 3), offset: 3 };
      record(ctx, (p) => ops.add(p, { x: xv, y: bv, rows, cols }));
      const want = a.slice();
      addInPlace(want, b);
      close("add", await readView(ctx, xv, rows, cols), want, 0, `${rows}×${cols}`);
    }
  }
});

Deno.test("webgpu argmax returns the first maximum per row (ties, −inf, NaN; V up to 32000)", async () => {
  const { ctx, ops } = await setup();
  const rng = new Rng(8);
  for (const n of [1, 5, 255, 257, 512, 32000]) {
    const rows = 3;
    const x = rng.normals(rows * n);
    const want = new Uint32Array(rows);
    for (let r = 0; r < rows; r++) {
      const row = x.subarray(r * n, (r + 1) * n);
      if (r === 1 && n > 4) {
        row[n - 2] = 50; // tie: the earlier index wins
        row[3] = 50;
        row[0] = NaN;
      }
      if (r === 2) row.fill(-Infinity);
      let best = 0;
      for (let i = 1; i < n; i++) if (row[i] > row[best] || Number.isNaN(row[best])) best = i;
      want[r] = r === 2 ? 0 : best;
    }
    const out = createStorageBuffer(ctx, "idx", 16);
    record(
      ctx,
      (p) =>
        ops.argmax(p, { x: { buffer: upload(ctx, "logits", x) }, out: { buffer: out, offset: 1 }, rows, n }),
    );
    assert.deepEqual(new Uint32Array(await readBuffer(ctx, out, 16, 0)).subarray(1), want, `n ${n}`);
  }
});

Deno.test("webgpu decode steps chained in one pass reuse bind groups and match the CPU", async () => {
  // rope → kvWrite → attention → add, at positions 0..299, one pass and one submit per step, with the
  // position only in the step uniform: bind groups are cached, so no GPU object is created after step 0.
  const { ctx, ops } = await setup();
  const rng = new Rng(9);
  const hs = 8, nH = 4, nKV = 2, qD = nH * hs, kvD = nKV * hs, C = 300;
  const step = ops.createStep("decode step");
  const qb = createStorageBuffer(ctx, "q", qD * 4), kb = createStorageBuffer(ctx, "k", kvD * 4);
  const vb = createStorageBuffer(ctx, "v", kvD * 4);
  const kc = { buffer: createStorageBuffer(ctx, "kc", C * kvD * 4) };
  const vc = { buffer: createStorageBuffer(ctx, "vc", C * kvD * 4) };
  const att = { buffer: createStorageBuffer(ctx, "att", qD * 4) };
  const x = new Float32Array(qD);
  const xb = { buffer: upload(ctx, "x", x) };
  const cpuK = new Float32Array(C * kvD), cpuV = new Float32Array(C * kvD);
  let groups = -1;
  for (let pos = 0; pos < C; pos++) {
    const q = rng.normals(qD), k = rng.normals(kvD), v = rng.normals(kvD);
    ctx.device.queue.writeBuffer(qb, 0, q.slice() as Float32Array<ArrayBuffer>);
    ctx.device.queue.writeBuffer(kb, 0, k.slice() as Float32Array<ArrayBuffer>);
    ctx.device.queue.writeBuffer(vb, 0, v.slice() as Float32Array<ArrayBuffer>);
    step.set(pos, 1);
    record(ctx, (p) => {
      ops.rope(p, {
        step,
        q: { buffer: qb },
        qWidth: qD,
        k: { buffer: kb },
        kWidth: kvD,
        headSize: hs,
        theta: 10000,
      });
      ops.kvWrite(p, {
        step,
        k: { buffer: kb },
        v: { buffer: vb },
        kCache: kc,
        vCache: vc,
        kvDim: kvD,
        capacity: C,
      });
      const shape = { nHeads: nH, nKvHeads: nKV, headSize: hs, capacity: C };
      ops.attention(p, { step, q: { buffer: qb }, kCache: kc, vCache: vc, out: att, ...shape });
      ops.add(p, { x: xb, y: att, rows: 1, cols: qD });
    });
    ropeForward(q, 1, qD, hs, pos, 10000);
    ropeForward(k, 1, kvD, hs, pos, 10000);
    cpuK.set(k, pos * kvD);
    cpuV.set(v, pos * kvD);
    const a = attentionForward(
      q,
      cpuK.subarray(0, (pos + 1) * kvD),
      cpuV.subarray(0, (pos + 1) * kvD),
      1,
      pos + 1,
      {
        nHeads: nH,
        nKvHeads: nKV,
        headSize: hs,
      },
    );
    addInPlace(x, a);
    if (pos % 37 === 0 || pos === C - 1) {
      close("decode chain", await readF32(ctx, xb.buffer, qD), x, 1e-5, `pos ${pos}`);
    }
    if (pos === 0) groups = ops.cachedBindGroups;
    if (pos === C - 1) assert.equal(ops.cachedBindGroups, groups + 1, "only the split-reduce group is new");
  }
});

Deno.test("webgpu ops reject bad shapes, aliasing and uncompiled head sizes", async () => {
  const { ctx, ops } = await setup();
  const step = ops.createStep();
  const small = createStorageBuffer(ctx, "small", 64);
  const big = createStorageBuffer(ctx, "big", 4096);
  const big2 = createStorageBuffer(ctx, "big2", 4096);
  const run = (f: (p: GPUComputePassEncoder) => void) => {
    const enc = ctx.device.createCommandEncoder({ label: "rejected" });
    const pass = enc.beginComputePass();
    try {
      f(pass);
    } finally {
      pass.end();
      enc.finish();
    }
  };
  assert.throws(
    () =>
      run((p) =>
        ops.rmsnorm(p, {
          x: { buffer: small },
          weight: { buffer: big },
          out: { buffer: big2 },
          rows: 2,
          dim: 16,
        })
      ),
    RangeError,
  );
  assert.throws(
    () => run((p) => ops.add(p, { x: { buffer: big }, y: { buffer: big, offset: 64 }, rows: 1, cols: 8 })),
    TypeError,
  );
  assert.throws(
    () =>
      run((p) =>
        ops.rmsnorm(p, {
          x: { buffer: big },
          weight: { buffer: big },
          out: { buffer: small },
          rows: 1,
          dim: 0,
        })
      ),
    RangeError,
  );
  const att = {
    step,
    q: { buffer: big },
    kCache: { buffer: big },
    vCache: { buffer: big },
    out: { buffer: small },
  };
  assert.throws(
    () => run((p) => ops.attention(p, { ...att, nHeads: 1, nKvHeads: 1, headSize: 12, capacity: 4 })),
    /prepare/,
  );
  assert.throws(
    () => run((p) => ops.attention(p, { ...att, nHeads: 3, nKvHeads: 2, headSize: 4, capacity: 4 })),
    RangeError,
  );
  step.set(4, 1);
  assert.throws(
    () => run((p) => ops.attention(p, { ...att, nHeads: 1, nKvHeads: 1, headSize: 4, capacity: 4 })),
    RangeError,
  );
  await assert.rejects(ops.prepare({ headSizes: [6] }), RangeError);
  await assert.rejects(WebGpuOps.create(ctx, { decodeKernel: "serial", decodeSplit: 0 }), RangeError);
  await assert.rejects(WebGpuOps.create(ctx, { decodeKernel: "serial", decodeHeads: 3 }), RangeError);
  await assert.rejects(WebGpuOps.create(ctx, { decodeKernel: "parallel", decodeSplit: 48 }), RangeError);
  await assert.rejects(
    WebGpuOps.create(ctx, { decodeKernel: "gpu" as unknown as "serial" }),
    TypeError,
  );
});

Deno.test("webgpu ops with the GPU geometry (compact: false) match the CPU too", async () => {
  // The tests above run the compact geometry llvmpipe gets by default; this compiles the GPU one
  // (256-thread rows, 256-position decode splits, 16 × 32 prefill tiles) for a small head size, which
  // llvmpipe can compile in seconds.
  const { ctx } = await setup();
  const ops = await WebGpuOps.create(ctx, { compact: false, headSizes: [8] });
  assert.equal(ops.rowThreads, 256);
  assert.equal(ops.decodeKernel, "parallel");
  assert.equal(ops.decodeSplit(8), 256);
  const rng = new Rng(10);
  for (const S of [1, 200, 300]) {
    await checkAttention(ctx, ops, { hs: 8, nH: 8, nKV: 2, T: 1, S }, rng, "attention decode");
  }
  for (const [T, S] of [[3, 3], [17, 300], [40, 299]]) {
    await checkAttention(ctx, ops, { hs: 8, nH: 8, nKV: 2, T, S }, rng, "attention prefill");
  }
  const D = 1000, T = 3;
  const x = rng.normals(T * D), w = rng.normals(D);
  const out = createStorageBuffer(ctx, "out", T * D * 4);
  const idx = createStorageBuffer(ctx, "idx", T * 4);
  const xb = upload(ctx, "x", x);
  record(ctx, (p) => {
    ops.rmsnorm(p, {
      x: { buffer: xb },
      weight: { buffer: upload(ctx, "w", w) },
      out: { buffer: out },
      rows: T,
      dim: D,
    });
    ops.argmax(p, { x: { buffer: xb }, out: { buffer: idx }, rows: T, n: D });
  });
  close("rmsnorm", await readF32(ctx, out, T * D), rmsnormForward(x, w, T, D, 1e-5), 2e-6, "GPU geometry");
  const want = Uint32Array.from({ length: T }, (_, t) => {
    let best = 0;
    for (let i = 1; i < D; i++) if (x[t * D + i] > x[t * D + best]) best = i;
    return best;
  });
  assert.deepEqual(new Uint32Array(await readBuffer(ctx, idx, T * 4)), want);
});
