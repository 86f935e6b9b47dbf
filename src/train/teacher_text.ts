// Text sampled from the full-precision teacher as an extra training source (data-free distillation as in
// LLM-QAT; METHOD.md §4 allows it). The teacher writes stories from BOS at temperature 1; a story ends
// where the teacher emits BOS or EOS (or the context fills), and the next one starts from BOS. The
// stream of stories is then cut into windows like any text, so the student is distilled on the
// distribution it is judged on without ever reading the held-out text.
//
// The stream is made of shards of TEACHER_SHARD_TOKENS tokens, each sampled from its own seed (mixed from
// the run's seed and the shard's index), so the shards can be sampled on several threads
// (teacher_text_worker.ts) and the stream is still a function of (seed, tokens) alone: the same on one
// core or sixteen, with workers or without.
//
// Dimension legend: V vocabulary, S window length.

import { BOS, EOS } from "../io/tokenizer.ts";
import { createKvCache, forwardChunk } from "../model/forward.ts";
import type { LlamaModel } from "../model/model.ts";
import { ParamTable } from "../model/params.ts";
import type { LlamaConfig } from "../model/config.ts";
import { Sampler } from "../eval/sampling.ts";

/** Tokens per shard: small enough to balance two to sixteen threads on the budgets we use (≥ 100K). */
export const TEACHER_SHARD_TOKENS = 25_000;

/** Options of {@link sampleTeacherTokens}. */
export interface TeacherTextOptions {
  /** Tokens to produce in all (BOS separators included). */
  tokens: number;
  /** Seed of the sampler (the same seed gives the same text). */
  seed: number;
  /** Sampling temperature (default 1: the teacher's own distribution). */
  temperature?: number;
  /** Tokens per shard (default {@link TEACHER_SHARD_TOKENS}); part of what defines the stream. */
  shardTokens?: number;
  /** Called as shards finish with the tokens produced so far. */
  onProgress?: (done: number, total: number) => void;
}

/** One shard of the stream: where it starts, how long it is, and its sampler's seed. */
export interface TeacherShard {
  index: number;
  start: number;
  tokens: number;
  seed: number;
}

/** The shards of a stream of `tokens` tokens sampled with `seed`. */
export function teacherShards(
  tokens: number,
  seed: number,
  shardTokens = TEACHER_SHARD_TOKENS,
): TeacherShard[] {
  if (!(Number.isInteger(shardTokens) && shardTokens >= 1)) {
    throw new RangeError(`teacherShards: expected shardTokens ≥ 1, found ${shardTokens}`);
  }
  const shards: TeacherShard[] = [];
  for (let start = 0, index = 0; start < tokens; start += shardTokens, index++) {
    const mixed = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x2545f491)) >>> 0;
    shards.push({ index, start, tokens: Math.min(shardTokens, tokens - start), seed: mixed });
  }
  return shards;
}

/**
 * Samples one shard: stories from BOS, each until the teacher emits BOS/EOS or the context fills, until
 * `shard.tokens` ids (BOS separators included) are written. Runs the CPU reference forward one token at a
 * time with a KV cache.
 */
export function sampleTeacherShard(teacher: LlamaModel, shard: TeacherShard, temperature = 1): Int32Array {
  const sampler = new Sampler({ temperature, seed: shard.seed });
  const seqLen = teacher.config.seqLen;
  const out = new Int32Array(shard.tokens);
  const cache = createKvCache(teacher, seqLen);
  let n = 0;
  while (n < out.length) {
    out[n++] = BOS;
    let pos = 0;
    let next = BOS;
    while (n < out.length && pos < seqLen - 1) {
      const { logits } = forwardChunk(teacher, [next], pos, cache, { lastLogitsOnly: true });
      pos++;
      next = sampler.sample(logits);
      if (next === BOS || next === EOS) break;
      out[n++] = next;
    }
  }
  return out;
}

function checkTeacher(teacher: LlamaModel, tokens: number): void {
  if (!(Number.isInteger(tokens) && tokens >= 1)) {
    throw new RangeError(`sampleTeacherTokens: expected tokens ≥ 1, found ${tokens}`);
  }
  if (teacher.quantized.size > 0) {
    throw new RangeError("sampleTeacherTokens: expected the full-precision teacher, found a quantized model");
  }
}

/**
 * Samples a token stream of `tokens` ids from `teacher` on this thread: stories separated by BOS, the first
 * starting with BOS. The definition of the stream; {@link sampleTeacherTokensParallel} gives the same ids.
 *
 * @example
 * ```ts
 * import { openModel } from "../io/load_model.ts";
 * import { sampleTeacherTokens } from "./teacher_text.ts";
 * const { model } = await openModel("../shared/data/stories260K.bin");
 * sampleTeacherTokens(model, { tokens: 64, seed: 1 }).length; // 64
 * ```
 */
