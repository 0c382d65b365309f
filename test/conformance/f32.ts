// Conformance of the f32 kernel family (assembly/f32.ts vs src/ref/f32.ts).
//
// Tolerances:
// - GEMM: |c − c_ref| ≤ 2·K·u·Σ_k |a_k·b_k| + 1e-30, u = 2⁻²⁴ (twice the classic γ_K bound for a
//   length-K dot product in f32; the reference accumulates in f64, so it is the more exact side).
// - add, mul, addRow, relu, gatherRows, argmax: bit-exact (single IEEE operations, no reassociation).
// - gelu: |Δ| ≤ 2⁻²¹·max(1, |x|) (both compute in f64; exp may differ in the last f64 bit).
// - layerNorm: |Δ| ≤ 1e-4·(1 + |γ|·(1 + |x̂|)) + 1e-6·|β| + |γ|·2·cols·u·max|x|·rstd (f32 two-pass vs
//   f64 statistics; the last term is the f32 rounding of the mean, amplified by rstd = 1/sqrt(var+eps),
//   which is large for constant rows).
// - softmax: |Δ| ≤ 1e-6 + 1e-5·|p| (probabilities; Mathf.exp vs f64 exp).
// - attention: per output element, Σ_j (p_j·(2ε + 2e-5) + 1e-7)·|v_j| + 2·n·u·Σ_j p_j·|v_j| + 1e-7, with
//   ε = max_j 2·hs·u·Σ_i|q_i·k_ji| (score rounding, doubled through the max-subtracted softmax) and p the
//   twin's probabilities; with a probability grid (levels > 0) a probability within its own error bound
//   (p_j·(2ε + 2e-5) + 1e-7, in grid steps, plus 1e-4) of a rounding boundary may land on the other grid
//   point, adding |v_j|/levels for each such j.
// - peakF32: bit-exact for the baseline build, 1e-5 relative when the relaxed build may fuse.

import { expect, it } from 'vitest';
import fc from 'fast-check';
import type { SuiteContext } from './describeKernels.js';
import { dim, dim1, floats, pattern, sameFloat, firstMismatch } from './gen.js';
import type { PackedRows } from '../../src/kernels/f32.js';
import { refQuant } from '../../src/ref/quant.js';
import { FORMATS, packedRowBytes, type PackedFormat } from '../../src/quant/formats.js';

const U = 2 ** -24;
const RUNS = { numRuns: 60 };

