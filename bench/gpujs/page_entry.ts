// The browser side of bench/gpujs_browser.ts: bundled (deno bundle --platform browser) with the repo's wasm
// kernels and TypeScript GEMV into page.js, next to gpu.js's own dist/gpu-browser.min.js (the global `GPU`).
// Exposes globalThis.gpujsBench: info() says what the page has (WebGL renderer, WebGPU adapter, gpu.js's
// pick), measure() times one shape (gemv.ts: checked against the float64 reference, interleaved medians).

import { WasmKernels } from "../../src/backend/wasm/kernels.ts";
import { DenseLinear } from "../../src/model/linear.ts";
import {
  type Contender,
  type GpuJsConstructor,
  gpuJsContender,
  kernelMode,
  measureShape,
  type ShapeResult,
  type TimeOptions,
} from "./gemv.ts";
import { PAGE_CONTENDERS, type PageContender } from "./page_contenders.ts";

/** What the page runs on. */
export interface PageInfo {
  userAgent: string;
  webglRenderer: string | null;
  maxTextureSize: number | null;
  webgpuAdapter: string | null;
  gpujs: { pick: string; webgl: boolean; webgl2: boolean; webgpu: boolean; webasm: boolean };
}

/** Browser objects (DOM, WebGPU, gpu.js statics) Deno's types do not describe. */
// deno-lint-ignore no-explicit-any
type Loose = Record<string, any>;

const GPU = (globalThis as unknown as { GPU?: GpuJsConstructor & Loose }).GPU;

function gpuJs(): GpuJsConstructor & Loose {
  if (!GPU) {
    throw new Error("gpu.js is not loaded: the page needs /gpu-browser.min.js (node_modules/gpu.js/dist)");
  }
  return GPU;
}

async function info(): Promise<PageInfo> {
  const G = gpuJs();
  const doc = (globalThis as Loose).document;
  const gl = doc?.createElement("canvas").getContext("webgl2") ?? null;
  const dbg = gl?.getExtension("WEBGL_debug_renderer_info");
  let webgpuAdapter: string | null = null;
  const nav = (globalThis as Loose).navigator;
  if (nav?.gpu) {
    const adapter = await nav.gpu.requestAdapter().catch(() => null);
    if (adapter) {
      const i = adapter.info ?? {};
      webgpuAdapter = [i.vendor, i.architecture, i.description].filter(Boolean).join(" ") || "(unnamed)";
    }
  }
  // gpu.js picks its backend when a kernel is built; a one-cell kernel shows which.
  const probe = new G();
  const k = probe.createKernel("function (a) { return a[this.thread.x]; }", { output: [1] });
  k(new Float32Array(1));
  const pick = k.kernel ? kernelMode(k.kernel) : "?";
  probe.destroy();
  return {
    userAgent: nav?.userAgent ?? "",
    webglRenderer: gl ? String(gl.getParameter(dbg ? dbg.UNMASKED_RENDERER_WEBGL : gl.RENDERER)) : null,
    maxTextureSize: gl ? Number(gl.getParameter(gl.MAX_TEXTURE_SIZE)) : null,
    webgpuAdapter,
    gpujs: {
      pick,
      webgl: Boolean(G.isWebGLSupported),
      webgl2: Boolean(G.isWebGL2Supported),
      webgpu: Boolean(G.isWebGPUSupported),
      webasm: Boolean(G.isWebAssemblySupported),
    },
  };
}

async function contender(key: PageContender, w: Float32Array, x: Float32Array, out: number, inF: number) {
  if (key === "wasm") {
    const kernels = await WasmKernels.load();
    const layer = kernels.dense(w, out, inF, "f32");
    return { key, mode: "wasm simd, 1 thread", forward: () => layer.forward(x, 1), destroy() {} };
  }
  if (key === "ts") {
    const layer = new DenseLinear(w, out, inF);
    return { key, mode: "javascript", forward: () => layer.forward(x, 1), destroy() {} };
  }
  const G = gpuJs();
  const mode = key.startsWith("gpujs_webgl1")
    ? "webgl"
    : key.startsWith("gpujs_webgpu")
    ? "webgpu"
    : ({ gpujs_webasm: "webasm", gpujs_cpu: "cpu" } as Record<string, string>)[key] ?? "gpu";
  if (mode === "webgpu" && !(await G.isWebGPUAvailable?.())) {
    throw new Error("no WebGPU adapter in this browser");
  }
  return await gpuJsContender(key, new G({ mode }), w, x, out, inF, {
    placement: key.endsWith("_resident") ? "resident" : "upload",
  });
}

async function measure(
  out: number,
  inF: number,
  keys: PageContender[],
  options: TimeOptions = {},
): Promise<ShapeResult<PageContender>> {
  const factories = keys.map((key) => ({
    key,
    create: (w: Float32Array, x: Float32Array) =>
      contender(key, w, x, out, inF) as Promise<Contender<PageContender>>,
  }));
  return await measureShape(out, inF, factories, options);
}

(globalThis as Loose).gpujsBench = { info, measure, contenders: PAGE_CONTENDERS };
