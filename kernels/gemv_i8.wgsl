// gemv_i8: int8 matrix-vector product with one scale per row, for decode (the classifier stored as int8,
// quant/int8_rows.ts):
//   y_r = g_r · Σ_c q[r, c] · (h_c · x_c) (+ y)
// q are codes in [−127, 127], g the per-row scales, h a per-column multiplier (an RMSNorm weight folded in
// at upload, else ones). Codes are sign-extended with two shifts, so each product is an exact integer
// times an f32; accumulation is fp32 and each row is scaled once at the end. Built exactly like gemv_f16
// (same template, x path and geometry) so that the comparison is of storage alone.
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (_matmul_common)
//   1 q       storage  array<vec4<u32>>  (rows, row_stride) row-major codes, 4 per u32 (byte b of word j is
//                                        column 4j + b, two's complement), 16 columns per vec4<u32>, rows
//                                        zero-padded to 16-column multiples
//   2 g       storage  array<f32>        (g_stride) row scales; the chunk's row r is element g_offset + r
//   3 h       uniform if H_F32, else storage  array<vec4<f32>>  (2 h_stride) column multipliers, 4 per
//                                        vec4, zero-padded to the rows' 16-column multiple
//   4 x4      uniform if X_UNIFORM, else storage  array<vec4<f32>>  x as vec4s
//   5 y       storage  array<f32>, rw    y[y_offset + t * y_stride + r] for the chunk's rows r < rows
//   6 x1      storage  array<f32>        x[x_offset + t * x_stride + c], read when !X_VEC4 (absent when
//                                        X_UNIFORM)
// Template values: RPT rows per thread (unrolled: one register accumulator each); X_UNIFORM, XN; H_F32, HN
// (vec4 count of h); NORM.
// Geometry (override constants): WG threads per workgroup; TPR threads share one row group and split its
// 16-column blocks (a power of two dividing WG); each thread accumulates RPT rows, so a 16-column piece
// of h ⊙ x is formed once per RPT rows. Partial sums of the TPR threads are reduced in workgroup memory.
// Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x; along y one per token (T = 1 for decode;
// gemm_i8 is the token-tiled kernel for more tokens).

//#include _matmul_common

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
//#if H_F32
@group(0) @binding(3) var<uniform> h: array<vec4<f32>, $HN>;
//#else
@group(0) @binding(3) var<storage, read> h: array<vec4<f32>>;
//#end
//#if X_UNIFORM
@group(0) @binding(4) var<uniform> x4: array<vec4<f32>, $XN>;
//#else
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> x1: array<f32>;
//#end
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// Bytes 0..3 of w as signed integers: each moved to the top byte, then shifted back arithmetically.
fn codes(w: u32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(bitcast<i32>(w)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
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
  var acc${r} = vec4<f32>(0.0);
//#end
  for (var v = lane; v < nv; v += TPR) {
    // h ⊙ x for columns 16v .. 16v+15 (x masked to 0 past the columns, h zero-padded).
//#for i in 0..4
    let hx${i} = load_x4(xbase, v * 16u + ${i}u * 4u) * h[v * 4u + ${i}u];
//#end
//#for r in 0..RPT
    let q${r} = q[rb${r} + v];
    acc${r} = fma(codes(q${r}.x), hx0, acc${r});
    acc${r} = fma(codes(q${r}.y), hx1, acc${r});
    acc${r} = fma(codes(q${r}.z), hx2, acc${r});
    acc${r} = fma(codes(q${r}.w), hx3, acc${r});
//#end
  }

//#for r in 0..RPT
  let s${r} = g[params.g_offset + min(row0 + ${r}u, last_row)];
  finish_row(t, row0 + ${r}u, s${r} * dot(acc${r}, vec4<f32>(1.0)), lid, lane);
//#end
}
