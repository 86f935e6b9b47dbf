// gemm_direct: the training GEMM for software adapters (llvmpipe, SwiftShader), with the semantics and
// params of gemm_train:
//   C (M, N) = alpha · op(A) · op(B) + beta · C
// op(A) = A (M, K) row-major, or Aᵀ with A stored (K, M) when TRANS_A; op(B) = B (K, N), or Bᵀ with B
// stored (N, K) when TRANS_B. beta == 0 never reads C (its old contents may be anything, even NaN).
//
// Bindings (group 0):
//   0 params  uniform  GemmParams (below)
//   1 a       storage  array<f32>        A[a_offset + row * lda + col] of the stored layout
//   2 b       storage  array<f32>        B[b_offset + row * ldb + col] of the stored layout (may share
//                                         a's buffer)
//   3 c       storage  rw                C[c_offset + i * ldc + j], a buffer other than a's and b's:
//                                         array<f32>, or array<vec4<f32>> when VEC_C
//   4 a4      storage  array<vec4<f32>>  a's binding again, as vec4s; declared when VEC_A
//   4 + VEC_A b4  storage  array<vec4<f32>>  b's binding again, as vec4s; declared when VEC_B
// The VEC_ flags are the launcher's promises. VEC_A: a_offset and lda are multiples of 4, K ≥ 4, and when
// TRANS_A M and TM are too (vec4 loads along the stored rows: along k for A (M, K), along i for A stored
// (K, M)). VEC_B likewise (along k when TRANS_B; along j, with N and TN multiples of 4, otherwise).
// VEC_C: c_offset, ldc, N and TN are multiples of 4 (vec4 reads and writes of C). Otherwise scalar.
// Geometry (template values TM, TN, WG; TRANS_A, TRANS_B, VEC_A, VEC_B, VEC_C as 0/1; TM = TMG · TMS
// and TN = TNG · TNS with TMS = 4 when 4 divides TM, else TM, likewise TNS): no workgroup memory and no
// barriers, because on llvmpipe a barrier splits the shader into re-entered pieces and every storage or
// workgroup-memory access is a per-lane scalar loop. Invocation t of the flattened grid owns one TM × TN
// block of C, as TM · TN separate accumulators (a dynamically indexed private array would be a per-lane
// gather there): tile (t / tiles_n, t % tiles_n), or (t % tiles_m, t / tiles_m) when params.i_fastest,
// tiles_m = ceil(M / TM), tiles_n = ceil(N / TN). K is walked 4 at a time: op(A)'s (TM, 4) and op(B)'s
// (4, TN) slices are loaded as TM + TN vec4s (or 4 · (TM + TN) scalars), then 4 · TM · TN fmas; a scalar
// loop takes K % 4. Ragged edges: load indices are clamped into the view (no branch in the inner loop;
// the duplicated rows and columns are computed but not stored).
// Dispatch: ceil(tiles_m · tiles_n / WG) workgroups, split over x and y (grid2d), times the batch's
// products along z (VEC_ flags then also promise batch strides that are multiples of 4).

struct GemmParams {
  m: u32,
  n: u32,
  k: u32,
  a_offset: u32,
  lda: u32,
  b_offset: u32,
  ldb: u32,
  c_offset: u32,
  ldc: u32,
  alpha: f32,
  beta: f32,
  i_fastest: u32, // 1: consecutive invocations walk down M (tile (t % tiles_m, t / tiles_m))
  // Batched products (workgroup z = product z): A_z, B_z and C_z start a_batch, b_batch, c_batch words
  // after the first (0 and one z: a single product). gemm_train reads the first 12 fields only.
  a_batch: u32,
  b_batch: u32,
  c_batch: u32,
  _pad: u32,
}

const TM: u32 = ${TM}u;
const TN: u32 = ${TN}u;
const TMS: u32 = ${TMS}u; // rows per row group (4 for vec4 loads along i)
const TNS: u32 = ${TNS}u; // columns per column group (4 for vec4 loads along j)

@group(0) @binding(0) var<uniform> params: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
//#if VEC_C
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
//#else
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
//#end
//#if VEC_A
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
//#end
//#if VEC_B
@group(0) @binding(${B4_BINDING}) var<storage, read> b4: array<vec4<f32>>;
//#end

//#if VEC_C
fn store_c(at: u32, value: vec4<f32>) {
  var v = params.alpha * value;
  if (params.beta != 0.0) {
    v = fma(vec4<f32>(params.beta), c[at], v);
  }
  c[at] = v;
}
//#else
fn store_c(at: u32, value: f32) {
  var v = params.alpha * value;
  if (params.beta != 0.0) {
    v = fma(params.beta, c[at], v);
  }
  c[at] = v;
}
//#end

