// rope: rotary position embedding in place, llama2.c pairing: elements (2j, 2j+1) of each head rotate
// by the angle pos · theta^(−2j/hs), where row t sits at position pos = pos0 + t (pos0 from `step`, so
// decode steps reuse the pipeline and bind group). Up to two segments of one buffer (q and k) per dispatch.
//
// Bindings (group 0):
//   0 params  uniform  RopeParams (below)
//   1 step    uniform  Step {pos0, T}
//   2 freqs   storage  array<vec4<f32>>  per pair j < hs/2: the frequency in turns per position,
//                                         f_j = theta^(−2j/hs) / 2π, split as a + b + c (w unused)
//   3 x       storage  array<f32>, rw    segment s: x[offset_s + t * stride_s + i], i < width_s
// The angle is computed in turns: a and b carry 8 significant bits each, so pos · a and pos · b are exact
// in f32 for pos < 2^16 and fract() of them is exact; c is the small remainder. The reduced angle lies in
// [−π, π], where sin and cos are accurate on every backend (no large-argument error at long contexts).
// Geometry: one thread per rotated pair, WG threads (override); the T * (width0 + width1) / 2 pairs are
// numbered segment 0 first and spread over a 2-D grid (x up to 65535 workgroups).

struct RopeParams {
  half_hs: u32, // hs / 2
  pairs0: u32, // width0 / 2 (pairs per row of segment 0)
  offset0: u32,
  stride0: u32,
  pairs1: u32, // width1 / 2, 0 when there is one segment
  offset1: u32,
  stride1: u32,
  _pad: u32,
}

struct Step {
  pos0: u32,
  tokens: u32,
  _a: u32,
  _b: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: RopeParams;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> freqs: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

const TWO_PI: f32 = 6.283185307179586;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let g = (wid.y * nwg.x + wid.x) * WG + lid;
  let n0 = step.tokens * params.pairs0;
  var t: u32;
  var p: u32;
  var base: u32;
  if (g < n0) {
    t = g / params.pairs0;
    p = g - t * params.pairs0;
    base = params.offset0 + t * params.stride0;
  } else {
    let g1 = g - n0;
    if (params.pairs1 == 0u || g1 >= step.tokens * params.pairs1) {
      return;
    }
    t = g1 / params.pairs1;
    p = g1 - t * params.pairs1;
    base = params.offset1 + t * params.stride1;
  }
  let f = freqs[p % params.half_hs];
  let pos = f32(step.pos0 + t);
  var turns = fract(pos * f.x) + fract(pos * f.y) + pos * f.z;
  turns = turns - round(turns);
  let angle = turns * TWO_PI;
  let c = cos(angle);
  let s = sin(angle);
  let i = base + 2u * p;
  let a = x[i];
  let b = x[i + 1u];
  x[i] = a * c - b * s;
  x[i + 1u] = a * s + b * c;
}
