// The Node path of the WebGPU device layer, for real: bundles src/backend/webgpu/device.ts to JavaScript
// (Node 20 cannot import .ts), then runs tests/node/webgpu_smoke.mjs under `node`, which opens the GPU
// through requestGpu's Node logic (the optional `webgpu` package, Dawn) and runs a compute kernel.
// On a headless Linux machine without Vulkan drivers this is Dawn's OpenGL backend on Mesa llvmpipe.
// No skipping: a missing package, a missing adapter or a wrong result fails the test.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const rootPath = fileURLToPath(new URL("../", import.meta.url));

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("Node: requestGpu through the `webgpu` package runs a compute kernel", async () => {
  assert.ok(
    await exists(`${rootPath}node_modules/webgpu/package.json`),
    "node_modules/webgpu is missing: run `npm install` (it is an optionalDependency in package.json)",
  );
  await Deno.mkdir(`${rootPath}.tmp`, { recursive: true });
  // Inside the repo, so that Node resolves the bundle's `import("webgpu")` from our node_modules.
  const dir = await Deno.makeTempDir({ dir: `${rootPath}.tmp`, prefix: "node_webgpu_" });
  try {
    const bundled = `${dir}/device.mjs`;
    const bundle = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "browser", "-o", bundled, "src/backend/webgpu/device.ts"],
      cwd: rootPath,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    assert.equal(bundle.code, 0, `deno bundle failed: ${decode(bundle.stderr)}`);

    let run: Deno.CommandOutput;
    try {
      run = await new Deno.Command("node", {
        args: ["--expose-gc", "tests/node/webgpu_smoke.mjs", bundled],
        cwd: rootPath,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
    } catch (e) {
      throw new Error(`could not run \`node\` (is Node on PATH?): ${e}`);
    }
    const stdout = decode(run.stdout);
    const stderr = decode(run.stderr);
    assert.equal(
      run.code,
      0,
      `node webgpu_smoke.mjs exited ${run.code}` +
        `${run.signal ? ` (${run.signal}: killed after 60 s, so it hung)` : ""}\n` +
        `stdout:\n${stdout}\nstderr:\n${stderr}`,
    );
    const lines = stdout.trim().split("\n");
    const result = JSON.parse(lines[lines.length - 1]) as {
      adapterDescription: string;
      isFallback: boolean;
      maxStorageBufferBindingSize: number;
      input: number[];
      output: number[];
      compileError: string;
    };
    console.log(`node adapter: ${result.adapterDescription}${result.isFallback ? " (software)" : ""}`);
    assert.ok(result.adapterDescription && result.adapterDescription !== "unknown adapter");
    if (/llvmpipe|lavapipe|softpipe|swiftshader/i.test(result.adapterDescription)) {
      assert.equal(result.isFallback, true, "a software adapter must be reported as a fallback");
    }
    assert.ok(result.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
    assert.equal(result.output.length, 100);
    assert.deepEqual(result.output, result.input.map((x) => x * 2 + 1));
    assert.match(result.compileError, /WebGPU kernel "node-smoke-broken" failed to compile/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
