// coupled_forward_serial: coupled_forward (the training-time derivation, METHOD.md §2, §5) shaped for
// software adapters (llvmpipe): no barriers, no workgroup memory, the k paths and the 32 columns of a plane
// word unrolled by the template step. Same arithmetic as coupled_forward, so the same results bit for bit:
// Coupled (STANDARD = 0): R_0 = W; B_i = sign(R_{i-1}) (sign(0) = +1); R_i = R_{i-1} − g_i ⊙ B_i ⊙ h_i.
// Standard (STANDARD = 1): B_i = sign(W_i) of k independent latents. Both: What = Σ_i g_i ⊙ B_i ⊙ h_i,
// summed path by path with fma (CPU reference: src/quant/coupled.ts, coupledForward / standardForward).
//
// Bindings (group 0), E = vec4<f32>: indices of w, h, wh in vec4s; the offsets and strides below are in
// f32 words and, like `in`, multiples of 4 (the launcher records the parallel kernel for other views):
//   0 params  uniform  DeriveParams (below; `row_block` rows per invocation)
//   1 w       storage  array<E>            coupled: W[r, c] = w[w_offset + r * w_stride + c]  (out, in);
//                                          standard: W_i[r, c] = w[w_offset + (i * out + r) * w_stride + c]
//   2 g       storage  array<f32>          g_i[r] = g[g_offset + i * g_stride + r]              (k, out)
//   3 h       storage  array<E>            h_i[c] = h[h_offset + i * h_stride + c]              (k, in)
//   4 wh      storage  array<E>, rw        What[r, c] = wh[wh_offset + r * wh_stride + c]       (out, in)
//   5 planes  storage  array<u32>, rw      B_i row r word v = planes[p_offset + (i * out + r) * p_stride + v]
//                                          (k, out, ceil(in / 32)): bit j of word v is column 32v + j,
//                                          1 = +1, padding bits 0 (src/quant/bitpack.ts)
// Template values (wgsl_template.ts): K (paths, 1..4), STANDARD. Override WG.
// Geometry: invocation (row block b = workgroup_id.y, plane word v = workgroup_id.x · WG + local index)
// holds h_i of the word's 32 columns in registers (8 vec4 per path) and walks rows b·row_block ..
// +row_block: per row it loads g_i[r] and the word's latents, stores its What and the K sign words, built
// in registers. A word past the row's end (in not a multiple of 32) skips its missing vec4s. Dispatch
// (ceil(ceil(in / 32) / WG), ceil(out / row_block)). One loop of at most row_block iterations per
// invocation (llvmpipe ends an invocation's loops after 65535 iterations).
//
// Why: on llvmpipe every storage access is a per-lane loop of scalar loads with a bounds branch per
// component, barriers split the shader and workgroup atomics are per-lane loops (docs/kernels.md). Here
// each weight costs one load and one store, h is loaded once per row block, and nothing is shared:
// ~15× faster than coupled_forward there on the dim-512 model's layers, as fast as a plain vec4 copy.
// A scalar (f32) variant for unaligned views was dropped: with every access a per-lane loop, 32 unrolled
// columns compile for seconds per pipeline on llvmpipe.

struct DeriveParams {
  rows: u32,
  cols: u32,
  k: u32,
  row_block: u32,
  w_offset: u32,
  w_stride: u32,
  g_offset: u32,
  g_stride: u32,
  h_offset: u32,
  h_stride: u32,
  wh_offset: u32,
  wh_stride: u32,
  p_offset: u32,
  p_stride: u32,
  _b: u32,
  _c: u32,
}

alias E = vec4<f32>;
alias Mask = vec4<bool>;
const L: u32 = 4u; // floats per element of w, h, wh

// Bits `at` .. at + 3 of a plane word: 1 where `pos`.
fn sign_bits(pos: Mask, at: u32) -> u32 {
  let m = select(vec4<u32>(0u), vec4<u32>(1u, 2u, 4u, 8u) << vec4<u32>(at), pos);
  return (m.x | m.y) | (m.z | m.w);
}

override WG: u32 = 8u;

@group(0) @binding(0) var<uniform> params: DeriveParams;
@group(0) @binding(1) var<storage, read> w: array<E>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<E>;
@group(0) @binding(4) var<storage, read_write> wh: array<E>;
@group(0) @binding(5) var<storage, read_write> planes: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
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
  var h${i}_${j} = E(0.0);
  if (${j}u < n) {
    h${i}_${j} = h[hb + ${i}u * hs + ${j}u];
  }
//#end
//#end
  for (var r = r0; r < r1; r++) {
    let who = (params.wh_offset + r * params.wh_stride + c0) / L;
//#if STANDARD
//#for i in 0..K
    let wo${i} = (params.w_offset + (${i}u * params.rows + r) * params.w_stride + c0) / L;
//#end
//#else
    let wo = (params.w_offset + r * params.w_stride + c0) / L;
//#end
//#for i in 0..K
    let g${i} = g[params.g_offset + ${i}u * params.g_stride + r];
    var bits${i} = 0u;
//#end
//#for j in 0..8
    if (${j}u < n) {
//#if STANDARD
      var res = E(0.0);
//#else
      var res = w[wo + ${j}u]; // R_{i-1}
//#end
      var acc = E(0.0); // What, path by path
//#for i in 0..K
//#if STANDARD
      res = w[wo${i} + ${j}u];
//#end
      {
        let pos = res >= E(0.0);
        let gb = select(E(-g${i}), E(g${i}), pos); // g_i[r] · B_i[r, c], exact
        bits${i} |= sign_bits(pos, ${j}u * L);
        acc = fma(gb, h${i}_${j}, acc);
//#if STANDARD
//#else
        res = fma(-gb, h${i}_${j}, res);
//#end
      }
//#end
      wh[who + ${j}u] = acc;
    }
//#end
//#for i in 0..K
    planes[params.p_offset + (${i}u * params.rows + r) * params.p_stride + word] = bits${i};
//#end
  }
}
