// swiglu_backward: the gradients of out = silu(a) ⊙ b, silu(a) = a·σ(a), elementwise over (rows, cols):
// dA (+)= g ⊙ b ⊙ σ(a)(1 + a(1 − σ(a))),  dB (+)= g ⊙ silu(a), with g = dOut.
//
// Bindings (group 0):
//   0 params  uniform  SwigluBackwardParams (below)
//   1 g       storage  array<f32>        dOut[g_offset + r * g_stride + i], i < cols
//   2 a       storage  array<f32>        a[a_offset + r * a_stride + i] (the w1 output)
//   3 b       storage  array<f32>        b[b_offset + r * b_stride + i] (the w3 output; may be a's buffer)
//   4 da      storage  array<f32>, rw    dA[da_offset + r * da_stride + i]
//   5 db      storage  array<f32>, rw    dB[db_offset + r * db_stride + i]; when db_in_da (one buffer holds
//                                         both gradients, e.g. that of a fused w1|w3 output) dB is written
//                                         through da's binding and this one is an unused placeholder
// Geometry: one thread per element, WG threads (override) along a row (coalesced); dispatch
// (ceil(cols / WG), rows).

struct SwigluBackwardParams {
  cols: u32,
  g_offset: u32,
  g_stride: u32,
  a_offset: u32,
  a_stride: u32,
  b_offset: u32,
  b_stride: u32,
  da_offset: u32,
  da_stride: u32,
  db_offset: u32,
  db_stride: u32,
  flags: u32, // bit 0: accumulate (+=), bit 1: db_in_da
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: SwigluBackwardParams;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> da: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x * WG + lid;
  if (i >= params.cols) {
    return;
  }
  let r = wid.y;
  let gv = g[params.g_offset + r * params.g_stride + i];
  let av = a[params.a_offset + r * params.a_stride + i];
  let bv = b[params.b_offset + r * params.b_stride + i];
  let sig = 1.0 / (1.0 + exp(-av));
  var dav = gv * bv * sig * (1.0 + av * (1.0 - sig));
  var dbv = gv * av * sig;
  let ia = params.da_offset + r * params.da_stride + i;
  let ib = params.db_offset + r * params.db_stride + i;
  let accumulate = (params.flags & 1u) != 0u;
  if (accumulate) {
    dav += da[ia];
  }
  da[ia] = dav;
  if ((params.flags & 2u) != 0u) {
    if (accumulate) {
      dbv += da[ib];
    }
    da[ib] = dbv;
  } else {
    if (accumulate) {
      dbv += db[ib];
    }
    db[ib] = dbv;
  }
}
