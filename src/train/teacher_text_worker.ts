// A module worker that samples shards of teacher text (teacher_text.ts): its first message is the teacher's
// float table, then each message a shard, answered with the shard's ids (their buffer transferred).

import type { LlamaModel } from "../model/model.ts";
import { sampleTeacherShard, teacherFromMessage, type TeacherWorkerMessage } from "./teacher_text.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(value: unknown, transfer?: Transferable[]): void;
};

let teacher: LlamaModel | undefined;
let temperature = 1;

scope.onmessage = (e: MessageEvent) => {
  const m = e.data as TeacherWorkerMessage;
  if (m.kind === "teacher") {
    teacher = teacherFromMessage(m);
    temperature = m.temperature;
    return;
  }
  try {
    if (!teacher) throw new Error("teacher text worker: a shard arrived before the teacher");
    const ids = sampleTeacherShard(teacher, m.shard, temperature);
    scope.postMessage({ shard: m.shard, ids }, [ids.buffer as ArrayBuffer]);
  } catch (err) {
    scope.postMessage({ shard: m.shard, error: err instanceof Error ? err.message : String(err) });
  }
};
