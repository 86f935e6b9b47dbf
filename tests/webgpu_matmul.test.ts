// The weight matmul kernels (GEMV and token-tiled GEMM; f32, fp16-storage, packed k = 1..4, int8 with
// per-row scales) against the
// CPU references on ragged shapes, in both the GPU-shaped and the software-adapter geometry, with x read
// as vec4s and as scalars; offsets, strides, accumulation, weights split across bindings, the bytes an
// upload allocates, the autotuner, and the embed script's check mode.
// Fails (does not skip) without a WebGPU adapter: CI has llvmpipe.

import assert from "node:assert/strict";
import { createStorageBuffer, readF32, requestGpu } from "../src/backend/webgpu/device.ts";
import {
  DEFAULT_GEMM_GEOMETRY,
  DEFAULT_GEMV_GEOMETRY,
  FALLBACK_GEMM_GEOMETRY,
  FALLBACK_GEMV_GEOMETRY,
  foldNormWeight,
  type GpuLinear,
  type LinearWeights,
  MatmulEngine,
  uploadLinear,
} from "../src/backend/webgpu/matmul.ts";
import { matmul } from "../src/model/ops.ts";
import { packSigns } from "../src/quant/bitpack.ts";
import { type ResidualBinaryLinear, residualBinaryMatmul } from "../src/quant/residual_binary.ts";
import { type Int8Rows, Int8RowsLinear } from "../src/quant/int8_rows.ts";
import { roundThroughF16 } from "../src/util/fp16.ts";
import { Rng } from "../src/util/rng.ts";
import { embedKernels } from "../scripts/embed_kernels.ts";

const ctx = await requestGpu();
if (!ctx) throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; ENGINEERING.md §1)");
const { device } = ctx;
const rng = new Rng(42);

// Two engines: the GPU-shaped geometry (several lanes per row, shared-memory reduction) and the
// software-adapter one (a thread per row group), whichever this adapter defaults to.
const gpuEngine = await MatmulEngine.create(ctx, {
  geometry: {
    gemv: {
      f32: DEFAULT_GEMV_GEOMETRY,
      f16: DEFAULT_GEMV_GEOMETRY,
      packed: DEFAULT_GEMV_GEOMETRY,
      i8: DEFAULT_GEMV_GEOMETRY,
    },
    gemm: {
      f32: DEFAULT_GEMM_GEOMETRY,
      f16: DEFAULT_GEMM_GEOMETRY,
      packed: DEFAULT_GEMM_GEOMETRY,
      i8: DEFAULT_GEMM_GEOMETRY,
    },
  },
});
const cpuEngine = await MatmulEngine.create(ctx, {
  geometry: {
    gemv: {
      f32: FALLBACK_GEMV_GEOMETRY,
      f16: FALLBACK_GEMV_GEOMETRY,
      packed: FALLBACK_GEMV_GEOMETRY,
      i8: FALLBACK_GEMV_GEOMETRY,
    },
    gemm: {
      f32: FALLBACK_GEMM_GEOMETRY,
      f16: FALLBACK_GEMM_GEOMETRY,
      packed: FALLBACK_GEMM_GEOMETRY,
      i8: FALLBACK_GEMM_GEOMETRY,
    },
  },
});
const ENGINES = [["gpu geometry", gpuEngine], ["software geometry", cpuEngine]] as const;

/** A random packed layer whose scales are fp16 values (what .rabit files store and the GPU keeps). */
function randomPacked(out: number, inF: number, k: number): ResidualBinaryLinear {
  const planes = new Uint32Array(k * out * Math.ceil(inF / 32));
  for (let p = 0; p < k; p++) {
    planes.set(packSigns(rng.normals(out * inF), out, inF), p * out * Math.ceil(inF / 32));
  }
  return {
    out,
    in: inF,
    k,
    planes,
    g: roundThroughF16(rng.normals(k * out).map(Math.abs)),
    h: roundThroughF16(rng.normals(k * inF).map(Math.abs)),
  };
}

/**
 * Random int8 codes over the whole range [−127, 127] with positive row scales (one row all zero, with
 * scale 0, when there are several), and a signed column multiplier h.
 */
