// The training GEMM: the CPU reference (src/model/gemm.ts) against a float64 triple loop, and the three
// WebGPU kernel families (kernels/gemm_train.wgsl, tiled; kernels/gemm_direct.wgsl, direct;
// kernels/gemm_pack.wgsl + kernels/gemm_texel.wgsl, texel) against the CPU reference on every transpose
// combination, ragged shapes, strided views at offsets, alpha/beta, and beta = 0 over NaN; the direct
// family also on views that take its vec4 and mixed load paths, the texel family on each packing variant,
// its vec4 stores, a product split over textures, and one texture for both operands. Fails (does not
// skip) without a WebGPU adapter: CI has llvmpipe.

import assert from "node:assert/strict";
import { createStorageBuffer, type GpuContext, readF32, requestGpu } from "../src/backend/webgpu/device.ts";
import {
  COMPACT_TEXEL_GEMM_GEOMETRY,
  DIRECT_GEMM_8X8,
  directVec4,
  type GemmArgs,
  type GemmGeometry,
  gemmShapeClass,
  geometryKey,
  GPU_GEMM_GEOMETRY,
  texelGemmSupported,
  texelPackVec4,
  texelPays,
  validateGemmGeometry,
  WebGpuGemm,
} from "../src/backend/webgpu/gemm.ts";
import type { GpuView } from "../src/backend/webgpu/dispatch.ts";
import { gemm, type GemmOptions } from "../src/model/gemm.ts";
import { Rng } from "../src/util/rng.ts";

const gpu = await requestGpu();
const gemmPromise = gpu ? WebGpuGemm.create(gpu) : null;
/** One geometry of each family, cheap to compile on llvmpipe (the default direct one is 8 × 16). */
const TILED: GemmGeometry = { kind: "tiled", BM: 16, BN: 16, BK: 8, TM: 4, TN: 4 };
const DIRECT: GemmGeometry = DIRECT_GEMM_8X8;
/** Texel geometry: two vec4 column groups (TN 8), a row count that is not a multiple of 4. */
const TEXEL: GemmGeometry = { kind: "texel", TM: 3, TN: 8, WG: 16 };

async function setup(): Promise<{ ctx: GpuContext; g: WebGpuGemm }> {
  if (!gpu || !gemmPromise) {
    throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; see ENGINEERING.md §1)");
  }
  return { ctx: gpu, g: await gemmPromise };
}

const COMBOS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];
const SHAPES: [number, number, number][] = [[1, 1, 1], [7, 13, 5], [65, 33, 130], [128, 64, 256]];

/** C = alpha · op(A) · op(B) + beta · C in float64, element by element (the definition). */
function naive(a: Float32Array, b: Float32Array, c: Float32Array, o: Required<GemmOptions>): void {
  for (let i = 0; i < o.M; i++) {
    for (let j = 0; j < o.N; j++) {
      let s = 0;
      for (let k = 0; k < o.K; k++) {
        const av = o.transA ? a[k * o.lda + i] : a[i * o.lda + k];
        const bv = o.transB ? b[j * o.ldb + k] : b[k * o.ldb + j];
        s += av * bv;
      }
      const at = i * o.ldc + j;
      c[at] = o.beta === 0 ? o.alpha * s : o.alpha * s + o.beta * c[at];
    }
  }
}

/** Max |got − want| over the (rows, width) view at `ld`, relative to max |want| (at least 1e-6). */
function relErr(got: Float32Array, want: Float32Array, rows: number, width: number, ld: number): number {
  let scale = 1e-6, err = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < width; c++) {
      const i = r * ld + c;
      scale = Math.max(scale, Math.abs(want[i]));
      const e = Math.abs(got[i] - want[i]);
      err = Number.isNaN(e) ? Infinity : Math.max(err, e);
    }
  }
  return err / scale;
}

