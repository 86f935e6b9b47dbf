// Training windows: the unshifted grid, the seeded order per epoch, and the shifted grids of later epochs.

import assert from "node:assert/strict";
import { WindowSet } from "../src/train/data.ts";

// Two streams with distinct token ranges, so every window can be traced back to where it was cut.
const a = Array.from({ length: 23 }, (_, i) => (i === 0 ? 1 : 100 + i)); // BOS, 101..122
const b = Array.from({ length: 11 }, (_, i) => (i === 0 ? 1 : 200 + i)); // BOS, 201..210
const streams = [{ name: "a", ids: a }, { name: "b", ids: b }];

Deno.test("WindowSet: non-overlapping windows per stream, remainders dropped, and refused when too short", () => {
  const w = WindowSet.fromStreams(streams, 5);
  assert.deepEqual(w.count, 4 + 2);
  assert.deepEqual(Array.from(w.window(0)), a.slice(0, 5));
  assert.deepEqual(Array.from(w.window(3)), a.slice(15, 20));
  assert.deepEqual(Array.from(w.window(4)), b.slice(0, 5));
  assert.throws(() => WindowSet.fromStreams([{ name: "tiny", ids: [1, 2] }], 5), /tiny \(2 tokens\)/);
  assert.throws(() => WindowSet.fromStreams(streams, 1), /window length ≥ 2/);
});

Deno.test("WindowSet: every epoch reads each window once, and a step's batch depends on (seed, step) alone", () => {
  const w = WindowSet.fromStreams(streams, 5);
  const seen = new Set<string>();
  for (let s = 0; s < 3; s++) for (const win of w.batch(7, s, 2)) seen.add(win.join(","));
  assert.deepEqual(seen.size, 6); // steps 0..2 × 2 = one epoch of 6 distinct windows
  assert.deepEqual(w.batch(7, 5, 2).map((x) => Array.from(x)), w.batch(7, 5, 2).map((x) => Array.from(x)));
  assert.notDeepEqual(w.batch(7, 0, 6).map((x) => x.join()), w.batch(8, 0, 6).map((x) => x.join()));
});

Deno.test("WindowSet shift: epoch 0 as unshifted; later epochs cut the same streams at a seeded offset, wrapping", () => {
  const plain = WindowSet.fromStreams(streams, 5);
  const shifted = WindowSet.fromStreams(streams, 5, { shift: true });
  assert.deepEqual(shifted.count, plain.count);
  // Epoch 0 (steps 0..2 at batch 2) is identical with and without shift.
  for (let s = 0; s < 3; s++) {
    assert.deepEqual(shifted.batch(3, s, 2).map((x) => x.join()), plain.batch(3, s, 2).map((x) => x.join()));
  }
  let offsetsSeen = 0;
  for (let epoch = 1; epoch < 6; epoch++) {
    const offset = shifted.epochOffset(3, epoch);
    assert.ok(offset >= 0 && offset < 5, `offset ${offset} outside [0, 5)`);
    if (offset !== 0) offsetsSeen++;
    const windows = shifted.batch(3, epoch, 6); // (6) at batch 6, step e is epoch e
    const cut = (ids: number[], start: number) =>
      Array.from({ length: 5 }, (_, t) => ids[(start + t) % ids.length]);
    const expected = new Set([
      ...[0, 1, 2, 3].map((j) => cut(a, offset + 5 * j).join()),
      ...[0, 1].map((j) => cut(b, offset + 5 * j).join()),
    ]);
    assert.deepEqual(new Set(windows.map((x) => x.join())), expected);
  }
  assert.ok(offsetsSeen >= 3, "later epochs should mostly be shifted");
  assert.deepEqual(plain.epochOffset(3, 4), 0);
});

Deno.test("WindowSet noise: epoch 0 untouched; later epochs replace tokens at the rate asked, from the text, reproducibly", () => {
  // One long stream of distinct ids, so a replaced position is visible and its source is the pool.
  const ids = Array.from({ length: 4001 }, (_, i) => (i === 0 ? 1 : 1000 + i));
  const plain = WindowSet.fromStreams([{ name: "long", ids }], 40);
  const noisy = WindowSet.fromStreams([{ name: "long", ids }], 40, { noise: 0.2 });
  const perEpoch = plain.count / 4; // steps of batch 4 in one epoch: 25
  for (let s = 0; s < perEpoch; s++) {
    assert.deepEqual(noisy.batch(5, s, 4).map((x) => x.join()), plain.batch(5, s, 4).map((x) => x.join()));
  }
  const pool = new Set(plain.tokens);
  let changed = 0, positions = 0;
  for (let s = perEpoch; s < 3 * perEpoch; s++) {
    const clean = plain.batch(5, s, 4), dirty = noisy.batch(5, s, 4);
    assert.deepEqual(dirty.map((x) => x.join()), noisy.batch(5, s, 4).map((x) => x.join())); // pure
    // The same windows as written (a label weight's targets): the noisy set's clean span is the plain one.
    assert.deepEqual(
      noisy.span(5, 4 * s, 4, { clean: true }).map((x) => x.join()),
      clean.map((x) => x.join()),
    );
    for (let j = 0; j < 4; j++) {
      assert.equal(dirty[j][0], clean[j][0], "the first token is never replaced");
      for (let t = 1; t < 40; t++) {
        positions++;
        if (dirty[j][t] !== clean[j][t]) {
          changed++;
          assert.ok(pool.has(dirty[j][t]), `token ${dirty[j][t]} is not from the text`);
        }
      }
    }
  }
  // 3,900 positions at p = 0.2 (a draw may pick the same token back: 1 in 4,000): 780 ± 3σ (75).
  assert.ok(Math.abs(changed / positions - 0.2) < 0.02, `replaced ${changed} of ${positions}`);
  assert.notDeepEqual(
    noisy.batch(5, perEpoch, 4).map((x) => x.join()),
    noisy.batch(6, perEpoch, 4).map((x) => x.join()),
  );
  assert.throws(
    () => WindowSet.fromStreams(streams, 5, { noise: 0.7 }),
    /token noise probability in \[0, 0.5\], found 0.7/,
  );
  assert.throws(() => WindowSet.fromStreams(streams, 5, { noise: NaN }), /found NaN/);
});
