// argmax: index of the largest value of each row (the first one on ties; NaN never wins), for greedy
// decoding without reading the logits back; the index can feed the next step's embedding directly.
//
// Bindings (group 0):
//   0 params  uniform  ArgmaxParams (below)
//   1 x       storage  array<f32>        x[x_offset + r * x_stride + i], i < n
//   2 out     storage  array<u32>, rw    out[out_offset + r]
// Geometry: one workgroup per row (dispatch (rows)); WG threads (override, a power of two) scan the row
// with coalesced loads, keeping their first maximum, then a tree reduction of (key, index) pairs, the
// key an order-preserving u32 image of the value (one vec2 array: cheap to compile on llvmpipe).

struct ArgmaxParams {
  n: u32,
  x_offset: u32,
  x_stride: u32,
  out_offset: u32,
}

override WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> params: ArgmaxParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> best: array<vec2<u32>, WG>; // (order-preserving key of the value, index)

// Maps a non-NaN f32 to a u32 that orders the same way (−0 is folded into +0 first).
fn order_key(v: f32) -> u32 {
  let b = bitcast<u32>(select(v, 0.0, v == 0.0));
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let xo = params.x_offset + wid.x * params.x_stride;
  // −inf: any number, even −3e38, beats it; NaN does not. Through a var, because Tint (Dawn) rejects a
  // constant expression whose value is −inf.
  var neg_inf_bits = 0xff800000u;
  var bv = bitcast<f32>(neg_inf_bits);
  var bi = NONE;
  for (var i = lid; i < params.n; i += WG) {
    let v = x[xo + i];
    if (v > bv) {
      bv = v;
      bi = i;
    }
  }
  best[lid] = vec2<u32>(order_key(bv), bi);
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      let o = best[lid + s];
      let c = best[lid];
      if (o.x > c.x || (o.x == c.x && o.y < c.y)) {
        best[lid] = o;
      }
    }
  }
  if (lid == 0u) {
    let i = best[0].y;
    out[params.out_offset + wid.x] = select(i, 0u, i == NONE);
  }
}
