// Bit-packed integer matmul: y[m, n] = Σ_g s_w[n,g]·s_a[m,g]·Σ_{i∈g} (qw[n,i] − zw[n,g])·(u[m,i] − o[m,g])
// over segments g (groups or clusters), as pure integer dots per segment and one f32 rescale per
// (row, segment). Twin: src/ref/qmatmul.ts (bit-exact, including the f32 epilogue). Host side and
// argument checks: src/wasm/qmatmul.ts, src/kernels/qmatmul.ts; the kernel-ready layout is built
// by src/quant/qlinear.ts.
//
// Weights: ceil4(N) rows of Kp codes packed in the formats of src/quant/formats.ts (u2, u3, u4, u8),
// `rb` bytes per row, quad-interleaved (formats.ts quadInterleave): row quad q takes 4·rb bytes at
// w + q·4·rb, and block k of its row l (0..3) sits at w + q·4·rb + (4k + l)·blockBytes, so the four
// rows a kernel reads together are one forward stream (measured on the u4 GEMV over weights that are
// not cache-resident: 768×3072 0.33–0.42 → 0.26–0.28 ms, and OPT-125m W4A16 decode 18.5 → 16.1 ms).
// Every segment starts and ends on a block boundary of the format
// (the packer pads segments with code 0). wp: per row quad q and segment g, 12 f32 at
// wp + (q·nSeg + g)·48: s_w[4 rows], z_w[4 rows], Q[4 rows] = Σ codes of the segment (exact).
//
// Activations, "u" values per element (unsigned, < 2^21), one 128-byte chunk per 16 elements:
//   +0 a u8[16] = u >> 14   +16 b u8[16] = (u >> 7) & 127   +32 c u8[16] = u & 127   (+48: unused)
//   +64 hi i16[16] = u >> 7   +96 lo i16[16] = u & 127
// ap: per token m and segment g, 4 f32 at ap + (m·nSeg + g)·16: s_a, D, Oh, Ol where the offset
// o = 128·Oh + Ol and D = Σ_real (u − o) rounded to f32.
//
// Weight-only (mode 0): u = round(x/s_a) + 2^20 with s_a = max|x|/(2^20 − 1) per segment (a 21-bit
// fixed-point split of x, |error| ≤ s_a/2 per element; padding positions u = 2^20, i.e. x = 0),
// o = 2^20. Per (row, segment) the integers H = Σ q·(u >> 7), L = Σ q·(u & 127) (i32, wrapping; the
// relaxed qmv*Relaxed kernels read the 7-bit planes a, b, c, the others hi, lo — the same integers),
// then, f32:  Hc = H − Oh·Q, Lc = L − Ol·Q (i32);  v = f32(Hc)·128 + f32(Lc) − z_w·D;  acc += v·(s_w·s_a).
// Many tokens instead dequantize to f32 (qgemm_f32, equal within f32 rounding, not bit for bit).
// Integer × integer (mode 1: codes ≤ 127, mode 2: codes ≤ 255): u = activation code, o = its zero
// point; P = Σ q·(u − o) is exact in i32 (|P| ≤ 255²·16384 < 2^31) and v = f32(P) − z_w·D;
// acc += v·(s_w·s_a) (qgemv_int for one token, qgemm / qgemm_u7 for more; bit-identical).
//
// Threads: rows are computed in quads; a call on rows n0..n1 (n0 a multiple of 4) with advanced
// pointers gives bit-identical results (src/wasm/qmatmul.ts splits at multiples of 4).

import { sgemm_nt } from './f32';
import { touchStream, touchStart } from './touch';
import { quantCodes4 } from './codes';
import { hsumI32 } from './simd';

const ACH: usize = 128;
const OFF20: i32 = 1 << 20;
// Why no kernel uses i32x4.relaxed_dot_i8x16_i7x16_add_s: on Node 20 (V8 11.3) that instruction
// returns wrong sums under Liftoff, with both operands in 0..127. Minimal repro (a 4-iteration loop
// of dot_add over 64 bytes, known answer 28576): Liftoff returns 14352 on every call
// (--liftoff-only); by default the first 42,932 calls (~4 ms) are wrong, then TurboFan code
// (tier-up) is right; --no-liftoff is right from the first call. The tier-up point depends on the
// function's loop budget and a background compile, so "warm up, then verify" would be
// timing-dependent. Even under TurboFan it is no faster: V8 11.3 lowers it to pmaddubsw + pmaddwd +
// paddd (no AVX-VNNI vpdpbusd), measured 1.9 ms vs 1.1 ms for the i16-accumulating form on the u4
// 4096² GEMV. The relaxed kernels (qmv*Relaxed, qgemm_u7) instead use i16x8.relaxed_dot_i8x16_i7x16_s
// (one pmaddubsw) + i16x8.add, with the second operand in 0..127 (the weight codes) and the first
// in 0..127 (qmv*Relaxed's activation planes) or −127..127 (qgemm_u7's u − o), exact under both tiers
// (checked with --liftoff-only and --no-liftoff) and guarded by a known-answer self-test at backend
// creation (src/selftest.ts relaxedDotCheck; failure → the i16 paths).

// @ts-ignore: decorator
@inline function reduce4(v0: v128, v1: v128, v2: v128, v3: v128): v128 {
  const t0 = i32x4.add(i32x4.shuffle(v0, v1, 0, 4, 1, 5), i32x4.shuffle(v0, v1, 2, 6, 3, 7));
  const t1 = i32x4.add(i32x4.shuffle(v2, v3, 0, 4, 1, 5), i32x4.shuffle(v2, v3, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(t0, t1, 0, 1, 4, 5), i32x4.shuffle(t0, t1, 2, 3, 6, 7));
}

// ---------------------------------------------------------------------------------------------
// Page-ahead touches (assembly/touch.ts) in every GEMV kernel, on two streams: the codes (w) and the
// per-(row quad, segment) scales (wp). Results are unchanged; only DRAM stalls are. Measured on the
// OPT-125m-shaped W4A16 g128 decode step (scripts/rptq-decode-profile.ts, 1 thread, ms per token, old
// and new builds in alternating runs): relaxed 13.8–15.9 → 12.3–13.9, simd 17.0–17.5 → 15.0–15.7,
// W4A8 (integer GEMV) 18.0–18.4 → 15.9–16.2. Cache-resident GEMVs are unchanged (4096² u4 g128
// 1.13 ms). On a 4096² u4 GEMV cycling through 32 matrices (no cache reuse), 4 lines per page beat
// 1, 2, 8, 16 and 64 (9.7, 10.1, 10.6, 9.5, 9.3 vs ~11 G weights/s; none 9.8); the distance (1–6 KiB)
// hardly mattered.
// ---------------------------------------------------------------------------------------------
// Each kernel keeps its two cursors in locals (no mutable globals: worker instances share memory,
// not globals, see test/threads.test.ts):
//   let tw = touchStart(w), tp = touchStart(wp);  …per quad:  tw = touchStream(tw, w0 + 4·rb, wEnd)…

// ---------------------------------------------------------------------------------------------
// Activation preparation: f32 rows (weight-only) or codes (integer × integer) → chunks + ap.
// segc: nSeg + 1 chunk offsets (padded positions); gather[j] = source column of padded position j,
// or −1 for padding (u = 0 there; the weight codes there are 0 too).
// ---------------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline function putU(dst: usize, j: usize, u: i32): void {
  const c = dst + (j >> 4) * ACH, l = j & 15;
  store<u8>(c + l, <u8>(u >> 14));
  store<u8>(c + l, <u8>((u >> 7) & 127), 16);
  store<u8>(c + l, <u8>(u & 127), 32);
  store<i16>(c + (l << 1), <i16>(u >> 7), 64);
  store<i16>(c + (l << 1), <i16>(u & 127), 96);
}

// x at the 4 padded positions j..j+3 (gather gp), 0 where padding: one v128 load when the four
// columns are consecutive (layers without a channel permutation), else lane by lane.
// @ts-ignore: decorator
@inline function gather4(xr: usize, gp: usize): v128 {
  const gi = v128.load(gp), g0 = i32x4.extract_lane(gi, 0);
  if (g0 >= 0 && i32x4.all_true(i32x4.eq(gi, i32x4.add(i32x4.splat(g0), i32x4(0, 1, 2, 3))))) return v128.load(xr + (<usize>g0 << 2));
  let v = f32x4.splat(0);
  const g1 = i32x4.extract_lane(gi, 1), g2 = i32x4.extract_lane(gi, 2), g3 = i32x4.extract_lane(gi, 3);
  if (g0 >= 0) v = f32x4.replace_lane(v, 0, load<f32>(xr + (<usize>g0 << 2)));
  if (g1 >= 0) v = f32x4.replace_lane(v, 1, load<f32>(xr + (<usize>g1 << 2)));
  if (g2 >= 0) v = f32x4.replace_lane(v, 2, load<f32>(xr + (<usize>g2 << 2)));
  if (g3 >= 0) v = f32x4.replace_lane(v, 3, load<f32>(xr + (<usize>g3 << 2)));
  return v;
}

// t = clamp(round_half_even(x / s), −2^20, 2^20 − 1) as i32, NaN → −2^20 (the scalar twin's order of
// comparisons), 0 at padding positions (valid = gather ≥ 0 per lane).
// @ts-ignore: decorator
@inline function quant21(x: v128, s: v128, valid: v128): v128 {
  const lo = f32x4.splat(-1048576), hi = f32x4.splat(1048575);
  let r = f32x4.nearest(f32x4.div(x, s));
  r = v128.bitselect(r, lo, f32x4.gt(r, lo));
  r = v128.bitselect(r, hi, f32x4.lt(r, hi));
  return v128.and(i32x4.trunc_sat_f32x4_s(r), valid);
}

// One chunk's planes from its 16 values u (4 × i32x4, each < 2^21): the layout of putU, all lanes
// at once (the narrowing keeps lane order; every value fits its narrower type).
// @ts-ignore: decorator
@inline function putChunk(c: usize, u0: v128, u1: v128, u2: v128, u3: v128): void {
  const m127 = i16x8.splat(127);
  const hA = i16x8.narrow_i32x4_s(i32x4.shr_u(u0, 7), i32x4.shr_u(u1, 7)), hB = i16x8.narrow_i32x4_s(i32x4.shr_u(u2, 7), i32x4.shr_u(u3, 7));
  const lA = i16x8.narrow_i32x4_s(v128.and(u0, i32x4.splat(127)), v128.and(u1, i32x4.splat(127)));
  const lB = i16x8.narrow_i32x4_s(v128.and(u2, i32x4.splat(127)), v128.and(u3, i32x4.splat(127)));
  const aA = i16x8.narrow_i32x4_s(i32x4.shr_u(u0, 14), i32x4.shr_u(u1, 14)), aB = i16x8.narrow_i32x4_s(i32x4.shr_u(u2, 14), i32x4.shr_u(u3, 14));
  v128.store(c, i8x16.narrow_i16x8_u(aA, aB));
  v128.store(c, i8x16.narrow_i16x8_u(v128.and(hA, m127), v128.and(hB, m127)), 16);
  v128.store(c, i8x16.narrow_i16x8_u(lA, lB), 32);
  v128.store(c, hA, 64); v128.store(c, hB, 80);
  v128.store(c, lA, 96); v128.store(c, lB, 112);
}

// Weight-only prep, 16 positions (one chunk) per step (1 token, K = 3072, identity gather: 13.1 → 7.7 µs
// per call, relaxed; the kernel's checks and marshalling add ~3 µs); bit-identical to the scalar twin
// (src/ref/qmatmul.ts): the same max, the same f32 division and rounding per element, and
// d = Σ t summed exactly (i32 per chunk, ≤ 2^24 in magnitude; i64 across chunks).
export function qx_prep_f32(M: i32, K: i32, x: usize, nSeg: i32, segc: usize, gather: usize, act: usize, ap: usize): void {
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const zero = i32x4.splat(0), off = i32x4.splat(OFF20);
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * (<usize>K << 2);
    const dst = act + <usize>m * <usize>Kc * ACH;
    for (let g = 0; g < nSeg; g++) {
      const c0 = <usize>load<i32>(segc + (<usize>g << 2)), c1 = <usize>load<i32>(segc + (<usize>g << 2), 4);
      let mv = f32x4.splat(0);
      for (let j = c0 << 4; j < c1 << 4; j += 4) mv = f32x4.max(mv, f32x4.abs(gather4(xr, gather + (j << 2))));
      const mx = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
      let s: f32 = mx / <f32>1048575;
      if (mx == 0) s = 1;
      const sv = f32x4.splat(s);
      let d: i64 = 0;
      for (let c = c0; c < c1; c++) {
        const gp = gather + (c << 6);
        const t0 = quant21(gather4(xr, gp), sv, i32x4.ge_s(v128.load(gp), zero));
        const t1 = quant21(gather4(xr, gp + 16), sv, i32x4.ge_s(v128.load(gp, 16), zero));
        const t2 = quant21(gather4(xr, gp + 32), sv, i32x4.ge_s(v128.load(gp, 32), zero));
        const t3 = quant21(gather4(xr, gp + 48), sv, i32x4.ge_s(v128.load(gp, 48), zero));
        const ts = i32x4.add(i32x4.add(t0, t1), i32x4.add(t2, t3));
        d += <i64>(i32x4.extract_lane(ts, 0) + i32x4.extract_lane(ts, 1) + i32x4.extract_lane(ts, 2) + i32x4.extract_lane(ts, 3));
        putChunk(dst + c * ACH, i32x4.add(t0, off), i32x4.add(t1, off), i32x4.add(t2, off), i32x4.add(t3, off));
      }
      const o = ap + ((<usize>m * <usize>nSeg + <usize>g) << 4);
      store<f32>(o, s);
      store<f32>(o, <f32>d, 4);
      store<f32>(o, <f32>8192, 8);
      store<f32>(o, 0, 12);
    }
  }
}

/** codes [M, K] one per byte; scale/zero per (token % rowPeriod, segment). */
export function qx_prep_codes(M: i32, K: i32, codes: usize, nSeg: i32, segc: usize, gather: usize,
  scale: usize, zero: usize, rowPeriod: i32, act: usize, ap: usize): void {
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  for (let m = 0; m < M; m++) {
    const cr = codes + <usize>m * <usize>K;
    const dst = act + <usize>m * <usize>Kc * ACH;
    const pr = <usize>(m % rowPeriod) * <usize>nSeg;
    for (let g = 0; g < nSeg; g++) {
      const j0 = <usize>load<i32>(segc + (<usize>g << 2)) << 4, j1 = <usize>load<i32>(segc + (<usize>g << 2), 4) << 4;
      const z = <i32>load<u8>(zero + pr + <usize>g);
      let d = 0;
      for (let j = j0; j < j1; j++) {
        const src = load<i32>(gather + (j << 2));
        let u = 0;
        if (src >= 0) {
          u = <i32>load<u8>(cr + <usize>src);
          d += u - z;
        }
        putU(dst, j, u);
      }
      const o = ap + ((<usize>m * <usize>nSeg + <usize>g) << 4);
      store<f32>(o, load<f32>(scale + ((pr + <usize>g) << 2)));
      store<f32>(o, <f32>d, 4);
      store<f32>(o, <f32>(z >> 7), 8);
      store<f32>(o, <f32>(z & 127), 12);
    }
  }
}

// The index of the first x[i] (i < n) outside lo..hi, or −1: the activation preps' gather check (every entry a column
// of x or −1), 16 entries per step; the first offending group of 16 is rescanned in order. Twin: src/ref/qmatmul.ts.
export function first_outside_i32(n: i32, x: usize, lo: i32, hi: i32): i32 {
  const vlo = i32x4.splat(lo), vhi = i32x4.splat(hi);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const p = x + (<usize>i << 2);
    const a = v128.load(p), b = v128.load(p, 16), c = v128.load(p, 32), d = v128.load(p, 48);
    const bad = v128.or(v128.or(v128.or(i32x4.lt_s(a, vlo), i32x4.gt_s(a, vhi)), v128.or(i32x4.lt_s(b, vlo), i32x4.gt_s(b, vhi))),
      v128.or(v128.or(i32x4.lt_s(c, vlo), i32x4.gt_s(c, vhi)), v128.or(i32x4.lt_s(d, vlo), i32x4.gt_s(d, vhi))));
    if (v128.any_true(bad)) break;
  }
  for (; i < n; i++) {
    const v = load<i32>(x + (<usize>i << 2));
    if (v < lo || v > hi) return i;
  }
  return -1;
}