function randomInt8(out: number, inF: number): { rows: Int8Rows; h: Float32Array } {
  const q = new Int8Array(out * inF);
  for (let i = 0; i < q.length; i++) q[i] = rng.int(255) - 127;
  const scales = rng.normals(out).map((s) => 0.01 * Math.abs(s) + 1e-4);
  if (out > 1) {
    q.fill(0, inF, 2 * inF);
    scales[1] = 0;
  }
  return { rows: { out, in: inF, q, scales }, h: rng.normals(inF) };
}

/** x (T, in) with each token's columns multiplied by h (what the int8 kernels compute with). */
function timesColumns(x: Float32Array, h: Float32Array): Float32Array {
  return x.map((v, i) => v * h[i % h.length]);
}

/** Sign planes of the layer's shape with every column +1 (padding bits stay 0). */
function ones(layer: ResidualBinaryLinear): Uint32Array {
  return packSigns(new Float32Array(layer.k * layer.out * layer.in).fill(1), layer.k * layer.out, layer.in);
}

interface Case {
  T: number;
  /** x elements before token 0, and between tokens (default in). */
  xOffset?: number;
  xStride?: number;
  yOffset?: number;
  yStride?: number;
  /** Start y with these values and accumulate into them. */
  accumulate?: boolean;
  /** x in a buffer with UNIFORM usage: GEMVs at 64-element-aligned offsets must read it as uniform. */
  uniformX?: boolean;
}

/** Runs every case through `engine` in one submission; returns y (T, out) per case, packed rows. */
async function runCases(
  engine: MatmulEngine,
  lin: GpuLinear,
  xs: Float32Array[],
  cases: Case[],
  y0s?: Float32Array[],
  normEps?: number,
) {
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  const bufs: { x: GPUBuffer; y: GPUBuffer; c: Case }[] = [];
  cases.forEach((c, i) => {
    const xOff = c.xOffset ?? 0, xStride = c.xStride ?? lin.in;
    const yOff = c.yOffset ?? 0, yStride = c.yStride ?? lin.out;
    // NaN everywhere the kernel must not read, padded to whole vec4s so the vec4 path can be taken.
    const xData = new Float32Array(Math.ceil((xOff + (c.T - 1) * xStride + lin.in) / 4) * 4 + 4).fill(NaN);
    for (let t = 0; t < c.T; t++) xData.set(xs[i].subarray(t * lin.in, (t + 1) * lin.in), xOff + t * xStride);
    const yData = new Float32Array(yOff + (c.T - 1) * yStride + lin.out + 3).fill(-7);
    if (c.accumulate) {
      for (let t = 0; t < c.T; t++) {
        yData.set(y0s![i].subarray(t * lin.out, (t + 1) * lin.out), yOff + t * yStride);
      }
    }
    const x = createStorageBuffer(ctx!, "x", xData, c.uniformX ? GPUBufferUsage.UNIFORM : 0);
    const y = createStorageBuffer(ctx!, "y", yData);
    const path = engine.xPath(lin, { buffer: x, offset: xOff }, c.T, xStride);
    const fitsUniform = Math.ceil(lin.in / 4) * 16 <= ctx!.limits.maxUniformBufferBindingSize;
    if (c.uniformX && c.T === 1 && xOff % 64 === 0) {
      assert.equal(path, fitsUniform ? "uniform" : "vec4", `x path of ${JSON.stringify(c)}`);
    }
    if (!c.uniformX) assert.notEqual(path, "uniform", `x path of ${JSON.stringify(c)}`);
    engine.encode(pass, lin, { buffer: x, offset: xOff }, { buffer: y, offset: yOff }, c.T, {
      xStride,
      yStride,
      accumulate: c.accumulate,
      normEps,
    });
    bufs.push({ x, y, c });
  });
  pass.end();
  device.queue.submit([enc.finish()]);
  const results: Float32Array[] = [];
  for (const { x, y, c } of bufs) {
    const all = await readF32(ctx!, y, y.size / 4);
    const yOff = c.yOffset ?? 0, yStride = c.yStride ?? lin.out;
    const out = new Float32Array(c.T * lin.out);
    for (let t = 0; t < c.T; t++) {
      out.set(all.subarray(yOff + t * yStride, yOff + t * yStride + lin.out), t * lin.out);
    }
    // Elements outside the output rows keep their sentinel.
    for (let i = 0; i < all.length; i++) {
      const t = Math.floor((i - yOff) / yStride), r = i - yOff - t * yStride;
      const inside = i >= yOff && t < c.T && r < lin.out;
      if (!inside) assert.equal(all[i], -7, `y[${i}] outside the output was written`);
    }
    results.push(out);
    x.destroy();
    y.destroy();
  }
  return results;
}

