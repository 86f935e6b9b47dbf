// rmsnorm_backward: the input gradient of RMSNorm out = w ⊙ x · r (r = the saved inverse RMS per row):
// dX[t, :] (+)= r·(w ⊙ g) − x · r³/D · Σ_i g_i w_i x_i, with g = dOut[t, :].
//
// Bindings (group 0):
//   0 params   uniform  RmsnormBackwardParams (below)
//   1 x        storage  array<f32>        x[x_offset + t * x_stride + i], i < D, t < rows
//   2 w        storage  array<f32>        w[w_offset + i]
//   3 g        storage  array<f32>        dOut[g_offset + t * g_stride + i]
//   4 inv_rms  storage  array<f32>        r[r_offset + t] (from rmsnorm_train)
//   5 dx       storage  array<f32>, rw    dX[dx_offset + t * dx_stride + i]; added into when accumulate
// Geometry: one workgroup per row t = wid.y * nwg.x + wid.x (2-D grid); WG threads (override, a power of
// two) stride over the row with coalesced loads; the dot product is reduced in workgroup memory. Each
// invocation owns its outputs (no atomics).

struct RmsnormBackwardParams {
  dim: u32,
  rows: u32,
  x_offset: u32,
  x_stride: u32,
  w_offset: u32,
  g_offset: u32,
  g_stride: u32,
  r_offset: u32,
  dx_offset: u32,
  dx_stride: u32,
  accumulate: u32, // 1: dX += gradient, 0: dX = gradient
  _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: RmsnormBackwardParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read> inv_rms: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = wid.y * nwg.x + wid.x;
  if (t >= params.rows) {
    return; // the whole workgroup: t is uniform
  }
  let xo = params.x_offset + t * params.x_stride;
  let go = params.g_offset + t * params.g_stride;
  let wo = params.w_offset;
  var acc = 0.0;
  for (var i = lid; i < params.dim; i += WG) {
    acc = fma(g[go + i] * w[wo + i], x[xo + i], acc);
  }
  red[lid] = acc;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red[lid] += red[lid + s];
    }
  }
  workgroupBarrier();
  let r = inv_rms[params.r_offset + t];
  let c = red[0] * r * r * r / f32(params.dim);
  let dxo = params.dx_offset + t * params.dx_stride;
  for (var i = lid; i < params.dim; i += WG) {
    var v = r * w[wo + i] * g[go + i] - c * x[xo + i];
    if (params.accumulate != 0u) {
      v += dx[dxo + i];
    }
    dx[dxo + i] = v;
  }
}
