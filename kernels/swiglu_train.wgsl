// swiglu_train: the training forward of the SwiGLU gate, out = silu(a) ⊙ b with silu(a) = a / (1 + e^−a),
// out of place (the backward needs a and b, which the in-place inference kernel overwrites).
//
// Bindings (group 0):
//   0 params  uniform  SwigluTrainParams (below)
//   1 a       storage  array<f32>        a[a_offset + r * a_stride + i], i < cols (the w1 output)
//   2 b       storage  array<f32>        b[b_offset + r * b_stride + i] (the w3 output; may be a's buffer)
//   3 out     storage  array<f32>, rw    out[out_offset + r * out_stride + i] (another buffer)
// Geometry: one thread per element, WG threads (override) along a row (coalesced); dispatch
// (ceil(cols / WG), rows).

struct SwigluTrainParams {
  cols: u32,
  a_offset: u32,
  a_stride: u32,
  b_offset: u32,
  b_stride: u32,
  out_offset: u32,
  out_stride: u32,
  _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: SwigluTrainParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x * WG + lid;
  if (i >= params.cols) {
    return;
  }
  let av = a[params.a_offset + wid.y * params.a_stride + i];
  let bv = b[params.b_offset + wid.y * params.b_stride + i];
  out[params.out_offset + wid.y * params.out_stride + i] = av / (1.0 + exp(-av)) * bv;
}