Deno.test("gemm (CPU) matches a float64 triple loop: transposes, strides, alpha/beta, NaN C with beta 0", () => {
  const rng = new Rng(11);
  for (const [M, N, K] of [[1, 1, 1], [7, 13, 5], [9, 4, 17], [6, 7, 11]]) {
    for (const [transA, transB] of COMBOS) {
      for (const [alpha, beta] of [[1, 0], [0.5, 1], [-2, 0.25]]) {
        const lda = (transA ? M : K) + 2, ldb = (transB ? K : N) + 1, ldc = N + 3;
        const a = rng.normals((transA ? K : M) * lda), b = rng.normals((transB ? N : K) * ldb);
        const c0 = beta === 0 ? new Float32Array(M * ldc).fill(NaN) : rng.normals(M * ldc);
        const o = { M, N, K, transA, transB, alpha, beta, lda, ldb, ldc };
        const got = Float32Array.from(c0), want = Float32Array.from(c0);
        gemm(a, b, got, o);
        naive(a, b, want, o);
        const what = `${M}×${N}×${K} ${transA ? "T" : "N"}${transB ? "T" : "N"} α=${alpha} β=${beta}`;
        assert.ok(relErr(got, want, M, N, ldc) < 1e-6, what);
        // The padding between C's rows is left alone.
        for (let i = 0; i < M; i++) {
          for (let j = N; j < ldc; j++) assert.ok(Object.is(got[i * ldc + j], c0[i * ldc + j]), what);
        }
      }
    }
  }
  assert.throws(
    () => gemm(new Float32Array(5), new Float32Array(6), new Float32Array(4), { M: 2, N: 2, K: 3 }),
    {
      name: "RangeError",
      message: /A \(2 rows of 3, stride 3\) needs 6 elements, found 5/,
    },
  );
  assert.throws(
    () => gemm(new Float32Array(6), new Float32Array(6), new Float32Array(4), { M: 2, N: 2, K: 3, ldb: 1 }),
    RangeError,
  );
});

/** A buffer holding `data` after `lead` NaN words and before `tail` NaN words (stray reads show up). */
function upload(ctx: GpuContext, label: string, data: Float32Array, lead = 0, tail = 0): GPUBuffer {
  const all = new Float32Array(lead + data.length + tail).fill(NaN);
  all.set(data, lead);
  return createStorageBuffer(ctx, label, all);
}

interface Case {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  /** Extra words per stored row of each operand (0: contiguous) and offsets of each view. */
  pad: number;
  offset: number;
  /** Per-operand extra words per row [A, B, C] (overrides pad). */
  pads?: readonly [number, number, number];
  /** Per-operand view offsets [A, B, C] (overrides offset, 2 · offset, offset + 1). */
  offsets?: readonly [number, number, number];
}

/**
 * Runs one case on the GPU (optionally with a forced geometry) and checks it against the CPU gemm. `same`:
 * B is A's view (A stored (M, K) or (K, M); the case's N, pads[1] and offsets[1] are ignored).
 */
