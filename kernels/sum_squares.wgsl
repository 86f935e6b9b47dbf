// sum_squares: partial sums of x² over a flat range, one per workgroup (the host adds them in f64): the
// global gradient norm that clipping needs.
//
// Bindings (group 0):
//   0 params   uniform  SumSquaresParams (below)
//   1 x        storage  array<f32>        x[x_offset + i], i < n
//   2 partial  storage  array<f32>, rw    partial[wg], one per workgroup of the 2-D grid
// Geometry: WG threads (override, power of two) per workgroup, each summing CHUNK = WG·ITEMS consecutive
// elements (coalesced: thread t reads t, t + WG, …); a shared-memory tree reduction. Dispatch
// (gx, gy) with gx·gy ≥ ceil(n / CHUNK); workgroup index wg = gy_id·gx + gx_id.

struct SumSquaresParams {
  n: u32,
  x_offset: u32,
  groups_x: u32,
  items: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: SumSquaresParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let wg = wid.y * params.groups_x + wid.x;
  let start = wg * WG * params.items;
  var s = 0.0;
  for (var j = 0u; j < params.items; j++) {
    let i = start + j * WG + lid;
    if (i < params.n) {
      let v = x[params.x_offset + i];
      s = fma(v, v, s);
    }
  }
  red[lid] = s;
  for (var step = WG / 2u; step > 0u; step >>= 1u) {
    workgroupBarrier();
    if (lid < step) {
      red[lid] += red[lid + step];
    }
  }
  if (lid == 0u) {
    partial[wg] = red[0];
  }
}