export function f32Suite({ backend, ref }: SuiteContext): void {
  const k = () => backend().kernels;

  for (const trans of [true, false]) {
    const name = trans ? 'sgemmNT' : 'sgemmNN';
    it(`${name} matches the reference within 2·K·u·Σ|a·b|`, () => {
      fc.assert(fc.property(dim(24), dim(40), dim(70), fc.nat(3), fc.nat(3), pattern, pattern, fc.integer(), fc.boolean(),
        (M, N, K, padA, padB, pa, pb, seed, withBias) => {
          const lda = K + padA, ldb = (trans ? K : N) + padB, ldc = N;
          const a = floats(Math.max(0, M * lda), pa, seed, 4, lda);
          const b = floats(trans ? N * ldb : K * ldb, pb, seed + 1, 4, ldb);
          const bias = withBias ? floats(N, 'random', seed + 2) : null;
          const got = new Float32Array(M * N).fill(NaN), want = new Float32Array(M * N);
          k()[name](M, N, K, a, lda, b, ldb, got, ldc, bias);
          ref[name](M, N, K, a, lda, b, ldb, want, ldc, bias);
          const bad = firstMismatch(M * N, (i) => {
            const m = Math.floor(i / N), n = i % N;
            let absSum = bias ? Math.abs(bias[n]!) : 0;
            for (let kk = 0; kk < K; kk++) {
              const bv = trans ? b[n * ldb + kk]! : b[kk * ldb + n]!;
              absSum += Math.abs(a[m * lda + kk]! * bv);
            }
            return Math.abs(got[i]! - want[i]!) <= 2 * Math.max(K, 1) * U * absSum + 1e-30;
          });
          expect(bad, `M=${M} N=${N} K=${K} at ${bad}: ${got[bad]} vs ${want[bad]}`).toBe(-1);
        }), RUNS);
    });
  }

  it('sgemmNT on a B that is the transpose of sgemmNN\'s B gives the same product', () => {
    fc.assert(fc.property(dim1(9), dim1(20), dim1(40), fc.integer(), (M, N, K, seed) => {
      const a = floats(M * K, 'random', seed), bKN = floats(K * N, 'random', seed + 1);
      const bNK = new Float32Array(N * K);
      for (let kk = 0; kk < K; kk++) for (let n = 0; n < N; n++) bNK[n * K + kk] = bKN[kk * N + n]!;
      const c1 = new Float32Array(M * N), c2 = new Float32Array(M * N);
      k().sgemmNN(M, N, K, a, K, bKN, N, c1, N, null);
      k().sgemmNT(M, N, K, a, K, bNK, K, c2, N, null);
      // each side is within 2·K·u·Σ|a·b| of the exact product and |a|,|b| ≤ 10, so Σ|a·b| ≤ 100·K
      for (let i = 0; i < M * N; i++) expect(Math.abs(c1[i]! - c2[i]!)).toBeLessThanOrEqual(4 * K * U * 100 * K);
    }), RUNS);
  });

  it('sgemmNT leaves the padding between rows of C untouched (ldc > N)', () => {
    const M = 3, N = 5, K = 6, ldc = 8;
    const a = floats(M * K, 'random', 1), b = floats(N * K, 'random', 2);
    const c = new Float32Array(M * ldc).fill(7);
    k().sgemmNT(M, N, K, a, K, b, K, c, ldc, null);
    for (let m = 0; m < M; m++) for (let j = N; j < ldc; j++) expect(c[m * ldc + j]).toBe(7);
  });

  for (const op of ['add', 'mul'] as const) {
    it(`${op} is bit-exact`, () => {
      fc.assert(fc.property(dim(70), pattern, pattern, fc.integer(), (n, pa, pb, seed) => {
        const a = floats(n, pa, seed), b = floats(n, pb, seed + 1);
        const got = new Float32Array(n), want = new Float32Array(n);
        k()[op](n, a, b, got);
        ref[op](n, a, b, want);
        expect(firstMismatch(n, (i) => sameFloat(got[i]!, want[i]!))).toBe(-1);
      }), RUNS);
    });
  }

  it('addRow is bit-exact', () => {
    fc.assert(fc.property(dim(9), dim(40), pattern, fc.integer(), (rows, cols, p, seed) => {
      const x = floats(rows * cols, p, seed, 10, cols), row = floats(cols, 'random', seed + 1);
      const got = new Float32Array(rows * cols), want = new Float32Array(rows * cols);
      k().addRow(rows, cols, x, row, got);
      ref.addRow(rows, cols, x, row, want);
      expect(firstMismatch(rows * cols, (i) => sameFloat(got[i]!, want[i]!))).toBe(-1);
    }), RUNS);
  });

  it('relu is bit-exact and propagates NaN', () => {
    fc.assert(fc.property(dim(70), pattern, fc.integer(), fc.boolean(), (n, p, seed, nan) => {
      const x = floats(n, p, seed);
      if (nan && n > 0) x[seed % n < 0 ? 0 : seed % n] = NaN;
      const got = new Float32Array(n), want = new Float32Array(n);
      k().relu(n, x, got);
      ref.relu(n, x, want);
      expect(firstMismatch(n, (i) => sameFloat(got[i]!, want[i]!))).toBe(-1);
      for (let i = 0; i < n; i++) if (Number.isNaN(x[i]!)) expect(got[i]).toBeNaN();
    }), RUNS);
  });

  it('gelu matches within 2⁻²¹·max(1,|x|), and gelu(x) − gelu(−x) = x', () => {
    fc.assert(fc.property(dim(70), pattern, fc.integer(), (n, p, seed) => {
      const x = floats(n, p, seed, 6);
      const got = new Float32Array(n), want = new Float32Array(n), neg = new Float32Array(n);
      k().gelu(n, x, got);
      ref.gelu(n, x, want);
      k().gelu(n, x.map((v) => -v), neg);
      for (let i = 0; i < n; i++) {
        const tol = 2 ** -21 * Math.max(1, Math.abs(x[i]!));
        expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(tol);
        expect(Math.abs(got[i]! - neg[i]! - x[i]!)).toBeLessThanOrEqual(4 * tol + 1e-6 * Math.abs(x[i]!));
      }
    }), RUNS);
  });

  it('layerNorm matches the reference; with γ=1, β=0 rows have mean 0 and variance ≈ 1', () => {
    fc.assert(fc.property(dim(6), dim1(70), pattern, fc.integer(), fc.boolean(), (rows, cols, p, seed, affine) => {
      const x = floats(rows * cols, p, seed, 10, cols);
      const gamma = affine ? floats(cols, 'random', seed + 1, 3) : null;
      const beta = affine ? floats(cols, 'random', seed + 2, 3) : null;
      const got = new Float32Array(rows * cols), want = new Float32Array(rows * cols);
      k().layerNorm(rows, cols, x, gamma, beta, 1e-5, got);
      ref.layerNorm(rows, cols, x, gamma, beta, 1e-5, want);
      for (let i = 0; i < rows * cols; i++) {
        const c = i % cols, r = Math.floor(i / cols);
        const row = Array.from(x.subarray(r * cols, r * cols + cols));
        const mean = row.reduce((s, v) => s + v, 0) / cols;
        const rstd = 1 / Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / cols + 1e-5);
        const maxAbs = Math.max(...row.map(Math.abs));
        const g = gamma ? Math.abs(gamma[c]!) : 1, bta = beta ? Math.abs(beta[c]!) : 0;
        const xhat = Math.abs((want[i]! - (beta ? beta[c]! : 0)) / (gamma && gamma[c] !== 0 ? gamma[c]! : 1));
        const tol = 1e-4 * (1 + g * (1 + xhat)) + 1e-6 * bta + g * 2 * cols * U * maxAbs * rstd;
        expect(Math.abs(got[i]! - want[i]!), `row ${r} col ${c}`).toBeLessThanOrEqual(tol);
      }
      if (!affine) {
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let c = 0; c < cols; c++) s += got[r * cols + c]!;
          expect(Math.abs(s / cols)).toBeLessThan(1e-3);
        }
      }
    }), RUNS);
  });

  it('softmax matches the reference, rows sum to 1, masked columns are 0', () => {
    fc.assert(fc.property(dim(9), dim1(70), pattern, fc.integer(), fc.integer({ min: -1, max: 12 }), (rows, cols, p, seed, causal) => {
      const x = floats(rows * cols, p, seed, 8, cols);
      const got = new Float32Array(rows * cols), want = new Float32Array(rows * cols);
      k().softmax(rows, cols, x, got, causal);
      ref.softmax(rows, cols, x, want, causal);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let c = 0; c < cols; c++) {
          const i = r * cols + c;
          expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(want[i]!));
          if (causal >= 0 && c > r + causal) expect(got[i]).toBe(0);
          s += got[i]!;
        }
        expect(Math.abs(s - 1)).toBeLessThan(1e-5);
      }
    }), RUNS);
  });

  it('attention (fused, all heads) matches the unfused twin within the stated bound; masked and non-causal keys get no weight', () => {
    fc.assert(fc.property(dim1(4), dim1(20), dim1(5), dim1(40), fc.nat(3), pattern, fc.integer(), fc.integer({ min: -1, max: 40 }),
      fc.boolean(), fc.constantFrom(0, 0, 255, 15), (H, hs, T, L, pad, pat, seed, causal, masked, levels) => {
        const w = H * hs, ld = w + pad;
        const q = floats(T * ld, pat, seed, 4, ld), kc = floats(L * ld, pat, seed + 1, 4, ld), v = floats(L * ld, pat, seed + 2, 4, ld);
        const keyMask = masked ? Uint8Array.from({ length: L }, (_, j) => ((j * 7 + seed) % 3 === 0 ? 0 : 1)) : null;
        const got = new Float32Array(T * ld).fill(NaN), want = new Float32Array(T * ld).fill(NaN);
        k().attention(H, hs, T, L, q, ld, kc, ld, v, got, ld, causal, keyMask, levels);
        ref.attention(H, hs, T, L, q, ld, kc, ld, v, want, ld, causal, keyMask, levels);
        expectWithinAttentionBound(ref, got, want, H, hs, T, L, q, ld, kc, ld, v, causal, keyMask, levels);
        // padding columns of out are left alone
        for (let t = 0; t < T; t++) for (let c = w; c < ld; c++) expect(got[t * ld + c]).toBeNaN();
      }), RUNS);
  });

  it('attention with one visible key returns that value row; bad shapes are LowbitErrors', () => {
    const H = 2, hs = 3, L = 4, q = floats(H * hs, 'random', 1), kc = floats(L * H * hs, 'random', 2), v = floats(L * H * hs, 'random', 3);
    const out = new Float32Array(H * hs);
    k().attention(H, hs, 1, L, q, H * hs, kc, H * hs, v, out, H * hs, 0, null, 0); // causal 0: only key 0
    expect([...out]).toEqual([...v.subarray(0, H * hs)]);
    expect(() => k().attention(H, hs, 1, L, q, H * hs - 1, kc, H * hs, v, out, H * hs, 0, null, 0)).toThrow(/ldq 5 is less than the 2 heads × 3 = 6 columns/);
    expect(() => k().attention(H, hs, 1, L, q, H * hs, kc.subarray(1), H * hs, v, out, H * hs, 0, null, 0)).toThrow(/k has 23 elements, needs at least 24/);
    expect(() => k().attention(H, hs, 1, 0, q, H * hs, kc, H * hs, v, out, H * hs, 0, null, 0)).toThrow(/needs H, hs and L >= 1/);
    expect(() => k().attention(H, hs, 1, L, q, H * hs, kc, H * hs, v, out, H * hs, 0, new Uint8Array(3), 0)).toThrow(/keyMask has 3 elements/);
    expect(() => k().attention(H, hs, 1, L, q, H * hs, kc, H * hs, v, out, H * hs, 0.5, null, 0)).toThrow(/causal offset must be an integer, got 0.5/);
    expect(() => k().attention(H, hs, 1, L, q, H * hs, kc, H * hs, v, out, H * hs, 0, null, 65536)).toThrow(/levels must be at most 65535/);
    expect(() => k().attention(H, hs, 1, L, q, H * hs, kc, H * hs, v, out, H * hs, 0, null, -1)).toThrow(/levels must be a non-negative integer, got -1/);
    // the instance still computes after the rejected calls
    k().attention(H, hs, 1, L, q, H * hs, kc, H * hs, v, out, H * hs, 0, null, 0);
    expect([...out]).toEqual([...v.subarray(0, H * hs)]);
  });

  it('attentionPacked equals dequantizeUnpack + attention bit for bit, and the twin within the attention bound', () => {
    fc.assert(fc.property(dim1(4), fc.oneof(dim1(20), fc.constantFrom(16, 32, 48, 64)), dim1(4), dim1(30), fc.nat(3),
      fc.constantFrom<PackedFormat>('u2', 'u3', 'u4', 'u8'), fc.constantFrom<PackedFormat>('u2', 'u3', 'u4', 'u8'),
      fc.constantFrom('random', 'random', 'zeros', 'outlier'), pattern, fc.integer(), fc.integer({ min: -1, max: 30 }), fc.boolean(),
      fc.constantFrom(0, 0, 255, 15), (H, hs, T, L, pad, kf, vf, codes, pat, seed, causal, masked, levels) => {
        const w = H * hs, ld = w + pad;
        const q = floats(T * ld, pat, seed, 4, ld);
        const kc = packedRows(kf, L, w, codes, seed + 1), vc = packedRows(vf, L, w, codes, seed + 2);
        const keyMask = masked ? Uint8Array.from({ length: L }, (_, j) => ((j * 7 + seed) % 3 === 0 ? 0 : 1)) : null;
        const got = new Float32Array(T * ld).fill(NaN), comp = new Float32Array(T * ld).fill(NaN), want = new Float32Array(T * ld).fill(NaN);
        k().attentionPacked(H, hs, T, L, q, ld, kc, vc, got, ld, causal, keyMask, levels);
        // the same backend's unfused path
        const kx = new Float32Array(L * w), vx = new Float32Array(L * w);
        k().dequantizeUnpack(L, w, kc.format, kc.data, kc.nSeg, kc.offsets, kc.scale, kc.zero, 1, kx);
        k().dequantizeUnpack(L, w, vc.format, vc.data, vc.nSeg, vc.offsets, vc.scale, vc.zero, 1, vx);
        k().attention(H, hs, T, L, q, ld, kx, w, vx, comp, ld, causal, keyMask, levels);
        const bad = firstMismatch(T * ld, (i) => sameFloat(got[i]!, comp[i]!));
        expect(bad, `H${H} hs${hs} T${T} L${L} ${kf}/${vf} at ${bad}: ${got[bad]} vs ${comp[bad]}`).toBe(-1);
        ref.attentionPacked(H, hs, T, L, q, ld, kc, vc, want, ld, causal, keyMask, levels);
        expectWithinAttentionBound(ref, got, want, H, hs, T, L, q, ld, kx, w, vx, causal, keyMask, levels);
      }), RUNS);
  });

  it('attentionPacked rejects bad packed rows with LowbitErrors and keeps computing', () => {
    const H = 2, hs = 8, L = 3, w = H * hs, q = floats(w, 'random', 1), out = new Float32Array(w);
    const kc = packedRows('u4', L, w, 'random', 1), vc = packedRows('u3', L, w, 'random', 2);
    const run = (kk: PackedRows, vv: PackedRows) => k().attentionPacked(H, hs, 1, L, q, w, kk, vv, out, w, -1, null, 0);
    expect(() => run({ ...kc, data: kc.data.subarray(1) }, vc)).toThrow(/k\.data has 47 elements, needs at least 48/);
    expect(() => run(kc, { ...vc, format: 'u5' as PackedFormat })).toThrow(/attentionPacked.*u5/);
    expect(() => run({ ...kc, offsets: Int32Array.from([0, 9, 8, 16]), nSeg: 3 }, vc)).toThrow(/attentionPacked k: offsets must strictly increase/);
    expect(() => run(kc, { ...vc, scale: new Float32Array(vc.nSeg) })).toThrow(/attentionPacked v: scale\[0\] must be finite and > 0/);
    expect(() => run({ ...kc, zero: new Uint8Array(kc.nSeg).fill(16) }, vc)).toThrow(/zero\[0\] = 16 is above the largest code 15/);
    expect(() => run({ ...kc, data: Array.from(kc.data) as unknown as Uint8Array }, vc)).toThrow(/k must be packed rows/);
    run(kc, vc);
    const want = new Float32Array(w);
    ref.attentionPacked(H, hs, 1, L, q, w, kc, vc, want, w, -1, null, 0);
    expectWithinAttentionBound(ref, out, want, H, hs, 1, L, q, w, dequant(kc, L, w), w, dequant(vc, L, w), -1, null, 0);
  });

  it('attentionBf16 equals widening to f32 + attention bit for bit, and the twin within the attention bound', () => {
    fc.assert(fc.property(dim1(4), fc.oneof(dim1(20), fc.constantFrom(8, 16, 64)), dim1(4), dim1(30), fc.nat(3), pattern,
      fc.integer(), fc.integer({ min: -1, max: 30 }), fc.boolean(), fc.constantFrom(0, 0, 255, 15),
      (H, hs, T, L, pad, pat, seed, causal, masked, levels) => {
        const w = H * hs, ld = w + pad;
        const q = floats(T * ld, pat, seed, 4, ld);
        const kb = new Uint16Array(L * ld), vb = new Uint16Array(L * ld);
        ref.toBf16(L * ld, floats(L * ld, pat, seed + 1, 4, ld), kb);
        ref.toBf16(L * ld, floats(L * ld, pat, seed + 2, 4, ld), vb);
        const keyMask = masked ? Uint8Array.from({ length: L }, (_, j) => ((j * 7 + seed) % 3 === 0 ? 0 : 1)) : null;
        const got = new Float32Array(T * ld).fill(NaN), comp = new Float32Array(T * ld).fill(NaN), want = new Float32Array(T * ld).fill(NaN);
        k().attentionBf16(H, hs, T, L, q, ld, kb, ld, vb, got, ld, causal, keyMask, levels);
        // the same backend on the widened rows (bits << 16)
        const kx = widen(kb), vx = widen(vb);
        k().attention(H, hs, T, L, q, ld, kx, ld, vx, comp, ld, causal, keyMask, levels);
        const bad = firstMismatch(T * ld, (i) => sameFloat(got[i]!, comp[i]!));
        expect(bad, `H${H} hs${hs} T${T} L${L} pad${pad} at ${bad}: ${got[bad]} vs ${comp[bad]}`).toBe(-1);
        ref.attentionBf16(H, hs, T, L, q, ld, kb, ld, vb, want, ld, causal, keyMask, levels);
        expectWithinAttentionBound(ref, got, want, H, hs, T, L, q, ld, kx, ld, vx, causal, keyMask, levels);
      }), RUNS);
  });

  it('attentionBf16 rejects f32 caches and short rows with LowbitErrors and keeps computing', () => {
    const H = 2, hs = 8, L = 3, w = H * hs, q = floats(w, 'random', 1), out = new Float32Array(w);
    const kb = new Uint16Array(L * w), vb = new Uint16Array(L * w);
    ref.toBf16(L * w, floats(L * w, 'random', 2), kb);
    ref.toBf16(L * w, floats(L * w, 'random', 3), vb);
    const run = (kk: Uint16Array, vv: Uint16Array) => k().attentionBf16(H, hs, 1, L, q, w, kk, w, vv, out, w, -1, null, 0);
    expect(() => run(new Float32Array(L * w) as unknown as Uint16Array, vb)).toThrow(/E_DTYPE.*attentionBf16: k must be a Uint16Array of bf16 bits, got Float32Array/);
    expect(() => run(kb, vb.subarray(1))).toThrow(/attentionBf16: v has 47 elements, needs at least 48/);
    run(kb, vb);
    const want = new Float32Array(w);
    ref.attentionBf16(H, hs, 1, L, q, w, kb, w, vb, want, w, -1, null, 0);
    expectWithinAttentionBound(ref, out, want, H, hs, 1, L, q, w, widen(kb), w, widen(vb), -1, null, 0);
  });

  it('toBf16 is bit-exact against the twin: ties to even, ±inf, overflow, NaN payloads, subnormals, odd lengths', () => {
    // f32 bit patterns around every rounding case: ties (low half 0x8000) with even and odd kept bits, just above and
    // below a tie, the largest finite value (rounds to inf), ±inf, NaNs (quiet, signalling, negative, payload only in
    // the dropped half), subnormals, ±0
    const special = [0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f800000, 0xff800000,
      0x7fc00000, 0x7f800001, 0xffc00001, 0x7fa00000, 0x00000001, 0x80008000, 0x00018000, 0x00000000, 0x80000000];
    const bitsArb = fc.oneof(fc.constantFrom(...special), fc.integer({ min: 0, max: 0xffffffff }));
    fc.assert(fc.property(fc.array(bitsArb, { maxLength: 70 }), pattern, fc.integer(), fc.boolean(), (bits, pat, seed, mixed) => {
      const x = mixed ? floats(bits.length, pat, seed, 1e4) : new Float32Array(Uint32Array.from(bits).buffer);
      if (mixed) for (let i = 0; i < bits.length; i += 3) new Uint32Array(x.buffer)[i] = bits[i]!;
      const got = new Uint16Array(x.length + 1).fill(0xabcd), want = new Uint16Array(x.length);
      k().toBf16(x.length, x, got);
      ref.toBf16(x.length, x, want);
      const bad = firstMismatch(x.length, (i) => got[i] === want[i]);
      expect(bad, `at ${bad}: x bits ${new Uint32Array(x.buffer)[bad]?.toString(16)}: ${got[bad]?.toString(16)} vs ${want[bad]?.toString(16)}`).toBe(-1);
      expect(got[x.length]).toBe(0xabcd); // nothing written past n
    }), RUNS);
    // known answers: round half to even, overflow to inf, a NaN stays a quiet NaN with its sign
    const x = new Float32Array(Uint32Array.from([0x3f808000, 0x3f818000, 0x7f7fffff, 0x7f800001, 0xff800001, 0x00018000]).buffer);
    const out = new Uint16Array(6);
    k().toBf16(6, x, out);
    expect([...out].map((v) => v.toString(16))).toEqual(['3f80', '3f82', '7f80', '7fc0', 'ffc0', '2']);
    expect(() => k().toBf16(2, x, new Float32Array(2) as unknown as Uint16Array)).toThrow(/E_DTYPE.*toBf16: out must be a Uint16Array/);
    expect(() => k().toBf16(7, x, new Uint16Array(7))).toThrow(/toBf16: x has 6 elements, needs at least 7/);
  });

  it('gatherRows is bit-exact', () => {
    fc.assert(fc.property(dim1(12), dim(33), dim(10), fc.integer(), (vocab, d, n, seed) => {
      const table = floats(vocab * d, 'random', seed);
      const ids = Int32Array.from({ length: n }, (_, i) => Math.abs(seed + i * 7) % vocab);
      const got = new Float32Array(n * d), want = new Float32Array(n * d);
      k().gatherRows(n, d, table, ids, got);
      ref.gatherRows(n, d, table, ids, want);
      expect(Array.from(got)).toEqual(Array.from(want));
    }), RUNS);
  });

  it('argmax picks the first maximum (a NaN counts as the maximum), as the reference', () => {
    fc.assert(fc.property(dim(9), dim1(40), pattern, fc.integer(), fc.boolean(), (rows, cols, p, seed, nan) => {
      const x = floats(rows * cols, p, seed, 10, cols);
      if (nan && rows * cols > 0) x[Math.abs(seed) % (rows * cols)] = NaN;
      const got = new Int32Array(rows), want = new Int32Array(rows);
      k().argmax(rows, cols, x, got);
      ref.argmax(rows, cols, x, want);
      expect(Array.from(got)).toEqual(Array.from(want));
      for (let r = 0; r < rows; r++) {
        const row = Array.from(x.subarray(r * cols, r * cols + cols));
        const firstNaN = row.findIndex((v) => Number.isNaN(v));
        expect(got[r]).toBe(firstNaN >= 0 ? firstNaN : row.indexOf(Math.max(...row)));
      }
    }), RUNS);
  });

  it('peakF32 probe matches its twin', () => {
    const fused = backend().info.name === 'relaxed';
    fc.assert(fc.property(fc.nat(300), (iters) => {
      const got = k().peakF32(iters, fused), want = ref.peakF32(iters, fused);
      if (fused) expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-5 * Math.abs(want));
      else expect(got).toBe(want);
    }), { numRuns: 20 });
  });
}

