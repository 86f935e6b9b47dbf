// attention_backward_dq_serial: attention_backward_dq for software adapters (llvmpipe): no barriers and no
// workgroup memory. One invocation owns N (query head, query row) slots of one window, as
// attention_train_forward_serial: `heads` query heads of one KV group × qn = N / heads consecutive queries
// t0 .. t0 + qn − 1. Per slot, with g = dOut[t, h]: D_t = rowsum(dOut ⊙ out)_t (written to delta for the
// dK/dV pass), then over keys s ≤ t, each K and V row loaded once for all slots: P_ts = exp(score_ts − L_t)
// from the saved log-sum-exp, dS_ts = P_ts (g · v_s − D_t), and dQ[t, h] (+)= scale · Σ_s dS_ts k_s.
// Each invocation owns its outputs: no atomics.
//
// Bindings (group 0) (layouts in _attention_train.wgsl; offsets and strides in f32 words):
//   0 params  uniform  TrainAttentionParams (heads, windows set)
//   1 q       storage  array<E>          (B·T, nH·HS)
//   2 k       storage  array<E>          (B·T, nKV·HS)
//   3 v       storage  array<E>          (B·T, nKV·HS)
//   4 o       storage  array<E>          the forward's out (B·T, nH·HS) at o_offset, o_stride
//   5 d_out   storage  array<E>          dOut (B·T, nH·HS) at do_offset, do_stride
//   6 lse     storage  array<f32>        L (B, nH, T)
//   7 delta   storage  array<f32>, rw    D (B, nH, T)
//   8 dq      storage  array<f32>, rw    dQ (B·T, nH·HS) at g_offset, g_stride; added into when flags bit 0
// Template values (wgsl_template.ts): HS, HS4 = HS / 4, N slots per invocation, VEC4 (E = vec4<f32>: the
// offsets and strides of q, k, v, o and dOut are multiples of 4; else E = f32). Override WG.
// Geometry: as attention_train_forward_serial (head sets fastest, then query blocks); dispatch
// ceil(B · nH / heads · ceil(T / qn) / WG) workgroups over a 2-D grid; at most T loop iterations (see
// attention_train_forward_serial on llvmpipe's loop limit). Why serial: see attention_train_forward_serial.

override WG: u32 = 8u;
const HS: u32 = ${HS}u;
const N: u32 = ${N}u;

//#include _attention_train

//#if VEC4
alias E = vec4<f32>;
//#else
alias E = f32;
//#end

@group(0) @binding(0) var<uniform> params: TrainAttentionParams;
@group(0) @binding(1) var<storage, read> q: array<E>;
@group(0) @binding(2) var<storage, read> k: array<E>;
@group(0) @binding(3) var<storage, read> v: array<E>;
@group(0) @binding(4) var<storage, read> o: array<E>;
@group(0) @binding(5) var<storage, read> d_out: array<E>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read_write> delta: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;

// Four floats from word i (a multiple of 4 when VEC4).
//#if VEC4
fn load_q(i: u32) -> vec4<f32> {
  return q[i / 4u];
}

fn load_k(i: u32) -> vec4<f32> {
  return k[i / 4u];
}

fn load_v(i: u32) -> vec4<f32> {
  return v[i / 4u];
}

fn load_o(i: u32) -> vec4<f32> {
  return o[i / 4u];
}

fn load_g(i: u32) -> vec4<f32> {
  return d_out[i / 4u];
}
//#else
fn load_q(i: u32) -> vec4<f32> {
  return vec4<f32>(q[i], q[i + 1u], q[i + 2u], q[i + 3u]);
}

fn load_k(i: u32) -> vec4<f32> {
  return vec4<f32>(k[i], k[i + 1u], k[i + 2u], k[i + 3u]);
}

fn load_v(i: u32) -> vec4<f32> {
  return vec4<f32>(v[i], v[i + 1u], v[i + 2u], v[i + 3u]);
}

fn load_o(i: u32) -> vec4<f32> {
  return vec4<f32>(o[i], o[i + 1u], o[i + 2u], o[i + 3u]);
}

