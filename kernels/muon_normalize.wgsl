// muon_normalize: x ← x / (‖x‖_F + 1e-7) over a contiguous scratch of n elements, ‖x‖_F² being the sum of
// the `parts` partial sums muon_momentum wrote. Every workgroup sums the partials itself, in the same
// order, so all of them scale by the same value without another dispatch (parts ≤ a few hundred).
//
// Bindings (group 0):
//   0 params   uniform  NormalizeParams (below)
//   1 partial  storage  array<f32>        partial[0 .. parts)
//   2 x        storage  array<f32>, rw    x[i], i < n
// Geometry: WG threads (override, a power of two), `groups` workgroups (dispatch (groups)), a
// grid-stride loop over the n elements. Batches: workgroup (x, 0, z) normalizes matrix z (dispatch
// (groups, 1, count)): its partials at z · parts, its elements at z · n.

struct NormalizeParams {
  n: u32,
  parts: u32,
  groups: u32,
  _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: NormalizeParams;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var ss = 0.0;
  for (var i = lid; i < params.parts; i += WG) {
    ss += partial[wid.z * params.parts + i];
  }
  red[lid] = ss;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red[lid] += red[lid + s];
    }
  }
  workgroupBarrier();
  let scale = 1.0 / (sqrt(red[0]) + 1e-7);
  let x0 = wid.z * params.n;
  for (var i = wid.x * WG + lid; i < params.n; i += params.groups * WG) {
    x[x0 + i] = x[x0 + i] * scale;
  }
}
