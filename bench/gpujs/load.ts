// Loads gpu.js (the npm package, a devDependency) under Deno or Node, failing with what to do when it is missing.

import type { GpuJsConstructor } from "./gemv.ts";

/** gpu.js's `GPU` class; throws an Error naming the install command when the package cannot be loaded. */
export async function loadGpuJs(): Promise<GpuJsConstructor> {
  // A computed specifier: Deno then resolves it when this runs, not while type checking, so a missing
  // package reaches the message below instead of a resolution error before any code runs.
  const name = ["gpu", "js"].join(".");
  try {
    const mod = await import(name);
    return mod.GPU as GpuJsConstructor;
  } catch (e) {
    throw new Error(
      `gpu.js is not installed or does not load (${(e as Error).message.split("\n")[0]}): ` +
        "run `npm install` in the repository (devDependency gpu.js 2.24.1)",
    );
  }
}