export function sampleTeacherTokens(teacher: LlamaModel, options: TeacherTextOptions): Int32Array {
  checkTeacher(teacher, options.tokens);
  const out = new Int32Array(options.tokens);
  let done = 0;
  for (const shard of teacherShards(options.tokens, options.seed, options.shardTokens)) {
    out.set(sampleTeacherShard(teacher, shard, options.temperature ?? 1), shard.start);
    done += shard.tokens;
    options.onProgress?.(done, options.tokens);
  }
  return out;
}

/**
 * What a sampling worker is sent: first the teacher (config and float table, once per worker: a large
 * model's table is not copied per shard), then one shard at a time.
 */
export type TeacherWorkerMessage =
  | {
    kind: "teacher";
    config: LlamaConfig;
    entries: [string, { offset: number; shape: number[]; size: number }][];
    data: Float32Array;
    temperature: number;
  }
  | { kind: "shard"; shard: TeacherShard };

/** Rebuilds a worker's teacher from its first message (no quantized layers: the teacher is full precision). */
export function teacherFromMessage(m: Extract<TeacherWorkerMessage, { kind: "teacher" }>): LlamaModel {
  return { config: m.config, params: new ParamTable(new Map(m.entries), m.data), quantized: new Map() };
}

/** Threads to sample on: the machine's logical cores (at least 1). */
function defaultThreads(): number {
  const n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  return Math.max(1, Math.min(16, n ?? 1));
}

interface MessageWorker {
  onmessage: ((e: MessageEvent) => void) | null;
  onerror: ((e: Event) => void) | null;
  postMessage(value: unknown): void;
  terminate(): void;
}

/**
 * {@link sampleTeacherTokens} on `threads` module workers (default: the logical cores), each taking the next
 * shard as it finishes one: the same ids, in about 1/threads of the time. Where module workers are not
 * available (Node's library build, a worker that fails to start) it samples on this thread.
 */
export async function sampleTeacherTokensParallel(
  teacher: LlamaModel,
  options: TeacherTextOptions & {
    threads?: number;
    /** Throw where workers are unavailable or fail instead of sampling on this thread (tests). */
    requireWorkers?: boolean;
  },
): Promise<Int32Array> {
  checkTeacher(teacher, options.tokens);
  const shards = teacherShards(options.tokens, options.seed, options.shardTokens);
  const threads = Math.min(options.threads ?? defaultThreads(), shards.length);
  const WorkerCtor = (globalThis as { Worker?: new (url: string, o: { type: "module" }) => MessageWorker })
    .Worker;
  if (threads < 2 || WorkerCtor === undefined) {
    if (options.requireWorkers) throw new Error("sampleTeacherTokensParallel: no module workers here");
    return sampleTeacherTokens(teacher, options);
  }
  const out = new Int32Array(options.tokens);
  const entries = [...teacher.params.entries];
  const temperature = options.temperature ?? 1;
  let next = 0, done = 0;
  const workers: MessageWorker[] = [];
  try {
    await Promise.all(Array.from({ length: threads }, () =>
      new Promise<void>((resolve, reject) => {
        const w = new WorkerCtor(new URL("./teacher_text_worker.ts", import.meta.url).href, {
          type: "module",
        });
        workers.push(w);
        const send = () => {
          if (next >= shards.length) return resolve();
          const job: TeacherWorkerMessage = { kind: "shard", shard: shards[next++] };
          w.postMessage(job);
        };
        const model: TeacherWorkerMessage = {
          kind: "teacher",
          config: teacher.config,
          entries,
          data: teacher.params.data,
          temperature,
        };
        w.postMessage(model);
        w.onmessage = (e: MessageEvent) => {
          const { shard, ids, error } = e.data as { shard: TeacherShard; ids?: Int32Array; error?: string };
          if (error !== undefined || ids === undefined) return reject(new Error(error ?? "no ids"));
          out.set(ids, shard.start);
          done += shard.tokens;
          options.onProgress?.(done, options.tokens);
          send();
        };
        w.onerror = (e: Event) => {
          e.preventDefault();
          reject(new Error((e as ErrorEvent).message ?? "worker failed"));
        };
        send();
      })));
  } catch (err) {
    // A worker that cannot start or run (no module workers here): the same stream on this thread.
    for (const w of workers) w.terminate();
    if (options.requireWorkers) throw err;
    return sampleTeacherTokens(teacher, options);
  }
  for (const w of workers) w.terminate();
  return out;
}
