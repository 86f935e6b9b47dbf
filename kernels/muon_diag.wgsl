// muon_diag: the first half of Newton–Schulz's polynomial, b_out = cb · a + ca · I over a contiguous
// (s, s) Gram matrix (Muon then adds cc · a · a with the GEMM, and multiplies X by the result: the
// a·X term of X ← a·X + (b·A + c·A²)·X rides on the diagonal instead of a separate pass over X).
//
// Bindings (group 0):
//   0 params  uniform  DiagParams (below)
//   1 a       storage  array<f32>        a[r * s + c]
//   2 b_out   storage  array<f32>, rw    b_out[r * s + c]
// Geometry: WG threads (override), `groups` workgroups (dispatch (groups)), a grid-stride loop over the
// s² elements. Batches: workgroup (x, 0, z) fills matrix z, s² · z words on (dispatch (groups, 1, count)).

struct DiagParams {
  s: u32,
  groups: u32,
  ca: f32,
  cb: f32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: DiagParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b_out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = params.s * params.s;
  let at = wid.z * n;
  for (var i = wid.x * WG + lid; i < n; i += params.groups * WG) {
    let diagonal = i % (params.s + 1u) == 0u;
    b_out[at + i] = params.cb * a[at + i] + select(0.0, params.ca, diagonal);
  }
}
