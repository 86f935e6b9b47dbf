// attention_train_forward: causal grouped-query attention of B independent training windows (S = T per
// window, query t sees keys 0..t of its own window), flash-attention style as attention_prefill: a
// workgroup holds BQ queries of one head and window and streams BK keys at a time through workgroup
// memory with an online softmax, so no (T, T) score matrix exists. Besides the output it writes each
// query's log-sum-exp L = m + ln l of its scaled scores, from which the backward recomputes the
// probabilities P = exp(score − L).
//
// Bindings (group 0) (layouts in _attention_train.wgsl):
//   0 params  uniform  TrainAttentionParams
//   1 q       storage  array<f32>        (B·T, nH·HS)
//   2 k       storage  array<f32>        (B·T, nKV·HS)
//   3 v       storage  array<f32>        (B·T, nKV·HS)
//   4 out     storage  array<f32>, rw    (B·T, nH·HS) at o_offset, o_stride
//   5 lse     storage  array<f32>, rw    (B, nH, T)
// Geometry (override constants): BQ queries × TPQ threads per query; HS a multiple of 4 held as HS / 4
// vec4 per row in workgroup memory; BK a multiple of 4. Thread (r, lane) scores keys lane, lane + TPQ,
// … of the tile (key rows padded by one vec4 against bank conflicts) and owns output vec4s lane,
// lane + TPQ, … (DPT4 = ceil(HS / 4 / TPQ) ≤ MAX_DPT4) in registers. Dispatch (ceil(T / BQ), nH, B).
// Workgroup memory: BQ·HS + BK·(HS + 4) + BK·HS + 2·BQ·BK floats.

override HS: u32 = 64u;
override BQ: u32 = 16u;
override BK: u32 = 16u;
override TPQ: u32 = 16u;
override DPT4: u32 = 1u;

//#include _attention_train

@group(0) @binding(0) var<uniform> params: TrainAttentionParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

var<workgroup> qs: array<vec4<f32>, BQ * (HS / 4u)>;
var<workgroup> ks: array<vec4<f32>, BK * (HS / 4u + 1u)>;
var<workgroup> vs: array<vec4<f32>, BK * (HS / 4u)>;
var<workgroup> sc: array<vec4<f32>, BQ * BK / 4u>; // raw scores of the tile
var<workgroup> pe: array<vec4<f32>, BQ * BK / 4u>; // their exponentials, relative to the running max

@compute @workgroup_size(BQ * TPQ)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let WG = BQ * TPQ;
  let H4 = HS / 4u;
  let K4 = H4 + 1u;
  let T = params.tokens;
  let h = wid.y;
  let row0 = wid.z * T; // first row of this window
  let q0 = wid.x * BQ; // first query of this workgroup
  let r = lid / TPQ;
  let lane = lid - r * TPQ;
  let t = q0 + r;
  let live = t < T;
  let kend = min(T, q0 + BQ); // keys 0..kend−1 matter to this workgroup
  let kvh = h / params.group;
  let kcol = params.k_offset + kvh * HS;
  let vcol = params.v_offset + kvh * HS;

  for (var i = lid; i < BQ * HS; i += WG) {
    let rr = i / HS;
    let d = i - rr * HS;
    let tt = q0 + rr;
    var val = 0.0;
    if (tt < T) {
      val = q[params.q_offset + (row0 + tt) * params.q_stride + h * HS + d] * params.scale;
    }
    qs[rr * H4 + d / 4u][d % 4u] = val;
  }

  var m = NEG;
  var l = 0.0;
  var acc: array<vec4<f32>, MAX_DPT4>;
  for (var i = 0u; i < DPT4; i++) {
    acc[i] = vec4<f32>(0.0);
  }
  let B4 = BK / 4u;
  for (var kb = 0u; kb < kend; kb += BK) {
    workgroupBarrier();
    for (var i = lid; i < BK * HS; i += WG) {
      let j = i / HS;
      let d = i - j * HS;
      let s = kb + j;
      var kv = 0.0;
      var vv = 0.0;
      if (s < kend) {
        kv = k[kcol + (row0 + s) * params.k_stride + d];
        vv = v[vcol + (row0 + s) * params.v_stride + d];
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
      sc[(r * BK + j) / 4u][j % 4u] = select(NEG, dt, live && kb + j <= t);
    }
    workgroupBarrier();
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
    let ob = params.o_offset + (row0 + t) * params.o_stride + h * HS;
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
    if (lane == 0u) {
      lse[params.lse_offset + (wid.z * params.n_heads + h) * T + t] = m + log(l);
    }
  }
}
