// lerp: x[i] ← x[i] + t·(y[i] − x[i]) over a flat range (the latent mix of training: x = What, y = the
// latent W, t = α; CPU reference src/quant/latent_mix.ts mixLatentForward).
//
// Bindings (group 0):
//   0 params  uniform  LerpParams (below)
//   1 x       storage  array<f32>, rw    x[x_offset + i], i < n
//   2 y       storage  array<f32>        y[y_offset + i]
//   3 t       uniform  vec4<f32>         t.x (its own buffer, written per call: the cached bind group and
//                                         params stay the same whatever t)
// Geometry: one element per thread, WG threads per workgroup; 2-D dispatch (gx, gy), element
// i = (gy_id·gx + gx_id)·WG + local index.

struct LerpParams {
  n: u32,
  x_offset: u32,
  y_offset: u32,
  groups_x: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: LerpParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<uniform> t: vec4<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * params.groups_x + wid.x) * WG + lid;
  if (i < params.n) {
    let xi = x[params.x_offset + i];
    x[params.x_offset + i] = fma(t.x, y[params.y_offset + i] - xi, xi);
  }
}
