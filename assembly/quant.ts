// Quantization kernels: per-segment ranges, fused f32 → packed codes, unpack, pack, dequantize.
// Formats (bit-exact layouts, documented with their traits in src/quant/formats.ts):
//   u8: block 16 codes = 16 B, byte j = code j
//   u4: block 32 codes = 16 B, byte j = code j | code (j+16) << 4       (unpack: and 0x0F, shr_u 4)
//   u2: block 64 codes = 16 B, byte j = Σ_k code (j+16k) << 2k, k=0..3  (unpack: shr_u 2k, and 3)
//   u3: block 128 codes = 48 B: bytes 0..31 = u2 layout of (code & 3) for codes 0..63, 64..127;
//       bytes 32..47 = high-bit plane, byte j bit g = bit 2 of code (16g + j), g = 0..7
// Each row of `cols` codes starts on a block boundary; the last block is padded with code 0.
// Segments: row r's columns are split by `offsets` (nSeg + 1 entries, 0 .. cols) and segment s of
// row r uses parameter slot (r % rowPeriod) · nSeg + s (rowPeriod 1: shared by all rows, as
// per-cluster activations; rowPeriod = rows: one slot per row and segment, as per-group weights).
// Quantize (same op order as the TS twin in src/ref/quant.ts):
//   v = nearest(x / s) + z (f32), v = 0 < v ? v : 0, v = v < qmax ? v : qmax, code = i32(v)
// so NaN → 0, +∞ → qmax. Dequantize: x' = s · f32(q − z). All argument checks are in
// src/kernels/quant.ts; kernels never allocate and only touch the ranges they are given.

import { quantCode, quantCodes4 } from './codes';

/** 128 bytes of staging for one block of codes (static data, not heap). */
const STAGE: usize = memory.data(128, 16);
/** Second staging area for the u3 packer's low-2-bit planes. */
const STAGE_LO: usize = memory.data(128, 16);

// @ts-ignore: decorator
@inline function blockCodes(bits: i32): i32 {
  return bits == 8 ? 16 : bits == 4 ? 32 : bits == 2 ? 64 : 128;
}

// @ts-ignore: decorator
@inline function blockBytes(bits: i32): i32 {
  return bits == 3 ? 48 : 16;
}

/** Bytes of one packed row of `cols` codes. */
// @ts-ignore: decorator
@inline function rowBytes(bits: i32, cols: i32): usize {
  const B = blockCodes(bits);
  return <usize>((cols + B - 1) / B) * <usize>blockBytes(bits);
}

// ---------------------------------------------------------------------------------------------
// Range: min and max of every (row, segment). NaN propagates (f32.min / f32x4.min do).
// ---------------------------------------------------------------------------------------------

export function range_segments(rows: i32, cols: i32, x: usize, nSeg: i32, offsets: usize, outMin: usize, outMax: usize): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * (<usize>cols << 2);
    for (let s = 0; s < nSeg; s++) {
      const a = load<i32>(offsets + (<usize>s << 2)), b = load<i32>(offsets + (<usize>s << 2), 4);
      let mn = f32x4.splat(Infinity), mx = f32x4.splat(-Infinity);
      let mn1 = mn, mx1 = mx;
      let i = a;
      for (; i + 16 <= b; i += 16) {
        // two independent min/max chains (f32x4.min/max are multi-instruction, NaN-propagating on x64)
        const p = xr + (<usize>i << 2);
        const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
        mn = f32x4.min(mn, f32x4.min(v0, v1));
        mx = f32x4.max(mx, f32x4.max(v0, v1));
        mn1 = f32x4.min(mn1, f32x4.min(v2, v3));
        mx1 = f32x4.max(mx1, f32x4.max(v2, v3));
      }
      mn = f32x4.min(mn, mn1);
      mx = f32x4.max(mx, mx1);
      for (; i + 4 <= b; i += 4) {
        const v = v128.load(xr + (<usize>i << 2));
        mn = f32x4.min(mn, v);
        mx = f32x4.max(mx, v);
      }
      let m0 = min(min(f32x4.extract_lane(mn, 0), f32x4.extract_lane(mn, 1)), min(f32x4.extract_lane(mn, 2), f32x4.extract_lane(mn, 3)));
      let m1 = max(max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)), max(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
      for (; i < b; i++) {
        const v = load<f32>(xr + (<usize>i << 2));
        m0 = min(m0, v);
        m1 = max(m1, v);
      }
      const o = (<usize>r * <usize>nSeg + <usize>s) << 2;
      store<f32>(outMin + o, m0);
      store<f32>(outMax + o, m1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Quantize a run of n floats with one (s, z) into n codes (one byte each) at dst.
// Lane layout: 4 f32 lanes → i32 → narrowed (unsigned saturation, values already in 0..255).
// ---------------------------------------------------------------------------------------------

function quantRun(src: usize, dst: usize, n: i32, s: f32, z: f32, qmax: f32): void {
  const S = f32x4.splat(s), Z = f32x4.splat(z), Q = f32x4.splat(qmax);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const p = src + (<usize>i << 2);
    const a = quantCodes4(v128.load(p), S, Z, Q), b = quantCodes4(v128.load(p, 16), S, Z, Q);
    const c = quantCodes4(v128.load(p, 32), S, Z, Q), d = quantCodes4(v128.load(p, 48), S, Z, Q);
    v128.store(dst + <usize>i, i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(a, b), i16x8.narrow_i32x4_u(c, d)));
  }
  for (; i + 4 <= n; i += 4) {
    const a = quantCodes4(v128.load(src + (<usize>i << 2)), S, Z, Q);
    const w = i16x8.narrow_i32x4_u(a, a);
    v128.store32_lane(dst + <usize>i, i8x16.narrow_i16x8_u(w, w), 0);
  }
  for (; i < n; i++) store<u8>(dst + <usize>i, quantCode(load<f32>(src + (<usize>i << 2)), s, z, qmax));
}

