// _matmul_common: declarations shared by the matmul kernels (a fragment, included with //#include; see
// src/backend/webgpu/wgsl_template.ts). The including kernel declares the bindings params, y and x4
// (and x1 unless X_UNIFORM). Include it after the kernel's own `override` declarations: naga 29 (Deno's
// WebGPU) panics when an override is declared after the override-sized workgroup array below.
//
// Template values: X_UNIFORM (x4 is a uniform array bound at the token's x, so every invocation reads
// x through the uniform path: on llvmpipe a storage load is a per-lane loop even at a uniform address,
// a uniform load is one scalar load and a broadcast), XN (its vec4 count); NORM (RMSNorm fused: the
// product is scaled by 1 / sqrt(mean(x²) + eps), x being the raw residual stream and the norm's weight
// folded into W's columns at upload, which saves the norm's dispatch and its output buffer round trip;
// GEMV kernels only).

struct MatmulParams {
  rows: u32, // rows of this dispatch (one chunk of the layer's rows)
  cols: u32, // input features
  tokens: u32, // T
  planes: u32, // packed: k, 1..4 (dense kernels: unused)
  row_stride: u32, // vec4 units per row (4 f32, 8 f16 or 128 packed columns)
  plane_stride: u32, // packed: vec4<u32> units per plane of this chunk (rows * row_stride)
  x_offset: u32, // element index of x[0] (0 when X_UNIFORM: the binding starts at x)
  x_stride: u32, // elements between tokens of x
  y_offset: u32, // element index of y for the chunk's first row
  y_stride: u32, // elements between tokens of y
  accumulate: u32, // 1: y += result
  g_offset: u32, // packed: layer row of the chunk's first row
  g_stride: u32, // packed: layer rows (out)
  h_stride: u32, // packed: vec4<u32> units per plane of h
  eps: f32, // NORM: RMSNorm epsilon
  _pad: u32,
}

override WG: u32 = 128u;
override TPR: u32 = 16u;
override RPT: u32 = 2u;
override X_VEC4: bool = true;

// One partial sum per thread for the reduction round; a single float when TPR == 1. Kept small on
// purpose: workgroup memory is zero-initialized, and large arrays compile very slowly on llvmpipe/GL.
var<workgroup> red: array<f32, select(WG, 1u, TPR == 1u)>;

fn load_x4(base: u32, c: u32) -> vec4<f32> {
  // x[base + c .. base + c + 3], zero at columns >= cols (x past the end may be anything, even NaN, and
  // packed padding bits are 0, i.e. -1). c is a multiple of 4; a vec4 past the end of the buffer is
  // clamped by robust access and then masked.
  let m = vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(params.cols);
//#if X_UNIFORM
  return select(vec4<f32>(0.0), x4[(base + c) >> 2u], m);
//#else
  if (X_VEC4) {
    return select(vec4<f32>(0.0), x4[(base + c) >> 2u], m);
  }
  let last = base + params.cols - 1u;
  let i = base + c;
  let v = vec4<f32>(x1[min(i, last)], x1[min(i + 1u, last)], x1[min(i + 2u, last)], x1[min(i + 3u, last)]);
  return select(vec4<f32>(0.0), v, m);
//#end
}

// 1, or with NORM the token's RMSNorm scale; every output row is multiplied by it.
var<private> row_scale: f32 = 1.0;

// Sets row_scale for the token whose x starts at `base` (each thread reads all of x: on a software
// adapter these are uniform loads, on a GPU cached re-reads of one vector).
fn begin_row_scale(base: u32) {
//#if NORM
  var ss = vec4<f32>(0.0);
  for (var c = 0u; c < params.cols; c += 4u) {
    let v = load_x4(base, c);
    ss = fma(v, v, ss);
  }
  row_scale = inverseSqrt((ss.x + ss.y + ss.z + ss.w) / f32(params.cols) + params.eps);
//#end
}

fn store_y(t: u32, row: u32, value: f32) {
  let i = params.y_offset + t * params.y_stride + row;
  let prev = select(0.0, y[i], params.accumulate != 0u);
  y[i] = prev + value;
}

// Stores output (token t, row): directly when a thread owns its tile (TPR == 1), else after adding the
// TPR lanes' partial sums in workgroup memory (lane 0 stores). Called by every invocation, in uniform
// control flow, once per output of the tile; outputs past the rows or tokens are not stored.
fn finish_row(t: u32, row: u32, value: f32, lid: u32, lane: u32) {
  if (TPR == 1u) {
    if (row < params.rows && t < params.tokens) {
      store_y(t, row, row_scale * value);
    }
    return;
  }
  red[lid] = value;
  workgroupBarrier();
  if (lane == 0u) {
    var sum = 0.0;
    for (var j = 0u; j < TPR; j++) {
      sum += red[lid + j];
    }
    if (row < params.rows && t < params.tokens) {
      store_y(t, row, row_scale * sum);
    }
  }
  workgroupBarrier();
}
