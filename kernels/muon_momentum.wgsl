// muon_momentum: Muon's momentum update over a (rows, cols) view, writing the update direction U into a
// contiguous scratch and one partial sum of its squares per workgroup (for ‖U‖_F, see muon_normalize):
//   m ← μ·m + g;   u = nesterov ? g + μ·m : m;   partial[w] = Σ u² over the elements workgroup w visited
//
// Bindings (group 0):
//   0 params   uniform  MomentumParams (below)
//   1 g        storage  array<f32>        g[g_offset + r * g_stride + c], c < cols
//   2 m        storage  array<f32>, rw    m[m_offset + r * m_stride + c]
//   3 x        storage  array<f32>, rw    x[r * cols + c] (contiguous scratch, (rows, cols))
//   4 partial  storage  array<f32>, rw    partial[workgroup] (one float per workgroup)
// Geometry: WG threads (override, a power of two) per workgroup, `groups` workgroups (dispatch (groups));
// a grid-stride loop over the rows · cols elements in row-major order, consecutive threads on
// consecutive elements (coalesced), then a tree reduction of the squares in workgroup memory.
// Batches: workgroup (x, 0, z) works on matrix z of a batch (dispatch (groups, 1, count)): g and m start
// z · batch words on, x at z · rows · cols, its partial sums at z · groups.

struct MomentumParams {
  rows: u32,
  cols: u32,
  g_offset: u32,
  g_stride: u32,
  m_offset: u32,
  m_stride: u32,
  groups: u32,
  nesterov: u32,
  mu: f32,
  batch: u32, // words between the matrices of a batch in g and m
  _b: u32,
  _c: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: MomentumParams;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = params.rows * params.cols;
  let g0 = params.g_offset + wid.z * params.batch;
  let m0 = params.m_offset + wid.z * params.batch;
  let x0 = wid.z * n;
  var ss = 0.0;
  for (var i = wid.x * WG + lid; i < n; i += params.groups * WG) {
    let r = i / params.cols;
    let c = i - r * params.cols;
    let gv = g[g0 + r * params.g_stride + c];
    let mi = m0 + r * params.m_stride + c;
    let mv = fma(params.mu, m[mi], gv);
    m[mi] = mv;
    let u = select(mv, fma(params.mu, mv, gv), params.nesterov != 0u);
    x[x0 + i] = u;
    ss = fma(u, u, ss);
  }
  red[lid] = ss;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red[lid] += red[lid + s];
    }
  }
  if (lid == 0u) {
    partial[wid.z * params.groups + wid.x] = red[0];
  }
}