/**
 * Max error relative to the magnitude of the products: `bound` is the reference run on absolute values
 * (sum of |terms| per output), so cancellation in a sum does not make the test flaky.
 */
function assertClose(
  got: Float32Array,
  want: Float32Array,
  what: string,
  bound: Float32Array = want,
  tol = 1e-5,
) {
  assert.equal(got.length, want.length, `${what}: length`);
  let err = 0, mag = 1e-6, at = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= err)) [err, at] = [e, i]; // NaN counts as the worst error
    mag = Math.max(mag, Math.abs(want[i]), Math.abs(bound[i]));
  }
  assert.ok(
    err / mag < tol,
    `${what}: max error ${err} at ${at} (got ${got[at]}, want ${want[at]}), magnitude ${mag}`,
  );
}

const OUTS = [1, 7, 33, 100];
const INS = [1, 31, 33, 64, 100, 257];
const TS = [1, 3, 17];

/**
 * Cases for one shape: T in {1, 3, 17}, rotating through x/y layouts (vec4 and scalar x paths), and
 * GEMVs that read x through a uniform binding (at offset 0, at an aligned offset with accumulation, and
 * at a misaligned offset, where the storage path must take over).
 */
function casesFor(out: number, inF: number, seed: number): Case[] {
  const uniform: Case[] = [
    { T: 1, uniformX: true },
    { T: 1, uniformX: true, xOffset: 64, yOffset: 1, accumulate: true },
    { T: 1, uniformX: true, xOffset: 6 },
  ];
  return uniform.concat(TS.map((T, i): Case => {
    switch ((seed + i) % 4) {
      case 0:
        return { T }; // vec4 x when in % 4 == 0 (or T == 1), else scalar
      case 1:
        return { T, xOffset: 5, yOffset: 3 }; // misaligned: scalar x
      case 2:
        return { T, xOffset: 8, xStride: Math.ceil(inF / 4) * 4 + 4, yStride: out + 2 }; // aligned rows
      default:
        return { T, accumulate: true };
    }
  }));
}

/** Reference product; with `abs`, the product of absolute values (a bound on every term). */
type Reference = (x: Float32Array, T: number, abs?: boolean) => Float32Array;
type Variant = { name: string; weights: (out: number, inF: number) => [LinearWeights, Reference] };
const absOf = (a: Float32Array) => a.map(Math.abs);

const VARIANTS: Variant[] = [
  {
    name: "f32",
    weights: (out, inF) => {
      const w = rng.normals(out * inF);
      const ref: Reference = (x, T, abs) =>
        abs ? matmul(absOf(x), absOf(w), T, inF, out) : matmul(x, w, T, inF, out);
      return [{ kind: "f32", w, out, in: inF }, ref];
    },
  },
  {
    name: "f16",
    weights: (out, inF) => {
      const w = rng.normals(out * inF);
      const w16 = roundThroughF16(w);
      const ref: Reference = (x, T, abs) =>
        abs ? matmul(absOf(x), absOf(w16), T, inF, out) : matmul(x, w16, T, inF, out);
      return [{ kind: "f16", w, out, in: inF }, ref];
    },
  },
  ...[1, 2, 3, 4].map((k): Variant => ({
    name: `packed k=${k}`,
    weights: (out, inF) => {
      const layer = randomPacked(out, inF, k);
      // Scales are non-negative: all-plus signs on |x| bound every term's magnitude.
      const allPlus = { ...layer, planes: ones(layer) };
      const ref: Reference = (x, T, abs) =>
        residualBinaryMatmul(abs ? allPlus : layer, abs ? absOf(x) : x, T);
      return [{ kind: "packed", layer }, ref];
    },
  })),
  {
    name: "i8",
    weights: (out, inF) => {
      const { rows, h } = randomInt8(out, inF);
      const layer = new Int8RowsLinear(rows);
      const absLayer = new Int8RowsLinear({ ...rows, q: rows.q.map(Math.abs) });
      const ref: Reference = (x, T, abs) =>
        abs ? absLayer.forward(timesColumns(absOf(x), absOf(h)), T) : layer.forward(timesColumns(x, h), T);
      return [{ kind: "i8", rows, h }, ref];
    },
  },
];
const I8 = VARIANTS[VARIANTS.length - 1];

