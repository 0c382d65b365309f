// Threads on every WASM backend in LOWBIT_BACKENDS (default simd; the relaxed vitest run sets
// relaxed): the whole kernel conformance suite on a 2-thread backend that splits every GEMM, and
// 1-thread vs 2-thread results bit for bit on shapes that cut through every tile and tail.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createBackend, type Backend } from '../src/runtime.js';
import type { BackendName } from '../src/kernels/index.js';
import { describeKernels } from './conformance/describeKernels.js';
import { floats, pattern } from './conformance/gen.js';

const names = (process.env.LOWBIT_BACKENDS ?? 'simd').split(',').map((s) => s.trim()).filter((n) => n !== 'js') as BackendName[];

/** Same bits (NaN payloads included). */
function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

for (const name of names) {
  describe(`threads on ${name}`, () => {
    let one: Backend, two: Backend, twoResident: Backend;
    beforeAll(async () => {
      one = await createBackend(name);
      // minParallelFlops 0: every call is split, however small, so every cut is exercised
      two = await createBackend(name, { threads: 2, minParallelFlops: 0 });
      twoResident = await createBackend(name, { threads: 2, minParallelFlops: 0 });
    });
    afterAll(async () => {
      await two.dispose();
      await twoResident.dispose();
    });

    it('runs 2 threads here', () => {
      expect(two.info.threads).toBe(2);
      expect(two.info.notes).toEqual([]);
    });

    for (const trans of [true, false]) {
      const fn = trans ? 'sgemmNT' : 'sgemmNN';
      it(`${fn}: 1 and 2 threads give identical bits (odd shapes, N % 4 ≠ 0, M = 1 and M > 1, outliers, strides, bias)`, () => {
        fc.assert(fc.property(
          fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 70 })),
          fc.oneof(fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 300 })),
          fc.integer({ min: 0, max: 150 }),
          fc.nat(3), fc.nat(3), fc.nat(2), pattern, pattern, fc.integer(), fc.boolean(),
          (M, N, K, padA, padB, padC, pa, pb, seed, withBias) => {
            const lda = K + padA, ldb = (trans ? K : N) + padB, ldc = N + padC;
            const a = floats(M * lda, pa, seed, 4, lda);
            const b = floats(trans ? N * ldb : K * ldb, pb, seed + 1, 4, ldb);
            const bias = withBias ? floats(N, 'outlier', seed + 2) : null;
            const c1 = new Float32Array(M * ldc).fill(7), c2 = new Float32Array(M * ldc).fill(7);
            one.kernels[fn](M, N, K, a, lda, b, ldb, c1, ldc, bias);
            two.kernels[fn](M, N, K, a, lda, b, ldb, c2, ldc, bias);
            expect(bitsOf(c2), `M=${M} N=${N} K=${K}`).toEqual(bitsOf(c1));
          }), { numRuns: 80 });
      });
    }

    it('weights resident in shared memory: GEMV and GEMM at model sizes match bit for bit', () => {
      const h = twoResident.heap!;
      for (const [M, N, K] of [[1, 3072, 768], [1, 771, 513], [7, 1030, 257], [64, 250, 96]] as const) {
        const pa = h.alloc(M * K * 4), pw = h.alloc(N * K * 4), pc = h.alloc(M * N * 4);
        const a = h.f32(pa, M * K), w = h.f32(pw, N * K), c = h.f32(pc, M * N);
        a.set(floats(M * K, 'outlier', M));
        w.set(floats(N * K, 'random', N));
        const want = new Float32Array(M * N);
        one.kernels.sgemmNT(M, N, K, a, K, w, K, want, N, null);
        twoResident.kernels.sgemmNT(M, N, K, a, K, w, K, c, N, null);
        expect(bitsOf(c), `${M}x${N}x${K}`).toEqual(bitsOf(want));
        for (const p of [pa, pw, pc]) h.free(p);
      }
    });

    describeKernels(`${name}, 2 threads, every GEMM split`, () => two);
  });
}