async function check(
  ctx: GpuContext,
  g: WebGpuGemm,
  rng: Rng,
  t: Case,
  geometry?: GemmGeometry,
  same = false,
) {
  const { M, N, K, transA, transB, alpha, beta, pad, offset } = t;
  const [aRows, aW] = transA ? [K, M] : [M, K];
  const [bRows, bW] = transB ? [N, K] : [K, N];
  const [padA, padB, padC] = t.pads ?? [pad, pad, pad];
  const [offA, offB, offC] = t.offsets ?? [offset, 2 * offset, offset + 1];
  const lda = aW + padA, ldb = bW + padB, ldc = N + padC;
  // Operands stored (rows, ld) with NaN in the padding columns: the kernel must never read them.
  const strided = (rows: number, w: number, ld: number) => {
    const x = new Float32Array(rows * ld).fill(NaN);
    for (let r = 0; r < rows; r++) x.set(rng.normals(w), r * ld);
    return x;
  };
  if (same) assert.ok(M === N && transB === !transA && lda === ldb, "same: a Gram product of one view");
  const a = strided(aRows, aW, lda), b = same ? a : strided(bRows, bW, ldb);
  const c0 = beta === 0 ? new Float32Array(M * ldc).fill(NaN) : strided(M, N, ldc);
  const want = Float32Array.from(c0);
  gemm(a, b, want, { M, N, K, transA, transB, alpha, beta, lda, ldb, ldc });
  const aBuf = upload(ctx, "A", a, offA, 5), bBuf = same ? aBuf : upload(ctx, "B", b, offB, 3);
  const cBuf = upload(ctx, "C", c0, offC, 7);
  const view = (buffer: GPUBuffer, off: number, stride: number): GpuView => ({ buffer, offset: off, stride });
  const args: GemmArgs = {
    a: view(aBuf, offA, lda),
    b: same ? view(aBuf, offA, lda) : view(bBuf, offB, ldb),
    c: view(cBuf, offC, ldc),
    M,
    N,
    K,
    transA,
    transB,
    alpha,
    beta,
    geometry,
  };
  const enc = ctx.device.createCommandEncoder({ label: "test" });
  const pass = enc.beginComputePass({ label: "test" });
  g.gemm(pass, args);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  const all = await readF32(ctx, cBuf, offC + M * ldc + 7);
  const got = all.subarray(offC, offC + M * ldc);
  const loads = g.vec4Views(args).map((v) => (v ? "vec4" : "scalar")).join("/");
  const what = `${M}×${N}×${K} ${transA ? "T" : "N"}${transB ? "T" : "N"} α=${alpha} β=${beta} pads ` +
    `${[padA, padB, padC]} offsets ${[offA, offB, offC]} geometry ${
      geometryKey(geometry ?? g.geometryFor(t))
    } ` +
    `loads ${loads}`;
  const err = relErr(got, want, M, N, ldc);
  assert.ok(err < 2e-6 * Math.sqrt(K), `${what}: relative error ${err}`);
  // Nothing outside C's (M, N) view was written: padding columns and the words around the view.
  for (let i = 0; i < M; i++) {
    for (let j = N; j < ldc; j++) assert.ok(Number.isNaN(got[i * ldc + j]), `${what}: wrote C padding`);
  }
  for (let i = 0; i < offC; i++) assert.ok(Number.isNaN(all[i]), `${what}: wrote before C`);
  for (let i = offC + M * ldc; i < all.length; i++) assert.ok(Number.isNaN(all[i]), `${what}: wrote after C`);
  aBuf.destroy();
  if (!same) bBuf.destroy();
  cBuf.destroy();
  g.clearCache();
  return g.vec4Views(args);
}

for (const [family, geometry] of [["tiled", TILED], ["direct", DIRECT], ["texel", TEXEL]] as const) {
  Deno.test(`webgpu gemm (${family}) matches the CPU gemm: 4 transposes, ragged, strided, alpha/beta`, async () => {
    const { ctx, g } = await setup();
    await g.prepare(geometry);
    const rng = new Rng(5);
    for (const [M, N, K] of SHAPES) {
      for (const [transA, transB] of COMBOS) {
        // Contiguous with beta 0 over NaN, then strided at offsets with both scalars non-trivial.
        await check(ctx, g, rng, { M, N, K, transA, transB, alpha: 1, beta: 0, pad: 0, offset: 0 }, geometry);
        const loads = await check(ctx, g, rng, {
          M,
          N,
          K,
          transA,
          transB,
          alpha: -0.75,
          beta: 0.5,
          pad: 3,
          offset: 13,
        }, geometry);
        assert.deepEqual(loads, [false, false, false], "odd offsets and strides take the scalar loads");
      }
    }
  });
}

