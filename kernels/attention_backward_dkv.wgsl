// attention_backward_dkv: second pass of the training attention backward (attention_train_forward's
// layouts), over key blocks. For key s of KV head kvh, summing over the query heads h of its group and
// the queries t ≥ s of its window (P_ts = exp(score_ts − L_t) recomputed, D from the dQ pass):
// dV[s] (+)= Σ P_ts dOut[t, h],  dK[s] (+)= scale · Σ dS_ts q[t, h] with dS_ts = P_ts (dOut[t, h]·v_s − D_t).
// Each workgroup owns BK key rows of dK and dV and sums in registers in a fixed order: no atomics, and
// the result is deterministic.
//
// Bindings (group 0) (layouts in _attention_train.wgsl):
//   0 params  uniform  TrainAttentionParams
//   1 q       storage  array<f32>        (B·T, nH·HS)
//   2 k       storage  array<f32>        (B·T, nKV·HS)
//   3 v       storage  array<f32>        (B·T, nKV·HS)
//   4 d_out   storage  array<f32>        dOut (B·T, nH·HS) at do_offset, do_stride
//   5 lse     storage  array<f32>        L (B, nH, T)
//   6 delta   storage  array<f32>        D (B, nH, T)
//   7 dk      storage  array<f32>, rw    dK (B·T, nKV·HS) at g_offset, g_stride
//   8 dv      storage  array<f32>, rw    dV (B·T, nKV·HS) at g2_offset, g2_stride; through dk's binding
//                                         when flags bit 1 (one buffer holds both), this one then unused
// Both added into when flags bit 0.
// Geometry (override constants): a workgroup holds BK keys of KV head wid.y in window wid.z, TPK threads
// per key, and streams BQ queries at a time (q and dOut rows padded by one vec4 against bank conflicts;
// BQ a multiple of 4) for each head of the group, from the query tile holding its first key onwards.
// Thread (j, lane) computes P and dS of queries lane, lane + TPK, … and owns dK and dV vec4s lane,
// lane + TPK, … (DPT4 ≤ MAX_DPT4) in registers. Dispatch (ceil(T / BK), nKV, B). Workgroup memory:
// 2·BK·HS + 2·BQ·(HS + 4) + 2·BK·BQ + 2·BQ floats.

override HS: u32 = 64u;
override BQ: u32 = 16u;
override BK: u32 = 16u;
override TPK: u32 = 16u;
override DPT4: u32 = 1u;

//#include _attention_train

@group(0) @binding(0) var<uniform> params: TrainAttentionParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> d_out: array<f32>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> delta: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

var<workgroup> ks: array<vec4<f32>, BK * (HS / 4u)>;
var<workgroup> vs: array<vec4<f32>, BK * (HS / 4u)>;
var<workgroup> qs: array<vec4<f32>, BQ * (HS / 4u + 1u)>; // q · scale
var<workgroup> dos: array<vec4<f32>, BQ * (HS / 4u + 1u)>;
var<workgroup> ps: array<vec4<f32>, BK * BQ / 4u>; // P of the tile, per key row
var<workgroup> dss: array<vec4<f32>, BK * BQ / 4u>; // dS of the tile, per key row
var<workgroup> rowv: array<vec2<f32>, BQ>; // (L, D) of the tile's queries

