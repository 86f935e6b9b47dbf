// coupled_backward_serial: the derivation backward (METHOD.md §2, §5) in one pass over dWhat, shaped for
// software adapters (llvmpipe): the latent gradient dW (straight-through), the column sums
// dh_i[c] = Σ_r dWhat[r, c]·B_i[r, c]·g_i[r] over one block of rows, and the row sums
// dg_i[r] = Σ_c dWhat[r, c]·B_i[r, c]·h_i[c] over the 32 columns of one plane word. The partial sums are
// finished by coupled_backward_dh (over row blocks for dh, over plane words for dg) unless one block or
// one word covers the whole reduction (DIRECT flags). Same dW as coupled_backward bit for bit.
// Coupled (STANDARD = 0): dW = dWhat, or 0 where |W[r, c]| > clip · Σ_i |g_i[r]|·|h_i[c]| (CLIP).
// Standard (STANDARD = 1): dW_i = dWhat (CHAIN: dWhat ⊙ g_i h_iᵀ), or 0 where
// |W_i[r, c]| > clip · |g_i[r]·h_i[c]| (CLIP). CPU reference: coupledBackward / standardBackward in
// src/quant/coupled.ts.
//
// Bindings (group 0), E = vec4<f32>: indices of E arrays in vec4s; the offsets and strides below are in
// f32 words and, for E arrays, like `in` multiples of 4 (the launcher records the parallel kernels for
// other views):
//   0 params  uniform  BackwardParams (below)
//   1 dwh     storage  array<E>            dWhat[r, c] = dwh[d_offset + r * d_stride + c]          (out, in)
//   2 planes  storage  array<u32>          B_i row r word v = planes[p_offset + (i * out + r) * p_stride + v]
//                                          (k, out, ceil(in / 32)), the layout of src/quant/bitpack.ts
//   3 g       storage  array<f32>          g_i[r] = g[g_offset + i * g_stride + r]                 (k, out)
//   4 h       storage  array<E>            h_i[c] = h[h_offset + i * h_stride + c]                 (k, in)
//   5 w       storage  array<E>            latent, read with CLIP only: coupled W[r, c] =
//                                          w[w_offset + r * w_stride + c] (out, in); standard W_i[r, c] =
//                                          w[w_offset + (i * out + r) * w_stride + c] (k, out, in)
//   6 dw      storage  array<E>, rw        dW, indexed like w (dw_offset, dw_stride)
//   7 hsum    storage  array<E>, rw        column sums of row block b, path i: hsum[s_offset + (b * k + i) *
//                                          s_stride + c] (blocks, k, in); DIRECT_DH: dh (k, in) itself,
//                                          hsum[s_offset + i * s_stride + c]
//   8 gsum    storage  array<f32>, rw      row sums of plane word v, path i: gsum[t_offset + (v * k + i) *
//                                          t_stride + r] (words, k, out); DIRECT_DG: dg (k, out) itself,
//                                          gsum[t_offset + i * t_stride + r]
// Template values (wgsl_template.ts): K (paths, 1..4), STANDARD, CLIP, CHAIN, ACCUMULATE (dW +=, and the
// direct dh, dg +=; partial sums are always overwritten). Override WG.
// Flags (params.flags): 8 DIRECT_DH, 16 DIRECT_DG.
// Geometry: invocation (row block b = workgroup_id.y, plane word v = workgroup_id.x · WG + local index)
// holds h_i and the column sums of the word's 32 columns in registers (8 vec4 each per path) and walks
// rows b·row_block .. +row_block; each dWhat is loaded once, each dW stored once. A word past the row's
// end skips its missing vec4s. Dispatch (ceil(ceil(in / 32) / WG), ceil(out / row_block)). One loop of
// at most row_block iterations per invocation (llvmpipe ends an invocation's loops after 65535).
//
// Why: on llvmpipe every storage access is a per-lane loop of scalar loads with a bounds branch per
// component and barriers split the shader (docs/kernels.md): the GPU kernels' three passes over dWhat
// (dg with a workgroup reduction, dW and dh) cost three loads per weight and the reductions' barriers;
// this pass and its two small finishing passes are ~10× faster there on the dim-512 model's layers.
// CLIP, CHAIN and ACCUMULATE are template values, not flags: llvmpipe runs both sides of a uniform branch
// under a mask, so a skipped access would still cost its per-lane loop.

struct BackwardParams {
  rows: u32,
  cols: u32,
  k: u32,
  flags: u32,
  row_block: u32,
  clip: f32,
  d_offset: u32,
  d_stride: u32,
  p_offset: u32,
  p_stride: u32,
  g_offset: u32,
  g_stride: u32,
  h_offset: u32,
  h_stride: u32,
  w_offset: u32,
  w_stride: u32,
  dw_offset: u32,
  dw_stride: u32,
  s_offset: u32,
  s_stride: u32,
  t_offset: u32,
  t_stride: u32,
  _a: u32,
  _b: u32,
}

alias E = vec4<f32>;
alias Mask = vec4<bool>;
const L: u32 = 4u; // floats per element of the E arrays

