// Tensor construction, views (reshape, transpose, slice), conversion, and the ops on each backend.

import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Tensor, init, matmul, linear, add, mul, relu, gelu, layerNorm, softmax, embedding, argmax, f16ToF32, f32ToF16,
} from '../src/index.js';
import { refKernels } from '../src/ref/index.js';
import { expectLowbit } from './helpers.js';

describe('Tensor', () => {
  it('builds from nested arrays and typed arrays, with shape and strides', () => {
    const t = Tensor.from([[1, 2, 3], [4, 5, 6]]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.strides).toEqual([3, 1]);
    expect(t.dtype).toBe('f32');
    expect(t.toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
    const u = Tensor.fromArray(new Int32Array([1, 2, 3, 4]), [2, 2]);
    expect(u.dtype).toBe('i32');
    expect(u.get(1, 0)).toBe(3);
    expect(Tensor.from(5).shape).toEqual([]);
    expect(Tensor.from(5).toArray()).toBe(5);
    expect(Tensor.from([]).shape).toEqual([0]);
  });

  it('rejects ragged arrays, bad shapes and mismatched sizes', () => {
    expectLowbit(() => Tensor.from([[1, 2], [3]]), 'E_SHAPE', /ragged/);
    expectLowbit(() => Tensor.empty([2, -1]), 'E_SHAPE', /-1/);
    expectLowbit(() => Tensor.empty([2.5]), 'E_SHAPE');
    expectLowbit(() => Tensor.fromArray(new Float32Array(5), [2, 3]), 'E_SHAPE', /\[2, 3\].*6.*5/);
    expectLowbit(() => Tensor.fromArray(new Float64Array(2) as unknown as Float32Array), 'E_DTYPE');
    expectLowbit(() => Tensor.from([[1, 'x' as unknown as number]]), 'E_SHAPE', /\[0\]\[1\]/);
  });

  it('reshape is a view of contiguous data, infers -1, and rejects size changes', () => {
    const t = Tensor.from([[1, 2, 3], [4, 5, 6]]);
    const r = t.reshape(3, -1);
    expect(r.shape).toEqual([3, 2]);
    (t.data as Float32Array)[0] = 9;
    expect(r.get(0, 0)).toBe(9);
    expectLowbit(() => t.reshape(4, 2), 'E_SHAPE', /\[2, 3\].*\[4, 2\]/);
    expectLowbit(() => t.reshape(4, -1), 'E_SHAPE');
  });

  it('transpose is a view; data of a strided view needs contiguous(); toArray follows strides', () => {
    const t = Tensor.from([[1, 2, 3], [4, 5, 6]]);
    const tt = t.transpose();
    expect(tt.shape).toEqual([3, 2]);
    expect(tt.toArray()).toEqual([[1, 4], [2, 5], [3, 6]]);
    expect(tt.isContiguous).toBe(false);
    expectLowbit(() => tt.data, 'E_ARG', /non-contiguous/);
    expect(Array.from(tt.contiguous().data)).toEqual([1, 4, 2, 5, 3, 6]);
    expect(tt.reshape(6).toArray()).toEqual([1, 4, 2, 5, 3, 6]);
    expectLowbit(() => t.transpose(0, 2), 'E_ARG', /dim 2/);
  });

  it('slice takes Python-style ranges as views', () => {
    const t = Tensor.from([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
    expect(t.slice(0, 1).toArray()).toEqual([[4, 5, 6], [7, 8, 9]]);
    expect(t.slice(1, -2).toArray()).toEqual([[2, 3], [5, 6], [8, 9]]);
    expect(t.slice(1, 0, 1).slice(0, 1, 2).toArray()).toEqual([[4]]);
    expect(t.slice(0, 2, 1).shape).toEqual([0, 3]);
  });

  it('property: transpose∘transpose and reshape round trips preserve elements', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 4 }), (a, b, c) => {
      const data = Float32Array.from({ length: a * b * c }, (_, i) => i);
      const t = Tensor.fromArray(data, [a, b, c]);
      expect(t.transpose(0, 2).transpose(0, 2).toArray()).toEqual(t.toArray());
      expect(Array.from(t.transpose(1, 2).contiguous().transpose(1, 2).contiguous().data)).toEqual(Array.from(data));
      expect(t.reshape(-1).reshape(a, b, c).toArray()).toEqual(t.toArray());
    }));
  });

  it('f16 storage converts exactly, rounding half to even', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0x7e00)).toBeNaN();
    expect(f32ToF16(65520)).toBe(0x7c00); // rounds up to inf
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    for (let h = 0; h < 0x10000; h += 7) {
      const v = f16ToF32(h);
      if (!Number.isNaN(v)) expect(f32ToF16(v)).toBe(h === 0x8000 ? 0x8000 : h);
    }
    const t = Tensor.from([[0.5, -2], [65504, 1e-8]], 'f16');
    expect(t.toArray()).toEqual([[0.5, -2], [65504, 0]]);
    expect(t.astype('f32').dtype).toBe('f32');
  });
});

