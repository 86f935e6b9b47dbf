// WebGPU device acquisition (Deno native, Node through the optional `webgpu` package, browsers),
// a pipeline cache keyed by everything that changes the WGSL, and buffer helpers with labels.

import { checkOptionKeys, optionKeys } from "../../util/option_keys.ts";

/** An open WebGPU device with the facts kernels need to choose their geometry. */
export interface GpuContext {
  /** The open device. */
  readonly device: GPUDevice;
  /** Human-readable adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly adapterDescription: string;
  /** True for software adapters (llvmpipe, SwiftShader): a CPU pretending to be a GPU. */
  readonly isFallback: boolean;
  /** Features enabled on the device (e.g. "shader-f16", "subgroups" when the adapter has them). */
  readonly features: ReadonlySet<string>;
  /** The device's limits (the adapter's maxima for buffer and binding sizes). */
  readonly limits: GPUSupportedLimits;
  /** Compiled pipelines by cache key (kernel name + every value baked into its WGSL/constants). */
  readonly pipelines: Map<string, Promise<GPUComputePipeline>>;
  /** Set when the device is lost; every later launch throws this reason. */
  lost?: string;
}

const CPU_ADAPTER = /llvmpipe|lavapipe|softpipe|swiftshader|warp/i;

/**
 * Whether the adapter is a CPU (fallback, or named llvmpipe, lavapipe, SwiftShader or WARP): there
 * small workgroups and barrier-free kernels ("compact" geometry) compile far faster and run faster.
 */
export function isCpuAdapter(ctx: GpuContext): boolean {
  return ctx.isFallback || CPU_ADAPTER.test(ctx.adapterDescription);
}

/** Options for {@link requestGpu}. */
export interface RequestGpuOptions {
  /** Which adapter to ask for (default "high-performance"). */
  powerPreference?: GPUPowerPreference;
  /** Storage-buffer binding size the caller wants, clamped to the adapter's maximum. */
  wantStorageBindingBytes?: number;
}

const REQUEST_GPU_OPTION_KEYS = optionKeys<RequestGpuOptions>({
  powerPreference: true,
  wantStorageBindingBytes: true,
});

/** The `webgpu` npm package (Dawn's dawn.node): `create(flags)` returns a fresh `GPU`. */
interface DawnNodeModule {
  create(flags: string[]): GPU;
  globals?: Record<string, unknown>;
}

type NodeProcess = {
  versions?: { node?: string };
  platform?: string;
  env?: Record<string, string | undefined>;
};

/**
 * Keeps each `GPU` object alive as long as a device opened through it: when dawn.node's `GPU` (Node)
 * is garbage-collected its instance stops delivering events, so `mapAsync` and friends never settle.
 */
const gpuOfDevice = new WeakMap<GPUDevice, GPU>();

function nodeProcess(): NodeProcess | undefined {
  const proc = (globalThis as { process?: NodeProcess }).process;
  return typeof proc?.versions?.node === "string" && !("Deno" in globalThis) ? proc : undefined;
}

async function loadDawnNode(): Promise<DawnNodeModule | undefined> {
  try {
    const name = "webgpu"; // a variable, so bundlers and Deno leave the optional package alone
    const mod = await import(name) as DawnNodeModule;
    if (mod.globals) Object.assign(globalThis, mod.globals);
    return mod;
  } catch {
    return undefined;
  }
}

/**
 * Node through the optional `webgpu` package. Dawn's default backends first (Vulkan, Metal, D3D12);
 * failing that, Dawn's OpenGL/OpenGL ES backends, which it offers only at the "compatibility" feature
 * level. On a headless Linux machine (no Vulkan driver, no display server) that finds Mesa's llvmpipe
 * through EGL's surfaceless platform, so EGL_PLATFORM=surfaceless is set when nothing chose a platform.
 */
