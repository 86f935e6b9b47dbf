// mse_serial: mse for software adapters (llvmpipe): one invocation per row, no barriers and no workgroup
// memory. Per-row sum of squared differences of (rows, D) hidden states, Σ_c (s − t)², and the gradient
// with respect to the student, scale · 2 (s − t). CPU reference: meanSquaredError in src/train/losses.ts.
// Template values (wgsl_template.ts): GRAD = 1 writes the gradient, 0 the loss only. VEC4 = 1:
// E = vec4<f32> (D and the offsets and strides of s, t and grad are multiples of 4), else E = f32.
//
// Bindings (group 0), as mse (offsets and strides in f32 words):
//   0 params   uniform  LossParams (below)
//   1 s        storage  array<E>            s[a_offset + r * a_stride + c], c < D
//   2 t        storage  array<E>            t[b_offset + r * b_stride + c]
//   3 loss     storage  array<f32>, rw      loss[l_offset + r]: the row's Σ (s − t)² (unscaled)
//   4 grad     storage  array<E>, rw        grad[d_offset + r * d_stride + c] (GRAD = 1 only)
// params.flags: 1 ACCUMULATE (grad += …; else overwrite).
// Geometry: invocation r = (workgroup_id.y · groups_x + workgroup_id.x) · WG + local index (override WG;
// dispatch (groups_x, ceil(ceil(rows / WG) / groups_x))), one pass over its row, summed in blocks of
// BLOCK elements (n + ceil(n / BLOCK) loop iterations, n = D / L, within llvmpipe's 65535 per invocation
// or the launcher takes mse). Why serial: see kl_div_serial.

struct LossParams {
  rows: u32,
  cols: u32,
  groups_x: u32,
  flags: u32,
  a_offset: u32,
  a_stride: u32,
  b_offset: u32,
  b_stride: u32,
  d_offset: u32,
  d_stride: u32,
  l_offset: u32,
  scale: f32,
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

@group(0) @binding(0) var<uniform> params: LossParams;
@group(0) @binding(1) var<storage, read> s: array<E>;
@group(0) @binding(2) var<storage, read> t: array<E>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
//#if GRAD
@group(0) @binding(4) var<storage, read_write> grad: array<E>;
//#end

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.y * params.groups_x + wid.x) * WG + lid;
  if (r >= params.rows) {
    return;
  }
  let n = params.cols / L;
  let so = (params.a_offset + r * params.a_stride) / L;
  let to = (params.b_offset + r * params.b_stride) / L;
  let scale2 = 2.0 * params.scale;
  let accumulate = (params.flags & 1u) != 0u;
  var acc = E(0.0);
  for (var c0 = 0u; c0 < n; c0 += BLOCK) {
    var part = E(0.0); // blocked sums: one long f32 chain loses ~1e-6 over 4096 terms
    for (var c = c0; c < min(n, c0 + BLOCK); c++) {
      let d = s[so + c] - t[to + c];
      part = fma(d, d, part);
//#if GRAD
      let di = (params.d_offset + r * params.d_stride) / L + c;
      if (accumulate) {
        grad[di] += scale2 * d;
      } else {
        grad[di] = scale2 * d;
      }
//#end
    }
    acc += part;
  }
  loss[params.l_offset + r] = total(acc);
}