Deno.test("webgpu gemm (direct): vec4 and mixed views, K % 4 tails, other register tiles", async () => {
  const { ctx, g } = await setup();
  const rng = new Rng(21);
  const base = { alpha: 1.5, beta: 0, pad: 0, offset: 0 };
  const V = (...v: boolean[]) => v;
  for (const [transA, transB] of COMBOS) {
    // vec4 A and B: contiguous views with multiple-of-4 extents; M = 36 and N = 20 are ragged for 8 × 8
    // register tiles (clamped vec4 groups), K = 36 has no tail. Then all vec4, C at an offset and stride
    // that are multiples of 4 (skipped vec4 stores at the edges), with beta.
    let vec = await check(ctx, g, rng, { ...base, M: 36, N: 20, K: 36, transA, transB }, DIRECT);
    assert.deepEqual(vec, V(true, true, false)); // check() puts C at offset 1
    const offC = { pads: [0, 0, 4], offsets: [0, 0, 8] } as const;
    vec = await check(
      ctx,
      g,
      rng,
      { ...base, M: 36, N: 20, K: 36, transA, transB, beta: 0.5, ...offC },
      DIRECT,
    );
    assert.deepEqual(vec, V(true, true, true));
    // vec4 A and B with a K % 4 tail: strides padded to multiples of 4, offsets multiples of 4; scalar C
    // (odd offset), beta 1.
    const kTail = { ...base, M: 36, N: 20, K: 30, transA, transB, beta: 1, offsets: [8, 4, 3] } as const;
    const pads = (k: number): [number, number, number] => [transA ? 4 : k, transB ? k : 4, 1];
    vec = await check(ctx, g, rng, { ...kTail, pads: pads(2) }, DIRECT);
    assert.deepEqual(vec, V(true, true, false));
    // Mixed: A vec4 and B scalar (B at an odd offset), then the reverse (A's stride not a multiple of 4).
    vec = await check(ctx, g, rng, { ...kTail, pads: pads(2), offsets: [4, 1, 0] }, DIRECT);
    assert.deepEqual(vec, V(true, false, false));
    vec = await check(ctx, g, rng, {
      ...kTail,
      pads: [transA ? 1 : 3, transB ? 2 : 4, 0],
      offsets: [0, 8, 0],
    }, DIRECT);
    assert.deepEqual(vec, V(false, true, true));
    // Extents along the stored rows that are not multiples of 4 force scalars there (A stored (K, M) with
    // M = 37; B stored (K, N) and C with N = 21); k-contiguous operands keep their vec4 loads.
    vec = await check(ctx, g, rng, { ...base, M: 37, N: 21, K: 33, transA, transB, pads: pads(3) }, DIRECT);
    assert.deepEqual(vec, V(!transA, transB, false));
    // K < 4: no vec4 loop, so no vec4 loads; C still vec4.
    vec = await check(ctx, g, rng, {
      ...base,
      M: 12,
      N: 8,
      K: 3,
      transA,
      transB,
      beta: 2,
      offsets: [0, 0, 0],
    }, DIRECT);
    assert.deepEqual(vec, V(false, false, true));
  }
  // Register tiles that are not multiples of 4 (scalars along M and N), one vec4 group along M, a 1 × 1.
  const others: GemmGeometry[] = [
    { kind: "direct", TM: 3, TN: 5, WG: 8 },
    { kind: "direct", TM: 4, TN: 8, WG: 32 },
    { kind: "direct", TM: 1, TN: 1, WG: 64 },
  ];
  for (const geometry of others) {
    await g.prepare(geometry, [[false, true], [true, false]]);
    for (const [M, N, K] of [[1, 1, 1], [7, 13, 5], [65, 33, 130], [40, 36, 64]]) {
      for (const [transA, transB] of [[false, true], [true, false]]) {
        await check(ctx, g, rng, { M, N, K, transA, transB, alpha: 1, beta: 0, pad: 0, offset: 0 }, geometry);
        await check(
          ctx,
          g,
          rng,
          { M, N, K, transA, transB, alpha: 2, beta: -1, pad: 1, offset: 5 },
          geometry,
        );
      }
    }
  }
  // The vec4 conditions themselves.
  assert.equal(directVec4(0, 64, 0, 8), true);
  assert.equal(directVec4(2, 64, 0, 8), false); // offset
  assert.equal(directVec4(0, 66, 0, 8), false); // stride
  assert.equal(directVec4(0, 64, 36, 8), true);
  assert.equal(directVec4(0, 64, 37, 8), false); // extent along M or N
  assert.equal(directVec4(0, 64, 36, 6), false); // register tile along M or N
});

