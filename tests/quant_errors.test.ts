// Bad input is refused with a RangeError/TypeError that names what was expected and what was found.

import assert from "node:assert/strict";
import { residualInit } from "../src/quant/residual_init.ts";
import { meanAbsFit, svidFit, svidScales } from "../src/quant/svid.ts";
import { dbllmInit, rtn2 } from "../src/quant/rtn.ts";
import { coupledBackward, coupledForward, standardForward } from "../src/quant/coupled.ts";
import { quantizeLayer, type QuantizeOptions } from "../src/quant/quantize.ts";
import { relativeError } from "../src/quant/matrix.ts";

const shape = { out: 3, in: 4 };
const w = Float32Array.from({ length: 12 }, (_, i) => i - 5.5);

function throwsNaming(fn: () => unknown, type: typeof RangeError | typeof TypeError, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(
      e instanceof type,
      `expected ${type.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`,
    );
    assert.match((e as Error).message, /expected/);
    assert.match((e as Error).message, /found/);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

Deno.test("wrong matrix length: RangeError naming both sizes", () => {
  const short = new Float32Array(11);
  for (
    const fn of [
      () => residualInit(short, shape),
      () => svidFit(short, shape),
      () => meanAbsFit(short, shape),
      () => rtn2(short, shape),
      () => dbllmInit(short, shape),
      () => quantizeLayer(short, shape, { method: "ptq" }),
    ]
  ) throwsNaming(fn, RangeError, /12 values, found 11/);
});

Deno.test("k outside 1..4: RangeError; non-integer k: TypeError", () => {
  throwsNaming(() => residualInit(w, shape, { k: 0 }), RangeError, /1\.\.4.*found 0/);
  throwsNaming(() => residualInit(w, shape, { k: 5 }), RangeError, /1\.\.4.*found 5/);
  throwsNaming(() => residualInit(w, shape, { k: 1.5 }), TypeError, /found 1\.5/);
  const scales = { out: 3, in: 4, k: 5, g: new Float32Array(15), h: new Float32Array(20) };
  throwsNaming(() => coupledForward(w, scales), RangeError, /found 5/);
});

Deno.test("NaN or Infinity in W: RangeError naming the entry", () => {
  const bad = w.slice();
  bad[6] = NaN;
  for (
    const fn of [
      () => residualInit(bad, shape),
      () => svidScales(bad, shape),
      () => rtn2(bad, shape),
      () => quantizeLayer(bad, shape, { method: "dbllm" }),
      () => coupledForward(bad, { ...shape, k: 1, g: new Float32Array(3), h: new Float32Array(4) }),
    ]
  ) throwsNaming(fn, RangeError, /finite.*found NaN at \[1, 2\]/);
  bad[6] = Infinity;
  throwsNaming(() => residualInit(bad, shape), RangeError, /found Infinity at \[1, 2\]/);
});

Deno.test("wrong types and shapes: TypeError / RangeError", () => {
  throwsNaming(
    () => residualInit([1, 2, 3] as unknown as Float32Array, { out: 1, in: 3 }),
    TypeError,
    /Float32Array, found Array/,
  );
  throwsNaming(() => residualInit(w, { out: 0, in: 12 }), RangeError, /out .*found 0/);
  throwsNaming(() => residualInit(w, { out: 3, in: 4.5 }), RangeError, /in .*found 4\.5/);
  throwsNaming(() => residualInit(w, shape, { rounds: -1 }), RangeError, /rounds.*found -1/);
  throwsNaming(() => residualInit(w, shape, { sIn: new Float32Array(3) }), RangeError, /4 values, found 3/);
  throwsNaming(
    () => residualInit(w, shape, { aIn: -1, sIn: new Float32Array(4).fill(1) }),
    RangeError,
    /found -1/,
  );
  throwsNaming(() => svidScales(w, shape, { init: [1, 2] }), RangeError, /4 values, found 2/);
  throwsNaming(() => svidScales(w, shape, { maxIterations: 0 }), RangeError, /maxIterations.*found 0/);
  throwsNaming(() => dbllmInit(w, shape, { scale: "max" as "mse" }), TypeError, /found "max"/);
  throwsNaming(
    () => quantizeLayer(w, shape, { method: "gptq" } as unknown as QuantizeOptions),
    TypeError,
    /"ptq", "rtn2" or "dbllm", found "gptq"/,
  );
  const scales = { ...shape, k: 2, g: new Float32Array(6), h: new Float32Array(7) };
  throwsNaming(() => coupledForward(w, scales), RangeError, /h .*8 values, found 7/);
  const good = { ...shape, k: 2, g: new Float32Array(6), h: new Float32Array(8) };
  throwsNaming(
    () => coupledBackward(w, { ...good, signs: new Int8Array(23) }),
    RangeError,
    /24 signs, found 23/,
  );
  throwsNaming(() => standardForward(w, good), RangeError, /24 values, found 12/);
  const layer = rtn2(w, shape);
  throwsNaming(() => relativeError(new Float32Array(5), layer), RangeError, /12 values, found 5/);
});
