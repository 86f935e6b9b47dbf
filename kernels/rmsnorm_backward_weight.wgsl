// rmsnorm_backward_weight: the weight gradient of RMSNorm out = w ⊙ x · r over a batch of rows:
// dW[i] (+)= Σ_t dOut[t, i] · x[t, i] · r_t (r = the saved inverse RMS per row). No float atomics: each
// workgroup owns a block of COLS columns and walks every row, in a fixed order (deterministic).
//
// Bindings (group 0):
//   0 params   uniform  RmsnormWeightParams (below)
//   1 x        storage  array<f32>        x[x_offset + t * x_stride + i], i < D, t < rows
//   2 g        storage  array<f32>        dOut[g_offset + t * g_stride + i]
//   3 inv_rms  storage  array<f32>        r[r_offset + t]
//   4 dw       storage  array<f32>, rw    dW[dw_offset + i]; added into when accumulate
// Geometry: COLS × RL threads (overrides; RL a power of two). Thread (lane c, row lane l) sums rows
// l, l + RL, l + 2·RL, … of column wid.x * COLS + c, so a warp reads COLS consecutive floats of a row
// (coalesced); the RL partial sums of a column are then added in workgroup memory. Dispatch
// (ceil(D / COLS)).

struct RmsnormWeightParams {
  dim: u32,
  rows: u32,
  x_offset: u32,
  x_stride: u32,
  g_offset: u32,
  g_stride: u32,
  r_offset: u32,
  dw_offset: u32,
  accumulate: u32, // 1: dW += gradient, 0: dW = gradient
  _a: u32,
  _b: u32,
  _c: u32,
}

override COLS: u32 = 32u;
override RL: u32 = 8u;

@group(0) @binding(0) var<uniform> params: RmsnormWeightParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> inv_rms: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;

var<workgroup> red: array<f32, COLS * RL>;

@compute @workgroup_size(COLS * RL)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let l = lid / COLS;
  let c = lid - l * COLS;
  let i = wid.x * COLS + c;
  var acc = 0.0;
  if (i < params.dim) {
    for (var t = l; t < params.rows; t += RL) {
      let xv = x[params.x_offset + t * params.x_stride + i];
      acc = fma(g[params.g_offset + t * params.g_stride + i] * xv, inv_rms[params.r_offset + t], acc);
    }
  }
  red[lid] = acc;
  for (var s = RL / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (l < s) {
      red[lid] += red[lid + s * COLS];
    }
  }
  if (l == 0u && i < params.dim) {
    var v = red[c];
    if (params.accumulate != 0u) {
      v += dw[params.dw_offset + i];
    }
    dw[params.dw_offset + i] = v;
  }
}
