// adamw: one AdamW step (decoupled weight decay) in place over n parameters, f32, in the order of the
// CPU reference src/train/adamw.ts (adamwStep):
//   p ← p − (lr·wd)·p;  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·(g·g)
//   p ← p − lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + eps)
//
// Bindings (group 0):
//   0 params  uniform  AdamwParams (below): the range, fixed per parameter tensor
//   1 hyper   uniform  AdamwHyper (below): the step's scalars (adamwCoefficients), rewritten every step
//   2 p       storage  array<f32>, rw    p[p_offset + j], j < n
//   3 g       storage  array<f32>        g[g_offset + j]
//   4 m       storage  array<f32>, rw    m[m_offset + j]
//   5 v       storage  array<f32>, rw    v[v_offset + j]   (p, g, m, v: four different buffers)
// Geometry: one thread per parameter, WG (override) per workgroup; the workgroups of a row of the grid
// are params.groups_x wide: j = (workgroup_id.y · groups_x + workgroup_id.x) · WG + local index.
// Dispatch (groups_x, ceil(ceil(n / WG) / groups_x)).

struct AdamwParams {
  n: u32,
  groups_x: u32,
  p_offset: u32,
  g_offset: u32,
  m_offset: u32,
  v_offset: u32,
  _a: u32,
  _b: u32,
}

struct AdamwHyper {
  lr: f32,
  lr_wd: f32,
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  correction1: f32,
  correction2: f32,
  eps: f32,
  _a: f32,
  _b: f32,
  _c: f32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: AdamwParams;
@group(0) @binding(1) var<uniform> hyper: AdamwHyper;
@group(0) @binding(2) var<storage, read_write> p: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let j = (wid.y * params.groups_x + wid.x) * WG + lid;
  if (j >= params.n) {
    return;
  }
  let gj = g[params.g_offset + j];
  let pi = params.p_offset + j;
  let mi = params.m_offset + j;
  let vi = params.v_offset + j;
  let p0 = p[pi];
  let pd = p0 - hyper.lr_wd * p0;
  let mj = hyper.beta1 * m[mi] + hyper.one_minus_beta1 * gj;
  let vj = hyper.beta2 * v[vi] + hyper.one_minus_beta2 * (gj * gj);
  let m_hat = mj / hyper.correction1;
  let v_hat = vj / hyper.correction2;
  let u = m_hat / (sqrt(v_hat) + hyper.eps);
  p[pi] = pd - hyper.lr * u;
  m[mi] = mj;
  v[vi] = vj;
}