for (const v of VARIANTS) {
  for (const [geoName, engine] of ENGINES) {
    Deno.test(`${v.name} GEMV and GEMM (${geoName}) match the reference on ragged shapes`, async () => {
      let seed = 0;
      for (const out of OUTS) {
        for (const inF of INS) {
          const [weights, ref] = v.weights(out, inF);
          const lin = uploadLinear(ctx, `${v.name}:${out}x${inF}`, weights);
          const cases = casesFor(out, inF, seed++);
          const xs = cases.map((c) => rng.normals(c.T * inF));
          const y0s = cases.map((c) => rng.normals(c.T * out));
          const got = await runCases(engine, lin, xs, cases, y0s);
          cases.forEach((c, i) => {
            const want = ref(xs[i], c.T);
            if (c.accumulate) { for (let j = 0; j < want.length; j++) want[j] += y0s[i][j]; }
            const bound = ref(xs[i], c.T, true);
            if (c.accumulate) { for (let j = 0; j < want.length; j++) bound[j] += Math.abs(y0s[i][j]); }
            assertClose(got[i], want, `${v.name} ${out}x${inF} ${JSON.stringify(c)}`, bound);
          });
          lin.destroy();
        }
      }
    });
  }
}

Deno.test("packed GEMV with h too large for a uniform binding reads it from storage, and x past 16K from storage", async () => {
  // k·in fp16 scales above maxUniformBufferBindingSize (64 KiB here): h stays a storage binding; x of
  // more than 16,384 floats cannot be a uniform binding either.
  const out = 5, inF = 33_000;
  for (const k of [1, 2]) {
    const [weights, ref] = VARIANTS[1 + k].weights(out, inF);
    const lin = uploadLinear(ctx, `packed k=${k}:${out}x${inF}`, weights);
    assert.equal(lin.hUniform, false, "h of 33,000 columns must not claim a uniform binding");
    assert.equal(lin.hF32, undefined);
    for (const engine of [gpuEngine, cpuEngine]) {
      const cases: Case[] = [{ T: 1, uniformX: true }, { T: 2 }];
      const xs = cases.map((c) => rng.normals(c.T * inF));
      const got = await runCases(engine, lin, xs, cases);
      cases.forEach((c, i) => {
        assertClose(
          got[i],
          ref(xs[i], c.T),
          `packed k=${k} ${out}x${inF} ${JSON.stringify(c)}`,
          ref(xs[i], c.T, true),
        );
      });
    }
    lin.destroy();
  }
  const small = uploadLinear(ctx, "packed small", VARIANTS[3].weights(4, 64)[0]);
  assert.equal(small.hUniform, true, "h of a small layer must be readable as a uniform binding");
  assert.ok(small.hF32, "a small layer must have an f32 copy of h");
  small.destroy();
  // Between the two: fp16 h fits a uniform binding (40 KB), its f32 copy (80 KB) does not.
  const [weights, ref] = VARIANTS[3].weights(3, 10_000);
  const mid = uploadLinear(ctx, "packed k=2:3x10000", weights);
  assert.equal(mid.hUniform, true);
  assert.equal(mid.hF32, undefined);
  for (const engine of [gpuEngine, cpuEngine]) {
    const c: Case = { T: 1, uniformX: true };
    const x = rng.normals(10_000);
    const got = await runCases(engine, mid, [x], [c]);
    assertClose(got[0], ref(x, 1), "packed k=2 3x10000 fp16 uniform h", ref(x, 1, true));
  }
  mid.destroy();
});

