// embedding_backward: the gradient of the embedding gather x[t, :] = E[id_t, :], a scatter-add
// dE[id, :] (+)= Σ_{t : id_t = id} dX[t, :], without atomics: the host buckets the token ids
// (bucketTokenIds in src/backend/webgpu/ops/embedding.ts) and one workgroup column per distinct id sums
// that id's rows in ascending row order (deterministic), so each invocation owns its outputs.
//
// Bindings (group 0):
//   0 params   uniform  EmbeddingBackwardParams (below)
//   1 buckets  storage  array<u32>        ids[ids_offset + u], u < unique: the distinct ids, each < V;
//                                         starts[starts_offset + u], u ≤ unique: bucket u holds
//                                         rows[rows_offset + starts[u] .. starts[u + 1]) (row indices of dX)
//   2 dx       storage  array<f32>        dX[dx_offset + t * dx_stride + i], i < D
//   3 de       storage  array<f32>, rw    dE[de_offset + id * de_stride + i]; added into when accumulate
// Geometry: WG threads (override) over consecutive columns (coalesced); workgroup (x, y, z) serves
// columns x * WG .. of bucket u = z * nwg.y + y (a 2-D grid of buckets, so unique may exceed 65535).
// Dispatch (ceil(D / WG), min(unique, 65535), ceil(unique / 65535)).

struct EmbeddingBackwardParams {
  dim: u32, // D
  unique: u32,
  ids_offset: u32,
  starts_offset: u32,
  rows_offset: u32,
  dx_offset: u32,
  dx_stride: u32,
  de_offset: u32,
  de_stride: u32,
  accumulate: u32, // 1: dE += gradient, 0: dE rows of the ids = gradient (other rows untouched)
  _a: u32,
  _b: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: EmbeddingBackwardParams;
@group(0) @binding(1) var<storage, read> buckets: array<u32>;
@group(0) @binding(2) var<storage, read> dx: array<f32>;
@group(0) @binding(3) var<storage, read_write> de: array<f32>;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let u = wid.z * nwg.y + wid.y;
  let i = wid.x * WG + lid;
  if (u >= params.unique || i >= params.dim) {
    return;
  }
  let id = buckets[params.ids_offset + u];
  let p0 = buckets[params.starts_offset + u];
  let p1 = buckets[params.starts_offset + u + 1u];
  var acc = 0.0;
  for (var p = p0; p < p1; p++) {
    let t = buckets[params.rows_offset + p];
    acc += dx[params.dx_offset + t * params.dx_stride + i];
  }
  let e = params.de_offset + id * params.de_stride + i;
  if (params.accumulate != 0u) {
    acc += de[e];
  }
  de[e] = acc;
}
