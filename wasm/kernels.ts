// AssemblyScript source of the WebAssembly SIMD CPU kernels (compiled by scripts/build_wasm.ts into
// src/backend/wasm/kernels.gen.ts). The TypeScript wrappers and the layout notes live in
// src/backend/wasm/kernels.ts; src/quant/residual_binary.ts is the reference every packed kernel is tested
// against, src/model/ops.ts `matmul` the reference of the dense ones.
//
// Every function takes byte offsets into this module's memory; the caller (TypeScript) owns the layout.
// Products take a row range last (rows r0..r1, or 16-row tiles tile0..tile1) so that threads sharing one
// memory can split a product by rows; the same source builds a module with its own memory and one that
// imports a shared memory (scripts/build_wasm.ts).
// Dimension legend: T tokens, out rows, inF columns, k sign planes, wpr = ceil(inF / 32) words per packed
// row, G = 8·wpr groups of 4 columns, tiles of 16 rows (outPad = 16·ceil(out / 16)), BW words per table
// block (one table scale per block of 32·BW columns).

/** First byte the caller may use: static data ends here (this module keeps none at run time). */
export function heapBase(): usize {
  return __heap_base;
}

// ---------------------------------------------------------------------------------------------------------
// Dense baselines: y (T, out) = x (T, inF) · Wᵀ, four rows at a time sharing each load of x.

@inline function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/**
 * Rows r0..r1 of fp32 W (out, inF) row-major; y rows have stride ldy. Rows outer so that four rows of W stay
 * cached across the T tokens.
 */
export function gemvF32(w: usize, x: usize, y: usize, inF: i32, T: i32, ldy: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>inF << 2;
  const in8 = inF & ~7, in4 = inF & ~3;
  let r = r0;
  for (; r + 4 <= r1; r += 4) {
    const w0 = w + <usize>r * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
    for (let t = 0; t < T; t++) {
      const xt = x + <usize>t * rowBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      let c = 0;
      for (; c < in8; c += 8) {
        const o = <usize>c << 2;
        const xa = v128.load(xt + o), xb = v128.load(xt + o, 16);
        a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + o), xa));
        a1 = f32x4.add(a1, f32x4.mul(v128.load(w1 + o), xa));
        a2 = f32x4.add(a2, f32x4.mul(v128.load(w2 + o), xa));
        a3 = f32x4.add(a3, f32x4.mul(v128.load(w3 + o), xa));
        b0 = f32x4.add(b0, f32x4.mul(v128.load(w0 + o, 16), xb));
        b1 = f32x4.add(b1, f32x4.mul(v128.load(w1 + o, 16), xb));
        b2 = f32x4.add(b2, f32x4.mul(v128.load(w2 + o, 16), xb));
        b3 = f32x4.add(b3, f32x4.mul(v128.load(w3 + o, 16), xb));
      }
      for (; c < in4; c += 4) {
        const o = <usize>c << 2;
        const xa = v128.load(xt + o);
        a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + o), xa));
        a1 = f32x4.add(a1, f32x4.mul(v128.load(w1 + o), xa));
        a2 = f32x4.add(a2, f32x4.mul(v128.load(w2 + o), xa));
        a3 = f32x4.add(a3, f32x4.mul(v128.load(w3 + o), xa));
      }
      let s0 = hsum(f32x4.add(a0, b0)), s1 = hsum(f32x4.add(a1, b1));
      let s2 = hsum(f32x4.add(a2, b2)), s3 = hsum(f32x4.add(a3, b3));
      for (; c < inF; c++) {
        const o = <usize>c << 2;
        const xv = load<f32>(xt + o);
        s0 += load<f32>(w0 + o) * xv;
        s1 += load<f32>(w1 + o) * xv;
        s2 += load<f32>(w2 + o) * xv;
        s3 += load<f32>(w3 + o) * xv;
      }
      const yo = y + ((<usize>t * ldy + r) << 2);
      store<f32>(yo, s0);
      store<f32>(yo, s1, 4);
      store<f32>(yo, s2, 8);
      store<f32>(yo, s3, 12);
    }
  }
  for (; r < r1; r++) {
    const w0 = w + <usize>r * rowBytes;
    for (let t = 0; t < T; t++) {
      const xt = x + <usize>t * rowBytes;
      let a0 = f32x4.splat(0);
      let c = 0;
      for (; c < in4; c += 4) {
        const o = <usize>c << 2;
        a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + o), v128.load(xt + o)));
      }
      let s0 = hsum(a0);
      for (; c < inF; c++) s0 += load<f32>(w0 + (<usize>c << 2)) * load<f32>(xt + (<usize>c << 2));
      store<f32>(y + ((<usize>t * ldy + r) << 2), s0);
    }
  }
}

// fp16 storage: halves h widen exactly to f32 as bits(sext(h) << 13) & 0x8FFFE000 (sign to bit 31, exponent
// and mantissa shifted into place, the f32 exponent left 112 short; subnormal halves become subnormal
// floats, also exact). Instead of multiplying every weight by 2^112 the caller scales x by 2^56 and the
// result (W·x·2^-56) by 2^56 again (F16_X_SCALE): products stay normal for any |w·x| > 2^-70. Inf/NaN halves are not kept
// (weights are finite).
@inline function halvesLo(h: v128): v128 {
  return v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(h), 13), i32x4.splat(0x8fffe000));
}
@inline function halvesHi(h: v128): v128 {
  return v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(h), 13), i32x4.splat(0x8fffe000));
}

/**
 * Rows r0..r1 of fp16 W (out, inF) row-major (u16 bit patterns); x must be pre-scaled by 2^56 and y comes
 * out as W·x·2^-56 (the caller multiplies it by 2^56; see halvesLo).
 */
