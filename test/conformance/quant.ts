// Conformance of the quantization kernel family (assembly/quant.ts vs src/ref/quant.ts).
// Every result is bit-exact: ranges (min/max are exact), codes (both sides compute
// nearest(x / s) + z in f32), packed bytes, and dequantized floats (one f32 multiply).

import { expect, it } from 'vitest';
import fc from 'fast-check';
import type { SuiteContext } from './describeKernels.js';
import { dim, dim1, floats, pattern, sameFloat, firstMismatch } from './gen.js';
import { FORMATS, packedRowBytes, type PackedFormat } from '../../src/quant/formats.js';
import { LowbitError } from '../../src/errors.js';

const RUNS = { numRuns: 60 };
const FMTS: PackedFormat[] = ['u2', 'u3', 'u4', 'u8'];
const fmt = fc.constantFrom(...FMTS);

/** Random strictly increasing offsets 0 .. cols with nSeg segments (1 ≤ nSeg ≤ cols). */
function offsetsOf(cols: number, seed: number): Int32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32; };
  const cuts = new Set<number>();
  const want = cols <= 1 ? 0 : Math.floor(next() * Math.min(cols - 1, 9));
  for (let i = 0; i < want; i++) cuts.add(1 + Math.floor(next() * (cols - 1)));
  return Int32Array.from([0, ...[...cuts].sort((a, b) => a - b), cols]);
}

/** Per-slot (scale, zero) from the data's own per-(row, segment) ranges, plus some tiny/huge scales. */
function paramsFor(x: Float32Array, rows: number, cols: number, off: Int32Array, rowPeriod: number, bits: number, seed: number) {
  const nSeg = off.length - 1, slots = Math.max(1, Math.min(rowPeriod, rows) * nSeg);
  const qmax = 2 ** bits - 1;
  const scale = new Float32Array(slots), zero = new Uint8Array(slots);
  for (let p = 0; p < slots; p++) {
    const s = p % nSeg;
    let mn = 0, mx = 0;
    for (let r = Math.floor(p / nSeg); r < rows; r += rowPeriod) {
      for (let i = off[s]!; i < off[s + 1]!; i++) {
        const v = x[r * cols + i]!;
        if (Number.isFinite(v)) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
      }
    }
    let sc = Math.fround((mx - mn) / qmax);
    if (!(sc > 0)) sc = 1;
    if ((seed + p) % 11 === 0) sc = Math.fround(sc * 1e-3); // mostly clipped: exercises the clamp
    scale[p] = sc;
    zero[p] = Math.min(qmax, Math.max(0, Math.round(-mn / sc)));
  }
  return { scale, zero };
}

