// WebGPU test plumbing shared by the kernel tests.

import type { GpuContext } from "../src/backend/webgpu/device.ts";

/** Records `f` into one compute pass and submits it. */
export function record(ctx: GpuContext, f: (pass: GPUComputePassEncoder) => void): void {
  const enc = ctx.device.createCommandEncoder({ label: "test" });
  const pass = enc.beginComputePass({ label: "test" });
  f(pass);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
}