export function gemvF16(w: usize, x: usize, y: usize, inF: i32, T: i32, ldy: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>inF << 1, xBytes = <usize>inF << 2;
  const in8 = inF & ~7;
  let r = r0;
  for (; r + 4 <= r1; r += 4) {
    const w0 = w + <usize>r * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
    for (let t = 0; t < T; t++) {
      const xt = x + <usize>t * xBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let c = 0;
      for (; c < in8; c += 8) {
        const o = <usize>c << 1;
        const xa = v128.load(xt + (o << 1)), xb = v128.load(xt + (o << 1), 16);
        const h0 = v128.load(w0 + o), h1 = v128.load(w1 + o), h2 = v128.load(w2 + o), h3 = v128.load(w3 + o);
        a0 = f32x4.add(a0, f32x4.add(f32x4.mul(halvesLo(h0), xa), f32x4.mul(halvesHi(h0), xb)));
        a1 = f32x4.add(a1, f32x4.add(f32x4.mul(halvesLo(h1), xa), f32x4.mul(halvesHi(h1), xb)));
        a2 = f32x4.add(a2, f32x4.add(f32x4.mul(halvesLo(h2), xa), f32x4.mul(halvesHi(h2), xb)));
        a3 = f32x4.add(a3, f32x4.add(f32x4.mul(halvesLo(h3), xa), f32x4.mul(halvesHi(h3), xb)));
      }
      let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
      for (; c < inF; c++) {
        const xv = load<f32>(xt + (<usize>c << 2));
        const o = <usize>c << 1;
        s0 += half(load<u16>(w0 + o)) * xv;
        s1 += half(load<u16>(w1 + o)) * xv;
        s2 += half(load<u16>(w2 + o)) * xv;
        s3 += half(load<u16>(w3 + o)) * xv;
      }
      const yo = y + ((<usize>t * ldy + r) << 2);
      store<f32>(yo, s0);
      store<f32>(yo, s1, 4);
      store<f32>(yo, s2, 8);
      store<f32>(yo, s3, 12);
    }
  }
  for (; r < r1; r++) {
    const w0 = w + <usize>r * rowBytes;
    for (let t = 0; t < T; t++) {
      const xt = x + <usize>t * xBytes;
      let s0: f32 = 0;
      for (let c = 0; c < inF; c++) s0 += half(load<u16>(w0 + (<usize>c << 1))) * load<f32>(xt + (<usize>c << 2));
      store<f32>(y + ((<usize>t * ldy + r) << 2), s0);
    }
  }
}

/** One half widened as halvesLo does (so scaled by 2^-112). */
@inline function half(h: u16): f32 {
  return reinterpret<f32>(((<i32><i16>h) << 13) & 0x8fffe000);
}

// ---------------------------------------------------------------------------------------------------------
// Int8 storage with per-row scales (the optional storage of the classifier; src/quant/int8_rows.ts is the
// reference): W[r, c] = s_r · q[r, c]. x is quantized per token to int16 (xq = round(x / s_x), s_x =
// max |x| / 32767: a relative rounding of 1.5e-5 of the largest activation, far below int8's own), so the
// inner product is integer: i32x4.dot_i16x8_s of the widened codes with xq, 16 columns in 7 instructions
// (the fp32 GEMV needs 12 and four times the bytes). A lane gains at most 2 · 2 · 127 · 32767 < 2^24 per 16
// columns, so the i32 accumulators are moved into f32 every 1,024 columns (64 steps < 2^31 / 2^24 · 0.5).
// Rows are zero-padded to inPad (a multiple of 16) columns, x to the same.

/** xq (T, inPad) int16 and xs (T) f32 per-token scales of x (T, inF); columns inF..inPad are zeroed. */
export function quantX16(x: usize, T: i32, inF: i32, inPad: i32, xq: usize, xs: usize): void {
  for (let t = 0; t < T; t++) {
    const xt = x + ((<usize>t * inF) << 2);
    let m: f32 = 0;
    for (let c = 0; c < inF; c++) m = max(m, abs(load<f32>(xt + (<usize>c << 2))));
    const ok = m > 0 && m < Infinity;
    const inv: f32 = ok ? <f32>32767 / m : 0;
    store<f32>(xs + (<usize>t << 2), ok ? m / <f32>32767 : m); // 0, or a non-finite max carried to y
    const qt = xq + ((<usize>t * inPad) << 1);
    for (let c = 0; c < inF; c++) {
      const v = min(max(nearest(load<f32>(xt + (<usize>c << 2)) * inv), <f32>-32767), <f32>32767);
      store<i16>(qt + (<usize>c << 1), <i16>(v == v ? <i32>v : 0));
    }
    for (let c = inF; c < inPad; c++) store<i16>(qt + (<usize>c << 1), 0);
  }
}

@inline function dotQ8(acc: v128, q: v128, xa: v128, xb: v128): v128 {
  return i32x4.add(
    acc,
    i32x4.add(
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q), xa),
      i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q), xb),
    ),
  );
}

/**
 * Rows r0..r1 of y (T, ldy) = s_x · s_r · Σ_c q[r, c] · xq[t, c]: wq (out, inPad) int8 codes, scales (out)
 * f32, xq and xs from quantX16. Four rows share each load of xq.
 */