// Signs of columns at .. at + 3 from a plane word: true where B = +1.
fn signs(word: u32, at: u32) -> Mask {
  return ((vec4<u32>(word) >> (vec4<u32>(at) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u)) == vec4<u32>(1u);
}

fn total(v: E) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

const DIRECT_DH: u32 = 8u;
const DIRECT_DG: u32 = 16u;

override WG: u32 = 8u;

@group(0) @binding(0) var<uniform> params: BackwardParams;
@group(0) @binding(1) var<storage, read> dwh: array<E>;
@group(0) @binding(2) var<storage, read> planes: array<u32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read> h: array<E>;
@group(0) @binding(5) var<storage, read> w: array<E>;
@group(0) @binding(6) var<storage, read_write> dw: array<E>;
@group(0) @binding(7) var<storage, read_write> hsum: array<E>;
@group(0) @binding(8) var<storage, read_write> gsum: array<f32>;

fn store_dw(idx: u32, v: E) {
//#if ACCUMULATE
  dw[idx] += v;
//#else
  dw[idx] = v;
//#end
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
//#if CLIP
//#else
  _ = &w; // unread without CLIP, but part of the pipeline layout the launcher binds
//#end
  let word = wid.x * WG + lid;
  if (word * 32u >= params.cols) {
    return;
  }
  let c0 = word * 32u; // first column of the word
  let n = min(32u, params.cols - c0) / L; // elements of the word inside the row
  let r0 = wid.y * params.row_block;
  let r1 = min(params.rows, r0 + params.row_block);
  let hb = (params.h_offset + c0) / L;
  let hs = params.h_stride / L;
//#for i in 0..K
//#for j in 0..8
  var h${i}_${j} = E(0.0); // h_i of the word's columns
  var dh${i}_${j} = E(0.0); // Σ_r dWhat·B_i·g_i over this block
  if (${j}u < n) {
    h${i}_${j} = h[hb + ${i}u * hs + ${j}u];
  }
//#end
//#end
  for (var r = r0; r < r1; r++) {
    let dwho = (params.d_offset + r * params.d_stride + c0) / L;
//#if STANDARD
//#for i in 0..K
    let dwo${i} = (params.dw_offset + (${i}u * params.rows + r) * params.dw_stride + c0) / L;
//#if CLIP
    let wo${i} = (params.w_offset + (${i}u * params.rows + r) * params.w_stride + c0) / L;
//#end
//#end
//#else
    let dwo = (params.dw_offset + r * params.dw_stride + c0) / L;
//#if CLIP
    let wo = (params.w_offset + r * params.w_stride + c0) / L;
//#end
//#end
//#for i in 0..K
    let g${i} = g[params.g_offset + ${i}u * params.g_stride + r];
    let p${i} = planes[params.p_offset + (${i}u * params.rows + r) * params.p_stride + word];
    var dg${i} = E(0.0); // Σ_c dWhat·B_i·h_i over the word
//#end
//#for j in 0..8
    if (${j}u < n) {
      let d = dwh[dwho + ${j}u];
//#if CLIP
//#if STANDARD
//#else
      var bound = E(0.0); // Σ_i |g_i[r]|·|h_i[c]|
//#end
//#end
//#for i in 0..K
      {
        let sd = select(-d, d, signs(p${i}, ${j}u * L));
        dg${i} = fma(sd, h${i}_${j}, dg${i});
        dh${i}_${j} = fma(sd, E(g${i}), dh${i}_${j});
//#if STANDARD
        var di = d;
//#if CHAIN
        di = d * (g${i} * h${i}_${j});
//#end
//#if CLIP
        di = select(di, E(0.0), abs(w[wo${i} + ${j}u]) > params.clip * abs(g${i} * h${i}_${j}));
//#end
        store_dw(dwo${i} + ${j}u, di);
//#else
//#if CLIP
        bound = fma(E(abs(g${i})), abs(h${i}_${j}), bound);
//#end
//#end
      }
//#end
//#if STANDARD
//#else
//#if CLIP
      store_dw(dwo + ${j}u, select(d, E(0.0), abs(w[wo + ${j}u]) > params.clip * bound));
//#else
      store_dw(dwo + ${j}u, d);
//#end
//#end
    }
//#end
    // Row sums: dg itself (DIRECT_DG) or this word's partial sums. One set of stores whatever the flag:
    // llvmpipe would run both sides of a branch on it.
    let gd = (params.flags & DIRECT_DG) != 0u;
    let gi0 = params.t_offset + select(word * params.k * params.t_stride, 0u, gd) + r;
//#for i in 0..K
    {
      let idx = gi0 + ${i}u * params.t_stride;
//#if ACCUMULATE
      gsum[idx] = total(dg${i}) + select(0.0, gsum[idx], gd);
//#else
      gsum[idx] = total(dg${i});
//#end
    }
//#end
  }
  // Column sums: dh itself (DIRECT_DH) or this row block's partial sums.
  let hd = (params.flags & DIRECT_DH) != 0u;
  let ho0 = params.s_offset + select(wid.y * params.k * params.s_stride, 0u, hd) + c0;
//#for i in 0..K
  {
    let o = (ho0 + ${i}u * params.s_stride) / L;
//#for j in 0..8
    if (${j}u < n) {
//#if ACCUMULATE
      hsum[o + ${j}u] = dh${i}_${j} + select(E(0.0), hsum[o + ${j}u], hd);
//#else
      hsum[o + ${j}u] = dh${i}_${j};
//#end
    }
//#end
  }
//#end
}
