// scale: x[i] *= factor over a flat range (gradient clipping).
//
// Bindings (group 0):
//   0 params  uniform  ScaleParams (below)
//   1 x       storage  array<f32>, rw    x[x_offset + i], i < n
//   2 factor  uniform  vec4<f32>         factor.x (its own buffer, written per step: the cached bind group
//                                         and params stay the same whatever the factor)
// Geometry: one element per thread, WG threads per workgroup; 2-D dispatch (gx, gy), element
// i = (gy_id·gx + gx_id)·WG + local index.

struct ScaleParams {
  n: u32,
  x_offset: u32,
  groups_x: u32,
  _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: ScaleParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<uniform> factor: vec4<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * params.groups_x + wid.x) * WG + lid;
  if (i < params.n) {
    x[params.x_offset + i] *= factor.x;
  }
}