// ---------------------------------------------------------------------------------------------
// Pack one block of codes (at src, one per byte) into `dst`, and the inverse.
// ---------------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline function packU2(src: usize, dst: usize): void {
  const c0 = v128.load(src), c1 = v128.load(src, 16), c2 = v128.load(src, 32), c3 = v128.load(src, 48);
  v128.store(dst, v128.or(v128.or(c0, i8x16.shl(c1, 2)), v128.or(i8x16.shl(c2, 4), i8x16.shl(c3, 6))));
}

function packBlock(bits: i32, src: usize, dst: usize): void {
  if (bits == 4) {
    v128.store(dst, v128.or(v128.load(src), i8x16.shl(v128.load(src, 16), 4)));
  } else if (bits == 8) {
    v128.store(dst, v128.load(src));
  } else if (bits == 2) {
    packU2(src, dst);
  } else {
    // u3: low 2 bits as two u2 blocks, then the high-bit plane
    const three = i8x16.splat(3), one = i8x16.splat(1);
    let h = i8x16.splat(0);
    for (let g = 0; g < 8; g++) {
      const c = v128.load(src + (<usize>g << 4));
      v128.store(STAGE_LO + (<usize>g << 4), v128.and(c, three));
      h = v128.or(h, i8x16.shl(v128.and(i8x16.shr_u(c, 2), one), g));
    }
    packU2(STAGE_LO, dst);
    packU2(STAGE_LO + 64, dst + 16);
    v128.store(dst, h, 32);
  }
}

