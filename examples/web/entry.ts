// The browser entry of the example page: what index.html needs from the library, bundled into rabit.js by
// scripts/build_web.ts (`deno task build:web`). It imports no file, report or CLI code: the page passes bytes.

export { openModelBytes } from "../../src/io/open_bytes.ts";
export type { OpenModelBytesOptions } from "../../src/io/open_bytes.ts";
export { createSession } from "../../src/backend/create.ts";
export type { CreateSessionOptions } from "../../src/backend/create.ts";
export type { BackendName, InferenceSession } from "../../src/backend/backend.ts";
export { BACKEND_NAMES } from "../../src/backend/backend.ts";
export { generate } from "../../src/eval/generate.ts";
export type { GenerateOptions, GenerateResult } from "../../src/eval/generate.ts";
export { wasmSimdSupported } from "../../src/backend/wasm/kernels.ts";
export { requestGpu } from "../../src/backend/webgpu/device.ts";
