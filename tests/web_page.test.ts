// The browser example (examples/web/) end to end: builds the bundle (scripts/build_web.ts), serves the page
// and the model files on 127.0.0.1, drives Debian's Chromium headless through playwright-core, and checks the
// golden greedy text of stories260K on WebGPU (Chromium's adapter: SwiftShader here), on the wasm and
// TypeScript CPU backends, on `auto`, and with files picked through the page's file inputs; then a packed
// .rabit (post-training quantized stories260K, tokenizer inside) on WebGPU and wasm against the CPU reference.
// Needs /usr/bin/chromium (or $CHROMIUM); .ci/run installs Debian's package. RABIT_WEB_SCREENSHOT=path saves a
// screenshot of the page after the WebGPU run.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";
import { CpuSession } from "../src/backend/cpu/session.ts";
import { generate } from "../src/eval/generate.ts";
import { openModel } from "../src/io/load_model.ts";
import { parseRabit, serializeRabit } from "../src/io/rabit_format.ts";
import { quantize } from "../src/train/quantize.ts";
import { DEV_TEXT_PATH, GOLDEN_GREEDY, MODEL_PATH, TOKENIZER_PATH } from "./_data.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const GOLDEN_START = "Once upon a time, there was a little girl named Lily.";

/** What examples/web/main.js keeps in window.rabitPage. */
interface PageState {
  phase: string;
  notices: string[];
  webgpu: { available: boolean; reason?: string; adapter?: string; fallback?: boolean } | null;
  backend: string | null;
  device: string | null;
  openSeconds: number | null;
  result: { generated: number[]; text: string; tokensPerSecond: number; prefillSeconds: number } | null;
  error: string | null;
}

/** Served paths: a file, or bytes. */
const FILES: Record<string, [string | Uint8Array<ArrayBuffer>, string]> = {
  "/": [`${root}examples/web/index.html`, "text/html; charset=utf-8"],
  "/index.html": [`${root}examples/web/index.html`, "text/html; charset=utf-8"],
  "/main.js": [`${root}examples/web/main.js`, "text/javascript"],
  "/rabit.js": [`${root}examples/web/rabit.js`, "text/javascript"],
  "/data/stories260K.bin": [MODEL_PATH, "application/octet-stream"],
  "/data/tok512.bin": [TOKENIZER_PATH, "application/octet-stream"],
};

function serve(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const file = FILES[new URL(req.url).pathname];
    if (!file) return new Response("not found", { status: 404 });
    const body = typeof file[0] === "string" ? await Deno.readFile(file[0]) : file[0];
    return new Response(body, { headers: { "content-type": file[1] } });
  });
}

