// adamw_vec4: adamw (one AdamW step, decoupled weight decay, in place) four parameters at a time: the
// same f32 operations in the same order as kernels/adamw.wgsl and the CPU reference src/train/adamw.ts
// (adamwStep), on vec4<f32> lanes:
//   p ← p − (lr·wd)·p;  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·(g·g)
//   p ← p − lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + eps)
//
// Bindings (group 0), indices in vec4 elements (4 floats):
//   0 params  uniform  AdamwParams (below): the range, fixed per parameter tensor
//   1 hyper   uniform  AdamwHyper (below): the step's scalars (adamwCoefficients), rewritten every step
//   2 p       storage  array<vec4<f32>>, rw  p[p_offset + q], q < n4
//   3 g       storage  array<vec4<f32>>      g[g_offset + q]
//   4 m       storage  array<vec4<f32>>, rw  m[m_offset + q]
//   5 v       storage  array<vec4<f32>>, rw  v[v_offset + q]   (p, g, m, v: four different buffers)
// The launcher covers a range's unaligned head and ragged tail (fewer than 4 parameters each) with the
// scalar kernel adamw.
// Template value (wgsl_template.ts): VPT, vec4s per invocation (unrolled). Override WG.
// Geometry: invocation id = (workgroup_id.y · groups_x + workgroup_id.x) · WG + local index takes the VPT
// neighbouring vec4s from q = id · VPT; WG invocations per workgroup, params.groups_x workgroups per row
// of the grid. Dispatch (groups_x, ceil(ceil(n4 / (WG · VPT)) / groups_x)). VPT = 1 on GPUs (neighbouring
// threads touch neighbouring vec4s: coalesced).
//
// Why: on llvmpipe a storage access is a per-lane loop (docs/kernels.md) whose per-lane part (execution
// mask test, address extraction) a vec4 access pays once for four floats, and VPT = 4 unrolled
// shares the invocation's overhead: ~1.5–2× faster than adamw there on 25M parameters (a loop over the vec4s,
// or vec4s a grid apart, measured slower).

struct AdamwParams {
  n4: u32,
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

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: AdamwParams;
@group(0) @binding(1) var<uniform> hyper: AdamwHyper;
@group(0) @binding(2) var<storage, read_write> p: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> v: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let q0 = ((wid.y * params.groups_x + wid.x) * WG + lid) * ${VPT}u;
//#for s in 0..VPT
  {
    let q = q0 + ${s}u;
    if (q < params.n4) {
      let gj = g[params.g_offset + q];
      let pi = params.p_offset + q;
      let mi = params.m_offset + q;
      let vi = params.v_offset + q;
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
  }
//#end
}
