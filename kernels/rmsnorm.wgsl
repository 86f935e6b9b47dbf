// rmsnorm: per-row RMSNorm, out[t, :] = w ⊙ x[t, :] / sqrt(mean(x[t, :]²) + eps).
//
// Bindings (group 0):
//   0 params  uniform  RmsnormParams (below)
//   1 x       storage  array<f32>        x[x_offset + t * x_stride + i], i < D
//   2 w       storage  array<f32>        w[w_offset + i]
//   3 out     storage  array<f32>, rw    out[out_offset + t * out_stride + i] (a buffer other than x)
// Geometry: one workgroup per row t = workgroup_id.x (dispatch (T)); WG threads (override, a power of
// two) stride over the row with coalesced loads, and the sum of squares is reduced in workgroup memory.

struct RmsnormParams {
  dim: u32,
  x_offset: u32,
  x_stride: u32,
  w_offset: u32,
  out_offset: u32,
  out_stride: u32,
  eps: f32,
  _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: RmsnormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let xo = params.x_offset + wid.x * params.x_stride;
  let oo = params.out_offset + wid.x * params.out_stride;
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
}
