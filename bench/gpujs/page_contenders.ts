// The contenders of the browser page (page_entry.ts), in table order; "wasm" is the baseline. Shared with
// bench/gpujs_browser.ts, which labels the table with them.

/** Key → label. */
export const PAGE_CONTENDERS = {
  wasm: "WASM SIMD fp32 (repo bundle, 1 thread)",
  ts: "plain JS (repo's TypeScript DenseLinear)",
  gpujs_upload: "gpu.js, its own pick, W uploaded per call",
  gpujs_resident: "gpu.js, its own pick, W resident (pipeline texture)",
  gpujs_webgl1_upload: "gpu.js webgl (WebGL 1), W uploaded per call",
  gpujs_webgl1_resident: "gpu.js webgl (WebGL 1), W resident",
  gpujs_webgpu_upload: "gpu.js webgpu, W uploaded per call",
  gpujs_webgpu_resident: "gpu.js webgpu, W resident (storage buffer)",
  gpujs_webasm: "gpu.js webasm (sync, 1 thread)",
  gpujs_cpu: "gpu.js cpu mode",
} as const;
export type PageContender = keyof typeof PAGE_CONTENDERS;
