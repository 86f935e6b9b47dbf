// gemm_f32: dense fp32 matrix product for several tokens (prefill, evaluation windows):
//   y (T, out) = x (T, in) W^T (+ y), W (out, in) row-major. The fp32 baseline of gemm_packed.
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (_matmul_common)
//   1 w       storage  array<vec4<f32>>  (rows, row_stride) row-major, rows zero-padded to 4-column multiples
//   2 x4      storage  array<vec4<f32>>  x as vec4s, read when X_VEC4 (x_offset, x_stride multiples of 4)
//   3 y       storage  array<f32>, rw    y[y_offset + t * y_stride + r] for the chunk's rows r < rows
//   4 x1      storage  array<f32>        x[x_offset + t * x_stride + c], read when !X_VEC4 (any alignment)
// Geometry (override constants): WG threads per workgroup; TPR threads share one (rows × tokens) tile and
// split its vec4 columns (a power of two dividing WG); each thread accumulates RPT rows × TT tokens in
// registers, so each weight vec4 is loaded once per TT tokens and each x vec4 once per RPT rows. Partial
// sums of the TPR threads are reduced in workgroup memory. X_VEC4 as in gemv_f32. MAX_RPT and MAX_TT
// size the register arrays; the launcher rewrites them to RPT and TT.
// Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x, ceil(T / TT) along y.

override TT: u32 = 4u;
const MAX_RPT: u32 = 8u;
const MAX_TT: u32 = 8u;

//#include _matmul_common

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> x1: array<f32>;

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
  var xv: array<vec4<f32>, MAX_TT>;
  for (var v = lane; v < nv; v += TPR) {
    for (var t = 0u; t < TT; t++) {
      xv[t] = load_x4(params.x_offset + min(t0 + t, last_t) * params.x_stride, v * 4u);
    }
    for (var r = 0u; r < RPT; r++) {
      let wv = w[min(row0 + r, last_row) * nv + v];
      for (var t = 0u; t < TT; t++) {
        acc[r * TT + t] = fma(wv, xv[t], acc[r * TT + t]);
      }
    }
  }

  // Output i of the tile is (row i / TT, token i % TT).
  for (var i = 0u; i < RPT * TT; i++) {
    finish_row(t0 + i % TT, row0 + i / TT, dot(acc[i], vec4<f32>(1.0)), lid, lane);
  }
}
