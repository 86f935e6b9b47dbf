// A module worker that samples shards of teacher text (teacher_text.ts): it receives the teacher's float
// table with each job and answers with the shard's ids (its buffer transferred).

import { sampleTeacherShard, teacherFromJob, type TeacherWorkerJob } from "./teacher_text.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(value: unknown, transfer?: Transferable[]): void;
};

scope.onmessage = (e: MessageEvent) => {
  const job = e.data as TeacherWorkerJob;
  try {
    const ids = sampleTeacherShard(teacherFromJob(job), job.shard, job.temperature);
    scope.postMessage({ shard: job.shard, ids }, [ids.buffer as ArrayBuffer]);
  } catch (err) {
    scope.postMessage({ shard: job.shard, error: err instanceof Error ? err.message : String(err) });
  }
};
