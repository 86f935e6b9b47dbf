// attention_train_forward_serial: attention_train_forward for software adapters (llvmpipe): no barriers and
// no workgroup memory. One invocation owns N (query head, query row) slots of one window: `heads` query
// heads of one KV group (runtime, a power of two dividing N and the group) × qn = N / heads consecutive
// queries t0 .. t0 + qn − 1. It walks keys 0 .. t0 + qn − 1 of its window once, loading each K and V row
// once for all N slots, with an online softmax per slot (running max m, sum l, unnormalized output o,
// rescaled by e^(m_old − m_new)); keys past a slot's query get probability 0. It writes out = o / l and
// lse = m + ln l, as attention_train_forward.
//
// Bindings (group 0) (layouts in _attention_train.wgsl; offsets and strides in f32 words):
//   0 params  uniform  TrainAttentionParams (heads, windows set)
//   1 q       storage  array<E>          (B·T, nH·HS)
//   2 k       storage  array<E>          (B·T, nKV·HS)
//   3 v       storage  array<E>          (B·T, nKV·HS)
//   4 out     storage  array<f32>, rw    (B·T, nH·HS) at o_offset, o_stride
//   5 lse     storage  array<f32>, rw    (B, nH, T)
// Template values (wgsl_template.ts): HS head size, HS4 = HS / 4, N slots per invocation, VEC4 (E =
// vec4<f32>: the offsets and strides of q, k and v are multiples of 4; else E = f32 and each vec4 is four
// scalar loads). Override WG (invocations per workgroup).
// Geometry: invocation i = (wid.y · nwg.x + wid.x) · WG + lid is head set (b, h0 / heads) = i mod
// (B · nH / heads) of query block i / (B · nH / heads): the lanes of a SIMD batch walk as many keys.
// Dispatch ceil(B · nH / heads · ceil(T / qn) / WG) workgroups over a 2-D grid. An invocation loops at most
// T times: llvmpipe silently ends an invocation's loops after 65535 iterations in all, so the launcher
// takes attention_train_forward for longer windows.
//
// Why: llvmpipe runs a workgroup's invocations as SIMD lanes, re-enters every invocation at each
// workgroupBarrier and turns every workgroup-memory and storage access into a per-lane loop of scalar
// loads, which costs more than the arithmetic: attention_train_forward's tiles spent most of their time in
// barriers and shared-memory traffic there. Here the loads (K and V rows) are shared by N slots held in
// registers: q, o and the softmax state are separate variables (unrolled; an indexed private array would
// be a per-lane gather).

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
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

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
//#end

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
  var o${j}_${d} = vec4<f32>(0.0);
  //#end
  if (tq${j} < T) {
    let qb = params.q_offset + (row0 + tq${j}) * params.q_stride + hq${j} * HS;
    //#for d in 0..HS4
    q${j}_${d} = load_q(qb + ${d}u * 4u) * params.scale;
    //#end
  }
  var m${j} = NEG;
  var l${j} = 0.0;
  //#end
  let send = min(T, t0 + qn); // keys 0 .. send − 1 are visible to some slot
  var kb = params.k_offset + row0 * params.k_stride + kvh * HS;
  var vb = params.v_offset + row0 * params.v_stride + kvh * HS;
  for (var s = 0u; s < send; s++) {
    //#for j in 0..N
    var dot${j} = vec4<f32>(0.0);
    //#end
    //#for d in 0..HS4
    let k${d} = load_k(kb + ${d}u * 4u);
    //#for j in 0..N
    dot${j} = fma(q${j}_${d}, k${d}, dot${j});
    //#end
    //#end
    // Key 0 is visible to every slot, so m is finite from then on and a masked key (score NEG) gets
    // p = e^(NEG − m) = 0 and a = 1. Rescaling unconditionally is cheaper than a divergent branch.
    //#for j in 0..N
    let score${j} = select(NEG, (dot${j}.x + dot${j}.y) + (dot${j}.z + dot${j}.w), s <= tq${j});
    let mn${j} = max(m${j}, score${j});
    let a${j} = exp(m${j} - mn${j});
    let p${j} = exp(score${j} - mn${j});
    l${j} = fma(l${j}, a${j}, p${j});
    m${j} = mn${j};
    //#end
    //#for d in 0..HS4
    let v${d} = load_v(vb + ${d}u * 4u);
    //#for j in 0..N
    o${j}_${d} = fma(o${j}_${d}, vec4<f32>(a${j}), p${j} * v${d});
    //#end
    //#end
    kb += params.k_stride;
    vb += params.v_stride;
  }

  //#for j in 0..N
  if (tq${j} < T) {
    let ob = params.o_offset + (row0 + tq${j}) * params.o_stride + hq${j} * HS;
    let inv${j} = 1.0 / l${j};
    //#for d in 0..HS4
    let r${j}_${d} = o${j}_${d} * inv${j};
    out[ob + ${d}u * 4u] = r${j}_${d}.x;
    out[ob + ${d}u * 4u + 1u] = r${j}_${d}.y;
    out[ob + ${d}u * 4u + 2u] = r${j}_${d}.z;
    out[ob + ${d}u * 4u + 3u] = r${j}_${d}.w;
    //#end
    lse[params.lse_offset + (b * params.n_heads + hq${j}) * T + tq${j}] = m${j} + log(l${j});
  }
  //#end
}
