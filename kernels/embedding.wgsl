// embedding: gathers rows of the token embedding table into the residual stream, x[t, :] = E[ids[t], :].
//
// Bindings (group 0):
//   0 params  uniform  EmbeddingParams (below)
//   1 step    uniform  Step: T rows are gathered (pos0 unused)
//   2 ids     storage  array<u32>        ids[ids_offset + t], t < T; an id >= vocab gives a zero row
//   3 table0  storage  array<u32>        the table (V, D) row-major, as f32 bits (F16 = false) or fp16
//   4 table1                             pairs, low half first (F16 = true); one table may span up to
//   5 table2                             four bindings of chunk_words words each (a 32000 x 4096 f32
//   6 table3                             table exceeds one 128 MiB binding); unused ones repeat table0
//   7 x       storage  array<f32>, rw    x[x_offset + t * x_stride + i], i < D
// Element e of the table (e = id * D + i) is word (table_offset + e) >> (F16 ? 1 : 0) counted from the
// start of table0's binding; binding c holds words [c * chunk_words, (c + 1) * chunk_words).
// Geometry: WG threads (override), consecutive threads copy consecutive columns (coalesced);
// dispatch (ceil(D / WG), T).

struct EmbeddingParams {
  dim: u32, // D
  vocab: u32, // V
  ids_offset: u32,
  table_offset: u32, // elements (halves when F16) from the start of table0's binding to E[0, 0]
  chunk_words: u32,
  x_offset: u32,
  x_stride: u32,
  _pad: u32,
}

struct Step {
  pos0: u32,
  tokens: u32,
  _a: u32,
  _b: u32,
}

override WG: u32 = 256u;
override F16: bool = false;

@group(0) @binding(0) var<uniform> params: EmbeddingParams;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> table0: array<u32>;
@group(0) @binding(4) var<storage, read> table1: array<u32>;
@group(0) @binding(5) var<storage, read> table2: array<u32>;
@group(0) @binding(6) var<storage, read> table3: array<u32>;
@group(0) @binding(7) var<storage, read_write> x: array<f32>;

fn load_word(w: u32) -> u32 {
  let c = w / params.chunk_words;
  let l = w - c * params.chunk_words;
  if (c == 0u) {
    return table0[l];
  }
  if (c == 1u) {
    return table1[l];
  }
  if (c == 2u) {
    return table2[l];
  }
  return table3[l];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y;
  let i = wid.x * WG + lid;
  if (t >= step.tokens || i >= params.dim) {
    return;
  }
  let id = ids[params.ids_offset + t];
  var value = 0.0;
  if (id < params.vocab) {
    let e = params.table_offset + id * params.dim + i;
    if (F16) {
      let pair = unpack2x16float(load_word(e >> 1u));
      value = select(pair.x, pair.y, (e & 1u) == 1u);
    } else {
      value = bitcast<f32>(load_word(e));
    }
  }
  x[params.x_offset + t * params.x_stride + i] = value;
}
