// attention_decode: one query (T = 1, at position pos0) against KV-cache positions 0..pos0, split over
// positions (flash-decoding): workgroup (c, h) scores positions [c * WG, (c + 1) * WG) ∩ [0, S) for query
// head h, S = pos0 + 1, with a max-subtracted softmax, and either writes the normalized output (one
// split) or its partial (max, sum, unnormalized weighted V) for attention_decode_reduce (several splits).
// Grouped-query attention: head h reads KV head h / group.
//
// Bindings (group 0):
//   0 params  uniform  AttentionParams (below)
//   1 step    uniform  Step {pos0, T = 1}
//   2 q       storage  array<f32>        q[q_offset + h * HS + d]
//   3 k       storage  array<f32>        k[k_offset + s * k_stride + kvh * HS + d], s < S (may be v's buffer)
//   4 v       storage  array<f32>        v[v_offset + s * v_stride + kvh * HS + d]
//   5 out     storage  array<f32>, rw    out[out_offset + h * HS + d] (written when S <= WG)
//   6 part    storage  array<f32>, rw    part[(h * max_splits + c) * (HS + 2) + {0: max, 1: sum, 2 + d: o}]
// Geometry: WG threads (override, a power of two ≥ 16, = positions per split, HS <= WG); dispatch
// (ceil(S / WG), nH). Scores: TPK threads share one key row (coalesced, strided over d), WG / TPK keys
// per round, partial dots summed through workgroup memory; max and sum are tree reductions; the
// weighted sum of V runs HS threads over d (coalesced) times WG / HS groups over positions.
// Workgroup memory is kept to HS + 2.125 WG floats (large workgroup arrays compile very slowly on
// llvmpipe/OpenGL, whose zero-initialization of them is superlinear in their size).

struct AttentionParams {
  n_heads: u32,
  group: u32, // nH / nKV
  q_offset: u32,
  q_stride: u32,
  k_offset: u32,
  k_stride: u32,
  v_offset: u32,
  v_stride: u32,
  out_offset: u32,
  out_stride: u32,
  max_splits: u32,
  scale: f32, // 1 / sqrt(HS)
}

struct Step {
  pos0: u32,
  tokens: u32,
  _a: u32,
  _b: u32,
}

override WG: u32 = 256u;
override HS: u32 = 64u;
override SG_POW2: u32 = 4u; // WG / HS rounded up to a power of two
const TPK: u32 = 8u; // threads per key row in the score phase
const PAD: u32 = TPK + 1u; // partial-dot row stride in workgroup memory (avoids bank conflicts)
const NEG: f32 = -3.0e38; // a finite "minus infinity": masked scores never produce NaN

@group(0) @binding(0) var<uniform> params: AttentionParams;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> part: array<f32>;

var<workgroup> qs: array<f32, HS>;
var<workgroup> dots: array<f32, (WG / TPK) * PAD>; // partial dots of one round; then reduction scratch
var<workgroup> probs: array<f32, WG>; // scores, then their exponentials

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x;
  let h = wid.y;
  let S = step.pos0 + 1u;
  let n_splits = (S + WG - 1u) / WG;
  let s0 = c * WG;
  let n = min(WG, S - min(S, s0)); // keys of this split
  let kvh = h / params.group;

  for (var d = lid; d < HS; d += WG) {
    qs[d] = q[params.q_offset + h * HS + d] * params.scale;
  }
  workgroupBarrier();

  // Scores in rounds of WG / TPK keys: thread (kg, lane) covers d = lane, lane + TPK, ... of key
  // r0 + kg, then thread j < WG / TPK sums the TPK partials of key r0 + j.
  let lane = lid % TPK;
  let kg = lid / TPK;
  let kbase = params.k_offset + kvh * HS + lane;
  for (var r0 = 0u; r0 < WG; r0 += WG / TPK) {
    var acc = 0.0;
    if (r0 + kg < n) {
      let row = kbase + (s0 + r0 + kg) * params.k_stride;
      for (var d = 0u; d + lane < HS; d += TPK) {
        acc = fma(qs[d + lane], k[row + d], acc);
      }
    }
    dots[kg * PAD + lane] = acc;
    workgroupBarrier();
    if (lid < WG / TPK) {
      var sum = 0.0;
      for (var i = 0u; i < TPK; i++) {
        sum += dots[lid * PAD + i];
      }
      probs[r0 + lid] = select(NEG, sum, r0 + lid < n);
    }
    workgroupBarrier();
  }

  let score = probs[lid];
  dots[lid] = score;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      dots[lid] = max(dots[lid], dots[lid + s]);
    }
  }
  workgroupBarrier();
  let m = dots[0];
  workgroupBarrier();
  let e = select(0.0, exp(score - m), lid < n);
  probs[lid] = e;
  dots[lid] = e;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      dots[lid] += dots[lid + s];
    }
  }
  workgroupBarrier();
  let l = dots[0];
  workgroupBarrier();

  // Weighted V: thread (g, d) sums positions g, g + WG / HS, ...; then a tree over the groups g.
  let sg = WG / HS;
  let g = lid / HS;
  let d = lid - g * HS;
  var o = 0.0;
  if (g < sg) {
    let vbase = params.v_offset + kvh * HS + d;
    for (var j = g; j < n; j += sg) {
      o = fma(probs[j], v[vbase + (s0 + j) * params.v_stride], o);
    }
  }
  dots[lid] = o;
  for (var s = SG_POW2 / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (g < s && g + s < sg) {
      dots[lid] += dots[lid + s * HS];
    }
  }
  workgroupBarrier();
  if (lid < HS) {
    if (n_splits == 1u) {
      out[params.out_offset + h * HS + lid] = dots[lid] / l;
    } else {
      let pb = (h * params.max_splits + c) * (HS + 2u);
      part[pb + 2u + lid] = dots[lid];
      if (lid == 0u) {
        part[pb] = m;
        part[pb + 1u] = l;
      }
    }
  }
}