@compute @workgroup_size(${WG})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let m = params.m;
  let n = params.n;
  let kk = params.k;
  let tiles_m = (m + TM - 1u) / TM;
  let tiles_n = (n + TN - 1u) / TN;
  let t = (wid.y * nwg.x + wid.x) * ${WG}u + lid;
  if (t >= tiles_m * tiles_n) {
    return;
  }
  var i0 = (t / tiles_n) * TM;
  var j0 = (t % tiles_n) * TN;
  if (params.i_fastest != 0u) {
    i0 = (t % tiles_m) * TM;
    j0 = (t / tiles_m) * TN;
  }
  let lda = params.lda;
  let ldb = params.ldb;
  let a_off = params.a_offset + wid.z * params.a_batch;
  let b_off = params.b_offset + wid.z * params.b_batch;
  let c_off = params.c_offset + wid.z * params.c_batch;

  // Clamped row of op(A) and column of op(B) per accumulator row / column.
//#for g in 0..TMG
//#for s in 0..TMS
  let ra_${g}_${s} = min(i0 + ${g}u * TMS + ${s}u, m - 1u);
//#end
//#end
//#for h in 0..TNG
//#for u in 0..TNS
  let cb_${h}_${u} = min(j0 + ${h}u * TNS + ${u}u, n - 1u);
//#end
//#end
  // Per-row (A (M, K)) or per-column (B stored (N, K)) start words of the k-contiguous operands.
//#if TRANS_A
//#if VEC_A
  let lda4 = lda / 4u;
  let a_off4 = a_off / 4u;
//#for g in 0..TMG
  let ga_${g} = min(i0 / 4u + ${g}u, m / 4u - 1u); // vec4 column group of op(A)'s rows
//#end
//#end
//#else
//#for g in 0..TMG
//#for s in 0..TMS
//#if VEC_A
  let pa_${g}_${s} = a_off / 4u + ra_${g}_${s} * (lda / 4u);
//#else
  let pa_${g}_${s} = a_off + ra_${g}_${s} * lda;
//#end
//#end
//#end
//#end
//#if TRANS_B
//#for h in 0..TNG
//#for u in 0..TNS
//#if VEC_B
  let pb_${h}_${u} = b_off / 4u + cb_${h}_${u} * (ldb / 4u);
//#else
  let pb_${h}_${u} = b_off + cb_${h}_${u} * ldb;
//#end
//#end
//#end
//#else
//#if VEC_B
  let ldb4 = ldb / 4u;
  let b_off4 = b_off / 4u;
//#for h in 0..TNG
  let gb_${h} = min(j0 / 4u + ${h}u, n / 4u - 1u); // vec4 row group of op(B)'s columns
//#end
//#end
//#end

//#for g in 0..TMG
//#for s in 0..TMS
//#for h in 0..TNG
//#for u in 0..TNS
  var acc_${g}_${s}_${h}_${u} = 0.0;