export function gemvQ8(
  wq: usize,
  scales: usize,
  xq: usize,
  xs: usize,
  y: usize,
  inPad: i32,
  T: i32,
  ldy: i32,
  r0: i32,
  r1: i32,
): void {
  const rowBytes = <usize>inPad, xBytes = <usize>inPad << 1;
  let r = r0;
  for (; r + 4 <= r1; r += 4) {
    const w0 = wq + <usize>r * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
    for (let t = 0; t < T; t++) {
      const xt = xq + <usize>t * xBytes;
      let f0 = f32x4.splat(0), f1 = f32x4.splat(0), f2 = f32x4.splat(0), f3 = f32x4.splat(0);
      for (let c0 = 0; c0 < inPad; c0 += 1024) {
        const end = min(c0 + 1024, inPad);
        let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
        for (let c = c0; c < end; c += 16) {
          const o = <usize>c;
          const xa = v128.load(xt + (o << 1)), xb = v128.load(xt + (o << 1), 16);
          a0 = dotQ8(a0, v128.load(w0 + o), xa, xb);
          a1 = dotQ8(a1, v128.load(w1 + o), xa, xb);
          a2 = dotQ8(a2, v128.load(w2 + o), xa, xb);
          a3 = dotQ8(a3, v128.load(w3 + o), xa, xb);
        }
        f0 = f32x4.add(f0, f32x4.convert_i32x4_s(a0));
        f1 = f32x4.add(f1, f32x4.convert_i32x4_s(a1));
        f2 = f32x4.add(f2, f32x4.convert_i32x4_s(a2));
        f3 = f32x4.add(f3, f32x4.convert_i32x4_s(a3));
      }
      const sx = load<f32>(xs + (<usize>t << 2)), sr = scales + (<usize>r << 2);
      const yo = y + ((<usize>t * ldy + r) << 2);
      store<f32>(yo, hsum(f0) * load<f32>(sr) * sx);
      store<f32>(yo, hsum(f1) * load<f32>(sr, 4) * sx, 4);
      store<f32>(yo, hsum(f2) * load<f32>(sr, 8) * sx, 8);
      store<f32>(yo, hsum(f3) * load<f32>(sr, 12) * sx, 12);
    }
  }
  for (; r < r1; r++) {
    const w0 = wq + <usize>r * rowBytes;
    for (let t = 0; t < T; t++) {
      const xt = xq + <usize>t * xBytes;
      let f0 = f32x4.splat(0);
      for (let c0 = 0; c0 < inPad; c0 += 1024) {
        const end = min(c0 + 1024, inPad);
        let a0 = i32x4.splat(0);
        for (let c = c0; c < end; c += 16) {
          const o = <usize>c;
          a0 = dotQ8(a0, v128.load(w0 + o), v128.load(xt + (o << 1)), v128.load(xt + (o << 1), 16));
        }
        f0 = f32x4.add(f0, f32x4.convert_i32x4_s(a0));
      }
      store<f32>(
        y + ((<usize>t * ldy + r) << 2),
        hsum(f0) * load<f32>(scales + (<usize>r << 2)) * load<f32>(xs + (<usize>t << 2)),
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Packed residual-binary layers, T-MAC style. For each token and plane, xs = h_p ⊙ x (zero-padded to whole
// words) is cut into groups of 4 columns; a group's table holds the 16 signed sums
//   entry m = Σ_j (bit j of m ? +xs[4g+j] : −xs[4g+j]),
// so one nibble of a sign word (bit j = column 4g+j, 1 = +1, METHOD.md §8) picks the group's whole
// contribution. entry 15−m = −entry m (the ±1 symmetry); the int8 tables keep all 16 entries because a
// 16-byte table is exactly one i8x16.swizzle operand, so halving it would only add sign fix-ups. Three
// kinds of tables: int8 (gemmI8/gemvI8, fastest), int16 as high and low bytes (gemmI16/gemvI16, two
// swizzles, 256× finer), f32 (gemmF32Lut, scalar loads).

/** Writes xs (G·4 floats) = h ⊙ x for one token, zero past inF. */
@inline function scaleColumns(x: usize, h: usize, inF: i32, xs: usize, padded: i32): void {
  let c = 0;
  for (; c + 4 <= inF; c += 4) {
    const o = <usize>c << 2;
    v128.store(xs + o, f32x4.mul(v128.load(x + o), v128.load(h + o)));
  }
  for (; c < inF; c++) store<f32>(xs + (<usize>c << 2), load<f32>(x + (<usize>c << 2)) * load<f32>(h + (<usize>c << 2)));
  for (; c < padded; c++) store<f32>(xs + (<usize>c << 2), 0);
}

/**
 * The 16 entries of one group as four f32x4 (entries 0–3, 4–7, 8–11, 12–15): lanes vary the signs of
 * x0 (bit 0) and x1 (bit 1), the four vectors those of x2 (bit 2) and x3 (bit 3).
 */
@inline function groupBase(xs: usize): v128 {
  const x0 = f32x4.splat(load<f32>(xs)), x1 = f32x4.splat(load<f32>(xs, 4));
  return f32x4.add(
    f32x4.mul(x0, f32x4(-1, 1, -1, 1)),
    f32x4.mul(x1, f32x4(-1, -1, 1, 1)),
  );
}

/**
 * f32 tables (T, k, G, 16) for tokens x (T, inF) and scales h (k, inF); xs is scratch of 32·wpr floats.
 */
export function tablesF32(x: usize, h: usize, inF: i32, k: i32, T: i32, xs: usize, tables: usize): void {
  const wpr = (inF + 31) >> 5, G = wpr << 3;
  let out = tables;
  for (let t = 0; t < T; t++) {
    const xt = x + (<usize>t * inF << 2);
    for (let p = 0; p < k; p++) {
      scaleColumns(xt, h + (<usize>p * inF << 2), inF, xs, G << 2);
      for (let g = 0; g < G; g++) {
        const xg = xs + (<usize>g << 4);
        const base = groupBase(xg);
        const x2 = load<f32>(xg, 8), x3 = load<f32>(xg, 12);
        const c0 = -x2 - x3, c1 = x2 - x3;
        v128.store(out, f32x4.add(base, f32x4.splat(c0)));
        v128.store(out, f32x4.add(base, f32x4.splat(c1)), 16);
        v128.store(out, f32x4.sub(base, f32x4.splat(c1)), 32);
        v128.store(out, f32x4.sub(base, f32x4.splat(c0)), 48);
        out += 64;
      }
    }
  }
}

/**
 * int8 tables (T, k, G, 16) and their scales (T, k, nBlocks) f32 for blocks of BW words (8·BW groups):
 * entry = nearest(value · 127 / m) with m the block's largest |entry| (Σ_j |xs_j| of its largest group),
 * so value ≈ entry · m / 127 and rounding is symmetric (the table stays odd: entry 15−m = −entry m).
 * With `wide`, entries are int16 (value ≈ q · m / 32767) stored per group as 32 bytes: the high bytes
 * (q >> 8, signed) then the low bytes (q & 255, unsigned), each table one swizzle operand: (T, k, G, 32).
 */
export function tablesI8(
  x: usize,
  h: usize,
  inF: i32,
  k: i32,
  T: i32,
  BW: i32,
  xs: usize,
  tables: usize,
  scales: usize,
  wide: bool,
): void {
  const wpr = (inF + 31) >> 5, G = wpr << 3, gpb = BW << 3;
  const levels: f32 = wide ? 32767 : 127;
  let out = tables, sOut = scales;
  for (let t = 0; t < T; t++) {
    const xt = x + (<usize>t * inF << 2);
    for (let p = 0; p < k; p++) {
      scaleColumns(xt, h + (<usize>p * inF << 2), inF, xs, G << 2);
      for (let g0 = 0; g0 < G; g0 += gpb) {
        const g1 = min(g0 + gpb, G);
        let mx: f32 = 0; // the block's largest |entry|: the largest Σ_j |xs_j| of its groups
        for (let g = g0; g < g1; g++) mx = max(mx, hsum(f32x4.abs(v128.load(xs + (<usize>g << 4)))));
        store<f32>(sOut, mx / levels);
        sOut += 4;
        const inv = f32x4.splat(mx > 0 ? levels / mx : 0);
        for (let g = g0; g < g1; g++) {
          const xg = xs + (<usize>g << 4);
          const base = groupBase(xg);
          const x2 = load<f32>(xg, 8), x3 = load<f32>(xg, 12);
          const c0 = f32x4.splat(-x2 - x3), c1 = f32x4.splat(x2 - x3);
          const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(f32x4.add(base, c0), inv)));
          const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(f32x4.add(base, c1), inv)));
          const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(f32x4.sub(base, c1), inv)));
          const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(f32x4.sub(base, c0), inv)));
          if (wide) {
            const m8 = i32x4.splat(255);
            v128.store(
              out,
              i8x16.narrow_i16x8_s(
                i16x8.narrow_i32x4_s(i32x4.shr_s(q0, 8), i32x4.shr_s(q1, 8)),
                i16x8.narrow_i32x4_s(i32x4.shr_s(q2, 8), i32x4.shr_s(q3, 8)),
              ),
            );
            v128.store(
              out,
              i8x16.narrow_i16x8_u(
                i16x8.narrow_i32x4_s(v128.and(q0, m8), v128.and(q1, m8)),
                i16x8.narrow_i32x4_s(v128.and(q2, m8), v128.and(q3, m8)),
              ),
              16,
            );
            out += 32;
          } else {
            v128.store(out, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3)));
            out += 16;
          }
        }
      }
    }
  }
}