/**
 * out (got, T rows at stride ld) against the twin's (want) within the stated attention bound, computed from the f32
 * q, k and v (k/v rows at stride ldk) and the twin's probabilities before any grid.
 */
function expectWithinAttentionBound(ref: SuiteContext['ref'], got: Float32Array, want: Float32Array, H: number, hs: number, T: number,
  L: number, q: Float32Array, ld: number, kc: Float32Array, ldk: number, v: Float32Array, causal: number,
  keyMask: Uint8Array | null, levels: number): void {
  const att = new Float32Array(T * L);
  for (let h = 0; h < H; h++) {
    ref.sgemmNT(T, L, hs, q.subarray(h * hs), ld, kc.subarray(h * hs), ldk, att, L, null);
    let eps = 0;
    for (let j = 0; j < L; j++) {
      for (let t = 0; t < T; t++) {
        let a = 0;
        for (let i = 0; i < hs; i++) a += Math.abs(q[t * ld + h * hs + i]! * kc[j * ldk + h * hs + i]!);
        eps = Math.max(eps, 2 * hs * U * a);
      }
    }
    if (keyMask) for (let t = 0; t < T; t++) for (let j = 0; j < L; j++) if (!keyMask[j]) att[t * L + j] = -3.4028234663852886e38;
    ref.softmax(T, L, att, att, causal);
    for (let t = 0; t < T; t++) {
      const n = causal < 0 ? L : Math.min(L, causal + t + 1);
      for (let d = 0; d < hs; d++) {
        let bound = 1e-7, pv = 0;
        for (let j = 0; j < n; j++) {
          const p = att[t * L + j]!, av = Math.abs(v[j * ldk + h * hs + d]!), pErr = p * (2 * eps + 2e-5) + 1e-7;
          bound += pErr * av;
          pv += p * av;
          if (levels > 0) {
            // a probability within its own error (in grid steps) of a rounding boundary may land on either side
            const x = p * levels, fr = x - Math.floor(x);
            if (Math.abs(fr - 0.5) <= levels * pErr + 1e-4 * Math.max(1, x)) bound += av / levels;
          }
        }
        bound += 2 * n * U * pv;
        const i = t * ld + h * hs + d;
        if (!(Math.abs(got[i]! - want[i]!) <= bound)) {
          throw new Error(`attention H${H} hs${hs} T${T} L${L} causal ${causal} levels ${levels}: out[${t}, ${h}, ${d}] = ${got[i]}, twin ${want[i]}, bound ${bound}`);
        }
      }
    }
  }
}

