// gemv_f16: fp16-storage matrix-vector product, y = W x (+ y), W stored as halves packed two per u32 (low
// half = even column), unpacked with unpack2x16float: what an "FP16 model" is on adapters without shader-f16.
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (below)
//   1 w       storage  array<vec4<u32>>  (rows, row_stride) row-major; a vec4<u32> holds 8 columns; rows
//                                        zero-padded to a multiple of 8 columns
//   2 x       storage  array<f32>        x[x_offset + t * x_stride + c], c < cols
//   3 y       storage  array<f32>, rw    y[y_offset + t * y_stride + r] for the chunk's rows r < rows
// Geometry (override constants): WG threads per workgroup; TPR threads share one row group and split its
// 8-column blocks (a power of two dividing WG); each thread accumulates RPT rows in registers, so the x
// block is loaded once per RPT rows. Partial sums are reduced in workgroup memory.
// Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x, one per token along y.

struct MatmulParams {
  rows: u32, // rows of this dispatch (one chunk of W's rows)
  cols: u32, // input features
  tokens: u32, // T
  planes: u32, // unused
  row_stride: u32, // vec4<u32> units (8 columns) between rows of w
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
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, select(WG * RPT, 1u, TPR == 1u)>;

fn load_x(c: u32, token: u32) -> f32 {
  // Zero beyond cols: x past the end may hold anything.
  let b = params.x_offset + token * params.x_stride;
  return select(0.0, x[b + min(c, params.cols - 1u)], c < params.cols);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let grp = lid / TPR;
  let lane = lid % TPR;
  let row0 = (wid.x * (WG / TPR) + grp) * RPT;
  let nv = params.row_stride;
  let last_row = params.rows - 1u;
  let t = wid.y;

  var acc: array<vec4<f32>, MAX_RPT>;
  for (var r = 0u; r < RPT; r++) {
    acc[r] = vec4<f32>(0.0);
  }
  for (var v = lane; v < nv; v += TPR) {
    let c = v * 8u;
    let xa = vec4<f32>(load_x(c, t), load_x(c + 1u, t), load_x(c + 2u, t), load_x(c + 3u, t));
    let xb = vec4<f32>(load_x(c + 4u, t), load_x(c + 5u, t), load_x(c + 6u, t), load_x(c + 7u, t));
    for (var r = 0u; r < RPT; r++) {
      let word = w[min(row0 + r, last_row) * nv + v];
      let wa = vec4<f32>(unpack2x16float(word.x), unpack2x16float(word.y));
      let wb = vec4<f32>(unpack2x16float(word.z), unpack2x16float(word.w));
      acc[r] = fma(wa, xa, fma(wb, xb, acc[r]));
    }
  }

  if (TPR == 1u) {
    for (var r = 0u; r < RPT; r++) {
      let row = row0 + r;
      if (row < params.rows) {
        let i = params.y_offset + t * params.y_stride + row;
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
  for (var r = lane; r < RPT; r += TPR) {
    let row = row0 + r;
    let base = grp * RPT * TPR + r * TPR;
    var sum = 0.0;
    for (var j = 0u; j < TPR; j++) {
      sum += red[base + j];
    }
    if (row < params.rows) {
      let i = params.y_offset + t * params.y_stride + row;
      let prev = select(0.0, y[i], params.accumulate != 0u);
      y[i] = prev + sum;
    }
  }
}
