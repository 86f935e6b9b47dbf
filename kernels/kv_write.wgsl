// kv_write: appends the new keys and values of a chunk to one layer's KV cache: rows t < T of k and v
// go to cache rows pos0 + t (pos0 and T from `step`). A kernel rather than copyBufferToBuffer so that a
// whole layer records into one compute pass and the position comes from the same uniform as rope's.
//
// Bindings (group 0):
//   0 params  uniform  KvWriteParams (below)
//   1 step    uniform  Step {pos0, T}
//   2 k       storage  array<f32>        k[k_offset + t * k_stride + i], i < kvD
//   3 v       storage  array<f32>        v[v_offset + t * v_stride + i]
//   4 kc      storage  array<f32>, rw    kc[kc_offset + (pos0 + t) * kc_stride + i]
//   5 vc      storage  array<f32>, rw    vc[vc_offset + (pos0 + t) * vc_stride + i]; with V_IN_K (one
//                                         buffer holds both caches) values go to kc[vc_offset + ...]
//                                         and vc is an unused placeholder
// Geometry: one thread per element of (T, kvD), WG threads (override); dispatch (ceil(kvD / WG), T), so
// consecutive threads move consecutive elements of a row.

struct KvWriteParams {
  kv_dim: u32,
  k_offset: u32,
  k_stride: u32,
  v_offset: u32,
  v_stride: u32,
  kc_offset: u32,
  kc_stride: u32,
  vc_offset: u32,
  vc_stride: u32,
  _a: u32,
  _b: u32,
  _c: u32,
}

struct Step {
  pos0: u32,
  tokens: u32,
  _a: u32,
  _b: u32,
}

override WG: u32 = 256u;
override V_IN_K: bool = false;

@group(0) @binding(0) var<uniform> params: KvWriteParams;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> kc: array<f32>;
@group(0) @binding(5) var<storage, read_write> vc: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y;
  let i = wid.x * WG + lid;
  if (t >= step.tokens || i >= params.kv_dim) {
    return;
  }
  let row = step.pos0 + t;
  kc[params.kc_offset + row * params.kc_stride + i] = k[params.k_offset + t * params.k_stride + i];
  let vv = v[params.v_offset + t * params.v_stride + i];
  let vi = params.vc_offset + row * params.vc_stride + i;
  if (V_IN_K) {
    kc[vi] = vv;
  } else {
    vc[vi] = vv;
  }
}
