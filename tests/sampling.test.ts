// Token choice: greedy, temperature and nucleus sampling.

import assert from "node:assert/strict";
import { argmax, Sampler } from "../src/eval/sampling.ts";

Deno.test("temperature 0 is argmax (first on ties)", () => {
  const s = new Sampler({ temperature: 0 });
  assert.equal(s.sample(new Float32Array([0.1, 3, 3, -1])), 1);
  assert.equal(argmax(new Float32Array([5])), 0);
});

Deno.test("sampling follows the softmax distribution", () => {
  const logits = new Float32Array([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  const s = new Sampler({ temperature: 1, seed: 3 });
  const counts = [0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[s.sample(logits)]++;
  assert.ok(Math.abs(counts[0] / 20000 - 0.5) < 0.02, `${counts}`);
  assert.ok(Math.abs(counts[2] / 20000 - 0.2) < 0.02, `${counts}`);
});

Deno.test("top-p keeps only the nucleus", () => {
  const logits = new Float32Array([Math.log(0.6), Math.log(0.25), Math.log(0.1), Math.log(0.05)]);
  const s = new Sampler({ temperature: 1, topP: 0.8, seed: 9 });
  const seen = new Set<number>();
  for (let i = 0; i < 5000; i++) seen.add(s.sample(logits));
  assert.deepEqual([...seen].sort(), [0, 1]); // 0.6 + 0.25 > 0.8
});

Deno.test("bad sampling options are refused", () => {
  assert.throws(() => new Sampler({ temperature: -1 }), /Temperature must be a finite number ≥ 0, found -1/);
  assert.throws(() => new Sampler({ topP: 0 }), /top-p must be in \(0, 1\], found 0/);
});