Deno.test({
  name: "web page: golden greedy text of stories260K in headless Chromium (WebGPU, wasm, cpu, auto)",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const build = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/build_web.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));

  // A packed model (fast post-training quantization) and what the CPU reference generates from it.
  const opened = await openModel(MODEL_PATH, { requireTokenizer: true });
  const text = (await Deno.readTextFile(DEV_TEXT_PATH)).slice(0, 20_000);
  const q = await quantize(opened.model, {
    method: "ptq",
    tokenizer: opened.tokenizer!,
    data: [{ name: "dev", text }],
    precondition: 0,
    svidRounds: 0,
  });
  const rabitBytes = serializeRabit({
    model: q.model,
    tokenizerBytes: opened.tokenizer!.bytes,
    method: q.method,
    options: q.options,
    metadata: q.metadata,
  });
  FILES["/data/stories260K-ptq.rabit"] = [new Uint8Array(rabitBytes), "application/octet-stream"];
  const packed = parseRabit(rabitBytes);
  const packedRef = await generate(new CpuSession(packed.model), packed.tokenizer!, { steps: 16 });

  const exists = await Deno.stat(CHROMIUM).then(() => true, () => false);
  assert.ok(exists, `No Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
  const server = serve();
  const base = `http://127.0.0.1:${server.addr.port}`;
  let browser: Browser | undefined;
  try {
    // SwiftShader's WebGPU adapter needs no flag but this one on Linux.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--enable-unsafe-webgpu"] });
    const b = browser;
    const errors: string[] = [];

    /** Opens the page with `query`, runs `act` (if any), and waits for the generation to end. */
    const runPage = async (query: string, act?: (page: import("playwright-core").Page) => Promise<void>) => {
      const page = await b.newPage({ viewport: { width: 900, height: 720 } });
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`${base}/${query}`);
      await page.waitForFunction("document.body.dataset.ready === '1'", null, { timeout: 30_000 });
      if (act) await act(page);
      await page.waitForFunction(
        () => ["done", "error"].includes((globalThis as { rabitPage?: PageState }).rabitPage?.phase ?? ""),
        null,
        { timeout: 240_000 },
      );
      const state = await page.evaluate(() => (globalThis as unknown as { rabitPage: PageState }).rabitPage);
      return { page, state };
    };
    const golden = (state: PageState, backend: string) => {
      assert.equal(state.error, null, `page error: ${state.error}`);
      assert.equal(state.phase, "done");
      assert.equal(state.backend, backend);
      assert.deepEqual(state.result!.generated, GOLDEN_GREEDY);
      assert.ok(state.result!.text.startsWith(GOLDEN_START), state.result!.text);
      assert.ok(state.result!.tokensPerSecond > 0);
    };
    const query = (backend: string) =>
      `?model=/data/stories260K.bin&tokenizer=/data/tok512.bin&backend=${backend}&steps=${GOLDEN_GREEDY.length}`;

    await t.step("webgpu", async () => {
      const { page, state } = await runPage(query("webgpu"));
      try {
        const gpu = state.webgpu!;
        if (!gpu.available) throw new Error(`Chromium gave the page no WebGPU adapter: ${gpu.reason}`);
        golden(state, "webgpu");
        console.log(
          `web page: WebGPU adapter "${gpu.adapter}"${gpu.fallback ? " (fallback)" : ""}; ` +
            `session device ${state.device}, opened in ${state.openSeconds!.toFixed(1)} s; ${
              state.result!.tokensPerSecond.toFixed(1)
            } tokens/s`,
        );
        const shot = Deno.env.get("RABIT_WEB_SCREENSHOT");
        if (shot) await page.screenshot({ path: shot, fullPage: true });
      } finally {
        await page.close();
      }
    });

    for (const backend of ["wasm", "cpu"]) {
      await t.step(backend, async () => {
        const { page, state } = await runPage(query(backend));
        await page.close();
        golden(state, backend);
      });
    }

    await t.step("auto: WebGPU on a hardware adapter, else the wasm backend with a notice", async () => {
      const { page, state } = await runPage(query("auto"));
      await page.close();
      const hardware = state.webgpu?.available && !state.webgpu.fallback;
      golden(state, hardware ? "webgpu" : "wasm");
      if (!hardware) assert.match(state.notices.join("\n"), /WebAssembly SIMD CPU backend/);
    });

    await t.step("files picked through the page's file inputs", async () => {
      const { page, state } = await runPage(`?backend=wasm&steps=${GOLDEN_GREEDY.length}`, async (p) => {
        await p.setInputFiles("#model", MODEL_PATH);
        await p.setInputFiles("#tokenizer", TOKENIZER_PATH);
        await p.click("#run");
      });
      const shown = await page.textContent("#output");
      await page.close();
      golden(state, "wasm");
      assert.equal(shown, state.result!.text);
    });

    for (const backend of ["webgpu", "wasm"]) {
      await t.step(`packed .rabit on ${backend} generates what the CPU reference does`, async () => {
        const { page, state } = await runPage(
          `?model=/data/stories260K-ptq.rabit&backend=${backend}&steps=16`,
        );
        await page.close();
        assert.equal(state.error, null, `page error: ${state.error}`);
        assert.equal(state.backend, backend);
        const r = state.result!;
        console.log(
          `web page: packed .rabit on ${backend}: session opened in ${
            state.openSeconds!.toFixed(1)
          } s, prefill ${r.prefillSeconds.toFixed(2)} s, ` +
            `${r.tokensPerSecond.toFixed(1)} tokens/s`,
        );
        assert.deepEqual(r.generated, packedRef.generated);
        assert.equal(state.result!.text, packedRef.text);
      });
    }

    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
    await server.shutdown();
  }
});
