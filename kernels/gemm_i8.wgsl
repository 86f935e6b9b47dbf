// gemm_i8: int8 matrix product with one scale per row for several tokens (prefill, evaluation windows):
//   y (T, out) = (h ⊙ x) (T, in) · qᵀ scaled by g per row (+ y)
// Codes, scales and h as in gemv_i8 (quant/int8_rows.ts): codes sign-extended with shifts, fp32
// accumulation, each row scaled once at the end. Built like gemm_f16.
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (_matmul_common)
//   1 q       storage  array<vec4<u32>>  (rows, row_stride) row-major codes, 4 per u32 (byte b of word j is
//                                        column 4j + b, two's complement), 16 columns per vec4<u32>, rows
//                                        zero-padded to 16-column multiples
//   2 g       storage  array<f32>        (g_stride) row scales; the chunk's row r is element g_offset + r
//   3 h       storage  array<vec4<f32>>  (2 h_stride) column multipliers, 4 per vec4, zero-padded to the
//                                        rows' 16-column multiple
//   4 x4      storage  array<vec4<f32>>  x as vec4s, read when X_VEC4 (x_offset, x_stride multiples of 4)
//   5 y       storage  array<f32>, rw    y[y_offset + t * y_stride + r] for the chunk's rows r < rows
//   6 x1      storage  array<f32>        x[x_offset + t * x_stride + c], read when !X_VEC4 (any alignment)
// Geometry (override constants): WG threads per workgroup; TPR threads share one (rows × tokens) tile and
// split its 16-column blocks (a power of two dividing WG); each thread accumulates RPT rows × TT tokens in
// registers, so each code vec4<u32> is loaded and unpacked once per TT tokens and each piece of h ⊙ x
// formed once per RPT rows. Partial sums of the TPR threads are reduced in workgroup memory. MAX_RPT and
// MAX_TT size the register arrays; the launcher rewrites them to RPT and TT.
// Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x, ceil(T / TT) along y.

override TT: u32 = 4u;
const MAX_RPT: u32 = 8u;
const MAX_TT: u32 = 8u;

//#include _matmul_common

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read> x1: array<f32>;

// Bytes 0..3 of w as signed integers: each moved to the top byte, then shifted back arithmetically.
fn codes(w: u32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(bitcast<i32>(w)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let grp = lid / TPR;
  let lane = lid % TPR;
  let row0 = (wid.x * (WG / TPR) + grp) * RPT;
  let t0 = wid.y * TT;
  let nv = params.row_stride;
  let last_row = params.rows - 1u;
  let last_t = params.tokens - 1u;

  var acc: array<vec4<f32>, MAX_RPT * MAX_TT>; // (row, token)
  var hx: array<vec4<f32>, 4 * MAX_TT>; // (token, 4 columns): h ⊙ x for columns 16v .. 16v+15
  for (var v = lane; v < nv; v += TPR) {
    let h0 = h[v * 4u];
    let h1 = h[v * 4u + 1u];
    let h2 = h[v * 4u + 2u];
    let h3 = h[v * 4u + 3u];
    for (var t = 0u; t < TT; t++) {
      let base = params.x_offset + min(t0 + t, last_t) * params.x_stride;
      hx[t * 4u] = load_x4(base, v * 16u) * h0;
      hx[t * 4u + 1u] = load_x4(base, v * 16u + 4u) * h1;
      hx[t * 4u + 2u] = load_x4(base, v * 16u + 8u) * h2;
      hx[t * 4u + 3u] = load_x4(base, v * 16u + 12u) * h3;
    }
    for (var r = 0u; r < RPT; r++) {
      let w = q[min(row0 + r, last_row) * nv + v];
      let w0 = codes(w.x);
      let w1 = codes(w.y);
      let w2 = codes(w.z);
      let w3 = codes(w.w);
      for (var t = 0u; t < TT; t++) {
        let a = fma(w1, hx[t * 4u + 1u], fma(w0, hx[t * 4u], acc[r * TT + t]));
        acc[r * TT + t] = fma(w3, hx[t * 4u + 3u], fma(w2, hx[t * 4u + 2u], a));
      }
    }
  }

  // Output i of the tile is (row i / TT, token i % TT).
  for (var i = 0u; i < RPT * TT; i++) {
    let row = row0 + i / TT;
    let s = g[params.g_offset + min(row, last_row)];
    finish_row(t0 + i % TT, row, s * dot(acc[i], vec4<f32>(1.0)), lid, lane);
  }
}
