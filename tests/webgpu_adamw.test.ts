// The AdamW kernels (adamw_vec4 with adamw for unaligned heads and ragged tails; adamw alone) against the
// CPU reference adamwStep (src/train/adamw.ts) over several steps, on ragged lengths, views at aligned and
// unaligned offsets of flat buffers, two parameter groups with their own step uniforms, and a grid taller
// than one row of workgroups: bit for bit on software adapters (IEEE division and sqrt), within 1e-6
// elsewhere. Fails (does not skip) without a WebGPU adapter.
//
// Dimension legend: n = parameters updated; p, g, m, v views are (n).

import assert from "node:assert/strict";
import { type AdamWStep, WebGpuAdamW } from "../src/train/webgpu_adamw.ts";
import { createStorageBuffer, type GpuContext, readF32, requestGpu } from "../src/backend/webgpu/device.ts";
import { isCpuAdapter } from "../src/backend/webgpu/ops/common.ts";
import { type AdamWOptions, adamwStep } from "../src/train/adamw.ts";
import { Rng } from "../src/util/rng.ts";
import { record } from "./_gpu.ts";

const gpu = await requestGpu();
// The default launcher (vec4 kernel, 4 vec4s per thread when compact), the GPU geometry (256 threads,
// one vec4 each) and the scalar kernel alone.
const adamwPromise = gpu
  ? Promise.all([
    WebGpuAdamW.create(gpu),
    WebGpuAdamW.create(gpu, { compact: false }),
    WebGpuAdamW.create(gpu, { kernel: "scalar" }),
  ])
  : null;

async function setup(): Promise<{ ctx: GpuContext; launchers: WebGpuAdamW[] }> {
  if (!gpu || !adamwPromise) {
    throw new Error("No WebGPU adapter: these tests need one (llvmpipe is enough; see ENGINEERING.md §1)");
  }
  return { ctx: gpu, launchers: await adamwPromise };
}

/**
 * got = want bit for bit on a software adapter (where the kernels' f32 division and sqrt are IEEE, as
 * in adamwStep), else |got − want| ≤ 1e-6 · (|want| + floor) for every element; returns the largest
 * relative error.
 */
function close(ctx: GpuContext, got: Float32Array, want: Float32Array, floor: number, what: string): number {
  const exact = isCpuAdapter(ctx);
  let worst = 0;
  for (let j = 0; j < want.length; j++) {
    const rel = Math.abs(got[j] - want[j]) / (Math.abs(want[j]) + floor);
    worst = Math.max(worst, rel);
    if (exact) assert.ok(Object.is(got[j], want[j]), `${what}[${j}]: ${got[j]} vs ${want[j]} (bits)`);
    else assert.ok(rel <= 1e-6, `${what}[${j}]: ${got[j]} vs ${want[j]}`);
  }
  return worst;
}

/** Flat buffers holding `groups` ranges each (at ragged offsets); the CPU copies alongside. */
interface Flat {
  cpu: Float32Array;
  buffer: GPUBuffer;
}

function flat(ctx: GpuContext, label: string, data: Float32Array): Flat {
  return { cpu: data.slice(), buffer: createStorageBuffer(ctx, label, data) };
}

Deno.test("webgpu adamw matches adamwStep over 5 steps (ragged lengths, offsets, two parameter groups)", async () => {
  const { ctx, launchers } = await setup();
  for (const adamw of launchers) await fiveSteps(ctx, adamw);
});

