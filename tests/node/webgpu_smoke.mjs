// Run by tests/node_webgpu.test.ts under Node: `node webgpu_smoke.mjs <device.mjs>`, where device.mjs is
// src/backend/webgpu/device.ts bundled to JavaScript (Node 20 cannot import .ts). Opens the GPU through
// requestGpu's Node path (the optional `webgpu` package), runs a tiny compute kernel through
// getPipeline/createStorageBuffer/readF32, and prints one JSON line. Exits 1 with a reason when there is
// no adapter or the kernel fails.

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [devicePath] = process.argv.slice(2);
if (!devicePath) {
  console.error("usage: node webgpu_smoke.mjs <bundled device.mjs>");
  process.exit(2);
}
const { requestGpu, getPipeline, createStorageBuffer, readF32 } = await import(
  pathToFileURL(resolve(devicePath)).href
);

const ctx = await requestGpu();
if (!ctx) {
  console.error(
    "requestGpu() returned null under Node: the `webgpu` package is missing or Dawn found no adapter " +
      "(tried its default backends, then OpenGL and OpenGL ES at feature level 'compatibility').",
  );
  process.exit(1);
}

// dawn.node stops delivering events once its GPU object is collected; requestGpu must keep it alive.
// The test runs node with --expose-gc so this collection really happens.
for (let i = 0; i < 3; i++) {
  globalThis.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 20));
}

const code = `
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] * 2.0 + 1.0; }
}`;
const input = Float32Array.from({ length: 100 }, (_, i) => i - 50);
const pipeline = await getPipeline(ctx, "node-smoke", code);
const buffer = createStorageBuffer(ctx, "node-smoke:data", input);
const encoder = ctx.device.createCommandEncoder({ label: "node-smoke" });
const pass = encoder.beginComputePass();
pass.setPipeline(pipeline);
pass.setBindGroup(
  0,
  ctx.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer } }],
  }),
);
pass.dispatchWorkgroups(Math.ceil(input.length / 64));
pass.end();
ctx.device.queue.submit([encoder.finish()]);
const output = await readF32(ctx, buffer, input.length);

// A WGSL error must surface as an exception that names the kernel, as it does under Deno.
let compileError = "";
try {
  await getPipeline(ctx, "node-smoke-broken", "@compute @workgroup_size(1) fn main() { let x: f32 = true; }");
} catch (e) {
  compileError = String(e?.message ?? e);
}

console.log(JSON.stringify({
  adapterDescription: ctx.adapterDescription,
  isFallback: ctx.isFallback,
  maxStorageBufferBindingSize: ctx.limits.maxStorageBufferBindingSize,
  input: [...input],
  output: [...output],
  compileError,
}));
buffer.destroy();
ctx.device.destroy();
