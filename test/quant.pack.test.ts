// Packed formats: hand-derived byte layouts, real memory footprint, and the bad-input errors.

import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor.js';
import { LowbitError } from '../src/errors.js';
import { createBackend } from '../src/runtime.js';
import {
  FORMATS, packedBytes, quantize, quantizedByteLength, calibrate, minMaxObserver, movingAverageMinMaxObserver,
  computeParams, type PackedFormat, type QuantScheme,
} from '../src/quant/index.js';
import { refKernels } from '../src/ref/index.js';
import { packedRowBytes, quadInterleave, quadRow } from '../src/quant/formats.js';

const ref = refKernels();

function pack(format: PackedFormat, codes: number[]): Uint8Array {
  const out = new Uint8Array(packedBytes(format, 1, codes.length));
  ref.packCodes(1, codes.length, format, Uint8Array.from(codes), out);
  return out;
}

describe('packed layouts', () => {
  it('u4: byte j = code j | code (j+16) << 4', () => {
    const codes = Array.from({ length: 32 }, (_, i) => i & 15);
    const b = pack('u4', codes);
    expect(b.length).toBe(16);
    for (let j = 0; j < 16; j++) expect(b[j]).toBe(codes[j]! | (codes[j + 16]! << 4));
  });

  it('u2: byte j holds codes j, j+16, j+32, j+48 at bits 0, 2, 4, 6', () => {
    const codes = Array.from({ length: 64 }, (_, i) => i >> 4); // 0 ×16, 1 ×16, 2 ×16, 3 ×16
    const b = pack('u2', codes);
    expect(Array.from(b)).toEqual(new Array(16).fill(0b11100100));
  });

  it('u3: two u2 planes of the low bits, then a 16-byte plane with bit g of byte j = bit 2 of code 16g + j', () => {
    const codes = Array.from({ length: 128 }, (_, i) => (i >> 4) & 7); // code = group index g
    const b = pack('u3', codes);
    expect(b.length).toBe(48);
    // low planes: codes 0..63 have g = 0..3 → low bits 0,1,2,3; codes 64..127 have g = 4..7 → 0,1,2,3
    expect(Array.from(b.subarray(0, 32))).toEqual(new Array(32).fill(0b11100100));
    // high plane: groups 4..7 have bit 2 set
    expect(Array.from(b.subarray(32, 48))).toEqual(new Array(16).fill(0b11110000));
  });

  it('u8 is the codes; rows start on block boundaries and tails pad with code 0', () => {
    expect(Array.from(pack('u8', [1, 2, 3]))).toEqual([1, 2, 3, ...new Array(13).fill(0)]);
    const out = new Uint8Array(packedBytes('u4', 2, 33));
    ref.packCodes(2, 33, 'u4', new Uint8Array(66).fill(15), out);
    expect(out.length).toBe(2 * 32);
    expect(out[16]).toBe(15); // row 0, block 1: code 32 alone, padding 0 in the high nibble
    expect(out[32]).toBe(0xff); // row 1 starts a fresh block
  });

  it('traits table: bits per weight = 8 · blockBytes / blockCodes', () => {
    for (const t of Object.values(FORMATS)) expect(t.bitsPerWeight).toBe((8 * t.blockBytes) / t.blockCodes);
    expect([FORMATS.u2.bitsPerWeight, FORMATS.u3.bitsPerWeight, FORMATS.u4.bitsPerWeight, FORMATS.u8.bitsPerWeight]).toEqual([2, 3, 4, 8]);
  });
});

describe('memory footprint', () => {
  for (const bits of [2, 3, 4, 8] as const) {
    it(`${bits}-bit [64, 256] per-group 128: codes are exactly bits·count/8 bytes, plus 5 bytes per group`, async () => {
      const x = Tensor.fromArray(Float32Array.from({ length: 64 * 256 }, (_, i) => Math.sin(i)), [64, 256]);
      for (const be of [await createBackend('js'), await createBackend('simd')]) {
        const q = quantize(x, { bits, symmetric: false, granularity: { kind: 'perGroup', groupSize: 128 } }, undefined, { kernels: be.kernels });
        expect(q.qs.byteLength).toBe((bits * 64 * 256) / 8);
        expect(q.qs.buffer.byteLength).toBe(q.qs.byteLength); // no hidden slack behind the view
        expect(quantizedByteLength(q)).toBe((bits * 64 * 256) / 8 + 64 * 2 * (4 + 1));
      }
    });
  }
});

