// gemv_f32: dense fp32 matrix-vector product for decode, y = W x (+ y): the fp32 baseline, built exactly
// like the packed GEMV (same template, x path and geometry) so that the comparison is of storage alone.
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (_matmul_common)
//   1 w       storage  array<vec4<f32>>  (rows, row_stride) row-major, rows zero-padded to 4-column multiples
//   2 x4      uniform if X_UNIFORM, else storage  array<vec4<f32>>  x as vec4s
//   3 y       storage  array<f32>, rw    y[y_offset + t * y_stride + r] for the chunk's rows r < rows
//   4 x1      storage  array<f32>        x[x_offset + t * x_stride + c], read when !X_VEC4 (absent when
//                                        X_UNIFORM)
// Template values: RPT rows per thread (unrolled: one register accumulator each); X_UNIFORM, XN; NORM.
// Geometry (override constants): WG threads per workgroup; TPR threads share one row group and split its
// vec4 columns (a power of two dividing WG); each thread accumulates RPT rows, so an x vec4 is loaded
// once per RPT rows. Partial sums of the TPR threads are reduced in workgroup memory.
// Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x; along y one per token (T = 1 for decode;
// gemm_f32 is the token-tiled kernel for more tokens).

//#include _matmul_common

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
//#if X_UNIFORM
@group(0) @binding(2) var<uniform> x4: array<vec4<f32>, $XN>;
//#else
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> x1: array<f32>;
//#end
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

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
    let xv = load_x4(xbase, v * 4u);
//#for r in 0..RPT
    acc${r} = fma(w[rb${r} + v], xv, acc${r});
//#end
  }

//#for r in 0..RPT
  finish_row(t, row0 + ${r}u, dot(acc${r}, vec4<f32>(1.0)), lid, lane);
//#end
}
