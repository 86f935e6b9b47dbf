// attention_decode_serial: attention_decode for software adapters (llvmpipe): one query (T = 1, at position
// pos0) against KV-cache positions 0..pos0, S = pos0 + 1, with no barriers and no workgroup memory. One
// invocation per (set of `heads` query heads sharing a KV head, split c) walks the positions
// [c * split, (c + 1) * split) ∩ [0, S) alone, with an online softmax per head: running max m, running
// sum l and the unnormalized weighted sum o of V rows, rescaled by e^(m_old − m_new) as m grows. It writes
// the normalized output (one split) or each head's partial (m, l, o) in attention_decode's layout, which
// attention_decode_reduce combines (several splits). Grouped-query attention: head h reads KV head
// h / group. Mask and scale as attention_decode: positions 0..pos0, scores q·k / sqrt(HS).
//
// Bindings (group 0), as in attention_decode:
//   0 params  uniform  SerialParams (below): attention_decode's AttentionParams, heads per invocation, split
//   1 step    uniform  Step {pos0, T = 1}
//   2 q       storage  array<f32>        q[q_offset + h * HS + d]
//   3 k       storage  array<f32>        k[k_offset + s * k_stride + kvh * HS + d], s < S (may be v's buffer)
//   4 v       storage  array<f32>        v[v_offset + s * v_stride + kvh * HS + d]
//   5 out     storage  array<f32>, rw    out[out_offset + h * HS + d] (written when S <= split)
//   6 part    storage  array<vec2<f32>>, rw  the f32 words part[(h * max_splits + c) * (HS + 2) + {0: max,
//                                        1: sum, 2 + d: o}], written in pairs (HS + 2 is even)
// Template values (wgsl_template.ts): HS head size, HS4 = HS / 4, G head slots per invocation (the runtime
// `heads` ≤ G divides group; slots ≥ heads run on q = 0 and write nothing). Override constant: WG
// invocations per workgroup. SPLIT, the positions per split (attention_decode_reduce's SPLIT), is a
// uniform rather than an override so that one compiled pipeline serves every split.
// Geometry: invocation i = set + (nH / heads) * c, heads set·heads .. set·heads + heads − 1; dispatch
// ceil((nH / heads) * ceil(S / split) / WG) workgroups over a 2-D grid (x up to 65535). Neighbouring
// invocations are neighbouring head sets of one split, so the SIMD lanes of a batch walk as many positions.
//
// Why: llvmpipe runs 8 invocations as SIMD lanes, re-enters every invocation at each workgroupBarrier and
// turns each workgroup-memory or storage access into a per-lane loop of scalar loads (~25 cycles per
// lane and scalar), which costs more than all the arithmetic: attention_decode's GPU shape (one thread
// per position, tree reductions, many barriers) took ~10 ms per TinyLlama layer. Here each K and V
// element is loaded once per invocation, i.e. once per `heads` query heads of a GQA group: sharing the
// rows divides the dominant cost by `heads`. q and the accumulators are separate vec4 registers (unrolled;
// an indexed private array would be a per-lane gather). LLVM's compile time grows steeply with the
// unrolled code (G · HS; the partial is stored in pairs to halve its store statements), hence the cap on
// G in ops.ts.

struct SerialParams {
  n_heads: u32,
  group: u32, // nH / nKV
  q_offset: u32,
  q_stride: u32,
  k_offset: u32,
  k_stride: u32,
  v_offset: u32,
  v_stride: u32,
  out_offset: u32,
  out_stride: u32,
  max_splits: u32,
  scale: f32, // 1 / sqrt(HS)
  heads: u32, // query heads per invocation: ≤ G, divides group
  split: u32, // positions per split
  _a: u32,
  _b: u32,
}

struct Step {
  pos0: u32,
  tokens: u32,
  _a: u32,
  _b: u32,
}

override WG: u32 = 4u;
const HS: u32 = ${HS}u;
const NEG: f32 = -3.0e38; // a finite "minus infinity": the first rescale is e^(NEG − score) = 0, not NaN

@group(0) @binding(0) var<uniform> params: SerialParams;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> part: array<vec2<f32>>;