for (const backend of ['js', 'simd'] as const) {
  describe(`ops on ${backend}`, () => {
    beforeAll(async () => {
      await init({ backend });
    });

    it('matmul: GEMM, GEMV, batched, and transposed views used in place', () => {
      const a = Tensor.from([[1, 2, 3], [4, 5, 6]]);
      const b = Tensor.from([[1, 0], [0, 1], [1, 1]]);
      expect(matmul(a, b).toArray()).toEqual([[4, 5], [10, 11]]);
      expect(matmul(a, a.transpose()).toArray()).toEqual([[14, 32], [32, 77]]);
      expect(matmul(a.slice(0, 0, 1), b).toArray()).toEqual([[4, 5]]);
      const batch = Tensor.from([[[1, 2]], [[3, 4]]]);
      const bb = Tensor.from([[[1], [1]], [[2], [0]]]);
      expect(matmul(batch, bb).toArray()).toEqual([[[3]], [[6]]]);
      expect(matmul(batch, Tensor.from([[1], [1]])).toArray()).toEqual([[[3]], [[7]]]);
      expect(matmul(batch, bb.transpose().transpose()).toArray()).toEqual([[[3]], [[6]]]);
    });

    it('matmul agrees with a naive product on random shapes (incl. strided views)', () => {
      fc.assert(fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 17 }), fc.boolean(), (M, N, K, tr) => {
        const a = Tensor.fromArray(Float32Array.from({ length: M * K }, (_, i) => Math.sin(i)), [M, K]);
        const bData = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.7));
        const b = tr ? Tensor.fromArray(bData, [N, K]).transpose() : Tensor.fromArray(bData, [K, N]);
        const c = matmul(a, b);
        for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a.get(m, k) * b.get(k, n);
          expect(Math.abs(c.get(m, n) - s)).toBeLessThan(1e-4);
        }
      }), { numRuns: 40 });
    });

    it('linear uses HF weight layout [out, in] with bias', () => {
      const x = Tensor.from([[1, 2]]);
      const w = Tensor.from([[1, 1], [2, -1], [0, 3]]);
      const b = Tensor.from([0.5, 0, -1]);
      expect(linear(x, w, b).toArray()).toEqual([[3.5, 0, 5]]);
      expectLowbit(() => linear(x, w.transpose()), 'E_SHAPE', /\[2, 3\]/);
    });

    it('add and mul, with row broadcast', () => {
      const a = Tensor.from([[1, 2], [3, 4]]);
      expect(add(a, Tensor.from([10, 20])).toArray()).toEqual([[11, 22], [13, 24]]);
      expect(mul(a, a).toArray()).toEqual([[1, 4], [9, 16]]);
      expect(mul(a, Tensor.from([2, 0])).toArray()).toEqual([[2, 0], [6, 0]]);
      expectLowbit(() => add(a, Tensor.from([1, 2, 3])), 'E_SHAPE', /\[2, 2\].*\[3\]/);
    });

    it('relu, gelu, layerNorm, softmax (causal), embedding, argmax', () => {
      expect(relu(Tensor.from([-1, 0, 2])).toArray()).toEqual([0, 0, 2]);
      const g = gelu(Tensor.from([0, 1, -1])).toArray() as number[];
      expect(g[0]).toBe(0);
      expect(g[1]).toBeCloseTo(0.8413447, 5);
      expect(g[2]).toBeCloseTo(-0.1586553, 5);
      const ln = layerNorm(Tensor.from([[1, 2, 3, 4]]), Tensor.from([1, 1, 1, 1]), Tensor.from([0, 0, 0, 1])).toArray() as number[][];
      const sd = Math.sqrt(1.25 + 1e-5);
      expect(ln[0]![0]).toBeCloseTo(-1.5 / sd, 5);
      expect(ln[0]![3]).toBeCloseTo(1.5 / sd + 1, 5);
      const sm = softmax(Tensor.from([[[0, 0, 0], [0, 0, 0]]]), { causal: 1 }).toArray() as number[][][];
      expect(sm[0]![0]).toEqual([0.5, 0.5, 0]);
      expect(sm[0]![1]![2]).toBeCloseTo(1 / 3, 6);
      const table = Tensor.from([[0, 0], [1, 1], [2, 2]]);
      expect(embedding(table, [2, 0]).toArray()).toEqual([[2, 2], [0, 0]]);
      expect(embedding(table, Tensor.fromArray(new Int32Array([1, 2]), [1, 2])).shape).toEqual([1, 2, 2]);
      expectLowbit(() => embedding(table, [3]), 'E_RANGE', /id 3/);
      expectLowbit(() => embedding(table, [1.5]), 'E_ARG', /not an integer/);
      expect(Array.from(argmax(Tensor.from([[1, 3, 3], [NaN, 1, 2]])).data)).toEqual([1, 0]);
    });

    it('ops check dtypes and shapes', () => {
      const h = Tensor.from([[1, 2]], 'f16');
      expectLowbit(() => matmul(h, h), 'E_DTYPE', /f16.*astype/);
      expectLowbit(() => relu(Tensor.from([1], 'i32')), 'E_DTYPE', /i32/);
      expectLowbit(() => matmul(Tensor.from([[1, 2]]), Tensor.from([[1, 2]])), 'E_SHAPE', /\[1, 2\].*\[1, 2\]/);
      expectLowbit(() => layerNorm(Tensor.from([[1, 2]]), Tensor.from([1]), null), 'E_SHAPE', /gamma/);
      expectLowbit(() => layerNorm(Tensor.from([[1, 2]]), null, null, NaN), 'E_ARG', /eps/);
      expectLowbit(() => softmax(Tensor.from([[1]]), { causal: -2 }), 'E_ARG', /causal/);
      expectLowbit(() => argmax(Tensor.from([[]])), 'E_SHAPE');
    });

    it('ops propagate NaN (PyTorch semantics)', () => {
      const x = Tensor.from([[NaN, 1]]);
      expect((relu(x).toArray() as number[][])[0]![0]).toBeNaN();
      expect((matmul(x, Tensor.from([[1], [1]])).toArray() as number[][])[0]![0]).toBeNaN();
      expect((softmax(x).toArray() as number[][])[0]!.every(Number.isNaN)).toBe(true);
      expect((layerNorm(x, null, null).toArray() as number[][])[0]!.every(Number.isNaN)).toBe(true);
    });

    it('op results equal the reference kernels bit for bit where the kernel is exact', () => {
      const ref = refKernels();
      const a = Float32Array.from({ length: 37 }, (_, i) => Math.tan(i));
      const want = new Float32Array(37);
      ref.relu(37, a, want);
      expect(Array.from(relu(Tensor.fromArray(a)).data)).toEqual(Array.from(want));
    });
  });
}