Deno.test("webgpu gemm (texel): packings, K tails, vec4 stores, split products, shared operand", async () => {
  const { ctx, g } = await setup();
  if (!g.texels) throw new Error(`${ctx.adapterDescription} lacks read-only storage textures`);
  const rng = new Rng(33);
  const geometry: GemmGeometry = { kind: "texel", TM: 4, TN: 4, WG: 8 };
  await g.prepare(geometry);
  const base = { alpha: 1.25, beta: 0, pad: 0, offset: 0 };
  for (const [transA, transB] of COMBOS) {
    // Every packing variant: K = 36 (multiple of 4, k4 = 9 leaves a partial group of four texels) and
    // M = 20, N = 12 (multiples of 4) take the vec4 loads; C at an offset and stride that are multiples of
    // 4 takes vec4 stores (N = 12 is ragged for TN = 8 geometries, not for 4).
    const vecC = { pads: [0, 0, 4], offsets: [0, 4, 8] } as const;
    let vec = await check(ctx, g, rng, { ...base, M: 20, N: 12, K: 36, transA, transB, ...vecC }, geometry);
    assert.deepEqual(vec, [true, true, true]);
    vec = await check(ctx, g, rng, { ...base, M: 20, N: 12, K: 36, transA, transB, beta: 1, ...vecC }, TEXEL);
    assert.deepEqual(vec, [true, true, true]);
    // K % 4 tails (zero padding in the last texel): the k-contiguous operands drop to scalar loads, the
    // transposed ones keep vec4 loads along M and N; then extents along the stored rows not multiples of 4.
    vec = await check(
      ctx,
      g,
      rng,
      { ...base, M: 20, N: 12, K: 30, transA, transB, beta: -1, ...vecC },
      geometry,
    );
    assert.deepEqual(vec, [transA, !transB, true]);
    vec = await check(
      ctx,
      g,
      rng,
      { ...base, M: 21, N: 13, K: 5, transA, transB, offsets: [4, 8, 0] },
      geometry,
    );
    assert.deepEqual(vec, [false, false, false]);
    // One texture for both operands: C = A·Aᵀ (A stored (M, K)) or Aᵀ·A (A stored (K, M)).
    if (transA !== transB) {
      const gram = { ...base, M: 24, N: 24, K: 33, transA, transB, pads: [3, 3, 1] as const };
      await check(ctx, g, rng, { ...gram, offsets: [5, 5, 2] }, geometry, true);
      await check(ctx, g, rng, { ...gram, pads: [0, 0, 0], offsets: [8, 8, 0], beta: 0.5 }, TEXEL, true);
    }
  }
  assert.equal(texelPackVec4(4, 8, 12), true);
  assert.equal(texelPackVec4(2, 8, 12), false); // offset
  assert.equal(texelPackVec4(4, 6, 12), false); // stride
  assert.equal(texelPackVec4(4, 8, 13), false); // K, or the rows of a transposed operand
  // Operand textures of 40 texels: products whose packed op(A) or op(B)ᵀ needs more are split along M,
  // then N (K = 33: 9 texels per row, 4 rows per texture); K = 200 needs 50 texels per row: refused.
  const small = await WebGpuGemm.create(ctx, { geometry: TEXEL, maxTexels: 40 });
  try {
    for (const [transA, transB] of COMBOS) {
      await check(ctx, small, rng, {
        M: 11,
        N: 10,
        K: 33,
        transA,
        transB,
        alpha: 1,
        beta: 0.5,
        pad: 2,
        offset: 3,
      }, TEXEL);
      await check(ctx, small, rng, { ...base, M: 3, N: 9, K: 36, transA, transB, offsets: [0, 0, 0] }, TEXEL);
    }
    const buf = createStorageBuffer(ctx, "x", 200 * 4 * 4), c = createStorageBuffer(ctx, "c", 16 * 4);
    const enc = ctx.device.createCommandEncoder({ label: "split" });
    const pass = enc.beginComputePass({ label: "split" });
    assert.throws(
      () =>
        small.gemm(pass, {
          a: { buffer: buf },
          b: { buffer: buf },
          c: { buffer: c },
          M: 4,
          N: 4,
          K: 200,
          geometry: TEXEL,
        }),
      { name: "RangeError", message: /K = 200 needs 50 texels per packed row, more than the 40/ },
    );
    pass.end();
    enc.finish();
    buf.destroy();
    c.destroy();
  } finally {
    small.dispose();
  }
  assert.equal(await texelGemmSupported(ctx), true);
});

