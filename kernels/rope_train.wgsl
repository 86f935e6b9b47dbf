// rope_train: rotary position embedding in place for training, forward or backward, over a batch of
// windows: llama2.c pairing, elements (2j, 2j+1) of each head rotate by sign · pos · theta^(−2j/hs),
// where row t sits at position pos = pos0 + (t mod window) (B windows of `window` rows each, every window
// starting at pos0). sign = +1 is the forward; sign = −1 the backward (a rotation's gradient is the
// inverse rotation). Up to two segments of one buffer (q and k) per dispatch.
//
// Bindings (group 0):
//   0 params  uniform  RopeTrainParams (below)
//   1 freqs   storage  array<vec4<f32>>  per pair j < hs/2: the frequency in turns per position, split as
//                                         a + b + c (see rope.wgsl and ropeFrequencyTable)
//   2 x       storage  array<f32>, rw    segment s: x[offset_s + t * stride_s + i], i < width_s, t < rows
// The angle is reduced in turns exactly as rope.wgsl does, so forward and inference agree bit for bit.
// Geometry: one thread per rotated pair, WG threads (override); the rows * (width0 + width1) / 2 pairs
// are numbered segment 0 first and spread over a 2-D grid (x up to 65535 workgroups).

struct RopeTrainParams {
  half_hs: u32, // hs / 2
  pairs0: u32, // width0 / 2 (pairs per row of segment 0)
  offset0: u32,
  stride0: u32,
  pairs1: u32, // width1 / 2, 0 when there is one segment
  offset1: u32,
  stride1: u32,
  rows: u32, // B * window
  window: u32, // rows per window: positions restart every `window` rows
  pos0: u32, // position of each window's first row
  sign: f32, // +1 forward, −1 backward
  _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: RopeTrainParams;
@group(0) @binding(1) var<storage, read> freqs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

const TWO_PI: f32 = 6.283185307179586;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let g = (wid.y * nwg.x + wid.x) * WG + lid;
  let n0 = params.rows * params.pairs0;
  var t: u32;
  var p: u32;
  var base: u32;
  if (g < n0) {
    t = g / params.pairs0;
    p = g - t * params.pairs0;
    base = params.offset0 + t * params.stride0;
  } else {
    let g1 = g - n0;
    if (params.pairs1 == 0u || g1 >= params.rows * params.pairs1) {
      return;
    }
    t = g1 / params.pairs1;
    p = g1 - t * params.pairs1;
    base = params.offset1 + t * params.stride1;
  }
  let f = freqs[p % params.half_hs];
  let pos = f32(params.pos0 + t % params.window);
  var turns = fract(pos * f.x) + fract(pos * f.y) + pos * f.z;
  turns = turns - round(turns);
  let angle = turns * TWO_PI;
  let c = cos(angle);
  let s = params.sign * sin(angle);
  let i = base + 2u * p;
  let a = x[i];
  let b = x[i + 1u];
  x[i] = a * c - b * s;
  x[i + 1u] = a * s + b * c;
}