// Integer × integer prep straight from f32 activations: each padded position's code is the one
// quantize_pack would write for its column (the segment's static scale and zero point, rowPeriod rows
// apart; assembly/codes.ts quantCodes4), laid out as qx_prep_codes lays out codes. Bit-identical to
// quantize_pack → unpack_codes → qx_prep_codes, without the two intermediate arrays (twin:
// src/ref/qmatmul.ts qPrepQuant).
export function qx_prep_quant(M: i32, K: i32, x: usize, nSeg: i32, segc: usize, gather: usize,
  scale: usize, zero: usize, rowPeriod: i32, qmax: i32, act: usize, ap: usize): void {
  const Kc = load<i32>(segc + (<usize>nSeg << 2)), Q = f32x4.splat(<f32>qmax), none = i32x4.splat(0);
  for (let m = 0; m < M; m++) {
    const xr = x + ((<usize>m * <usize>K) << 2);
    const dst = act + <usize>m * <usize>Kc * ACH;
    const pr = <usize>(m % rowPeriod) * <usize>nSeg;
    for (let g = 0; g < nSeg; g++) {
      const c0 = <usize>load<i32>(segc + (<usize>g << 2)), c1 = <usize>load<i32>(segc + (<usize>g << 2), 4);
      const s = load<f32>(scale + ((pr + <usize>g) << 2)), z = <i32>load<u8>(zero + pr + <usize>g);
      const S = f32x4.splat(s), Z = f32x4.splat(<f32>z);
      // 16 positions per step: 4 × (gather, quantCodes4, 0 at padding); d = Σ codes − z · (real positions)
      let sum = i32x4.splat(0), real = i32x4.splat(0);
      for (let c = c0; c < c1; c++) {
        const gp = gather + (c << 6);
        const v0 = i32x4.ge_s(v128.load(gp), none), v1 = i32x4.ge_s(v128.load(gp, 16), none);
        const v2 = i32x4.ge_s(v128.load(gp, 32), none), v3 = i32x4.ge_s(v128.load(gp, 48), none);
        const u0 = v128.and(quantCodes4(gather4(xr, gp), S, Z, Q), v0), u1 = v128.and(quantCodes4(gather4(xr, gp + 16), S, Z, Q), v1);
        const u2 = v128.and(quantCodes4(gather4(xr, gp + 32), S, Z, Q), v2), u3 = v128.and(quantCodes4(gather4(xr, gp + 48), S, Z, Q), v3);
        sum = i32x4.add(sum, i32x4.add(i32x4.add(u0, u1), i32x4.add(u2, u3)));
        // the masks are −1 per real lane
        real = i32x4.sub(real, i32x4.add(i32x4.add(v0, v1), i32x4.add(v2, v3)));
        putChunk(dst + c * ACH, u0, u1, u2, u3);
      }
      const d = hsumI32(sum) - z * hsumI32(real);
      const o = ap + ((<usize>m * <usize>nSeg + <usize>g) << 4);
      store<f32>(o, s);
      store<f32>(o, <f32>d, 4);
      store<f32>(o, <f32>(z >> 7), 8);
      store<f32>(o, <f32>(z & 127), 12);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Integer core: two weight rows against one token over blocks [k0, k1) of a segment.
// Returns [H(row0), H(row1), L(row0), L(row1)].
// ---------------------------------------------------------------------------------------------

// Chunk h (16 codes) of the block at p. i16 lane shifts (one psrlw, also with a variable count)
// are safe: the mask keeps only low bits, which never receive bits from the neighbouring byte.
// @ts-ignore: decorator
@inline function codesOf(bits: i32, p: usize, h: i32): v128 {
  if (bits == 8) return v128.load(p);
  if (bits == 4) return v128.and(i16x8.shr_u(v128.load(p), <u32>(h << 2)), i8x16.splat(15));
  if (bits == 2) return v128.and(i16x8.shr_u(v128.load(p), <u32>(h << 1)), i8x16.splat(3));
  // u3: low planes (u2 layout of codes 0..63 at +0, 64..127 at +16), high-bit plane at +32
  const l = v128.and(i16x8.shr_u(v128.load(p + (<usize>(h >> 2) << 4)), <u32>((h & 3) << 1)), i8x16.splat(3));
  const hb = v128.and(i16x8.shr_u(v128.load(p, 32), <u32>h), i8x16.splat(1));
  return v128.or(l, i16x8.shl(hb, 2));
}

// @ts-ignore: decorator
@inline function blockBytesOf(bits: i32): usize {
  return bits == 3 ? 48 : 16;
}

// @ts-ignore: decorator
@inline function chunksOf(bits: i32): i32 {
  return bits == 8 ? 1 : bits == 4 ? 2 : bits == 2 ? 4 : 8;
}

// u8 weight-only GEMV (the u4/u3/u2 ones are the specialised qmv* kernels below): per pair of rows
// and 16-code chunk, two i16 widens and the hi/lo dots. Returns [H(row0), H(row1), L(row0), L(row1)].
// @ts-ignore: decorator
@inline function pair8(w0: usize, w1: usize, act: usize, k0: i32, k1: i32): v128 {
  let H0 = i32x4.splat(0), L0 = H0, H1 = H0, L1 = H0;
  for (let k = k0; k < k1; k++) {
    const q0 = v128.load(w0 + (<usize>k << 6)), q1 = v128.load(w1 + (<usize>k << 6));
    const a0 = i16x8.extend_low_i8x16_u(q0), b0 = i16x8.extend_high_i8x16_u(q0);
    const a1 = i16x8.extend_low_i8x16_u(q1), b1 = i16x8.extend_high_i8x16_u(q1);
    const ch = act + <usize>k * ACH;
    const l0 = v128.load(ch, 96), l1 = v128.load(ch, 112), u0 = v128.load(ch, 64), u1 = v128.load(ch, 80);
    L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(a0, l0), i32x4.dot_i16x8_s(b0, l1)));
    L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(a1, l0), i32x4.dot_i16x8_s(b1, l1)));
    H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(a0, u0), i32x4.dot_i16x8_s(b0, u1)));
    H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(a1, u0), i32x4.dot_i16x8_s(b1, u1)));
  }
  return reduce4(H0, H1, L0, L1);
}

function qmv8(M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, act: usize, ap: usize, bias: usize, y: usize, ldy: i32): void {
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const lda = <usize>Kc * ACH;
  const quads = <usize>((N + 3) >> 2), wEnd = w + quads * 4 * rb, wpEnd = wp + quads * <usize>nSeg * 48;
  let tw = touchStart(w), tp = touchStart(wp);
  for (let n = 0; n < N; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + 16, w2 = w0 + 32, w3 = w0 + 48;
    const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
    tw = touchStream(tw, w0 + 4 * rb, wEnd); tp = touchStream(tp, wq + <usize>nSeg * 48, wpEnd);
    const valid = min(4, N - n);
    for (let m = 0; m < M; m++) {
      const am = act + <usize>m * lda;
      let acc = f32x4.splat(0);
      for (let g = 0; g < nSeg; g++) {
        const k0 = load<i32>(segc + (<usize>g << 2)), k1 = load<i32>(segc + (<usize>g << 2), 4);
        const p01 = pair8(w0, w1, am, k0, k1), p23 = pair8(w2, w3, am, k0, k1);
        const H = i32x4.shuffle(p01, p23, 0, 1, 4, 5), L = i32x4.shuffle(p01, p23, 2, 3, 6, 7);
        acc = epilogue4(H, L, wq + <usize>g * 48, ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
      }
      store4(acc, y + ((<usize>m * <usize>ldy + <usize>n) << 2), n, valid, bias);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Hot path: weight-only (mode 0) u4 / u3 / u2, any M (GEMV M = 1, small-M GEMM): qmv{4,3,2}{I16,
// Relaxed}, straight-line code generated from one shape, no bits/mode branches, constant shifts.
// Each row quad is done in two 2-row passes (fewer live registers than one 4-row pass, measured
// ~7% faster on V8 11.3); both rows of a pass share every activation load, the quad's 4 rows share
// one epilogue; per (quad, token, segment) the integer parts stay in registers (no per-chunk
// stores). A u4 block (16 bytes, byte j = code j | code (j+16) << 4) unpacks with one v128.and
// (codes 0..15) and one i16x8.shr_u + v128.and (codes 16..31); chunk 0 of the block (act + 256·k)
// pairs with the low nibbles, chunk 1 (+128) with the high nibbles.
//
// Baseline (i16), per row and u4 block (32 weights): 1 load + 3 unpack + 4 i16x8.extend_*_i8x16_u
// + 8 i32x4.dot_i16x8_s (hi = u >> 7, lo = u & 127 planes) + 8 i32x4.add = ~11.5 instructions per
// 16 weights and row (+1 activation load per 16 weights and row).
//
// Relaxed (relaxed build, mode 0; mode 3 forces the i16 path, see USE_RELAXED_DOT): the codes stay
// bytes (0..15) and the activation is read as three 7-bit planes a = u >> 14, b = (u >> 7) & 127,
// c = u & 127 (all 0..127, so both operands of the i8×i7 dot are in 0..127 and every engine's
// result is the exact integer). i16x8.relaxed_dot_i8x16_i7x16_s (one pmaddubsw on x64) gives
// pairwise sums ≤ 2·15·127 = 3810 per i16 lane; up to 8 of them (4 blocks; u3: 2, u2: 8) are summed
// in i16 (≤ 30480 < 32767, exact), then widened once: H += ΣA·128 (i32x4.dot_i16x8_s by 128) + ΣB
// (extadd_pairwise), L += ΣC. Per row and u4 block: 1 load + 3 unpack + 6 dots + 6 i16x8.add =
// ~8 instructions per 16 weights and row (+0.75 activation loads). H and L are the same integers as
// the i16 path's (exact, wrapping i32), so all paths and the TS twin agree bit for bit.
//
// Measured (Sapphire Rapids VM, V8 11.3, u4 g128 4096², 1 thread): relaxed 1.11 ms, i16 1.38 ms,
// i.e. ~2.5 and ~3 cycles per 16 weights and row: ALU-bound (ports 0/1/5), not memory-bound (an
// L2-resident 512×4096 weight runs at the same rate). 21-bit activations need 3 byte planes (or 2
// i16 planes) per weight, so this is near the floor of an exact integer design on this engine; the
// 0.5 ms target would need AVX-VNNI (vpdpbusd), which V8 11.3 does not emit for relaxed dots.
// ---------------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline function epilogue4(H: v128, L: v128, pw: usize, pa: usize, acc: v128): v128 {
  const Q = i32x4.trunc_sat_f32x4_s(v128.load(pw, 32));
  const Hc = i32x4.sub(H, i32x4.mul(i32x4.splat(<i32>load<f32>(pa, 8)), Q));
  const Lc = i32x4.sub(L, i32x4.mul(i32x4.splat(<i32>load<f32>(pa, 12)), Q));
  let v = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(Hc), f32x4.splat(128)), f32x4.convert_i32x4_s(Lc));
  v = f32x4.sub(v, f32x4.mul(v128.load(pw, 16), f32x4.splat(load<f32>(pa, 4))));
  return f32x4.add(acc, f32x4.mul(v, f32x4.mul(v128.load(pw), f32x4.splat(load<f32>(pa)))));
}

// Short segments (≤ one i16 run: u4 ≤ 128 codes, u3 ≤ 256, u2 ≤ 512, so |Σ q·(u − o)| < 2^31):
// P = 128·H + L − (128·Oh + Ol)·Q is exact in wrapping i32, and f32(P) is the twin's
// f32(f32(Hc)·128 + f32(Lc)) (both terms exact in f32, one rounding of the same sum), so one
// reduce4 and one convert serve both limbs, bit-identically.
// @ts-ignore: decorator
@inline function epilogueShort(P: v128, pw: usize, pa: usize, acc: v128): v128 {
  const Q = i32x4.trunc_sat_f32x4_s(v128.load(pw, 32));
  const o = (<i32>load<f32>(pa, 8) << 7) + <i32>load<f32>(pa, 12);
  let v = f32x4.convert_i32x4_s(i32x4.sub(P, i32x4.mul(i32x4.splat(o), Q)));
  v = f32x4.sub(v, f32x4.mul(v128.load(pw, 16), f32x4.splat(load<f32>(pa, 4))));
  return f32x4.add(acc, f32x4.mul(v, f32x4.mul(v128.load(pw), f32x4.splat(load<f32>(pa)))));
}

// @ts-ignore: decorator
@inline function store4(acc: v128, y: usize, n: i32, valid: i32, bias: usize): void {
  if (valid == 4) {
    if (bias) acc = f32x4.add(acc, v128.load(bias + (<usize>n << 2)));
    v128.store(y, acc);
  } else {
    for (let l = 0; l < valid; l++) {
      let s: f32 = 0;
      if (l == 0) s = f32x4.extract_lane(acc, 0);
      else if (l == 1) s = f32x4.extract_lane(acc, 1);
      else s = f32x4.extract_lane(acc, 2);
      if (bias) s += load<f32>(bias + (<usize>(n + l) << 2));
      store<f32>(y + (<usize>l << 2), s);
    }
  }
}

// One u4 block (32 codes: low nibbles = chunk 0, high = chunk 1) against one i16 plane of each chunk
// (a0/a1: chunk 0's two halves, b0/b1: chunk 1's): Σ q·u in i32 lanes. Called twice per block (hi and
// lo planes); the unpacking is common to both and the engine computes it once.
// @ts-ignore: decorator
@inline function dotU4Block(x: v128, m15: v128, a0: v128, a1: v128, b0: v128, b1: v128): v128 {
  const qa = v128.and(x, m15), qb = v128.and(i16x8.shr_u(x, 4), m15);
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(qa), a0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(qa), a1)),
    i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(qb), b0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(qb), b1)));
}