async function requestNodeAdapter(
  proc: NodeProcess,
  powerPreference: GPUPowerPreference,
): Promise<{ adapter: GPUAdapter; gpu: GPU } | null> {
  const dawn = await loadDawnNode();
  if (!dawn) return null;
  // `featureLevel` is in the WebGPU spec but not yet in Deno's GPURequestAdapterOptions type.
  const attempts: [string[], GPURequestAdapterOptions & { featureLevel?: string }][] = [
    [[], { powerPreference }],
    [["backend=opengl"], { powerPreference, featureLevel: "compatibility" }],
    [["backend=opengles"], { powerPreference, featureLevel: "compatibility" }],
  ];
  for (const [flags, options] of attempts) {
    const env = proc.env ?? {};
    if (
      flags.length && proc.platform === "linux" && !env.EGL_PLATFORM && !env.DISPLAY && !env.WAYLAND_DISPLAY
    ) {
      env.EGL_PLATFORM = "surfaceless"; // read by Mesa's libEGL when Dawn opens its first display
    }
    const gpu = dawn.create(flags);
    const adapter = await gpu.requestAdapter(options);
    if (adapter) return { adapter, gpu };
  }
  return null;
}

/** The adapter from `navigator.gpu` (Deno, browsers) or from the `webgpu` package (Node). */
async function requestAdapter(
  powerPreference: GPUPowerPreference,
): Promise<{ adapter: GPUAdapter; gpu: GPU } | null> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (gpu) {
    const adapter = await gpu.requestAdapter({ powerPreference });
    return adapter ? { adapter, gpu } : null;
  }
  const proc = nodeProcess();
  return proc ? await requestNodeAdapter(proc, powerPreference) : null;
}

/**
 * A description that names the hardware: Dawn's `description` can be just the driver ("OpenGL version
 * 4.5 (Core Profile) Mesa 22.3.6") with the renderer ("llvmpipe-llvm-15-0-6-256-bits-") in `device`.
 */
function describeAdapter(info: GPUAdapterInfo | undefined): string {
  // Chromium leaves `description` empty and names SwiftShader as vendor "google", architecture "swiftshader".
  const description = info?.description || [info?.vendor, info?.architecture].filter(Boolean).join(" ") ||
    "unknown adapter";
  const device = info?.device ?? "";
  if (!device || /^(0x)?[0-9a-f]+$/i.test(device) || description.includes(device)) return description;
  return `${description} (${device})`;
}

/**
 * Opens the best available WebGPU adapter and device, or returns null when there is none.
 * Requests the adapter's maximum buffer and storage-binding sizes so large weights fit.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * const ctx = await requestGpu();
 * if (ctx) {
 *   console.log(ctx.adapterDescription, ctx.isFallback ? "(software)" : "");
 *   ctx.device.destroy();
 * } else {
 *   console.log("no WebGPU adapter: use the CPU backend");
 * }
 * ```
 */
export async function requestGpu(options: RequestGpuOptions = {}): Promise<GpuContext | null> {
  checkOptionKeys("requestGpu", options, REQUEST_GPU_OPTION_KEYS);
  const found = await requestAdapter(options.powerPreference ?? "high-performance");
  if (!found) return null;
  const { adapter, gpu } = found;
  const want = options.wantStorageBindingBytes ?? adapter.limits.maxStorageBufferBindingSize;
  const requiredFeatures: GPUFeatureName[] = [];
  for (const f of ["shader-f16", "timestamp-query", "subgroups"] as GPUFeatureName[]) {
    if (adapter.features.has(f)) requiredFeatures.push(f);
  }
  const device = await adapter.requestDevice({
    label: "rabit",
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: Math.min(want, adapter.limits.maxStorageBufferBindingSize),
      maxBufferSize: adapter.limits.maxBufferSize,
      maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: adapter.limits.maxComputeWorkgroupsPerDimension,
    },
  });
  gpuOfDevice.set(device, gpu);
  const info = adapter.info;
  const adapterDescription = describeAdapter(info);
  const ctx: GpuContext = {
    device,
    adapterDescription,
    isFallback: Boolean((info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter) ||
      /llvmpipe|lavapipe|softpipe|swiftshader/i.test(adapterDescription),
    features: new Set([...device.features] as string[]),
    limits: device.limits,
    pipelines: new Map(),
  };
  device.lost.then((why) => {
    ctx.lost = `WebGPU device lost (${why.reason}): ${why.message}`;
  });
  return ctx;
}