Deno.test("GEMV with a fused RMSNorm equals the norm then the product, on every kind and x path", async () => {
  const eps = 1e-5;
  // Dense kinds, packed k = 2 and 3 (the template's plane loop at two counts), i8; two ragged shapes.
  for (const v of [VARIANTS[0], VARIANTS[1], VARIANTS[3], VARIANTS[4], I8]) {
    for (const [out, inF] of [[7, 33], [100, 257]]) {
      const [weights, ref] = v.weights(out, inF);
      const lin = uploadLinear(ctx, `${v.name}:${out}x${inF}`, weights);
      for (const [geoName, engine] of ENGINES) {
        for (
          const c of [{ T: 1, uniformX: true }, { T: 1, xOffset: 5 }, { T: 1, accumulate: true }] as Case[]
        ) {
          const x = rng.normals(inF).map((e) => 3 * e);
          const inv = 1 / Math.sqrt(x.reduce((a, e) => a + e * e, 0) / inF + eps);
          const y0 = rng.normals(out);
          const got = await runCases(engine, lin, [x], [c], [y0], eps);
          const xn = x.map((e) => e * inv);
          const want = ref(xn, 1), bound = ref(xn, 1, true);
          if (c.accumulate) {
            for (let j = 0; j < out; j++) [want[j], bound[j]] = [want[j] + y0[j], bound[j] + Math.abs(y0[j])];
          }
          assertClose(got[0], want, `${v.name} ${out}x${inF} ${geoName} ${JSON.stringify(c)} norm`, bound);
        }
      }
      lin.destroy();
    }
  }
  const lin = uploadLinear(ctx, "f32:4x4", VARIANTS[0].weights(4, 4)[0]);
  const x = createStorageBuffer(ctx, "x", 3 * 16), y = createStorageBuffer(ctx, "y", 3 * 16);
  const pass = device.createCommandEncoder().beginComputePass();
  assert.throws(
    () => cpuEngine.encode(pass, lin, { buffer: x }, { buffer: y }, 3, { normEps: eps }),
    /T = 1/,
  );
  assert.throws(
    () => cpuEngine.encode(pass, lin, { buffer: x }, { buffer: y }, 1, { normEps: 0 }),
    /eps > 0/,
  );
  pass.end();
  for (const b of [x, y]) b.destroy();
  lin.destroy();
});

Deno.test("foldNormWeight scales the columns of dense layers and the column scales h of packed and i8 ones", () => {
  const w = new Float32Array([1, 2, 3, 4, 5, 6]);
  const folded = foldNormWeight({ kind: "f32", w, out: 2, in: 3 }, new Float32Array([1, 10, 100]));
  assert.deepEqual([...(folded as { w: Float32Array }).w], [1, 20, 300, 4, 50, 600]);
  assert.deepEqual([...w], [1, 2, 3, 4, 5, 6], "the input is not modified");
  const layer = randomPacked(3, 2, 2);
  const p = foldNormWeight({ kind: "packed", layer }, new Float32Array([2, 3]));
  const h = (p as { layer: ResidualBinaryLinear }).layer.h;
  assert.deepEqual([...h], [layer.h[0] * 2, layer.h[1] * 3, layer.h[2] * 2, layer.h[3] * 3]);
  // int8: the codes are kept (re-quantizing W diag(w) would change them); h, ones by default, takes w.
  const rows = { out: 1, in: 2, q: new Int8Array([5, -7]), scales: new Float32Array([0.5]) };
  const i8 = foldNormWeight({ kind: "i8", rows }, new Float32Array([2, 3]));
  assert.ok(i8.kind === "i8");
  assert.equal(i8.rows, rows);
  assert.deepEqual([...i8.h!], [2, 3]);
  const again = foldNormWeight(i8, new Float32Array([10, 100]));
  assert.deepEqual([...(again as { h: Float32Array }).h], [20, 300]);
  assert.throws(
    () => foldNormWeight({ kind: "f32", w, out: 2, in: 3 }, new Float32Array(2)),
    /3 values, found 2/,
  );
});

Deno.test("weights split across bindings by rows give the same result (GEMV and GEMM)", async () => {
  const out = 70, inF = 300;
  for (const v of [...VARIANTS.slice(0, 4), I8]) {
    const [weights, ref] = v.weights(out, inF);
    // Bytes of one row (every plane) in the chunk layout; a binding of 10.5 rows gives 7 chunks.
    const rowBytes = weights.kind === "packed"
      ? 3 * 16 * weights.layer.k
      : weights.kind === "f32"
      ? 75 * 16
      : weights.kind === "i8"
      ? 19 * 16
      : 38 * 16;
    const lin = uploadLinear(ctx, `split ${v.name}`, weights, { maxBindingBytes: rowBytes * 10.5 });
    assert.equal(lin.chunks.length, 7, `${v.name}: chunks`);
    assert.equal(lin.chunks.reduce((a, c) => a + c.rows, 0), out);
    for (const [, engine] of ENGINES) {
      const cases: Case[] = [{ T: 1 }, { T: 5, accumulate: true }];
      const xs = cases.map((c) => rng.normals(c.T * inF));
      const y0s = cases.map((c) => rng.normals(c.T * out));
      const got = await runCases(engine, lin, xs, cases, y0s);
      assertClose(got[0], ref(xs[0], 1), `${v.name} split GEMV`, ref(xs[0], 1, true));
      const want = ref(xs[1], 5).map((a, j) => a + y0s[1][j]);
      assertClose(got[1], want, `${v.name} split GEMM + accumulate`, ref(xs[1], 5, true));
    }
    lin.destroy();
  }
});

