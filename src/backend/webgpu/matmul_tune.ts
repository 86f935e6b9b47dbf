// A small autotuner for the matmul kernels: for one layer's shape class on this adapter, time a few
// geometries once (interleaved, medians), keep the fastest in the engine, and optionally remember it in
// a JSON file under the OS cache directory keyed by adapter description.

import { createStorageBuffer } from "./device.ts";
import { crc32 } from "../../util/crc32.ts";
import { env, platform } from "../../util/process.ts";
import { mkdir, readTextFile, rename, writeFile } from "../../io/fs.ts";
import type { GpuLinear, MatmulEngine } from "./matmul.ts";
import {
  candidateGeometries,
  type MatmulGeometry,
  type MatmulOp,
  shapeClass,
  validateGeometry,
} from "./matmul_geometry.ts";

/** Options of {@link MatmulEngine.tune}. */
export interface TuneOptions {
  /** Tokens: 1 tunes the GEMV, more the GEMM (default 1). */
  T?: number;
  /** Geometries to try (default: {@link candidateGeometries}). */
  candidates?: MatmulGeometry[];
  /** Timed rounds over all candidates; the median round counts (default 5). */
  reps?: number;
  /** Wall time one timed batch of dispatches should take, in ms (default 30). */
  batchMs?: number;
  /** JSON file remembering choices per adapter; true for {@link defaultTuneCachePath}. Default: none. */
  cacheFile?: string | boolean;
}

/** What {@link MatmulEngine.tune} chose and what it measured (ms per product, by geometry key). */
export interface TuneResult {
  shapeClass: string;
  geometry: MatmulGeometry;
  ms: Record<string, number>;
  /** True when the choice came from the cache file without timing. */
  cached: boolean;
}

/**
 * The cache entry of a shape class: the class and a CRC-32 of the kernel's source, so that a choice
 * measured on an older version of the kernel is measured again rather than reused.
 */
function cacheKey(engine: MatmulEngine, op: MatmulOp, lin: GpuLinear, cls: string): string {
  const source = engine.kernelTemplate(op, lin.kind);
  return `${cls}@${crc32(new TextEncoder().encode(source)).toString(16).padStart(8, "0")}`;
}

/**
 * `$XDG_CACHE_HOME/rabit/matmul-tune.json` (or the platform's cache directory) in Deno and Node;
 * undefined in a browser or without permission to read the environment.
 */
export function defaultTuneCachePath(): string | undefined {
  const os = platform();
  const home = env("HOME");
  const base = os === "win32"
    ? env("LOCALAPPDATA")
    : os === "darwin"
    ? home && `${home}/Library/Caches`
    : env("XDG_CACHE_HOME") ?? (home && `${home}/.cache`);
  return base ? `${base}/rabit/matmul-tune.json` : undefined;
}

type CacheFile = Record<string, Record<string, MatmulGeometry>>;

async function readCache(path: string): Promise<CacheFile> {
  try {
    const parsed = JSON.parse(await readTextFile(path));
    return parsed && typeof parsed === "object" ? parsed as CacheFile : {};
  } catch {
    return {};
  }
}

async function writeCache(path: string, cache: CacheFile): Promise<void> {
  const dir = path.replace(/[\\/][^\\/]*$/, "");
  if (dir && dir !== path) await mkdir(dir, { recursive: true });
  const tmp = `${path}.${Date.now()}.tmp`;
  await writeFile(tmp, JSON.stringify(cache, null, 2) + "\n");
  await rename(tmp, path);
}

const keyOf = (g: MatmulGeometry) => `wg${g.WG}:tpr${g.TPR}:rpt${g.RPT}${g.TT ? `:tt${g.TT}` : ""}`;

/** Implementation of {@link MatmulEngine.tune}. */
export async function tuneMatmul(
  engine: MatmulEngine,
  lin: GpuLinear,
  options: TuneOptions = {},
): Promise<TuneResult> {
  const { ctx } = engine;
  const T = options.T ?? 1;
  const op: MatmulOp = T === 1 ? "gemv" : "gemm";
  const cls = shapeClass(op, lin.kind, lin);
  const path = options.cacheFile === true ? defaultTuneCachePath() : options.cacheFile || undefined;
  if (path) {
    const hit = (await readCache(path))[ctx.adapterDescription]?.[cacheKey(engine, op, lin, cls)];
    if (hit) {
      try {
        engine.setGeometry(op, lin.kind, lin, hit);
        await engine.prepare(lin, T, hit);
        return { shapeClass: cls, geometry: hit, ms: {}, cached: true };
      } catch {
        // a stale or invalid entry: measure again
      }
    }
  }
  const candidates = (options.candidates ?? candidateGeometries(op)).filter((g) => {
    try {
      validateGeometry(ctx, op, g);
      return true;
    } catch {
      return false;
    }
  });
  if (candidates.length === 0) {
    throw new RangeError(`tune ${lin.label}: no valid candidate geometry for ${op}`);
  }
  for (const g of candidates) await engine.prepare(lin, T, g);

  // x as the session's activations are (UNIFORM usage), so the variant it will run is the one timed.
  const x = createStorageBuffer(
    ctx,
    "tune.x",
    new Float32Array(T * lin.in).fill(0.25),
    GPUBufferUsage.UNIFORM,
  );
  const y = createStorageBuffer(ctx, "tune.y", T * lin.out * 4);
  const run = async (g: MatmulGeometry, n: number) => {
    const enc = ctx.device.createCommandEncoder({ label: "tune" });
    const pass = enc.beginComputePass({ label: "tune" });
    for (let i = 0; i < n; i++) engine.encodeWith(pass, lin, { buffer: x }, { buffer: y }, T, g);
    pass.end();
    const t0 = performance.now();
    ctx.device.queue.submit([enc.finish()]);
    await ctx.device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / n;
  };
  try {
    // Warm up every candidate (first dispatches pay for bind groups and lazy driver work), then size the
    // batches from the slowest so that each timed batch takes about batchMs.
    let slowest = 0;
    for (const g of candidates) slowest = Math.max(slowest, await run(g, 1));
    const n = Math.max(1, Math.min(64, Math.round((options.batchMs ?? 30) / Math.max(slowest, 1e-3))));
    const samples = candidates.map(() => [] as number[]);
    for (let rep = 0; rep < (options.reps ?? 5); rep++) {
      for (let i = 0; i < candidates.length; i++) samples[i].push(await run(candidates[i], n));
    }
    const ms: Record<string, number> = {};
    let best = 0;
    const med = samples.map((s) => s.sort((a, b) => a - b)[s.length >> 1]);
    candidates.forEach((g, i) => {
      ms[keyOf(g)] = med[i];
      if (med[i] < med[best]) best = i;
    });
    const geometry = candidates[best];
    engine.setGeometry(op, lin.kind, lin, geometry);
    if (path) {
      try {
        const cache = await readCache(path);
        (cache[ctx.adapterDescription] ??= {})[cacheKey(engine, op, lin, cls)] = geometry;
        await writeCache(path, cache);
      } catch {
        // the cache is an optimization: a read-only or missing directory only costs a re-tune
      }
    }
    return { shapeClass: cls, geometry, ms, cached: false };
  } finally {
    x.destroy();
    y.destroy();
  }
}