describe('bad input is a LowbitError naming the parameter', () => {
  const x = Tensor.fromArray(Float32Array.from({ length: 24 }, (_, i) => i - 10), [4, 6]);
  const err = (fn: () => unknown): LowbitError => {
    try { fn(); } catch (e) { expect(e).toBeInstanceOf(LowbitError); return e as LowbitError; }
    throw new Error('expected a LowbitError');
  };
  const s = (over: Partial<QuantScheme>): QuantScheme => ({ bits: 4, symmetric: false, granularity: { kind: 'perTensor' }, ...over });

  it('bits out of range', () => {
    for (const bits of [1, 9, 4.5, NaN]) {
      const e = err(() => quantize(x, s({ bits: bits as QuantScheme['bits'] })));
      expect([e.code, e.message.includes('bits')]).toEqual(['E_ARG', true]);
    }
  });

  it('a group size that does not divide the dimension (no padding rule: it is an error)', () => {
    const e = err(() => quantize(x, s({ granularity: { kind: 'perGroup', groupSize: 4 } })));
    expect(e.code).toBe('E_ARG');
    expect(e.message).toMatch(/groupSize 4 does not divide the last dim 6/);
  });

  it('more clusters than channels, and a ClusterMap that is not a permutation', () => {
    const tooMany = { perm: Int32Array.from([0, 1, 2, 3, 4, 5]), offsets: Int32Array.from([0, 1, 2, 3, 4, 5, 6, 6]) };
    expect(err(() => quantize(x, s({ granularity: { kind: 'perCluster', clusters: tooMany } }))).message).toMatch(/cluster count 7 is larger than the channel count 6/);
    const notPerm = { perm: Int32Array.from([0, 1, 2, 2, 4, 5]), offsets: Int32Array.from([0, 3, 6]) };
    const e = err(() => quantize(x, s({ granularity: { kind: 'perRowCluster', clusters: notPerm } })));
    expect([e.code, /perm is not a permutation/.test(e.message)]).toEqual(['E_ARG', true]);
  });

  it('NaN or Infinity in calibration data names the first offending index', () => {
    const d = Float32Array.from({ length: 24 }, (_, i) => i);
    d[13] = NaN; d[20] = Infinity;
    const e = err(() => computeParams(Tensor.fromArray(d, [4, 6]), s({})));
    expect([e.code, e.details?.index]).toEqual(['E_NONFINITE', 13]);
    expect(e.message).toMatch(/element 13 is NaN/);
    // with a cluster permutation the index is still the tensor's own
    const clusters = { perm: Int32Array.from([5, 4, 3, 2, 1, 0]), offsets: Int32Array.from([0, 2, 6]) };
    const e2 = err(() => quantize(Tensor.fromArray(d, [4, 6]), s({ granularity: { kind: 'perCluster', clusters } })));
    expect(e2.details?.index).toBe(13);
    const e3 = err(() => calibrate(movingAverageMinMaxObserver(), [Tensor.fromArray(new Float32Array(4), [4]), Tensor.fromArray(d, [24])]));
    expect(e3.message).toMatch(/batch 1 element 13 is NaN/);
  });

  it('a zero-length calibration set', () => {
    const e = err(() => calibrate(minMaxObserver(), []));
    expect([e.code, /zero-length calibration set/.test(e.message)]).toEqual(['E_ARG', true]);
  });

  it('params of the wrong size or with a zero scale', () => {
    expect(err(() => quantize(x, s({}), { scale: new Float32Array(2), zero: new Uint8Array(2) })).code).toBe('E_SHAPE');
    expect(err(() => quantize(x, s({}), { scale: new Float32Array(1), zero: new Uint8Array(1) })).message).toMatch(/params.scale\[0\]/);
    expect(err(() => quantize(x, s({}), { scale: new Float32Array([1]), zero: Uint8Array.from([16]) })).code).toBe('E_RANGE');
  });
});

describe('quad-interleaved kernel layout (formats.ts quadInterleave)', () => {
  for (const format of ['u2', 'u3', 'u4', 'u8'] as const) {
    it(`${format}: block k of row 4q + l sits at q·4·rb + (4k + l)·blockBytes; quadRow inverts it`, () => {
      const bb = FORMATS[format].blockBytes, cols = 3 * FORMATS[format].blockCodes, need = packedRowBytes(format, cols);
      const rows = 8, rowMajor = Uint8Array.from({ length: rows * need }, (_, i) => (i * 37 + 11) & 255);
      for (const rb of [need, need + 16]) {
        const w = quadInterleave(format, rows, cols, rowMajor, rb);
        expect(w.length).toBe(rows * rb);
        for (let r = 0; r < rows; r++) {
          for (let k = 0; k < 3; k++) {
            for (let b = 0; b < bb; b++) {
              expect(w[(r >> 2) * 4 * rb + (4 * k + (r & 3)) * bb + b]).toBe(rowMajor[r * need + k * bb + b]);
            }
          }
          expect([...quadRow(format, cols, w, rb, r)]).toEqual([...rowMajor.subarray(r * need, (r + 1) * need)]);
        }
      }
    });
  }
  it('rejects a row count that is not a multiple of 4 and a short row stride', () => {
    expect(() => quadInterleave('u4', 6, 32, new Uint8Array(96))).toThrow(/6 rows is not a multiple of 4/);
    expect(() => quadInterleave('u4', 4, 64, new Uint8Array(128), 16)).toThrow(/row stride 16 bytes is less than the 32 bytes/);
    expect(() => quadInterleave('u4', 4, 64, new Uint8Array(100))).toThrow(/100 bytes, expected 128 \(4 rows of 32\)/);
  });
});
