// gemm_train: general fp32 matrix product over strided row-major views, the training GEMM:
//   C (M, N) = alpha · op(A) · op(B) + beta · C
// op(A) = A (M, K) row-major, or Aᵀ with A stored (K, M) when TRANS_A; op(B) = B (K, N), or Bᵀ with B
// stored (N, K) when TRANS_B. Transposes are index arithmetic (no copies): forward y = x·Wᵀ (TRANS_B),
// dX += dY·W, dW += dYᵀ·x (TRANS_A), and Muon's Newton–Schulz products all run through this one kernel.
// beta == 0 never reads C (its old contents may be anything, even NaN).
//
// Bindings (group 0):
//   0 params  uniform  GemmParams (below)
//   1 a       storage  array<f32>        A[a_offset + row * lda + col] of the stored layout
//   2 b       storage  array<f32>        B[b_offset + row * ldb + col] of the stored layout (may be a's buffer)
//   3 c       storage  array<f32>, rw    C[c_offset + i * ldc + j], a buffer other than a's and b's
// Geometry (template values BM, BN, BK, TM, TN; TRANS_A, TRANS_B as 0/1): a workgroup computes a BM × BN
// tile of C with WG = (BM / TM) · (BN / TN) threads; each thread keeps TM × TN outputs in registers
// (separate variables: a software adapter turns dynamically indexed private arrays into per-lane loops), at
// rows ty + r · (BM / TM) and columns tx + c · (BN / TN), so that the C stores and the B-tile reads of
// neighbouring threads are contiguous. The K dimension is walked in BK-deep slices staged in workgroup
// memory: the (BK, BM) slice of op(A) and the (BK, BN) slice of op(B), k-major, rows padded by one word
// (no bank conflicts when a transposed operand is stored with a BM- or BN-word stride). Tile loads are
// coalesced along the stored rows (the loop order depends on TRANS_A / TRANS_B) and zero-filled outside
// [0, M) × [0, K) and [0, K) × [0, N): ragged edges need no padding.
// Dispatch: (ceil(N / BN), ceil(M / BM)) workgroups.

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
  _pad: u32,
}

const BM: u32 = ${BM}u;
const BN: u32 = ${BN}u;
const BK: u32 = ${BK}u;
const TX: u32 = ${TX}u; // BN / TN threads along N
const TY: u32 = ${TY}u; // BM / TM threads along M
const WG: u32 = ${WG}u; // TX * TY
const AS: u32 = BM + 1u; // words per k-row of the A tile
const BS: u32 = BN + 1u; // words per k-row of the B tile

@group(0) @binding(0) var<uniform> params: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> ta: array<f32, ${TA_WORDS}>; // (BK, AS): ta[kk * AS + i] = op(A)[m0 + i, k0 + kk]
var<workgroup> tb: array<f32, ${TB_WORDS}>; // (BK, BS): tb[kk * BS + j] = op(B)[k0 + kk, n0 + j]

// op(A)[i, kk], 0 outside (M, K).
fn load_a(i: u32, kk: u32) -> f32 {
  if (i >= params.m || kk >= params.k) {
    return 0.0;
  }
//#if TRANS_A
  return a[params.a_offset + kk * params.lda + i];
//#else
  return a[params.a_offset + i * params.lda + kk];
//#end
}

// op(B)[kk, j], 0 outside (K, N).
fn load_b(kk: u32, j: u32) -> f32 {
  if (kk >= params.k || j >= params.n) {
    return 0.0;
  }
//#if TRANS_B
  return b[params.b_offset + j * params.ldb + kk];
//#else
  return b[params.b_offset + kk * params.ldb + j];
//#end
}

fn store_c(i: u32, j: u32, value: f32) {
  if (i < params.m && j < params.n) {
    let at = params.c_offset + i * params.ldc + j;
    var v = params.alpha * value;
    if (params.beta != 0.0) {
      v = fma(params.beta, c[at], v);
    }
    c[at] = v;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
//#for r in 0..TM
//#for q in 0..TN
  var acc_${r}_${q} = 0.0;
//#end
//#end

  for (var k0 = 0u; k0 < params.k; k0 += BK) {
    // Stage the slices: element e of a slice goes to thread e % WG; consecutive threads read
    // consecutive words of the stored operand.
//#for s in 0..LOADS_A
    {
      let e = lid + ${s}u * WG;
      if (e < BM * BK) {
//#if TRANS_A
        let i = e % BM;
        let kk = e / BM;
//#else
        let kk = e % BK;
        let i = e / BK;
//#end
        ta[kk * AS + i] = load_a(m0 + i, k0 + kk);
      }
    }
//#end
//#for s in 0..LOADS_B
    {
      let e = lid + ${s}u * WG;
      if (e < BN * BK) {
//#if TRANS_B
        let kk = e % BK;
        let j = e / BK;
//#else
        let j = e % BN;
        let kk = e / BN;
//#end
        tb[kk * BS + j] = load_b(k0 + kk, n0 + j);
      }
    }
//#end
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
//#for r in 0..TM
      let a_${r} = ta[kk * AS + ty + ${r}u * TY];
//#end
//#for q in 0..TN
      let b_${q} = tb[kk * BS + tx + ${q}u * TX];
//#end
//#for r in 0..TM
//#for q in 0..TN
      acc_${r}_${q} = fma(a_${r}, b_${q}, acc_${r}_${q});
//#end
//#end
    }
    workgroupBarrier();
  }

//#for r in 0..TM
//#for q in 0..TN
  store_c(m0 + ty + ${r}u * TY, n0 + tx + ${q}u * TX, acc_${r}_${q});
//#end
//#end
}
