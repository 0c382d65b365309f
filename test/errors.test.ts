// Bad input at the kernel boundary: random invalid arguments always give a LowbitError (never a
// trap, a RangeError or an out-of-bounds write), and the WASM instance computes correctly afterwards.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createBackend, LowbitError } from '../src/index.js';
import { refKernels } from '../src/ref/index.js';
import type { Kernels } from '../src/kernels/index.js';

const bad = fc.oneof(fc.constantFrom(-1, -7, 1.5, NaN, Infinity, -Infinity, 2 ** 40), fc.integer({ min: -100, max: -1 }));

/** One random invalid call per kernel family shape: each returns a thunk that must throw LowbitError. */
function invalidCall(k: Kernels): fc.Arbitrary<[string, () => void]> {
  const small = fc.integer({ min: 1, max: 8 });
  return fc.oneof(
    fc.tuple(bad, small, small).map(([M, N, K]) => [`sgemmNT M=${M}`, () => k.sgemmNT(M, N, K, new Float32Array(64), K, new Float32Array(64), K, new Float32Array(64), N, null)] as [string, () => void]),
    fc.tuple(small, small, small).map(([M, N, K]) => [`sgemmNN short a`, () => k.sgemmNN(M + 1, N, K, new Float32Array(M * K), K, new Float32Array(K * N), N, new Float32Array((M + 1) * N), N, null)] as [string, () => void]),
    fc.tuple(small, small, small).map(([M, N, K]) => [`sgemmNT short c`, () => k.sgemmNT(M, N, K, new Float32Array(M * K), K, new Float32Array(N * K), K, new Float32Array(M * N - 1), N, null)] as [string, () => void]),
    fc.tuple(small, small, small).map(([M, N, K]) => [`sgemmNT lda<K`, () => k.sgemmNT(M, N, K + 1, new Float32Array(99), K, new Float32Array(99), K + 1, new Float32Array(99), N, null)] as [string, () => void]),
    fc.tuple(small, small).map(([M, N]) => [`sgemmNT short bias`, () => k.sgemmNT(M, N, 2, new Float32Array(2 * M), 2, new Float32Array(2 * N), 2, new Float32Array(M * N), N, new Float32Array(N - 1))] as [string, () => void]),
    bad.map((n) => [`add n=${n}`, () => k.add(n, new Float32Array(8), new Float32Array(8), new Float32Array(8))] as [string, () => void]),
    small.map((n) => [`relu short out`, () => k.relu(n + 1, new Float32Array(n + 1), new Float32Array(n))] as [string, () => void]),
    fc.constantFrom(NaN, 0, -1e-5, Infinity).map((eps) => [`layerNorm eps=${eps}`, () => k.layerNorm(1, 4, new Float32Array(4), null, null, eps, new Float32Array(4))] as [string, () => void]),
    fc.oneof(fc.integer({ min: 3, max: 1000 }), fc.integer({ min: -1000, max: -1 })).map((id) => [`gatherRows id=${id}`, () => k.gatherRows(1, 4, new Float32Array(12), new Int32Array([id]), new Float32Array(4))] as [string, () => void]),
    fc.constantFrom(0.5, NaN).map((c) => [`softmax causal=${c}`, () => k.softmax(2, 2, new Float32Array(4), new Float32Array(4), c)] as [string, () => void]),
    small.map((r) => [`argmax 0 cols`, () => k.argmax(r, 0, new Float32Array(0), new Int32Array(r))] as [string, () => void]),
  );
}

for (const name of ['js', 'simd'] as const) {
  describe(`invalid kernel arguments on ${name}`, () => {
    it('always raise LowbitError, and the instance still computes correctly afterwards', async () => {
      const b = await createBackend(name);
      const ref = refKernels();
      const M = 5, N = 9, K = 13;
      const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i));
      const w = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i));
      const want = new Float32Array(M * N);
      ref.sgemmNT(M, N, K, a, K, w, K, want, N, null);
      fc.assert(fc.property(invalidCall(b.kernels), ([what, call]) => {
        let err: unknown = null;
        try {
          call();
        } catch (e) {
          err = e;
        }
        expect(err, what).toBeInstanceOf(LowbitError);
        expect((err as LowbitError).code, what).toMatch(/^E_(ARG|SHAPE|RANGE)$/);
        const got = new Float32Array(M * N);
        b.kernels.sgemmNT(M, N, K, a, K, w, K, got, N, null);
        for (let i = 0; i < M * N; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5);
      }), { numRuns: 300 });
      if (b.heap) expect(b.heap.stats().inUse).toBe(0);
    });
  });
}
