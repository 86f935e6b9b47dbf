// coupled_backward_dh: second pass of the column reductions of the derivation backward: adds up the
// per-row-block partial sums that coupled_backward (or coupled_backward_serial) wrote,
// dh_i[c] = Σ_b sums[b, i, c] (METHOD.md §2; CPU reference: the dh of coupledBackward in
// src/quant/coupled.ts). WGSL has no float atomics, so the column sums are split over row blocks and
// finished here. The serial family also finishes its row sums with it: dg_i[r] = Σ_v sums[v, i, r] over
// the plane words v (then "in" below reads "out", and the blocks are the words).
//
// Bindings (group 0):
//   0 params  uniform  DhParams (below)
//   1 sums    storage  array<f32>        sums[s_offset + (b * k + i) * s_stride + c]   (blocks, k, in)
//   2 dh      storage  array<f32>, rw    dh_i[c] = dh[dh_offset + i * dh_stride + c]   (k, in)
// params.accumulate: 1 adds into dh, 0 overwrites it.
// Geometry: one thread per (path, column), WG (override) columns per workgroup, summing the blocks in
// order with coalesced loads. Dispatch (ceil(in / WG), k).

struct DhParams {
  cols: u32,
  k: u32,
  blocks: u32,
  accumulate: u32,
  s_offset: u32,
  s_stride: u32,
  dh_offset: u32,
  dh_stride: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: DhParams;
@group(0) @binding(1) var<storage, read> sums: array<f32>;
@group(0) @binding(2) var<storage, read_write> dh: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x * WG + lid;
  let i = wid.y;
  if (c >= params.cols) {
    return;
  }
  var s = 0.0;
  for (var b = 0u; b < params.blocks; b++) {
    s += sums[params.s_offset + (b * params.k + i) * params.s_stride + c];
  }
  let idx = params.dh_offset + i * params.dh_stride + c;
  if (params.accumulate != 0u) {
    dh[idx] += s;
  } else {
    dh[idx] = s;
  }
}