Deno.test("webgpu gemm: families on training shapes, a tall-skinny product, argument checks", async () => {
  const { ctx, g } = await setup();
  const rng = new Rng(9);
  await g.prepare(TILED, [[false, true], [true, false]]);
  // Forward y = x·Wᵀ and dW += dYᵀ·x shapes of the small model (T 37, in 64, out 172), on the tiled
  // family, the default geometry (on llvmpipe these small products take the direct 8 × 8 fallback of the
  // texel default; tiled on a GPU) and the texel default itself where the adapter has it.
  const texelDefault = g.texels ? [COMPACT_TEXEL_GEMM_GEOMETRY] : [];
  if (g.texels) await g.prepare(COMPACT_TEXEL_GEMM_GEOMETRY);
  for (const geometry of [TILED, undefined, ...texelDefault]) {
    const base = { alpha: 1, pad: 0, offset: 0 };
    await check(
      ctx,
      g,
      rng,
      { ...base, M: 37, N: 172, K: 64, transA: false, transB: true, beta: 0 },
      geometry,
    );
    await check(
      ctx,
      g,
      rng,
      { ...base, M: 172, N: 64, K: 37, transA: true, transB: false, beta: 1 },
      geometry,
    );
    await check(ctx, g, rng, {
      ...base,
      M: 172,
      N: 64,
      K: 36,
      transA: true,
      transB: false,
      beta: 1,
      offsets: [0, 4, 8],
    }, geometry);
  }
  // Tall-skinny (K large, one output) on the default geometry.
  await check(ctx, g, rng, {
    M: 3,
    N: 1,
    K: 1000,
    transA: true,
    transB: true,
    alpha: 2,
    beta: 0,
    pad: 0,
    offset: 4,
  });

  const buf = createStorageBuffer(ctx, "x", 64 * 4);
  const enc = ctx.device.createCommandEncoder({ label: "checks" });
  const pass = enc.beginComputePass({ label: "checks" });
  const base = { M: 4, N: 4, K: 4, a: { buffer: buf }, b: { buffer: buf } };
  assert.throws(() => g.gemm(pass, { ...base, c: { buffer: buf } }), {
    name: "TypeError",
    message: /written and bound twice/,
  });
  const c = createStorageBuffer(ctx, "c", 16 * 4);
  assert.throws(() => g.gemm(pass, { ...base, M: 5, c: { buffer: c } }), {
    name: "RangeError",
    message: /needs 80 bytes/,
  });
  assert.throws(() => g.gemm(pass, { ...base, a: { buffer: buf, stride: 3 }, c: { buffer: c } }), {
    name: "RangeError",
    message: /expected lda to be an integer ≥ 4, found 3/,
  });
  assert.throws(() => g.gemm(pass, { ...base, c: { buffer: c }, alpha: NaN }), RangeError);
  assert.throws(
    () =>
      g.gemm(pass, {
        ...base,
        c: { buffer: c },
        geometry: { kind: "tiled", BM: 8, BN: 8, BK: 8, TM: 2, TN: 2 },
      }),
    /is not compiled/,
  );
  assert.throws(
    () => g.gemm(pass, { ...base, c: { buffer: c }, geometry: { kind: "direct", TM: 2, TN: 2, WG: 8 } }),
    /is not compiled/,
  );
  assert.throws(
    () => g.gemm(pass, { ...base, c: { buffer: c }, geometry: { kind: "texel", TM: 2, TN: 2, WG: 8 } }),
    /is not compiled/,
  );
  assert.throws(() => validateGemmGeometry(ctx, { kind: "texel", TM: 32, TN: 16, WG: 8 }), /registers/);
  assert.throws(() => validateGemmGeometry(ctx, { kind: "direct", TM: 32, TN: 16, WG: 8 }), /registers/);
  const tooMany = 2 * ctx.limits.maxComputeInvocationsPerWorkgroup;
  assert.throws(() => validateGemmGeometry(ctx, { kind: "direct", TM: 4, TN: 4, WG: tooMany }), /threads/);
  assert.throws(
    () => validateGemmGeometry(ctx, { kind: "tiled", BM: 16, BN: 16, BK: 8, TM: 3, TN: 4 }),
    /TM must divide BM/,
  );
  pass.end();
  enc.finish();
  buf.destroy();
  c.destroy();
});

