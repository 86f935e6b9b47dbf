// Text sampled from the teacher as extra training data, and token streams cut into windows.

import assert from "node:assert/strict";
import {
  sampleTeacherTokens,
  sampleTeacherTokensParallel,
  teacherShards,
} from "../src/train/teacher_text.ts";
import { WindowSet } from "../src/train/data.ts";
import { BOS, EOS } from "../src/io/tokenizer.ts";
import { randomModel, tinyConfig } from "./_data.ts";

Deno.test("teacher samples: seeded, BOS-separated stories of the exact length, no EOS inside", () => {
  const teacher = randomModel(tinyConfig(), 4);
  const a = sampleTeacherTokens(teacher, { tokens: 300, seed: 7 });
  const b = sampleTeacherTokens(teacher, { tokens: 300, seed: 7 });
  const c = sampleTeacherTokens(teacher, { tokens: 300, seed: 8 });
  assert.equal(a.length, 300);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.equal(a[0], BOS);
  assert.ok(!a.includes(EOS));
  assert.ok(a.every((id) => id >= 0 && id < tinyConfig().vocabSize));
  // A story never runs past the context: at most seqLen tokens between BOS separators.
  let run = 0;
  for (const id of a) {
    run = id === BOS ? 1 : run + 1;
    assert.ok(run <= tinyConfig().seqLen);
  }
  assert.throws(() => sampleTeacherTokens(teacher, { tokens: 0, seed: 1 }), /expected tokens ≥ 1/);
});

Deno.test("WindowSet.fromStreams: whole windows of each stream in order, remainders dropped", () => {
  const w = WindowSet.fromStreams([
    { name: "a", ids: [1, 2, 3, 4, 5] },
    { name: "b", ids: [1, 9] },
    { name: "c", ids: [1, 7, 8] },
  ], 2);
  assert.equal(w.count, 4);
  assert.deepEqual([...w.tokens], [1, 2, 3, 4, 1, 9, 1, 7]);
  assert.throws(() => WindowSet.fromStreams([{ name: "x", ids: [1] }], 2), /x \(1 tokens\)/);
});

Deno.test("teacher samples on worker threads equal the single-thread stream, shard for shard", async () => {
  const teacher = randomModel(tinyConfig(), 4);
  const options = { tokens: 700, seed: 3, shardTokens: 150 };
  const serial = sampleTeacherTokens(teacher, options);
  const progress: number[] = [];
  const parallel = await sampleTeacherTokensParallel(teacher, {
    ...options,
    threads: 2,
    requireWorkers: true,
    onProgress: (done) => progress.push(done),
  });
  assert.deepEqual(parallel, serial);
  assert.equal(progress.length, 5); // one call per shard: 150 × 4 + 100
  assert.equal(Math.max(...progress), 700);
  // Each shard is a stream of stories of its own: it starts with BOS.
  for (const s of teacherShards(700, 3, 150)) assert.equal(serial[s.start], BOS);
  assert.notDeepEqual(sampleTeacherTokens(teacher, { ...options, shardTokens: 700 }), serial);
  assert.throws(() => teacherShards(10, 1, 0), /shardTokens ≥ 1/);
});
