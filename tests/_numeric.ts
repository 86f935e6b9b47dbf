// Numeric comparisons shared by the tests.

import assert from "node:assert/strict";

/**
 * max |got − want| / max |want|: the error relative to the output's scale (elementwise ratios blow up near
 * 0). A NaN anywhere counts as an infinite error; the lengths must match.
 */
export function relativeError(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  let err = 0, mag = 1e-30;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    err = e <= err ? err : e === e ? e : Infinity;
    mag = Math.max(mag, Math.abs(want[i]));
  }
  return err / mag;
}

/** max |a − b| over equally long arrays. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
