// kl_div: per-row KL(softmax(teacher) ‖ softmax(student)) in nats over logits (rows, V), and its gradient
// with respect to the student logits, scale · (softmax(s) − softmax(t)). CPU reference: klDivergence in
// src/train/losses.ts (which returns the mean over rows: there scale = 1 / rows and the loss is the sum of
// the per-row losses / rows).
// Template values (wgsl_template.ts): SEPARATE = 1 writes the gradient to `grad`; IN_PLACE = 1 writes it
// over the student logits; both 0: loss only.
//
// Bindings (group 0):
//   0 params   uniform  LossParams (below)
//   1 s        storage  array<f32> (rw when IN_PLACE)   s[a_offset + r * a_stride + c], c < V
//   2 t        storage  array<f32>          t[b_offset + r * b_stride + c]
//   3 loss     storage  array<f32>, rw      loss[l_offset + r]: the row's KL (unscaled)
//   4 grad     storage  array<f32>, rw      grad[d_offset + r * d_stride + c] (SEPARATE only)
// params.flags: 1 ACCUMULATE (grad += …, SEPARATE only; else overwrite).
// Geometry: one workgroup per row r = workgroup_id.y · groups_x + workgroup_id.x (dispatch (groups_x,
// ceil(rows / groups_x))); WG threads (override, a power of two) stride over the row with coalesced
// loads. Pass 1: an online (max, Σexp) per thread for s and t, merged in workgroup memory; pass 2: the
// KL terms pt·(log pt − log ps) and the gradient, the terms reduced in workgroup memory.

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
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
//#else
@group(0) @binding(1) var<storage, read> s: array<f32>;
//#end
@group(0) @binding(2) var<storage, read> t: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
//#if SEPARATE
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
//#end

var<workgroup> red: array<vec4<f32>, WG>;

/** Online softmax state (max, Σ exp(x − max)) after one more value x. */
fn online(st: vec2<f32>, x: f32) -> vec2<f32> {
  if (x > st.x) {
    return vec2<f32>(x, st.y * exp(st.x - x) + 1.0);
  }
  return vec2<f32>(st.x, st.y + exp(x - st.x));
}

/** Two online softmax states merged. */
fn merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wid.y * params.groups_x + wid.x;
  if (r >= params.rows) {
    return;
  }
  let V = params.cols;
  let so = params.a_offset + r * params.a_stride;
  let to = params.b_offset + r * params.b_stride;
  var ss = vec2<f32>(LOWEST, 0.0);
  var st = vec2<f32>(LOWEST, 0.0);
  for (var c = lid; c < V; c += WG) {
    ss = online(ss, s[so + c]);
    st = online(st, t[to + c]);
  }
  red[lid] = vec4<f32>(ss, st);
  for (var half = WG / 2u; half > 0u; half >>= 1u) {
    workgroupBarrier();
    if (lid < half) {
      let a = red[lid];
      let b = red[lid + half];
      red[lid] = vec4<f32>(merge(a.xy, b.xy), merge(a.zw, b.zw));
    }
  }
  workgroupBarrier();
  let all = red[0];
  let lse_s = all.x + log(all.y);
  let lse_t = all.z + log(all.w);
  workgroupBarrier(); // every thread has read red[0] before it is reused
  let scale = params.scale;
  let accumulate = (params.flags & 1u) != 0u;
  var kl = 0.0;
  for (var c = lid; c < V; c += WG) {
    let ls = s[so + c] - lse_s;
    let lt = t[to + c] - lse_t;
    let pt = exp(lt);
    kl = fma(pt, lt - ls, kl);
    let d = scale * (exp(ls) - pt);
//#if IN_PLACE
    s[so + c] = d;
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
  red[lid].x = kl;
  for (var half = WG / 2u; half > 0u; half >>= 1u) {
    workgroupBarrier();
    if (lid < half) {
      red[lid].x += red[lid + half].x;
    }
  }
  if (lid == 0u) {
    loss[params.l_offset + r] = red[0].x;
  }
}