// Generated shape (one source for u4 and u2; see the comment above for the u4 numbers; u4 adds a
// one-block-segment path, for RPTQ's clusters of ≤ 32 channels). u2: 4 chunks
// per 16-byte block (byte j = code j | code (j+16) << 2 | code (j+32) << 4 | code (j+48) << 6), i16
// runs of ≤ 8 blocks (32 dots of ≤ 2·3·127 = 762 per lane ≤ 24384).
function qmv4I16(M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, act: usize, ap: usize, bias: usize, y: usize, ldy: i32): void {
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const lda = <usize>Kc * ACH;
  const m15 = i8x16.splat(15);
  const quads = <usize>((N + 3) >> 2), wEnd = w + quads * 4 * rb, wpEnd = wp + quads * <usize>nSeg * 48;
  let tw = touchStart(w), tp = touchStart(wp);
  for (let n = 0; n < N; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + 16, w2 = w0 + 32, w3 = w0 + 48;
    const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
    tw = touchStream(tw, w0 + 4 * rb, wEnd); tp = touchStream(tp, wq + <usize>nSeg * 48, wpEnd);
    const valid = min(4, N - n);
    for (let m = 0; m < M; m++) {
      const am = act + <usize>m * lda;
      let acc = f32x4.splat(0);
      for (let g = 0; g < nSeg; g++) {
        const k0 = <usize>(load<i32>(segc + (<usize>g << 2)) >> 1), k1 = <usize>(load<i32>(segc + (<usize>g << 2), 4) >> 1);
        let H0 = i32x4.splat(0), H1 = H0, H2 = H0, H3 = H0, L0 = H0, L1 = H0, L2 = H0, L3 = H0;
        if (k1 - k0 == 1) {
          // one-block segment (RPTQ clusters ≤ 32 channels): the quad's four row blocks are one 64-byte
          // line; all four rows in one pass against both chunks' hi/lo planes
          const ch = am + (k0 << 8), p = w0 + (k0 << 6);
          const h0 = v128.load(ch, 64), h1 = v128.load(ch, 80), l0 = v128.load(ch, 96), l1 = v128.load(ch, 112);
          const g0 = v128.load(ch, 192), g1 = v128.load(ch, 208), n0 = v128.load(ch, 224), n1 = v128.load(ch, 240);
          const x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32), x3 = v128.load(p, 48);
          H0 = dotU4Block(x0, m15, h0, h1, g0, g1); L0 = dotU4Block(x0, m15, l0, l1, n0, n1);
          H1 = dotU4Block(x1, m15, h0, h1, g0, g1); L1 = dotU4Block(x1, m15, l0, l1, n0, n1);
          H2 = dotU4Block(x2, m15, h0, h1, g0, g1); L2 = dotU4Block(x2, m15, l0, l1, n0, n1);
          H3 = dotU4Block(x3, m15, h0, h1, g0, g1); L3 = dotU4Block(x3, m15, l0, l1, n0, n1);
        } else {
        for (let k = k0; k < k1; k++) {
          const ch = am + k * 256, o = k << 6;
          const x0 = v128.load(w0 + o), x1 = v128.load(w1 + o);
          let h0 = v128.load(ch, 64), h1 = v128.load(ch, 80), l0 = v128.load(ch, 96), l1 = v128.load(ch, 112);
          const q00 = v128.and(x0, m15);
          const e00a = i16x8.extend_low_i8x16_u(q00), e00b = i16x8.extend_high_i8x16_u(q00);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e00a, h0), i32x4.dot_i16x8_s(e00b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e00a, l0), i32x4.dot_i16x8_s(e00b, l1)));
          const q10 = v128.and(x1, m15);
          const e10a = i16x8.extend_low_i8x16_u(q10), e10b = i16x8.extend_high_i8x16_u(q10);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e10a, h0), i32x4.dot_i16x8_s(e10b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e10a, l0), i32x4.dot_i16x8_s(e10b, l1)));
          h0 = v128.load(ch, 192); h1 = v128.load(ch, 208); l0 = v128.load(ch, 224); l1 = v128.load(ch, 240);
          const q01 = v128.and(i16x8.shr_u(x0, 4), m15);
          const e01a = i16x8.extend_low_i8x16_u(q01), e01b = i16x8.extend_high_i8x16_u(q01);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e01a, h0), i32x4.dot_i16x8_s(e01b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e01a, l0), i32x4.dot_i16x8_s(e01b, l1)));
          const q11 = v128.and(i16x8.shr_u(x1, 4), m15);
          const e11a = i16x8.extend_low_i8x16_u(q11), e11b = i16x8.extend_high_i8x16_u(q11);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e11a, h0), i32x4.dot_i16x8_s(e11b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e11a, l0), i32x4.dot_i16x8_s(e11b, l1)));
        }
        for (let k = k0; k < k1; k++) {
          const ch = am + k * 256, o = k << 6;
          const x2 = v128.load(w2 + o), x3 = v128.load(w3 + o);
          let h0 = v128.load(ch, 64), h1 = v128.load(ch, 80), l0 = v128.load(ch, 96), l1 = v128.load(ch, 112);
          const q20 = v128.and(x2, m15);
          const e20a = i16x8.extend_low_i8x16_u(q20), e20b = i16x8.extend_high_i8x16_u(q20);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e20a, h0), i32x4.dot_i16x8_s(e20b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e20a, l0), i32x4.dot_i16x8_s(e20b, l1)));
          const q30 = v128.and(x3, m15);
          const e30a = i16x8.extend_low_i8x16_u(q30), e30b = i16x8.extend_high_i8x16_u(q30);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e30a, h0), i32x4.dot_i16x8_s(e30b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e30a, l0), i32x4.dot_i16x8_s(e30b, l1)));
          h0 = v128.load(ch, 192); h1 = v128.load(ch, 208); l0 = v128.load(ch, 224); l1 = v128.load(ch, 240);
          const q21 = v128.and(i16x8.shr_u(x2, 4), m15);
          const e21a = i16x8.extend_low_i8x16_u(q21), e21b = i16x8.extend_high_i8x16_u(q21);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e21a, h0), i32x4.dot_i16x8_s(e21b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e21a, l0), i32x4.dot_i16x8_s(e21b, l1)));
          const q31 = v128.and(i16x8.shr_u(x3, 4), m15);
          const e31a = i16x8.extend_low_i8x16_u(q31), e31b = i16x8.extend_high_i8x16_u(q31);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e31a, h0), i32x4.dot_i16x8_s(e31b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e31a, l0), i32x4.dot_i16x8_s(e31b, l1)));
        }
        }
        if (k1 - k0 <= 4) {
          acc = epilogueShort(reduce4(i32x4.add(i32x4.shl(H0, 7), L0), i32x4.add(i32x4.shl(H1, 7), L1),
            i32x4.add(i32x4.shl(H2, 7), L2), i32x4.add(i32x4.shl(H3, 7), L3)), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        } else {
          acc = epilogue4(reduce4(H0, H1, H2, H3), reduce4(L0, L1, L2, L3), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        }
      }
      store4(acc, y + ((<usize>m * <usize>ldy + <usize>n) << 2), n, valid, bias);
    }
  }
}

function qmv4Relaxed(M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, act: usize, ap: usize, bias: usize, y: usize, ldy: i32): void {
  if (!ASC_FEATURE_RELAXED_SIMD) return;
  const c128 = i16x8.splat(128);
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const lda = <usize>Kc * ACH;
  const m15 = i8x16.splat(15);
  const quads = <usize>((N + 3) >> 2), wEnd = w + quads * 4 * rb, wpEnd = wp + quads * <usize>nSeg * 48;
  let tw = touchStart(w), tp = touchStart(wp);
  for (let n = 0; n < N; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + 16, w2 = w0 + 32, w3 = w0 + 48;
    const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
    tw = touchStream(tw, w0 + 4 * rb, wEnd); tp = touchStream(tp, wq + <usize>nSeg * 48, wpEnd);
    const valid = min(4, N - n);
    for (let m = 0; m < M; m++) {
      const am = act + <usize>m * lda;
      let acc = f32x4.splat(0);
      for (let g = 0; g < nSeg; g++) {
        const k0 = <usize>(load<i32>(segc + (<usize>g << 2)) >> 1), k1 = <usize>(load<i32>(segc + (<usize>g << 2), 4) >> 1);
        let H0 = i32x4.splat(0), H1 = H0, H2 = H0, H3 = H0, L0 = H0, L1 = H0, L2 = H0, L3 = H0;
        if (k1 - k0 == 1) {
          // one-block segment (g32): straight-line, i16 sums of 2 dots (≤ 7620) widened at once
          const ch = am + (k0 << 8), o = k0 << 6;
          const a0 = v128.load(ch), b0 = v128.load(ch, 16), c0 = v128.load(ch, 32);
          const a1 = v128.load(ch, 128), b1 = v128.load(ch, 144), c1 = v128.load(ch, 160);
          const x0 = v128.load(w0 + o);
          const p0 = v128.and(x0, m15), s0 = v128.and(i16x8.shr_u(x0, 4), m15);
          const A0 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(a0, p0), i16x8.relaxed_dot_i8x16_i7x16_s(a1, s0));
          const B0 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(b0, p0), i16x8.relaxed_dot_i8x16_i7x16_s(b1, s0));
          const C0 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(c0, p0), i16x8.relaxed_dot_i8x16_i7x16_s(c1, s0));
          H0 = i32x4.add(i32x4.dot_i16x8_s(A0, c128), i32x4.extadd_pairwise_i16x8_s(B0));
          L0 = i32x4.extadd_pairwise_i16x8_s(C0);
          const x1 = v128.load(w1 + o);
          const p1 = v128.and(x1, m15), s1 = v128.and(i16x8.shr_u(x1, 4), m15);
          const A1 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(a0, p1), i16x8.relaxed_dot_i8x16_i7x16_s(a1, s1));
          const B1 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(b0, p1), i16x8.relaxed_dot_i8x16_i7x16_s(b1, s1));
          const C1 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(c0, p1), i16x8.relaxed_dot_i8x16_i7x16_s(c1, s1));
          H1 = i32x4.add(i32x4.dot_i16x8_s(A1, c128), i32x4.extadd_pairwise_i16x8_s(B1));
          L1 = i32x4.extadd_pairwise_i16x8_s(C1);
          const x2 = v128.load(w2 + o);
          const p2 = v128.and(x2, m15), s2 = v128.and(i16x8.shr_u(x2, 4), m15);
          const A2 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(a0, p2), i16x8.relaxed_dot_i8x16_i7x16_s(a1, s2));
          const B2 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(b0, p2), i16x8.relaxed_dot_i8x16_i7x16_s(b1, s2));
          const C2 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(c0, p2), i16x8.relaxed_dot_i8x16_i7x16_s(c1, s2));
          H2 = i32x4.add(i32x4.dot_i16x8_s(A2, c128), i32x4.extadd_pairwise_i16x8_s(B2));
          L2 = i32x4.extadd_pairwise_i16x8_s(C2);
          const x3 = v128.load(w3 + o);
          const p3 = v128.and(x3, m15), s3 = v128.and(i16x8.shr_u(x3, 4), m15);
          const A3 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(a0, p3), i16x8.relaxed_dot_i8x16_i7x16_s(a1, s3));
          const B3 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(b0, p3), i16x8.relaxed_dot_i8x16_i7x16_s(b1, s3));
          const C3 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(c0, p3), i16x8.relaxed_dot_i8x16_i7x16_s(c1, s3));
          H3 = i32x4.add(i32x4.dot_i16x8_s(A3, c128), i32x4.extadd_pairwise_i16x8_s(B3));
          L3 = i32x4.extadd_pairwise_i16x8_s(C3);
        } else {
        for (let kb = k0; kb < k1; kb += 4) {
          const ke = min(kb + 4, k1);
          let A0 = i32x4.splat(0), B0 = A0, C0 = A0, A1 = A0, B1 = A0, C1 = A0;
          for (let k = kb; k < ke; k++) {
            const ch = am + k * 256, o = k << 6;
            const x0 = v128.load(w0 + o), x1 = v128.load(w1 + o);
            let a = v128.load(ch, 0), b = v128.load(ch, 16), c = v128.load(ch, 32);
            const q00 = v128.and(x0, m15);
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q00));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q00));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q00));
            const q10 = v128.and(x1, m15);
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q10));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q10));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q10));
            a = v128.load(ch, 128); b = v128.load(ch, 144); c = v128.load(ch, 160);
            const q01 = v128.and(i16x8.shr_u(x0, 4), m15);
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q01));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q01));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q01));
            const q11 = v128.and(i16x8.shr_u(x1, 4), m15);
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q11));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q11));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q11));
          }
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(A0, c128), i32x4.extadd_pairwise_i16x8_s(B0)));
          L0 = i32x4.add(L0, i32x4.extadd_pairwise_i16x8_s(C0));
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(A1, c128), i32x4.extadd_pairwise_i16x8_s(B1)));
          L1 = i32x4.add(L1, i32x4.extadd_pairwise_i16x8_s(C1));
        }
        for (let kb = k0; kb < k1; kb += 4) {
          const ke = min(kb + 4, k1);
          let A2 = i32x4.splat(0), B2 = A2, C2 = A2, A3 = A2, B3 = A2, C3 = A2;
          for (let k = kb; k < ke; k++) {
            const ch = am + k * 256, o = k << 6;
            const x2 = v128.load(w2 + o), x3 = v128.load(w3 + o);
            let a = v128.load(ch, 0), b = v128.load(ch, 16), c = v128.load(ch, 32);
            const q20 = v128.and(x2, m15);
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q20));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q20));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q20));
            const q30 = v128.and(x3, m15);
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q30));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q30));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q30));
            a = v128.load(ch, 128); b = v128.load(ch, 144); c = v128.load(ch, 160);
            const q21 = v128.and(i16x8.shr_u(x2, 4), m15);
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q21));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q21));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q21));
            const q31 = v128.and(i16x8.shr_u(x3, 4), m15);
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q31));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q31));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q31));
          }
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(A2, c128), i32x4.extadd_pairwise_i16x8_s(B2)));
          L2 = i32x4.add(L2, i32x4.extadd_pairwise_i16x8_s(C2));
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(A3, c128), i32x4.extadd_pairwise_i16x8_s(B3)));
          L3 = i32x4.add(L3, i32x4.extadd_pairwise_i16x8_s(C3));
        }
        }
        if (k1 - k0 <= 4) {
          acc = epilogueShort(reduce4(i32x4.add(i32x4.shl(H0, 7), L0), i32x4.add(i32x4.shl(H1, 7), L1),
            i32x4.add(i32x4.shl(H2, 7), L2), i32x4.add(i32x4.shl(H3, 7), L3)), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        } else {
          acc = epilogue4(reduce4(H0, H1, H2, H3), reduce4(L0, L1, L2, L3), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        }
      }
      store4(acc, y + ((<usize>m * <usize>ldy + <usize>n) << 2), n, valid, bias);
    }
  }
}

