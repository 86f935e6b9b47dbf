// attention_decode_reduce: combines the per-split partials of attention_decode for each head,
// out[d] = Σ_c o_c[d] e^(m_c − M) / Σ_c l_c e^(m_c − M), M = max_c m_c, over the ceil(S / SPLIT) splits.
//
// Bindings (group 0):
//   0 params  uniform  AttentionParams (as in attention_decode)
//   1 step    uniform  Step {pos0, T = 1}: S = pos0 + 1
//   2 part    storage  array<f32>        part[(h * max_splits + c) * (HS + 2) + {0: max, 1: sum, 2 + d: o}]
//   3 out     storage  array<f32>, rw    out[out_offset + h * HS + d]
// Geometry: one workgroup per head (dispatch (nH)), WG threads (override) over d; each thread rescans the
// few split maxima (S / SPLIT of them) rather than paying for a reduction.

struct AttentionParams {
  n_heads: u32,
  group: u32,
  q_offset: u32,
  q_stride: u32,
  k_offset: u32,
  k_stride: u32,
  v_offset: u32,
  v_stride: u32,
  out_offset: u32,
  out_stride: u32,
  max_splits: u32,
  scale: f32,
}

struct Step {
  pos0: u32,
  tokens: u32,
  _a: u32,
  _b: u32,
}

override WG: u32 = 64u;
override HS: u32 = 64u;
override SPLIT: u32 = 256u; // positions per split (attention_decode's WG)

@group(0) @binding(0) var<uniform> params: AttentionParams;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> part: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let n_splits = (step.pos0 + SPLIT) / SPLIT;
  let hb = h * params.max_splits * (HS + 2u);
  var mx = -3.0e38;
  for (var c = 0u; c < n_splits; c++) {
    mx = max(mx, part[hb + c * (HS + 2u)]);
  }
  var l = 0.0;
  for (var c = 0u; c < n_splits; c++) {
    let pb = hb + c * (HS + 2u);
    l = fma(part[pb + 1u], exp(part[pb] - mx), l);
  }
  for (var d = lid; d < HS; d += WG) {
    var o = 0.0;
    for (var c = 0u; c < n_splits; c++) {
      let pb = hb + c * (HS + 2u);
      o = fma(part[pb + 2u + d], exp(part[pb] - mx), o);
    }
    out[params.out_offset + h * HS + d] = o / l;
  }
}