/**
 * Repacks planes (k, out, wpr) u32 (METHOD.md §8) for the int8 kernels: (tiles, k, 4·wpr, 16) bytes where
 * byte r of vector [tile, p, b] is byte b (columns 8b..8b+7: low nibble group 2b, high nibble 2b+1) of row
 * 16·tile + r of plane p; rows past `out` are zero.
 */
export function repackI8(planes: usize, out: i32, inF: i32, k: i32, dst: usize): void {
  const wpr = (inF + 31) >> 5, bpr = wpr << 2, tiles = (out + 15) >> 4;
  let d = dst;
  for (let tile = 0; tile < tiles; tile++) {
    for (let p = 0; p < k; p++) {
      const plane = planes + (<usize>p * out * bpr);
      for (let b = 0; b < bpr; b++) {
        for (let r = 0; r < 16; r++) {
          const row = (tile << 4) + r;
          store<u8>(d + r, row < out ? load<u8>(plane + <usize>row * bpr + b) : 0);
        }
        d += 16;
      }
    }
  }
}

/**
 * y (T, ldy) = Σ_p g_p ⊙ (B_p (h_p ⊙ x)) for packed planes repacked by repackI8, with int8 tables and
 * scales from tablesI8 (same BW), g (k, outPad) f32 zero-padded to whole tiles. y must hold outPad columns
 * per token (the last tile writes all 16 rows). One pass over the rows fuses all k planes and both scales:
 * per 16-row tile, per plane, per block, i16x8 accumulators gather swizzled table entries (one swizzle per
 * group of 4 columns and 16 rows), then the block's scale turns them into f32.
 * Tokens go four at a time so that each weight vector is loaded and split into nibbles once for four.
 * facc is scratch of 4·16 floats (one per thread). Computes tiles tile0..tile1.
 */
