// rmsnorm_backward_serial: rmsnorm_backward for software adapters (llvmpipe): one invocation per row, no
// barriers and no workgroup memory. dX[t, :] (+)= r·(w ⊙ g) − x · r³/D · Σ_i g_i w_i x_i, with
// g = dOut[t, :] and r the inverse RMS saved by the training forward.
//
// Bindings (group 0), as rmsnorm_backward:
//   0 params   uniform  RmsnormBackwardParams (below; offsets and strides in f32 words)
//   1 x        storage  array<E>          x[x_offset + t * x_stride + i], i < D, t < rows
//   2 w        storage  array<E>          w[w_offset + i]
//   3 g        storage  array<E>          dOut[g_offset + t * g_stride + i]
//   4 inv_rms  storage  array<f32>        r[r_offset + t]
//   5 dx       storage  array<E>, rw      dX[dx_offset + t * dx_stride + i]; added into when accumulate
// Template value VEC4 (wgsl_template.ts): E = vec4<f32> (D and the offsets and strides of x, w, g and dx
// are multiples of 4), else E = f32. Override WG.
// Geometry: invocation t = (wid.y * nwg.x + wid.x) * WG + lid owns row t (the dot product in blocks of
// BLOCK elements, then the gradient: 2·n + ceil(n / BLOCK) loop iterations, n = D / L, within llvmpipe's
// 65535 per invocation or the launcher takes rmsnorm_backward); dispatch ceil(rows / WG) workgroups over
// a 2-D grid. Why serial: see rmsnorm_serial.

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

//#if VEC4
alias E = vec4<f32>;
const L: u32 = 4u; // floats per element of the arrays

fn total(v: E) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}
//#else
alias E = f32;
const L: u32 = 1u;

fn total(v: E) -> f32 {
  return v;
}
//#end

override WG: u32 = 8u;
const BLOCK: u32 = 64u; // elements (E) per partial sum

@group(0) @binding(0) var<uniform> params: RmsnormBackwardParams;
@group(0) @binding(1) var<storage, read> x: array<E>;
@group(0) @binding(2) var<storage, read> w: array<E>;
@group(0) @binding(3) var<storage, read> g: array<E>;
@group(0) @binding(4) var<storage, read> inv_rms: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<E>;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = (wid.y * nwg.x + wid.x) * WG + lid;
  if (t >= params.rows) {
    return;
  }
  let n = params.dim / L;
  let xo = (params.x_offset + t * params.x_stride) / L;
  let go = (params.g_offset + t * params.g_stride) / L;
  let wo = params.w_offset / L;
  var acc = E(0.0);
  for (var i0 = 0u; i0 < n; i0 += BLOCK) {
    var part = E(0.0); // blocked sums: shorter f32 chains than one sum over the row
    for (var i = i0; i < min(n, i0 + BLOCK); i++) {
      part = fma(g[go + i] * w[wo + i], x[xo + i], part);
    }
    acc += part;
  }
  let r = inv_rms[params.r_offset + t];
  let c = total(acc) * r * r * r / f32(params.dim);
  let dxo = (params.dx_offset + t * params.dx_stride) / L;
  let accumulate = params.accumulate != 0u;
  for (var i = 0u; i < n; i++) {
    var v = r * w[wo + i] * g[go + i] - c * x[xo + i];
    if (accumulate) {
      v += dx[dxo + i];
    }
    dx[dxo + i] = v;
  }
}
