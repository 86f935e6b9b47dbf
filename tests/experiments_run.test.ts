// experiments/_run.ts: the scripts' shared parsing refuses an option given twice before a "--".

import assert from "node:assert/strict";
import { repeatedOption } from "../experiments/_run.ts";

Deno.test("repeatedOption finds the first long option named twice before a --, with or without =", () => {
  assert.equal(repeatedOption(["--seed", "1", "--json", "--seed=2"]), "seed");
  assert.equal(repeatedOption(["--a=1", "--b", "--a", "2", "--b"]), "a");
  assert.equal(repeatedOption(["--seed", "1", "--", "--seed", "2"]), undefined);
  assert.equal(repeatedOption(["m.rabit", "-h", "--json"]), undefined);
  assert.equal(repeatedOption([]), undefined);
});
