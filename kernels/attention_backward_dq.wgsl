// attention_backward_dq: first pass of the training attention backward (attention_train_forward's
// layouts), over query blocks. With P_ts = exp(score_ts − L_t) recomputed from the saved log-sum-exp,
// g = dOut[t, h]: dP_ts = g · v_s, dS_ts = P_ts (dP_ts − D_t) with D_t = rowsum(dOut ⊙ out)_t = Σ_s P_ts
// dP_ts, and dQ[t, h] (+)= scale · Σ_s dS_ts k_s. It also writes D (B, nH, T), which the dK/dV pass
// (attention_backward_dkv) reads. Each invocation owns its outputs: no atomics.
//
// Bindings (group 0) (layouts in _attention_train.wgsl):
//   0 params  uniform  TrainAttentionParams
//   1 q       storage  array<f32>        (B·T, nH·HS)
//   2 k       storage  array<f32>        (B·T, nKV·HS)
//   3 v       storage  array<f32>        (B·T, nKV·HS)
//   4 o       storage  array<f32>        the forward's out (B·T, nH·HS) at o_offset, o_stride
//   5 d_out   storage  array<f32>        dOut (B·T, nH·HS) at do_offset, do_stride
//   6 lse     storage  array<f32>        L (B, nH, T)
//   7 delta   storage  array<f32>, rw    D (B, nH, T)
//   8 dq      storage  array<f32>, rw    dQ (B·T, nH·HS) at g_offset, g_stride; added into when flags bit 0
// Geometry (override constants): a workgroup holds BQ queries of head h = wid.y in window wid.z, TPQ
// threads per query, and streams the BK keys of each causally visible tile through workgroup memory
// (K and V rows padded by one vec4 against bank conflicts; BK a multiple of 4). Thread (r, lane) computes
// the scores of keys lane, lane + TPQ, … and owns dQ vec4s lane, lane + TPQ, … (DPT4 ≤ MAX_DPT4) in
// registers. Dispatch (ceil(T / BQ), nH, B). Workgroup memory: 2·BQ·HS + 2·BK·(HS + 4) + BQ·BK + BQ·TPQ
// floats.

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
@group(0) @binding(4) var<storage, read> o: array<f32>;
@group(0) @binding(5) var<storage, read> d_out: array<f32>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read_write> delta: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;

var<workgroup> qs: array<vec4<f32>, BQ * (HS / 4u)>; // q · scale
var<workgroup> dos: array<vec4<f32>, BQ * (HS / 4u)>;
var<workgroup> ks: array<vec4<f32>, BK * (HS / 4u + 1u)>;
var<workgroup> vs: array<vec4<f32>, BK * (HS / 4u + 1u)>;
var<workgroup> ds: array<vec4<f32>, BQ * BK / 4u>; // dS of the tile
var<workgroup> red: array<f32, BQ * TPQ>; // partial sums of D

@compute @workgroup_size(BQ * TPQ)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let WG = BQ * TPQ;
  let H4 = HS / 4u;
  let K4 = H4 + 1u;
  let B4 = BK / 4u;
  let T = params.tokens;
  let h = wid.y;
  let row0 = wid.z * T;
  let q0 = wid.x * BQ;
  let r = lid / TPQ;
  let lane = lid - r * TPQ;
  let t = q0 + r;
  let live = t < T;
  let kend = min(T, q0 + BQ);
  let kvh = h / params.group;
  let kcol = params.k_offset + kvh * HS;
  let vcol = params.v_offset + kvh * HS;

  for (var i = lid; i < BQ * HS; i += WG) {
    let rr = i / HS;
    let d = i - rr * HS;
    let tt = q0 + rr;
    var qv = 0.0;
    var gv = 0.0;
    if (tt < T) {
      qv = q[params.q_offset + (row0 + tt) * params.q_stride + h * HS + d] * params.scale;
      gv = d_out[params.do_offset + (row0 + tt) * params.do_stride + h * HS + d];
    }
    qs[rr * H4 + d / 4u][d % 4u] = qv;
    dos[rr * H4 + d / 4u][d % 4u] = gv;
  }
  workgroupBarrier();
  // D_t = Σ_d dOut ⊙ out: TPQ partial sums per query, each thread then adds its row's.
  var part = 0.0;
  if (live) {
    let ob = params.o_offset + (row0 + t) * params.o_stride + h * HS;
    for (var d = lane; d < HS; d += TPQ) {
      part = fma(dos[r * H4 + d / 4u][d % 4u], o[ob + d], part);
    }
  }
  red[lid] = part;
  workgroupBarrier();
  var dt = 0.0;
  for (var i = 0u; i < TPQ; i++) {
    dt += red[r * TPQ + i];
  }
  let vec_at = (wid.z * params.n_heads + h) * T + t;
  var lt = 0.0;
  if (live) {
    lt = lse[params.lse_offset + vec_at];
    if (lane == 0u) {
      delta[params.delta_offset + vec_at] = dt;
    }
  }

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
        kv = k[kcol + (row0 + s) * params.k_stride + d];
        vv = v[vcol + (row0 + s) * params.v_stride + d];
      }
      ks[j * K4 + d / 4u][d % 4u] = kv;
      vs[j * K4 + d / 4u][d % 4u] = vv;
    }
    workgroupBarrier();
    for (var j = lane; j < BK; j += TPQ) {
      var sv = 0.0;
      var dp = 0.0;
      for (var d4 = 0u; d4 < H4; d4++) {
        sv += dot(qs[r * H4 + d4], ks[j * K4 + d4]);
        dp += dot(dos[r * H4 + d4], vs[j * K4 + d4]);
      }
      let p = select(0.0, exp(sv - lt), live && kb + j <= t);
      ds[(r * BK + j) / 4u][j % 4u] = p * (dp - dt);
    }
    workgroupBarrier();
    for (var i = 0u; i < DPT4; i++) {
      let d4 = min(i * TPQ + lane, H4 - 1u); // lanes past H4 duplicate the last vec4, never stored
      var a = acc[i];
      for (var j4 = 0u; j4 < B4; j4++) {
        let p = ds[r * B4 + j4];
        let kbase = 4u * j4 * K4 + d4;
        a = fma(vec4<f32>(p.x), ks[kbase], a);
        a = fma(vec4<f32>(p.y), ks[kbase + K4], a);
        a = fma(vec4<f32>(p.z), ks[kbase + 2u * K4], a);
        a = fma(vec4<f32>(p.w), ks[kbase + 3u * K4], a);
      }
      acc[i] = a;
    }
  }
  if (live) {
    let gb = params.g_offset + (row0 + t) * params.g_stride + h * HS;
    let accumulate = (params.flags & 1u) != 0u;
    for (var i = 0u; i < DPT4; i++) {
      let d4 = i * TPQ + lane;
      if (d4 < H4) {
        let g = acc[i] * params.scale;
        for (var c = 0u; c < 4u; c++) {
          let e = gb + 4u * d4 + c;
          dq[e] = select(g[c], g[c] + dq[e], accumulate);
        }
      }
    }
  }
}