function unpackBlock(bits: i32, src: usize, dst: usize): void {
  if (bits == 4) {
    const v = v128.load(src), m = i8x16.splat(0x0f);
    v128.store(dst, v128.and(v, m));
    v128.store(dst, i8x16.shr_u(v, 4), 16);
  } else if (bits == 8) {
    v128.store(dst, v128.load(src));
  } else if (bits == 2) {
    const v = v128.load(src), m = i8x16.splat(3);
    v128.store(dst, v128.and(v, m));
    v128.store(dst, v128.and(i8x16.shr_u(v, 2), m), 16);
    v128.store(dst, v128.and(i8x16.shr_u(v, 4), m), 32);
    v128.store(dst, i8x16.shr_u(v, 6), 48);
  } else {
    const l0 = v128.load(src), l1 = v128.load(src, 16), h = v128.load(src, 32);
    const m = i8x16.splat(3), one = i8x16.splat(1);
    for (let g = 0; g < 8; g++) {
      const l = g < 4 ? l0 : l1;
      const lo = v128.and(i8x16.shr_u(l, <i32>(g & 3) << 1), m);
      const hi = i8x16.shl(v128.and(i8x16.shr_u(h, g), one), 2);
      v128.store(dst + (<usize>g << 4), v128.or(lo, hi));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fused quantize + pack: f32 [rows, cols] in, packed codes [rows, rowBytes] out.
// ---------------------------------------------------------------------------------------------

export function quantize_pack(rows: i32, cols: i32, x: usize, nSeg: i32, offsets: usize, scale: usize, zero: usize,
  rowPeriod: i32, qmax: i32, bits: i32, out: usize): void {
  const B = blockCodes(bits), bb = <usize>blockBytes(bits), rb = rowBytes(bits, cols);
  const qm = <f32>qmax;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * (<usize>cols << 2);
    const orow = out + <usize>r * rb;
    const pr = <usize>(r % rowPeriod) * <usize>nSeg;
    let seg = 0;
    let segEnd = cols > 0 ? load<i32>(offsets, 4) : 0;
    let s = cols > 0 ? load<f32>(scale + (pr << 2)) : <f32>1;
    let z = cols > 0 ? <f32>load<u8>(zero + pr) : <f32>0;
    let blk: usize = 0;
    for (let b0 = 0; b0 < cols; b0 += B, blk++) {
      const b1 = min(cols, b0 + B);
      let i = b0;
      while (i < b1) {
        while (i >= segEnd) {
          seg++;
          segEnd = load<i32>(offsets + (<usize>(seg + 1) << 2));
          s = load<f32>(scale + ((pr + <usize>seg) << 2));
          z = <f32>load<u8>(zero + pr + <usize>seg);
        }
        const e = min(b1, segEnd);
        quantRun(xr + (<usize>i << 2), STAGE + <usize>(i - b0), e - i, s, z, qm);
        i = e;
      }
      if (b1 - b0 < B) memory.fill(STAGE + <usize>(b1 - b0), 0, <usize>(B - (b1 - b0)));
      packBlock(bits, STAGE, orow + blk * bb);
    }
  }
}

/** Packed [rows, rowBytes] → one code per byte [rows, cols]. */
export function unpack_codes(rows: i32, cols: i32, bits: i32, src: usize, out: usize): void {
  const B = blockCodes(bits), bb = <usize>blockBytes(bits), rb = rowBytes(bits, cols);
  for (let r = 0; r < rows; r++) {
    const srow = src + <usize>r * rb, orow = out + <usize>r * <usize>cols;
    let blk: usize = 0;
    let b0 = 0;
    for (; b0 + B <= cols; b0 += B, blk++) unpackBlock(bits, srow + blk * bb, orow + <usize>b0);
    if (b0 < cols) {
      unpackBlock(bits, srow + blk * bb, STAGE);
      memory.copy(orow + <usize>b0, STAGE, <usize>(cols - b0));
    }
  }
}

/** One code per byte [rows, cols] (each ≤ 2^bits − 1, checked by the caller) → packed [rows, rowBytes]. */
export function pack_codes(rows: i32, cols: i32, bits: i32, src: usize, out: usize): void {
  const B = blockCodes(bits), bb = <usize>blockBytes(bits), rb = rowBytes(bits, cols);
  for (let r = 0; r < rows; r++) {
    const srow = src + <usize>r * <usize>cols, orow = out + <usize>r * rb;
    let blk: usize = 0;
    let b0 = 0;
    for (; b0 + B <= cols; b0 += B, blk++) packBlock(bits, srow + <usize>b0, orow + blk * bb);
    if (b0 < cols) {
      memory.copy(STAGE, srow + <usize>b0, <usize>(cols - b0));
      memory.fill(STAGE + <usize>(cols - b0), 0, <usize>(B - (cols - b0)));
      packBlock(bits, STAGE, orow + blk * bb);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dequantize packed codes: x'[r, i] = s · f32(q − z) with the segment's (s, z).
// Lane layout: 16 codes → 4 × i32x4 (extend u8 → u16 → u32), minus z, convert, times s.
// ---------------------------------------------------------------------------------------------

function dequantRun(src: usize, dst: usize, n: i32, s: f32, z: i32): void {
  const S = f32x4.splat(s), Z = i32x4.splat(z);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const c = v128.load(src + <usize>i);
    const lo = i16x8.extend_low_i8x16_u(c), hi = i16x8.extend_high_i8x16_u(c);
    const p = dst + (<usize>i << 2);
    v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_low_i16x8_u(lo), Z)), S));
    v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_high_i16x8_u(lo), Z)), S), 16);
    v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_low_i16x8_u(hi), Z)), S), 32);
    v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_high_i16x8_u(hi), Z)), S), 48);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), s * <f32>(<i32>load<u8>(src + <usize>i) - z));
}

export function dequantize_unpack(rows: i32, cols: i32, bits: i32, src: usize, nSeg: i32, offsets: usize, scale: usize,
  zero: usize, rowPeriod: i32, out: usize): void {
  const B = blockCodes(bits), bb = <usize>blockBytes(bits), rb = rowBytes(bits, cols);
  for (let r = 0; r < rows; r++) {
    const srow = src + <usize>r * rb, orow = out + <usize>r * (<usize>cols << 2);
    const pr = <usize>(r % rowPeriod) * <usize>nSeg;
    let seg = 0;
    let segEnd = cols > 0 ? load<i32>(offsets, 4) : 0;
    let s = cols > 0 ? load<f32>(scale + (pr << 2)) : <f32>1;
    let z = cols > 0 ? <i32>load<u8>(zero + pr) : 0;
    let blk: usize = 0;
    for (let b0 = 0; b0 < cols; b0 += B, blk++) {
      unpackBlock(bits, srow + blk * bb, STAGE);
      const b1 = min(cols, b0 + B);
      let i = b0;
      while (i < b1) {
        while (i >= segEnd) {
          seg++;
          segEnd = load<i32>(offsets + (<usize>(seg + 1) << 2));
          s = load<f32>(scale + ((pr + <usize>seg) << 2));
          z = <i32>load<u8>(zero + pr + <usize>seg);
        }
        const e = min(b1, segEnd);
        dequantRun(STAGE + <usize>(i - b0), orow + (<usize>i << 2), e - i, s, z);
        i = e;
      }
    }
  }
}