export function gemmI8(
  wq: usize,
  g: usize,
  tables: usize,
  scales: usize,
  y: usize,
  out: i32,
  inF: i32,
  k: i32,
  T: i32,
  BW: i32,
  ldy: i32,
  facc: usize,
  tile0: i32,
  tile1: i32,
): void {
  const wpr = (inF + 31) >> 5, bpr = wpr << 2, G = wpr << 3;
  const nBlocks = (wpr + BW - 1) / BW;
  const outPad = ((out + 15) >> 4) << 4;
  const tStride = <usize>k * G << 4, sStride = <usize>k * nBlocks << 2; // bytes per token
  const tileBytes = <usize>k * bpr << 4;
  let t = 0;
  for (; t + 4 <= T; t += 4) {
    const tab = tables + <usize>t * tStride, sc = scales + <usize>t * sStride;
    for (let tile = tile0; tile < tile1; tile++) {
      const yt = y + ((<usize>t * ldy + (tile << 4)) << 2);
      for (let i = 0; i < 64; i += 4) v128.store(facc + (<usize>i << 2), f32x4.splat(0));
      for (let j = 0; j < 4; j++) {
        const yj = yt + (<usize>j * ldy << 2);
        for (let i = 0; i < 4; i++) v128.store(yj + (<usize>i << 4), f32x4.splat(0));
      }
      for (let p = 0; p < k; p++) {
        let wp = wq + <usize>tile * tileBytes + <usize>p * bpr * 16;
        let tp = tab + (<usize>p * G << 4);
        const sp = sc + (<usize>p * nBlocks << 2);
        for (let blk = 0; blk < nBlocks; blk++) {
          const bEnd = min((blk + 1) * BW, wpr) << 2;
          let a0 = i16x8.splat(0), a1 = i16x8.splat(0), b0 = i16x8.splat(0), b1 = i16x8.splat(0);
          let c0 = i16x8.splat(0), c1 = i16x8.splat(0), d0 = i16x8.splat(0), d1 = i16x8.splat(0);
          for (let b = blk * BW << 2; b < bEnd; b++) {
            const v = v128.load(wp);
            wp += 16;
            const lo = v128.and(v, i8x16.splat(15)), hi = i8x16.shr_u(v, 4);
            let l = i8x16.swizzle(v128.load(tp), lo), u = i8x16.swizzle(v128.load(tp, 16), hi);
            a0 = i16x8.add(a0, i16x8.add(i16x8.extend_low_i8x16_s(l), i16x8.extend_low_i8x16_s(u)));
            a1 = i16x8.add(a1, i16x8.add(i16x8.extend_high_i8x16_s(l), i16x8.extend_high_i8x16_s(u)));
            l = i8x16.swizzle(v128.load(tp + tStride), lo);
            u = i8x16.swizzle(v128.load(tp + tStride, 16), hi);
            b0 = i16x8.add(b0, i16x8.add(i16x8.extend_low_i8x16_s(l), i16x8.extend_low_i8x16_s(u)));
            b1 = i16x8.add(b1, i16x8.add(i16x8.extend_high_i8x16_s(l), i16x8.extend_high_i8x16_s(u)));
            l = i8x16.swizzle(v128.load(tp + 2 * tStride), lo);
            u = i8x16.swizzle(v128.load(tp + 2 * tStride, 16), hi);
            c0 = i16x8.add(c0, i16x8.add(i16x8.extend_low_i8x16_s(l), i16x8.extend_low_i8x16_s(u)));
            c1 = i16x8.add(c1, i16x8.add(i16x8.extend_high_i8x16_s(l), i16x8.extend_high_i8x16_s(u)));
            l = i8x16.swizzle(v128.load(tp + 3 * tStride), lo);
            u = i8x16.swizzle(v128.load(tp + 3 * tStride, 16), hi);
            d0 = i16x8.add(d0, i16x8.add(i16x8.extend_low_i8x16_s(l), i16x8.extend_low_i8x16_s(u)));
            d1 = i16x8.add(d1, i16x8.add(i16x8.extend_high_i8x16_s(l), i16x8.extend_high_i8x16_s(u)));
            tp += 32;
          }
          const so = sp + (<usize>blk << 2);
          accumulate(facc, a0, a1, load<f32>(so));
          accumulate(facc + 64, b0, b1, load<f32>(so + sStride));
          accumulate(facc + 128, c0, c1, load<f32>(so + 2 * sStride));
          accumulate(facc + 192, d0, d1, load<f32>(so + 3 * sStride));
        }
        const gp = g + ((<usize>p * outPad + (tile << 4)) << 2);
        for (let j = 0; j < 4; j++) {
          const yj = yt + (<usize>j * ldy << 2), fj = facc + (<usize>j << 6);
          for (let i = 0; i < 4; i++) {
            const o = <usize>i << 4;
            v128.store(yj + o, f32x4.add(v128.load(yj + o), f32x4.mul(v128.load(gp + o), v128.load(fj + o))));
            v128.store(fj + o, f32x4.splat(0));
          }
        }
      }
    }
  }
  for (; t < T; t++) {
    gemvI8(
      wq,
      g,
      tables + <usize>t * tStride,
      scales + <usize>t * sStride,
      y + (<usize>t * ldy << 2),
      out,
      inF,
      k,
      BW,
      tile0,
      tile1,
    );
  }
}

/** facc[0..16) += scale · (a0 ‖ a1) widened to f32. */
@inline function accumulate(facc: usize, a0: v128, a1: v128, scale: f32): void {
  const s = f32x4.splat(scale);
  v128.store(facc, f32x4.add(v128.load(facc), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a0)), s)));
  v128.store(
    facc,
    f32x4.add(v128.load(facc, 16), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a0)), s)),
    16,
  );
  v128.store(
    facc,
    f32x4.add(v128.load(facc, 32), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a1)), s)),
    32,
  );
  v128.store(
    facc,
    f32x4.add(v128.load(facc, 48), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a1)), s)),
    48,
  );
}

