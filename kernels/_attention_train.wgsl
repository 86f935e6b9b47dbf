// _attention_train: declarations shared by the training attention kernels (attention_train_forward,
// attention_backward_dq, attention_backward_dkv and their *_serial variants), a fragment included with
// //#include (see src/backend/webgpu/wgsl_template.ts). Include it after the kernel's own `override`
// declarations.
//
// Layout of every kernel: B windows of T rows each, each window causal on its own (S = T). Row t of
// window b is row b·T + t of q (B·T, nH·HS), k, v (B·T, nKV·HS), out / dOut (B·T, nH·HS): element d of
// head h is X[x_offset + (b·T + t) · x_stride + h·HS + d]. Query head h reads KV head h / group. Per
// (window, head, query) vectors lse and delta are (B, nH, T): lse[lse_offset + (b·nH + h)·T + t].

struct TrainAttentionParams {
  tokens: u32, // T: rows per window
  n_heads: u32, // nH
  group: u32, // nH / nKV
  scale: f32, // 1 / sqrt(HS)
  q_offset: u32,
  q_stride: u32,
  k_offset: u32,
  k_stride: u32,
  v_offset: u32,
  v_stride: u32,
  o_offset: u32, // out (forward, written; dQ pass, read)
  o_stride: u32,
  do_offset: u32, // dOut (backward)
  do_stride: u32,
  lse_offset: u32, // log-sum-exp L of each query's scaled scores (forward writes, backward reads)
  delta_offset: u32, // D = rowsum(dOut ⊙ out) (dQ pass writes, dK/dV pass reads)
  g_offset: u32, // dQ (dQ pass) or dK (dK/dV pass)
  g_stride: u32,
  g2_offset: u32, // dV (dK/dV pass; through g's binding when flags bit 1)
  g2_stride: u32,
  flags: u32, // bit 0: accumulate (gradients +=), bit 1: dV lives in dK's buffer
  heads: u32, // serial kernels: query heads per invocation (forward, dQ pass)
  windows: u32, // serial kernels: B
  _c: u32,
}

const MAX_DPT4: u32 = 4u; // output vec4s per thread at most: HS ≤ 4 · 4 · TP
const NEG: f32 = -3.0e38; // a finite "minus infinity": masked scores never produce NaN
