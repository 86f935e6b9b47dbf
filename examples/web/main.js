// The example page: opens a model from bytes (a picked file, or a URL given as ?model=...&tokenizer=...),
// opens a session on the chosen backend and streams generated text with its speed.
// Query parameters (all optional): model, tokenizer (URLs, fetched; with model the page generates at once),
// backend (auto | webgpu | wasm | cpu), steps, temperature, prompt.
// window.rabitPage holds the page's state for scripts and tests (tests/web_page.test.ts).

import { createSession, generate, openModelBytes } from "./rabit.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

/** What the page did last: phase idle | loading | running | done | error, and its results. */
const state = {
  phase: "idle",
  notices: [],
  webgpu: null,
  backend: null,
  device: null,
  openSeconds: null,
  result: null,
  error: null,
};
globalThis.rabitPage = state;

function setPhase(phase) {
  state.phase = phase;
  document.body.dataset.phase = phase;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

for (const id of ["backend", "steps", "temperature", "prompt"]) {
  if (params.has(id)) $(id).value = params.get(id);
}

/** The WebGPU adapter this browser gives, or why there is none (shown before any model is loaded). */
async function probeWebGpu() {
  if (!("gpu" in navigator)) {
    return {
      available: false,
      reason: isSecureContext
        ? "navigator.gpu is missing: this browser has no WebGPU (Chromium: --enable-unsafe-webgpu on Linux)"
        : "navigator.gpu is missing: the page is not a secure context (serve it from https or localhost)",
    };
  }
  try {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) return { available: false, reason: "navigator.gpu.requestAdapter() returned null" };
    const info = adapter.info ?? {};
    const name = [info.vendor, info.architecture, info.description, info.device].filter(Boolean).join(" ");
    const fallback = Boolean(adapter.isFallbackAdapter ?? info.isFallbackAdapter);
    return { available: true, adapter: name || "unknown adapter", fallback };
  } catch (e) {
    return { available: false, reason: `navigator.gpu.requestAdapter() threw: ${e?.message ?? e}` };
  }
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The model's bytes and name, and the tokenizer's bytes if any: picked files first, else ?model= URLs. */
async function modelSource() {
  const modelFile = $("model").files[0], tokenizerFile = $("tokenizer").files[0];
  if (modelFile) {
    return {
      name: modelFile.name,
      bytes: new Uint8Array(await modelFile.arrayBuffer()),
      tokenizerBytes: tokenizerFile ? new Uint8Array(await tokenizerFile.arrayBuffer()) : undefined,
    };
  }
  const url = params.get("model");
  if (!url) throw new Error("Pick a model file first");
  const tokenizerUrl = params.get("tokenizer");
  const [bytes, tokenizerBytes] = await Promise.all([
    fetchBytes(url),
    tokenizerUrl ? fetchBytes(tokenizerUrl) : undefined,
  ]);
  return { name: url.split("/").pop(), bytes, tokenizerBytes };
}

/** Lets the browser paint about every 50 ms of generation: the session's runs may never leave the task. */
function streaming(session) {
  let last = performance.now();
  return {
    backend: session.backend,
    device: session.device,
    config: session.config,
    async run(tokens, pos0, options) {
      if (performance.now() - last > 50) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        last = performance.now();
      }
      return await session.run(tokens, pos0, options);
    },
    dispose: () => session.dispose(),
  };
}

async function run() {
  const steps = Number($("steps").value), temperature = Number($("temperature").value);
  const prompt = $("prompt").value, backend = $("backend").value;
  $("run").disabled = true;
  $("output").textContent = "";
  $("stats").textContent = "";
  Object.assign(state, {
    notices: [],
    backend: null,
    device: null,
    openSeconds: null,
    result: null,
    error: null,
  });
  let session;
  try {
    setPhase("loading");
    status("Reading the model…");
    const source = await modelSource();
    const opened = openModelBytes(source.bytes, {
      name: source.name,
      tokenizerBytes: source.tokenizerBytes,
      requireTokenizer: true,
    });
    const c = opened.model.config;
    const layers = opened.model.quantized.size ? `, ${opened.model.quantized.size} packed linears` : "";
    status(
      `Opening ${source.name} (${opened.format}: dim ${c.dim}, ${c.nLayers} layers${layers}) on ${backend}…`,
    );
    const tOpen = performance.now();
    session = await createSession(opened.model, {
      backend,
      onNotice: (line) => state.notices.push(line),
    });
    state.openSeconds = (performance.now() - tOpen) / 1000;
    state.backend = session.backend;
    state.device = session.device;
    const notices = state.notices.length ? `\n${state.notices.join("\n")}` : "";
    status(
      `${source.name} (${opened.format}) on ${session.backend}: ${session.device}, ` +
        `opened in ${state.openSeconds.toFixed(1)} s${notices}`,
    );
    setPhase("running");
    const out = $("output");
    if (prompt) {
      const b = document.createElement("span");
      b.className = "prompt";
      b.textContent = prompt;
      out.append(b);
    }
    const text = document.createTextNode("");
    out.append(text);
    const t0 = performance.now();
    let count = 0;
    const result = await generate(streaming(session), opened.tokenizer, {
      steps,
      temperature,
      prompt,
      onToken: (_id, piece) => {
        text.data += piece;
        count++;
        const s = (performance.now() - t0) / 1000;
        $("stats").textContent = `${count} tokens, ${(count / Math.max(s, 1e-9)).toFixed(1)} tokens/s…`;
      },
    });
    state.result = {
      ids: result.ids,
      generated: result.generated,
      text: result.text,
      tokensPerSecond: result.tokensPerSecond,
      prefillSeconds: result.prefillSeconds,
      decodeSeconds: result.decodeSeconds,
    };
    $("stats").textContent =
      `${result.generated.length} tokens, ${result.tokensPerSecond.toFixed(1)} tokens/s ` +
      `(decode ${result.decodeSeconds.toFixed(2)} s, prefill of ${result.promptTokens} tokens ` +
      `${(result.prefillSeconds * 1000).toFixed(1)} ms) · ${session.backend} · ` +
      `${temperature > 0 ? `temperature ${temperature}` : "greedy"}`;
    setPhase("done");
  } catch (e) {
    state.error = e?.message ?? String(e);
    status(state.error, true);
    setPhase("error");
  } finally {
    session?.dispose();
    $("run").disabled = false;
  }
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  run();
});

state.webgpu = await probeWebGpu();
const gpuLine = state.webgpu.available
  ? `WebGPU adapter: ${state.webgpu.adapter}${state.webgpu.fallback ? " (software fallback)" : ""}`
  : `No WebGPU: ${state.webgpu.reason}`;
status(`${gpuLine}. Pick a model file.`);
setPhase("idle");
document.body.dataset.ready = "1";
if (params.has("model")) run();
