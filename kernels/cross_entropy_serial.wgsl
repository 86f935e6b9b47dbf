// cross_entropy_serial: cross_entropy for software adapters (llvmpipe): one invocation per row, no barriers
// and no workgroup memory. Per-row softmax cross-entropy against integer targets over logits (rows, V), and
// its gradient scale · (softmax(x) − onehot(y)). A negative target leaves the row unscored (loss 0,
// gradient 0); a target ≥ V gives loss NaN and gradient 0. CPU reference: crossEntropySoftmaxBackward in
// src/model/ops_backward.ts.
// Template values (wgsl_template.ts): SEPARATE = 1 writes the gradient to `grad`; IN_PLACE = 1 writes it
// over the logits; both 0: loss only. VEC4 = 1: E = vec4<f32> (V and the offsets and strides of x and grad
// are multiples of 4), else E = f32.
//
// Bindings (group 0), as cross_entropy (offsets and strides in f32 words):
//   0 params   uniform  LossParams (below)
//   1 x        storage  array<E> (rw when IN_PLACE)   x[a_offset + r * a_stride + c], c < V
//   2 targets  storage  array<i32>          targets[b_offset + r]
//   3 loss     storage  array<f32>, rw      loss[l_offset + r]: −log softmax(x)[y] (unscaled)
//   4 grad     storage  array<E>, rw        grad[d_offset + r * d_stride + c] (SEPARATE only)
// params.flags: 1 ACCUMULATE (grad += …, SEPARATE only; else overwrite; unscored rows then get 0).
// Geometry: invocation r = (workgroup_id.y · groups_x + workgroup_id.x) · WG + local index (override WG;
// dispatch (groups_x, ceil(ceil(rows / WG) / groups_x))): an online (max, Σexp), one rescale per element
// of E, in blocks of BLOCK elements merged at the end, then the gradient pass: 2·n + ceil(n / BLOCK) loop
// iterations (n = V / L), within llvmpipe's 65535 per invocation or the launcher takes cross_entropy.
// Why serial: see kl_div_serial.

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
alias I = vec4<u32>;
const L: u32 = 4u; // floats per element of the arrays
const LANE = vec4<u32>(0u, 1u, 2u, 3u); // column of each component within an element

fn hmax(v: E) -> f32 {
  return max(max(v.x, v.y), max(v.z, v.w));
}

fn total(v: E) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

fn component(v: E, i: u32) -> f32 {
  return v[i];
}
//#else
alias E = f32;
alias I = u32;
const L: u32 = 1u;
const LANE = 0u;

fn hmax(v: E) -> f32 {
  return v;
}

fn total(v: E) -> f32 {
  return v;
}

fn component(v: E, i: u32) -> f32 {
  return v;
}
//#end

override WG: u32 = 8u;
const BLOCK: u32 = 64u; // elements (E) per partial sum
const LOWEST: f32 = -0x1.fffffep+127f;

@group(0) @binding(0) var<uniform> params: LossParams;
//#if IN_PLACE
@group(0) @binding(1) var<storage, read_write> x: array<E>;
//#else
@group(0) @binding(1) var<storage, read> x: array<E>;
//#end
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
//#if SEPARATE
@group(0) @binding(4) var<storage, read_write> grad: array<E>;
//#end

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.y * params.groups_x + wid.x) * WG + lid;
  if (r >= params.rows) {
    return;
  }
  let V = params.cols;
  let n = V / L;
  let xo = (params.a_offset + r * params.a_stride) / L;
  let y = targets[params.b_offset + r];
  let scored = y >= 0 && u32(y) < V;
  let yu = select(0u, u32(y), scored);
  // The target's logit, read before the gradient pass may overwrite it (IN_PLACE).
  let xy = component(x[xo + yu / L], yu % L);
  // Online (max, Σ exp(x − max)) per block of BLOCK elements, then merged (shorter f32 sum chains).
  var ml = vec2<f32>(LOWEST, 0.0);
  for (var c0 = 0u; c0 < n; c0 += BLOCK) {
    var b = vec2<f32>(LOWEST, 0.0);
    for (var c = c0; c < min(n, c0 + BLOCK); c++) {
      let v = x[xo + c];
      let m = max(b.x, hmax(v));
      b = vec2<f32>(m, fma(b.y, exp(b.x - m), total(exp(v - m))));
    }
    let m = max(ml.x, b.x);
    ml = vec2<f32>(m, ml.y * exp(ml.x - m) + b.y * exp(b.x - m));
  }
  let lse = ml.x + log(ml.y);
  var row_loss = 0.0;
  if (scored) {
    row_loss = lse - xy;
  } else if (y >= 0) {
    row_loss = bitcast<f32>(0x7fc00000u); // NaN: a target outside the vocabulary
  }
  loss[params.l_offset + r] = row_loss;
  let scale = params.scale;
  let accumulate = (params.flags & 1u) != 0u;
  for (var c = 0u; c < n; c++) {
    let hit = I(c * L) + LANE == I(yu);
    let d = select(E(0.0), scale * (exp(x[xo + c] - lse) - select(E(0.0), E(1.0), hit)), scored);
//#if IN_PLACE
    x[xo + c] = d;
//#end
//#if SEPARATE
    let di = (params.d_offset + r * params.d_stride) / L + c;
    if (accumulate) {
      grad[di] += d;
    } else {
      grad[di] = d;
    }
//#end
  }
}
