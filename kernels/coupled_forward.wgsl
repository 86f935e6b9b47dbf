// coupled_forward: training-time derivation of a k-path binary layer from its latent (METHOD.md §2, §5).
// Coupled (STANDARD = 0): R_0 = W; B_i = sign(R_{i-1}) (sign(0) = +1); R_i = R_{i-1} − g_i ⊙ B_i ⊙ h_i.
// Standard (STANDARD = 1): B_i = sign(W_i) of k independent latents. Both: What = Σ_i g_i ⊙ B_i ⊙ h_i,
// summed path by path (the CPU reference is src/quant/coupled.ts, coupledForward / standardForward).
//
// Bindings (group 0):
//   0 params  uniform  DeriveParams (below)
//   1 w       storage  array<f32>        coupled: W[r, c] = w[w_offset + r * w_stride + c]  (out, in);
//                                        standard: W_i[r, c] = w[w_offset + (i * out + r) * w_stride + c]
//   2 g       storage  array<f32>        g_i[r] = g[g_offset + i * g_stride + r]              (k, out)
//   3 h       storage  array<f32>        h_i[c] = h[h_offset + i * h_stride + c]              (k, in)
//   4 wh      storage  array<f32>, rw    What[r, c] = wh[wh_offset + r * wh_stride + c]       (out, in)
//   5 planes  storage  array<u32>, rw    B_i row r word w = planes[p_offset + (i * out + r) * p_stride + w]
//                                        (k, out, ceil(in / 32)): bit j of word w is column 32w + j,
//                                        1 = +1, padding bits 0 (src/quant/bitpack.ts)
// Geometry: one thread per column, WG (override, a multiple of 32) columns of one row per workgroup:
// loads and stores of W and What are coalesced; the WG / 32 words of each plane are assembled with
// atomicOr in workgroup memory and stored by one thread each. Dispatch (ceil(in / WG), out).
//
// Rounding: R_i and What use fma(±g_i[r], h_i[c], ·), which is exactly the CPU reference (which rounds
// the exact product's sum once, through f64) where the adapter fuses it and one rounding away where it
// does not (llvmpipe evaluates fma as a multiply and an add). The signs then agree unless a residual is
// within a rounding of 0; with scales whose products g·h are exact in f32 everything agrees bitwise.

struct DeriveParams {
  rows: u32,
  cols: u32,
  k: u32,
  _a: u32,
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

override WG: u32 = 256u;
override STANDARD: bool = false;
override WORDS: u32 = WG / 32u; // plane words per workgroup row segment

@group(0) @binding(0) var<uniform> params: DeriveParams;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> wh: array<f32>;
@group(0) @binding(5) var<storage, read_write> planes: array<u32>;

var<workgroup> bits: array<atomic<u32>, 4u * WORDS>; // (path, word) of this workgroup's segment

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wid.y;
  let c = wid.x * WG + lid;
  let valid = c < params.cols;
  let k = params.k;
  var res = 0.0; // R_{i-1}[r, c] (coupled) or W_i[r, c] (standard)
  if (valid && !STANDARD) {
    res = w[params.w_offset + r * params.w_stride + c];
  }
  var acc = 0.0; // What[r, c], path by path
  for (var i = 0u; i < k; i++) {
    if (valid && STANDARD) {
      res = w[params.w_offset + (i * params.rows + r) * params.w_stride + c];
    }
    var hc = 0.0;
    if (valid) {
      hc = h[params.h_offset + i * params.h_stride + c];
    }
    let gi = g[params.g_offset + i * params.g_stride + r];
    let pos = res >= 0.0;
    let gb = select(-gi, gi, pos); // g_i[r] · B_i[r, c], exact
    if (valid && pos) {
      atomicOr(&bits[i * WORDS + lid / 32u], 1u << (lid % 32u));
    }
    acc = fma(gb, hc, acc);
    if (!STANDARD) {
      res = fma(-gb, hc, res);
    }
  }
  if (valid) {
    wh[params.wh_offset + r * params.wh_stride + c] = acc;
  }
  workgroupBarrier();
  if (lid < k * WORDS) {
    let i = lid / WORDS;
    let word = wid.x * WORDS + lid % WORDS;
    if (word * 32u < params.cols) {
      planes[params.p_offset + (i * params.rows + r) * params.p_stride + word] = atomicLoad(&bits[lid]);
    }
  }
}