Deno.test("webgpu gemm tune times candidates and keeps the fastest for the shape class", async () => {
  const { g } = await setup();
  const shape = { M: 96, N: 80, K: 64, transB: true };
  // The default (texel or direct on a software adapter, tiled on a GPU) and another family.
  const other: GemmGeometry = g.defaultGeometry.kind === "tiled"
    ? { kind: "direct", TM: 4, TN: 4, WG: 64 }
    : { kind: "tiled", BM: 16, BN: 16, BK: 8, TM: 4, TN: 4 };
  const candidates: GemmGeometry[] = [g.defaultGeometry, other];
  const r = await g.tune(shape, { candidates, reps: 3, batchMs: 20 });
  assert.equal(r.shapeClass, gemmShapeClass(shape));
  assert.deepEqual(Object.keys(r.ms).sort(), candidates.map(geometryKey).sort());
  const best = candidates.reduce((x, y) => (r.ms[geometryKey(y)] < r.ms[geometryKey(x)] ? y : x));
  assert.deepEqual(r.geometry, best);
  assert.deepEqual(g.geometryFor({ M: 100, N: 70, K: 60, transB: true }), best); // same class
  assert.deepEqual(g.geometryFor({ M: 1024, N: 1024, K: 64 }), g.defaultGeometry); // another class
  console.log(`gemm tune on ${gpu?.adapterDescription}: ${JSON.stringify(r.ms)}`);
});

Deno.test("webgpu gemm default: texel (else direct) on software adapters, tiled on GPUs", async () => {
  const { ctx, g } = await setup();
  // Products too small to pay for the packing take the direct 8 × 8 fallback of a texel default.
  assert.equal(texelPays({ M: 64, N: 64, K: 64 }), false);
  assert.equal(texelPays({ M: 64, N: 64, K: 1024, transA: true }), false);
  assert.equal(texelPays({ M: 1024, N: 64, K: 64, transB: true }), true);
  assert.equal(texelPays({ M: 64, N: 4096, K: 512, transB: true }), true);
  const texel = await WebGpuGemm.create(ctx, { geometry: { kind: "texel", TM: 4, TN: 4, WG: 8 } }).catch(() =>
    null
  );
  if (texel) {
    assert.deepEqual(texel.geometryFor({ M: 64, N: 64, K: 64 }), DIRECT_GEMM_8X8);
    assert.deepEqual(texel.geometryFor({ M: 1024, N: 64, K: 64 }), texel.defaultGeometry);
    // The fallback runs without prepare (compiled on first use).
    const small = { M: 7, N: 13, K: 5, transA: false, transB: true, alpha: 2, beta: 0, pad: 1, offset: 3 };
    await check(ctx, texel, new Rng(2), small);
    texel.dispose();
  } else {
    assert.equal(g.texels, false);
  }
  const software = ctx.isFallback ||
    /llvmpipe|lavapipe|softpipe|swiftshader|warp/i.test(ctx.adapterDescription);
  assert.equal(g.compact, software);
  assert.equal(g.texels, await texelGemmSupported(ctx));
  assert.equal(g.defaultGeometry.kind, software ? (g.texels ? "texel" : "direct") : "tiled");
  if (!software) assert.deepEqual(g.defaultGeometry, GPU_GEMM_GEOMETRY);
  if (/llvmpipe/i.test(ctx.adapterDescription)) {
    assert.deepEqual(g.defaultGeometry, COMPACT_TEXEL_GEMM_GEOMETRY);
  }
});

/**
 * `count` products in one batched call: A_z, B_z, C_z at z · (size + gap) words (B shared when `shareB`:
 * stride 0), each checked against the CPU gemm; the gaps between the C products stay NaN.
 */
