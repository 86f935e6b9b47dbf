// gpu.js in a browser: dense fp32 GEMV y = W · x in headless Chromium (Debian's, through playwright-core), where
// gpu.js has WebGL (SwiftShader through ANGLE on a machine without a GPU) and, with --enable-unsafe-webgpu, a
// WebGPU adapter. Against the repo's WebAssembly SIMD kernel and TypeScript GEMV bundled into the same page.
// gpu.js's WebGL and WebGPU modes run twice: W uploaded by every call, and W resident (a pipeline result).
// Bundles bench/gpujs/page_entry.ts into a temporary folder, serves it with bench/gpujs/page.html and gpu.js's
// dist/gpu-browser.min.js on 127.0.0.1, and prints what the page runs on and a markdown table (ms per GEMV,
// time ratio to WASM: > 1 is slower); with --json the last line is one JSON object.
// Run: deno run -A bench/gpujs_browser.ts [--shapes 512x512,2048x2048] [--only wasm,gpujs_resident]
//      [--reps 5] [--no-webgpu] [--json]     Needs /usr/bin/chromium (or $CHROMIUM) and `npm install`.

import { parseArgs } from "node:util";
import { parseShapeList } from "../src/bench/gemv.ts";
import { type Browser, chromium } from "playwright-core";
import { markdownTable, type ShapeResult } from "./gpujs/gemv.ts";
import { PAGE_CONTENDERS, type PageContender } from "./gpujs/page_contenders.ts";
import type { PageInfo } from "./gpujs/page_entry.ts";

const root = decodeURIComponent(new URL("../", import.meta.url).pathname);
const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const GPUJS_DIST = `${root}node_modules/gpu.js/dist/gpu-browser.min.js`;

const LABELS = PAGE_CONTENDERS;
const SHAPES = [{ out: 512, in: 512 }, { out: 2048, in: 2048 }, { out: 4096, in: 4096 }, {
  out: 32000,
  in: 2048,
}];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    shapes: { type: "string" },
    only: { type: "string" },
    reps: { type: "string", default: "5" },
    "batch-ms": { type: "string", default: "100" },
    "no-webgpu": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const shapes = values.shapes ? parseShapeList(values.shapes) : SHAPES;
const keys = (values.only ? values.only.split(",") : Object.keys(LABELS)) as PageContender[];
for (const k of keys) {
  if (!(k in LABELS)) throw new RangeError(`--only: unknown contender "${k}" (${Object.keys(LABELS)})`);
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
if (!(await exists(GPUJS_DIST))) {
  throw new Error(
    `gpu.js is not installed (no ${GPUJS_DIST}): run \`npm install\` (devDependency gpu.js 2.24.1)`,
  );
}
if (!(await exists(CHROMIUM))) {
  throw new Error(`No Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
}

// The page's bundle: the repo's kernels and the harness, in a temporary folder (nothing is written to the tree).
const tmp = await Deno.makeTempDir({ prefix: "gpujs_bench_" });
const bundle = `${tmp}/page.js`;
const built = await new Deno.Command(Deno.execPath(), {
  args: [
    "bundle",
    "--platform",
    "browser",
    "--format",
    "esm",
    "--output",
    bundle,
    "bench/gpujs/page_entry.ts",
  ],
  cwd: root,
  stdout: "piped",
  stderr: "piped",
  env: { NO_COLOR: "1" },
}).output();
if (built.code !== 0) {
  throw new Error(
    `deno bundle of bench/gpujs/page_entry.ts failed:\n${new TextDecoder().decode(built.stderr)}`,
  );
}

const FILES: Record<string, [string, string]> = {
  "/": [`${root}bench/gpujs/page.html`, "text/html; charset=utf-8"],
  "/gpu-browser.min.js": [GPUJS_DIST, "text/javascript"],
  "/page.js": [bundle, "text/javascript"],
};
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
  const file = FILES[new URL(req.url).pathname];
  if (!file) return new Response("not found", { status: 404 });
  return new Response(await Deno.readFile(file[0]), { headers: { "content-type": file[1] } });
});

const args = ["--enable-unsafe-swiftshader"]; // software WebGL, which newer Chromium gives only when asked
if (!values["no-webgpu"]) args.push("--enable-unsafe-webgpu"); // SwiftShader's WebGPU adapter on Linux
let browser: Browser | undefined;
const results: ShapeResult<PageContender>[] = [];
let info: PageInfo | undefined;
const pageErrors: string[] = [];
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, args });
  const open = async () => {
    const page = await browser!.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.addr.port}/`);
    await page.waitForFunction("globalThis.gpujsBench !== undefined", null, { timeout: 30_000 });
    return page;
  };
  const first = await open();
  info = await first.evaluate(() =>
    (globalThis as unknown as { gpujsBench: { info(): Promise<PageInfo> } }).gpujsBench.info()
  );
  await first.close();
  for (const shape of shapes) {
    // A fresh page per shape: the previous shape's textures and buffers go with it.
    const page = await open();
    const r = await page.evaluate(
      ([out, inF, ks, reps, batchMs]) =>
        (globalThis as unknown as {
          gpujsBench: {
            measure(
              o: number,
              i: number,
              k: string[],
              t: { reps: number; batchMs: number },
            ): Promise<ShapeResult<PageContender>>;
          };
        }).gpujsBench.measure(out, inF, ks, { reps, batchMs }),
      [shape.out, shape.in, keys, Number(values.reps), Number(values["batch-ms"])] as const,
    );
    await page.close();
    results.push(r);
    console.error(`measured ${r.shape}`);
  }
} finally {
  await browser?.close();
  await server.shutdown();
  await Deno.remove(tmp, { recursive: true });
}

const version = browser?.version() ?? "?";
console.log(`Chromium ${version} headless, flags ${args.join(" ")}`);
console.log(`WebGL: ${info!.webglRenderer ?? "none"} (max texture ${info!.maxTextureSize ?? "—"})`);
console.log(`WebGPU adapter: ${info!.webgpuAdapter ?? "none"}`);
console.log(`gpu.js picks "${info!.gpujs.pick}" (supports ${JSON.stringify(info!.gpujs)})`);
console.log(`medians of ${values.reps} interleaved rounds\n`);
console.log(markdownTable(results, keys.map((k) => [k, LABELS[k]]), "wasm"));
if (pageErrors.length) console.log(`\npage errors:\n${pageErrors.join("\n")}`);
if (values.json) console.log(JSON.stringify({ chromium: version, flags: args, info, results }));
