// Conformance of the qmatmul family (assembly/qmatmul.ts vs src/ref/qmatmul.ts): prepared
// activations (bytes, except the 16 unused ones per chunk, and per-segment params) and qmm outputs are bit-exact, for every weight format,
// every mode, odd row counts (partial row quads), several tokens, with and without bias.

import { expect, it } from 'vitest';
import fc from 'fast-check';
import type { SuiteContext } from './describeKernels.js';
import { floats, pattern } from './gen.js';
import { FORMATS, packedRowBytes, quadInterleave, type PackedFormat } from '../../src/quant/formats.js';
import { refQuant } from '../../src/ref/quant.js';
import { ACT_CHUNK_BYTES, type QmmMode } from '../../src/kernels/qmatmul.js';
import { QGEMM_F32_MIN_M, qmmRoute } from '../../src/wasm/qmatmul.js';

const RUNS = { numRuns: 40 };

/** codes [rows, Kp] → the kernels' quad-interleaved layout with row stride rb (≥ the packed row). */
function packWeight(format: PackedFormat, rows: number, Kp: number, codes: Uint8Array, rb: number): Uint8Array {
  const rowMajor = new Uint8Array(rows * packedRowBytes(format, Kp));
  refQuant.packCodes(rows, Kp, format, codes, rowMajor);
  return quadInterleave(format, rows, Kp, rowMajor, rb);
}

function setup(format: PackedFormat, nSeg: number, blocksPer: number[], K: number, seed: number) {
  const t = FORMATS[format], cpb = t.blockCodes / 16;
  const segc = new Int32Array(nSeg + 1);
  for (let g = 0; g < nSeg; g++) segc[g + 1] = segc[g]! + cpb * blocksPer[g]!;
  const Kp = segc[nSeg]! * 16;
  const gather = new Int32Array(Kp);
  let s = seed >>> 0 || 1;
  for (let j = 0; j < Kp; j++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; gather[j] = (s >>> 8) % 5 === 0 ? -1 : (s >>> 8) % K; }
  if (seed & 2) {
    // runs of consecutive columns, as in a layer without a permutation (the kernels' one-load path),
    // each segment's tail padded, some runs reaching past column K − 1 (padding there too)
    for (let g = 0; g < nSeg; g++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const j0 = segc[g]! * 16, j1 = segc[g + 1]! * 16, start = (s >>> 8) % K, pad = (s >>> 4) % 7;
      for (let j = j0; j < j1; j++) gather[j] = j < j1 - pad && start + j - j0 < K ? start + j - j0 : -1;
    }
  }
  return { segc, gather, Kp };
}

