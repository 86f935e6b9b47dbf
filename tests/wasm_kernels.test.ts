// Every WebAssembly SIMD kernel against its TypeScript reference on ragged shapes (out and in not multiples of
// 4, 8, 16, 32 or 128), k = 1..4 planes, one token (GEMV) and several (GEMM, including token counts that are
// not multiples of the kernel's 4-token tile), plus the staleness check of the embedded module.

import assert from "node:assert/strict";
import { WasmKernels, wasmSimdSupported } from "../src/backend/wasm/kernels.ts";
import { WASM_SOURCE_HASH } from "../src/backend/wasm/kernels.gen.ts";
import { matmul } from "../src/model/ops.ts";
import { type ResidualBinaryLinear, residualBinaryMatmul } from "../src/quant/residual_binary.ts";
import { wordsPerRow } from "../src/quant/bitpack.ts";
import { roundThroughF16 } from "../src/util/fp16.ts";
import { Rng } from "../src/util/rng.ts";
import { sourceHash } from "../scripts/build_wasm.ts";
import { relativeError } from "./_numeric.ts";

/** (out, in) shapes: tiny, ragged in every tiling the kernels use, and one past a 128-column block. */
const SHAPES: [number, number][] = [[1, 1], [3, 5], [17, 33], [45, 100], [64, 64], [19, 161], [130, 300]];
const TOKENS = [1, 2, 5, 9];

function randomVector(rng: Rng, n: number, scale = 1): Float32Array {
  return new Float32Array(n).map(() => scale * rng.normal());
}

function randomPacked(rng: Rng, out: number, inF: number, k: number): ResidualBinaryLinear {
  const wpr = wordsPerRow(inF), tail = inF % 32;
  const planes = new Uint32Array(k * out * wpr).map(() => (rng.next() * 2 ** 32) >>> 0);
  if (tail !== 0) { for (let i = wpr - 1; i < planes.length; i += wpr) planes[i] &= (1 << tail) - 1; // padding 0
   }
  const g = new Float32Array(k * out).map(() => 0.5 + rng.next());
  const h = new Float32Array(k * inF).map(() => 0.5 + rng.next());
  return { out, in: inF, k, planes, g, h };
}

/**
 * The worst case of table rounding for one output: with entries quantized to ±levels (127 for int8, 32767 for
 * int16), every selected entry of block b is off by at most half a step, M_b / (2·levels) (M_b the block's
 * largest |entry| = largest Σ_j |h_j x_j| of a group of 4), and a row selects one entry per group, so
 * |Δy_r| ≤ Σ_p |g_pr| Σ_b groups_b · M_pb / (2·levels).
 */
function tableBound(
  layer: ResidualBinaryLinear,
  x: Float32Array,
  T: number,
  blockWords: number,
  levels: number,
): Float32Array {
  const { out, in: inF, k } = layer;
  const G = wordsPerRow(inF) * 8, gpb = blockWords * 8;
  const bound = new Float32Array(T * out);
  for (let t = 0; t < T; t++) {
    for (let p = 0; p < k; p++) {
      let perRow = 0;
      for (let g0 = 0; g0 < G; g0 += gpb) {
        let m = 0;
        const g1 = Math.min(G, g0 + gpb);
        for (let g = g0; g < g1; g++) {
          let s = 0;
          for (let c = 4 * g; c < Math.min(4 * g + 4, inF); c++) {
            s += Math.abs(layer.h[p * inF + c] * x[t * inF + c]);
          }
          m = Math.max(m, s);
        }
        perRow += (g1 - g0) * m / (2 * levels);
      }
      for (let r = 0; r < out; r++) bound[t * out + r] += Math.abs(layer.g[p * out + r]) * perRow;
    }
  }
  return bound;
}

Deno.test("WebAssembly SIMD validates here (Deno ships it), so the wasm backend is testable", () => {
  assert.ok(wasmSimdSupported());
});

Deno.test("the embedded module is up to date with wasm/ (scripts/build_wasm.ts --check)", async () => {
  assert.equal(WASM_SOURCE_HASH, await sourceHash(), "run `deno task build:wasm` and commit the result");
});

Deno.test("wasm fp32 GEMV/GEMM equals the reference matmul to float rounding", () => {
  const kernels = WasmKernels.create();
  const rng = new Rng(1);
  for (const [out, inF] of SHAPES) {
    const w = randomVector(rng, out * inF);
    const layer = kernels.dense(w, out, inF);
    for (const T of TOKENS) {
      const x = randomVector(rng, T * inF);
      const e = relativeError(layer.forward(x, T), matmul(x, w, T, inF, out));
      assert.ok(e < 1e-5, `${out}x${inF} T=${T}: relative error ${e}`);
    }
  }
});

