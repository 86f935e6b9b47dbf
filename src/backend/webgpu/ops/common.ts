// What the per-op launcher files share: the compile-job type, the software-adapter test behind the
// "compact" geometry, the shape of the position uniform, and the elementwise workgroup size.

import type { Dispatcher } from "../dispatch.ts";

/** A pipeline to compile: cache key (kernel name and everything baked in), WGSL, override constants. */
export type KernelJob = [key: string, code: string, constants: Record<string, number>];

/** Which pipelines an op's `prepare` compiles. */
export interface JobOptions {
  /** The inference kernels (default true). */
  inference?: boolean;
  /** The training kernels: training forwards and backwards (default true). */
  training?: boolean;
}

/** Threads of the elementwise kernels. */
export const WG = 256;

export { isCpuAdapter } from "../device.ts";

/**
 * Compiles `jobs` one at a time: device error scopes are a stack, so concurrent compiles could
 * misattribute errors.
 */
export async function compileJobs(d: Dispatcher, jobs: KernelJob[]): Promise<void> {
  for (const [key, code, constants] of jobs) await d.compile(key, code, constants);
}

/**
 * The position uniform of one inference chunk, {pos0, T} (GpuStep in ../ops.ts): the GPU reads
 * `buffer`, launchers size their dispatches from the CPU copy.
 */
export interface StepUniform {
  readonly buffer: GPUBuffer;
  /** First position of the chunk. */
  readonly pos0: number;
  /** Tokens in the chunk (T). */
  readonly tokens: number;
}