fn load_g(i: u32) -> vec4<f32> {
  return vec4<f32>(d_out[i], d_out[i + 1u], d_out[i + 2u], d_out[i + 3u]);
}
//#end

fn hsum(x: vec4<f32>) -> f32 {
  return (x.x + x.y) + (x.z + x.w);
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid;
  let T = params.tokens;
  let heads = params.heads;
  let qn = N / heads; // queries per invocation
  let n_sets = params.n_heads / heads;
  let sets = params.windows * n_sets; // head sets of all windows
  let blk = i / sets;
  let t0 = blk * qn;
  if (t0 >= T) {
    return;
  }
  let hset = i - blk * sets;
  let b = hset / n_sets;
  let h0 = (hset - b * n_sets) * heads;
  let row0 = b * T;
  let kvh = h0 / params.group;

  //#for j in 0..N
  let hq${j} = h0 + ${j}u / qn;
  let tq${j} = t0 + ${j}u % qn;
  //#for d in 0..HS4
  var q${j}_${d} = vec4<f32>(0.0);
  var g${j}_${d} = vec4<f32>(0.0);
  var a${j}_${d} = vec4<f32>(0.0);
  //#end
  var L${j} = 0.0;
  var D${j} = 0.0;
  if (tq${j} < T) {
    let qb = params.q_offset + (row0 + tq${j}) * params.q_stride + hq${j} * HS;
    let gb = params.do_offset + (row0 + tq${j}) * params.do_stride + hq${j} * HS;
    let ob = params.o_offset + (row0 + tq${j}) * params.o_stride + hq${j} * HS;
    var dd = vec4<f32>(0.0);
    //#for d in 0..HS4
    q${j}_${d} = load_q(qb + ${d}u * 4u) * params.scale;
    g${j}_${d} = load_g(gb + ${d}u * 4u);
    dd = fma(g${j}_${d}, load_o(ob + ${d}u * 4u), dd);
    //#end
    D${j} = hsum(dd);
    let vec_at = (b * params.n_heads + hq${j}) * T + tq${j};
    L${j} = lse[params.lse_offset + vec_at];
    delta[params.delta_offset + vec_at] = D${j};
  }
  //#end
  let send = min(T, t0 + qn); // keys 0 .. send − 1 are visible to some slot
  var kb = params.k_offset + row0 * params.k_stride + kvh * HS;
  var vb = params.v_offset + row0 * params.v_stride + kvh * HS;
  for (var s = 0u; s < send; s++) {
    //#for j in 0..N
    var sd${j} = vec4<f32>(0.0);
    var pd${j} = vec4<f32>(0.0);
    //#end
    //#for d in 0..HS4
    let k${d} = load_k(kb + ${d}u * 4u);
    //#for j in 0..N
    sd${j} = fma(q${j}_${d}, k${d}, sd${j});
    //#end
    //#end
    //#for d in 0..HS4
    let v${d} = load_v(vb + ${d}u * 4u);
    //#for j in 0..N
    pd${j} = fma(g${j}_${d}, v${d}, pd${j});
    //#end
    //#end
    //#for j in 0..N
    let p${j} = select(0.0, exp(hsum(sd${j}) - L${j}), s <= tq${j});
    let ds${j} = vec4<f32>(p${j} * (hsum(pd${j}) - D${j}));
    //#for d in 0..HS4
    a${j}_${d} = fma(ds${j}, k${d}, a${j}_${d});
    //#end
    //#end
    kb += params.k_stride;
    vb += params.v_stride;
  }

  let accumulate = (params.flags & 1u) != 0u;
  //#for j in 0..N
  if (tq${j} < T) {
    let db = params.g_offset + (row0 + tq${j}) * params.g_stride + hq${j} * HS;
    //#for d in 0..HS4
    let r${j}_${d} = a${j}_${d} * params.scale;
    for (var c = 0u; c < 4u; c++) {
      let e = db + ${d}u * 4u + c;
      dq[e] = select(r${j}_${d}[c], r${j}_${d}[c] + dq[e], accumulate);
    }
    //#end
  }
  //#end
}