Deno.test("wasm fp16-storage GEMV/GEMM equals the reference on fp16-rounded weights", () => {
  const kernels = WasmKernels.create();
  const rng = new Rng(2);
  for (const [out, inF] of SHAPES) {
    const w = randomVector(rng, out * inF, 0.1);
    w[0] = 3e-6; // a subnormal half: exact through the kernel's bit trick
    const layer = kernels.dense(w, out, inF, "f16");
    const wr = roundThroughF16(w);
    for (const T of TOKENS) {
      const x = randomVector(rng, T * inF);
      const e = relativeError(layer.forward(x, T), matmul(x, wr, T, inF, out));
      assert.ok(e < 1e-5, `${out}x${inF} T=${T}: relative error ${e}`);
    }
  }
});

Deno.test("wasm packed product with f32 tables equals residualBinaryMatmul to 1e-5 (k = 1..4)", () => {
  const kernels = WasmKernels.create();
  const rng = new Rng(3);
  for (const [out, inF] of SHAPES) {
    for (let k = 1; k <= 4; k++) {
      const layer = randomPacked(rng, out, inF, k);
      const wl = kernels.packed(layer, { tables: "f32" });
      for (const T of TOKENS) {
        const x = randomVector(rng, T * inF);
        const e = relativeError(wl.forward(x, T), residualBinaryMatmul(layer, x, T));
        assert.ok(e < 1e-5, `${out}x${inF} k=${k} T=${T}: relative error ${e}`);
      }
    }
  }
});

for (const [tables, levels, rmsLimit] of [["i8", 127, 0.02], ["i16", 32767, 1e-4]] as const) {
  Deno.test(`wasm packed product with ${tables} tables stays within its rounding bound (k = 1..4, blocks 1..32)`, () => {
    const kernels = WasmKernels.create();
    const rng = new Rng(4);
    let worstRms = 0;
    for (const [out, inF] of SHAPES) {
      for (let k = 1; k <= 4; k++) {
        const layer = randomPacked(rng, out, inF, k);
        for (const blockWords of [1, 4, 32]) {
          const wl = kernels.packed(layer, { tables, blockWords });
          for (const T of TOKENS) {
            const x = randomVector(rng, T * inF);
            const got = wl.forward(x, T), want = residualBinaryMatmul(layer, x, T);
            const bound = tableBound(layer, x, T, blockWords, levels);
            // Plus 1e-5 of the output's scale for the float arithmetic around the integer sums.
            const slack = 1e-5 * want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
            let se = 0, sw = 0;
            for (let i = 0; i < got.length; i++) {
              const d = Math.abs(got[i] - want[i]);
              assert.ok(
                d <= bound[i] * (1 + 1e-4) + slack,
                `${tables} ${out}x${inF} k=${k} BW=${blockWords} T=${T} [${i}]: |${got[i]} − ${want[i]}| > ${
                  bound[i]
                }`,
              );
              se += d * d;
              sw += want[i] * want[i];
            }
            if (inF >= 64) worstRms = Math.max(worstRms, Math.sqrt(se / sw));
          }
        }
      }
    }
    // Rounding errors are independent, so in practice they stay far below the worst case (int8: ~0.6 % RMS).
    assert.ok(worstRms < rmsLimit, `${tables}: relative RMS error ${worstRms}`);
  });
}

Deno.test("wasm kernels on worker threads give bit-identical results to one thread (rows split ragged)", async () => {
  const threaded = await WasmKernels.load({ threads: 3 }); // 3 threads even on fewer cores: uneven splits
  try {
    assert.equal(threaded.threads, 3);
    const single = WasmKernels.create();
    const rng = new Rng(6);
    // Large enough to be split (see MIN_PARALLEL_WORK), with row counts that are not multiples of 3·16.
    const [out, inF] = [1037, 1061];
    const w = randomVector(rng, out * inF);
    const layer = randomPacked(rng, out, inF, 4);
    for (const T of [1, 6]) {
      const x = randomVector(rng, T * inF);
      for (const storage of ["f32", "f16"] as const) {
        assert.deepEqual(
          threaded.dense(w, out, inF, storage).forward(x, T),
          single.dense(w, out, inF, storage).forward(x, T),
        );
      }
      for (const tables of ["i8", "i16", "f32"] as const) {
        const got = threaded.packed(layer, { tables }).forward(x, T);
        assert.deepEqual(got, single.packed(layer, { tables }).forward(x, T), tables);
        assert.ok(relativeError(got, residualBinaryMatmul(layer, x, T)) < 0.02);
      }
    }
  } finally {
    threaded.dispose();
  }
});

Deno.test("wasm layers refuse inputs of the wrong length and bad block sizes", () => {
  const kernels = WasmKernels.create();
  const rng = new Rng(5);
  const layer = randomPacked(rng, 3, 5, 2);
  assert.throws(
    () => kernels.packed(layer).forward(new Float32Array(4), 1),
    /expected x of 1x5=5 values, found 4/,
  );
  assert.throws(() => kernels.packed(layer, { blockWords: 33 }), /blockWords in 1\.\.32/);
  const bad = { tables: "i4" } as unknown as { tables: "i8" };
  assert.throws(() => kernels.packed(layer, bad), /expected tables "i8", "i16" or "f32", found "i4"/);
  assert.throws(() => kernels.dense(new Float32Array(5), 2, 3), /expected W of 2x3=6 values, found 5/);
});
