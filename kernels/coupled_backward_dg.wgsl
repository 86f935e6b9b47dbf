// coupled_backward_dg: row pass of the derivation backward (METHOD.md §2): the row-scale gradients
// dg_i[r] = Σ_c dWhat[r, c]·B_i[r, c]·h_i[c] for every path at once (the same for the coupled forward and
// the `standard` baseline). CPU reference: the dg of coupledBackward in src/quant/coupled.ts.
//
// Bindings (group 0):
//   0 params  uniform  DgParams (below)
//   1 dwh     storage  array<f32>        dWhat[r, c] = dwh[d_offset + r * d_stride + c]            (out, in)
//   2 planes  storage  array<u32>        B_i row r word w = planes[p_offset + (i * out + r) * p_stride + w]
//                                        (k, out, ceil(in / 32)), the layout of src/quant/bitpack.ts
//   3 h       storage  array<f32>        h_i[c] = h[h_offset + i * h_stride + c]                   (k, in)
//   4 dg      storage  array<f32>, rw    dg_i[r] = dg[dg_offset + i * dg_stride + r]               (k, out)
// params.accumulate: 1 adds into dg, 0 overwrites it.
// Geometry: one workgroup per row r = workgroup_id.x (dispatch (out)); WG threads (override, a power of
// two) stride over the columns with coalesced loads, each summing all k paths (a vec4), then a tree
// reduction of the vec4 partials in workgroup memory.

struct DgParams {
  rows: u32,
  cols: u32,
  k: u32,
  accumulate: u32,
  d_offset: u32,
  d_stride: u32,
  p_offset: u32,
  p_stride: u32,
  h_offset: u32,
  h_stride: u32,
  dg_offset: u32,
  dg_stride: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: DgParams;
@group(0) @binding(1) var<storage, read> dwh: array<f32>;
@group(0) @binding(2) var<storage, read> planes: array<u32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> dg: array<f32>;

var<workgroup> red: array<vec4<f32>, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wid.x;
  let k = params.k;
  let d0 = params.d_offset + r * params.d_stride;
  var s = vec4<f32>(0.0); // Σ_c dWhat·B_i·h_i over this thread's columns
  for (var c = lid; c < params.cols; c += WG) {
    let d = dwh[d0 + c];
    let word = c / 32u;
    let bit = c % 32u;
    for (var i = 0u; i < k; i++) {
      let b = (planes[params.p_offset + (i * params.rows + r) * params.p_stride + word] >> bit) & 1u;
      s[i] = fma(select(-d, d, b == 1u), h[params.h_offset + i * params.h_stride + c], s[i]);
    }
  }
  red[lid] = s;
  for (var half = WG / 2u; half > 0u; half >>= 1u) {
    workgroupBarrier();
    if (lid < half) {
      red[lid] += red[lid + half];
    }
  }
  workgroupBarrier();
  if (lid < k) {
    let idx = params.dg_offset + lid * params.dg_stride + r;
    let v = red[0][lid];
    if (params.accumulate != 0u) {
      dg[idx] += v;
    } else {
      dg[idx] = v;
    }
  }
}