Deno.test("uploadLinear records the bytes it allocates; packed k=2 at 4096x4096 is at most 2.1 bits/weight", () => {
  const f32 = uploadLinear(ctx, "f32", { kind: "f32", w: new Float32Array(10 * 9), out: 10, in: 9 });
  assert.equal(f32.bytes, 10 * 3 * 16); // rows padded to 12 columns
  f32.destroy();
  const f16 = uploadLinear(ctx, "f16", { kind: "f16", w: new Float32Array(10 * 9), out: 10, in: 9 });
  assert.equal(f16.bytes, 10 * 2 * 16); // rows padded to 16 columns
  f16.destroy();
  const rows = { out: 10, in: 17, q: new Int8Array(10 * 17), scales: new Float32Array(10) };
  const i8 = uploadLinear(ctx, "i8", { kind: "i8", rows });
  assert.equal(i8.bytes, 10 * 2 * 16 + 10 * 4 + 32 * 4); // codes padded to 32 columns, f32 g, padded h
  assert.equal(i8.hF32, i8.h, "an i8 layer's uniform h is its f32 h itself");
  i8.destroy();
  const out = 4096, inF = 4096, k = 2;
  const planes = new Uint32Array(k * out * (inF / 32));
  for (let i = 0; i < planes.length; i++) planes[i] = rng.int(2 ** 32) >>> 0;
  const layer = {
    out,
    in: inF,
    k,
    planes,
    g: new Float32Array(k * out).fill(1),
    h: new Float32Array(k * inF).fill(1),
  };
  const lin = uploadLinear(ctx, "packed", { kind: "packed", layer });
  const bits = (lin.bytes * 8) / (out * inF);
  // planes, g and h as fp16, and h's f32 copy for the GEMV
  assert.equal(lin.bytes, planes.byteLength + 2 * (k * out * 2) + k * inF * 4);
  assert.ok(bits <= 2.1, `packed k=2: ${bits} bits/weight`);
  lin.destroy();
});

