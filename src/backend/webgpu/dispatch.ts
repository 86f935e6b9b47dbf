// The one dispatch layer every WebGPU launcher records through: tensor views inside buffers, binding
// checks (usage, bounds, alignment, binding limits, no writable aliasing), a pipeline table, and a
// bind-group cache keyed by the buffers, ranges and parameter words a dispatch binds. A launcher is then
// only: validate shapes → pick a compiled pipeline key → bind views → launch.

import { createStorageBuffer, createUniformBuffer, getPipeline, type GpuContext } from "./device.ts";

/**
 * A row-major tensor inside a GPU buffer: element (r, c) is 4-byte word `offset + r * stride + c`.
 * Views of one operation that write must use a buffer no other view of that operation uses.
 */
export interface GpuView {
  buffer: GPUBuffer;
  /** Words (4 bytes) from the start of the buffer to element (0, 0). Default 0. */
  offset?: number;
  /** Words between rows. Default: the operation's row width. */
  stride?: number;
}

/** A bound view: the binding to pass to the kernel, and the view's word offset inside it. */
export interface BoundView {
  binding: GPUBufferBinding;
  /** Words from the binding's start to element (0, 0). */
  shift: number;
}

/** Largest workgroup count along one grid dimension WebGPU guarantees. */
export const MAX_GRID = 65535;
/** Bind groups cached before the cache starts over. */
const MAX_GROUPS = 4096;

/** Throws a RangeError unless `value` is an integer in [min, max]. */
export function checkInt(op: string, name: string, value: number, min = 1, max = 2 ** 31): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${op}: expected ${name} to be an integer in [${min}, ${max}], found ${value}`);
  }
}

/** Word offset of a view (default 0). */
export function offsetOf(v: GpuView): number {
  return v.offset ?? 0;
}

/** Row stride of a view in words (default: the row width). */
export function strideOf(v: GpuView, width: number): number {
  return v.stride ?? width;
}

/** One past the last word a (rows, width) view touches. */
export function endOf(v: GpuView, rows: number, width: number): number {
  return offsetOf(v) + (rows - 1) * strideOf(v, width) + width;
}

/** Splits a workgroup count over x and y so that neither exceeds {@link MAX_GRID}. */
export function grid2d(groups: number): [number, number] {
  const x = Math.min(Math.max(groups, 1), MAX_GRID);
  return [x, Math.ceil(groups / x)];
}

/**
 * Pipelines by key, bind groups by what they bind, and the buffers this layer owns. One instance per
 * launcher family; they may share a GpuContext (and so its compiled-pipeline promises).
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { Dispatcher } from "./dispatch.ts";
 * const ctx = await requestGpu();
 * if (ctx) {
 *   const d = new Dispatcher(ctx, "example");
 *   await d.compile("fill", "@group(0) @binding(0) var<uniform> p: vec4<u32>;" +
 *     "@group(0) @binding(1) var<storage, read_write> y: array<u32>;" +
 *     "@compute @workgroup_size(1) fn main() { y[0] = p.x; }");
 *   d.dispose();
 * }
 * ```
 */
export class Dispatcher {
  readonly ctx: GpuContext;
  readonly #name: string;
  readonly #pipelines = new Map<string, GPUComputePipeline>();
  readonly #groups = new Map<string, { bindGroup: GPUBindGroup; uniform?: GPUBuffer }>();
  readonly #ids = new WeakMap<GPUBuffer, number>();
  #nextId = 1;
  readonly #owned: GPUBuffer[] = [];
  #placeholder?: GPUBuffer;

  /** `name` prefixes the labels of what this layer creates and its error messages. */
  constructor(ctx: GpuContext, name: string) {
    this.ctx = ctx;
    this.#name = name;
  }

  /** Compiles (once, inside an error scope) the pipeline `key` from WGSL `code` and override constants. */
  async compile(key: string, code: string, constants?: Record<string, number>): Promise<GPUComputePipeline> {
    let p = this.#pipelines.get(key);
    if (!p) {
      p = await getPipeline(this.ctx, key, code, constants);
      this.#pipelines.set(key, p);
    }
    return p;
  }

  /** Whether pipeline `key` is compiled. */
  has(key: string): boolean {
    return this.#pipelines.has(key);
  }

  /** The compiled pipeline `key`; `hint` says how to compile it when it is missing. */
  pipeline(key: string, hint = ""): GPUComputePipeline {
    const p = this.#pipelines.get(key);
    if (!p) throw new Error(`${this.#name}: kernel "${key}" is not compiled${hint ? `; ${hint}` : ""}`);
    return p;
  }

  /**
   * The pipeline `key`, compiled synchronously from `code()` and `constants` when it is not compiled yet:
   * for launchers whose callers may record without preparing (a WGSL error then surfaces as a device
   * validation error rather than an exception, so prefer {@link compile} up front).
   */
  pipelineOrCompile(key: string, code: () => string, constants?: Record<string, number>): GPUComputePipeline {
    let p = this.#pipelines.get(key);
    if (!p) {
      const device = this.ctx.device;
      p = device.createComputePipeline({
        label: key,
        layout: "auto",
        compute: {
          module: device.createShaderModule({ label: key, code: code() }),
          entryPoint: "main",
          constants,
        },
      });
      this.#pipelines.set(key, p);
    }
    return p;
  }

  /** Keeps `buffer` to be destroyed by {@link dispose}; returns it. */
  own(buffer: GPUBuffer): GPUBuffer {
    this.#owned.push(buffer);
    return buffer;
  }

