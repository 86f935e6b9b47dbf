// gemv_packed: residual-binary matrix-vector product for decode (T = 1), all k planes in one pass:
//   y = sum_{p<k} g_p ⊙ (B_p (h_p ⊙ x)) (+ y)
// with the h pre-scaling and the g epilogue fused. B_p is read straight from its sign bits (bitpack.ts):
// bit j of word w of a row is column 32 w + j, 1 means +1; a set bit adds h x, a clear bit subtracts it.
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (below)
//   1 planes  storage  array<vec4<u32>>  (k, rows, row_stride) sign words; a row is padded with zero words to
//                                        a multiple of 4 words (128 columns) so it is read as whole vec4s
//   2 g       storage  array<f32>        (k, g_stride) row scales; the chunk's row r is g[p*g_stride+g_offset+r]
//   3 h       storage  array<vec4<f32>>  (k, h_stride) column scales, zero-padded to 128-column multiples
//   4 x       storage  array<f32>        x[x_offset + c], c < cols
//   5 y       storage  array<f32>, rw    y[y_offset + r]
// Geometry (override constants): WG threads per workgroup; TPR threads share one row group and split its
// 128-column blocks (a power of two dividing WG); each thread keeps RPT rows in registers, so h ⊙ x is
// formed once per 32 columns and reused by RPT rows. Partial sums of the TPR threads are reduced in
// workgroup memory. Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x, one per token along y (T > 1 reruns
// the row pass per token: a correct GEMM whose weight traffic is T times a GEMV's; see matmul.ts).

struct MatmulParams {
  rows: u32, // rows of this dispatch (one chunk of the layer's rows)
  cols: u32, // input features
  tokens: u32, // T (1 here)
  planes: u32, // k
  row_stride: u32, // vec4<u32> units per row
  plane_stride: u32, // vec4<u32> units per plane of this chunk (rows * row_stride)
  x_offset: u32, // element index of x[0]
  x_stride: u32, // elements between tokens of x
  y_offset: u32, // element index of y for the chunk's first row
  y_stride: u32, // elements between tokens of y
  accumulate: u32, // 1: y += result
  g_offset: u32, // layer row of the chunk's first row
  g_stride: u32, // layer rows (out)
  h_stride: u32, // vec4 units per plane of h
}

override WG: u32 = 128u;
override TPR: u32 = 32u;
override RPT: u32 = 2u;
const MAX_RPT: u32 = 8u;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> planes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// Partial sums (group, row, lane); a single float when TPR == 1, since workgroup memory is zeroed at start.
var<workgroup> red: array<f32, select(WG * RPT, 1u, TPR == 1u)>;

fn load_x4(c: u32, token: u32) -> vec4<f32> {
  // Columns c..c+3, zero beyond cols: padding bits are 0 (-1), so x must be 0 there to add nothing.
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

  var res: array<f32, MAX_RPT>; // sum over planes of g_p * (B_p (h_p ⊙ x)) for this thread's columns
  var acc: array<f32, MAX_RPT>; // B_p (h_p ⊙ x) of the current plane
  var words: array<vec4<u32>, MAX_RPT>;
  var hx: array<vec4<f32>, 8>; // h_p ⊙ x for 32 columns
  var nhx: array<vec4<f32>, 8>;
  for (var r = 0u; r < RPT; r++) {
    res[r] = 0.0;
  }
  for (var p = 0u; p < params.planes; p++) {
    for (var r = 0u; r < RPT; r++) {
      acc[r] = 0.0;
    }
    let pbase = p * params.plane_stride;
    let hbase = p * params.h_stride;
    for (var v = lane; v < nv; v += TPR) {
      for (var r = 0u; r < RPT; r++) {
        words[r] = planes[pbase + min(row0 + r, last_row) * nv + v];
      }
      for (var sub = 0u; sub < 4u; sub++) {
        let c0 = v * 128u + sub * 32u;
        if (c0 >= params.cols) {
          break;
        }
        for (var q = 0u; q < 8u; q++) {
          let t = load_x4(c0 + 4u * q, wid.y) * h[hbase + c0 / 4u + q];
          hx[q] = t;
          nhx[q] = -t;
        }
        for (var r = 0u; r < RPT; r++) {
          let word = vec4<u32>(words[r][sub]);
          var a = vec4<f32>(0.0);
          for (var q = 0u; q < 8u; q++) {
            // Moves bit 4q+i to the sign position of lane i: negative means the bit is set (+1).
            let m = bitcast<vec4<i32>>(word << (vec4<u32>(31u, 30u, 29u, 28u) - vec4<u32>(4u * q)));
            a += select(nhx[q], hx[q], m < vec4<i32>(0));
          }
          acc[r] += (a.x + a.y) + (a.z + a.w);
        }
      }
    }
    let gbase = p * params.g_stride + params.g_offset;
    for (var r = 0u; r < RPT; r++) {
      res[r] += g[gbase + min(row0 + r, last_row)] * acc[r];
    }
  }

  if (TPR == 1u) {
    for (var r = 0u; r < RPT; r++) {
      let row = row0 + r;
      if (row < params.rows) {
        let i = params.y_offset + wid.y * params.y_stride + row;
        let prev = select(0.0, y[i], params.accumulate != 0u);
        y[i] = prev + res[r];
      }
    }
    return;
  }
  let slot = grp * RPT * TPR + lane;
  for (var r = 0u; r < RPT; r++) {
    red[slot + r * TPR] = res[r];
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