export function qmatmulSuite({ backend, ref }: SuiteContext): void {
  const k = () => backend().kernels;

  it('firstOutside (the gather check) equals the twin: odd lengths, zeros, constant runs, a single huge outlier anywhere', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 83 }), fc.integer({ min: -3, max: 40 }), fc.integer({ min: 0, max: 50 }),
      fc.constantFrom('random', 'zeros', 'constant', 'edges'), fc.option(fc.tuple(fc.nat(), fc.constantFrom(-(2 ** 31), 2 ** 31 - 1, -2, 41, 1e6))),
      fc.integer(),
      (n, lo, span, kind, outlier, seed) => {
        const hi = lo + span;
        let s = seed >>> 0 || 1;
        const x = Int32Array.from({ length: n }, (_, i) => {
          s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
          if (kind === 'zeros') return 0;
          if (kind === 'constant') return lo;
          if (kind === 'edges') return i % 2 ? lo : hi;
          return lo + ((s >>> 8) % (span + 1));
        });
        if (outlier && n > 0) x[outlier[0] % n] = outlier[1];
        const want = ref.firstOutside(n, x, lo, hi);
        expect(k().firstOutside(n, x, lo, hi)).toBe(want);
        // the twin itself: the first index outside, by definition
        expect(want).toBe(x.findIndex((v) => v < lo || v > hi));
      }), { numRuns: 300 });
    expect(() => k().firstOutside(4, new Int32Array(3), 0, 1)).toThrow(/firstOutside: x has 3 elements, needs at least 4/);
    expect(() => k().firstOutside(1, new Int32Array(1), 2, 1)).toThrow(/lo 2 .. hi 1/);
  });

  it('a gather entry outside -1 .. K-1 is E_RANGE naming the entry, in every prep, before the kernel runs', () => {
    const { segc, gather } = setup('u4', 2, [1, 2, 1, 1], 37, 5);
    for (const [j, v] of [[0, 37], [gather.length - 1, -2], [17, 2 ** 31 - 1]] as const) {
      const g = gather.slice(); g[j] = v;
      const act = new Uint8Array(segc[2]! * ACT_CHUNK_BYTES), ap = new Float32Array(8);
      const msg = new RegExp(`gather\\[${j}\\] = ${v} is outside -1 .. 36`);
      expect(() => k().qPrepF32(1, 37, new Float32Array(37), 2, segc, g, act, ap)).toThrow(msg);
      expect(() => k().qPrepCodes(1, 37, new Uint8Array(37), 2, segc, g, new Float32Array(2).fill(1), new Uint8Array(2), 1, 4, act, ap)).toThrow(msg);
      expect(() => k().qPrepQuant(1, 37, new Float32Array(37), 2, segc, g, new Float32Array(2).fill(1), new Uint8Array(2), 1, 4, act, ap)).toThrow(msg);
      expect(act.every((b) => b === 0)).toBe(true);
    }
  });

  it('qPrepF32 / qPrepCodes / qmm match the twin for every format and mode (bit-exact; the weight-only GEMM route within f32 rounding)', () => {
    fc.assert(fc.property(
      fc.constantFrom<PackedFormat>('u2', 'u3', 'u4', 'u8'), fc.constantFrom<QmmMode>(0, 1, 2), fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 11 }), fc.integer({ min: 1, max: 9 }), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }),
      pattern, fc.integer(), fc.boolean(),
      (format, mode, nSeg, N, M, blocksPer, p, seed, withBias) => checkQmm(format, mode, nSeg, N, M, blocksPer, p, seed, withBias, 37)), RUNS);
  });

  it('qPrepQuant (f32 in) equals quantizePack → unpackCodes → qPrepCodes bit for bit, and the twin', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }),
      fc.constantFrom(2, 4, 7, 8), fc.integer({ min: 1, max: 2 }), pattern, fc.integer(), fc.boolean(),
      (nSeg, M, blocksPer, bitsA, period, p, seed, nan) => {
        const K = 37, { segc, gather, Kp } = setup('u8', nSeg, blocksPer, K, seed & ~2), Kc = segc[nSeg]!;
        // gather may repeat columns and leave some out; columns in segment order for quantizePack's offsets:
        // one column per padded position (the qlinear layout), so use the identity over the real positions
        const cols = Kp, g2 = Int32Array.from(gather, (v, j) => (v < 0 ? -1 : j));
        const x = floats(M * cols, p, seed, 10, cols);
        if (nan) x[Math.abs(seed) % x.length] = NaN;
        const offsets = Int32Array.from({ length: nSeg + 1 }, (_, g) => segc[g]! * 16);
        const rowPeriod = period === 1 ? 1 : M, slots = Math.min(rowPeriod, M) * nSeg, qmax = 2 ** bitsA - 1;
        const scale = Float32Array.from({ length: slots }, (_, i) => (i % 3 === 0 ? 1e-3 : 0.05 * (1 + (i % 5))));
        const zero = Uint8Array.from({ length: slots }, (_, i) => (i * 37 + seed) >>> 0 & qmax);
        const fmt = bitsA <= 2 ? 'u2' : bitsA <= 4 ? 'u4' : 'u8';
        const qs = new Uint8Array(M * packedRowBytes(fmt, cols)), codes = new Uint8Array(M * cols);
        k().quantizePack(M, cols, x, nSeg, offsets, scale, zero, rowPeriod, bitsA, fmt, qs);
        k().unpackCodes(M, cols, fmt, qs, codes);
        const act = () => new Uint8Array(M * Kc * ACT_CHUNK_BYTES), apOf = () => new Float32Array(M * nSeg * 4);
        const aC = act(), pC = apOf(), aQ = act(), pQ = apOf(), aW = act(), pW = apOf();
        k().qPrepCodes(M, cols, codes, nSeg, segc, g2, scale, zero, rowPeriod, bitsA, aC, pC);
        k().qPrepQuant(M, cols, x, nSeg, segc, g2, scale, zero, rowPeriod, bitsA, aQ, pQ);
        ref.qPrepQuant(M, cols, x, nSeg, segc, g2, scale, zero, rowPeriod, bitsA, aW, pW);
        expect(firstDiff(aQ, aC), `act vs composition`).toBe(-1);
        expect(firstDiff(aQ, aW), `act vs twin`).toBe(-1);
        for (let i = 0; i < pC.length; i++) {
          expect(Object.is(pQ[i], pC[i]) && Object.is(pQ[i], pW[i]), `ap[${i}] ${pQ[i]} ${pC[i]} ${pW[i]}`).toBe(true);
        }
      }), RUNS);
  });

  // Many tokens run the GEMMs (src/wasm/qmatmul.ts qmmRoute): integer × integer 2-token tiles, the
  // odd token, several M blocks of GEMM_BLOCK_BYTES (512 KiB of i16 activations: 1024 codes → 256
  // tokens per block); weight-only: 16-row dequantized panels and the f32 GEMM.
  it('qmm on many tokens (GEMM routes, M blocks, odd M) matches the twin for every format and mode', () => {
    fc.assert(fc.property(
      fc.constantFrom<PackedFormat>('u2', 'u3', 'u4', 'u8'), fc.constantFrom<QmmMode>(0, 1, 2), fc.integer({ min: 257, max: 300 }),
      fc.integer({ min: 1, max: 6 }), pattern, fc.integer(),
      (format, mode, M, N, p, seed) => {
        const cpb = FORMATS[format].blockCodes / 16, blocks = 64 / cpb;
        checkQmm(format, mode, 2, N, M, [blocks - 1, 1, 1, 1], p, seed, (seed & 4) !== 0, 700);
      }), { numRuns: 6 });
  });

  function checkQmm(format: PackedFormat, mode: QmmMode, nSeg: number, N: number, M: number, blocksPer: number[],
    p: Parameters<typeof floats>[1], seed: number, withBias: boolean, K: number): void {
        const { segc, gather, Kp } = setup(format, nSeg, blocksPer, K, seed);
        const Kc = segc[nSeg]!;
        // the packer's layout (seed & 8): a whole padding chunk ends every segment of ≥ 2 chunks, as RPTQ's clusters
        // padded to u4 blocks have, and padding positions hold code 0, which the integer GEMMs skip (panelEnds); with
        // seed & 16 also a segment of all-zero codes in the first row quad (a chunk of zero codes that is not padding)
        const zeroPad = (seed & 8) !== 0, zeroSeg = (seed & 16) !== 0;
        if (zeroPad) for (let g = 0; g < nSeg; g++) if (segc[g + 1]! - segc[g]! >= 2) gather.fill(-1, (segc[g + 1]! - 1) * 16, segc[g + 1]! * 16);
        const actG = new Uint8Array(M * Kc * ACT_CHUNK_BYTES).fill(0x5a), actW = new Uint8Array(M * Kc * ACT_CHUNK_BYTES);
        const apG = new Float32Array(M * nSeg * 4).fill(NaN), apW = new Float32Array(M * nSeg * 4);
        if (mode === 0) {
          const x = floats(M * K, p, seed, 10, K);
          k().qPrepF32(M, K, x, nSeg, segc, gather, actG, apG);
          ref.qPrepF32(M, K, x, nSeg, segc, gather, actW, apW);
        } else {
          const bitsA = mode === 1 ? 7 : 8, qmax = 2 ** bitsA - 1;
          const codes = Uint8Array.from({ length: M * K }, (_, i) => (i * 2654435761 + seed) >>> 0 & qmax);
          if (p === 'outlier') codes.fill(qmax);
          const scale = Float32Array.from({ length: M * nSeg }, (_, i) => 0.01 * (i + 1));
          const zero = Uint8Array.from({ length: M * nSeg }, (_, i) => (i * 97 + seed) >>> 0 & qmax);
          k().qPrepCodes(M, K, codes, nSeg, segc, gather, scale, zero, M, bitsA, actG, apG);
          ref.qPrepCodes(M, K, codes, nSeg, segc, gather, scale, zero, M, bitsA, actW, apW);
        }
        for (let i = 0; i < actW.length; i++) if (((i & 127) < 48 || (i & 127) >= 64) && actG[i] !== actW[i]) expect(`act[${i}] = ${actG[i]}`).toBe(`${actW[i]}`);
        for (let i = 0; i < apW.length; i++) if (!Object.is(apG[i], apW[i])) expect(`ap[${i}] = ${apG[i]}`).toBe(`${apW[i]}`);
        // weights: random codes (max codes on 'outlier'), params with exact Q
        const t = FORMATS[format], qmax = format === 'u8' ? 255 : 2 ** t.bits - 1;
        const rows = Math.ceil(N / 4) * 4, rb = packedRowBytes(format, Kp) + (seed & 1) * 16;
        const codes = Uint8Array.from({ length: rows * Kp }, (_, i) => {
          const j = i % Kp;
          if ((zeroPad && gather[j]! < 0) || (zeroSeg && i < 4 * Kp && j < segc[1]! * 16)) return 0;
          return p === 'outlier' ? qmax : ((i * 40503 + seed) >>> 3) % (qmax + 1);
        });
        const w = packWeight(format, rows, Kp, codes, rb);
        const wp = new Float32Array((rows / 4) * nSeg * 12);
        for (let r = 0; r < rows; r++) for (let g = 0; g < nSeg; g++) {
          let Q = 0;
          for (let j = segc[g]! * 16; j < segc[g + 1]! * 16; j++) Q += codes[r * Kp + j]!;
          const o = ((r >> 2) * nSeg + g) * 12 + (r & 3);
          wp[o] = Math.fround(0.001 * (1 + ((r * 7 + g) % 5))); wp[o + 4] = (r + g) % (qmax + 1); wp[o + 8] = Q;
        }
        const bias = withBias ? floats(N, 'random', seed + 1) : null;
        const ldy = N + (seed & 2);
        const yG = new Float32Array(M * ldy).fill(7), yW = new Float32Array(M * ldy).fill(7);
        k().qmm(M, N, nSeg, segc, format, mode, w, rb, wp, actW, apW, bias, yG, ldy);
        ref.qmm(M, N, nSeg, segc, format, mode, w, rb, wp, actW, apW, bias, yW, ldy);
        if (k().name === 'js' || qmmRoute(M, mode) !== 'f32') {
          for (let i = 0; i < yW.length; i++) if (!Object.is(yG[i], yW[i])) expect(`${format} mode ${mode} M ${M} y[${i}] = ${yG[i]}`).toBe(`${yW[i]}`);
          return;
        }
        // Weight-only GEMM route (dequantize, f32 GEMM): equal to the integer twin within f32 rounding.
        // With T = Σ_g |s_w·s_a|·(qmax + |z|)·Σ_{j∈g} |u_j − 2^20| (≥ Σ|ŵ·x̂|, and bounding the twin's
        // epilogue terms too): |Δ| ≤ (Kp + 16)·2⁻²⁴·T + 2⁻²³·|y|. Outside the rows (ldy padding) y is untouched.
        for (let m = 0; m < M; m++) for (let n = 0; n < ldy; n++) {
          const i = m * ldy + n;
          if (n >= N) { expect(yG[i]).toBe(7); continue; }
          let T = 0;
          for (let g = 0; g < nSeg; g++) {
            const o = ((n >> 2) * nSeg + g) * 12 + (n & 3), pa = (m * nSeg + g) * 4;
            let su = 0;
            for (let j = segc[g]! * 16; j < segc[g + 1]! * 16; j++) {
              const c = m * Kc * ACT_CHUNK_BYTES + (j >> 4) * ACT_CHUNK_BYTES, l = j & 15;
              const u = (actW[c + 64 + 2 * l]! | (actW[c + 65 + 2 * l]! << 8)) * 128 + actW[c + 96 + 2 * l]!;
              su += Math.abs(u - 2 ** 20);
            }
            T += Math.abs(wp[o]! * apW[pa]!) * (qmax + Math.abs(wp[o + 4]!)) * su;
          }
          const tol = (Kp + 16) * 2 ** -24 * T + 2 ** -23 * Math.abs(yW[i]!);
          if (!(Math.abs(yG[i]! - yW[i]!) <= tol)) expect(`${format} M ${M} y[${m}, ${n}] = ${yG[i]}`).toBe(`${yW[i]} ± ${tol}`);
        }
  }

  // The specialised u4 / u3 / u2 weight-only kernels (qmv4I16 / qmv4Relaxed / qmv3* / qmv2*): long
  // segments (4-, 2- and 8-block i16 runs plus tails), partial row quads, all-max codes against all-127 limbs (the
  // i16 partial-sum bound), zeros, constant rows and outliers.
  it('u4 / u3 / u2 weight-only qmm (specialised kernels) are bit-exact on long segments, partial quads, extreme codes', () => {
    fc.assert(fc.property(
      fc.constantFrom<PackedFormat>('u4', 'u2', 'u3'), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: QGEMM_F32_MIN_M - 1 }),
      fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 3, maxLength: 3 }), pattern,
      fc.constantFrom('random', 'max', 'zero', 'alt'), fc.integer(), fc.boolean(),
      (format, nSeg, N, M, blocksPer, p, wpat, seed, withBias) => {
        const K = 301;
        const { segc, gather, Kp } = setup(format, nSeg, blocksPer, K, seed);
        const Kc = segc[nSeg]!;
        // the packer's layout (seed & 8): a whole padding chunk ends every segment of ≥ 2 chunks, as RPTQ's clusters
        // padded to u4 blocks have, and padding positions hold code 0, which the integer GEMMs skip (panelEnds); with
        // seed & 16 also a segment of all-zero codes in the first row quad (a chunk of zero codes that is not padding)
        const zeroPad = (seed & 8) !== 0, zeroSeg = (seed & 16) !== 0;
        if (zeroPad) for (let g = 0; g < nSeg; g++) if (segc[g + 1]! - segc[g]! >= 2) gather.fill(-1, (segc[g + 1]! - 1) * 16, segc[g + 1]! * 16);
        const x = floats(M * K, p, seed, 10, K);
        const act = new Uint8Array(M * Kc * ACT_CHUNK_BYTES), ap = new Float32Array(M * nSeg * 4);
        ref.qPrepF32(M, K, x, nSeg, segc, gather, act, ap);
        const rows = Math.ceil(N / 4) * 4, rb = packedRowBytes(format, Kp) + (seed & 1) * 16;
        const qmax = format === 'u4' ? 15 : format === 'u3' ? 7 : 3;
        const codes = Uint8Array.from({ length: rows * Kp }, (_, i) =>
          wpat === 'max' ? qmax : wpat === 'zero' ? 0 : wpat === 'alt' ? ((i >> 4) & 1) * qmax : ((i * 40503 + seed) >>> 3) & qmax);
        const w = packWeight(format, rows, Kp, codes, rb);
        const wp = new Float32Array((rows / 4) * nSeg * 12);
        for (let r = 0; r < rows; r++) for (let g = 0; g < nSeg; g++) {
          let Q = 0;
          for (let j = segc[g]! * 16; j < segc[g + 1]! * 16; j++) Q += codes[r * Kp + j]!;
          const o = ((r >> 2) * nSeg + g) * 12 + (r & 3);
          wp[o] = Math.fround(0.003 * (1 + ((r * 5 + g) % 7))); wp[o + 4] = (r * 3 + g) & qmax; wp[o + 8] = Q;
        }
        const bias = withBias ? floats(N, 'random', seed + 1) : null;
        const ldy = N + (seed & 2);
        const yG = new Float32Array(M * ldy).fill(7), yW = new Float32Array(M * ldy).fill(7);
        k().qmm(M, N, nSeg, segc, format, 0, w, rb, wp, act, ap, bias, yG, ldy);
        ref.qmm(M, N, nSeg, segc, format, 0, w, rb, wp, act, ap, bias, yW, ldy);
        for (let i = 0; i < yW.length; i++) if (!Object.is(yG[i], yW[i])) expect(`${format} ${wpat} ${p} y[${i}] = ${yG[i]}`).toBe(`${yW[i]}`);
      }), RUNS);
  });
}

/** First index where two activation-chunk arrays differ (bytes 48..63 of each 128-byte chunk are unused), or −1. */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (((i & 127) < 48 || (i & 127) >= 64) && a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : a.length;
}