function qmv2I16(M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, act: usize, ap: usize, bias: usize, y: usize, ldy: i32): void {
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const lda = <usize>Kc * ACH;
  const m3 = i8x16.splat(3);
  const quads = <usize>((N + 3) >> 2), wEnd = w + quads * 4 * rb, wpEnd = wp + quads * <usize>nSeg * 48;
  let tw = touchStart(w), tp = touchStart(wp);
  for (let n = 0; n < N; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + 16, w2 = w0 + 32, w3 = w0 + 48;
    const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
    tw = touchStream(tw, w0 + 4 * rb, wEnd); tp = touchStream(tp, wq + <usize>nSeg * 48, wpEnd);
    const valid = min(4, N - n);
    for (let m = 0; m < M; m++) {
      const am = act + <usize>m * lda;
      let acc = f32x4.splat(0);
      for (let g = 0; g < nSeg; g++) {
        const k0 = <usize>(load<i32>(segc + (<usize>g << 2)) >> 2), k1 = <usize>(load<i32>(segc + (<usize>g << 2), 4) >> 2);
        let H0 = i32x4.splat(0), H1 = H0, H2 = H0, H3 = H0, L0 = H0, L1 = H0, L2 = H0, L3 = H0;
        for (let k = k0; k < k1; k++) {
          const ch = am + k * 512, o = k << 6;
          const x0 = v128.load(w0 + o), x1 = v128.load(w1 + o);
          let h0 = v128.load(ch, 64), h1 = v128.load(ch, 80), l0 = v128.load(ch, 96), l1 = v128.load(ch, 112);
          const q00 = v128.and(x0, m3);
          const e00a = i16x8.extend_low_i8x16_u(q00), e00b = i16x8.extend_high_i8x16_u(q00);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e00a, h0), i32x4.dot_i16x8_s(e00b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e00a, l0), i32x4.dot_i16x8_s(e00b, l1)));
          const q10 = v128.and(x1, m3);
          const e10a = i16x8.extend_low_i8x16_u(q10), e10b = i16x8.extend_high_i8x16_u(q10);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e10a, h0), i32x4.dot_i16x8_s(e10b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e10a, l0), i32x4.dot_i16x8_s(e10b, l1)));
          h0 = v128.load(ch, 192); h1 = v128.load(ch, 208); l0 = v128.load(ch, 224); l1 = v128.load(ch, 240);
          const q01 = v128.and(i16x8.shr_u(x0, 2), m3);
          const e01a = i16x8.extend_low_i8x16_u(q01), e01b = i16x8.extend_high_i8x16_u(q01);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e01a, h0), i32x4.dot_i16x8_s(e01b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e01a, l0), i32x4.dot_i16x8_s(e01b, l1)));
          const q11 = v128.and(i16x8.shr_u(x1, 2), m3);
          const e11a = i16x8.extend_low_i8x16_u(q11), e11b = i16x8.extend_high_i8x16_u(q11);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e11a, h0), i32x4.dot_i16x8_s(e11b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e11a, l0), i32x4.dot_i16x8_s(e11b, l1)));
          h0 = v128.load(ch, 320); h1 = v128.load(ch, 336); l0 = v128.load(ch, 352); l1 = v128.load(ch, 368);
          const q02 = v128.and(i16x8.shr_u(x0, 4), m3);
          const e02a = i16x8.extend_low_i8x16_u(q02), e02b = i16x8.extend_high_i8x16_u(q02);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e02a, h0), i32x4.dot_i16x8_s(e02b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e02a, l0), i32x4.dot_i16x8_s(e02b, l1)));
          const q12 = v128.and(i16x8.shr_u(x1, 4), m3);
          const e12a = i16x8.extend_low_i8x16_u(q12), e12b = i16x8.extend_high_i8x16_u(q12);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e12a, h0), i32x4.dot_i16x8_s(e12b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e12a, l0), i32x4.dot_i16x8_s(e12b, l1)));
          h0 = v128.load(ch, 448); h1 = v128.load(ch, 464); l0 = v128.load(ch, 480); l1 = v128.load(ch, 496);
          const q03 = v128.and(i16x8.shr_u(x0, 6), m3);
          const e03a = i16x8.extend_low_i8x16_u(q03), e03b = i16x8.extend_high_i8x16_u(q03);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e03a, h0), i32x4.dot_i16x8_s(e03b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e03a, l0), i32x4.dot_i16x8_s(e03b, l1)));
          const q13 = v128.and(i16x8.shr_u(x1, 6), m3);
          const e13a = i16x8.extend_low_i8x16_u(q13), e13b = i16x8.extend_high_i8x16_u(q13);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e13a, h0), i32x4.dot_i16x8_s(e13b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e13a, l0), i32x4.dot_i16x8_s(e13b, l1)));
        }
        for (let k = k0; k < k1; k++) {
          const ch = am + k * 512, o = k << 6;
          const x2 = v128.load(w2 + o), x3 = v128.load(w3 + o);
          let h0 = v128.load(ch, 64), h1 = v128.load(ch, 80), l0 = v128.load(ch, 96), l1 = v128.load(ch, 112);
          const q20 = v128.and(x2, m3);
          const e20a = i16x8.extend_low_i8x16_u(q20), e20b = i16x8.extend_high_i8x16_u(q20);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e20a, h0), i32x4.dot_i16x8_s(e20b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e20a, l0), i32x4.dot_i16x8_s(e20b, l1)));
          const q30 = v128.and(x3, m3);
          const e30a = i16x8.extend_low_i8x16_u(q30), e30b = i16x8.extend_high_i8x16_u(q30);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e30a, h0), i32x4.dot_i16x8_s(e30b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e30a, l0), i32x4.dot_i16x8_s(e30b, l1)));
          h0 = v128.load(ch, 192); h1 = v128.load(ch, 208); l0 = v128.load(ch, 224); l1 = v128.load(ch, 240);
          const q21 = v128.and(i16x8.shr_u(x2, 2), m3);
          const e21a = i16x8.extend_low_i8x16_u(q21), e21b = i16x8.extend_high_i8x16_u(q21);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e21a, h0), i32x4.dot_i16x8_s(e21b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e21a, l0), i32x4.dot_i16x8_s(e21b, l1)));
          const q31 = v128.and(i16x8.shr_u(x3, 2), m3);
          const e31a = i16x8.extend_low_i8x16_u(q31), e31b = i16x8.extend_high_i8x16_u(q31);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e31a, h0), i32x4.dot_i16x8_s(e31b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e31a, l0), i32x4.dot_i16x8_s(e31b, l1)));
          h0 = v128.load(ch, 320); h1 = v128.load(ch, 336); l0 = v128.load(ch, 352); l1 = v128.load(ch, 368);
          const q22 = v128.and(i16x8.shr_u(x2, 4), m3);
          const e22a = i16x8.extend_low_i8x16_u(q22), e22b = i16x8.extend_high_i8x16_u(q22);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e22a, h0), i32x4.dot_i16x8_s(e22b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e22a, l0), i32x4.dot_i16x8_s(e22b, l1)));
          const q32 = v128.and(i16x8.shr_u(x3, 4), m3);
          const e32a = i16x8.extend_low_i8x16_u(q32), e32b = i16x8.extend_high_i8x16_u(q32);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e32a, h0), i32x4.dot_i16x8_s(e32b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e32a, l0), i32x4.dot_i16x8_s(e32b, l1)));
          h0 = v128.load(ch, 448); h1 = v128.load(ch, 464); l0 = v128.load(ch, 480); l1 = v128.load(ch, 496);
          const q23 = v128.and(i16x8.shr_u(x2, 6), m3);
          const e23a = i16x8.extend_low_i8x16_u(q23), e23b = i16x8.extend_high_i8x16_u(q23);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e23a, h0), i32x4.dot_i16x8_s(e23b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e23a, l0), i32x4.dot_i16x8_s(e23b, l1)));
          const q33 = v128.and(i16x8.shr_u(x3, 6), m3);
          const e33a = i16x8.extend_low_i8x16_u(q33), e33b = i16x8.extend_high_i8x16_u(q33);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e33a, h0), i32x4.dot_i16x8_s(e33b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e33a, l0), i32x4.dot_i16x8_s(e33b, l1)));
        }
        if (k1 - k0 <= 8) {
          acc = epilogueShort(reduce4(i32x4.add(i32x4.shl(H0, 7), L0), i32x4.add(i32x4.shl(H1, 7), L1),
            i32x4.add(i32x4.shl(H2, 7), L2), i32x4.add(i32x4.shl(H3, 7), L3)), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        } else {
          acc = epilogue4(reduce4(H0, H1, H2, H3), reduce4(L0, L1, L2, L3), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        }
      }
      store4(acc, y + ((<usize>m * <usize>ldy + <usize>n) << 2), n, valid, bias);
    }
  }
}

function qmv2Relaxed(M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, act: usize, ap: usize, bias: usize, y: usize, ldy: i32): void {
  if (!ASC_FEATURE_RELAXED_SIMD) return;
  const c128 = i16x8.splat(128);
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const lda = <usize>Kc * ACH;
  const m3 = i8x16.splat(3);
  const quads = <usize>((N + 3) >> 2), wEnd = w + quads * 4 * rb, wpEnd = wp + quads * <usize>nSeg * 48;
  let tw = touchStart(w), tp = touchStart(wp);
  for (let n = 0; n < N; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + 16, w2 = w0 + 32, w3 = w0 + 48;
    const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
    tw = touchStream(tw, w0 + 4 * rb, wEnd); tp = touchStream(tp, wq + <usize>nSeg * 48, wpEnd);
    const valid = min(4, N - n);
    for (let m = 0; m < M; m++) {
      const am = act + <usize>m * lda;
      let acc = f32x4.splat(0);
      for (let g = 0; g < nSeg; g++) {
        const k0 = <usize>(load<i32>(segc + (<usize>g << 2)) >> 2), k1 = <usize>(load<i32>(segc + (<usize>g << 2), 4) >> 2);
        let H0 = i32x4.splat(0), H1 = H0, H2 = H0, H3 = H0, L0 = H0, L1 = H0, L2 = H0, L3 = H0;
        for (let kb = k0; kb < k1; kb += 8) {
          const ke = min(kb + 8, k1);
          let A0 = i32x4.splat(0), B0 = A0, C0 = A0, A1 = A0, B1 = A0, C1 = A0;
          for (let k = kb; k < ke; k++) {
            const ch = am + k * 512, o = k << 6;
            const x0 = v128.load(w0 + o), x1 = v128.load(w1 + o);
            let a = v128.load(ch, 0), b = v128.load(ch, 16), c = v128.load(ch, 32);
            const q00 = v128.and(x0, m3);
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q00));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q00));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q00));
            const q10 = v128.and(x1, m3);
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q10));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q10));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q10));
            a = v128.load(ch, 128); b = v128.load(ch, 144); c = v128.load(ch, 160);
            const q01 = v128.and(i16x8.shr_u(x0, 2), m3);
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q01));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q01));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q01));
            const q11 = v128.and(i16x8.shr_u(x1, 2), m3);
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q11));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q11));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q11));
            a = v128.load(ch, 256); b = v128.load(ch, 272); c = v128.load(ch, 288);
            const q02 = v128.and(i16x8.shr_u(x0, 4), m3);
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q02));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q02));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q02));
            const q12 = v128.and(i16x8.shr_u(x1, 4), m3);
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q12));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q12));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q12));
            a = v128.load(ch, 384); b = v128.load(ch, 400); c = v128.load(ch, 416);
            const q03 = v128.and(i16x8.shr_u(x0, 6), m3);
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q03));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q03));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q03));
            const q13 = v128.and(i16x8.shr_u(x1, 6), m3);
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q13));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q13));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q13));
          }
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(A0, c128), i32x4.extadd_pairwise_i16x8_s(B0)));
          L0 = i32x4.add(L0, i32x4.extadd_pairwise_i16x8_s(C0));
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(A1, c128), i32x4.extadd_pairwise_i16x8_s(B1)));
          L1 = i32x4.add(L1, i32x4.extadd_pairwise_i16x8_s(C1));
        }
        for (let kb = k0; kb < k1; kb += 8) {
          const ke = min(kb + 8, k1);
          let A2 = i32x4.splat(0), B2 = A2, C2 = A2, A3 = A2, B3 = A2, C3 = A2;
          for (let k = kb; k < ke; k++) {
            const ch = am + k * 512, o = k << 6;
            const x2 = v128.load(w2 + o), x3 = v128.load(w3 + o);
            let a = v128.load(ch, 0), b = v128.load(ch, 16), c = v128.load(ch, 32);
            const q20 = v128.and(x2, m3);
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q20));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q20));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q20));
            const q30 = v128.and(x3, m3);
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q30));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q30));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q30));
            a = v128.load(ch, 128); b = v128.load(ch, 144); c = v128.load(ch, 160);
            const q21 = v128.and(i16x8.shr_u(x2, 2), m3);
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q21));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q21));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q21));
            const q31 = v128.and(i16x8.shr_u(x3, 2), m3);
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q31));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q31));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q31));
            a = v128.load(ch, 256); b = v128.load(ch, 272); c = v128.load(ch, 288);
            const q22 = v128.and(i16x8.shr_u(x2, 4), m3);
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q22));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q22));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q22));
            const q32 = v128.and(i16x8.shr_u(x3, 4), m3);
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q32));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q32));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q32));
            a = v128.load(ch, 384); b = v128.load(ch, 400); c = v128.load(ch, 416);
            const q23 = v128.and(i16x8.shr_u(x2, 6), m3);
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q23));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q23));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q23));
            const q33 = v128.and(i16x8.shr_u(x3, 6), m3);
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q33));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q33));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q33));
          }
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(A2, c128), i32x4.extadd_pairwise_i16x8_s(B2)));
          L2 = i32x4.add(L2, i32x4.extadd_pairwise_i16x8_s(C2));
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(A3, c128), i32x4.extadd_pairwise_i16x8_s(B3)));
          L3 = i32x4.add(L3, i32x4.extadd_pairwise_i16x8_s(C3));
        }
        if (k1 - k0 <= 8) {
          acc = epilogueShort(reduce4(i32x4.add(i32x4.shl(H0, 7), L0), i32x4.add(i32x4.shl(H1, 7), L1),
            i32x4.add(i32x4.shl(H2, 7), L2), i32x4.add(i32x4.shl(H3, 7), L3)), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        } else {
          acc = epilogue4(reduce4(H0, H1, H2, H3), reduce4(L0, L1, L2, L3), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        }
      }
      store4(acc, y + ((<usize>m * <usize>ldy + <usize>n) << 2), n, valid, bias);
    }
  }
}

