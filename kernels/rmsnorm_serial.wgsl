// rmsnorm_serial: rmsnorm / rmsnorm_train for software adapters (llvmpipe): one invocation per row, no
// barriers and no workgroup memory. out[t, :] = w ⊙ x[t, :] · r_t with r_t = 1 / sqrt(mean(x[t, :]²) + eps);
// the training variant (SAVE = 1) also writes r_t, the inverse RMS, for the backward.
//
// Bindings (group 0):
//   0 params   uniform  RmsnormTrainParams (below; offsets and strides in f32 words)
//   1 x        storage  array<E>          x[x_offset + t * x_stride + i], i < D, t < rows
//   2 w        storage  array<E>          w[w_offset + i]
//   3 out      storage  array<E>, rw      out[out_offset + t * out_stride + i] (a buffer other than x)
//   4 inv_rms  storage  array<f32>, rw    inv_rms[r_offset + t] (SAVE = 1 only)
// Template values (wgsl_template.ts): SAVE (write inv_rms), VEC4 (E = vec4<f32>: D, the offsets of x, w,
// out and the strides are multiples of 4, so each load moves 4 floats; else E = f32). Override WG.
// Geometry: invocation t = (wid.y * nwg.x + wid.x) * WG + lid walks row t twice (sum of squares in blocks of
// BLOCK elements, then the output); dispatch ceil(rows / WG) workgroups over a 2-D grid. That is
// 2·n + ceil(n / BLOCK) loop iterations (n = D / L): llvmpipe silently ends an invocation's loops after
// 65535 iterations in all, so the launcher records the parallel kernel for longer rows.
//
// Why: llvmpipe runs the WG invocations of a workgroup as SIMD lanes, re-enters every invocation at each
// workgroupBarrier and turns every workgroup-memory access into a per-lane loop (docs/kernels.md):
// rmsnorm_train's GPU shape (a workgroup of 64 per row, a tree reduction) took ~4.5 ms there for 512 rows
// of 64, this kernel ~0.2 ms. Here neighbouring lanes own neighbouring rows and nothing is shared.

struct RmsnormTrainParams {
  dim: u32,
  rows: u32,
  x_offset: u32,
  x_stride: u32,
  w_offset: u32,
  out_offset: u32,
  out_stride: u32,
  r_offset: u32,
  eps: f32,
  _a: u32,
  _b: u32,
  _c: u32,
}

//#if VEC4
alias E = vec4<f32>;
const L: u32 = 4u; // floats per element of the arrays

fn total(v: E) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}
//#else
alias E = f32;
const L: u32 = 1u;

fn total(v: E) -> f32 {
  return v;
}
//#end

override WG: u32 = 8u;
const BLOCK: u32 = 64u; // elements (E) per partial sum

@group(0) @binding(0) var<uniform> params: RmsnormTrainParams;
@group(0) @binding(1) var<storage, read> x: array<E>;
@group(0) @binding(2) var<storage, read> w: array<E>;
@group(0) @binding(3) var<storage, read_write> out: array<E>;
//#if SAVE
@group(0) @binding(4) var<storage, read_write> inv_rms: array<f32>;
//#end

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = (wid.y * nwg.x + wid.x) * WG + lid;
  if (t >= params.rows) {
    return;
  }
  let n = params.dim / L;
  let xo = (params.x_offset + t * params.x_stride) / L;
  let oo = (params.out_offset + t * params.out_stride) / L;
  let wo = params.w_offset / L;
  var ss = E(0.0);
  for (var i0 = 0u; i0 < n; i0 += BLOCK) {
    var part = E(0.0); // blocked sums: shorter f32 chains than one sum over the row
    for (var i = i0; i < min(n, i0 + BLOCK); i++) {
      let v = x[xo + i];
      part = fma(v, v, part);
    }
    ss += part;
  }
  let inv = 1.0 / sqrt(total(ss) / f32(params.dim) + params.eps);
  for (var i = 0u; i < n; i++) {
    out[oo + i] = w[wo + i] * (inv * x[xo + i]);
  }
//#if SAVE
  inv_rms[params.r_offset + t] = inv;
//#end
}