function checkAlive(ctx: GpuContext): void {
  if (ctx.lost) throw new Error(`${ctx.lost}. Re-create the session, or run with --backend cpu.`);
}

/**
 * Returns the cached compute pipeline for `key`, compiling `code` on first use inside a validation
 * error scope so that a WGSL error becomes an exception that names the kernel.
 */
export function getPipeline(
  ctx: GpuContext,
  key: string,
  code: string,
  constants?: Record<string, number>,
): Promise<GPUComputePipeline> {
  checkAlive(ctx);
  let p = ctx.pipelines.get(key);
  if (!p) {
    p = (async () => {
      const { device } = ctx;
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ label: key, code });
      let pipeline: GPUComputePipeline | undefined;
      let failure: unknown;
      try {
        pipeline = await device.createComputePipelineAsync({
          label: key,
          layout: "auto",
          compute: { module, entryPoint: "main", constants },
        });
      } catch (e) {
        failure = e;
      }
      const err = await device.popErrorScope();
      if (err || failure || !pipeline) {
        const info = await module.getCompilationInfo?.().catch(() => undefined);
        const msgs = info?.messages?.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join("; ");
        throw new Error(
          `WebGPU kernel "${key}" failed to compile: ${err?.message ?? String(failure)}${
            msgs ? ` (${msgs})` : ""
          }`,
        );
      }
      return pipeline;
    })();
    ctx.pipelines.set(key, p);
    p.catch(() => ctx.pipelines.delete(key));
  }
  return p;
}

/** Creates a labelled storage buffer, optionally filled with `data` (length rounded up to 4 bytes). */
export function createStorageBuffer(
  ctx: GpuContext,
  label: string,
  dataOrBytes: ArrayBufferView | number,
  extraUsage: number = 0,
): GPUBuffer {
  checkAlive(ctx);
  const bytes = typeof dataOrBytes === "number" ? dataOrBytes : dataOrBytes.byteLength;
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  if (size > ctx.limits.maxBufferSize) {
    throw new RangeError(
      `Buffer "${label}": ${size} bytes exceeds the adapter's maxBufferSize ${ctx.limits.maxBufferSize}`,
    );
  }
  const buffer = ctx.device.createBuffer({
    label,
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage,
    mappedAtCreation: typeof dataOrBytes !== "number",
  });
  if (typeof dataOrBytes !== "number") {
    const src = new Uint8Array(dataOrBytes.buffer, dataOrBytes.byteOffset, dataOrBytes.byteLength);
    new Uint8Array(buffer.getMappedRange()).set(src);
    buffer.unmap();
  }
  return buffer;
}

/** Creates a labelled uniform buffer holding `data` (padded to 16 bytes). */
export function createUniformBuffer(ctx: GpuContext, label: string, data: ArrayBufferView): GPUBuffer {
  checkAlive(ctx);
  const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
  const buffer = ctx.device.createBuffer({
    label,
    size,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  ctx.device.queue.writeBuffer(buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  return buffer;
}

/** Copies `bytes` bytes of a storage buffer back to the CPU. */
export async function readBuffer(
  ctx: GpuContext,
  buffer: GPUBuffer,
  bytes: number,
  offset = 0,
): Promise<ArrayBuffer> {
  checkAlive(ctx);
  const size = Math.ceil(bytes / 4) * 4;
  const staging = ctx.device.createBuffer({
    label: `${buffer.label}:readback`,
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = ctx.device.createCommandEncoder({ label: "readback" });
  enc.copyBufferToBuffer(buffer, offset, staging, 0, size);
  ctx.device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  return out;
}

/** Reads a float32 storage buffer. */
export async function readF32(
  ctx: GpuContext,
  buffer: GPUBuffer,
  count: number,
  offset = 0,
): Promise<Float32Array> {
  return new Float32Array(await readBuffer(ctx, buffer, count * 4, offset * 4));
}