// u3 (48-byte blocks of 128 codes: low 2 bits in the u2 layout at +0 (codes 0..63) and +16 (64..127),
// high bit of code 16h + j at bit h of byte j of +32): chunk h = (lo >> 2(h & 3)) & 3 | bit h of the high
// plane moved to bit 2 with one constant shift and mask (bit 2 of a byte only ever receives bits of the
// same byte). Relaxed i16 runs of ≤ 2 blocks (16 dots of ≤ 2·7·127 = 1778 per lane ≤ 28448).
function qmv3I16(M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, act: usize, ap: usize, bias: usize, y: usize, ldy: i32): void {
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const lda = <usize>Kc * ACH;
  const m3 = i8x16.splat(3), m4 = i8x16.splat(4);
  const quads = <usize>((N + 3) >> 2), wEnd = w + quads * 4 * rb, wpEnd = wp + quads * <usize>nSeg * 48;
  let tw = touchStart(w), tp = touchStart(wp);
  for (let n = 0; n < N; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + 48, w2 = w0 + 96, w3 = w0 + 144;
    const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
    tw = touchStream(tw, w0 + 4 * rb, wEnd); tp = touchStream(tp, wq + <usize>nSeg * 48, wpEnd);
    const valid = min(4, N - n);
    for (let m = 0; m < M; m++) {
      const am = act + <usize>m * lda;
      let acc = f32x4.splat(0);
      for (let g = 0; g < nSeg; g++) {
        const k0 = <usize>(load<i32>(segc + (<usize>g << 2)) >> 3), k1 = <usize>(load<i32>(segc + (<usize>g << 2), 4) >> 3);
        let H0 = i32x4.splat(0), H1 = H0, H2 = H0, H3 = H0, L0 = H0, L1 = H0, L2 = H0, L3 = H0;
        for (let k = k0; k < k1; k++) {
          const ch = am + (k << 10), o = k * 192;
          const x0l0 = v128.load(w0 + o), x0l1 = v128.load(w0 + o, 16), x0h = v128.load(w0 + o, 32);
          const x1l0 = v128.load(w1 + o), x1l1 = v128.load(w1 + o, 16), x1h = v128.load(w1 + o, 32);
          let h0 = v128.load(ch, 64), h1 = v128.load(ch, 80), l0 = v128.load(ch, 96), l1 = v128.load(ch, 112);
          const q00 = v128.or(v128.and(x0l0, m3), v128.and(i16x8.shl(x0h, 2), m4));
          const e00a = i16x8.extend_low_i8x16_u(q00), e00b = i16x8.extend_high_i8x16_u(q00);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e00a, h0), i32x4.dot_i16x8_s(e00b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e00a, l0), i32x4.dot_i16x8_s(e00b, l1)));
          const q10 = v128.or(v128.and(x1l0, m3), v128.and(i16x8.shl(x1h, 2), m4));
          const e10a = i16x8.extend_low_i8x16_u(q10), e10b = i16x8.extend_high_i8x16_u(q10);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e10a, h0), i32x4.dot_i16x8_s(e10b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e10a, l0), i32x4.dot_i16x8_s(e10b, l1)));
          h0 = v128.load(ch, 192); h1 = v128.load(ch, 208); l0 = v128.load(ch, 224); l1 = v128.load(ch, 240);
          const q01 = v128.or(v128.and(i16x8.shr_u(x0l0, 2), m3), v128.and(i16x8.shl(x0h, 1), m4));
          const e01a = i16x8.extend_low_i8x16_u(q01), e01b = i16x8.extend_high_i8x16_u(q01);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e01a, h0), i32x4.dot_i16x8_s(e01b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e01a, l0), i32x4.dot_i16x8_s(e01b, l1)));
          const q11 = v128.or(v128.and(i16x8.shr_u(x1l0, 2), m3), v128.and(i16x8.shl(x1h, 1), m4));
          const e11a = i16x8.extend_low_i8x16_u(q11), e11b = i16x8.extend_high_i8x16_u(q11);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e11a, h0), i32x4.dot_i16x8_s(e11b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e11a, l0), i32x4.dot_i16x8_s(e11b, l1)));
          h0 = v128.load(ch, 320); h1 = v128.load(ch, 336); l0 = v128.load(ch, 352); l1 = v128.load(ch, 368);
          const q02 = v128.or(v128.and(i16x8.shr_u(x0l0, 4), m3), v128.and(x0h, m4));
          const e02a = i16x8.extend_low_i8x16_u(q02), e02b = i16x8.extend_high_i8x16_u(q02);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e02a, h0), i32x4.dot_i16x8_s(e02b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e02a, l0), i32x4.dot_i16x8_s(e02b, l1)));
          const q12 = v128.or(v128.and(i16x8.shr_u(x1l0, 4), m3), v128.and(x1h, m4));
          const e12a = i16x8.extend_low_i8x16_u(q12), e12b = i16x8.extend_high_i8x16_u(q12);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e12a, h0), i32x4.dot_i16x8_s(e12b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e12a, l0), i32x4.dot_i16x8_s(e12b, l1)));
          h0 = v128.load(ch, 448); h1 = v128.load(ch, 464); l0 = v128.load(ch, 480); l1 = v128.load(ch, 496);
          const q03 = v128.or(v128.and(i16x8.shr_u(x0l0, 6), m3), v128.and(i16x8.shr_u(x0h, 1), m4));
          const e03a = i16x8.extend_low_i8x16_u(q03), e03b = i16x8.extend_high_i8x16_u(q03);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e03a, h0), i32x4.dot_i16x8_s(e03b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e03a, l0), i32x4.dot_i16x8_s(e03b, l1)));
          const q13 = v128.or(v128.and(i16x8.shr_u(x1l0, 6), m3), v128.and(i16x8.shr_u(x1h, 1), m4));
          const e13a = i16x8.extend_low_i8x16_u(q13), e13b = i16x8.extend_high_i8x16_u(q13);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e13a, h0), i32x4.dot_i16x8_s(e13b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e13a, l0), i32x4.dot_i16x8_s(e13b, l1)));
          h0 = v128.load(ch, 576); h1 = v128.load(ch, 592); l0 = v128.load(ch, 608); l1 = v128.load(ch, 624);
          const q04 = v128.or(v128.and(x0l1, m3), v128.and(i16x8.shr_u(x0h, 2), m4));
          const e04a = i16x8.extend_low_i8x16_u(q04), e04b = i16x8.extend_high_i8x16_u(q04);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e04a, h0), i32x4.dot_i16x8_s(e04b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e04a, l0), i32x4.dot_i16x8_s(e04b, l1)));
          const q14 = v128.or(v128.and(x1l1, m3), v128.and(i16x8.shr_u(x1h, 2), m4));
          const e14a = i16x8.extend_low_i8x16_u(q14), e14b = i16x8.extend_high_i8x16_u(q14);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e14a, h0), i32x4.dot_i16x8_s(e14b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e14a, l0), i32x4.dot_i16x8_s(e14b, l1)));
          h0 = v128.load(ch, 704); h1 = v128.load(ch, 720); l0 = v128.load(ch, 736); l1 = v128.load(ch, 752);
          const q05 = v128.or(v128.and(i16x8.shr_u(x0l1, 2), m3), v128.and(i16x8.shr_u(x0h, 3), m4));
          const e05a = i16x8.extend_low_i8x16_u(q05), e05b = i16x8.extend_high_i8x16_u(q05);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e05a, h0), i32x4.dot_i16x8_s(e05b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e05a, l0), i32x4.dot_i16x8_s(e05b, l1)));
          const q15 = v128.or(v128.and(i16x8.shr_u(x1l1, 2), m3), v128.and(i16x8.shr_u(x1h, 3), m4));
          const e15a = i16x8.extend_low_i8x16_u(q15), e15b = i16x8.extend_high_i8x16_u(q15);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e15a, h0), i32x4.dot_i16x8_s(e15b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e15a, l0), i32x4.dot_i16x8_s(e15b, l1)));
          h0 = v128.load(ch, 832); h1 = v128.load(ch, 848); l0 = v128.load(ch, 864); l1 = v128.load(ch, 880);
          const q06 = v128.or(v128.and(i16x8.shr_u(x0l1, 4), m3), v128.and(i16x8.shr_u(x0h, 4), m4));
          const e06a = i16x8.extend_low_i8x16_u(q06), e06b = i16x8.extend_high_i8x16_u(q06);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e06a, h0), i32x4.dot_i16x8_s(e06b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e06a, l0), i32x4.dot_i16x8_s(e06b, l1)));
          const q16 = v128.or(v128.and(i16x8.shr_u(x1l1, 4), m3), v128.and(i16x8.shr_u(x1h, 4), m4));
          const e16a = i16x8.extend_low_i8x16_u(q16), e16b = i16x8.extend_high_i8x16_u(q16);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e16a, h0), i32x4.dot_i16x8_s(e16b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e16a, l0), i32x4.dot_i16x8_s(e16b, l1)));
          h0 = v128.load(ch, 960); h1 = v128.load(ch, 976); l0 = v128.load(ch, 992); l1 = v128.load(ch, 1008);
          const q07 = v128.or(v128.and(i16x8.shr_u(x0l1, 6), m3), v128.and(i16x8.shr_u(x0h, 5), m4));
          const e07a = i16x8.extend_low_i8x16_u(q07), e07b = i16x8.extend_high_i8x16_u(q07);
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(e07a, h0), i32x4.dot_i16x8_s(e07b, h1)));
          L0 = i32x4.add(L0, i32x4.add(i32x4.dot_i16x8_s(e07a, l0), i32x4.dot_i16x8_s(e07b, l1)));
          const q17 = v128.or(v128.and(i16x8.shr_u(x1l1, 6), m3), v128.and(i16x8.shr_u(x1h, 5), m4));
          const e17a = i16x8.extend_low_i8x16_u(q17), e17b = i16x8.extend_high_i8x16_u(q17);
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(e17a, h0), i32x4.dot_i16x8_s(e17b, h1)));
          L1 = i32x4.add(L1, i32x4.add(i32x4.dot_i16x8_s(e17a, l0), i32x4.dot_i16x8_s(e17b, l1)));
        }
        for (let k = k0; k < k1; k++) {
          const ch = am + (k << 10), o = k * 192;
          const x2l0 = v128.load(w2 + o), x2l1 = v128.load(w2 + o, 16), x2h = v128.load(w2 + o, 32);
          const x3l0 = v128.load(w3 + o), x3l1 = v128.load(w3 + o, 16), x3h = v128.load(w3 + o, 32);
          let h0 = v128.load(ch, 64), h1 = v128.load(ch, 80), l0 = v128.load(ch, 96), l1 = v128.load(ch, 112);
          const q20 = v128.or(v128.and(x2l0, m3), v128.and(i16x8.shl(x2h, 2), m4));
          const e20a = i16x8.extend_low_i8x16_u(q20), e20b = i16x8.extend_high_i8x16_u(q20);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e20a, h0), i32x4.dot_i16x8_s(e20b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e20a, l0), i32x4.dot_i16x8_s(e20b, l1)));
          const q30 = v128.or(v128.and(x3l0, m3), v128.and(i16x8.shl(x3h, 2), m4));
          const e30a = i16x8.extend_low_i8x16_u(q30), e30b = i16x8.extend_high_i8x16_u(q30);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e30a, h0), i32x4.dot_i16x8_s(e30b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e30a, l0), i32x4.dot_i16x8_s(e30b, l1)));
          h0 = v128.load(ch, 192); h1 = v128.load(ch, 208); l0 = v128.load(ch, 224); l1 = v128.load(ch, 240);
          const q21 = v128.or(v128.and(i16x8.shr_u(x2l0, 2), m3), v128.and(i16x8.shl(x2h, 1), m4));
          const e21a = i16x8.extend_low_i8x16_u(q21), e21b = i16x8.extend_high_i8x16_u(q21);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e21a, h0), i32x4.dot_i16x8_s(e21b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e21a, l0), i32x4.dot_i16x8_s(e21b, l1)));
          const q31 = v128.or(v128.and(i16x8.shr_u(x3l0, 2), m3), v128.and(i16x8.shl(x3h, 1), m4));
          const e31a = i16x8.extend_low_i8x16_u(q31), e31b = i16x8.extend_high_i8x16_u(q31);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e31a, h0), i32x4.dot_i16x8_s(e31b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e31a, l0), i32x4.dot_i16x8_s(e31b, l1)));
          h0 = v128.load(ch, 320); h1 = v128.load(ch, 336); l0 = v128.load(ch, 352); l1 = v128.load(ch, 368);
          const q22 = v128.or(v128.and(i16x8.shr_u(x2l0, 4), m3), v128.and(x2h, m4));
          const e22a = i16x8.extend_low_i8x16_u(q22), e22b = i16x8.extend_high_i8x16_u(q22);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e22a, h0), i32x4.dot_i16x8_s(e22b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e22a, l0), i32x4.dot_i16x8_s(e22b, l1)));
          const q32 = v128.or(v128.and(i16x8.shr_u(x3l0, 4), m3), v128.and(x3h, m4));
          const e32a = i16x8.extend_low_i8x16_u(q32), e32b = i16x8.extend_high_i8x16_u(q32);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e32a, h0), i32x4.dot_i16x8_s(e32b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e32a, l0), i32x4.dot_i16x8_s(e32b, l1)));
          h0 = v128.load(ch, 448); h1 = v128.load(ch, 464); l0 = v128.load(ch, 480); l1 = v128.load(ch, 496);
          const q23 = v128.or(v128.and(i16x8.shr_u(x2l0, 6), m3), v128.and(i16x8.shr_u(x2h, 1), m4));
          const e23a = i16x8.extend_low_i8x16_u(q23), e23b = i16x8.extend_high_i8x16_u(q23);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e23a, h0), i32x4.dot_i16x8_s(e23b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e23a, l0), i32x4.dot_i16x8_s(e23b, l1)));
          const q33 = v128.or(v128.and(i16x8.shr_u(x3l0, 6), m3), v128.and(i16x8.shr_u(x3h, 1), m4));
          const e33a = i16x8.extend_low_i8x16_u(q33), e33b = i16x8.extend_high_i8x16_u(q33);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e33a, h0), i32x4.dot_i16x8_s(e33b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e33a, l0), i32x4.dot_i16x8_s(e33b, l1)));
          h0 = v128.load(ch, 576); h1 = v128.load(ch, 592); l0 = v128.load(ch, 608); l1 = v128.load(ch, 624);
          const q24 = v128.or(v128.and(x2l1, m3), v128.and(i16x8.shr_u(x2h, 2), m4));
          const e24a = i16x8.extend_low_i8x16_u(q24), e24b = i16x8.extend_high_i8x16_u(q24);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e24a, h0), i32x4.dot_i16x8_s(e24b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e24a, l0), i32x4.dot_i16x8_s(e24b, l1)));
          const q34 = v128.or(v128.and(x3l1, m3), v128.and(i16x8.shr_u(x3h, 2), m4));
          const e34a = i16x8.extend_low_i8x16_u(q34), e34b = i16x8.extend_high_i8x16_u(q34);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e34a, h0), i32x4.dot_i16x8_s(e34b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e34a, l0), i32x4.dot_i16x8_s(e34b, l1)));
          h0 = v128.load(ch, 704); h1 = v128.load(ch, 720); l0 = v128.load(ch, 736); l1 = v128.load(ch, 752);
          const q25 = v128.or(v128.and(i16x8.shr_u(x2l1, 2), m3), v128.and(i16x8.shr_u(x2h, 3), m4));
          const e25a = i16x8.extend_low_i8x16_u(q25), e25b = i16x8.extend_high_i8x16_u(q25);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e25a, h0), i32x4.dot_i16x8_s(e25b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e25a, l0), i32x4.dot_i16x8_s(e25b, l1)));
          const q35 = v128.or(v128.and(i16x8.shr_u(x3l1, 2), m3), v128.and(i16x8.shr_u(x3h, 3), m4));
          const e35a = i16x8.extend_low_i8x16_u(q35), e35b = i16x8.extend_high_i8x16_u(q35);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e35a, h0), i32x4.dot_i16x8_s(e35b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e35a, l0), i32x4.dot_i16x8_s(e35b, l1)));
          h0 = v128.load(ch, 832); h1 = v128.load(ch, 848); l0 = v128.load(ch, 864); l1 = v128.load(ch, 880);
          const q26 = v128.or(v128.and(i16x8.shr_u(x2l1, 4), m3), v128.and(i16x8.shr_u(x2h, 4), m4));
          const e26a = i16x8.extend_low_i8x16_u(q26), e26b = i16x8.extend_high_i8x16_u(q26);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e26a, h0), i32x4.dot_i16x8_s(e26b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e26a, l0), i32x4.dot_i16x8_s(e26b, l1)));
          const q36 = v128.or(v128.and(i16x8.shr_u(x3l1, 4), m3), v128.and(i16x8.shr_u(x3h, 4), m4));
          const e36a = i16x8.extend_low_i8x16_u(q36), e36b = i16x8.extend_high_i8x16_u(q36);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e36a, h0), i32x4.dot_i16x8_s(e36b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e36a, l0), i32x4.dot_i16x8_s(e36b, l1)));
          h0 = v128.load(ch, 960); h1 = v128.load(ch, 976); l0 = v128.load(ch, 992); l1 = v128.load(ch, 1008);
          const q27 = v128.or(v128.and(i16x8.shr_u(x2l1, 6), m3), v128.and(i16x8.shr_u(x2h, 5), m4));
          const e27a = i16x8.extend_low_i8x16_u(q27), e27b = i16x8.extend_high_i8x16_u(q27);
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(e27a, h0), i32x4.dot_i16x8_s(e27b, h1)));
          L2 = i32x4.add(L2, i32x4.add(i32x4.dot_i16x8_s(e27a, l0), i32x4.dot_i16x8_s(e27b, l1)));
          const q37 = v128.or(v128.and(i16x8.shr_u(x3l1, 6), m3), v128.and(i16x8.shr_u(x3h, 5), m4));
          const e37a = i16x8.extend_low_i8x16_u(q37), e37b = i16x8.extend_high_i8x16_u(q37);
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(e37a, h0), i32x4.dot_i16x8_s(e37b, h1)));
          L3 = i32x4.add(L3, i32x4.add(i32x4.dot_i16x8_s(e37a, l0), i32x4.dot_i16x8_s(e37b, l1)));
        }
        if (k1 - k0 <= 2) {
          acc = epilogueShort(reduce4(i32x4.add(i32x4.shl(H0, 7), L0), i32x4.add(i32x4.shl(H1, 7), L1),
            i32x4.add(i32x4.shl(H2, 7), L2), i32x4.add(i32x4.shl(H3, 7), L3)), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        } else {
          acc = epilogue4(reduce4(H0, H1, H2, H3), reduce4(L0, L1, L2, L3), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        }
      }
      store4(acc, y + ((<usize>m * <usize>ldy + <usize>n) << 2), n, valid, bias);
    }
  }
}