/** gemmI8 for one token (decode), accumulators in registers; y holds outPad floats. Tiles tile0..tile1. */
export function gemvI8(
  wq: usize,
  g: usize,
  tables: usize,
  scales: usize,
  y: usize,
  out: i32,
  inF: i32,
  k: i32,
  BW: i32,
  tile0: i32,
  tile1: i32,
): void {
  const wpr = (inF + 31) >> 5, bpr = wpr << 2, G = wpr << 3;
  const nBlocks = (wpr + BW - 1) / BW;
  const outPad = ((out + 15) >> 4) << 4;
  let wp = wq + <usize>tile0 * k * bpr * 16;
  for (let tile = tile0; tile < tile1; tile++) {
    let y0 = f32x4.splat(0), y1 = f32x4.splat(0), y2 = f32x4.splat(0), y3 = f32x4.splat(0);
    for (let p = 0; p < k; p++) {
      let tp = tables + (<usize>p * G << 4);
      const sp = scales + (<usize>p * nBlocks << 2);
      let f0 = f32x4.splat(0), f1 = f32x4.splat(0), f2 = f32x4.splat(0), f3 = f32x4.splat(0);
      for (let blk = 0; blk < nBlocks; blk++) {
        const bEnd = min((blk + 1) * BW, wpr) << 2;
        let a0 = i16x8.splat(0), a1 = i16x8.splat(0);
        for (let b = blk * BW << 2; b < bEnd; b++) {
          const v = v128.load(wp);
          wp += 16;
          const l = i8x16.swizzle(v128.load(tp), v128.and(v, i8x16.splat(15)));
          const u = i8x16.swizzle(v128.load(tp, 16), i8x16.shr_u(v, 4));
          tp += 32;
          a0 = i16x8.add(a0, i16x8.add(i16x8.extend_low_i8x16_s(l), i16x8.extend_low_i8x16_s(u)));
          a1 = i16x8.add(a1, i16x8.add(i16x8.extend_high_i8x16_s(l), i16x8.extend_high_i8x16_s(u)));
        }
        const s = f32x4.splat(load<f32>(sp + (<usize>blk << 2)));
        f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a0)), s));
        f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a0)), s));
        f2 = f32x4.add(f2, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a1)), s));
        f3 = f32x4.add(f3, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a1)), s));
      }
      const gp = g + ((<usize>p * outPad + (tile << 4)) << 2);
      y0 = f32x4.add(y0, f32x4.mul(v128.load(gp), f0));
      y1 = f32x4.add(y1, f32x4.mul(v128.load(gp, 16), f1));
      y2 = f32x4.add(y2, f32x4.mul(v128.load(gp, 32), f2));
      y3 = f32x4.add(y3, f32x4.mul(v128.load(gp, 48), f3));
    }
    const yo = y + (<usize>tile << 6);
    v128.store(yo, y0);
    v128.store(yo, y1, 16);
    v128.store(yo, y2, 32);
    v128.store(yo, y3, 48);
  }
}

/**
 * The product with int16 tables (tablesI8 with wide): per byte of signs four swizzles (high and low bytes of
 * the two groups' tables), high bytes summed sign-extended and low bytes zero-extended in i16 lanes (at most
 * 8·BW entries of < 256 per block: BW ≤ 32 keeps both below 2^16), combined as 256·high + low per block.
 * Same weights, g and y layouts as gemmI8; two tokens at a time (the accumulators of two fill the
 * registers); facc is scratch of 2·16 floats per thread. Tiles tile0..tile1.
 */
