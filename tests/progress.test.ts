// Progress (src/util/progress.ts) with a fake clock: the bar's redraws on a terminal, the log lines
// elsewhere (none for quick work, one every 30 s, a last one at the end), and nothing when off.

import assert from "node:assert/strict";
import { LINE_EVERY_MS, Progress, type ProgressIo } from "../src/util/progress.ts";

function fakeIo(): ProgressIo & { out: string[]; t: number } {
  const io = { out: [] as string[], t: 0, write: (s: string) => io.out.push(s), now: () => io.t };
  return io;
}

Deno.test("progress lines: none for quick work, one every 30 s with rate and ETA, a last line at the end", () => {
  const quick = fakeIo();
  const q = new Progress("train", 10, "step", "lines", quick);
  for (let i = 0; i < 10; i++) {
    quick.t += 1000;
    q.tick();
  }
  q.finish();
  assert.deepEqual(quick.out, [], "10 s of work writes nothing");

  const io = fakeIo();
  const p = new Progress("train", 100, "step", "lines", io);
  for (let i = 0; i < 100; i++) {
    io.t += 1000; // one step a second
    p.tick();
  }
  p.finish();
  // Lines at 30, 60 and 90 s, then the last one.
  assert.equal(io.out.length, 4, io.out.join(""));
  assert.ok(io.out.every((l) => l.endsWith("\n") && !l.includes("\r")));
  assert.match(io.out[0], /^train \[#+-+\] 30\/100 1\.00 step\/s ETA 1m10s\n$/);
  assert.match(io.out[2], /90\/100 .* ETA 10s/);
  assert.match(io.out[3], /100\/100 .* done in 1m40s\n$/);
  assert.equal(LINE_EVERY_MS, 30_000);
});

Deno.test("progress bar redraws in place after a second; off writes nothing", () => {
  const io = fakeIo();
  const p = new Progress("eval", 20, "win", "bar", io);
  for (let i = 0; i < 20; i++) {
    io.t += 200;
    p.tick(1, "ppl 5.0");
  }
  p.finish();
  // Ticks every 200 ms; the first second draws nothing, then every tick (≥ 100 ms apart): 16, and the clear.
  assert.equal(io.out.length, 17, `${io.out.length} writes`);
  assert.ok(io.out.slice(0, -1).every((l) => l.startsWith("\r") && l.includes("ppl 5.0")));
  assert.equal(io.out.at(-1), "\r\x1b[K", "finish clears the line");

  const off = fakeIo();
  const o = new Progress("eval", 5, "win", "off", off);
  for (let i = 0; i < 5; i++) {
    off.t += 60_000;
    o.tick();
  }
  o.finish();
  assert.deepEqual(off.out, []);
});