function qmv3Relaxed(M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, act: usize, ap: usize, bias: usize, y: usize, ldy: i32): void {
  if (!ASC_FEATURE_RELAXED_SIMD) return;
  const c128 = i16x8.splat(128);
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const lda = <usize>Kc * ACH;
  const m3 = i8x16.splat(3), m4 = i8x16.splat(4);
  const quads = <usize>((N + 3) >> 2), wEnd = w + quads * 4 * rb, wpEnd = wp + quads * <usize>nSeg * 48;
  let tw = touchStart(w), tp = touchStart(wp);
  for (let n = 0; n < N; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + 48, w2 = w0 + 96, w3 = w0 + 144;
    const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
    tw = touchStream(tw, w0 + 4 * rb, wEnd); tp = touchStream(tp, wq + <usize>nSeg * 48, wpEnd);
    const valid = min(4, N - n);
    for (let m = 0; m < M; m++) {
      const am = act + <usize>m * lda;
      let acc = f32x4.splat(0);
      for (let g = 0; g < nSeg; g++) {
        const k0 = <usize>(load<i32>(segc + (<usize>g << 2)) >> 3), k1 = <usize>(load<i32>(segc + (<usize>g << 2), 4) >> 3);
        let H0 = i32x4.splat(0), H1 = H0, H2 = H0, H3 = H0, L0 = H0, L1 = H0, L2 = H0, L3 = H0;
        for (let kb = k0; kb < k1; kb += 2) {
          const ke = min(kb + 2, k1);
          let A0 = i32x4.splat(0), B0 = A0, C0 = A0, A1 = A0, B1 = A0, C1 = A0;
          for (let k = kb; k < ke; k++) {
            const ch = am + (k << 10), o = k * 192;
            const x0l0 = v128.load(w0 + o), x0l1 = v128.load(w0 + o, 16), x0h = v128.load(w0 + o, 32);
            const x1l0 = v128.load(w1 + o), x1l1 = v128.load(w1 + o, 16), x1h = v128.load(w1 + o, 32);
            let a = v128.load(ch, 0), b = v128.load(ch, 16), c = v128.load(ch, 32);
            const q00 = v128.or(v128.and(x0l0, m3), v128.and(i16x8.shl(x0h, 2), m4));
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q00));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q00));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q00));
            const q10 = v128.or(v128.and(x1l0, m3), v128.and(i16x8.shl(x1h, 2), m4));
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q10));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q10));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q10));
            a = v128.load(ch, 128); b = v128.load(ch, 144); c = v128.load(ch, 160);
            const q01 = v128.or(v128.and(i16x8.shr_u(x0l0, 2), m3), v128.and(i16x8.shl(x0h, 1), m4));
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q01));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q01));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q01));
            const q11 = v128.or(v128.and(i16x8.shr_u(x1l0, 2), m3), v128.and(i16x8.shl(x1h, 1), m4));
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q11));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q11));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q11));
            a = v128.load(ch, 256); b = v128.load(ch, 272); c = v128.load(ch, 288);
            const q02 = v128.or(v128.and(i16x8.shr_u(x0l0, 4), m3), v128.and(x0h, m4));
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q02));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q02));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q02));
            const q12 = v128.or(v128.and(i16x8.shr_u(x1l0, 4), m3), v128.and(x1h, m4));
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q12));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q12));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q12));
            a = v128.load(ch, 384); b = v128.load(ch, 400); c = v128.load(ch, 416);
            const q03 = v128.or(v128.and(i16x8.shr_u(x0l0, 6), m3), v128.and(i16x8.shr_u(x0h, 1), m4));
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q03));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q03));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q03));
            const q13 = v128.or(v128.and(i16x8.shr_u(x1l0, 6), m3), v128.and(i16x8.shr_u(x1h, 1), m4));
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q13));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q13));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q13));
            a = v128.load(ch, 512); b = v128.load(ch, 528); c = v128.load(ch, 544);
            const q04 = v128.or(v128.and(x0l1, m3), v128.and(i16x8.shr_u(x0h, 2), m4));
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q04));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q04));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q04));
            const q14 = v128.or(v128.and(x1l1, m3), v128.and(i16x8.shr_u(x1h, 2), m4));
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q14));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q14));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q14));
            a = v128.load(ch, 640); b = v128.load(ch, 656); c = v128.load(ch, 672);
            const q05 = v128.or(v128.and(i16x8.shr_u(x0l1, 2), m3), v128.and(i16x8.shr_u(x0h, 3), m4));
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q05));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q05));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q05));
            const q15 = v128.or(v128.and(i16x8.shr_u(x1l1, 2), m3), v128.and(i16x8.shr_u(x1h, 3), m4));
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q15));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q15));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q15));
            a = v128.load(ch, 768); b = v128.load(ch, 784); c = v128.load(ch, 800);
            const q06 = v128.or(v128.and(i16x8.shr_u(x0l1, 4), m3), v128.and(i16x8.shr_u(x0h, 4), m4));
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q06));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q06));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q06));
            const q16 = v128.or(v128.and(i16x8.shr_u(x1l1, 4), m3), v128.and(i16x8.shr_u(x1h, 4), m4));
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q16));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q16));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q16));
            a = v128.load(ch, 896); b = v128.load(ch, 912); c = v128.load(ch, 928);
            const q07 = v128.or(v128.and(i16x8.shr_u(x0l1, 6), m3), v128.and(i16x8.shr_u(x0h, 5), m4));
            A0 = i16x8.add(A0, i16x8.relaxed_dot_i8x16_i7x16_s(a, q07));
            B0 = i16x8.add(B0, i16x8.relaxed_dot_i8x16_i7x16_s(b, q07));
            C0 = i16x8.add(C0, i16x8.relaxed_dot_i8x16_i7x16_s(c, q07));
            const q17 = v128.or(v128.and(i16x8.shr_u(x1l1, 6), m3), v128.and(i16x8.shr_u(x1h, 5), m4));
            A1 = i16x8.add(A1, i16x8.relaxed_dot_i8x16_i7x16_s(a, q17));
            B1 = i16x8.add(B1, i16x8.relaxed_dot_i8x16_i7x16_s(b, q17));
            C1 = i16x8.add(C1, i16x8.relaxed_dot_i8x16_i7x16_s(c, q17));
          }
          H0 = i32x4.add(H0, i32x4.add(i32x4.dot_i16x8_s(A0, c128), i32x4.extadd_pairwise_i16x8_s(B0)));
          L0 = i32x4.add(L0, i32x4.extadd_pairwise_i16x8_s(C0));
          H1 = i32x4.add(H1, i32x4.add(i32x4.dot_i16x8_s(A1, c128), i32x4.extadd_pairwise_i16x8_s(B1)));
          L1 = i32x4.add(L1, i32x4.extadd_pairwise_i16x8_s(C1));
        }
        for (let kb = k0; kb < k1; kb += 2) {
          const ke = min(kb + 2, k1);
          let A2 = i32x4.splat(0), B2 = A2, C2 = A2, A3 = A2, B3 = A2, C3 = A2;
          for (let k = kb; k < ke; k++) {
            const ch = am + (k << 10), o = k * 192;
            const x2l0 = v128.load(w2 + o), x2l1 = v128.load(w2 + o, 16), x2h = v128.load(w2 + o, 32);
            const x3l0 = v128.load(w3 + o), x3l1 = v128.load(w3 + o, 16), x3h = v128.load(w3 + o, 32);
            let a = v128.load(ch, 0), b = v128.load(ch, 16), c = v128.load(ch, 32);
            const q20 = v128.or(v128.and(x2l0, m3), v128.and(i16x8.shl(x2h, 2), m4));
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q20));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q20));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q20));
            const q30 = v128.or(v128.and(x3l0, m3), v128.and(i16x8.shl(x3h, 2), m4));
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q30));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q30));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q30));
            a = v128.load(ch, 128); b = v128.load(ch, 144); c = v128.load(ch, 160);
            const q21 = v128.or(v128.and(i16x8.shr_u(x2l0, 2), m3), v128.and(i16x8.shl(x2h, 1), m4));
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q21));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q21));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q21));
            const q31 = v128.or(v128.and(i16x8.shr_u(x3l0, 2), m3), v128.and(i16x8.shl(x3h, 1), m4));
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q31));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q31));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q31));
            a = v128.load(ch, 256); b = v128.load(ch, 272); c = v128.load(ch, 288);
            const q22 = v128.or(v128.and(i16x8.shr_u(x2l0, 4), m3), v128.and(x2h, m4));
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q22));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q22));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q22));
            const q32 = v128.or(v128.and(i16x8.shr_u(x3l0, 4), m3), v128.and(x3h, m4));
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q32));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q32));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q32));
            a = v128.load(ch, 384); b = v128.load(ch, 400); c = v128.load(ch, 416);
            const q23 = v128.or(v128.and(i16x8.shr_u(x2l0, 6), m3), v128.and(i16x8.shr_u(x2h, 1), m4));
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q23));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q23));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q23));
            const q33 = v128.or(v128.and(i16x8.shr_u(x3l0, 6), m3), v128.and(i16x8.shr_u(x3h, 1), m4));
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q33));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q33));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q33));
            a = v128.load(ch, 512); b = v128.load(ch, 528); c = v128.load(ch, 544);
            const q24 = v128.or(v128.and(x2l1, m3), v128.and(i16x8.shr_u(x2h, 2), m4));
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q24));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q24));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q24));
            const q34 = v128.or(v128.and(x3l1, m3), v128.and(i16x8.shr_u(x3h, 2), m4));
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q34));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q34));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q34));
            a = v128.load(ch, 640); b = v128.load(ch, 656); c = v128.load(ch, 672);
            const q25 = v128.or(v128.and(i16x8.shr_u(x2l1, 2), m3), v128.and(i16x8.shr_u(x2h, 3), m4));
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q25));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q25));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q25));
            const q35 = v128.or(v128.and(i16x8.shr_u(x3l1, 2), m3), v128.and(i16x8.shr_u(x3h, 3), m4));
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q35));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q35));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q35));
            a = v128.load(ch, 768); b = v128.load(ch, 784); c = v128.load(ch, 800);
            const q26 = v128.or(v128.and(i16x8.shr_u(x2l1, 4), m3), v128.and(i16x8.shr_u(x2h, 4), m4));
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q26));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q26));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q26));
            const q36 = v128.or(v128.and(i16x8.shr_u(x3l1, 4), m3), v128.and(i16x8.shr_u(x3h, 4), m4));
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q36));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q36));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q36));
            a = v128.load(ch, 896); b = v128.load(ch, 912); c = v128.load(ch, 928);
            const q27 = v128.or(v128.and(i16x8.shr_u(x2l1, 6), m3), v128.and(i16x8.shr_u(x2h, 5), m4));
            A2 = i16x8.add(A2, i16x8.relaxed_dot_i8x16_i7x16_s(a, q27));
            B2 = i16x8.add(B2, i16x8.relaxed_dot_i8x16_i7x16_s(b, q27));
            C2 = i16x8.add(C2, i16x8.relaxed_dot_i8x16_i7x16_s(c, q27));
            const q37 = v128.or(v128.and(i16x8.shr_u(x3l1, 6), m3), v128.and(i16x8.shr_u(x3h, 5), m4));
            A3 = i16x8.add(A3, i16x8.relaxed_dot_i8x16_i7x16_s(a, q37));
            B3 = i16x8.add(B3, i16x8.relaxed_dot_i8x16_i7x16_s(b, q37));
            C3 = i16x8.add(C3, i16x8.relaxed_dot_i8x16_i7x16_s(c, q37));
          }
          H2 = i32x4.add(H2, i32x4.add(i32x4.dot_i16x8_s(A2, c128), i32x4.extadd_pairwise_i16x8_s(B2)));
          L2 = i32x4.add(L2, i32x4.extadd_pairwise_i16x8_s(C2));
          H3 = i32x4.add(H3, i32x4.add(i32x4.dot_i16x8_s(A3, c128), i32x4.extadd_pairwise_i16x8_s(B3)));
          L3 = i32x4.add(L3, i32x4.extadd_pairwise_i16x8_s(C3));
        }
        if (k1 - k0 <= 2) {
          acc = epilogueShort(reduce4(i32x4.add(i32x4.shl(H0, 7), L0), i32x4.add(i32x4.shl(H1, 7), L1),
            i32x4.add(i32x4.shl(H2, 7), L2), i32x4.add(i32x4.shl(H3, 7), L3)), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        } else {
          acc = epilogue4(reduce4(H0, H1, H2, H3), reduce4(L0, L1, L2, L3), wq + <usize>g * 48,
            ap + ((<usize>m * <usize>nSeg + <usize>g) << 4), acc);
        }
      }
      store4(acc, y + ((<usize>m * <usize>ldy + <usize>n) << 2), n, valid, bias);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Prefill GEMM (M ≥ 2 tokens): register-blocked, packed operands. The same integers per (row,
// token, segment) as qmm and the same epilogues, so results are bit-identical to qmm and the twin.
//
// Integer × integer only (modes 1, 2; weight-only prefill is qgemm_f32 below). Packing (BLIS-style):
// the host first compacts the prepared activations into one i16 plane (qx_pack16: u = 128·hi + lo,
// the code itself). Then, per row quad, qgemm widens the quad's codes once into an i16 panel (Kc·128 bytes,
// per chunk: low 8 codes of rows 0..3, then high 8 codes of rows 0..3) that stays in L1 while every
// token of an M block (≤ GEMM_BLOCK_BYTES of activations, L2-resident) streams past it. Micro-tile:
// 4 rows × 2 tokens, 8 i32x4 accumulators; per 8 positions 4 panel loads, 2 activation loads,
// 8 i32x4.dot_i16x8_s, 8 i32x4.add = 64 multiply-adds. The GEMV kernels instead unpack every weight
// byte per token (and take two dots, hi and lo, per 8 codes), which a GEMM cannot afford. Both GEMMs stop each
// segment at its last chunk of non-zero panel codes (panelEnds): the clusters' padding is skipped.
// ---------------------------------------------------------------------------------------------

/** Activation bytes per M block of qgemm (L2-resident; the panel is reused across the block). */
const GEMM_BLOCK_BYTES: i32 = 512 * 1024;

/**
 * Compact i16 plane of M prepared tokens (codes ≤ 255) for qgemm, zero point already subtracted:
 * a16[m·Kc·16 + j] = u − o (128·hi + lo − (128·Oh + Ol) of the token's segment) at padded position j,
 * so the GEMM's dot is P' = Σ q·(u − o) = P − o·Q itself (the same integer; no o·Q term per tile).
 */
export function qx_pack16(M: i32, nSeg: i32, segc: usize, act: usize, ap: usize, a16: usize): void {
  packCentered(false, M, nSeg, segc, act, ap, a16);
}

// The integer GEMMs' compact activations u − o (o = 128·Oh + Ol, the zero point of the token's segment) at every padded
// position: narrow, 16 i8 per chunk (codes ≤ 127, qgemm_u7); otherwise 16 i16 (u = 128·hi + lo, qgemm and qgemv_int).
// @ts-ignore: decorator
@inline function packCentered(narrow: bool, M: i32, nSeg: i32, segc: usize, act: usize, ap: usize, dst: usize): void {
  const Kc = <usize>load<i32>(segc + (<usize>nSeg << 2));
  for (let m = 0; m < M; m++) {
    for (let g = 0; g < nSeg; g++) {
      const pa = ap + ((<usize>m * <usize>nSeg + <usize>g) << 4);
      const o = (<i32>load<f32>(pa, 8) << 7) + <i32>load<f32>(pa, 12);
      const o8 = i8x16.splat(<i8>o), o16 = i16x8.splat(<i16>o);
      const j1 = <usize>m * Kc + <usize>load<i32>(segc + (<usize>g << 2), 4);
      for (let i = <usize>m * Kc + <usize>load<i32>(segc + (<usize>g << 2)); i < j1; i++) {
        const c = act + i * ACH;
        if (narrow) {
          v128.store(dst + (i << 4), i8x16.sub(v128.load(c, 32), o8));
        } else {
          const d = dst + (i << 5);
          v128.store(d, i16x8.sub(i16x8.add(i16x8.shl(v128.load(c, 64), 7), v128.load(c, 96)), o16));
          v128.store(d, i16x8.sub(i16x8.add(i16x8.shl(v128.load(c, 80), 7), v128.load(c, 112)), o16), 16);
        }
      }
    }
  }
}

// Epilogue of the integer GEMM: P' = Σ q·(u − o) (exact i32), v = f32(P') − z_w·D, acc += v·(s_w·s_a):
// the twin's integer × integer epilogue step for step.
// @ts-ignore: decorator
@inline function epilogueInt(P: v128, pw: usize, pa: usize, acc: v128): v128 {
  let v = f32x4.sub(f32x4.convert_i32x4_s(P), f32x4.mul(v128.load(pw, 16), f32x4.splat(load<f32>(pa, 4))));
  return f32x4.add(acc, f32x4.mul(v, f32x4.mul(v128.load(pw), f32x4.splat(load<f32>(pa)))));
}

// @ts-ignore: decorator
@inline function packPanel(bits: i32, w0: usize, rb: usize, Kc: i32, panel: usize): void {
  const cpb = chunksOf(bits), bb = blockBytesOf(bits), nb = Kc / cpb;
  for (let r = 0; r < 4; r++) {
    const wr = w0 + <usize>r * bb;
    for (let k = 0; k < nb; k++) {
      const p = wr + <usize>k * (bb << 2);
      for (let h = 0; h < cpb; h++) {
        const q = codesOf(bits, p, h);
        const d = panel + (<usize>(k * cpb + h) << 7) + (<usize>r << 4);
        v128.store(d, i16x8.extend_low_i8x16_u(q));
        v128.store(d, i16x8.extend_high_i8x16_u(q), 64);
      }
    }
  }
}

// The GEMMs' padding skip: ends[g] = one past the last chunk of segment g whose panel codes (4 rows) are not all 0.
// A chunk of zero codes adds q·x = 0 to every row's integer sum whatever the activations (in the u − o plane too), so
// the tiles stop at ends[g] and give the same integers. Such chunks are the padding of RPTQ's clusters: a cluster of
// 33 channels takes 64 u4 codes, and 768 channels in 32 clusters take ~1,400 (OPT-125m). Checked once per row quad
// (chunkBytes: the panel's bytes per chunk), before the M tokens of the block reuse the panel.
// @ts-ignore: decorator
@inline function panelEnds(nSeg: i32, segc: usize, panel: usize, chunkBytes: usize, ends: usize): void {
  for (let g = 0; g < nSeg; g++) {
    const j0 = load<i32>(segc + (<usize>g << 2));
    let e = load<i32>(segc + (<usize>g << 2), 4);
    for (; e > j0; e--) {
      const p = panel + <usize>(e - 1) * chunkBytes;
      let v = v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48)));
      if (chunkBytes == 128) v = v128.or(v, v128.or(v128.or(v128.load(p, 64), v128.load(p, 80)), v128.or(v128.load(p, 96), v128.load(p, 112))));
      if (v128.any_true(v)) break;
    }
    store<i32>(ends + (<usize>g << 2), e);
  }
}

