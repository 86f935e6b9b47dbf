// Decode of the real stories260K after a 128-token prompt: the TypeScript reference (baseline) vs the
// WebAssembly SIMD backend, float and packed k = 2 (a PTQ copy). One process, one group per model storage.

import { CpuSession } from "../src/backend/cpu/session.ts";
import { WasmSession } from "../src/backend/wasm/session.ts";
import type { InferenceSession } from "../src/backend/backend.ts";
import { openModel } from "../src/io/load_model.ts";
import { resolveModelPath } from "../src/io/model_paths.ts";
import { quantizeModel } from "../src/quant/quantize_model.ts";

const model = (await openModel(resolveModelPath(undefined))).model;
const packed = quantizeModel(model, { method: "ptq", paths: 2, precondition: 0 }).model;
const CONTEXT = 128;

async function decoder(session: InferenceSession): Promise<() => Promise<void>> {
  await session.run(new Array(CONTEXT).fill(1), 0);
  let pos = CONTEXT;
  return async () => {
    await session.run([5], pos, { lastOnly: true });
    pos = pos + 1 >= session.config.seqLen ? CONTEXT : pos + 1;
  };
}

for (
  const [group, m] of [["decode stories260K fp32", model], ["decode stories260K packed k=2", packed]] as const
) {
  const cpu = await decoder(new CpuSession(m));
  const wasm = await decoder(new WasmSession(m));
  Deno.bench({ name: "cpu (TypeScript reference)", group, baseline: true }, cpu);
  Deno.bench({ name: "wasm (WebAssembly SIMD)", group }, wasm);
}
