// gemm_texel: the training GEMM for software adapters, reading both operands from rgba32float storage
// textures that kernels/gemm_pack.wgsl filled:
//   C (M, N) = alpha · P · Qᵀ + beta · C, P = op(A) (M, K) and Q = op(B)ᵀ (N, K) packed k-contiguous.
// beta == 0 never reads C (its old contents may be anything, even NaN).
// Why textures: llvmpipe turns every storage-buffer load into a per-lane loop with a bounds branch per
// component (~11 instructions per lane and float), while a texel load is one bounds mask, one 16-byte load
// per lane and a 4 × 4 transpose (~1.3 per lane and float): the direct kernel spent ~3/4 of its time in
// loads, this one ~1/5 (measured on LLVM 15, 256-bit lanes; see src/backend/webgpu/gemm.ts).
//
// Bindings (group 0):
//   0 params  uniform  TexelParams (below)
//   1 pa      texture_storage_2d<rgba32float, read>  P: texel t = i · k4 + q holds P[i, 4q .. 4q + 3]
//                                                     (zeros past K) at (t & (2^wlog − 1), t >> wlog)
//   2 qb      texture_storage_2d<rgba32float, read>  Q (N rows), the same layout
//   3 c       storage  rw  C[c_offset + i · ldc + j], a buffer: array<f32>, or array<vec4<f32>> when VEC_C
//                          (the launcher's promise: c_offset, ldc, N and TN multiples of 4)
// Geometry (template values TM, TN, WG; TN = TNG · TNS with TNS = 4 when 4 divides TN, else TN): no
// workgroup memory and no barriers. Invocation t of the flattened grid owns one TM × TN block of C as
// TM · TN separate accumulators (a dynamically indexed private array would be a per-lane gather on
// llvmpipe): tile (t / tiles_n, t % tiles_n), or (t % tiles_m, t / tiles_m) when params.i_fastest, with
// tiles_m = ceil(M / TM), tiles_n = ceil(N / TN). Each step loads TM + TN texels (4 values of k each) and
// does 4 · TM · TN fmas; the zero padding past K needs no tail loop. Ragged edges: rows of P and Q are
// clamped into the matrix (no branch in the inner loop; the duplicates are computed but not stored).
// Dispatch: ceil(tiles_m · tiles_n / WG) workgroups, split over x and y (grid2d).

struct TexelParams {
  m: u32,
  n: u32,
  k4: u32, // texels per packed row: ceil(K / 4)
  wlog: u32, // log2 of the textures' width in texels
  c_offset: u32,
  ldc: u32,
  alpha: f32,
  beta: f32,
  i_fastest: u32, // 1: consecutive invocations walk down M (tile (t % tiles_m, t / tiles_m))
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

const TM: u32 = ${TM}u;
const TN: u32 = ${TN}u;
const TNS: u32 = ${TNS}u; // columns per column group (4 for vec4 stores of C)

@group(0) @binding(0) var<uniform> params: TexelParams;
@group(0) @binding(1) var pa: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var qb: texture_storage_2d<rgba32float, read>;
//#if VEC_C
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
//#else
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
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
  let k4 = params.k4;
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
  let wlog = params.wlog;
  let wmask = (1u << wlog) - 1u;

  // First texel of each (clamped) row of P and Q.
//#for r in 0..TM
  let pa_${r} = min(i0 + ${r}u, m - 1u) * k4;
//#end
//#for h in 0..TNG
//#for u in 0..TNS
  let qb_${h}_${u} = min(j0 + ${h}u * TNS + ${u}u, n - 1u) * k4;
//#end
//#end

//#for r in 0..TM
//#for h in 0..TNG
//#for u in 0..TNS
  var acc_${r}_${h}_${u} = 0.0;
//#end
//#end
//#end

  for (var q = 0u; q < k4; q++) {
    // a_r = P[row r, 4q .. 4q + 3], b_h_u = Q[column (h, u), 4q .. 4q + 3]
//#for r in 0..TM
    let ta_${r} = pa_${r} + q;
    let a_${r} = textureLoad(pa, vec2<u32>(ta_${r} & wmask, ta_${r} >> wlog));
//#end
//#for h in 0..TNG
//#for u in 0..TNS
    let tb_${h}_${u} = qb_${h}_${u} + q;
    let b_${h}_${u} = textureLoad(qb, vec2<u32>(tb_${h}_${u} & wmask, tb_${h}_${u} >> wlog));
//#end
//#end
//#for r in 0..TM
//#for h in 0..TNG
//#for u in 0..TNS
    acc_${r}_${h}_${u} = fma(a_${r}.x, b_${h}_${u}.x, acc_${r}_${h}_${u});
    acc_${r}_${h}_${u} = fma(a_${r}.y, b_${h}_${u}.y, acc_${r}_${h}_${u});
    acc_${r}_${h}_${u} = fma(a_${r}.z, b_${h}_${u}.z, acc_${r}_${h}_${u});
    acc_${r}_${h}_${u} = fma(a_${r}.w, b_${h}_${u}.w, acc_${r}_${h}_${u});
//#end
//#end
//#end
  }

//#for r in 0..TM
  {
    let i = i0 + ${r}u;
    if (i < m) {
//#if VEC_C
      let row4 = (params.c_offset + i * params.ldc + j0) / 4u;
//#for h in 0..TNG
      if (j0 + ${h}u * 4u < n) {
        store_c(row4 + ${h}u, vec4<f32>(acc_${r}_${h}_0, acc_${r}_${h}_1, acc_${r}_${h}_2, acc_${r}_${h}_3));
      }
//#end
//#else
      let row = params.c_offset + i * params.ldc;
//#for h in 0..TNG
//#for u in 0..TNS
      if (j0 + ${h}u * TNS + ${u}u < n) {
        store_c(row + j0 + ${h}u * TNS + ${u}u, acc_${r}_${h}_${u});
      }
//#end
//#end
//#end
    }
  }
//#end
}
