// gemm_packed: residual-binary matrix product for several tokens (prefill, evaluation windows):
//   y (T, out) = sum_{p<k} g_p ⊙ (B_p (h_p ⊙ x_t)) (+ y) for every token t, all k planes in one pass,
// h pre-scaling and g epilogue fused. Sign bits as in gemv_packed (bitpack.ts layout): a set bit adds
// h x, a clear bit subtracts it. The tile is RPT rows × TT tokens per thread: each sign word is loaded
// and decoded once per TT tokens.
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (_matmul_common)
//   1 planes  storage  array<vec4<u32>>  (k, rows, row_stride) sign words of this chunk's rows; each row is
//                                        padded with zero words to a multiple of 4 words (128 columns)
//   2 g       storage  array<u32>        (k, g_stride) row scales as fp16 pairs (low half = even index);
//                                        the chunk's row r of plane p is element p*g_stride + g_offset + r
//   3 h       storage  array<vec4<u32>>  (k, h_stride) column scales as fp16, 8 columns per vec4<u32>,
//                                        zero-padded to the rows' 128-column multiple
//   4 x4      storage  array<vec4<f32>>  x as vec4s, read when X_VEC4 (x_offset, x_stride multiples of 4)
//   5 y       storage  array<f32>, rw    y[y_offset + t * y_stride + r] for the chunk's rows r < rows
//   6 x1      storage  array<f32>        x[x_offset + t * x_stride + c], read when !X_VEC4 (any alignment)
// Geometry (override constants): WG threads per workgroup; TPR threads share one (rows × tokens) tile and
// split its 128-column blocks (a power of two dividing WG); RPT rows × TT tokens per thread. Partial sums
// of the TPR threads are reduced in workgroup memory. X_VEC4 as in gemv_packed. MAX_RPT and MAX_TT size
// the register arrays; the launcher rewrites them to RPT and TT.
// Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x, ceil(T / TT) along y.

override TT: u32 = 4u;
const MAX_RPT: u32 = 8u;
const MAX_TT: u32 = 8u;
const MAX_K: u32 = 4u;

//#include _matmul_common

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> planes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> g: array<u32>;
@group(0) @binding(3) var<storage, read> h: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read> x1: array<f32>;

fn scale(i: u32) -> f32 {
  return unpack2x16float(g[i >> 1u])[i & 1u];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let grp = lid / TPR;
  let lane = lid % TPR;
  let row0 = (wid.x * (WG / TPR) + grp) * RPT;
  let t0 = wid.y * TT;
  let nv = params.row_stride;
  let k = params.planes;
  let last_row = params.rows - 1u;
  let last_t = params.tokens - 1u;

  var acc: array<f32, MAX_K * MAX_RPT * MAX_TT>; // (plane, row, token)
  var words: array<vec4<u32>, MAX_K * MAX_RPT>; // (plane, row): 128 columns of inverted signs
  var hx: array<vec4<f32>, 8 * MAX_TT>; // (token, 4 columns): h_p ⊙ x_t for 32 columns
  var a: array<vec4<f32>, MAX_TT>;
  for (var v = lane; v < nv; v += TPR) {
    for (var p = 0u; p < k; p++) {
      for (var r = 0u; r < RPT; r++) {
        words[p * RPT + r] = ~planes[p * params.plane_stride + min(row0 + r, last_row) * nv + v];
      }
    }
    for (var sub = 0u; sub < 4u; sub++) {
      let c0 = v * 128u + sub * 32u;
      if (c0 >= params.cols) {
        break;
      }
      for (var p = 0u; p < k; p++) {
        let hb = p * params.h_stride + c0 / 8u;
        for (var q = 0u; q < 4u; q++) {
          let hw = h[hb + q];
          let lo = vec4<f32>(unpack2x16float(hw.x), unpack2x16float(hw.y));
          let hi = vec4<f32>(unpack2x16float(hw.z), unpack2x16float(hw.w));
          for (var t = 0u; t < TT; t++) {
            let base = params.x_offset + min(t0 + t, last_t) * params.x_stride;
            hx[t * 8u + 2u * q] = load_x4(base, c0 + 8u * q) * lo;
            hx[t * 8u + 2u * q + 1u] = load_x4(base, c0 + 8u * q + 4u) * hi;
          }
        }
        for (var r = 0u; r < RPT; r++) {
          let nw = vec4<u32>(words[p * RPT + r][sub]);
          for (var t = 0u; t < TT; t++) {
            a[t] = vec4<f32>(0.0);
          }
          for (var q = 0u; q < 8u; q++) {
            // Inverted bit 4q+i moved to the sign position of lane i, shared by the TT tokens.
            let s = (nw << (vec4<u32>(31u, 30u, 29u, 28u) - vec4<u32>(4u * q))) & vec4<u32>(0x80000000u);
            for (var t = 0u; t < TT; t++) {
              a[t] += bitcast<vec4<f32>>(bitcast<vec4<u32>>(hx[t * 8u + q]) ^ s);
            }
          }
          for (var t = 0u; t < TT; t++) {
            acc[(p * RPT + r) * TT + t] += (a[t].x + a[t].y) + (a[t].z + a[t].w);
          }
        }
      }
    }
  }

  var res: array<f32, MAX_RPT * MAX_TT>; // (row, token)
  for (var r = 0u; r < RPT; r++) {
    let row = min(row0 + r, last_row);
    for (var p = 0u; p < k; p++) {
      let gs = scale(p * params.g_stride + params.g_offset + row);
      for (var t = 0u; t < TT; t++) {
        res[r * TT + t] += gs * acc[(p * RPT + r) * TT + t];
      }
    }
  }

  // Output i of the tile is (row i / TT, token i % TT).
  for (var i = 0u; i < RPT * TT; i++) {
    finish_row(t0 + i % TT, row0 + i / TT, res[i], lid, lane);
  }
}
