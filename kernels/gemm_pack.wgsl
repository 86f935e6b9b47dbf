// gemm_pack: copies one operand of the training GEMM from a strided buffer view into an rgba32float
// storage texture, k-contiguous and zero-padded, for kernels/gemm_texel.wgsl:
//   P (R, K): P[r, k] = src[offset + r · ld + k] (TRANS 0: A (M, K), or B stored (N, K) for Bᵀ), or
//             P[r, k] = src[offset + k · ld + r] (TRANS 1: A stored (K, M), or B stored (K, N) for Bᵀ).
// Texel t = r · k4 + q (k4 = ceil(K / 4)) holds P[r, 4q .. 4q + 3], zeros past K, at texture coordinates
// (t & (2^wlog − 1), t >> wlog): rows of any length "folded" into one texture of width 2^wlog.
//
// Bindings (group 0):
//   0 params  uniform  PackParams (below)
//   1 src     storage  array<f32>, or array<vec4<f32>> when VEC (the launcher's promise: offset and ld
//                      multiples of 4, and K (TRANS 0) or R (TRANS 1) too)
//   2 dst     texture_storage_2d<rgba32float, write>, at least ceil(R · k4 / 2^wlog) rows
// Work items (one invocation each, items = params.items): TRANS 0, VEC: texels q = 4g .. 4g + 3 of row
// r, g fastest, four vec4 loads (fewer per-invocation costs: 1.3–1.5× one texel each on llvmpipe).
// TRANS 0, scalar: texel (r, q), q fastest, four scalar loads. TRANS 1, scalar: texel (r, q), r fastest
// (consecutive invocations read neighbouring words of a stored row). TRANS 1, VEC: four rows
// r = 4g .. 4g + 3 at texel column q, g fastest: four vec4 loads along the stored rows 4q .. 4q + 3,
// transposed in registers into four texels.
// Dispatch: ceil(items / WG) workgroups, split over x and y (grid2d).

struct PackParams {
  rows: u32, // R
  k: u32, // K
  k4: u32, // texels per row of P: ceil(K / 4)
  wlog: u32, // log2 of the texture's width in texels
  offset: u32, // word shift of P's view inside the src binding
  ld: u32, // stored row stride of the view (words)
  items: u32, // work items of this dispatch
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: PackParams;
//#if VEC
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
//#else
@group(0) @binding(1) var<storage, read> src: array<f32>;
//#end
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

fn store_texel(r: u32, q: u32, v: vec4<f32>) {
  let t = r * params.k4 + q;
  textureStore(dst, vec2<u32>(t & ((1u << params.wlog) - 1u), t >> params.wlog), v);
}

@compute @workgroup_size(${WG})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let item = (wid.y * nwg.x + wid.x) * ${WG}u + lid;
  if (item >= params.items) {
    return;
  }
  let kk = params.k;
  let k4 = params.k4;
  let off = params.offset;
  let ld = params.ld;
//#if TRANS
//#if VEC
  // Rows 4g .. 4g + 3 of P at texel column q; the stored rows past K read row K − 1 and are zeroed.
  let groups = params.rows / 4u;
  let g = item % groups;
  let q = item / groups;
//#for e in 0..4
  let k_${e} = 4u * q + ${e}u;
  let v_${e} = select(vec4<f32>(0.0), src[(off + min(k_${e}, kk - 1u) * ld) / 4u + g], k_${e} < kk);
//#end
//#for s in 0..4
  store_texel(4u * g + ${s}u, q, vec4<f32>(v_0[${s}], v_1[${s}], v_2[${s}], v_3[${s}]));
//#end
//#else
  let r = item % params.rows;
  let q = item / params.rows;
  var v = vec4<f32>(0.0);
//#for e in 0..4
  {
    let k = 4u * q + ${e}u;
    v[${e}] = select(0.0, src[off + min(k, kk - 1u) * ld + r], k < kk);
  }
//#end
  store_texel(r, q, v);
//#end
//#else
//#if VEC
  // Four texels q = 4g .. 4g + 3 of row r (fewer per-invocation costs; the last group of a row may end
  // early: its loads stay in the row, its extra stores are skipped).
  let g4 = (k4 + 3u) / 4u;
  let r = item / g4;
  let q = (item % g4) * 4u;
  let base = (off + r * ld) / 4u;
//#for e in 0..4
  let v_${e} = src[base + min(q + ${e}u, k4 - 1u)];
//#end
  store_texel(r, q, v_0);
//#for e in 1..4
  if (q + ${e}u < k4) {
    store_texel(r, q + ${e}u, v_${e});
  }
//#end
//#else
  let r = item / k4;
  let q = item % k4;
  let row = off + r * ld;
  var v = vec4<f32>(0.0);
//#for e in 0..4
  {
    let k = 4u * q + ${e}u;
    v[${e}] = select(0.0, src[row + min(k, kk - 1u)], k < kk);
  }
//#end
  store_texel(r, q, v);
//#end
//#end
}
