// coupled_backward: column pass of the derivation backward (METHOD.md §2, §5): the latent gradient dW
// (straight-through) and the column sums dh_i[c] = Σ_r dWhat[r, c]·B_i[r, c]·g_i[r] over one block of rows.
// Coupled (STANDARD = 0): dW = dWhat, or 0 where |W[r, c]| > clip · Σ_i |g_i[r]|·|h_i[c]| (CLIP flag).
// Standard (STANDARD = 1): dW_i = dWhat (CHAIN flag: dWhat ⊙ g_i h_iᵀ), or 0 where
// |W_i[r, c]| > clip · |g_i[r]·h_i[c]|. CPU reference: coupledBackward / standardBackward in
// src/quant/coupled.ts. The row sums dg come from coupled_backward_dg; with more than one row block the
// partial column sums are added up by coupled_backward_dh.
//
// Bindings (group 0):
//   0 params  uniform  BackwardParams (below)
//   1 dwh     storage  array<f32>        dWhat[r, c] = dwh[d_offset + r * d_stride + c]            (out, in)
//   2 planes  storage  array<u32>        B_i row r word w = planes[p_offset + (i * out + r) * p_stride + w]
//                                        (k, out, ceil(in / 32)), the layout of src/quant/bitpack.ts
//   3 g       storage  array<f32>        g_i[r] = g[g_offset + i * g_stride + r]                   (k, out)
//   4 h       storage  array<f32>        h_i[c] = h[h_offset + i * h_stride + c]                   (k, in)
//   5 w       storage  array<f32>        latent, read with CLIP only: coupled W[r, c] =
//                                        w[w_offset + r * w_stride + c] (out, in); standard W_i[r, c] =
//                                        w[w_offset + (i * out + r) * w_stride + c] (k, out, in)
//   6 dw      storage  array<f32>, rw    dW, indexed like w (dw_offset, dw_stride)
//   7 sums    storage  array<f32>, rw    column sums of block b, path i: sums[s_offset + (b * k + i) *
//                                        s_stride + c]; with one block (DIRECT) this is dh (k, in) itself
// Flags (params.flags): 1 ACCUMULATE (dW += …, and dh += … when DIRECT; else overwrite), 2 CLIP,
// 4 CHAIN (standard only), 8 DIRECT.
// Geometry: one thread per column, WG (override) columns per workgroup, each walking params.row_block
// rows: loads of dWhat, W and stores of dW are coalesced, the plane word is shared by 32 neighbours.
// Dispatch (ceil(in / WG), ceil(out / row_block)).

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
}

override WG: u32 = 256u;
override STANDARD: bool = false;

const ACCUMULATE: u32 = 1u;
const CLIP: u32 = 2u;
const CHAIN: u32 = 4u;
const DIRECT: u32 = 8u;

@group(0) @binding(0) var<uniform> params: BackwardParams;
@group(0) @binding(1) var<storage, read> dwh: array<f32>;
@group(0) @binding(2) var<storage, read> planes: array<u32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read> h: array<f32>;
@group(0) @binding(5) var<storage, read> w: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw: array<f32>;
@group(0) @binding(7) var<storage, read_write> sums: array<f32>;

fn store_dw(idx: u32, v: f32, accumulate: bool) {
  if (accumulate) {
    dw[idx] += v;
  } else {
    dw[idx] = v;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x * WG + lid;
  if (c >= params.cols) {
    return;
  }
  let k = params.k;
  let flags = params.flags;
  let accumulate = (flags & ACCUMULATE) != 0u;
  let clip = (flags & CLIP) != 0u;
  let chain = (flags & CHAIN) != 0u;
  let word = c / 32u;
  let bit = c % 32u;
  var hc = vec4<f32>(0.0); // h_i[c]
  for (var i = 0u; i < k; i++) {
    hc[i] = h[params.h_offset + i * params.h_stride + c];
  }
  let r0 = wid.y * params.row_block;
  let r1 = min(params.rows, r0 + params.row_block);
  var col = vec4<f32>(0.0); // Σ_r dWhat·B_i·g_i over this block
  for (var r = r0; r < r1; r++) {
    let d = dwh[params.d_offset + r * params.d_stride + c];
    var bound = 0.0; // Σ_i |g_i[r]|·|h_i[c]| (coupled clip)
    for (var i = 0u; i < k; i++) {
      let b = (planes[params.p_offset + (i * params.rows + r) * params.p_stride + word] >> bit) & 1u;
      let gi = g[params.g_offset + i * params.g_stride + r];
      col[i] = fma(select(-d, d, b == 1u), gi, col[i]);
      if (STANDARD) {
        var di = d;
        if (chain) {
          di = d * (gi * hc[i]);
        }
        let idx = (i * params.rows + r);
        if (clip && abs(w[params.w_offset + idx * params.w_stride + c]) > params.clip * abs(gi * hc[i])) {
          di = 0.0;
        }
        store_dw(params.dw_offset + idx * params.dw_stride + c, di, accumulate);
      } else if (clip) {
        bound = fma(abs(gi), abs(hc[i]), bound);
      }
    }
    if (!STANDARD) {
      var dd = d;
      if (clip && abs(w[params.w_offset + r * params.w_stride + c]) > params.clip * bound) {
        dd = 0.0;
      }
      store_dw(params.dw_offset + r * params.dw_stride + c, dd, accumulate);
    }
  }
  let direct = (flags & DIRECT) != 0u;
  for (var i = 0u; i < k; i++) {
    let idx = params.s_offset + (wid.y * k + i) * params.s_stride + c;
    if (direct && accumulate) {
      sums[idx] += col[i];
    } else {
      sums[idx] = col[i];
    }
  }
}
