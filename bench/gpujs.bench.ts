// gpu.js (npm gpu.js 2.24.1) as the dense fp32 GEMV y = W · x of the no-WebGPU path, one group per shape:
// the repo's WebAssembly SIMD GEMV (baseline), gpu.js in the mode it picks here (webasm: no WebGL in Deno),
// gpu.js's cpu mode, the TypeScript reference, and gpu.js's webgpu mode with W resident when an adapter exists.
// Every contender's result is checked against the float64 reference before it is timed. Fails when gpu.js is
// not installed. Run: deno bench -A bench/gpujs.bench.ts   (bench/gpujs/measure_deno.ts gives interleaved
// medians of more modes; bench/gpujs_browser.ts measures WebGL in Chromium; docs/gpujs.md has the numbers.)

import { gemm } from "../src/model/gemm.ts";
import { gemvData, maxRelError, TOLERANCE } from "./gpujs/gemv.ts";
import { loadGpuJs } from "./gpujs/load.ts";
import { type ContenderKey, CONTENDERS, createContender } from "./gpujs/measure_deno.ts";

const GPU = await loadGpuJs();
const SHAPES = [{ out: 512, in: 512 }, { out: 2048, in: 2048 }, { out: 4096, in: 4096 }];
const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
const KEYS: ContenderKey[] = ["wasm", "gpujs", "gpujs_cpu", "ts"];
if (adapter) KEYS.push("gpujs_webgpu_resident");
else console.error("gpujs.bench.ts: no WebGPU adapter here, so gpu.js's webgpu mode is not measured");

for (const shape of SHAPES) {
  const { w, x } = gemvData(shape.out, shape.in);
  const ref = new Float32Array(shape.out); // (out)
  gemm(x, w, ref, { M: 1, N: shape.out, K: shape.in, transB: true });
  const group = `gpu.js gemv ${shape.out}x${shape.in}`;
  for (const key of KEYS) {
    const c = await createContender(key, GPU, w, shape.out, shape.in, x);
    const err = maxRelError(await c.forward(), ref);
    if (!(err <= TOLERANCE)) {
      throw new Error(
        `${CONTENDERS[key]} at ${shape.out}x${shape.in}: max relative error ${err} > ${TOLERANCE}`,
      );
    }
    const slow = key === "gpujs_webgpu_resident" || (key !== "wasm" && shape.out * shape.in >= 1 << 24);
    Deno.bench({
      name: `${CONTENDERS[key]} [${c.mode}]`,
      group,
      baseline: key === "wasm",
      ...(slow ? { n: 20, warmup: 3 } : {}),
    }, async () => {
      await c.forward();
    });
  }
}
