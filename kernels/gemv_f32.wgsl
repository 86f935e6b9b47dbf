// gemv_f32: dense fp32 matrix-vector product, y = W x (+ y), the baseline for decode (T = 1).
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (below)
//   1 w       storage  array<vec4<f32>>  (rows, row_stride) row-major, rows zero-padded to a multiple of 4 columns
//   2 x       storage  array<f32>        x[x_offset + c], c < cols
//   3 y       storage  array<f32>, rw    y[y_offset + r] for the chunk's rows r < rows
// Geometry (override constants): WG threads per workgroup; TPR threads share one row group and split its
// columns (a power of two dividing WG); each thread accumulates RPT rows in registers, so a workgroup
// covers (WG / TPR) * RPT rows and reads each x vec4 once per RPT rows. Partial sums of the TPR threads
// are reduced in workgroup memory. Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x, one
// per token along y (T > 1 reruns
// the row pass per token: a correct GEMM whose weight traffic is T times a GEMV's; see matmul.ts).

struct MatmulParams {
  rows: u32, // rows of this dispatch (one chunk of W's rows)
  cols: u32, // input features
  tokens: u32, // T (1 here)
  planes: u32, // unused (packed kernels: k)
  row_stride: u32, // vec4 units between rows of w
  plane_stride: u32, // unused
  x_offset: u32, // element index of x[0]
  x_stride: u32, // elements between tokens of x
  y_offset: u32, // element index of y for the chunk's first row
  y_stride: u32, // elements between tokens of y
  accumulate: u32, // 1: y += W x
  g_offset: u32, // unused
  g_stride: u32, // unused
  h_stride: u32, // unused
}

override WG: u32 = 128u;
override TPR: u32 = 32u;
override RPT: u32 = 2u;
const MAX_RPT: u32 = 8u;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Partial sums (group, row, lane); a single float when TPR == 1, since workgroup memory is zeroed at start.
var<workgroup> red: array<f32, select(WG * RPT, 1u, TPR == 1u)>;

fn load_x4(c: u32, token: u32) -> vec4<f32> {
  // Columns c..c+3, zero beyond cols (the weight padding is zero too, but x past the end may be anything).
  let last = params.cols - 1u;
  let b = params.x_offset + token * params.x_stride;
  return vec4<f32>(
    select(0.0, x[b + min(c, last)], c < params.cols),
    select(0.0, x[b + min(c + 1u, last)], c + 1u < params.cols),
    select(0.0, x[b + min(c + 2u, last)], c + 2u < params.cols),
    select(0.0, x[b + min(c + 3u, last)], c + 3u < params.cols),
  );
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let grp = lid / TPR;
  let lane = lid % TPR;
  let row0 = (wid.x * (WG / TPR) + grp) * RPT;
  let nv = params.row_stride;
  let last_row = params.rows - 1u;

  var acc: array<vec4<f32>, MAX_RPT>;
  for (var r = 0u; r < RPT; r++) {
    acc[r] = vec4<f32>(0.0);
  }
  for (var v = lane; v < nv; v += TPR) {
    let xv = load_x4(v * 4u, wid.y);
    for (var r = 0u; r < RPT; r++) {
      let row = min(row0 + r, last_row);
      acc[r] = fma(w[row * nv + v], xv, acc[r]);
    }
  }

  if (TPR == 1u) {
    for (var r = 0u; r < RPT; r++) {
      let row = row0 + r;
      if (row < params.rows) {
        let i = params.y_offset + wid.y * params.y_stride + row;
        let prev = select(0.0, y[i], params.accumulate != 0u);
        y[i] = prev + dot(acc[r], vec4<f32>(1.0));
      }
    }
    return;
  }
  let slot = grp * RPT * TPR + lane;
  for (var r = 0u; r < RPT; r++) {
    red[slot + r * TPR] = dot(acc[r], vec4<f32>(1.0));
  }
  workgroupBarrier();
  // Lane l finishes rows l, l + TPR, ...: one barrier, and the stores of a group are contiguous.
  for (var r = lane; r < RPT; r += TPR) {
    let row = row0 + r;
    let base = grp * RPT * TPR + r * TPR;
    var sum = 0.0;
    for (var j = 0u; j < TPR; j++) {
      sum += red[base + j];
    }
    if (row < params.rows) {
      let i = params.y_offset + wid.y * params.y_stride + row;
      let prev = select(0.0, y[i], params.accumulate != 0u);
      y[i] = prev + sum;
    }
  }
}