export function gemmI16(
  wq: usize,
  g: usize,
  tables: usize,
  scales: usize,
  y: usize,
  out: i32,
  inF: i32,
  k: i32,
  T: i32,
  BW: i32,
  ldy: i32,
  facc: usize,
  tile0: i32,
  tile1: i32,
): void {
  const wpr = (inF + 31) >> 5, bpr = wpr << 2, G = wpr << 3;
  const nBlocks = (wpr + BW - 1) / BW;
  const outPad = ((out + 15) >> 4) << 4;
  const tStride = <usize>k * G << 5, sStride = <usize>k * nBlocks << 2; // bytes per token
  const tileBytes = <usize>k * bpr << 4;
  let t = 0;
  for (; t + 2 <= T; t += 2) {
    const tab = tables + <usize>t * tStride, sc = scales + <usize>t * sStride;
    for (let tile = tile0; tile < tile1; tile++) {
      const yt = y + ((<usize>t * ldy + (tile << 4)) << 2);
      for (let i = 0; i < 32; i += 4) v128.store(facc + (<usize>i << 2), f32x4.splat(0));
      for (let j = 0; j < 2; j++) {
        const yj = yt + (<usize>j * ldy << 2);
        for (let i = 0; i < 4; i++) v128.store(yj + (<usize>i << 4), f32x4.splat(0));
      }
      for (let p = 0; p < k; p++) {
        let wp = wq + <usize>tile * tileBytes + <usize>p * bpr * 16;
        let tp = tab + (<usize>p * G << 5);
        const sp = sc + (<usize>p * nBlocks << 2);
        for (let blk = 0; blk < nBlocks; blk++) {
          const bEnd = min((blk + 1) * BW, wpr) << 2;
          let h0 = i16x8.splat(0), h1 = i16x8.splat(0), l0 = i16x8.splat(0), l1 = i16x8.splat(0);
          let H0 = i16x8.splat(0), H1 = i16x8.splat(0), L0 = i16x8.splat(0), L1 = i16x8.splat(0);
          for (let b = blk * BW << 2; b < bEnd; b++) {
            const v = v128.load(wp);
            wp += 16;
            const lo = v128.and(v, i8x16.splat(15)), hi = i8x16.shr_u(v, 4);
            let a = i8x16.swizzle(v128.load(tp), lo), c = i8x16.swizzle(v128.load(tp, 32), hi);
            h0 = i16x8.add(h0, i16x8.add(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_s(c)));
            h1 = i16x8.add(h1, i16x8.add(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_s(c)));
            a = i8x16.swizzle(v128.load(tp, 16), lo);
            c = i8x16.swizzle(v128.load(tp, 48), hi);
            l0 = i16x8.add(l0, i16x8.add(i16x8.extend_low_i8x16_u(a), i16x8.extend_low_i8x16_u(c)));
            l1 = i16x8.add(l1, i16x8.add(i16x8.extend_high_i8x16_u(a), i16x8.extend_high_i8x16_u(c)));
            const tq = tp + tStride;
            a = i8x16.swizzle(v128.load(tq), lo);
            c = i8x16.swizzle(v128.load(tq, 32), hi);
            H0 = i16x8.add(H0, i16x8.add(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_s(c)));
            H1 = i16x8.add(H1, i16x8.add(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_s(c)));
            a = i8x16.swizzle(v128.load(tq, 16), lo);
            c = i8x16.swizzle(v128.load(tq, 48), hi);
            L0 = i16x8.add(L0, i16x8.add(i16x8.extend_low_i8x16_u(a), i16x8.extend_low_i8x16_u(c)));
            L1 = i16x8.add(L1, i16x8.add(i16x8.extend_high_i8x16_u(a), i16x8.extend_high_i8x16_u(c)));
            tp += 64;
          }
          const so = sp + (<usize>blk << 2);
          accumulateWide(facc, h0, h1, l0, l1, load<f32>(so));
          accumulateWide(facc + 64, H0, H1, L0, L1, load<f32>(so + sStride));
        }
        const gp = g + ((<usize>p * outPad + (tile << 4)) << 2);
        for (let j = 0; j < 2; j++) {
          const yj = yt + (<usize>j * ldy << 2), fj = facc + (<usize>j << 6);
          for (let i = 0; i < 4; i++) {
            const o = <usize>i << 4;
            v128.store(yj + o, f32x4.add(v128.load(yj + o), f32x4.mul(v128.load(gp + o), v128.load(fj + o))));
            v128.store(fj + o, f32x4.splat(0));
          }
        }
      }
    }
  }
  if (t < T) {
    gemvI16(
      wq,
      g,
      tables + <usize>t * tStride,
      scales + <usize>t * sStride,
      y + (<usize>t * ldy << 2),
      out,
      inF,
      k,
      BW,
      tile0,
      tile1,
    );
  }
}

/** 256·high + low of four i16 lanes (high signed, low unsigned) as f32. */
@inline function wideLanes(h: v128, l: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(h, 8), l));
}

/** facc[0..16) += scale · (256·(h0 ‖ h1) + (l0 ‖ l1)) widened to f32. */
@inline function accumulateWide(facc: usize, h0: v128, h1: v128, l0: v128, l1: v128, scale: f32): void {
  const s = f32x4.splat(scale);
  const a = wideLanes(i32x4.extend_low_i16x8_s(h0), i32x4.extend_low_i16x8_u(l0));
  const b = wideLanes(i32x4.extend_high_i16x8_s(h0), i32x4.extend_high_i16x8_u(l0));
  const c = wideLanes(i32x4.extend_low_i16x8_s(h1), i32x4.extend_low_i16x8_u(l1));
  const d = wideLanes(i32x4.extend_high_i16x8_s(h1), i32x4.extend_high_i16x8_u(l1));
  v128.store(facc, f32x4.add(v128.load(facc), f32x4.mul(a, s)));
  v128.store(facc, f32x4.add(v128.load(facc, 16), f32x4.mul(b, s)), 16);
  v128.store(facc, f32x4.add(v128.load(facc, 32), f32x4.mul(c, s)), 32);
  v128.store(facc, f32x4.add(v128.load(facc, 48), f32x4.mul(d, s)), 48);
}

