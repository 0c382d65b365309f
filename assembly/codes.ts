// Codes shared by several kernel families, internal to the kernels (not exported by index.ts): the
// activation quantizer (quantize_pack's formula, one value or four lanes), reading codes out of packed
// rows (the formats of src/quant/formats.ts) without a staging buffer, 16 at a time as one v128 or one
// as an i32, and dequantizing them with per-column parameters (the fused attention over a packed KV
// cache, assembly/f32.ts attention_packed, dequantizes one cache row at a time with these).
//
// Code c of a row sits in block c / B (B = 16 u8, 32 u4, 64 u2, 128 u3 codes) as run g = (c mod B) / 16
// of 16 codes, lane c mod 16:
//   u8 byte c;  u4 byte l of block, low nibble for run 0, high for run 1;  u2 byte l >> 2g & 3;
//   u3 (u2 plane g >> 2 of the block, shift 2(g & 3)) | (bit g of high-plane byte l) << 2.

/**
 * Activation codes: clamp(round_half_even(x / s) + z, 0, qmax), NaN → 0 (src/quant/round.ts quantizeValue), the
 * formula of quantize_pack (assembly/quant.ts) and of the fused integer prep (assembly/qmatmul.ts qx_prep_quant):
 * one value, or four lanes (S, Z, Q splats of s, z, qmax) with the same comparisons (pmax / pmin keep the scalar
 * form's NaN → 0 and order).
 */
// @ts-ignore: decorator
@inline export function quantCode(x: f32, s: f32, z: f32, qmax: f32): i32 {
  let v: f32 = nearest<f32>(x / s) + z;
  v = <f32>0 < v ? v : <f32>0;
  v = v < qmax ? v : qmax;
  return <i32>v;
}

// @ts-ignore: decorator
@inline export function quantCodes4(v: v128, S: v128, Z: v128, Q: v128): v128 {
  let q = f32x4.add(f32x4.nearest(f32x4.div(v, S)), Z);
  q = f32x4.pmax(f32x4.splat(0), q); // 0 < q ? q : 0 (NaN → 0)
  q = f32x4.pmin(Q, q); // q < qmax ? q : qmax
  // integers in [0, 255]: the relaxed truncation is exact there (and a single cvttps2dq)
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.relaxed_trunc_f32x4_s(q);
  return i32x4.trunc_sat_f32x4_s(q);
}

/** The 16 codes 16·r .. 16·r + 15 of the packed row at `row` (`bits` 2, 3, 4 or 8), one per u8 lane. */
// @ts-ignore: decorator
@inline export function codes16(bits: i32, row: usize, r: i32): v128 {
  if (bits == 8) return v128.load(row + (<usize>r << 4));
  if (bits == 4) {
    const v = v128.load(row + (<usize>(r >> 1) << 4));
    return (r & 1) != 0 ? i8x16.shr_u(v, 4) : v128.and(v, i8x16.splat(15));
  }
  if (bits == 2) return v128.and(i8x16.shr_u(v128.load(row + (<usize>(r >> 2) << 4)), (r & 3) << 1), i8x16.splat(3));
  const blk = row + <usize>(r >> 3) * 48, g = r & 7;
  const lo = v128.and(i8x16.shr_u(v128.load(blk + (<usize>(g >> 2) << 4)), (g & 3) << 1), i8x16.splat(3));
  const hi = i8x16.shl(v128.and(i8x16.shr_u(v128.load(blk, 32), g), i8x16.splat(1)), 2);
  return v128.or(lo, hi);
}

/** Code c of the packed row at `row`. */
// @ts-ignore: decorator
@inline export function codeAt(bits: i32, row: usize, c: i32): i32 {
  const r = c >> 4, l = <usize>(c & 15);
  if (bits == 8) return <i32>load<u8>(row + <usize>c);
  if (bits == 4) {
    const b = <i32>load<u8>(row + (<usize>(r >> 1) << 4) + l);
    return (r & 1) != 0 ? b >> 4 : b & 15;
  }
  if (bits == 2) return (<i32>load<u8>(row + (<usize>(r >> 2) << 4) + l) >> ((r & 3) << 1)) & 3;
  const blk = row + <usize>(r >> 3) * 48, g = r & 7;
  const lo = (<i32>load<u8>(blk + (<usize>(g >> 2) << 4) + l) >> ((g & 3) << 1)) & 3;
  return lo | (((<i32>load<u8>(blk + 32 + l) >> g) & 1) << 2);
}

/**
 * Per-column parameters of columns c0 .. c0 + w − 1 from per-segment ones (rowPeriod 1): cs[i] = scale[g],
 * cz[i] = zero[g] (as i32) for the segment g holding column c0 + i (offsets: nSeg + 1 ascending i32).
 */
export function columnParams(nSeg: i32, offsets: usize, scale: usize, zero: usize, c0: i32, w: i32, cs: usize, cz: usize): void {
  let g = 0;
  for (let i = 0; i < w; i++) {
    const c = c0 + i;
    while (g + 1 < nSeg && load<i32>(offsets + (<usize>(g + 1) << 2)) <= c) g++;
    store<f32>(cs + (<usize>i << 2), load<f32>(scale + (<usize>g << 2)));
    store<i32>(cz + (<usize>i << 2), <i32>load<u8>(zero + <usize>g));
  }
}

/**
 * Lanes 4p .. 4p + 3 of the 16 codes c, dequantized with the per-column scales at ps and zero points (i32) at pz:
 * ps[l] · f32(c[4p + l] − pz[l]).
 */
// @ts-ignore: decorator
@inline export function deq4(c: v128, p: i32, ps: usize, pz: usize): v128 {
  const h = p < 2 ? i16x8.extend_low_i8x16_u(c) : i16x8.extend_high_i8x16_u(c);
  const x = (p & 1) == 0 ? i32x4.extend_low_i16x8_u(h) : i32x4.extend_high_i16x8_u(h);
  const o = <usize>p << 4;
  return f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(x, v128.load(pz + o))), v128.load(ps + o));
}

/**
 * out[i] = cs[i] · f32(q[c0 + i] − cz[i]) for i < w, q the codes of the packed row at `row`: the value
 * dequantize_unpack (assembly/quant.ts) writes for that element, bit for bit (an exact i32 difference,
 * an exact conversion, one f32 product). Runs of 16 codes that start on a multiple of 16 go as
 * one v128; the rest code by code.
 */
export function dequantCols(bits: i32, row: usize, c0: i32, w: i32, cs: usize, cz: usize, out: usize): void {
  let i = 0;
  for (; i < w && ((c0 + i) & 15) != 0; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(cs + o) * <f32>(codeAt(bits, row, c0 + i) - load<i32>(cz + o)));
  }
  for (; i + 16 <= w; i += 16) {
    const c = codes16(bits, row, (c0 + i) >> 4), o = <usize>i << 2;
    v128.store(out + o, deq4(c, 0, cs + o, cz + o));
    v128.store(out + o, deq4(c, 1, cs + o, cz + o), 16);
    v128.store(out + o, deq4(c, 2, cs + o, cz + o), 32);
    v128.store(out + o, deq4(c, 3, cs + o, cz + o), 48);
  }
  for (; i < w; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(cs + o) * <f32>(codeAt(bits, row, c0 + i) - load<i32>(cz + o)));
  }
}
