// kl_div_serial: kl_div for software adapters (llvmpipe): one invocation per row, no barriers and no
// workgroup memory. Per-row KL(softmax(teacher) ‖ softmax(student)) in nats over logits (rows, V), and the
// gradient with respect to the student logits, scale · (softmax(s) − softmax(t)). CPU reference:
// klDivergence in src/train/losses.ts (the mean over rows: there scale = 1 / rows).
// Template values (wgsl_template.ts): SEPARATE = 1 writes the gradient to `grad`; IN_PLACE = 1 writes it
// over the student logits; both 0: loss only. VEC4 = 1: E = vec4<f32> (V and the offsets and strides of
// s, t and grad are multiples of 4), else E = f32.
//
// Bindings (group 0), as kl_div (offsets and strides in f32 words):
//   0 params   uniform  LossParams (below)
//   1 s        storage  array<E> (rw when IN_PLACE)   s[a_offset + r * a_stride + c], c < V
//   2 t        storage  array<E>            t[b_offset + r * b_stride + c]
//   3 loss     storage  array<f32>, rw      loss[l_offset + r]: the row's KL (unscaled)
//   4 grad     storage  array<E>, rw        grad[d_offset + r * d_stride + c] (SEPARATE only)
// params.flags: 1 ACCUMULATE (grad += …, SEPARATE only; else overwrite).
// Geometry: invocation r = (workgroup_id.y · groups_x + workgroup_id.x) · WG + local index (override WG;
// dispatch (groups_x, ceil(ceil(rows / WG) / groups_x))). Pass 1: an online (max, Σexp) of s and t, one
// rescale per element (E); pass 2: the KL terms pt·(log pt − log ps) and the gradient, as kl_div. Sums run
// in blocks of BLOCK elements, then add up (shorter f32 chains than one sum over the row): 2·n + 2·ceil(n /
// BLOCK) loop iterations (n = V / L), within llvmpipe's 65535 per invocation or the launcher takes kl_div.
// Why: llvmpipe re-enters every invocation at each workgroupBarrier and loops per lane over workgroup
// memory; kl_div's tree reductions cost more there than the row's arithmetic (docs/kernels.md).

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

fn hmax(v: E) -> f32 {
  return max(max(v.x, v.y), max(v.z, v.w));
}

fn total(v: E) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}
//#else
alias E = f32;
const L: u32 = 1u;

fn hmax(v: E) -> f32 {
  return v;
}

fn total(v: E) -> f32 {
  return v;
}
//#end

override WG: u32 = 8u;
const BLOCK: u32 = 64u; // elements (E) per partial sum
const LOWEST: f32 = -0x1.fffffep+127f;

@group(0) @binding(0) var<uniform> params: LossParams;
//#if IN_PLACE
@group(0) @binding(1) var<storage, read_write> s: array<E>;
//#else
@group(0) @binding(1) var<storage, read> s: array<E>;
//#end
@group(0) @binding(2) var<storage, read> t: array<E>;
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
  let n = params.cols / L;
  let so = (params.a_offset + r * params.a_stride) / L;
  let to = (params.b_offset + r * params.b_stride) / L;
  // Online (max, Σ exp(x − max)) of s and t (x, y: max, z, w: sum), one rescale per element of E,
  // per block of BLOCK elements, then merged: one long f32 chain loses ~1e-6 over 4096 terms.
  var st = vec4<f32>(LOWEST, LOWEST, 0.0, 0.0);
  for (var c0 = 0u; c0 < n; c0 += BLOCK) {
    var b = vec4<f32>(LOWEST, LOWEST, 0.0, 0.0);
    for (var c = c0; c < min(n, c0 + BLOCK); c++) {
      let sv = s[so + c];
      let tv = t[to + c];
      let m = max(b.xy, vec2<f32>(hmax(sv), hmax(tv)));
      let a = exp(b.xy - m);
      b = vec4<f32>(m, fma(b.zw, a, vec2<f32>(total(exp(sv - m.x)), total(exp(tv - m.y)))));
    }
    let m = max(st.xy, b.xy);
    st = vec4<f32>(m, st.zw * exp(st.xy - m) + b.zw * exp(b.xy - m));
  }
  let lse_s = st.x + log(st.z);
  let lse_t = st.y + log(st.w);
  let scale = params.scale;
  let accumulate = (params.flags & 1u) != 0u;
  var kl = E(0.0);
  for (var c0 = 0u; c0 < n; c0 += BLOCK) {
    var part = E(0.0);
    for (var c = c0; c < min(n, c0 + BLOCK); c++) {
      let lps = s[so + c] - lse_s;
      let lpt = t[to + c] - lse_t;
      let pt = exp(lpt);
      part = fma(pt, lpt - lps, part);
      let d = scale * (exp(lps) - pt);
//#if IN_PLACE
      s[so + c] = d;
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
    kl += part;
  }
  loss[params.l_offset + r] = total(kl);
}