/** Integer × integer tile: 4 panel rows × tokens m, m + 1 (a0, a1), all segments, stores y. */
// @ts-ignore: decorator
@inline function gemmInt2(nSeg: i32, segc: usize, ends: usize, panel: usize, wq: usize, a0: usize, a1: usize, ap0: usize, ap1: usize,
  y0: usize, y1: usize, n: i32, valid: i32, bias: usize): void {
  let acc0 = f32x4.splat(0), acc1 = acc0;
  for (let g = 0; g < nSeg; g++) {
    const j0 = <usize>load<i32>(segc + (<usize>g << 2)), j1 = <usize>load<i32>(ends + (<usize>g << 2));
    let c00 = i32x4.splat(0), c10 = c00, c20 = c00, c30 = c00, c01 = c00, c11 = c00, c21 = c00, c31 = c00;
    // 8 positions per step: p = 4 panel rows (16 bytes each), a0/a1 the two tokens' 8 values
    for (let e = j0 << 1; e < j1 << 1; e++) {
      const p = panel + (e << 6), o = e << 4;
      const x0 = v128.load(a0 + o), x1 = v128.load(a1 + o);
      let v = v128.load(p);
      c00 = i32x4.add(c00, i32x4.dot_i16x8_s(v, x0)); c01 = i32x4.add(c01, i32x4.dot_i16x8_s(v, x1));
      v = v128.load(p, 16);
      c10 = i32x4.add(c10, i32x4.dot_i16x8_s(v, x0)); c11 = i32x4.add(c11, i32x4.dot_i16x8_s(v, x1));
      v = v128.load(p, 32);
      c20 = i32x4.add(c20, i32x4.dot_i16x8_s(v, x0)); c21 = i32x4.add(c21, i32x4.dot_i16x8_s(v, x1));
      v = v128.load(p, 48);
      c30 = i32x4.add(c30, i32x4.dot_i16x8_s(v, x0)); c31 = i32x4.add(c31, i32x4.dot_i16x8_s(v, x1));
    }
    const pw = wq + <usize>g * 48, pg = <usize>g << 4;
    acc0 = epilogueInt(reduce4(c00, c10, c20, c30), pw, ap0 + pg, acc0);
    acc1 = epilogueInt(reduce4(c01, c11, c21, c31), pw, ap1 + pg, acc1);
  }
  store4(acc0, y0, n, valid, bias);
  store4(acc1, y1, n, valid, bias);
}

/** Integer × integer tile for one token (the odd token of M). */
// @ts-ignore: decorator
@inline function gemmInt1(nSeg: i32, segc: usize, ends: usize, panel: usize, wq: usize, a0: usize, ap0: usize,
  y0: usize, n: i32, valid: i32, bias: usize): void {
  let acc0 = f32x4.splat(0);
  for (let g = 0; g < nSeg; g++) {
    const j0 = <usize>load<i32>(segc + (<usize>g << 2)), j1 = <usize>load<i32>(ends + (<usize>g << 2));
    let c0 = i32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
    for (let j = j0; j < j1; j++) {
      const p = panel + (j << 7), o = j << 5;
      const x0 = v128.load(a0 + o), x1 = v128.load(a0 + o, 16);
      c0 = i32x4.add(c0, i32x4.add(i32x4.dot_i16x8_s(v128.load(p), x0), i32x4.dot_i16x8_s(v128.load(p, 64), x1)));
      c1 = i32x4.add(c1, i32x4.add(i32x4.dot_i16x8_s(v128.load(p, 16), x0), i32x4.dot_i16x8_s(v128.load(p, 80), x1)));
      c2 = i32x4.add(c2, i32x4.add(i32x4.dot_i16x8_s(v128.load(p, 32), x0), i32x4.dot_i16x8_s(v128.load(p, 96), x1)));
      c3 = i32x4.add(c3, i32x4.add(i32x4.dot_i16x8_s(v128.load(p, 48), x0), i32x4.dot_i16x8_s(v128.load(p, 112), x1)));
    }
    acc0 = epilogueInt(reduce4(c0, c1, c2, c3), wq + <usize>g * 48, ap0 + (<usize>g << 4), acc0);
  }
  store4(acc0, y0, n, valid, bias);
}

// @ts-ignore: decorator
@inline function gemmBody(bits: i32, M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, a16: usize, ap: usize, bias: usize, y: usize, ldy: i32, panel: usize): void {
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const lda = <usize>Kc << 5;
  const apS = <usize>nSeg << 4, yS = <usize>ldy << 2;
  const mb = max(2, (GEMM_BLOCK_BYTES / <i32>lda) & ~1);
  const ends = panel + (<usize>Kc << 7);
  for (let m0 = 0; m0 < M; m0 += mb) {
    const m1 = min(M, m0 + mb);
    for (let n = 0; n < N; n += 4) {
      packPanel(bits, w + <usize>n * rb, rb, Kc, panel);
      panelEnds(nSeg, segc, panel, 128, ends);
      const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
      const valid = min(4, N - n);
      const yn = y + (<usize>n << 2);
      let m = m0;
      for (; m + 2 <= m1; m += 2) {
        const a0 = a16 + <usize>m * lda, p0 = ap + <usize>m * apS, q0 = yn + <usize>m * yS;
        gemmInt2(nSeg, segc, ends, panel, wq, a0, a0 + lda, p0, p0 + apS, q0, q0 + yS, n, valid, bias);
      }
      if (m < m1) gemmInt1(nSeg, segc, ends, panel, wq, a16 + <usize>m * lda, ap + <usize>m * apS, yn + <usize>m * yS, n, valid, bias);
    }
  }
}

/**
 * Integer × integer qmm (modes 1, 2) for M ≥ 2 on packed operands: a16 from qx_pack16, panel = Kc·128 + 4·nSeg
 * bytes of scratch (one per thread: the unpacked row quad, then panelEnds' segment ends). Same arguments and bit-identical results as qmm otherwise.
 */
export function qgemm(M: i32, N: i32, nSeg: i32, segc: usize, bits: i32, w: usize, rb: i32,
  wp: usize, a16: usize, ap: usize, bias: usize, y: usize, ldy: i32, panel: usize): void {
  const r = <usize>rb;
  if (bits == 4) gemmBody(4, M, N, nSeg, segc, w, r, wp, a16, ap, bias, y, ldy, panel);
  else if (bits == 3) gemmBody(3, M, N, nSeg, segc, w, r, wp, a16, ap, bias, y, ldy, panel);
  else if (bits == 2) gemmBody(2, M, N, nSeg, segc, w, r, wp, a16, ap, bias, y, ldy, panel);
  else gemmBody(8, M, N, nSeg, segc, w, r, wp, a16, ap, bias, y, ldy, panel);
}

// Integer × integer GEMV (M = 1, modes 1/2: the decode step of A8/A4 recipes): the weight is read
// once, so it is unpacked in registers instead of into a panel; the activation is the same compact
// plane u − o as qgemm's (one i16 dot per 8 codes, where qmm's general kernel takes two, hi and lo).
// Per row quad and chunk: 4 × (unpack, 2 widens, 2 dots, 2 adds), 2 activation loads.

// @ts-ignore: decorator
@inline function dotCodes(q: v128, x0: v128, x1: v128, c: v128): v128 {
  return i32x4.add(c, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(q), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(q), x1)));
}

// @ts-ignore: decorator
@inline function dotChunk(bits: i32, p: usize, h: i32, x0: v128, x1: v128, c: v128): v128 {
  const q = codesOf(bits, p, h);
  return i32x4.add(c, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(q), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(q), x1)));
}

// @ts-ignore: decorator
@inline function gemvIntBody(bits: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, a16: usize, ap: usize, bias: usize, y: usize): void {
  const cpb = chunksOf(bits), bb = blockBytesOf(bits);
  const quads = <usize>((N + 3) >> 2), wEnd = w + quads * 4 * rb, wpEnd = wp + quads * <usize>nSeg * 48;
  let tw = touchStart(w), tp = touchStart(wp);
  for (let n = 0; n < N; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + bb, w2 = w1 + bb, w3 = w2 + bb;
    const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
    tw = touchStream(tw, w0 + 4 * rb, wEnd); tp = touchStream(tp, wq + <usize>nSeg * 48, wpEnd);
    let acc = f32x4.splat(0);
    for (let g = 0; g < nSeg; g++) {
      const k0 = load<i32>(segc + (<usize>g << 2)) / cpb, k1 = load<i32>(segc + (<usize>g << 2), 4) / cpb;
      let c0 = i32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
      if (bits == 4) {
        // u4: the quad's four 16-byte row blocks are one 64-byte line; load it once, split nibbles in registers
        const m15 = i8x16.splat(15);
        for (let k = k0; k < k1; k++) {
          const p = w0 + <usize>k * 64, xa = a16 + (<usize>k << 6);
          const r0 = v128.load(p), r1 = v128.load(p, 16), r2 = v128.load(p, 32), r3 = v128.load(p, 48);
          let x0 = v128.load(xa), x1 = v128.load(xa, 16);
          c0 = dotCodes(v128.and(r0, m15), x0, x1, c0); c1 = dotCodes(v128.and(r1, m15), x0, x1, c1);
          c2 = dotCodes(v128.and(r2, m15), x0, x1, c2); c3 = dotCodes(v128.and(r3, m15), x0, x1, c3);
          x0 = v128.load(xa, 32); x1 = v128.load(xa, 48);
          c0 = dotCodes(v128.and(i16x8.shr_u(r0, 4), m15), x0, x1, c0); c1 = dotCodes(v128.and(i16x8.shr_u(r1, 4), m15), x0, x1, c1);
          c2 = dotCodes(v128.and(i16x8.shr_u(r2, 4), m15), x0, x1, c2); c3 = dotCodes(v128.and(i16x8.shr_u(r3, 4), m15), x0, x1, c3);
        }
      } else if (bits == 8) {
        for (let k = k0; k < k1; k++) {
          const p = w0 + <usize>k * 64, xa = a16 + (<usize>k << 5);
          const x0 = v128.load(xa), x1 = v128.load(xa, 16);
          c0 = dotCodes(v128.load(p), x0, x1, c0); c1 = dotCodes(v128.load(p, 16), x0, x1, c1);
          c2 = dotCodes(v128.load(p, 32), x0, x1, c2); c3 = dotCodes(v128.load(p, 48), x0, x1, c3);
        }
      } else if (bits == 2) {
        const m3 = i8x16.splat(3);
        for (let k = k0; k < k1; k++) {
          const p = w0 + <usize>k * 64;
          const r0 = v128.load(p), r1 = v128.load(p, 16), r2 = v128.load(p, 32), r3 = v128.load(p, 48);
          for (let h = 0; h < 4; h++) {
            const xa = a16 + (<usize>((k << 2) + h) << 5), sh = <u32>(h << 1);
            const x0 = v128.load(xa), x1 = v128.load(xa, 16);
            c0 = dotCodes(v128.and(i16x8.shr_u(r0, sh), m3), x0, x1, c0); c1 = dotCodes(v128.and(i16x8.shr_u(r1, sh), m3), x0, x1, c1);
            c2 = dotCodes(v128.and(i16x8.shr_u(r2, sh), m3), x0, x1, c2); c3 = dotCodes(v128.and(i16x8.shr_u(r3, sh), m3), x0, x1, c3);
          }
        }
      } else {
        for (let k = k0; k < k1; k++) {
          const o = <usize>k * (bb << 2);
          for (let h = 0; h < cpb; h++) {
            const xa = a16 + (<usize>(k * cpb + h) << 5);
            const x0 = v128.load(xa), x1 = v128.load(xa, 16);
            c0 = dotChunk(bits, w0 + o, h, x0, x1, c0);
            c1 = dotChunk(bits, w1 + o, h, x0, x1, c1);
            c2 = dotChunk(bits, w2 + o, h, x0, x1, c2);
            c3 = dotChunk(bits, w3 + o, h, x0, x1, c3);
          }
        }
      }
      acc = epilogueInt(reduce4(c0, c1, c2, c3), wq + <usize>g * 48, ap + (<usize>g << 4), acc);
    }
    store4(acc, y + (<usize>n << 2), n, min(4, N - n), bias);
  }
}

/** Integer × integer qmm for one token (modes 1/2) on the plane from qx_pack16; same results as qmm. */
export function qgemv_int(N: i32, nSeg: i32, segc: usize, bits: i32, w: usize, rb: i32,
  wp: usize, a16: usize, ap: usize, bias: usize, y: usize): void {
  const r = <usize>rb;
  if (bits == 4) gemvIntBody(4, N, nSeg, segc, w, r, wp, a16, ap, bias, y);
  else if (bits == 3) gemvIntBody(3, N, nSeg, segc, w, r, wp, a16, ap, bias, y);
  else if (bits == 2) gemvIntBody(2, N, nSeg, segc, w, r, wp, a16, ap, bias, y);
  else gemvIntBody(8, N, nSeg, segc, w, r, wp, a16, ap, bias, y);
}

// Relaxed build, activation codes ≤ 127 (mode 1) and weight codes ≤ 15 (u4, u3, u2), on
// i16x8.relaxed_dot_i8x16_i7x16_s (one pmaddubsw on x64), 16 multiply-adds per instruction instead of
// i32x4.dot_i16x8_s's 8. Its first operand is the activation x = u − o (|x| ≤ 127: a signed i8, as the
// instruction's first operand is), its second the weight codes (0..15, in the i7 range the spec makes
// deterministic), so every engine's pairwise sums are exact (see USE_RELAXED_DOT; the backend's
// known-answer self-test covers x from −127 to 127 against codes 0 and 15, src/selftest.ts).
// |pair sums| ≤ 2·15·127 = 3810 per i16 lane: runs of ≤ 8 chunks sum in i16 (≤ 30480), then widen
// (i32x4.extadd_pairwise_i16x8_s). Panel: u8 codes, 64 bytes per chunk (rows 0..3); activations:
// u − o compacted to 16 bytes per chunk (qx_pack8). Tile 4 rows × 2 tokens: per chunk 4 panel loads,
// 2 activation loads, 8 dots, 8 i16 adds (+ the widening every 8 chunks). The integer
// P' = Σ q·(u − o) is the same as qgemm's, with the same epilogue (epilogueInt): with the zero point
// in the plane, the per-(row, token, segment) epilogue has no o·Q term.

/** a8[m·Kc·16 + j] = u − o as i8 (codes ≤ 127, o the zero point of the token's segment) at padded position j. */
export function qx_pack8(M: i32, nSeg: i32, segc: usize, act: usize, ap: usize, a8: usize): void {
  packCentered(true, M, nSeg, segc, act, ap, a8);
}

// @ts-ignore: decorator
@inline function packPanel8(bits: i32, w0: usize, rb: usize, Kc: i32, panel: usize): void {
  const cpb = chunksOf(bits), bb = blockBytesOf(bits), nb = Kc / cpb;
  for (let r = 0; r < 4; r++) {
    const wr = w0 + <usize>r * bb;
    for (let k = 0; k < nb; k++) {
      for (let h = 0; h < cpb; h++) v128.store(panel + (<usize>(k * cpb + h) << 6) + (<usize>r << 4), codesOf(bits, wr + <usize>k * (bb << 2), h));
    }
  }
}