//#end
//#end
//#end
//#end

  let k4 = kk / 4u;
  for (var q = 0u; q < k4; q++) {
    let k = 4u * q;
    // a_g_s = op(A)[row (g, s), k .. k + 3]
//#if TRANS_A
//#if VEC_A
//#for e in 0..4
    let ka_${e} = a_off4 + (k + ${e}u) * lda4;
//#for g in 0..TMG
    let at_${e}_${g} = a4[ka_${e} + ga_${g}];
//#end
//#end
//#for g in 0..TMG
//#for s in 0..TMS
    let a_${g}_${s} = vec4<f32>(at_0_${g}[${s}], at_1_${g}[${s}], at_2_${g}[${s}], at_3_${g}[${s}]);
//#end
//#end
//#else
//#for e in 0..4
    let ka_${e} = a_off + (k + ${e}u) * lda;
//#end
//#for g in 0..TMG
//#for s in 0..TMS
    let a_${g}_${s} = vec4<f32>(
      a[ka_0 + ra_${g}_${s}],
      a[ka_1 + ra_${g}_${s}],
      a[ka_2 + ra_${g}_${s}],
      a[ka_3 + ra_${g}_${s}],
    );
//#end
//#end
//#end
//#else
//#for g in 0..TMG
//#for s in 0..TMS
//#if VEC_A
    let a_${g}_${s} = a4[pa_${g}_${s} + q];
//#else
    let a_${g}_${s} = vec4<f32>(
      a[pa_${g}_${s} + k],
      a[pa_${g}_${s} + k + 1u],
      a[pa_${g}_${s} + k + 2u],
      a[pa_${g}_${s} + k + 3u],
    );
//#end
//#end
//#end
//#end
    // b_h_u = op(B)[k .. k + 3, column (h, u)]
//#if TRANS_B
//#for h in 0..TNG
//#for u in 0..TNS
//#if VEC_B
    let b_${h}_${u} = b4[pb_${h}_${u} + q];
//#else
    let b_${h}_${u} = vec4<f32>(
      b[pb_${h}_${u} + k],
      b[pb_${h}_${u} + k + 1u],
      b[pb_${h}_${u} + k + 2u],
      b[pb_${h}_${u} + k + 3u],
    );
//#end
//#end
//#end
//#else
//#if VEC_B
//#for e in 0..4
    let kb_${e} = b_off4 + (k + ${e}u) * ldb4;
//#for h in 0..TNG
    let bt_${e}_${h} = b4[kb_${e} + gb_${h}];
//#end
//#end
//#for h in 0..TNG
//#for u in 0..TNS
    let b_${h}_${u} = vec4<f32>(bt_0_${h}[${u}], bt_1_${h}[${u}], bt_2_${h}[${u}], bt_3_${h}[${u}]);
//#end
//#end
//#else
//#for e in 0..4
    let kb_${e} = b_off + (k + ${e}u) * ldb;
//#end
//#for h in 0..TNG
//#for u in 0..TNS
    let b_${h}_${u} = vec4<f32>(
      b[kb_0 + cb_${h}_${u}],
      b[kb_1 + cb_${h}_${u}],
      b[kb_2 + cb_${h}_${u}],
      b[kb_3 + cb_${h}_${u}],
    );
//#end
//#end
//#end
//#end
//#for g in 0..TMG
//#for s in 0..TMS
//#for h in 0..TNG
//#for u in 0..TNS
    acc_${g}_${s}_${h}_${u} = fma(a_${g}_${s}.x, b_${h}_${u}.x, acc_${g}_${s}_${h}_${u});
    acc_${g}_${s}_${h}_${u} = fma(a_${g}_${s}.y, b_${h}_${u}.y, acc_${g}_${s}_${h}_${u});
    acc_${g}_${s}_${h}_${u} = fma(a_${g}_${s}.z, b_${h}_${u}.z, acc_${g}_${s}_${h}_${u});
    acc_${g}_${s}_${h}_${u} = fma(a_${g}_${s}.w, b_${h}_${u}.w, acc_${g}_${s}_${h}_${u});
//#end
//#end
//#end
//#end
  }

  // K % 4 tail, scalar loads.
  for (var k = 4u * k4; k < kk; k++) {
//#for g in 0..TMG
//#for s in 0..TMS
//#if TRANS_A
    let a_${g}_${s} = a[a_off + k * lda + ra_${g}_${s}];
//#else
    let a_${g}_${s} = a[a_off + ra_${g}_${s} * lda + k];
//#end
//#end
//#end
//#for h in 0..TNG
//#for u in 0..TNS
//#if TRANS_B
    let b_${h}_${u} = b[b_off + cb_${h}_${u} * ldb + k];
//#else
    let b_${h}_${u} = b[b_off + k * ldb + cb_${h}_${u}];
//#end
//#end
//#end
//#for g in 0..TMG
//#for s in 0..TMS
//#for h in 0..TNG
//#for u in 0..TNS
    acc_${g}_${s}_${h}_${u} = fma(a_${g}_${s}, b_${h}_${u}, acc_${g}_${s}_${h}_${u});
//#end
//#end
//#end
//#end
  }

//#for g in 0..TMG
//#for s in 0..TMS
  {
    let i = i0 + ${g}u * TMS + ${s}u;
    if (i < m) {
//#if VEC_C
      let row4 = (c_off + i * params.ldc + j0) / 4u;
//#for h in 0..TNG
      if (j0 + ${h}u * 4u < n) {
        let v = vec4<f32>(
          acc_${g}_${s}_${h}_0,
          acc_${g}_${s}_${h}_1,
          acc_${g}_${s}_${h}_2,
          acc_${g}_${s}_${h}_3,
        );
        store_c(row4 + ${h}u, v);
      }
//#end
//#else
      let row = c_off + i * params.ldc;
//#for h in 0..TNG
//#for u in 0..TNS
      if (j0 + ${h}u * TNS + ${u}u < n) {
        store_c(row + j0 + ${h}u * TNS + ${u}u, acc_${g}_${s}_${h}_${u});
      }
//#end
//#end
//#end
    }
  }
//#end
//#end
}
