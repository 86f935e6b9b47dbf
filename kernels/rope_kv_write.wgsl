// rope_kv_write: rope followed by kv_write in one dispatch (each dispatch has a fixed cost, ~1.2 ms on
// llvmpipe). For the T rows of a chunk at positions pos = pos0 + t (pos0 and T from `step`):
//   q     rotated in place (rotary, llama2.c pairing, the angle exactly as rope.wgsl computes it);
//   k     rotated into cache rows pos of kc; k itself is only read, not modified (callers read keys
//         back through the cache);
//   v     copied unrotated into cache rows pos of vc.
// Same frequency table and the same operations in the same order as rope then kv_write, so the results
// are bit for bit theirs (the tests check it on llvmpipe).
//
// Bindings (group 0):
//   0 params  uniform  RopeKvWriteParams (below)
//   1 step    uniform  Step {pos0, T}
//   2 freqs   storage  array<vec4<f32>>  per pair j < hs/2: the frequency in turns per position, split
//                                         as a + b + c (see rope.wgsl)
//   3 x       storage  array<f32>, rw    q[q_offset + t * q_stride + i], i < qD, rotated in place
//   4 a1      storage  array<f32>        a second buffer holding k and/or v, else a placeholder
//   5 a2      storage  array<f32>        a third buffer holding v, else a placeholder
//   6 kc      storage  array<f32>, rw    kc[kc_offset + (pos0 + t) * kc_stride + i], i < kvD
//   7 vc      storage  array<f32>, rw    vc[vc_offset + (pos0 + t) * vc_stride + i]; with vc_slot 0
//                                         (one buffer holds both caches) values go to kc and vc is a
//                                         placeholder
// k and v are read from binding k_slot / v_slot (0: x, 1: a1, 2: a2), so q, k and v may be three
// buffers, one fused buffer or any mix: WebGPU forbids binding a buffer both read-only and writable in
// one dispatch, so a buffer that holds q is bound once, read-write. The slots are uniforms (branches the
// whole dispatch takes alike) rather than override variants: one pipeline serves every layout.
// Geometry: one thread per pair, WG threads (override): the T * qD / 2 q pairs first, then T * kvD / 2
// threads that each rotate a k pair into kc and copy the v pair at the same place into vc; consecutive
// threads take consecutive pairs of a row, spread over a 2-D grid (x up to 65535 workgroups).

struct RopeKvWriteParams {
  half_hs: u32, // hs / 2
  q_pairs: u32, // qD / 2
  kv_pairs: u32, // kvD / 2
  q_offset: u32,
  q_stride: u32,
  k_offset: u32,
  k_stride: u32,
  k_slot: u32, // 0 or 1
  v_offset: u32,
  v_stride: u32,
  v_slot: u32, // 0, 1 or 2
  kc_offset: u32,
  kc_stride: u32,
  vc_offset: u32,
  vc_stride: u32,
  vc_slot: u32, // 0: values go to kc (shared cache buffer), 1: to vc
}

struct Step {
  pos0: u32,
  tokens: u32,
  _a: u32,
  _b: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: RopeKvWriteParams;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> freqs: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read> a1: array<f32>;
@group(0) @binding(5) var<storage, read> a2: array<f32>;
@group(0) @binding(6) var<storage, read_write> kc: array<f32>;
@group(0) @binding(7) var<storage, read_write> vc: array<f32>;

const TWO_PI: f32 = 6.283185307179586;

/** (cos, sin) of the angle of pair p (index within a row) at row t; the arithmetic of rope.wgsl. */
fn rotation(t: u32, p: u32) -> vec2<f32> {
  let f = freqs[p % params.half_hs];
  let pos = f32(step.pos0 + t);
  var turns = fract(pos * f.x) + fract(pos * f.y) + pos * f.z;
  turns = turns - round(turns);
  let angle = turns * TWO_PI;
  return vec2<f32>(cos(angle), sin(angle));
}

/** Elements i and i + 1 of the activation buffer bound at `slot`. */
fn load_pair(slot: u32, i: u32) -> vec2<f32> {
  if (slot == 0u) {
    return vec2<f32>(x[i], x[i + 1u]);
  }
  if (slot == 1u) {
    return vec2<f32>(a1[i], a1[i + 1u]);
  }
  return vec2<f32>(a2[i], a2[i + 1u]);
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let g = (wid.y * nwg.x + wid.x) * WG + lid;
  let nq = step.tokens * params.q_pairs;
  if (g < nq) {
    let t = g / params.q_pairs;
    let p = g - t * params.q_pairs;
    let r = rotation(t, p);
    let i = params.q_offset + t * params.q_stride + 2u * p;
    let a = x[i];
    let b = x[i + 1u];
    x[i] = a * r.x - b * r.y;
    x[i + 1u] = a * r.y + b * r.x;
    return;
  }
  let g1 = g - nq;
  if (g1 >= step.tokens * params.kv_pairs) {
    return;
  }
  let t = g1 / params.kv_pairs;
  let p = g1 - t * params.kv_pairs;
  let r = rotation(t, p);
  let row = step.pos0 + t;
  let kk = load_pair(params.k_slot, params.k_offset + t * params.k_stride + 2u * p);
  let ki = params.kc_offset + row * params.kc_stride + 2u * p;
  kc[ki] = kk.x * r.x - kk.y * r.y;
  kc[ki + 1u] = kk.x * r.y + kk.y * r.x;
  let vv = load_pair(params.v_slot, params.v_offset + t * params.v_stride + 2u * p);
  let vi = params.vc_offset + row * params.vc_stride + 2u * p;
  if (params.vc_slot == 0u) {
    kc[vi] = vv.x;
    kc[vi + 1u] = vv.y;
  } else {
    vc[vi] = vv.x;
    vc[vi + 1u] = vv.y;
  }
}