/** gemmI16 for one token, accumulators in registers; y holds outPad floats. Tiles tile0..tile1. */
export function gemvI16(
  wq: usize,
  g: usize,
  tables: usize,
  scales: usize,
  y: usize,
  out: i32,
  inF: i32,
  k: i32,
  BW: i32,
  tile0: i32,
  tile1: i32,
): void {
  const wpr = (inF + 31) >> 5, bpr = wpr << 2, G = wpr << 3;
  const nBlocks = (wpr + BW - 1) / BW;
  const outPad = ((out + 15) >> 4) << 4;
  let wp = wq + <usize>tile0 * k * bpr * 16;
  for (let tile = tile0; tile < tile1; tile++) {
    let y0 = f32x4.splat(0), y1 = f32x4.splat(0), y2 = f32x4.splat(0), y3 = f32x4.splat(0);
    for (let p = 0; p < k; p++) {
      let tp = tables + (<usize>p * G << 5);
      const sp = scales + (<usize>p * nBlocks << 2);
      let f0 = f32x4.splat(0), f1 = f32x4.splat(0), f2 = f32x4.splat(0), f3 = f32x4.splat(0);
      for (let blk = 0; blk < nBlocks; blk++) {
        const bEnd = min((blk + 1) * BW, wpr) << 2;
        let h0 = i16x8.splat(0), h1 = i16x8.splat(0), l0 = i16x8.splat(0), l1 = i16x8.splat(0);
        for (let b = blk * BW << 2; b < bEnd; b++) {
          const v = v128.load(wp);
          wp += 16;
          const lo = v128.and(v, i8x16.splat(15)), hi = i8x16.shr_u(v, 4);
          let a = i8x16.swizzle(v128.load(tp), lo), c = i8x16.swizzle(v128.load(tp, 32), hi);
          h0 = i16x8.add(h0, i16x8.add(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_s(c)));
          h1 = i16x8.add(h1, i16x8.add(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_s(c)));
          a = i8x16.swizzle(v128.load(tp, 16), lo);
          c = i8x16.swizzle(v128.load(tp, 48), hi);
          l0 = i16x8.add(l0, i16x8.add(i16x8.extend_low_i8x16_u(a), i16x8.extend_low_i8x16_u(c)));
          l1 = i16x8.add(l1, i16x8.add(i16x8.extend_high_i8x16_u(a), i16x8.extend_high_i8x16_u(c)));
          tp += 64;
        }
        const s = f32x4.splat(load<f32>(sp + (<usize>blk << 2)));
        f0 = f32x4.add(f0, f32x4.mul(wideLanes(i32x4.extend_low_i16x8_s(h0), i32x4.extend_low_i16x8_u(l0)), s));
        f1 = f32x4.add(f1, f32x4.mul(wideLanes(i32x4.extend_high_i16x8_s(h0), i32x4.extend_high_i16x8_u(l0)), s));
        f2 = f32x4.add(f2, f32x4.mul(wideLanes(i32x4.extend_low_i16x8_s(h1), i32x4.extend_low_i16x8_u(l1)), s));
        f3 = f32x4.add(f3, f32x4.mul(wideLanes(i32x4.extend_high_i16x8_s(h1), i32x4.extend_high_i16x8_u(l1)), s));
      }
      const gp = g + ((<usize>p * outPad + (tile << 4)) << 2);
      y0 = f32x4.add(y0, f32x4.mul(v128.load(gp), f0));
      y1 = f32x4.add(y1, f32x4.mul(v128.load(gp, 16), f1));
      y2 = f32x4.add(y2, f32x4.mul(v128.load(gp, 32), f2));
      y3 = f32x4.add(y3, f32x4.mul(v128.load(gp, 48), f3));
    }
    const yo = y + (<usize>tile << 6);
    v128.store(yo, y0);
    v128.store(yo, y1, 16);
    v128.store(yo, y2, 32);
    v128.store(yo, y3, 48);
  }
}

/**
 * The same product with f32 tables from tablesF32, read by scalar loads (no SIMD gather exists in
 * WebAssembly): planes in their file layout (k, out, wpr) u32, g (k, out), y rows of stride ldy. Four rows
 * at a time so that four independent sums overlap; all k planes fused per row group. Rows r0..r1.
 */
export function gemmF32Lut(
  planes: usize,
  g: usize,
  tables: usize,
  y: usize,
  out: i32,
  inF: i32,
  k: i32,
  T: i32,
  ldy: i32,
  r0: i32,
  r1: i32,
): void {
  const wpr = (inF + 31) >> 5, G = wpr << 3;
  const rowBytes = <usize>wpr << 2, planeBytes = <usize>out * rowBytes;
  const tStride = <usize>k * G << 6;
  for (let t = 0; t < T; t++) {
    const tab = tables + <usize>t * tStride;
    const yt = y + (<usize>t * ldy << 2);
    for (let r = r0; r < r1; r += 4) {
      const rows = min(4, r1 - r);
      let y0: f32 = 0, y1: f32 = 0, y2: f32 = 0, y3: f32 = 0;
      for (let p = 0; p < k; p++) {
        const base = planes + <usize>p * planeBytes + <usize>r * rowBytes;
        const tp = tab + (<usize>p * G << 6);
        let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
        // Rows past `out` in the last group re-read row r (results dropped) instead of branching per word.
        const o1: usize = rows > 1 ? rowBytes : 0, o2: usize = rows > 2 ? 2 * rowBytes : 0;
        const o3: usize = rows > 3 ? 3 * rowBytes : 0;
        for (let w = 0; w < wpr; w++) {
          const wo = <usize>w << 2, lut = tp + (<usize>w << 9);
          s0 += lookup8(lut, load<u32>(base + wo));
          s1 += lookup8(lut, load<u32>(base + o1 + wo));
          s2 += lookup8(lut, load<u32>(base + o2 + wo));
          s3 += lookup8(lut, load<u32>(base + o3 + wo));
        }
        const gp = g + ((<usize>p * out + r) << 2);
        y0 += load<f32>(gp) * s0;
        if (rows > 1) y1 += load<f32>(gp, 4) * s1;
        if (rows > 2) y2 += load<f32>(gp, 8) * s2;
        if (rows > 3) y3 += load<f32>(gp, 12) * s3;
      }
      const yo = yt + (<usize>r << 2);
      store<f32>(yo, y0);
      if (rows > 1) store<f32>(yo, y1, 4);
      if (rows > 2) store<f32>(yo, y2, 8);
      if (rows > 3) store<f32>(yo, y3, 12);
    }
  }
}

/** Σ of the 8 table entries one sign word selects (tables of 16 f32 = 64 bytes per group). */
@inline function lookup8(lut: usize, word: u32): f32 {
  return load<f32>(lut + ((word & 15) << 2)) + load<f32>(lut + ((word >>> 2) & 60), 64) +
    load<f32>(lut + ((word >>> 6) & 60), 128) + load<f32>(lut + ((word >>> 10) & 60), 192) +
    load<f32>(lut + ((word >>> 14) & 60), 256) + load<f32>(lut + ((word >>> 18) & 60), 320) +
    load<f32>(lut + ((word >>> 22) & 60), 384) + load<f32>(lut + ((word >>> 26) & 60), 448);
}