async function checkBatch(
  ctx: GpuContext,
  g: WebGpuGemm,
  rng: Rng,
  t: { M: number; N: number; K: number; transA: boolean; transB: boolean; count: number; gap: number },
  geometry: GemmGeometry,
  shareB: boolean,
): Promise<readonly boolean[]> {
  const { M, N, K, transA, transB, count, gap } = t;
  const [sa, sb, sc] = [M * K + gap, shareB ? 0 : K * N + gap, M * N + gap];
  const fill = (n: number, size: number, stride: number) => {
    const x = new Float32Array(Math.max(1, (n - 1) * stride + size)).fill(NaN);
    for (let z = 0; z < n; z++) x.set(rng.normals(size), z * stride);
    return x;
  };
  const a = fill(count, M * K, sa), b = fill(shareB ? 1 : count, K * N, sb);
  const c0 = fill(count, M * N, sc);
  const [alpha, beta] = [0.5, -1.25];
  const want = Float32Array.from(c0);
  for (let z = 0; z < count; z++) {
    const [ca, cb] = [a.subarray(z * sa), b.subarray(z * sb)];
    gemm(ca, cb, want.subarray(z * sc), { M, N, K, transA, transB, alpha, beta });
  }
  const [aBuf, bBuf, cBuf] = [upload(ctx, "A", a, 4), upload(ctx, "B", b, 8), upload(ctx, "C", c0, 4)];
  const args: GemmArgs = {
    a: { buffer: aBuf, offset: 4 },
    b: { buffer: bBuf, offset: 8 },
    c: { buffer: cBuf, offset: 4 },
    M,
    N,
    K,
    transA,
    transB,
    alpha,
    beta,
    geometry,
    batch: { count, a: sa, b: sb, c: sc },
  };
  const enc = ctx.device.createCommandEncoder({ label: "test" });
  const pass = enc.beginComputePass({ label: "test" });
  g.gemm(pass, args);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  const got = (await readF32(ctx, cBuf, 4 + c0.length)).subarray(4);
  const what = `${count}× ${M}×${N}×${K} ${transA ? "T" : "N"}${transB ? "T" : "N"} gap ${gap} ` +
    `${shareB ? "shared B " : ""}geometry ${geometryKey(geometry)}`;
  for (let z = 0; z < count; z++) {
    const at = z * sc;
    const err = relErr(got.subarray(at, at + M * N), want.subarray(at, at + M * N), M, N, N);
    assert.ok(err < 2e-6 * Math.sqrt(K), `${what}: product ${z}: relative error ${err}`);
    for (let i = M * N; i < sc && at + i < got.length; i++) {
      assert.ok(Number.isNaN(got[at + i]), `${what}: wrote the gap after product ${z}`);
    }
  }
  for (const x of [aBuf, bBuf, cBuf]) x.destroy();
  g.clearCache();
  return g.vec4Views(args);
}

Deno.test("webgpu gemm: batched products (direct: one dispatch; tiled, texel: one each), ragged, strides", async () => {
  const { ctx, g } = await setup();
  const rng = new Rng(31);
  for (const geometry of [DIRECT, TILED, TEXEL]) {
    await g.prepare(geometry);
    for (const [M, N, K] of [[7, 13, 5], [64, 64, 64], [33, 20, 12]]) {
      for (const [transA, transB] of COMBOS) {
        for (const [count, gap, shareB] of [[3, 0, false], [4, 5, true], [2, 4, false]] as const) {
          const vec = await checkBatch(
            ctx,
            g,
            rng,
            { M, N, K, transA, transB, count, gap },
            geometry,
            shareB,
          );
          // Direct family: a stride that is not a multiple of 4 takes the scalar path for that operand.
          if (geometry === DIRECT && (M * N + gap) % 4 !== 0) assert.equal(vec[2], false);
        }
      }
    }
  }
  // Checks: overlapping C products, a count outside [1, 65535], negative strides.
  const buf = createStorageBuffer(ctx, "x", 4096 * 4);
  const base: GemmArgs = {
    a: { buffer: buf },
    b: { buffer: buf },
    c: { buffer: createStorageBuffer(ctx, "c", 4096 * 4) },
    M: 4,
    N: 4,
    K: 4,
  };
  const record = (batch: GemmArgs["batch"]) => {
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    try {
      g.gemm(pass, { ...base, batch, geometry: DIRECT });
    } finally {
      pass.end();
    }
  };
  assert.throws(() => record({ count: 2, a: 16, b: 16, c: 15 }), /batch\.c ≥ 16/);
  assert.throws(() => record({ count: 0, a: 16, b: 16, c: 16 }), /batch\.count/);
  assert.throws(() => record({ count: 2, a: -16, b: 16, c: 16 }), /batch\.a/);
});
