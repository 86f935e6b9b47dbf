// The weight matmul kernels (f32, fp16-storage, packed k = 1..4) against the CPU references on ragged
// shapes, several tokens, accumulation, offsets, and weights split across bindings.
// Fails (does not skip) without a WebGPU adapter: CI has llvmpipe.

import assert from "node:assert/strict";
import { createStorageBuffer, readF32, requestGpu } from "../src/backend/webgpu/device.ts";
import { type LinearWeights, MatmulEngine, uploadLinear } from "../src/backend/webgpu/matmul.ts";
import { matmul } from "../src/model/ops.ts";
import { packSigns } from "../src/quant/bitpack.ts";
import { type ResidualBinaryLinear, residualBinaryMatmul } from "../src/quant/residual_binary.ts";
import { roundThroughF16 } from "../src/util/fp16.ts";
import { Rng } from "../src/util/rng.ts";

const ctx = await requestGpu();
if (!ctx) throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; ENGINEERING.md §1)");
const engine = await MatmulEngine.create(ctx);
const rng = new Rng(42);

function randomPacked(out: number, inF: number, k: number): ResidualBinaryLinear {
  const planes: number[] = [];
  for (let p = 0; p < k; p++) planes.push(...packSigns(rng.normals(out * inF), out, inF));
  return {
    out,
    in: inF,
    k,
    planes: Uint32Array.from(planes),
    g: rng.normals(k * out).map(Math.abs),
    h: rng.normals(k * inF).map(Math.abs),
  };
}

async function run(weights: LinearWeights, x: Float32Array, T: number, opts: {
  maxBindingBytes?: number;
  accumulate?: Float32Array;
  xOffset?: number;
}) {
  const lin = uploadLinear(ctx!, "test", weights, { maxBindingBytes: opts.maxBindingBytes });
  const xOff = opts.xOffset ?? 0;
  const xData = new Float32Array(xOff + x.length).fill(NaN); // the kernel must not read before the offset
  xData.set(x, xOff);
  const xb = createStorageBuffer(ctx!, "x", xData);
  const yb = createStorageBuffer(ctx!, "y", opts.accumulate ?? new Float32Array(T * lin.out));
  const enc = ctx!.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  engine.encode(pass, lin, { buffer: xb, offset: xOff }, { buffer: yb }, T, {
    accumulate: !!opts.accumulate,
  });
  pass.end();
  ctx!.device.queue.submit([enc.finish()]);
  const y = await readF32(ctx!, yb, T * lin.out);
  const chunks = lin.chunks.length;
  lin.destroy();
  xb.destroy();
  yb.destroy();
  return { y, chunks };
}

function assertClose(got: Float32Array, want: Float32Array, what: string) {
  let err = 0, mag = 1e-6;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    mag = Math.max(mag, Math.abs(want[i]));
  }
  assert.ok(err / mag < 2e-5, `${what}: max error ${err} vs magnitude ${mag}`);
}

const SHAPES: [number, number, number][] = [[1, 1, 1], [7, 33, 1], [33, 31, 3], [100, 257, 1], [64, 64, 17], [
  9,
  130,
  2,
]];

for (const [out, inF, T] of SHAPES) {
  Deno.test(`f32 and f16 matmul ${out}x${inF}, T=${T}`, async () => {
    const w = rng.normals(out * inF);
    const x = rng.normals(T * inF);
    assertClose((await run({ kind: "f32", w, out, in: inF }, x, T, {})).y, matmul(x, w, T, inF, out), "f32");
    const ref16 = matmul(x, roundThroughF16(w), T, inF, out);
    assertClose((await run({ kind: "f16", w, out, in: inF }, x, T, { xOffset: 5 })).y, ref16, "f16");
  });
  for (const k of [1, 2, 3, 4]) {
    Deno.test(`packed k=${k} matmul ${out}x${inF}, T=${T}`, async () => {
      const layer = randomPacked(out, inF, k);
      const x = rng.normals(T * inF);
      assertClose(
        (await run({ kind: "packed", layer }, x, T, {})).y,
        residualBinaryMatmul(layer, x, T),
        "packed",
      );
    });
  }
}

Deno.test("accumulate adds into y; weights split across bindings give the same result", async () => {
  const out = 70, inF = 96, T = 2;
  const w = rng.normals(out * inF);
  const x = rng.normals(T * inF);
  const y0 = rng.normals(T * out);
  const want = matmul(x, w, T, inF, out, y0.slice(), true);
  const split = await run({ kind: "f32", w, out, in: inF }, x, T, {
    maxBindingBytes: 1024,
    accumulate: y0.slice(),
  });
  assert.ok(split.chunks > 1, `expected several chunks, found ${split.chunks}`);
  assertClose(split.y, want, "f32 split + accumulate");
  const layer = randomPacked(out, inF, 2);
  const packed = await run({ kind: "packed", layer }, x, T, { maxBindingBytes: 256 });
  assert.ok(packed.chunks > 1);
  assertClose(packed.y, residualBinaryMatmul(layer, x, T), "packed split");
});

Deno.test("bad shapes are refused with what was expected", () => {
  assert.throws(
    () => uploadLinear(ctx!, "bad", { kind: "f32", w: new Float32Array(5), out: 2, in: 3 }),
    /expected 2x3=6 weights, found 5/,
  );
  const lin = uploadLinear(ctx!, "small", { kind: "f32", w: new Float32Array(6), out: 2, in: 3 });
  const tiny = createStorageBuffer(ctx!, "tiny", 4);
  const other = createStorageBuffer(ctx!, "other", 64);
  const enc = ctx!.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  assert.throws(
    () => engine.encode(pass, lin, { buffer: tiny }, { buffer: other }, 1),
    /needs 12 bytes of x/,
  );
  assert.throws(() => engine.encode(pass, lin, { buffer: other }, { buffer: other }, 1), /different buffers/);
  pass.end();
});

Deno.test("the embedded kernels are up to date (scripts/embed_kernels.ts --check)", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../scripts/embed_kernels.ts", import.meta.url).pathname, "--check"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
});
