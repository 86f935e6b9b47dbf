// rmsnorm_backward_weight_serial: rmsnorm_backward_weight for software adapters (llvmpipe): one invocation
// per column (or per 4 columns, VEC4) walks every row alone, no barriers and no workgroup memory.
// dW[i] (+)= Σ_t dOut[t, i] · x[t, i] · r_t (r = the saved inverse RMS per row), summed in row order
// (deterministic, no atomics).
//
// Bindings (group 0), as rmsnorm_backward_weight:
//   0 params   uniform  RmsnormWeightParams (below; offsets and strides in f32 words)
//   1 x        storage  array<E>          x[x_offset + t * x_stride + i], i < D, t < rows
//   2 g        storage  array<E>          dOut[g_offset + t * g_stride + i]
//   3 inv_rms  storage  array<f32>        r[r_offset + t]
//   4 dw       storage  array<E>, rw      dW[dw_offset + i]; added into when accumulate
// Template value VEC4 (wgsl_template.ts): E = vec4<f32>, an invocation owns columns 4c .. 4c + 3 (D and
// the offsets and strides of x, g and dw are multiples of 4), else E = f32, one column. Override WG.
// Geometry: invocation c = wid.x * WG + lid owns element c of dW (in E units), summing rows in blocks of
// BLOCK: rows + ceil(rows / BLOCK) loop iterations, within llvmpipe's 65535 per invocation or the launcher
// takes rmsnorm_backward_weight; dispatch ceil(D / L / WG) workgroups. Why serial: see rmsnorm_serial.

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

//#if VEC4
alias E = vec4<f32>;
const L: u32 = 4u; // floats per element of the arrays
//#else
alias E = f32;
const L: u32 = 1u;
//#end

override WG: u32 = 8u;
const BLOCK: u32 = 64u; // rows per partial sum

@group(0) @binding(0) var<uniform> params: RmsnormWeightParams;
@group(0) @binding(1) var<storage, read> x: array<E>;
@group(0) @binding(2) var<storage, read> g: array<E>;
@group(0) @binding(3) var<storage, read> inv_rms: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<E>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x * WG + lid;
  if (c >= params.dim / L) {
    return;
  }
  let xs = params.x_stride / L;
  let gs = params.g_stride / L;
  var xi = params.x_offset / L + c;
  var gi = params.g_offset / L + c;
  var acc = E(0.0);
  for (var t0 = 0u; t0 < params.rows; t0 += BLOCK) {
    var part = E(0.0); // blocked sums: shorter f32 chains than one sum over all rows
    for (var t = t0; t < min(params.rows, t0 + BLOCK); t++) {
      part = fma(g[gi] * x[xi], E(inv_rms[params.r_offset + t]), part);
      xi += xs;
      gi += gs;
    }
    acc += part;
  }
  let di = params.dw_offset / L + c;
  if (params.accumulate != 0u) {
    acc += dw[di];
  }
  dw[di] = acc;
}
