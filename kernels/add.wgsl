// add: the residual add x += y over (rows, cols).
//
// Bindings (group 0):
//   0 params  uniform  AddParams (below)
//   1 x       storage  array<f32>, rw    x[x_offset + r * x_stride + i], i < cols
//   2 y       storage  array<f32>        y[y_offset + r * y_stride + i] (another buffer)
// Geometry: one thread per element, WG threads (override) along a row (coalesced); dispatch
// (ceil(cols / WG), rows).

struct AddParams {
  cols: u32,
  x_offset: u32,
  x_stride: u32,
  y_offset: u32,
  y_stride: u32,
  _a: u32,
  _b: u32,
  _c: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: AddParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x * WG + lid;
  if (i >= params.cols) {
    return;
  }
  let ix = params.x_offset + wid.y * params.x_stride + i;
  x[ix] = x[ix] + y[params.y_offset + wid.y * params.y_stride + i];
}
