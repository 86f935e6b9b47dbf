// gemv_packed: residual-binary matrix-vector product for decode (T = 1), all k planes in one pass:
//   y = sum_{p<k} g_p ⊙ (B_p (h_p ⊙ x)) (+ y)
// with the h pre-scaling and the g epilogue fused. B_p is read straight from its sign bits (bitpack.ts):
// bit j of word w of a row is column 32 w + j, 1 means +1; a set bit adds h x, a clear bit subtracts it.
//
// Bindings (group 0):
//   0 params  uniform  MatmulParams (below)
//   1 planes  storage  array<vec4<u32>>  (k, rows, row_stride) sign words of this chunk's rows; each row is
//                                        padded with zero words to a multiple of 4 words (128 columns)
//   2 g       storage  array<u32>        (k, g_stride) row scales as fp16 pairs (low half = even index);
//                                        the chunk's row r of plane p is element p*g_stride + g_offset + r
//   3 h       storage  array<vec4<u32>>  (k, h_stride) column scales as fp16, 8 columns per vec4<u32>,
//                                        zero-padded to the rows' 128-column multiple
//   4 x       storage  array<f32>        x[x_offset + c], c < cols
//   5 y       storage  array<f32>, rw    y[y_offset + r]
// Geometry (override constants): WG threads per workgroup; TPR threads share one row group and split its
// 128-column blocks (a power of two dividing WG); each thread keeps RPT rows of every plane in registers,
// so a 32-column piece of x is loaded once and h_p ⊙ x formed once per plane for k·RPT sign words.
// Partial sums of the TPR threads are reduced in workgroup memory. MAX_RPT sizes the register arrays;
// the launcher rewrites it to RPT. Dispatch: ceil(rows / ((WG / TPR) * RPT)) workgroups along x.

struct MatmulParams {
  rows: u32, // rows of this dispatch (one chunk of the layer's rows)
  cols: u32, // input features
  tokens: u32, // T (1 here)
  planes: u32, // k, 1..4
  row_stride: u32, // vec4<u32> units per row
  plane_stride: u32, // vec4<u32> units per plane of this chunk (rows * row_stride)
  x_offset: u32, // element index of x[0]
  x_stride: u32, // elements between tokens of x
  y_offset: u32, // element index of y for the chunk's first row
  y_stride: u32, // elements between tokens of y
  accumulate: u32, // 1: y += result
  g_offset: u32, // layer row of the chunk's first row
  g_stride: u32, // layer rows (out)
  h_stride: u32, // vec4<u32> units per plane of h
}

override WG: u32 = 128u;
override TPR: u32 = 16u;
override RPT: u32 = 2u;
const MAX_RPT: u32 = 8u;
const MAX_K: u32 = 4u;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> planes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> g: array<u32>;
@group(0) @binding(3) var<storage, read> h: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// Partial sums (group, row, lane); a single float when TPR == 1 (workgroup memory is zeroed at start).
var<workgroup> red: array<f32, select(WG * RPT, 1u, TPR == 1u)>;

fn load_x4(c: u32) -> vec4<f32> {
  // Columns c..c+3, zero beyond cols: padding bits are 0 (-1), so x must be 0 there to add nothing.
  let last = params.cols - 1u;
  let b = params.x_offset;
  return vec4<f32>(
    select(0.0, x[b + min(c, last)], c < params.cols),
    select(0.0, x[b + min(c + 1u, last)], c + 1u < params.cols),
    select(0.0, x[b + min(c + 2u, last)], c + 2u < params.cols),
    select(0.0, x[b + min(c + 3u, last)], c + 3u < params.cols),
  );
}

fn scale(i: u32) -> f32 {
  return unpack2x16float(g[i >> 1u])[i & 1u];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let grp = lid / TPR;
  let lane = lid % TPR;
  let row0 = (wid.x * (WG / TPR) + grp) * RPT;
  let nv = params.row_stride;
  let k = params.planes;
  let last_row = params.rows - 1u;

  var acc: array<f32, MAX_K * MAX_RPT>; // (plane, row): B_p (h_p ⊙ x) over this thread's columns
  var words: array<vec4<u32>, MAX_K * MAX_RPT>; // (plane, row): 128 columns of signs
  var xs: array<vec4<f32>, 8>; // x for 32 columns
  var hx: array<vec4<f32>, 8>; // h_p ⊙ x
  var nhx: array<vec4<f32>, 8>;
  for (var v = lane; v < nv; v += TPR) {
    for (var p = 0u; p < k; p++) {
      for (var r = 0u; r < RPT; r++) {
        words[p * RPT + r] = planes[p * params.plane_stride + min(row0 + r, last_row) * nv + v];
      }
    }
    for (var sub = 0u; sub < 4u; sub++) {
      let c0 = v * 128u + sub * 32u;
      if (c0 >= params.cols) {
        break;
      }
      for (var q = 0u; q < 8u; q++) {
        xs[q] = load_x4(c0 + 4u * q);
      }
      for (var p = 0u; p < k; p++) {
        let hb = p * params.h_stride + c0 / 8u;
        for (var q = 0u; q < 4u; q++) {
          let hw = h[hb + q];
          let lo = xs[2u * q] * vec4<f32>(unpack2x16float(hw.x), unpack2x16float(hw.y));
          let hi = xs[2u * q + 1u] * vec4<f32>(unpack2x16float(hw.z), unpack2x16float(hw.w));
          hx[2u * q] = lo;
          nhx[2u * q] = -lo;
          hx[2u * q + 1u] = hi;
          nhx[2u * q + 1u] = -hi;
        }
        for (var r = 0u; r < RPT; r++) {
          let word = vec4<u32>(words[p * RPT + r][sub]);
          var a = vec4<f32>(0.0);
          for (var q = 0u; q < 8u; q++) {
            // Moves bit 4q+i to the sign position of lane i: negative means the bit is set (+1).
            let m = bitcast<vec4<i32>>(word << (vec4<u32>(31u, 30u, 29u, 28u) - vec4<u32>(4u * q)));
            a += select(nhx[q], hx[q], m < vec4<i32>(0));
          }
          acc[p * RPT + r] += (a.x + a.y) + (a.z + a.w);
        }
      }
    }
  }

  var res: array<f32, MAX_RPT>;
  for (var r = 0u; r < RPT; r++) {
    let row = min(row0 + r, last_row);
    var s = 0.0;
    for (var p = 0u; p < k; p++) {
      s += scale(p * params.g_stride + params.g_offset + row) * acc[p * RPT + r];
    }
    res[r] = s;
  }

  if (TPR == 1u) {
    for (var r = 0u; r < RPT; r++) {
      let row = row0 + r;
      if (row < params.rows) {
        let i = params.y_offset + row;
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
      let i = params.y_offset + row;
      let prev = select(0.0, y[i], params.accumulate != 0u);
      y[i] = prev + sum;
    }
  }
}
