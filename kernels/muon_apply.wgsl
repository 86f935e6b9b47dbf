// muon_apply: the Muon weight update over a (rows, cols) view from the orthogonalized direction X:
//   w ← w · (1 − lr · wd) − lr · scale · x,   scale = 0.2 · sqrt(max(rows, cols))
// lr comes from a uniform the optimizer rewrites when the schedule changes it (so that the bind group,
// cached by its parameter words, stays the same from step to step).
//
// Bindings (group 0):
//   0 params  uniform  ApplyParams (below)
//   1 hyper   uniform  vec4<f32>: x = lr
//   2 x       storage  array<f32>        x[r * cols + c] (contiguous scratch)
//   3 w       storage  array<f32>, rw    w[w_offset + r * w_stride + c]
// Geometry: WG threads (override), `groups` workgroups (dispatch (groups)), a grid-stride loop over the
// rows · cols elements in row-major order. Batches: workgroup (x, 0, z) updates matrix z (dispatch
// (groups, 1, count)): w at z · batch words on, x at z · rows · cols.

struct ApplyParams {
  rows: u32,
  cols: u32,
  w_offset: u32,
  w_stride: u32,
  groups: u32,
  wd: f32,
  scale: f32,
  batch: u32, // words between the matrices of a batch in w
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: ApplyParams;
@group(0) @binding(1) var<uniform> hyper: vec4<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let lr = hyper.x;
  let decay = 1.0 - lr * params.wd;
  let step = lr * params.scale;
  let n = params.rows * params.cols;
  let w0 = params.w_offset + wid.z * params.batch;
  let x0 = wid.z * n;
  for (var i = wid.x * WG + lid; i < n; i += params.groups * WG) {
    let r = i / params.cols;
    let at = w0 + r * params.w_stride + (i - r * params.cols);
    w[at] = w[at] * decay - step * x[x0 + i];
  }
}
