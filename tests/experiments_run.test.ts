// experiments/_run.ts: the scripts' shared parsing refuses an option given twice before a "--", and their
// pool of concurrent runs keeps the items' order and its bound.

import assert from "node:assert/strict";
import { repeatedOption, runPool } from "../experiments/_run.ts";

Deno.test("repeatedOption finds the first long option named twice before a --, with or without =", () => {
  assert.equal(repeatedOption(["--seed", "1", "--json", "--seed=2"]), "seed");
  assert.equal(repeatedOption(["--a=1", "--b", "--a", "2", "--b"]), "a");
  assert.equal(repeatedOption(["--seed", "1", "--", "--seed", "2"]), undefined);
  assert.equal(repeatedOption(["m.rabit", "-h", "--json"]), undefined);
  assert.equal(repeatedOption([]), undefined);
});

Deno.test("runPool runs every item at most `jobs` at once and returns the results in the items' order", async () => {
  for (const jobs of [1, 2, 3, 10]) {
    let running = 0, most = 0;
    const out = await runPool([30, 5, 20, 1, 10], jobs, async (ms) => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return ms * 2;
    });
    assert.deepEqual(out, [60, 10, 40, 2, 20]);
    assert.equal(most, Math.min(jobs, 5), `jobs ${jobs}`);
  }
  assert.deepEqual(await runPool([], 2, () => Promise.resolve(1)), []);
});
