// gemv_packed: residual-binary matrix-vector product for decode (T = 1), all k planes in one pass:
//   y = sum_{p<k} g_p ⊙ (B_p (h_p ⊙ x)) (+ y)
// with the h pre-scaling and the g epilogue fused. B_p is read straight from its sign bits (bitpack.ts):
// bit j of word w of a row is column 32 w + j, 1 means +1; a set bit adds h x, a clear bit subtracts it.
// A WGSL template (wgsl_template.ts): the plane and row loops are unrolled, so each (plane, row) sum is
// its own register — an indexed private array costs a per-lane gather/scatter on llvmpipe.
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (_matmul_common)
//   1 planes  storage  array<vec4<u32>>  (k, rows, row_stride) sign words of this chunk's rows; each row is
//                                        padded with zero words to a multiple of 4 words (128 columns)
//   2 g       storage  array<u32>        (k, g_stride) row scales as fp16 pairs (low half = even index);
//                                        the chunk's row r of plane p is element p*g_stride + g_offset + r
//   3 h       uniform if H_UNIFORM, else storage  array<vec4<u32>>  (k, h_stride) column scales as fp16,
//                                        8 columns per vec4<u32>, zero-padded to the rows' 128 columns;
//                                        with H_F32 instead hf, uniform array<vec4<f32>> (k, 2 h_stride):
//                                        the same scales widened to f32 (no unpacking in the inner loop)
//   4 x4      uniform if X_UNIFORM, else storage  array<vec4<f32>>  x as vec4s
//   5 y       storage  array<f32>, rw    y[y_offset + t * y_stride + r] for the chunk's rows r < rows
//   6 x1      storage  array<f32>        x[x_offset + t * x_stride + c], read when !X_VEC4 (absent when
//                                        X_UNIFORM)
// Template values: K planes; RPT rows per thread; X_UNIFORM, XN; H_F32 or H_UNIFORM, HN (vec4 count of
// hf or h); NORM.
// Geometry (override constants): WG threads per workgroup; TPR threads share one row group and split its
// 128-column blocks (a power of two dividing WG); each thread keeps RPT rows of every plane in registers,
// so a 32-column piece of x is loaded once and h_p ⊙ x formed once per plane for K·RPT sign words.
// Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x; along y one per token (T = 1 for decode;
// gemm_packed is the token-tiled kernel for more tokens).

//#include _matmul_common

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> planes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> g: array<u32>;
//#if H_F32
@group(0) @binding(3) var<uniform> hf: array<vec4<f32>, $HN>;
//#else
//#if H_UNIFORM
@group(0) @binding(3) var<uniform> h: array<vec4<u32>, $HN>;
//#else
@group(0) @binding(3) var<storage, read> h: array<vec4<u32>>;
//#end
//#end
//#if X_UNIFORM
@group(0) @binding(4) var<uniform> x4: array<vec4<f32>, $XN>;
//#else
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> x1: array<f32>;
//#end
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

fn scale(i: u32) -> f32 {
  return unpack2x16float(g[i >> 1u])[i & 1u];
}

// h x for 4 columns whose sign bits are 4q .. 4q+3 of w, negated where the inverted bit is 1 (a clear
// sign bit): the bit is moved to the f32 sign position of its lane and XORed in.
fn flip(w: u32, q: u32, hx: vec4<f32>) -> vec4<f32> {
  let s = (vec4<u32>(w) << (vec4<u32>(31u, 30u, 29u, 28u) - vec4<u32>(4u * q))) & vec4<u32>(0x80000000u);
  return bitcast<vec4<f32>>(bitcast<vec4<u32>>(hx) ^ s);
}

// sum_j ±(h x)_j over 32 columns, signs from the inverted word w; lo_q/hi_q hold columns 8q..8q+3 and
// 8q+4..8q+7.
fn dot32(
  w: u32,
  lo0: vec4<f32>,
  hi0: vec4<f32>,
  lo1: vec4<f32>,
  hi1: vec4<f32>,
  lo2: vec4<f32>,
  hi2: vec4<f32>,
  lo3: vec4<f32>,
  hi3: vec4<f32>,
) -> f32 {
  let a = ((flip(w, 0u, lo0) + flip(w, 1u, hi0)) + (flip(w, 2u, lo1) + flip(w, 3u, hi1))) +
    ((flip(w, 4u, lo2) + flip(w, 5u, hi2)) + (flip(w, 6u, lo3) + flip(w, 7u, hi3)));
  return (a.x + a.y) + (a.z + a.w);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let grp = lid / TPR;
  let lane = lid % TPR;
  let row0 = (wid.x * (WG / TPR) + grp) * RPT;
  let t = wid.y;
  let xbase = params.x_offset + t * params.x_stride;
  let nv = params.row_stride;
  let last_row = params.rows - 1u;
  begin_row_scale(xbase);

//#for r in 0..RPT
  let rb${r} = min(row0 + ${r}u, last_row) * nv;
//#for p in 0..K
  var acc_${p}_${r} = 0.0; // B_p (h_p ⊙ x) of row r over this thread's columns
//#end
//#end
  for (var v = lane; v < nv; v += TPR) {
    // 128 columns of every (plane, row), inverted so that a set bit marks a -1.
//#for p in 0..K
//#for r in 0..RPT
    let w_${p}_${r} = ~planes[${p}u * params.plane_stride + rb${r} + v];
//#end
//#end
    for (var sub = 0u; sub < 4u; sub++) {
      let c0 = v * 128u + sub * 32u;
      if (c0 >= params.cols) {
        break;
      }
//#for q in 0..4
      let xlo${q} = load_x4(xbase, c0 + ${q}u * 8u);
      let xhi${q} = load_x4(xbase, c0 + ${q}u * 8u + 4u);
//#end
//#for p in 0..K
//#for q in 0..4
//#if H_F32
      let lo_${p}_${q} = xlo${q} * hf[${p}u * params.h_stride * 2u + c0 / 4u + ${q}u * 2u];
      let hi_${p}_${q} = xhi${q} * hf[${p}u * params.h_stride * 2u + c0 / 4u + ${q}u * 2u + 1u];
//#else
      let hw_${p}_${q} = h[${p}u * params.h_stride + c0 / 8u + ${q}u];
      let lo_${p}_${q} = xlo${q} * vec4<f32>(unpack2x16float(hw_${p}_${q}.x), unpack2x16float(hw_${p}_${q}.y));
      let hi_${p}_${q} = xhi${q} * vec4<f32>(unpack2x16float(hw_${p}_${q}.z), unpack2x16float(hw_${p}_${q}.w));
//#end
//#end
//#for r in 0..RPT
      acc_${p}_${r} += dot32(
        w_${p}_${r}[sub],
        lo_${p}_0,
        hi_${p}_0,
        lo_${p}_1,
        hi_${p}_1,
        lo_${p}_2,
        hi_${p}_2,
        lo_${p}_3,
        hi_${p}_3,
      );
//#end
//#end
    }
  }

//#for r in 0..RPT
  let crow_${r} = min(row0 + ${r}u, last_row);
  var res${r} = 0.0;
//#for p in 0..K
  res${r} += scale(${p}u * params.g_stride + params.g_offset + crow_${r}) * acc_${p}_${r};
//#end
  finish_row(t, row0 + ${r}u, res${r}, lid, lane);
//#end
}