Deno.test("the autotuner picks a candidate, uses it, and remembers it in its cache file", async () => {
  const engine = await MatmulEngine.create(ctx);
  const layer = randomPacked(40, 200, 2);
  const lin = uploadLinear(ctx, "tuned", { kind: "packed", layer });
  const candidates = [DEFAULT_GEMV_GEOMETRY, FALLBACK_GEMV_GEOMETRY];
  const dir = await Deno.makeTempDir();
  try {
    const cacheFile = `${dir}/sub/tune.json`;
    const first = await engine.tune(lin, { candidates, reps: 2, batchMs: 2, cacheFile });
    assert.equal(first.cached, false);
    assert.ok(candidates.includes(first.geometry));
    assert.equal(Object.keys(first.ms).length, 2);
    assert.deepEqual(engine.geometryFor("gemv", "packed", lin), first.geometry);
    const saved = JSON.parse(await Deno.readTextFile(cacheFile));
    const entries = Object.entries(saved[ctx.adapterDescription]);
    assert.equal(entries.length, 1);
    assert.match(
      entries[0][0],
      new RegExp(`^${first.shapeClass}@[0-9a-f]{8}$`),
      "keyed by class and kernel CRC",
    );
    assert.deepEqual(entries[0][1], first.geometry);
    const again = await MatmulEngine.create(ctx);
    const second = await again.tune(lin, { candidates, cacheFile });
    assert.equal(second.cached, true);
    assert.deepEqual(second.geometry, first.geometry);
    // A choice recorded for another version of the kernel (another CRC) is measured again.
    const stale = { [ctx.adapterDescription]: { [`${first.shapeClass}@00000000`]: first.geometry } };
    await Deno.writeTextFile(cacheFile, JSON.stringify(stale));
    const third = await (await MatmulEngine.create(ctx)).tune(lin, {
      candidates,
      reps: 2,
      batchMs: 2,
      cacheFile,
    });
    assert.equal(third.cached, false);
    const x = rng.normals(200);
    const [y] = await runCases(again, lin, [x], [{ T: 1 }]);
    assertClose(y, residualBinaryMatmul(layer, x, 1), "tuned GEMV", residualBinaryMatmul(layer, absOf(x), 1));
    const gemm = await engine.tune(lin, {
      T: 4,
      candidates: [DEFAULT_GEMM_GEOMETRY, FALLBACK_GEMM_GEOMETRY],
      reps: 1,
      batchMs: 2,
    });
    assert.ok(gemm.geometry.TT !== undefined);
  } finally {
    lin.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad shapes and views are refused with what was expected", () => {
  assert.throws(
    () => uploadLinear(ctx, "bad", { kind: "f32", w: new Float32Array(5), out: 2, in: 3 }),
    /expected 2x3=6 weights, found 5/,
  );
  const badLayer = {
    out: 2,
    in: 3,
    k: 2,
    planes: new Uint32Array(3),
    g: new Float32Array(4),
    h: new Float32Array(6),
  };
  assert.throws(() => uploadLinear(ctx, "bad", { kind: "packed", layer: badLayer }), /planes of length 4/);
  const rows = { out: 2, in: 3, q: new Int8Array(5), scales: new Float32Array(2) };
  assert.throws(() => uploadLinear(ctx, "bad", { kind: "i8", rows }), /expected 2x3=6 int8 codes, found 5/);
  assert.throws(
    () =>
      uploadLinear(ctx, "bad", {
        kind: "i8",
        rows: { ...rows, q: new Int8Array(6) },
        h: new Float32Array(2),
      }),
    /expected 3 column multipliers h, found 2/,
  );
  const lin = uploadLinear(ctx, "small", { kind: "f32", w: new Float32Array(6), out: 2, in: 3 });
  const tiny = createStorageBuffer(ctx, "tiny", 4);
  const other = createStorageBuffer(ctx, "other", 64);
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  assert.throws(
    () => gpuEngine.encode(pass, lin, { buffer: tiny }, { buffer: other }, 1),
    /needs 12 bytes of x/,
  );
  assert.throws(
    () => gpuEngine.encode(pass, lin, { buffer: other }, { buffer: other }, 1),
    /different buffers/,
  );
  assert.throws(() => gpuEngine.encode(pass, lin, { buffer: other }, { buffer: tiny }, 0), /T >= 1/);
  assert.throws(
    () => gpuEngine.encode(pass, lin, { buffer: other }, { buffer: tiny }, 2, { xStride: 2 }),
    /at least \(in, out\)/,
  );
  pass.end();
  for (const b of [tiny, other]) b.destroy();
  lin.destroy();
});

Deno.test("scripts/embed_kernels.ts: the embedded kernels are up to date, and --check catches a stale file", async () => {
  const script = new URL("../scripts/embed_kernels.ts", import.meta.url).pathname;
  const run = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "-A", script, ...args] }).output();
  const ok = await run("--check");
  assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/b_kernel.wgsl`, "// b\n");
    await Deno.writeTextFile(`${dir}/a_kernel.wgsl`, '// a "quoted"\n');
    const out = `${dir}/gen.ts`;
    const stale = await run("--check", "--dir", dir, "--out", out);
    assert.equal(stale.code, 1);
    assert.match(new TextDecoder().decode(stale.stderr), /stale/);
    assert.equal(embedKernels(false, new URL(`file://${dir}/`), new URL(`file://${out}`)), false);
    const text = await Deno.readTextFile(out);
    assert.ok(text.startsWith("// generated by scripts/embed_kernels.ts; do not edit"));
    assert.ok(text.indexOf("a_kernel") < text.indexOf("b_kernel"), "sorted by name");
    const { KERNELS } = await import(`file://${out}`);
    assert.deepEqual(KERNELS, { a_kernel: '// a "quoted"\n', b_kernel: "// b\n" });
    assert.equal((await run("--check", "--dir", dir, "--out", out)).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
