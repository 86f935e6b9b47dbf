// rmsnorm_train: the training forward of RMSNorm, out[t, :] = w ⊙ x[t, :] · r_t with
// r_t = 1 / sqrt(mean(x[t, :]²) + eps), which also saves r_t (the inverse RMS) for the backward.
//
// Bindings (group 0):
//   0 params   uniform  RmsnormTrainParams (below)
//   1 x        storage  array<f32>        x[x_offset + t * x_stride + i], i < D, t < rows
//   2 w        storage  array<f32>        w[w_offset + i]
//   3 out      storage  array<f32>, rw    out[out_offset + t * out_stride + i] (a buffer other than x)
//   4 inv_rms  storage  array<f32>, rw    inv_rms[r_offset + t]
// Geometry: one workgroup per row t = wid.y * nwg.x + wid.x (a 2-D grid, so rows may exceed 65535);
// WG threads (override, a power of two) stride over the row with coalesced loads, and the sum of
// squares is reduced in workgroup memory. Same arithmetic as rmsnorm.wgsl, so both give equal outputs.

struct RmsnormTrainParams {
  dim: u32,
  rows: u32,
  x_offset: u32,
  x_stride: u32,
  w_offset: u32,
  out_offset: u32,
  out_stride: u32,
  r_offset: u32,
  eps: f32,
  _a: u32,
  _b: u32,
  _c: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: RmsnormTrainParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> inv_rms: array<f32>;

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
  let oo = params.out_offset + t * params.out_stride;
  var ss = 0.0;
  for (var i = lid; i < params.dim; i += WG) {
    let v = x[xo + i];
    ss = fma(v, v, ss);
  }
  red[lid] = ss;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red[lid] += red[lid + s];
    }
  }
  workgroupBarrier();
  let inv = 1.0 / sqrt(red[0] / f32(params.dim) + params.eps);
  for (var i = lid; i < params.dim; i += WG) {
    out[oo + i] = w[params.w_offset + i] * (inv * x[xo + i]);
  }
  if (lid == 0u) {
    inv_rms[params.r_offset + t] = inv;
  }
}
