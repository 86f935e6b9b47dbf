// mse: per-row sum of squared differences of (rows, D) hidden states, Σ_c (s − t)², and the gradient with
// respect to the student, scale · 2 (s − t). CPU reference: meanSquaredError in src/train/losses.ts (the
// mean over n = rows·D elements: there the loss is Σ loss / n and scale = 1 / n; a weight γ multiplies
// scale).
//
// Bindings (group 0):
//   0 params   uniform  LossParams (below)
//   1 s        storage  array<f32>          s[a_offset + r * a_stride + c], c < D
//   2 t        storage  array<f32>          t[b_offset + r * b_stride + c]
//   3 loss     storage  array<f32>, rw      loss[l_offset + r]: the row's Σ (s − t)² (unscaled)
//   4 grad     storage  array<f32>, rw      grad[d_offset + r * d_stride + c] (GRAD = 1 only)
// Template value GRAD (wgsl_template.ts): 1 writes the gradient, 0 the loss only.
// params.flags: 1 ACCUMULATE (grad += …, e.g. into the residual stream's gradient; else overwrite).
// Geometry: one workgroup per row r = workgroup_id.y · groups_x + workgroup_id.x (dispatch (groups_x,
// ceil(rows / groups_x))); WG threads (override, a power of two) stride over the row with coalesced
// loads; the squares are reduced in workgroup memory.

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

@group(0) @binding(0) var<uniform> params: LossParams;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> t: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
//#if GRAD
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
//#end

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wid.y * params.groups_x + wid.x;
  if (r >= params.rows) {
    return;
  }
  let so = params.a_offset + r * params.a_stride;
  let to = params.b_offset + r * params.b_stride;
  let scale2 = 2.0 * params.scale;
  let accumulate = (params.flags & 1u) != 0u;
  var acc = 0.0;
  for (var c = lid; c < params.cols; c += WG) {
    let d = s[so + c] - t[to + c];
    acc = fma(d, d, acc);
//#if GRAD
    let di = params.d_offset + r * params.d_stride + c;
    if (accumulate) {
      grad[di] += scale2 * d;
    } else {
      grad[di] = scale2 * d;
    }
//#end
  }
  red[lid] = acc;
  for (var half = WG / 2u; half > 0u; half >>= 1u) {
    workgroupBarrier();
    if (lid < half) {
      red[lid] += red[lid + half];
    }
  }
  if (lid == 0u) {
    loss[params.l_offset + r] = red[0];
  }
}
