// cross_entropy: per-row softmax cross-entropy against integer targets over logits (rows, V), and its
// gradient scale · (softmax(x) − onehot(y)). A negative target leaves the row unscored (loss 0, gradient
// 0); a target ≥ V gives loss NaN (ids are not validated on the CPU side) and gradient 0. CPU reference:
// crossEntropySoftmaxBackward in src/model/ops_backward.ts (its mean loss is Σ loss / count, with
// scale = 1 / count the same gradient).
// Template values (wgsl_template.ts): SEPARATE = 1 writes the gradient to `grad`; IN_PLACE = 1 writes it
// over the logits; both 0: loss only (perplexity).
//
// Bindings (group 0):
//   0 params   uniform  LossParams (below)
//   1 x        storage  array<f32> (rw when IN_PLACE)   x[a_offset + r * a_stride + c], c < V
//   2 targets  storage  array<i32>          targets[b_offset + r]
//   3 loss     storage  array<f32>, rw      loss[l_offset + r]: −log softmax(x)[y] (unscaled)
//   4 grad     storage  array<f32>, rw      grad[d_offset + r * d_stride + c] (SEPARATE only)
// params.flags: 1 ACCUMULATE (grad += …, SEPARATE only; else overwrite; unscored rows then get 0).
// Geometry: one workgroup per row r = workgroup_id.y · groups_x + workgroup_id.x (dispatch (groups_x,
// ceil(rows / groups_x))); WG threads (override, a power of two) stride over the row with coalesced
// loads: an online (max, Σexp) per thread merged in workgroup memory, then the gradient pass.

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

override WG: u32 = 256u;
const LOWEST: f32 = -0x1.fffffep+127f;

@group(0) @binding(0) var<uniform> params: LossParams;
//#if IN_PLACE
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
//#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
//#end
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
//#if SEPARATE
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
//#end

var<workgroup> red: array<vec2<f32>, WG>;

/** Online softmax state (max, Σ exp(v − max)) after one more value v. */
fn online(st: vec2<f32>, v: f32) -> vec2<f32> {
  if (v > st.x) {
    return vec2<f32>(v, st.y * exp(st.x - v) + 1.0);
  }
  return vec2<f32>(st.x, st.y + exp(v - st.x));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wid.y * params.groups_x + wid.x;
  if (r >= params.rows) {
    return;
  }
  let V = params.cols;
  let xo = params.a_offset + r * params.a_stride;
  let y = targets[params.b_offset + r];
  let scored = y >= 0 && u32(y) < V;
  // The target's logit, read before the gradient pass may overwrite it (IN_PLACE).
  var xy = 0.0;
  if (lid == 0u && scored) {
    xy = x[xo + u32(y)];
  }
  var st = vec2<f32>(LOWEST, 0.0);
  for (var c = lid; c < V; c += WG) {
    st = online(st, x[xo + c]);
  }
  red[lid] = st;
  for (var half = WG / 2u; half > 0u; half >>= 1u) {
    workgroupBarrier();
    if (lid < half) {
      let a = red[lid];
      let b = red[lid + half];
      let m = max(a.x, b.x);
      red[lid] = vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
    }
  }
  workgroupBarrier();
  let lse = red[0].x + log(red[0].y);
  if (lid == 0u) {
    var l = 0.0;
    if (scored) {
      l = lse - xy;
    } else if (y >= 0) {
      l = bitcast<f32>(0x7fc00000u); // NaN: a target outside the vocabulary
    }
    loss[params.l_offset + r] = l;
  }
  let scale = params.scale;
  let accumulate = (params.flags & 1u) != 0u;
  for (var c = lid; c < V; c += WG) {
    var d = 0.0;
    if (scored) {
      d = scale * (exp(x[xo + c] - lse) - select(0.0, 1.0, i32(c) == y));
    }
//#if IN_PLACE
    x[xo + c] = d;
//#end
//#if SEPARATE
    let di = params.d_offset + r * params.d_stride + c;
    if (accumulate) {
      grad[di] += d;
    } else {
      grad[di] = d;
    }
//#end
  }
}