export function quantSuite({ backend, ref }: SuiteContext): void {
  const k = () => backend().kernels;

  it('rangeSegments is bit-exact and propagates NaN', () => {
    fc.assert(fc.property(dim(6), dim1(70), pattern, fc.integer(), fc.boolean(), (rows, cols, p, seed, nan) => {
      const x = floats(rows * cols, p, seed, 10, cols);
      if (nan && rows > 0) x[Math.abs(seed) % (rows * cols)] = NaN;
      const off = offsetsOf(cols, seed), nSeg = off.length - 1;
      const gMin = new Float32Array(rows * nSeg), gMax = new Float32Array(rows * nSeg);
      const wMin = new Float32Array(rows * nSeg), wMax = new Float32Array(rows * nSeg);
      k().rangeSegments(rows, cols, x, nSeg, off, gMin, gMax);
      ref.rangeSegments(rows, cols, x, nSeg, off, wMin, wMax);
      expect(firstMismatch(rows * nSeg, (i) => sameFloat(gMin[i]!, wMin[i]!) && sameFloat(gMax[i]!, wMax[i]!))).toBe(-1);
    }), RUNS);
  });

  it('quantizePack gives the reference bytes for every format, bit width, segmentation and row period', () => {
    fc.assert(fc.property(dim(7), dim1(300), fc.integer({ min: 2, max: 8 }), pattern, fc.integer(), fc.boolean(), fc.boolean(),
      (rows, cols, bits, p, seed, perRow, nan) => {
        const format = bits === 2 ? 'u2' : bits === 3 ? 'u3' : bits === 4 ? 'u4' : 'u8';
        const x = floats(rows * cols, p, seed, 10, cols);
        if (nan && rows > 0) { x[Math.abs(seed) % (rows * cols)] = NaN; x[Math.abs(seed * 7) % (rows * cols)] = -Infinity; }
        const off = offsetsOf(cols, seed), nSeg = off.length - 1;
        const rowPeriod = perRow ? Math.max(rows, 1) : 1;
        const { scale, zero } = paramsFor(x, rows, cols, off, rowPeriod, bits, seed);
        const n = rows * packedRowBytes(format, cols);
        const got = new Uint8Array(n).fill(0xa5), want = new Uint8Array(n);
        k().quantizePack(rows, cols, x, nSeg, off, scale, zero, rowPeriod, bits, format, got);
        ref.quantizePack(rows, cols, x, nSeg, off, scale, zero, rowPeriod, bits, format, want);
        const bad = firstMismatch(n, (i) => got[i] === want[i]);
        expect(bad, `rows=${rows} cols=${cols} bits=${bits} byte ${bad}: ${got[bad]} vs ${want[bad]}`).toBe(-1);
      }), RUNS);
  });

  it('packCodes / unpackCodes are bit-exact inverses on every format (row tails padded with 0)', () => {
    fc.assert(fc.property(dim(5), dim1(300), fmt, fc.integer(), (rows, cols, format, seed) => {
      const qmax = 2 ** FORMATS[format].bits - 1;
      const codes = Uint8Array.from({ length: rows * cols }, (_, i) => ((i * 2654435761 + seed) >>> 7) % (qmax + 1));
      const n = rows * packedRowBytes(format, cols);
      const got = new Uint8Array(n).fill(0xff), want = new Uint8Array(n);
      k().packCodes(rows, cols, format, codes, got);
      ref.packCodes(rows, cols, format, codes, want);
      expect(firstMismatch(n, (i) => got[i] === want[i])).toBe(-1);
      const back = new Uint8Array(rows * cols), backRef = new Uint8Array(rows * cols);
      k().unpackCodes(rows, cols, format, got, back);
      ref.unpackCodes(rows, cols, format, want, backRef);
      expect(firstMismatch(rows * cols, (i) => back[i] === codes[i] && backRef[i] === codes[i])).toBe(-1);
    }), RUNS);
  });

  it('dequantizeUnpack is bit-exact', () => {
    fc.assert(fc.property(dim(6), dim1(200), fmt, pattern, fc.integer(), fc.boolean(), (rows, cols, format, p, seed, perRow) => {
      const bits = FORMATS[format].bits;
      const x = floats(rows * cols, p, seed, 10, cols);
      const off = offsetsOf(cols, seed), nSeg = off.length - 1;
      const rowPeriod = perRow ? Math.max(rows, 1) : 1;
      const { scale, zero } = paramsFor(x, rows, cols, off, rowPeriod, bits, seed);
      const packed = new Uint8Array(rows * packedRowBytes(format, cols));
      ref.quantizePack(rows, cols, x, nSeg, off, scale, zero, rowPeriod, bits, format, packed);
      const got = new Float32Array(rows * cols).fill(NaN), want = new Float32Array(rows * cols);
      k().dequantizeUnpack(rows, cols, format, packed, nSeg, off, scale, zero, rowPeriod, got);
      ref.dequantizeUnpack(rows, cols, format, packed, nSeg, off, scale, zero, rowPeriod, want);
      expect(firstMismatch(rows * cols, (i) => Object.is(got[i], want[i]) || got[i] === want[i])).toBe(-1);
    }), RUNS);
  });

  it('rejects bad arguments before any kernel runs', () => {
    const x = new Float32Array(8), off = Int32Array.from([0, 4, 8]), scale = new Float32Array([1, 1]), zero = new Uint8Array(2);
    const out = new Uint8Array(16);
    const code = (fn: () => void) => { try { fn(); } catch (e) { expect(e).toBeInstanceOf(LowbitError); return (e as LowbitError).code; } return 'none'; };
    expect(code(() => k().quantizePack(1, 8, x, 2, off, scale, zero, 1, 9, 'u8', out))).toBe('E_ARG');
    expect(code(() => k().quantizePack(1, 8, x, 2, off, scale, zero, 1, 5, 'u4', out))).toBe('E_ARG');
    expect(code(() => k().quantizePack(1, 8, x, 2, Int32Array.from([0, 5, 4]), scale, zero, 1, 4, 'u4', out))).toBe('E_ARG');
    expect(code(() => k().quantizePack(1, 8, x, 2, Int32Array.from([0, 4, 9]), scale, zero, 1, 4, 'u4', out))).toBe('E_ARG');
    expect(code(() => k().quantizePack(1, 8, x, 2, off, new Float32Array([1, 0]), zero, 1, 4, 'u4', out))).toBe('E_ARG');
    expect(code(() => k().quantizePack(1, 8, x, 2, off, scale, Uint8Array.from([0, 16]), 1, 4, 'u4', out))).toBe('E_RANGE');
    expect(code(() => k().quantizePack(2, 8, x, 2, off, scale, zero, 1, 4, 'u4', out))).toBe('E_SHAPE');
    expect(code(() => k().quantizePack(1, 8, x, 2, off, scale, zero, 1, 4, 'u4', new Uint8Array(15)))).toBe('E_SHAPE');
    expect(code(() => k().packCodes(1, 8, 'u4', Uint8Array.from([0, 1, 2, 16, 0, 0, 0, 0]), out))).toBe('E_RANGE');
    expect(code(() => k().unpackCodes(1, 8, 'u5' as PackedFormat, out, new Uint8Array(8)))).toBe('E_ARG');
  });
}