@compute @workgroup_size(BK * TPK)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let WG = BK * TPK;
  let H4 = HS / 4u;
  let Q4 = H4 + 1u;
  let R4 = BQ / 4u;
  let T = params.tokens;
  let kvh = wid.y;
  let row0 = wid.z * T;
  let k0 = wid.x * BK;
  let j = lid / TPK;
  let lane = lid - j * TPK;
  let s = k0 + j;
  let live = s < T;

  for (var i = lid; i < BK * HS; i += WG) {
    let jj = i / HS;
    let d = i - jj * HS;
    let ss = k0 + jj;
    var kv = 0.0;
    var vv = 0.0;
    if (ss < T) {
      kv = k[params.k_offset + (row0 + ss) * params.k_stride + kvh * HS + d];
      vv = v[params.v_offset + (row0 + ss) * params.v_stride + kvh * HS + d];
    }
    ks[jj * H4 + d / 4u][d % 4u] = kv;
    vs[jj * H4 + d / 4u][d % 4u] = vv;
  }

  var acc_k: array<vec4<f32>, MAX_DPT4>;
  var acc_v: array<vec4<f32>, MAX_DPT4>;
  for (var i = 0u; i < DPT4; i++) {
    acc_k[i] = vec4<f32>(0.0);
    acc_v[i] = vec4<f32>(0.0);
  }
  let qstart = (k0 / BQ) * BQ; // queries before the first key see none of this block
  for (var g = 0u; g < params.group; g++) {
    let h = kvh * params.group + g;
    let vec_base = (wid.z * params.n_heads + h) * T;
    for (var qb = qstart; qb < T; qb += BQ) {
      workgroupBarrier();
      for (var i = lid; i < BQ * HS; i += WG) {
        let rr = i / HS;
        let d = i - rr * HS;
        let tt = qb + rr;
        var qv = 0.0;
        var gv = 0.0;
        if (tt < T) {
          qv = q[params.q_offset + (row0 + tt) * params.q_stride + h * HS + d] * params.scale;
          gv = d_out[params.do_offset + (row0 + tt) * params.do_stride + h * HS + d];
        }
        qs[rr * Q4 + d / 4u][d % 4u] = qv;
        dos[rr * Q4 + d / 4u][d % 4u] = gv;
      }
      for (var rr = lid; rr < BQ; rr += WG) {
        let tt = qb + rr;
        var lv = vec2<f32>(0.0);
        if (tt < T) {
          lv = vec2<f32>(lse[params.lse_offset + vec_base + tt], delta[params.delta_offset + vec_base + tt]);
        }
        rowv[rr] = lv;
      }
      workgroupBarrier();
      for (var rr = lane; rr < BQ; rr += TPK) {
        var sv = 0.0;
        var dp = 0.0;
        for (var d4 = 0u; d4 < H4; d4++) {
          sv += dot(ks[j * H4 + d4], qs[rr * Q4 + d4]);
          dp += dot(vs[j * H4 + d4], dos[rr * Q4 + d4]);
        }
        let tt = qb + rr;
        let lv = rowv[rr];
        let p = select(0.0, exp(sv - lv.x), live && tt < T && tt >= s);
        ps[(j * BQ + rr) / 4u][rr % 4u] = p;
        dss[(j * BQ + rr) / 4u][rr % 4u] = p * (dp - lv.y);
      }
      workgroupBarrier();
      for (var i = 0u; i < DPT4; i++) {
        let d4 = min(i * TPK + lane, H4 - 1u); // lanes past H4 duplicate the last vec4, never stored
        var ak = acc_k[i];
        var av = acc_v[i];
        for (var r4 = 0u; r4 < R4; r4++) {
          let p = ps[j * R4 + r4];
          let e = dss[j * R4 + r4];
          let base = 4u * r4 * Q4 + d4;
          av = fma(vec4<f32>(p.x), dos[base], av);
          av = fma(vec4<f32>(p.y), dos[base + Q4], av);
          av = fma(vec4<f32>(p.z), dos[base + 2u * Q4], av);
          av = fma(vec4<f32>(p.w), dos[base + 3u * Q4], av);
          ak = fma(vec4<f32>(e.x), qs[base], ak);
          ak = fma(vec4<f32>(e.y), qs[base + Q4], ak);
          ak = fma(vec4<f32>(e.z), qs[base + 2u * Q4], ak);
          ak = fma(vec4<f32>(e.w), qs[base + 3u * Q4], ak);
        }
        acc_k[i] = ak;
        acc_v[i] = av;
      }
    }
  }
  if (live) {
    let accumulate = (params.flags & 1u) != 0u;
    let shared_kv = (params.flags & 2u) != 0u;
    let kb = params.g_offset + (row0 + s) * params.g_stride + kvh * HS;
    let vb = params.g2_offset + (row0 + s) * params.g2_stride + kvh * HS;
    for (var i = 0u; i < DPT4; i++) {
      let d4 = i * TPK + lane;
      if (d4 < H4) {
        let gk = acc_k[i]; // q was scaled on load: this is scale · Σ dS q
        let gv = acc_v[i];
        for (var c = 0u; c < 4u; c++) {
          let ek = kb + 4u * d4 + c;
          dk[ek] = select(gk[c], gk[c] + dk[ek], accumulate);
          let ev = vb + 4u * d4 + c;
          if (shared_kv) {
            dk[ev] = select(gv[c], gv[c] + dk[ev], accumulate);
          } else {
            dv[ev] = select(gv[c], gv[c] + dv[ev], accumulate);
          }
        }
      }
    }
  }
}
