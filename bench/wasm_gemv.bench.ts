// GEMV speed of the WebAssembly SIMD CPU kernels at Llama-2-7B's and TinyLlama's square shapes, one group per
// shape: fp32 (baseline), fp16-storage, packed k = 2 with int8, int16 (the default) and f32 lookup tables;
// plus prefill (GEMM, 16 tokens) fp32 vs packed. One process, random weights; compare ratios.
// Run: deno bench -A bench/wasm_gemv.bench.ts   (`rabit bench --backend wasm` gives interleaved medians)

import { WasmKernels } from "../src/backend/wasm/kernels.ts";
import { wasmGemvLayers } from "../src/bench/wasm_gemv.ts";

const SHAPES = [{ out: 4096, in: 4096 }, { out: 2048, in: 2048 }];
const NAMES = {
  f32: "fp32",
  f16: "fp16-storage",
  packed2_i8: "packed k=2 (int8 tables)",
  packed2_i16: "packed k=2 (int16 tables, the default)",
  packed2_f32lut: "packed k=2 (f32 tables)",
} as const;

for (const shape of SHAPES) {
  const layers = wasmGemvLayers(WasmKernels.create(), shape);
  const x = new Float32Array(shape.in).map((_, i) => Math.sin(i));
  const group = `wasm gemv ${shape.out}x${shape.in}`;
  for (const [v, name] of Object.entries(NAMES) as [keyof typeof NAMES, string][]) {
    Deno.bench({ name: `${name} (${layers[v].bytes} B)`, group, baseline: v === "f32" }, () => {
      layers[v].forward(x, 1);
    });
  }
  const T = 16;
  const xs = new Float32Array(T * shape.in).map((_, i) => Math.sin(i));
  for (const v of ["f32", "packed2_i8", "packed2_i16"] as const) {
    Deno.bench({ name: `${NAMES[v]}, ${T} tokens`, group: `${group} prefill`, baseline: v === "f32" }, () => {
      layers[v].forward(xs, T);
    });
  }
}