/**
 * rows × cols packed codes in `format`: random bytes (every byte pattern is valid codes), all zero, or random with
 * one segment on a huge scale; 1–6 random segments with scales over six decades and random zero points.
 */
function packedRows(format: PackedFormat, rows: number, cols: number, codes: string, seed: number): PackedRows {
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32; };
  const data = new Uint8Array(rows * packedRowBytes(format, cols));
  if (codes !== 'zeros') for (let i = 0; i < data.length; i++) data[i] = Math.floor(next() * 256);
  const cuts = new Set<number>();
  for (let i = Math.floor(next() * Math.min(cols - 1, 6)); i > 0; i--) cuts.add(1 + Math.floor(next() * (cols - 1)));
  const offsets = Int32Array.from([0, ...[...cuts].sort((a, b) => a - b), cols]), nSeg = offsets.length - 1;
  const qmax = 2 ** FORMATS[format].bits - 1;
  const scale = Float32Array.from({ length: nSeg }, () => 10 ** (next() * 6 - 4));
  if (codes === 'outlier') scale[Math.floor(next() * nSeg)] = 1e4;
  const zero = Uint8Array.from({ length: nSeg }, () => (codes === 'zeros' ? 0 : Math.floor(next() * (qmax + 1))));
  return { format, data, nSeg, offsets, scale, zero };
}

/** The twin's f32 rows of packed rows. */
/** bf16 bits widened to f32 (bits << 16). */
function widen(b: Uint16Array): Float32Array {
  const out = new Float32Array(b.length), u = new Uint32Array(out.buffer);
  for (let i = 0; i < b.length; i++) u[i] = b[i]! << 16;
  return out;
}

function dequant(p: PackedRows, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  refQuant.dequantizeUnpack(rows, cols, p.format, p.data, p.nSeg, p.offsets, p.scale, p.zero, 1, out);
  return out;
}
