// attention_prefill: causal grouped-query attention for a chunk of T queries at positions pos0..pos0+T−1
// over KV-cache positions 0..pos0+T−1 (the chunk's own keys already written), flash-attention style:
// workgroup (b, h) holds BQ queries of head h and streams BK keys at a time through workgroup memory
// with an online (running max) softmax, so no (T, S) score matrix exists anywhere.
//
// Bindings (group 0):
//   0 params  uniform  AttentionParams (below)
//   1 step    uniform  Step {pos0, T}
//   2 q       storage  array<f32>        q[q_offset + t * q_stride + h * HS + d]
//   3 k       storage  array<f32>        k[k_offset + s * k_stride + kvh * HS + d], kvh = h / group
//   4 v       storage  array<f32>        v[v_offset + s * v_stride + kvh * HS + d]
//   5 out     storage  array<f32>, rw    out[out_offset + t * out_stride + h * HS + d]
// Geometry (override constants): BQ queries × TPQ threads per query = BQ * TPQ threads; HS a multiple
// of 4, held as HS / 4 vec4 per row in workgroup memory. Tiles are loaded with coalesced scalar reads;
// thread (r, lane) scores keys lane, lane + TPQ, ... of the tile (vec4 dots; key rows padded by one
// vec4 so lanes reading different keys hit different banks) and owns output vec4s lane, lane + TPQ,
// ... of row r in registers (at most MAX_DPT4). Dispatch (ceil(T / BQ), nH). Workgroup memory:
// (BQ + 2 BK) * HS + 4 BK + 2 BQ * BK floats, all as vec4 arrays (BK a multiple of 4); the launcher picks BQ, BK to fit the adapter (small
// tiles on CPU adapters, where large workgroup arrays compile very slowly).

struct AttentionParams {
  n_heads: u32,
  group: u32,
  q_offset: u32,
  q_stride: u32,
  k_offset: u32,
  k_stride: u32,
  v_offset: u32,
  v_stride: u32,
  out_offset: u32,
  out_stride: u32,
  max_splits: u32, // unused here
  scale: f32,
}

struct Step {
  pos0: u32,
  tokens: u32,
  _a: u32,
  _b: u32,
}

override HS: u32 = 64u;
override BQ: u32 = 16u;
override BK: u32 = 16u;
override TPQ: u32 = 16u;
override DPT4: u32 = 1u; // ceil(HS / 4 / TPQ) output vec4s per thread
const MAX_DPT4: u32 = 4u;
const NEG: f32 = -3.0e38; // a finite "minus infinity": masked scores never produce NaN

@group(0) @binding(0) var<uniform> params: AttentionParams;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> qs: array<vec4<f32>, BQ * (HS / 4u)>;
var<workgroup> ks: array<vec4<f32>, BK * (HS / 4u + 1u)>;
var<workgroup> vs: array<vec4<f32>, BK * (HS / 4u)>;
var<workgroup> sc: array<vec4<f32>, BQ * BK / 4u>; // raw scores of the tile (BK a multiple of 4)
var<workgroup> pe: array<vec4<f32>, BQ * BK / 4u>; // their exponentials, relative to the running max

@compute @workgroup_size(BQ * TPQ)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let WG = BQ * TPQ;
  let H4 = HS / 4u;
  let K4 = H4 + 1u;
  let h = wid.y;
  let tokens = step.tokens;
  let q0 = wid.x * BQ; // first query row of this workgroup
  let r = lid / TPQ;
  let lane = lid - r * TPQ;
  let t = q0 + r;
  let live = t < tokens;
  let limit = step.pos0 + t; // last key position query t sees
  let kend = step.pos0 + min(tokens, q0 + BQ); // keys 0..kend−1 matter to this workgroup
  let kvh = h / params.group;
  let kcol = params.k_offset + kvh * HS;
  let vcol = params.v_offset + kvh * HS;

  for (var i = lid; i < BQ * HS; i += WG) {
    let rr = i / HS;
    let d = i - rr * HS;
    let tt = q0 + rr;
    var val = 0.0;
    if (tt < tokens) {
      val = q[params.q_offset + tt * params.q_stride + h * HS + d] * params.scale;
    }
    qs[rr * H4 + d / 4u][d % 4u] = val;
  }

  var m = NEG;
  var l = 0.0;
  var acc: array<vec4<f32>, MAX_DPT4>;
  for (var i = 0u; i < DPT4; i++) {
    acc[i] = vec4<f32>(0.0);
  }
  for (var kb = 0u; kb < kend; kb += BK) {
    workgroupBarrier();
    for (var i = lid; i < BK * HS; i += WG) {
      let j = i / HS;
      let d = i - j * HS;
      let s = kb + j;
      var kv = 0.0;
      var vv = 0.0;
      if (s < kend) {
        kv = k[kcol + s * params.k_stride + d];
        vv = v[vcol + s * params.v_stride + d];
      }
      ks[j * K4 + d / 4u][d % 4u] = kv;
      vs[j * H4 + d / 4u][d % 4u] = vv;
    }
    workgroupBarrier();
    for (var j = lane; j < BK; j += TPQ) {
      var dt = 0.0;
      for (var d4 = 0u; d4 < H4; d4++) {
        dt += dot(qs[r * H4 + d4], ks[j * K4 + d4]);
      }
      sc[(r * BK + j) / 4u][j % 4u] = select(NEG, dt, live && kb + j <= limit);
    }
    workgroupBarrier();
    let B4 = BK / 4u;
    var mb = vec4<f32>(NEG);
    for (var j4 = 0u; j4 < B4; j4++) {
      mb = max(mb, sc[r * B4 + j4]);
    }
    let m_new = max(m, max(max(mb.x, mb.y), max(mb.z, mb.w)));
    for (var j = lane; j < BK; j += TPQ) {
      let sv = sc[(r * BK + j) / 4u][j % 4u];
      pe[(r * BK + j) / 4u][j % 4u] = select(0.0, exp(sv - m_new), sv > NEG);
    }
    let corr = exp(m - m_new);
    m = m_new;
    workgroupBarrier();
    var ls = vec4<f32>(0.0);
    for (var j4 = 0u; j4 < B4; j4++) {
      ls += pe[r * B4 + j4];
    }
    l = fma(l, corr, dot(ls, vec4<f32>(1.0)));
    for (var i = 0u; i < DPT4; i++) {
      let d4 = min(i * TPQ + lane, H4 - 1u); // lanes past H4 duplicate the last vec4, never stored
      var o = acc[i] * corr;
      for (var j4 = 0u; j4 < B4; j4++) {
        let p = pe[r * B4 + j4];
        let vb = 4u * j4 * H4 + d4;
        o = fma(vec4<f32>(p.x), vs[vb], o);
        o = fma(vec4<f32>(p.y), vs[vb + H4], o);
        o = fma(vec4<f32>(p.z), vs[vb + 2u * H4], o);
        o = fma(vec4<f32>(p.w), vs[vb + 3u * H4], o);
      }
      acc[i] = o;
    }
  }
  if (live) {
    let ob = params.out_offset + t * params.out_stride + h * HS;
    for (var i = 0u; i < DPT4; i++) {
      let d4 = i * TPQ + lane;
      if (d4 < H4) {
        let o = acc[i] / l;
        out[ob + 4u * d4] = o.x;
        out[ob + 4u * d4 + 1u] = o.y;
        out[ob + 4u * d4 + 2u] = o.z;
        out[ob + 4u * d4 + 3u] = o.w;
      }
    }
  }
}