  /** A 16-byte buffer bound where a variant's kernel never reads (WebGPU binds every declared binding). */
  unused(): GPUBuffer {
    if (!this.#placeholder) {
      this.#placeholder = this.own(createStorageBuffer(this.ctx, `${this.#name}:unused-binding`, 16));
    }
    return this.#placeholder;
  }

  /** Throws unless every written view's buffer differs from every other view's (no writable aliasing). */
  distinct(op: string, written: GpuView[], read: GpuView[]): void {
    const all = [...written, ...read];
    for (const w of written) {
      if (!(w.buffer.usage & GPUBufferUsage.STORAGE)) {
        throw new TypeError(`${op}: buffer "${w.buffer.label}" lacks STORAGE usage`);
      }
      if (all.filter((v) => v.buffer === w.buffer).length > 1) {
        throw new TypeError(
          `${op}: buffer "${w.buffer.label}" is written and bound twice; use separate buffers (WebGPU forbids ` +
            `aliasing a writable binding)`,
        );
      }
    }
  }

  /**
   * Binds `view.buffer` from its offset rounded down to the storage alignment, to the buffer's end (or
   * `exact`: to `endWord`), capped by the binding limit; checks words up to `endWord` are inside.
   * `shift` is the view's offset within the binding.
   */
  bind(op: string, name: string, view: GpuView, endWord: number, exact = false): BoundView {
    const { buffer } = view;
    if (!(buffer.usage & GPUBufferUsage.STORAGE)) {
      throw new TypeError(`${op}: ${name} buffer "${buffer.label}" lacks STORAGE usage`);
    }
    const offset = offsetOf(view);
    checkInt(op, `${name}.offset`, offset, 0, 2 ** 32);
    if (view.stride !== undefined) checkInt(op, `${name}.stride`, view.stride, 0, 2 ** 32);
    if (endWord * 4 > buffer.size) {
      throw new RangeError(
        `${op}: ${name} needs ${endWord * 4} bytes of buffer "${buffer.label}", which holds ${buffer.size}`,
      );
    }
    const align = this.ctx.limits.minStorageBufferOffsetAlignment;
    const base = Math.floor((offset * 4) / align) * align;
    const limit = Math.floor(this.ctx.limits.maxStorageBufferBindingSize / 4) * 4;
    const size = Math.min(exact ? endWord * 4 - base : buffer.size - base, limit);
    if (endWord * 4 - base > size) {
      throw new RangeError(
        `${op}: ${name} spans ${endWord * 4 - base} bytes of one binding, more than the adapter's ` +
          `maxStorageBufferBindingSize ${limit}`,
      );
    }
    return { binding: { buffer, offset: base, size }, shift: offset - base / 4 };
  }

  /** Binds a (rows, width) view (see {@link bind}). */
  bindRows(op: string, name: string, view: GpuView, rows: number, width: number, exact = false): BoundView {
    return this.bind(op, name, view, endOf(view, rows, width), exact);
  }

  /**
   * Records one dispatch of pipeline `key` with a cached bind group: a params uniform at binding 0
   * (omitted when `params` is null) and then `resources` at bindings 1, 2, … (0, 1, … without params).
   */
  launch(
    pass: GPUComputePassEncoder,
    key: string,
    params: Uint32Array | null,
    resources: GPUBufferBinding[],
    x: number,
    y = 1,
    z = 1,
  ): void {
    const pipeline = this.pipeline(key);
    const id = `${key}|${params?.join(",") ?? "-"}|${
      resources.map((r) => `${this.#id(r.buffer)}@${r.offset ?? 0}+${r.size ?? "all"}`).join(";")
    }`;
    let group = this.#groups.get(id);
    if (!group) {
      // Dropped groups' uniforms are not destroyed: an encoder being recorded may still use them.
      if (this.#groups.size >= MAX_GROUPS) this.#groups.clear();
      const kernel = key.split(":")[0];
      const uniform = params ? createUniformBuffer(this.ctx, `${kernel}:params`, params) : undefined;
      const entries: GPUBindGroupEntry[] = uniform ? [{ binding: 0, resource: { buffer: uniform } }] : [];
      const first = entries.length;
      resources.forEach((r, i) => entries.push({ binding: first + i, resource: r }));
      const bindGroup = this.ctx.device.createBindGroup({
        label: `${kernel}:bind#${this.#groups.size}`,
        layout: pipeline.getBindGroupLayout(0),
        entries,
      });
      this.#groups.set(id, group = { bindGroup, uniform });
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group.bindGroup);
    pass.dispatchWorkgroups(x, y, z);
  }

  /** Bind groups cached so far (each with its params uniform); constant in steady state. */
  get cachedBindGroups(): number {
    return this.#groups.size;
  }

  /** Forgets cached bind groups (after the caller frees buffers they reference). */
  clearCache(): void {
    this.#groups.clear();
  }

  /** Frees the params uniforms and owned buffers (never the caller's buffers). */
  dispose(): void {
    for (const g of this.#groups.values()) g.uniform?.destroy();
    this.#groups.clear();
    this.#placeholder = undefined;
    for (const b of this.#owned.splice(0)) b.destroy();
  }

  #id(buffer: GPUBuffer): number {
    let id = this.#ids.get(buffer);
    if (id === undefined) this.#ids.set(buffer, id = this.#nextId++);
    return id;
  }
}