async function fiveSteps(ctx: GpuContext, adamw: WebGpuAdamW): Promise<void> {
  const rng = new Rng(21);
  // Offsets [p, g, m, v]: views misaligned differently (scalar kernel), then the same way (vec4 kernel
  // between a scalar head and tail), all 4-aligned (vec4 only), and a head-only range.
  const B = 5184, B2 = B + 1020, B3 = B2 + 4112;
  const groups: { n: number; at: [number, number, number, number]; o: AdamWOptions }[] = [
    { n: 1, at: [0, 3, 5, 7], o: { lr: 1e-2 } },
    { n: 5, at: [1, 4, 6, 8], o: { lr: 1e-2 } },
    { n: 63, at: [6, 9, 11, 13], o: { lr: 1e-2 } },
    { n: 1000, at: [69, 72, 74, 76], o: { lr: 1e-2 } },
    {
      n: 4099,
      at: [1069, 1072, 1074, 1076],
      o: { lr: 3e-4, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 },
    },
    { n: 1001, at: [B + 1, B + 5, B + 9, B + 13], o: { lr: 1e-2 } },
    { n: 4096, at: [B2, B2 + 4, B2 + 8, B2 + 12], o: { lr: 1e-2 } },
    { n: 2, at: [B3 + 2, B3 + 6, B3 + 10, B3 + 14], o: { lr: 1e-2 } },
  ];
  const words = B3 + 2 + 14 + 4;
  const P = flat(ctx, "p", rng.normals(words));
  const G = flat(ctx, "g", new Float32Array(words));
  const M = flat(ctx, "m", new Float32Array(words));
  const V = flat(ctx, "v", new Float32Array(words));
  const steps = new Map<AdamWOptions, AdamWStep>();
  for (const { o } of groups) if (!steps.has(o)) steps.set(o, adamw.createStep(`lr ${o.lr}`));
  let worst = 0, cached = 0;
  const what = `${adamw.kernel} threads ${adamw.threads} vec4/thread ${adamw.vec4PerThread}`;
  for (let t = 1; t <= 5; t++) {
    const g = rng.normals(words, 0.05);
    g[7] = 0; // a zero gradient entry
    G.cpu.set(g);
    ctx.device.queue.writeBuffer(G.buffer, 0, g.buffer as ArrayBuffer);
    for (const [o, step] of steps) step.set(t, o);
    record(ctx, (pass) => {
      for (const { n, at, o } of groups) {
        const [pa, ga, ma, va] = at;
        adamw.update(pass, {
          step: steps.get(o)!,
          p: { buffer: P.buffer, offset: pa },
          g: { buffer: G.buffer, offset: ga },
          m: { buffer: M.buffer, offset: ma },
          v: { buffer: V.buffer, offset: va },
          length: n,
        });
      }
    });
    if (t === 1) cached = adamw.cachedBindGroups;
    // The groups' ranges of p (and of m, v) overlap nowhere but interleave: update them in the same order.
    for (const { n, at, o } of groups) {
      const [pa, ga, ma, va] = at;
      adamwStep(
        P.cpu.subarray(pa, pa + n),
        G.cpu.subarray(ga, ga + n),
        M.cpu.subarray(ma, ma + n),
        V.cpu.subarray(va, va + n),
        t,
        o,
      );
    }
    const lr = 1e-2;
    worst = Math.max(worst, close(ctx, await readF32(ctx, P.buffer, words), P.cpu, lr, `${what} t=${t} p`));
    close(ctx, await readF32(ctx, M.buffer, words), M.cpu, 1e-3, `${what} t=${t} m`);
    close(ctx, await readF32(ctx, V.buffer, words), V.cpu, 1e-6, `${what} t=${t} v`);
  }
  console.log(`  ${what}: largest relative error of p ${worst.toExponential(2)}`);
  assert.equal(adamw.cachedBindGroups, cached, "bind groups are reused across steps");
  // One dispatch per group, but three (head, vec4 body, tail) for the group at B + 1 and the vec4 kernel
  // alone for the aligned one: the vec4 kernel did run.
  assert.equal(cached, adamw.kernel === "vec4" ? groups.length + 2 : groups.length, "dispatches per step");
  for (const f of [P, G, M, V]) f.buffer.destroy();
}

Deno.test("webgpu adamw: more workgroups than one grid row holds (65535 · 32 + 100 parameters)", async () => {
  const { ctx } = await setup();
  // The scalar kernel: the vec4 kernel's grid would need 4·vec4PerThread times more parameters. Both
  // split their workgroups over x and y with grid2d.
  const adamw = await WebGpuAdamW.create(ctx, { threads: 32, kernel: "scalar" });
  const rng = new Rng(22);
  const n = 65535 * 32 + 100;
  const p = rng.normals(n), g = rng.normals(n, 0.01), m = rng.normals(n, 0.01);
  const v = Float32Array.from(rng.normals(n, 1e-2), (x) => x * x);
  const bufs = [p, g, m, v].map((a, i) => createStorageBuffer(ctx, `big ${"pgmv"[i]}`, a));
  const step = adamw.createStep();
  const o = { lr: 1e-3, weightDecay: 0.01 };
  step.set(3, o);
  record(ctx, (pass) =>
    adamw.update(pass, {
      step,
      p: { buffer: bufs[0] },
      g: { buffer: bufs[1] },
      m: { buffer: bufs[2] },
      v: { buffer: bufs[3] },
      length: n,
    }));
  adamwStep(p, g, m, v, 3, o);
  close(ctx, await readF32(ctx, bufs[0], n), p, o.lr, "p");
  close(ctx, await readF32(ctx, bufs[3], n), v, 1e-8, "v");
  for (const b of bufs) b.destroy();
  adamw.dispose();
});

Deno.test("webgpu adamw: clear errors (unset step, aliasing, short buffers, bad options)", async () => {
  const { ctx, launchers: [adamw] } = await setup();
  await assert.rejects(() => WebGpuAdamW.create(ctx, { vec4PerThread: 9 }), /vec4PerThread/);
  await assert.rejects(() => WebGpuAdamW.create(ctx, { kernel: "simd" as "vec4" }), /expected kernel/);
  const b = (label: string) => createStorageBuffer(ctx, label, 64);
  const p = b("p"), g = b("g"), m = b("m"), v = b("v");
  const fresh = adamw.createStep("unset");
  const args = { p: { buffer: p }, g: { buffer: g }, m: { buffer: m }, v: { buffer: v }, length: 16 };
  record(ctx, (pass) => {
    assert.throws(() => adamw.update(pass, { ...args, step: fresh }), /not set/);
    fresh.set(1, { lr: 1e-3 });
    assert.throws(
      () => adamw.update(pass, { ...args, step: fresh, m: { buffer: p, offset: 0 } }),
      /written and bound twice/,
    );
    assert.throws(
      () => adamw.update(pass, { ...args, step: fresh, length: 17 }),
      /needs 68 bytes of buffer "p"/,
    );
    assert.throws(() => adamw.update(pass, { ...args, step: fresh, length: 0 }), RangeError);
  });
  for (const x of [p, g, m, v]) x.destroy();
});
