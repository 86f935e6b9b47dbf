// Worker threads for the WebAssembly kernels: every worker instantiates the shared-memory build of the module
// on the one shared WebAssembly.Memory, and a product's rows are split among the workers and the calling
// thread. Jobs go through a small SharedArrayBuffer (no messages): the caller writes the function and its
// arguments, bumps a generation counter, wakes the workers, runs its own share, then blocks in Atomics.wait
// until all are done. Uses node:worker_threads (Deno and Node); workers are unref'd so that they never keep
// a process alive, and terminated by dispose().

/** Control block layout (Int32Array indices). */
const GEN = 0, FN = 1, NARGS = 2, SCRATCH_ARG = 3, ARGS = 4, MAX_ARGS = 20, PENDING = 30, FAILED = 31;
/** Per participant p (p = 1.. are workers): start, end, scratch delta at PART + 4p. */
const PART = 32;
const CONTROL_INTS = PART + 4 * 256;

/** Worker source (CommonJS, evaluated by node:worker_threads). */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
parentPort.once("message", ({ module, memory, control, id, names }) => {
  const ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const c = new Int32Array(control);
  parentPort.postMessage("ready");
  let seen = Atomics.load(c, ${GEN});
  for (;;) {
    Atomics.wait(c, ${GEN}, seen);
    seen = Atomics.load(c, ${GEN});
    const fn = c[${FN}];
    if (fn < 0) break;
    const base = ${PART} + 4 * id;
    const start = c[base], end = c[base + 1];
    try {
      if (start < end) {
        const args = [];
        for (let i = 0; i < c[${NARGS}]; i++) args.push(c[${ARGS} + i]);
        if (c[${SCRATCH_ARG}] >= 0) args[c[${SCRATCH_ARG}]] += c[base + 2];
        args.push(start, end);
        ex[names[fn]](...args);
      }
    } catch (e) {
      Atomics.store(c, ${FAILED}, 1);
    }
    if (Atomics.sub(c, ${PENDING}, 1) === 1) Atomics.notify(c, ${PENDING});
  }
});
`;

interface NodeWorker {
  once(event: "message" | "error", listener: (value: unknown) => void): void;
  postMessage(value: unknown): void;
  unref(): void;
  terminate(): Promise<number>;
}

/** A per-participant scratch argument: participant p gets args[arg] + p·stride. */
export interface ScratchArg {
  arg: number;
  stride: number;
}

/** Threads sharing one module memory; `size` counts the calling thread. */
export class WasmThreadPool {
  /** Participants: the workers and the calling thread. */
  readonly size: number;
  readonly #control: Int32Array;
  readonly #names: string[];
  #workers: NodeWorker[];

  private constructor(workers: NodeWorker[], control: Int32Array, names: string[]) {
    this.#workers = workers;
    this.#control = control;
    this.#names = names;
    this.size = workers.length + 1;
  }

  /**
   * Starts `workers` threads on `memory` (shared) with `module` (the shared-memory build), or returns
   * undefined where worker threads or shared memory are unavailable (browsers: no node:worker_threads).
   */
  static async create(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    workers: number,
    names: string[],
  ): Promise<WasmThreadPool | undefined> {
    if (workers < 1 || typeof SharedArrayBuffer !== "function") return undefined;
    let Worker: new (src: string, opts: { eval: boolean }) => NodeWorker;
    try {
      ({ Worker } = await import("node:worker_threads") as unknown as { Worker: typeof Worker });
    } catch {
      return undefined;
    }
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_INTS * 4));
    const started: NodeWorker[] = [];
    try {
      for (let id = 1; id <= workers; id++) {
        const w = new Worker(WORKER_SOURCE, { eval: true });
        started.push(w);
        await new Promise<void>((resolve, reject) => {
          w.once("message", () => resolve());
          w.once("error", (e) => reject(e));
          w.postMessage({ module, memory, control: control.buffer, id, names });
        });
        w.unref();
      }
    } catch {
      for (const w of started) w.terminate();
      return undefined;
    }
    return new WasmThreadPool(started, control, names);
  }

  /**
   * Runs `fn(...args, start, end)` over [0, total) split into `size` ranges (multiples of `grain`), the
   * first on the calling thread through `local`; returns when every range is done.
   */
  run(
    local: Record<string, unknown>,
    fn: string,
    args: number[],
    total: number,
    grain: number,
    scratch?: ScratchArg,
  ): void {
    const c = this.#control;
    const id = this.#names.indexOf(fn);
    if (id < 0 || args.length > MAX_ARGS) throw new RangeError(`WasmThreadPool: cannot run ${fn}`);
    const units = Math.ceil(total / grain);
    const per = Math.ceil(units / this.size);
    const range = (p: number): [number, number] => [
      Math.min(total, p * per * grain),
      Math.min(total, (p + 1) * per * grain),
    ];
    c[FN] = id;
    c[NARGS] = args.length;
    c[SCRATCH_ARG] = scratch ? scratch.arg : -1;
    for (let i = 0; i < args.length; i++) c[ARGS + i] = args[i];
    for (let p = 1; p < this.size; p++) {
      const [s, e] = range(p);
      c[PART + 4 * p] = s;
      c[PART + 4 * p + 1] = e;
      c[PART + 4 * p + 2] = scratch ? p * scratch.stride : 0;
    }
    Atomics.store(c, FAILED, 0);
    Atomics.store(c, PENDING, this.size - 1);
    Atomics.add(c, GEN, 1);
    Atomics.notify(c, GEN);
    const [s0, e0] = range(0);
    let error: unknown;
    try {
      if (s0 < e0) (local[fn] as (...a: number[]) => void)(...args, s0, e0);
    } catch (e) {
      error = e;
    }
    for (let v = Atomics.load(c, PENDING); v !== 0; v = Atomics.load(c, PENDING)) Atomics.wait(c, PENDING, v);
    if (error) throw error;
    if (Atomics.load(c, FAILED)) throw new Error(`WasmThreadPool: ${fn} failed in a worker`);
  }

  /** Stops the workers. */
  dispose(): void {
    if (this.#workers.length === 0) return;
    Atomics.store(this.#control, FN, -1);
    Atomics.add(this.#control, GEN, 1);
    Atomics.notify(this.#control, GEN);
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
  }
}
