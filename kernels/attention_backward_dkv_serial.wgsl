// attention_backward_dkv_serial: attention_backward_dkv for software adapters (llvmpipe): no barriers and
// no workgroup memory. One invocation owns N consecutive key rows s0 .. s0 + N − 1 of one KV head kvh and
// window, holding their K and V rows and dK, dV accumulators in registers. For each query head h of the
// group and each query t ≥ s0 of the window (its q, dOut rows, L and D loaded once for all N keys), key
// s ≤ t gets P_ts = exp(score_ts − L_t), dV[s] (+)= Σ P_ts dOut[t, h] and dK[s] (+)= scale · Σ dS_ts q[t, h]
// with dS_ts = P_ts (dOut[t, h]·v_s − D_t) (D from the dQ pass). Sums run in a fixed order: no atomics,
// deterministic.
//
// Bindings (group 0) (layouts in _attention_train.wgsl; offsets and strides in f32 words):
//   0 params  uniform  TrainAttentionParams (windows set)
//   1 q       storage  array<E>          (B·T, nH·HS)
//   2 k       storage  array<E>          (B·T, nKV·HS)
//   3 v       storage  array<E>          (B·T, nKV·HS)
//   4 d_out   storage  array<E>          dOut (B·T, nH·HS) at do_offset, do_stride
//   5 lse     storage  array<f32>        L (B, nH, T)
//   6 delta   storage  array<f32>        D (B, nH, T)
//   7 dk      storage  array<f32>, rw    dK (B·T, nKV·HS) at g_offset, g_stride
//   8 dv      storage  array<f32>, rw    dV (B·T, nKV·HS) at g2_offset, g2_stride; through dk's binding
//                                         when flags bit 1 (one buffer holds both), this one then unused
// Both added into when flags bit 0.
// Template values (wgsl_template.ts): HS, HS4 = HS / 4, N keys per invocation, VEC4 (E = vec4<f32>: the
// offsets and strides of q, k, v and dOut are multiples of 4; else E = f32). Override WG.
// Geometry: invocation i = (wid.y · nwg.x + wid.x) · WG + lid is (window, KV head) i mod (B · nKV) of key
// block i / (B · nKV), so the lanes of a SIMD batch walk as many queries; dispatch
// ceil(B · nKV · ceil(T / N) / WG) workgroups over a 2-D grid. An invocation loops up to group · (T + 1)
// times: past 60000 the launcher takes attention_backward_dkv (llvmpipe's loop limit, see
// attention_train_forward_serial). Why serial: see attention_train_forward_serial.

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
@group(0) @binding(4) var<storage, read> d_out: array<E>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> delta: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

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
  let n_kv = params.n_heads / params.group;
  let sets = params.windows * n_kv;
  let blk = i / sets;
  let s0 = blk * N;
  if (s0 >= T) {
    return;
  }
  let hset = i - blk * sets;
  let b = hset / n_kv;
  let kvh = hset - b * n_kv;
  let row0 = b * T;

  //#for j in 0..N
  let sk${j} = s0 + ${j}u;
  //#for d in 0..HS4
  var k${j}_${d} = vec4<f32>(0.0);
  var v${j}_${d} = vec4<f32>(0.0);
  var dk${j}_${d} = vec4<f32>(0.0);
  var dv${j}_${d} = vec4<f32>(0.0);
  //#end
  if (sk${j} < T) {
    let kb = params.k_offset + (row0 + sk${j}) * params.k_stride + kvh * HS;
    let vb = params.v_offset + (row0 + sk${j}) * params.v_stride + kvh * HS;
    //#for d in 0..HS4
    k${j}_${d} = load_k(kb + ${d}u * 4u);
    v${j}_${d} = load_v(vb + ${d}u * 4u);
    //#end
  }
  //#end
  for (var g = 0u; g < params.group; g++) {
    let h = kvh * params.group + g;
    let vec_base = (b * params.n_heads + h) * T;
    var qb = params.q_offset + (row0 + s0) * params.q_stride + h * HS;
    var gb = params.do_offset + (row0 + s0) * params.do_stride + h * HS;
    for (var t = s0; t < T; t++) {
      let L = lse[params.lse_offset + vec_base + t];
      let D = delta[params.delta_offset + vec_base + t];
      //#for j in 0..N
      var sd${j} = vec4<f32>(0.0);
      var pd${j} = vec4<f32>(0.0);
      //#end
      //#for d in 0..HS4
      let q${d} = load_q(qb + ${d}u * 4u) * params.scale;
      //#for j in 0..N
      sd${j} = fma(q${d}, k${j}_${d}, sd${j});
      //#end
      //#end
      //#for d in 0..HS4
      let g${d} = load_g(gb + ${d}u * 4u);
      //#for j in 0..N
      pd${j} = fma(g${d}, v${j}_${d}, pd${j});
      //#end
      //#end
      //#for j in 0..N
      let p${j} = select(0.0, exp(hsum(sd${j}) - L), t >= sk${j});
      let ds${j} = vec4<f32>(p${j} * (hsum(pd${j}) - D));
      let pv${j} = vec4<f32>(p${j});
      //#for d in 0..HS4
      dv${j}_${d} = fma(pv${j}, g${d}, dv${j}_${d});
      dk${j}_${d} = fma(ds${j}, q${d}, dk${j}_${d});
      //#end
      //#end
      qb += params.q_stride;
      gb += params.do_stride;
    }
  }

  let accumulate = (params.flags & 1u) != 0u;
  let shared_kv = (params.flags & 2u) != 0u;
  //#for j in 0..N
  if (sk${j} < T) {
    let kb = params.g_offset + (row0 + sk${j}) * params.g_stride + kvh * HS;
    let vb = params.g2_offset + (row0 + sk${j}) * params.g2_stride + kvh * HS;
    //#for d in 0..HS4
    for (var c = 0u; c < 4u; c++) {
      let ek = kb + ${d}u * 4u + c;
      dk[ek] = select(dk${j}_${d}[c], dk${j}_${d}[c] + dk[ek], accumulate); // q was scaled on load
      let ev = vb + ${d}u * 4u + c;
      if (shared_kv) {
        dk[ev] = select(dv${j}_${d}[c], dv${j}_${d}[c] + dk[ev], accumulate);
      } else {
        dv[ev] = select(dv${j}_${d}[c], dv${j}_${d}[c] + dv[ev], accumulate);
      }
    }
    //#end
  }
  //#end
}