// Four scalar loads rather than vec4 arrays: the views' offsets and strides need not be multiples of 4.
fn load_q(i: u32) -> vec4<f32> {
  return vec4<f32>(q[i], q[i + 1u], q[i + 2u], q[i + 3u]);
}

fn load_k(i: u32) -> vec4<f32> {
  return vec4<f32>(k[i], k[i + 1u], k[i + 2u], k[i + 3u]);
}

fn load_v(i: u32) -> vec4<f32> {
  return vec4<f32>(v[i], v[i + 1u], v[i + 2u], v[i + 3u]);
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid;
  let heads = params.heads;
  let n_sets = params.n_heads / heads;
  let c = i / n_sets;
  let h0 = (i - c * n_sets) * heads;
  let S = step.pos0 + 1u;
  let split = params.split;
  let n_splits = (S + split - 1u) / split;
  if (c >= n_splits) {
    return;
  }
  let s0 = c * split;
  let n = min(split, S - s0); // positions of this split
  let kvh = h0 / params.group;

  //#for g in 0..G
  //#for j in 0..HS4
  var q${g}_${j} = vec4<f32>(0.0);
  var o${g}_${j} = vec4<f32>(0.0);
  //#end
  if (${g}u < heads) {
    let qb = params.q_offset + (h0 + ${g}u) * HS;
    //#for j in 0..HS4
    q${g}_${j} = load_q(qb + ${j}u * 4u) * params.scale;
    //#end
  }
  var m${g} = NEG;
  var l${g} = 0.0;
  //#end
  var kb = params.k_offset + s0 * params.k_stride + kvh * HS;
  var vb = params.v_offset + s0 * params.v_stride + kvh * HS;
  for (var s = 0u; s < n; s++) {
    // The K row, one vec4 at a time into every slot's dot product.
    //#for g in 0..G
    var dot${g} = vec4<f32>(0.0);
    //#end
    //#for j in 0..HS4
    let k${j} = load_k(kb + ${j}u * 4u);
    //#for g in 0..G
    dot${g} = fma(q${g}_${j}, k${j}, dot${g});
    //#end
    //#end
    // Rescaling unconditionally is cheaper than a branch the SIMD lanes would take at different steps;
    // while m holds, a = e^0 = 1 exactly and o is unchanged.
    //#for g in 0..G
    let score${g} = (dot${g}.x + dot${g}.y) + (dot${g}.z + dot${g}.w);
    let mn${g} = max(m${g}, score${g});
    let a${g} = exp(m${g} - mn${g});
    let p${g} = exp(score${g} - mn${g});
    l${g} = fma(l${g}, a${g}, p${g});
    m${g} = mn${g};
    //#end
    //#for j in 0..HS4
    let v${j} = load_v(vb + ${j}u * 4u);
    //#for g in 0..G
    o${g}_${j} = fma(o${g}_${j}, vec4<f32>(a${g}), p${g} * v${j});
    //#end
    //#end
    kb += params.k_stride;
    vb += params.v_stride;
  }

  // Slot g's result: o / l to out (one split), or (m, l, o) to its partial of split c.
  //#for g in 0..G
  if (${g}u < heads) {
    let h = h0 + ${g}u;
    if (n_splits == 1u) {
      let ob = params.out_offset + h * HS;
      //#for j in 0..HS4
      let r${j} = o${g}_${j} / l${g};
      out[ob + ${j}u * 4u] = r${j}.x;
      out[ob + ${j}u * 4u + 1u] = r${j}.y;
      out[ob + ${j}u * 4u + 2u] = r${j}.z;
      out[ob + ${j}u * 4u + 3u] = r${j}.w;
      //#end
    } else {
      let pb = (h * params.max_splits + c) * (HS / 2u + 1u); // in pairs
      part[pb] = vec2<f32>(m${g}, l${g});
      //#for j in 0..HS4
      part[pb + 1u + ${j}u * 2u] = o${g}_${j}.xy;
      part[pb + 2u + ${j}u * 2u] = o${g}_${j}.zw;
      //#end
    }
  }
  //#end
}