// u7 tile: 4 panel rows × tokens at a0 and a1 (a1 = 0: a0 alone, the odd token of M), all segments, stores y0 (and y1).
// Two tokens share each panel load: per chunk 4 panel loads, 2 activation loads, 8 dots, 8 i16 adds.
// @ts-ignore: decorator
@inline function u7Tile(two: bool, nSeg: i32, segc: usize, ends: usize, panel: usize, wq: usize, a0: usize, a1: usize,
  pa0: usize, pa1: usize, y0: usize, y1: usize, n: i32, valid: i32, bias: usize): void {
  let acc0 = f32x4.splat(0), acc1 = acc0;
  for (let g = 0; g < nSeg; g++) {
    const j0 = load<i32>(segc + (<usize>g << 2)), j1 = load<i32>(ends + (<usize>g << 2));
    let I0 = i32x4.splat(0), I1 = I0, I2 = I0, I3 = I0, J0 = I0, J1 = I0, J2 = I0, J3 = I0;
    for (let jb = j0; jb < j1; jb += 8) {
      const je = <usize>min(jb + 8, j1);
      let S0 = i32x4.splat(0), S1 = S0, S2 = S0, S3 = S0, T0 = S0, T1 = S0, T2 = S0, T3 = S0;
      for (let j = <usize>jb; j < je; j++) {
        const p = panel + (j << 6), x = v128.load(a0 + (j << 4));
        const w0 = v128.load(p), w1 = v128.load(p, 16), w2 = v128.load(p, 32), w3 = v128.load(p, 48);
        S0 = i16x8.add(S0, i16x8.relaxed_dot_i8x16_i7x16_s(x, w0));
        S1 = i16x8.add(S1, i16x8.relaxed_dot_i8x16_i7x16_s(x, w1));
        S2 = i16x8.add(S2, i16x8.relaxed_dot_i8x16_i7x16_s(x, w2));
        S3 = i16x8.add(S3, i16x8.relaxed_dot_i8x16_i7x16_s(x, w3));
        if (two) {
          const z = v128.load(a1 + (j << 4));
          T0 = i16x8.add(T0, i16x8.relaxed_dot_i8x16_i7x16_s(z, w0));
          T1 = i16x8.add(T1, i16x8.relaxed_dot_i8x16_i7x16_s(z, w1));
          T2 = i16x8.add(T2, i16x8.relaxed_dot_i8x16_i7x16_s(z, w2));
          T3 = i16x8.add(T3, i16x8.relaxed_dot_i8x16_i7x16_s(z, w3));
        }
      }
      I0 = i32x4.add(I0, i32x4.extadd_pairwise_i16x8_s(S0));
      I1 = i32x4.add(I1, i32x4.extadd_pairwise_i16x8_s(S1));
      I2 = i32x4.add(I2, i32x4.extadd_pairwise_i16x8_s(S2));
      I3 = i32x4.add(I3, i32x4.extadd_pairwise_i16x8_s(S3));
      if (two) {
        J0 = i32x4.add(J0, i32x4.extadd_pairwise_i16x8_s(T0));
        J1 = i32x4.add(J1, i32x4.extadd_pairwise_i16x8_s(T1));
        J2 = i32x4.add(J2, i32x4.extadd_pairwise_i16x8_s(T2));
        J3 = i32x4.add(J3, i32x4.extadd_pairwise_i16x8_s(T3));
      }
    }
    acc0 = epilogueInt(reduce4(I0, I1, I2, I3), wq + <usize>g * 48, pa0 + (<usize>g << 4), acc0);
    if (two) acc1 = epilogueInt(reduce4(J0, J1, J2, J3), wq + <usize>g * 48, pa1 + (<usize>g << 4), acc1);
  }
  store4(acc0, y0, n, valid, bias);
  if (two) store4(acc1, y1, n, valid, bias);
}

// @ts-ignore: decorator
@inline function gemmU7Body(bits: i32, M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, a8: usize, ap: usize, bias: usize, y: usize, ldy: i32, panel: usize): void {
  if (!ASC_FEATURE_RELAXED_SIMD) return;
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const lda = <usize>Kc << 4, apS = <usize>nSeg << 4, yS = <usize>ldy << 2;
  const mb = max(2, (GEMM_BLOCK_BYTES / <i32>lda) & ~1);
  const ends = panel + (<usize>Kc << 6);
  for (let m0 = 0; m0 < M; m0 += mb) {
    const m1 = min(M, m0 + mb);
    for (let n = 0; n < N; n += 4) {
      packPanel8(bits, w + <usize>n * rb, rb, Kc, panel);
      panelEnds(nSeg, segc, panel, 64, ends);
      const wq = wp + <usize>(n >> 2) * <usize>nSeg * 48;
      const valid = min(4, N - n);
      const yn = y + (<usize>n << 2);
      let m = m0;
      for (; m + 2 <= m1; m += 2) {
        const a0 = a8 + <usize>m * lda, p0 = ap + <usize>m * apS, q0 = yn + <usize>m * yS;
        u7Tile(true, nSeg, segc, ends, panel, wq, a0, a0 + lda, p0, p0 + apS, q0, q0 + yS, n, valid, bias);
      }
      if (m < m1) u7Tile(false, nSeg, segc, ends, panel, wq, a8 + <usize>m * lda, 0, ap + <usize>m * apS, 0, yn + <usize>m * yS, 0, n, valid, bias);
    }
  }
}

/** Relaxed build only: integer qmm for activation codes ≤ 127 and u4/u3/u2 weights (a8 from qx_pack8, panel Kc·64 + 4·nSeg bytes per thread). */
export function qgemm_u7(M: i32, N: i32, nSeg: i32, segc: usize, bits: i32, w: usize, rb: i32,
  wp: usize, a8: usize, ap: usize, bias: usize, y: usize, ldy: i32, panel: usize): void {
  const r = <usize>rb;
  if (bits == 4) gemmU7Body(4, M, N, nSeg, segc, w, r, wp, a8, ap, bias, y, ldy, panel);
  else if (bits == 3) gemmU7Body(3, M, N, nSeg, segc, w, r, wp, a8, ap, bias, y, ldy, panel);
  else gemmU7Body(2, M, N, nSeg, segc, w, r, wp, a8, ap, bias, y, ldy, panel);
}

// ---------------------------------------------------------------------------------------------
// Weight-only prefill GEMM (mode 0, M ≥ QGEMM_F32_MIN_M tokens): dequantize, then the f32 GEMM.
// An exact integer GEMM needs two i16 dots (hi, lo planes of the 21-bit activation) per 8 codes,
// no faster than the GEMV kernels; instead each block of QF_ROWS weight rows is dequantized once
// into an f32 panel (ŵ = f32(s_w·(q − z_w)), L2-resident) and multiplied by the reconstructed
// activations x̂ = f32(s_a·(u − 2^20)) (the same 21-bit activations the integer path uses; padding
// positions are u = 2^20, so x̂ = 0 there) with sgemm_nt (assembly/f32.ts). Float result: it equals
// the integer twin within the f32 GEMM's rounding (bound in test/conformance/qmatmul.ts); rows are
// cut at multiples of 4, so 1 and n threads agree bit for bit.
// ---------------------------------------------------------------------------------------------

/** Weight rows dequantized per panel (QF_ROWS·ldx·4 bytes of per-thread scratch). */
export const QF_ROWS: i32 = 16;

/**
 * The f32 route's compaction: real[g] = how many leading positions of segment g the route keeps, i.e. up to the last
 * one whose prepared value is not u = 2^20 (x̂ = 0) in some token. The dropped tail (the segment's padding, and real
 * columns that are 0 in every token) only adds zero products, so the GEMM runs over Kr = Σ real[g] columns (the
 * returned value) instead of the padded Kc·16: RPTQ's clusters pad 768 inputs to ~1,400 codes.
 */
export function qx_real_f32(M: i32, nSeg: i32, segc: usize, act: usize, real: usize): i32 {
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  let total = 0;
  for (let g = 0; g < nSeg; g++) {
    const j0 = load<i32>(segc + (<usize>g << 2)) << 4;
    let e = load<i32>(segc + (<usize>g << 2), 4) << 4;
    for (; e > j0; e--) {
      const c = <usize>((e - 1) >> 4) * ACH + (<usize>((e - 1) & 15) << 1);
      let zero = true;
      for (let m = 0; m < M && zero; m++) {
        const p = act + <usize>m * <usize>Kc * ACH + c;
        zero = load<i16>(p, 64) == <i16>(OFF20 >> 7) && load<i16>(p, 96) == 0;
      }
      if (!zero) break;
    }
    store<i32>(real + (<usize>g << 2), e - j0);
    total += e - j0;
  }
  return total;
}

/**
 * x̂[m·ldx + o_g + i] = s_a[m, g]·(u − 2^20) for the first real[g] positions i of each segment g (o_g = Σ real before
 * g), for the M prepared tokens (weight-only prep). Whole 16-position chunks are written, so each row needs 16 values
 * of slack past Σ real (ldx ≥ Kr + 16); a segment's last chunk spills into the next one's start, which overwrites it.
 */
export function qx_unpack_f32(M: i32, nSeg: i32, segc: usize, act: usize, ap: usize, real: usize, xf: usize, ldx: i32): void {
  const Kc = load<i32>(segc + (<usize>nSeg << 2));
  const off = i32x4.splat(OFF20);
  for (let m = 0; m < M; m++) {
    const am = act + <usize>m * <usize>Kc * ACH, xm = xf + (<usize>m * <usize>ldx << 2);
    let o: usize = 0;
    for (let g = 0; g < nSeg; g++) {
      const sv = f32x4.splat(load<f32>(ap + ((<usize>m * <usize>nSeg + <usize>g) << 4)));
      const n = <usize>load<i32>(real + (<usize>g << 2));
      const j0 = <usize>load<i32>(segc + (<usize>g << 2)), j1 = j0 + ((n + 15) >> 4);
      for (let j = j0; j < j1; j++) {
        const c = am + j * ACH, d = xm + ((o + ((j - j0) << 4)) << 2);
        for (let h: usize = 0; h < 2; h++) {
          const hi = v128.load(c + (h << 4), 64), lo = v128.load(c + (h << 4), 96);
          const t0 = i32x4.sub(i32x4.add(i32x4.shl(i32x4.extend_low_i16x8_s(hi), 7), i32x4.extend_low_i16x8_s(lo)), off);
          const t1 = i32x4.sub(i32x4.add(i32x4.shl(i32x4.extend_high_i16x8_s(hi), 7), i32x4.extend_high_i16x8_s(lo)), off);
          v128.store(d + (h << 5), f32x4.mul(sv, f32x4.convert_i32x4_s(t0)));
          v128.store(d + (h << 5), f32x4.mul(sv, f32x4.convert_i32x4_s(t1)), 16);
        }
      }
      o += n;
    }
  }
}

// Weight rows dequantized into a panel laid out as qx_unpack_f32's x̂: the first real[g] codes of each segment, at the
// same compact offsets, row stride ldp (≥ Kr + 16: whole chunks are written, as there).
// @ts-ignore: decorator
@inline function dequantRows(bits: i32, w: usize, rb: usize, wq: usize, nSeg: i32, segc: usize, real: usize, ldp: i32, rows: i32, panel: usize): void {
  const cpb = chunksOf(bits), bb = blockBytesOf(bits), rowBytes = <usize>ldp << 2;
  for (let r = 0; r < rows; r++) {
    const wr = w + <usize>(r >> 2) * (rb << 2) + <usize>(r & 3) * bb, pr = panel + <usize>r * rowBytes, pq = wq + <usize>(r >> 2) * <usize>nSeg * 48 + (<usize>(r & 3) << 2);
    let o: usize = 0;
    for (let g = 0; g < nSeg; g++) {
      const sv = f32x4.splat(load<f32>(pq + <usize>g * 48)), zv = f32x4.splat(load<f32>(pq + <usize>g * 48, 16));
      const n = load<i32>(real + (<usize>g << 2));
      const c0 = load<i32>(segc + (<usize>g << 2)), c1 = c0 + ((n + 15) >> 4);
      for (let j = c0; j < c1; j++) {
        const k = j / cpb, h = j - k * cpb; // block k of the quad-interleaved row, chunk h in it
        const q = codesOf(bits, wr + <usize>k * (bb << 2), h);
        const d = pr + ((o + (<usize>(j - c0) << 4)) << 2);
        const lo = i16x8.extend_low_i8x16_u(q), hi = i16x8.extend_high_i8x16_u(q);
        v128.store(d, f32x4.mul(sv, f32x4.sub(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(lo)), zv)));
        v128.store(d, f32x4.mul(sv, f32x4.sub(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(lo)), zv)), 16);
        v128.store(d, f32x4.mul(sv, f32x4.sub(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(hi)), zv)), 32);
        v128.store(d, f32x4.mul(sv, f32x4.sub(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(hi)), zv)), 48);
      }
      o += <usize>n;
    }
  }
}

// @ts-ignore: decorator
@inline function gemmF32Body(bits: i32, M: i32, N: i32, nSeg: i32, segc: usize, w: usize, rb: usize,
  wp: usize, xf: usize, bias: usize, y: usize, ldy: i32, real: usize, Kr: i32, ldx: i32, panel: usize): void {
  for (let n = 0; n < N; n += QF_ROWS) {
    const rows = min(QF_ROWS, N - n);
    dequantRows(bits, w + <usize>n * rb, rb, wp + <usize>(n >> 2) * <usize>nSeg * 48, nSeg, segc, real, ldx, rows, panel);
    sgemm_nt(M, rows, Kr, xf, ldx, panel, ldx, y + (<usize>n << 2), ldy, bias ? bias + (<usize>n << 2) : 0);
  }
}

/**
 * Weight-only qmm on x̂ from qx_unpack_f32 (xf, M × ldx f32: Kr = Σ real[g] compact columns, qx_real_f32), the weight
 * dequantized QF_ROWS rows at a time into the same compact layout; panel = QF_ROWS·ldx·4 bytes per thread.
 */
export function qgemm_f32(M: i32, N: i32, nSeg: i32, segc: usize, bits: i32, w: usize, rb: i32,
  wp: usize, xf: usize, bias: usize, y: usize, ldy: i32, real: usize, Kr: i32, ldx: i32, panel: usize): void {
  const r = <usize>rb;
  if (bits == 4) gemmF32Body(4, M, N, nSeg, segc, w, r, wp, xf, bias, y, ldy, real, Kr, ldx, panel);
  else if (bits == 3) gemmF32Body(3, M, N, nSeg, segc, w, r, wp, xf, bias, y, ldy, real, Kr, ldx, panel);
  else if (bits == 2) gemmF32Body(2, M, N, nSeg, segc, w, r, wp, xf, bias, y, ldy, real, Kr, ldx, panel);
  else gemmF32Body(8, M, N, nSeg, segc, w, r, wp, xf, bias, y, ldy, real, Kr, ldx, panel);
}

/**
 * Weight-only y[m, n] (ldy in elements) for rows n < N of the packed weight against M prepared
 * tokens, one GEMV per token; bias = 0 means none. bits: 2, 3, 4 or 8 (the weight format); mode 0,
 * or 3 = mode 0 without the relaxed i8×i7 dot (the host's fallback when the dot fails its
 * self-test; bit-identical results). Integer × integer calls go to qgemv_int / qgemm (/ qgemm_u7),
 * many-token weight-only calls to qgemm_f32 (the host's route, src/wasm/qmatmul.ts qmmRoute).
 */
export function qmm(M: i32, N: i32, nSeg: i32, segc: usize, bits: i32, mode: i32, w: usize, rb: i32,
  wp: usize, act: usize, ap: usize, bias: usize, y: usize, ldy: i32): void {
  const r = <usize>rb, relaxed = ASC_FEATURE_RELAXED_SIMD && mode != 3;
  if (bits == 4) {
    if (relaxed) qmv4Relaxed(M, N, nSeg, segc, w, r, wp, act, ap, bias, y, ldy);
    else qmv4I16(M, N, nSeg, segc, w, r, wp, act, ap, bias, y, ldy);
  } else if (bits == 3) {
    if (relaxed) qmv3Relaxed(M, N, nSeg, segc, w, r, wp, act, ap, bias, y, ldy);
    else qmv3I16(M, N, nSeg, segc, w, r, wp, act, ap, bias, y, ldy);
  } else if (bits == 2) {
    if (relaxed) qmv2Relaxed(M, N, nSeg, segc, w, r, wp, act, ap, bias, y, ldy);
    else qmv2I16(M, N, nSeg, segc, w, r, wp, act, ap, bias, y, ldy);
  } else qmv8(M, N, nSeg, segc, w, r, wp, act, ap, bias, y, ldy);
}
